"""What users get from the repository: the README's snippets run, and the sdist and wheel hold what
they promise (license, tests, docs, examples, one version, project URLs)."""

import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import gorpc
from gorpc.testing import loopback

from .conftest import Greeter

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def snippet(name: str) -> str:
    """The code block that follows `<!-- README test: name -->` in the README."""
    match = re.search(rf"<!-- README test: {re.escape(name)} -->\n```python\n(.*?)```", README, re.S)
    assert match, f"README has no snippet marked {name!r}"
    return match.group(1)


def run_python(code: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, **kwargs)


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["client", "blocking client"])
async def test_the_readme_client_snippets_run_as_written(name):
    async with loopback(Greeter()) as (server, _):
        code = snippet(name).replace("127.0.0.1:8000", server.address)
        result = await __import__("asyncio").to_thread(run_python, code)
    assert result.returncode == 0, result.stderr
    assert "hello world" in result.stdout


async def served_snippet(name: str, service: str) -> list[str]:
    """Run the README snippet `name`: serve its `service` class, call its `use(client)`, and return
    what it printed."""
    namespace: dict = {}
    exec(snippet(name), namespace)
    printed: list[str] = []
    namespace["print"] = lambda *args: printed.append(" ".join(map(str, args)))
    async with loopback(namespace[service]()) as (_, client):
        await namespace["use"](client)
    return printed


@pytest.mark.asyncio
async def test_the_readme_streams_snippet_serves_and_calls_each_kind():
    printed = await served_snippet("streams", "RouteGuide")
    assert printed == ["{'lat': 1}", "{'lat': 2}", "{'lat': 3}", "['A', 'B'] {'points': 2}"]


@pytest.mark.asyncio
async def test_the_readme_typed_snippet_calls_through_a_stub_and_shows_a_validation_error():
    assert await served_snippet("typed", "Greeter") == [
        "HelloReply(msg='hi hi world')",
        "request to /helloworld.TypedGreeter/SayHello does not match HelloRequest: "
        "Expected `int`, got `str` - at `$.count`",
    ]


def test_the_readme_pytest_snippet_passes_in_strict_mode(tmp_path):
    (tmp_path / "test_greeter.py").write_text(snippet("pytest"))
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-c",
            str(tmp_path / "pytest.ini"),
            "--rootdir",
            str(tmp_path),
            str(tmp_path / "test_greeter.py"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_plugins_readme_lists_every_plugin_entry_point_with_its_extra():
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    table = (ROOT / "plugins" / "README.md").read_text()
    for group, lines in config["options.entry_points"].items():
        for line in filter(None, lines.splitlines()):
            name, target = (part.strip() for part in line.split("=", 1))
            package = target.split(".", 1)[0]
            if not package.startswith("gorpc_"):
                continue
            row = next(r for r in table.splitlines() if r.startswith(f"| `{package}`"))
            assert f"`{group}`" in row and f"`{name}`" in row, (group, name)
            extra = re.search(r"\[(\w+)\]", target)
            assert extra and f"`{extra.group(1)}`" in row, f"{name}: its entry point must name its extra"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The sdist and the wheel, built as a release would build them (the wheel from the sdist)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


@pytest.mark.slow
def test_the_sdist_holds_the_license_tests_docs_and_what_the_readme_links(built):
    sdist, _ = built
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        names = {name.removeprefix(top + "/") for name in archive.getnames()}
    assert {
        "LICENSE",
        "README.md",
        "tests/conftest.py",
        "tests/consul_helpers.py",
        "docs/protocol.md",
    } <= names
    linked = {link.split("#")[0] for link in re.findall(r"\]\(([^)#:]+[^)]*)\)", README)}
    for link in sorted(linked):
        path = link.rstrip("/")
        assert path in names or any(n.startswith(path + "/") for n in names), f"README links {link}"


@pytest.mark.slow
def test_the_wheel_has_the_license_one_version_and_project_urls(built):
    _, wheel = built
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(metadata_name).decode()
        entry_points = archive.read(metadata_name.replace("METADATA", "entry_points.txt")).decode()
    assert any(n.endswith("LICENSE") and ".dist-info/" in n for n in names)
    assert f"Version: {gorpc.__version__}\n" in metadata
    assert wheel.name.startswith(f"gorpc-{gorpc.__version__}-")
    assert "Project-URL: Source, " in metadata
    for version in ("3.11", "3.12", "3.13"):
        assert f"Classifier: Programming Language :: Python :: {version}" in metadata
    assert "consul = gorpc_consul.resolver:ConsulResolver [consul]" in entry_points
    assert "prometheus = gorpc_metrics.prometheus:PrometheusMetrics [prometheus]" in entry_points
    assert {
        "gorpc/py.typed",
        "gorpc_consul/py.typed",
        "gorpc_tracing/py.typed",
        "gorpc_metrics/py.typed",
    } <= set(names)


@pytest.mark.slow
def test_make_demo_installs_only_the_core_and_uvloop(tmp_path):
    venv = tmp_path / "venv"
    demo = subprocess.run(
        ["make", "demo", f"VENV={venv}", f"PYTHON={sys.executable}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "client: hello world" in demo.stdout and "server: stopped (exit code 0)" in demo.stdout
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    ).stdout
    installed = {line.split("==")[0].lower() for line in listed.split()}
    assert installed - {"pip", "setuptools", "wheel"} == {"gorpc", "msgpack", "msgspec", "uvloop"}
