"""Arguments `call` and `describe` share: where to call, and how."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from gorpc.cli.exits import EXIT_CODES_HELP
from gorpc.client import Client
from gorpc.config import ClientConfig
from gorpc.runtime import loop_factory

T = TypeVar("T")

TARGET_HELP = "host:port, unix:/path, or a service name found through the configured resolver"


def subcommand(commands: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """A subcommand parser with the house style: summary in `gorpc --help`, exit codes in its own."""
    return commands.add_parser(  # type: ignore[no-any-return]
        name,
        help=summary,
        description=description,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="a gorpc TOML file; its [client] and [plugins.*] apply"
    )
    parser.add_argument("--timeout", type=_positive, metavar="SECONDS", help="deadline for the call")
    parser.add_argument(
        "--metadata", "-m", type=_pair, action="append", default=[], metavar="KEY=VALUE",
        help="request metadata; repeat for more (e.g. -m 'authorization=Bearer s3cret')",
    )  # fmt: skip
    parser.add_argument("--codec", help="payload codec on the wire: msgpack (default) or json")
    parser.add_argument(
        "--tls-ca", metavar="PEM", help="use TLS, trusting this CA or self-signed certificate"
    )
    parser.add_argument("--tls-cert", metavar="PEM", help="client certificate, for servers that require one")
    parser.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")


def make_client(args: argparse.Namespace, **options: Any) -> Client:
    """A client for `args.target`, from --config and the flags (flags win)."""
    return Client(
        args.target,
        config=args.config,
        codec=args.codec,
        timeout=args.timeout,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        **options,
    )


def run_async(coro: Coroutine[Any, Any, T], config: ClientConfig | None = None) -> T:
    """Run a command's coroutine on uvloop when it is installed (and not turned off)."""
    with asyncio.Runner(loop_factory=loop_factory(config.uvloop if config else True)) as runner:
        return runner.run(coro)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value
