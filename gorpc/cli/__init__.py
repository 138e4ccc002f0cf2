"""The `gorpc` command: call, list, describe, health and serve, for poking at services without writing
a client.

gorpc call 127.0.0.1:8000 /helloworld.Greeter/SayHello '{"msg": "hi"}'
gorpc list --consul 127.0.0.1:8500
gorpc describe 127.0.0.1:8000
gorpc health 127.0.0.1:8000
gorpc serve mypkg.greeter:Greeter --address 127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gorpc import __version__
from gorpc.cli import call, describe, health, listing, serve
from gorpc.cli.exits import EXIT_CODES_HELP, ExitCode, report

COMMANDS = (call, listing, describe, health, serve)


def parser() -> argparse.ArgumentParser:
    """The whole command line: one subcommand per module in COMMANDS."""
    top = argparse.ArgumentParser(
        prog="gorpc",
        description="Call, list, describe, health-check and serve gorpc services.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"gorpc {__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (see ExitCode)."""
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return ExitCode.ERROR
    except Exception as exc:
        return report(args.command, exc)


if __name__ == "__main__":
    sys.exit(main())
