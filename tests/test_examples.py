"""The examples and the README's demo command run, so they cannot rot."""

import subprocess
import sys
from pathlib import Path

from gorpc.testing import server_process

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "helloworld"


def test_helloworld_server_and_client():
    with server_process([str(HELLO / "server.py"), "--address", "127.0.0.1:0"]) as server:
        client = subprocess.run(
            [sys.executable, str(HELLO / "client.py"), "--target", server.address],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (client.returncode, client.stdout, client.stderr) == (0, "hello world\n", "")
        assert server.stop() == 0


def test_demo_script():
    demo = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")], capture_output=True, text=True, timeout=120
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "client: hello world" in demo.stdout
    assert "server: stopped (exit code 0)" in demo.stdout
