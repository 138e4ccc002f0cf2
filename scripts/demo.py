"""The hello-world demo: starts examples/helloworld/server.py on a free port, runs the client
against it, prints the reply, then stops the server with SIGTERM (a graceful stop)."""

import subprocess
import sys
from pathlib import Path

from gorpc.testing import server_process

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "helloworld"


def main() -> int:
    with server_process([str(EXAMPLE / "server.py"), "--address", "127.0.0.1:0"]) as server:
        print(f"server: listening on {server.address}")
        client = subprocess.run(
            [sys.executable, str(EXAMPLE / "client.py"), "--target", server.address],
            capture_output=True,
            text=True,
            timeout=30,
        )
        print(f"client: {client.stdout.strip()}{client.stderr.strip()}")
        code = server.stop()
        print(f"server: stopped (exit code {code})")
    return client.returncode or code


if __name__ == "__main__":
    sys.exit(main())
