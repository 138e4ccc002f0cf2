"""`gorpc describe TARGET [SERVICE]`: the methods a server offers, from its reflection service."""

from __future__ import annotations

import argparse
from typing import Any

from gorpc import reflection
from gorpc.cli.exits import ExitCode
from gorpc.cli.jsonio import to_json
from gorpc.cli.options import TARGET_HELP, add_client_arguments, make_client, run_async, subcommand
from gorpc.cli.pymodule import python_module
from gorpc.exceptions import MethodNotFound

DESCRIPTION = """Show the services a server hosts and their methods: signatures, docstrings, and
the JSON Schemas of the request and reply types a method declares.

Every server answers this through its built-in gorpc.Reflection service, unless its config sets
reflection = false. With --python, print a Python module instead: the declared types as msgspec
Structs and an interface class per service, for a typed client without the server's code
(client.stub(Greeter)).

examples:
  gorpc describe 127.0.0.1:8000 helloworld.Greeter
  gorpc describe --python 127.0.0.1:8000 helloworld.Greeter > greeter_contract.py"""


def add_parser(commands: Any) -> None:
    parser = subcommand(commands, "describe", "show the methods a server offers", DESCRIPTION)
    parser.add_argument("target", help=TARGET_HELP)
    parser.add_argument("service", nargs="?", help="only this service (default: all of them)")
    add_client_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the description as JSON")
    parser.add_argument(
        "--python", action="store_true", help="print a Python module: the types and an interface class"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> ExitCode:
    services = run_async(_describe(args))
    if args.python:
        print(python_module(services), end="")
    else:
        print(to_json(services) if args.json else render(services))
    return ExitCode.OK


async def _describe(args: argparse.Namespace) -> list[dict[str, Any]]:
    async with make_client(args) as client:
        try:
            return await client.call(  # type: ignore[no-any-return]
                f"/{reflection.NAME}/Describe", args.service, metadata=dict(args.metadata)
            )
        except MethodNotFound as exc:
            raise MethodNotFound(
                f"{args.target} does not answer {reflection.NAME} (is reflection = false in its config?): "
                f"{exc.message}"
            ) from exc


def render(services: list[dict[str, Any]]) -> str:
    """The description as text: each service, then each method's signature, docstring and schemas
    (the types they refer to listed once, after the service's methods)."""
    lines: list[str] = []
    for service in services:
        lines.append(service["name"])
        lines.extend(f"    {line}" for line in service["doc"].splitlines())
        types: dict[str, Any] = {}
        for method in service["methods"]:
            runs = "" if method["runs"] == "async" else "  (runs in a thread)"
            kind = method.get("kind", "unary")  # a server from before streams says nothing: unary
            shown = "" if kind == "unary" else f"  [{kind}]"
            lines.append(f"  {method['name']}{method['signature']}{shown}{runs}")
            lines.extend(f"      {line}" for line in method["doc"].splitlines())
            for side in ("request", "reply"):
                schema = dict(method.get(f"{side}_schema") or {})  # none from an untyped method
                types.update(schema.pop("$defs", {}))
                if schema:
                    lines.append(f"      {side} schema: {to_json(schema, compact=True)}")
        if types:
            lines.append("  types ($defs):")
            lines.extend(f"    {name}: {to_json(types[name], compact=True)}" for name in sorted(types))
        lines.append("")
    return "\n".join(lines).rstrip() or "(no services)"
