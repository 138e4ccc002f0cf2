"""The examples and the README's demo command run, so they cannot rot."""

import ast
import subprocess
import sys
from pathlib import Path

from gorpc.testing import server_process

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "helloworld"


def run_example(name: str) -> list[str]:
    """Start examples/NAME/server.py on a free port, run its client against it, and return what the
    client printed (it must exit 0 with nothing on stderr; the server must stop cleanly)."""
    example = ROOT / "examples" / name
    with server_process([str(example / "server.py"), "--address", "127.0.0.1:0"]) as server:
        client = subprocess.run(
            [sys.executable, str(example / "client.py"), "--target", server.address],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (client.returncode, client.stderr) == (0, "")
        assert server.stop() == 0
    return client.stdout.splitlines()


def test_helloworld_server_and_client():
    assert run_example("helloworld") == ["hello world"]


def test_demo_script():
    demo = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")], capture_output=True, text=True, timeout=120
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "client: hello world" in demo.stdout
    assert "server: stopped (exit code 0)" in demo.stdout


def test_example_config_file_is_valid_for_both_roles():
    from gorpc import ClientConfig, ServerConfig

    path = HELLO / "gorpc.toml"
    assert ServerConfig.load(path).address == "127.0.0.1:8000"
    client = ClientConfig.load(path)
    assert client.target == "helloworld.Greeter"
    assert client.plugin_options("static")["services"] == {"helloworld.Greeter": ["127.0.0.1:8000"]}


def test_helloworld_client_resolves_the_service_by_name_from_a_config(tmp_path):
    with server_process([str(HELLO / "server.py"), "--address", "127.0.0.1:0"]) as server:
        config = tmp_path / "gorpc.toml"
        config.write_text(
            (HELLO / "gorpc.toml").read_text().replace('["127.0.0.1:8000"]', f'["{server.address}"]')
        )
        client = subprocess.run(
            [sys.executable, str(HELLO / "client.py"), "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (client.returncode, client.stdout, client.stderr) == (0, "hello world\n", "")


def test_consul_example_spreads_calls_and_survives_a_stopping_server():
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "consul" / "client.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    spreads = [line for line in lines if line.startswith("calls per server:")]
    assert spreads[0] == "calls per server: {'server-0': 16, 'server-1': 16, 'server-2': 16}"
    after = ast.literal_eval(spreads[1].split(": ", 1)[1])  # failover may tilt the turns a little
    assert after.keys() == {"server-1", "server-2"} and sum(after.values()) == 48
    assert lines[-1].startswith("nodes now: [") and lines[-1].count(":") == 3  # two nodes left


def test_streaming_example_calls_each_kind_of_method():
    assert run_example("streaming") == [
        "GetFeature: place-3-4",
        "ListFeatures: ['place-2-2', 'place-2-3', 'place-2-4', 'place-3-2', 'place-3-3', 'place-3-4']",
        "RecordRoute: {'points': 3, 'distance': 9.0}",
        "RouteChat: at 0,0 earlier: first",
        "RouteChat: at 0,1 earlier: second",
    ]


def test_typed_example_calls_through_its_stub_and_shows_a_refused_request():
    assert run_example("typed") == [
        "added task 1",
        "task 1: write the report (high, due 2026-12-01)",
        "home: buy milk",
        "home: file taxes",
        "refused: request to /todo.Tasks/Get does not match TaskId: Expected `int`, got `str` - at `$.id`",
    ]


def test_observability_example_shows_metrics_and_health():
    """The client's calls, the health probe, and the server's calls counted on its /metrics."""
    from tests.conftest import free_port

    example = ROOT / "examples" / "observability"
    metrics = f"127.0.0.1:{free_port()}"
    argv = [str(example / "server.py"), "--address", "127.0.0.1:0", "--metrics-address", metrics]
    url = f"http://{metrics}/metrics"
    with server_process(argv) as server:
        probe = [sys.executable, "-m", "gorpc", "health", server.address, "examples.Inventory"]
        assert subprocess.run(probe, capture_output=True, timeout=60).returncode == 0
        client = subprocess.run(
            [sys.executable, str(example / "client.py"), "--target", server.address, "--metrics", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (client.returncode, client.stderr) == (0, "")
        assert server.stop() == 0
    labels = (
        'rpc_method="{}",rpc_response_status_code="{}",rpc_service="examples.Inventory",rpc_system="gorpc"'
    )
    assert client.stdout.splitlines() == [
        "apple 3",
        "pear 0",
        "apple 3",
        "plum: KeyError",
        "health: SERVING",
        "pause: NOT_SERVING",
        "health: NOT_SERVING",
        "resume: SERVING",
        "rpc_server_call_duration_seconds_count{" + labels.format("Count", "OK") + "} 3.0",
        "rpc_server_call_duration_seconds_count{" + labels.format("Count", "REMOTE_ERROR") + "} 1.0",
        "rpc_server_call_duration_seconds_count{" + labels.format("Pause", "OK") + "} 2.0",
    ]
