"""The `gorpc` command, run as a subprocess against servers it started itself with `gorpc serve`."""

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gorpc.testing import ServerProcess, eventually, server_process
from gorpc_consul.testing import dev_agent

from .conftest import free_port
from .test_auth import self_signed

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SHOP = "tests.cli_service:Shop"
ECHO = "/test.Shop/Echo"


def gorpc(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m gorpc ARGS` from the repository root; returns the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "gorpc", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        env=ENV,
        cwd=ROOT,
    )


@contextlib.contextmanager
def serve(*args: str) -> Iterator[ServerProcess]:
    with server_process(["-m", "gorpc", "serve", *args], env={"PYTHONPATH": str(ROOT)}) as server:
        yield server


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    with serve(SHOP, "--address", "127.0.0.1:0") as server:
        yield server.address


# -- call -----------------------------------------------------------------------------------------


def test_call_prints_the_reply_as_json(shop):
    done = gorpc("call", shop, ECHO, '{"msg": "hi", "n": [1, 2.5, null, true]}')
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) == {"msg": "hi", "n": [1, 2.5, None, True]}


def test_bytes_are_shown_as_base64(shop):
    done = gorpc("call", shop, "/test.Shop/Bytes", "--compact")
    assert done.returncode == 0
    assert base64.b64decode(json.loads(done.stdout)) == b"\x00\x01gorpc"


def test_request_from_stdin_or_a_file(shop, tmp_path):
    assert json.loads(gorpc("call", shop, ECHO, "-", stdin='{"from": "stdin"}').stdout) == {"from": "stdin"}
    (tmp_path / "req.json").write_text('["from", "file"]')
    assert json.loads(gorpc("call", shop, ECHO, f"@{tmp_path / 'req.json'}").stdout) == ["from", "file"]
    assert json.loads(gorpc("call", shop, ECHO).stdout) is None  # no request: null


def test_metadata_codec_and_reply_metadata(shop):
    done = gorpc("call", shop, "/test.Shop/Whoami", "-m", "authorization=Bearer x", "-m", "tenant=a=b",
                 "--codec", "json", "--show-metadata")  # fmt: skip
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"authorization": "Bearer x", "tenant": "a=b"}
    assert json.loads(done.stderr) == {"served-by": "shop"}
    assert json.loads(gorpc("call", shop, "/test.Shop/Count", "[1, 2, 3]").stdout) == 3


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["/test.Shop/Fail", '"widget"'], 3, "ValueError: no such item 'widget'"),
        (["/test.Shop/Nope"], 3, "service 'test.Shop' has no method 'Nope'"),
        (["/test.Shop/Slow", "30", "--timeout", "0.2"], 5, "DEADLINE_EXCEEDED"),
        ([ECHO, "{not json"], 1, "the request is not valid JSON"),
        (["test.Shop/Echo"], 2, "is not a method path"),
        ([ECHO, "-m", "novalue"], 2, "is not KEY=VALUE"),
    ],
)
def test_errors_go_to_stderr_with_distinct_exit_codes(shop, args, code, message):
    done = gorpc("call", shop, *args)
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert done.stdout == ""


def test_nobody_listening_is_unavailable():
    done = gorpc("call", f"127.0.0.1:{free_port()}", ECHO, "1")
    assert done.returncode == 4
    assert "cannot connect" in done.stderr


def test_unix_socket_target(tmp_path):
    path = tmp_path / "shop.sock"
    with serve(SHOP, "--address", f"unix:{path}"):
        done = gorpc("call", f"unix:{path}", ECHO, '"over unix"')
        assert (done.returncode, json.loads(done.stdout)) == (0, "over unix")


def test_service_name_target_through_the_configured_resolver(shop, tmp_path):
    config = tmp_path / "gorpc.toml"
    config.write_text(f'[plugins.static]\nservices = {{ "test.Shop" = ["{shop}"] }}\n')
    done = gorpc("call", "test.Shop", ECHO, '"by name"', "--config", str(config))
    assert (done.returncode, json.loads(done.stdout)) == (0, "by name")
    unknown = gorpc("call", "test.Nowhere", "/test.Nowhere/X", "--config", str(config))
    assert unknown.returncode == 4
    assert "no nodes available for service 'test.Nowhere'" in unknown.stderr


def test_tls_target(tmp_path):
    cert, key = self_signed(tmp_path)
    config = tmp_path / "server.toml"
    config.write_text(f'[server]\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    with serve(SHOP, "--address", "127.0.0.1:0", "--config", str(config)) as server:
        done = gorpc("call", server.address, ECHO, '"secret"', "--tls-ca", cert)
        assert (done.returncode, json.loads(done.stdout)) == (0, "secret")
        untrusted = gorpc(
            "call", server.address, ECHO, '"secret"', "--tls-ca", self_signed(tmp_path, "other")[0]
        )
        assert untrusted.returncode == 4 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr


# -- describe -------------------------------------------------------------------------------------


def test_describe_shows_methods_signatures_and_docstrings(shop):
    done = gorpc("describe", shop)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:4] == [
        "test.Shop",
        "    A shop to try the command line on.",
        "  Bytes(req: None) -> bytes",
        "      Answers with raw bytes, which JSON shows as base64.",
    ]
    assert "  Count(items: list[object]) -> int  (runs in a thread)" in lines
    assert "  Whoami(req: None, ctx: gorpc.context.CallContext) -> dict[str, object]" in lines
    assert "gorpc.Reflection" not in done.stdout  # the reflection service does not describe itself


def test_describe_as_json_and_for_one_service(shop):
    [shop_service] = json.loads(gorpc("describe", shop, "test.Shop", "--json").stdout)
    assert [m["name"] for m in shop_service["methods"]] == [
        "Bytes",
        "Count",
        "Echo",
        "Fail",
        "Slow",
        "Whoami",
    ]
    echo = shop_service["methods"][2]
    assert echo == {
        "name": "Echo",
        "path": "/test.Shop/Echo",
        "kind": "unary",
        "signature": "(req: object) -> object",
        "doc": "Answers with the request itself.",
        "runs": "async",
        "request_schema": None,  # `object`: any value, as an unannotated handler's
        "reply_schema": None,
    }
    assert shop_service["methods"][1]["request_schema"] == {"type": "array", "items": {"x-gorpc-type": "any"}}
    unknown = gorpc("describe", shop, "test.Nope")
    assert unknown.returncode == 3 and "hosts no service 'test.Nope'" in unknown.stderr


def test_describe_a_server_with_reflection_turned_off():
    with serve(SHOP, "--address", "127.0.0.1:0", "--no-reflection") as server:
        done = gorpc("describe", server.address)
        assert done.returncode == 3
        assert "does not answer gorpc.Reflection (is reflection = false" in done.stderr
        assert gorpc("call", server.address, ECHO, "1").returncode == 0


# -- serve and help -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tests.cli_service", "is not module:Name"),
        ("tests.no_such_module:Shop", "cannot import 'tests.no_such_module'"),
        ("tests.cli_service:Nope", "has no 'Nope'"),
        ("tests.cli_service:CallContext", "is a class but not a gorpc.Service"),
    ],
)
def test_serve_refuses_what_it_cannot_serve(spec, message):
    done = gorpc("serve", spec, "--address", "127.0.0.1:0")
    assert done.returncode == 1
    assert message in done.stderr


def test_serve_stops_gracefully_on_sigterm():
    with serve(SHOP, "--address", "127.0.0.1:0") as server:
        assert gorpc("call", server.address, ECHO, "1").returncode == 0
        assert server.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize("command", [[], ["call"], ["list"], ["describe"], ["serve"]])
def test_every_command_has_help(command):
    done = gorpc(*command, "--help")
    assert done.returncode == 0
    assert done.stdout.startswith(f"usage: gorpc {' '.join(command)}".rstrip())
    assert "exit codes:" in done.stdout


def test_installed_as_a_console_script(shop):
    script = Path(sys.executable).with_name("gorpc")
    done = subprocess.run([str(script), "call", shop, ECHO, "1"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "1\n")


# -- list, against a real Consul ------------------------------------------------------------------


def test_list_from_the_static_resolver(tmp_path):
    config = tmp_path / "gorpc.toml"
    config.write_text(
        '[plugins.static]\nservices = { "a.A" = ["127.0.0.1:1", { address = "127.0.0.1:2", w = "2" }] }\n'
    )
    done = gorpc("list", "--config", str(config))
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        "a.A  (2 nodes)",
        "  127.0.0.1:1  unknown",
        "  127.0.0.1:2  unknown   w=2",
    ]


@pytest.mark.consul
@pytest.mark.slow
def test_list_shows_consul_services_nodes_metadata_and_health(tmp_path):
    with dev_agent() as agent:
        config = tmp_path / "gorpc.toml"
        config.write_text(
            '[server]\nresolver = "consul"\nmetadata = { version = "1.2", weight = "3" }\n'
            '[client]\nresolver = "consul"\n'
            f'[plugins.consul]\naddress = "{agent.http_address}"\nprefix = "cli"\n'
        )
        with (
            serve(SHOP, "--address", "127.0.0.1:0", "--config", str(config)) as one,
            serve(SHOP, "--address", "127.0.0.1:0", "--config", str(config)) as two,
        ):
            done = gorpc("list", "--consul", agent.http_address, "--prefix", "cli", "--json")
            assert done.returncode == 0, done.stderr
            listed = json.loads(done.stdout)
            assert sorted(listed) == ["test.Shop"]  # gorpc.Reflection is not registered
            metadata = {"version": "1.2", "weight": "3"}
            assert sorted(listed["test.Shop"], key=lambda n: n["address"]) == sorted(
                [{"address": s.address, "health": "passing", "metadata": metadata} for s in (one, two)],
                key=lambda n: n["address"],
            )
            # consul_dns takes the same shorthands and lists the same way.
            dns = gorpc(
                "list",
                "--resolver",
                "consul_dns",
                "--consul",
                agent.http_address,
                "--prefix",
                "cli",
                "--json",
            )
            assert (dns.returncode, json.loads(dns.stdout)) == (0, listed), dns.stderr
            # By service name through Consul, as a client would.
            call = gorpc("call", "test.Shop", ECHO, '"via consul"', "--config", str(config))
            assert call.returncode == 0, call.stderr
            assert json.loads(call.stdout) == "via consul"
            two.stop(signal.SIGKILL)

            def health_of_the_killed() -> str | None:
                text = gorpc("list", "--consul", agent.http_address, "--prefix", "cli").stdout
                line = next((line for line in text.splitlines() if two.address in line), "")
                return line.split()[1] if line else None

            # Its key went with its session; its agent service stays, critical, until Consul drops it.
            asyncio.run(eventually(lambda: health_of_the_killed() == "critical", timeout=30, interval=0.2))
        down = gorpc("list", "--consul", f"127.0.0.1:{free_port()}")
        assert down.returncode == 4 and "unreachable" in down.stderr


# -- streams --------------------------------------------------------------------------------------

TICKER = "tests.stream_service:Ticker"


@pytest.fixture(scope="module")
def ticker() -> Iterator[str]:
    with serve(TICKER, "--address", "127.0.0.1:0") as server:
        yield server.address


def test_call_prints_a_server_stream_as_json_lines(ticker):
    done = gorpc("call", ticker, "/test.Ticker/Ticks", "3")
    assert (done.returncode, done.stdout, done.stderr) == (0, "0\n1\n2\n", "")


def test_call_sends_standard_inputs_json_lines_as_the_request_stream(ticker):
    lines = "1\n2.5\n\n3\n"  # a blank line is skipped
    done = gorpc("call", ticker, "/test.Ticker/Total", "--requests-from-stdin", stdin=lines)
    assert (done.returncode, done.stdout, done.stderr) == (0, "6.5\n", "")
    done = gorpc("call", ticker, "/test.Ticker/Upper", "--requests-from-stdin", stdin='"a"\n"b"\n')
    assert (done.returncode, done.stdout) == (0, '"A"\n"B"\n')
    bad = gorpc("call", ticker, "/test.Ticker/Upper", "--requests-from-stdin", stdin='"a"\nnot json\n')
    assert bad.returncode != 0 and "line 2 is not valid JSON" in bad.stderr


def test_call_of_a_stream_without_reflection_needs_the_stream_flag():
    with serve(TICKER, "--address", "127.0.0.1:0", "--no-reflection") as server:
        plain = gorpc("call", server.address, "/test.Ticker/Ticks", "2")
        assert plain.returncode != 0 and "server-streaming method" in plain.stderr
        done = gorpc("call", server.address, "/test.Ticker/Ticks", "2", "--stream")
        assert (done.returncode, done.stdout) == (0, "0\n1\n")


def test_describe_shows_each_streaming_methods_kind(ticker):
    done = gorpc("describe", ticker)
    assert "Ticks(n: int) -> collections.abc.AsyncIterator[int]  [server-streaming]" in done.stdout
    assert "[client-streaming]" in done.stdout and "[bidirectional]" in done.stdout
