"""`gorpc call TARGET /pkg.Service/Method [JSON]`: one call, its reply printed as JSON; a stream
call's replies printed as JSON lines as they arrive."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from gorpc import reflection
from gorpc.cli.exits import ExitCode
from gorpc.cli.jsonio import BadInput, read_request, to_json
from gorpc.cli.options import TARGET_HELP, add_client_arguments, make_client, run_async, subcommand
from gorpc.cli.pymodule import request_type
from gorpc.client import Client
from gorpc.context import CallContext
from gorpc.kinds import MethodKind
from gorpc.types import Next

DESCRIPTION = """Call a method and print its reply as JSON (bytes as base64).

examples:
  gorpc call 127.0.0.1:8000 /helloworld.Greeter/SayHello '{"msg": "hi"}'
  echo '{"msg": "hi"}' | gorpc call helloworld.Greeter /helloworld.Greeter/SayHello - --config gorpc.toml
  gorpc call 127.0.0.1:8000 /routeguide.RouteGuide/ListFeatures '{"lo": [0, 0], "hi": [9, 9]}'
  printf '[1, 2]\n[3, 4]\n' | gorpc call 127.0.0.1:8000 /routeguide.RouteGuide/RecordRoute \\
      --requests-from-stdin

A streaming method's kind is asked of the server's reflection service; its replies are printed one
JSON line each, as they arrive. With --requests-from-stdin each line of standard input is one JSON
request of the request stream (client-streaming and bidirectional methods). When the method
declares a request type, each request is checked against its schema here, before it is sent."""


def add_parser(commands: Any) -> None:
    parser = subcommand(commands, "call", "call a method and print its reply as JSON", DESCRIPTION)
    parser.add_argument("target", help=TARGET_HELP)
    parser.add_argument("method", help="the method path, /<package.Service>/<Method>")
    parser.add_argument(
        "request", nargs="?", help="the request as JSON; - reads standard input, @FILE a file (default: null)"
    )
    add_client_arguments(parser)
    parser.add_argument("--compact", action="store_true", help="print the reply on one line")
    parser.add_argument(
        "--requests-from-stdin", action="store_true",
        help="send standard input's lines, one JSON request each, as the request stream",
    )  # fmt: skip
    parser.add_argument(
        "--stream", action="store_true",
        help="read the replies as a stream (server-streaming) without asking the server's reflection",
    )  # fmt: skip
    parser.add_argument("--show-metadata", action="store_true", help="print the reply's metadata on stderr")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> ExitCode:
    if not args.method.startswith("/") or args.method.count("/") != 2:
        print(
            f"gorpc call: {args.method!r} is not a method path like /helloworld.Greeter/SayHello",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    if args.requests_from_stdin and args.request is not None:
        print("gorpc call: give a request or --requests-from-stdin, not both", file=sys.stderr)
        return ExitCode.USAGE
    request = None if args.requests_from_stdin else read_request(args.request)
    metadata = run_async(_call(args, request))
    if args.show_metadata:
        print(to_json(metadata, compact=True), file=sys.stderr)
    return ExitCode.OK


async def _call(args: argparse.Namespace, request: Any) -> dict[str, Any]:
    """Make the call, printing its reply or replies; returns the response metadata."""
    seen: dict[str, Any] = {}

    async def keep_reply_metadata(ctx: CallContext, req: Any, call_next: Next) -> Any:
        try:
            return await call_next(ctx, req)
        finally:
            seen.update(ctx.response_metadata)

    async with make_client(args, interceptors=[keep_reply_metadata]) as client:
        metadata = dict(args.metadata)
        described = await _described(client, args.method, metadata)
        kind = MethodKind(described.get("kind", "unary")) if described else MethodKind.UNARY
        declared = request_type(described) if described else None  # checked here, before sending
        if args.requests_from_stdin:
            requests = _stdin_lines(declared, args.method)
            replies = client.stream(args.method, requests=requests, metadata=metadata)
        elif args.stream or kind is MethodKind.SERVER_STREAMING:
            replies = client.stream(args.method, _checked(request, declared, args.method), metadata=metadata)
        else:
            reply = await client.call(
                args.method, _checked(request, declared, args.method), metadata=metadata
            )
            print(to_json(reply, compact=args.compact))
            return seen
        async with replies:
            async for reply in replies:
                print(to_json(reply, compact=True), flush=True)
        seen.update(replies.response_metadata)
    return seen


async def _described(client: Client, path: str, metadata: dict[str, str]) -> dict[str, Any] | None:
    """The method as the server's reflection describes it (kind, schemas); None if it cannot say."""
    service, name = path.split("/")[1:]
    try:
        described = await client.call(f"/{reflection.NAME}/Describe", service, metadata=metadata)
    except Exception:  # reflection is off (--stream says what it cannot), or the call will fail anyway
        return None
    for method in described[0]["methods"] if described else ():
        if method["name"] == name:
            return method  # type: ignore[no-any-return]
    return None


def _checked(request: Any, declared: Any, path: str, where: str = "the request") -> Any:
    """`request` as the method's declared request type, or BadInput saying what does not match.
    The typed value is what gets sent: a datetime or bytes field then travels in its own form."""
    if declared is None:
        return request
    try:
        return msgspec.json.decode(msgspec.json.encode(request), type=declared)
    except msgspec.ValidationError as exc:
        raise BadInput(f"{where} does not match the request schema of {path}: {exc}") from None


async def _stdin_lines(declared: Any, path: str) -> AsyncIterator[Any]:
    """Standard input's lines, each one JSON request, checked against the declared type if there is
    one; blank lines are skipped."""
    number = 0
    while line := await asyncio.to_thread(sys.stdin.readline):
        number += 1
        if line.strip():
            try:
                request = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadInput(f"standard input line {number} is not valid JSON: {exc}") from exc
            yield _checked(request, declared, path, f"standard input line {number}")
