"""What mypy --strict sees in a program that uses gorpc: typos in call options are errors."""

import subprocess
import sys


def test_mypy_flags_a_misspelt_call_option(tmp_path):
    program = tmp_path / "caller.py"
    program.write_text(
        "from gorpc import Client\n\n"
        "async def main(client: Client) -> None:\n"
        '    await client.call("/a.B/C", {}, timout=5)\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), str(program)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stdout
    assert 'Unexpected keyword argument "timout" for "call" of "Client"' in result.stdout
