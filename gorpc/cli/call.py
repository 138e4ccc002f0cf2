"""`gorpc call TARGET /pkg.Service/Method [JSON]`: one call, its reply printed as JSON."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gorpc.cli.exits import ExitCode
from gorpc.cli.jsonio import read_request, to_json
from gorpc.cli.options import TARGET_HELP, add_client_arguments, make_client, run_async, subcommand
from gorpc.context import CallContext
from gorpc.types import Next

DESCRIPTION = """Call a method and print its reply as JSON (bytes as base64).

examples:
  gorpc call 127.0.0.1:8000 /helloworld.Greeter/SayHello '{"msg": "hi"}'
  echo '{"msg": "hi"}' | gorpc call helloworld.Greeter /helloworld.Greeter/SayHello - --config gorpc.toml"""


def add_parser(commands: Any) -> None:
    parser = subcommand(commands, "call", "call a method and print its reply as JSON", DESCRIPTION)
    parser.add_argument("target", help=TARGET_HELP)
    parser.add_argument("method", help="the method path, /<package.Service>/<Method>")
    parser.add_argument(
        "request", nargs="?", help="the request as JSON; - reads standard input, @FILE a file (default: null)"
    )
    add_client_arguments(parser)
    parser.add_argument("--compact", action="store_true", help="print the reply on one line")
    parser.add_argument("--show-metadata", action="store_true", help="print the reply's metadata on stderr")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> ExitCode:
    if not args.method.startswith("/") or args.method.count("/") != 2:
        print(
            f"gorpc call: {args.method!r} is not a method path like /helloworld.Greeter/SayHello",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    request = read_request(args.request)
    reply, metadata = run_async(_call(args, request))
    print(to_json(reply, compact=args.compact))
    if args.show_metadata:
        print(to_json(metadata, compact=True), file=sys.stderr)
    return ExitCode.OK


async def _call(args: argparse.Namespace, request: Any) -> tuple[Any, dict[str, Any]]:
    seen: dict[str, Any] = {}

    async def keep_reply_metadata(ctx: CallContext, req: Any, call_next: Next) -> Any:
        try:
            return await call_next(ctx, req)
        finally:
            seen.update(ctx.response_metadata)

    async with make_client(args, interceptors=[keep_reply_metadata]) as client:
        reply = await client.call(args.method, request, metadata=dict(args.metadata))
    return reply, seen
