"""`gorpc health TARGET [SERVICE]`: is the server (or one of its services) serving? For probes."""

from __future__ import annotations

import argparse
from typing import Any

from gorpc import serving
from gorpc.cli.exits import ExitCode
from gorpc.cli.options import TARGET_HELP, add_client_arguments, make_client, run_async, subcommand

DESCRIPTION = """Ask a server's built-in gorpc.Health service whether it is serving: prints SERVING,
NOT_SERVING or UNKNOWN, and exits 0 only for SERVING (6 otherwise; 4 if nothing answered). Without
SERVICE, the status of the server as a whole. A graceful stop turns every status NOT_SERVING.

As a Kubernetes exec probe:
  livenessProbe:
    exec: {command: ["gorpc", "health", "127.0.0.1:8000", "--timeout", "1"]}

examples:
  gorpc health 127.0.0.1:8000
  gorpc health 127.0.0.1:8000 helloworld.Greeter
  gorpc health 127.0.0.1:8000 --watch      # each change, one line each, until the server stops"""


def add_parser(commands: Any) -> None:
    parser = subcommand(commands, "health", "is a server serving? exit 0 if so (a probe)", DESCRIPTION)
    parser.add_argument("target", help=TARGET_HELP)
    parser.add_argument("service", nargs="?", default="", help="one service (default: the whole server)")
    add_client_arguments(parser)
    parser.add_argument("--watch", action="store_true", help="print each change until the server stops")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> ExitCode:
    status = run_async(_watch(args) if args.watch else _check(args))
    return ExitCode.OK if status is serving.ServingStatus.SERVING else ExitCode.NOT_SERVING


async def _check(args: argparse.Namespace) -> serving.ServingStatus:
    async with make_client(args) as client:
        status = await client.call(
            f"/{serving.NAME}/Check",
            args.service,
            metadata=dict(args.metadata),
            reply_type=serving.ServingStatus,
        )
    print(status.value)
    return status  # type: ignore[no-any-return]


async def _watch(args: argparse.Namespace) -> serving.ServingStatus:
    """Print each status as it comes; the last one decides the exit code."""
    status = serving.ServingStatus.UNKNOWN
    async with make_client(args) as client:
        path = f"/{serving.NAME}/Watch"
        replies = client.stream(
            path,
            args.service,
            metadata=dict(args.metadata),
            timeout=None,  # a watch lasts as long as the server
            reply_type=serving.ServingStatus,
        )
        async with replies:
            async for status in replies:
                print(status.value, flush=True)
    return status
