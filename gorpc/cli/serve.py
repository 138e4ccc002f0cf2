"""`gorpc serve module:ServiceClass [...]`: a server for service classes, without writing its script."""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import os
import sys
from typing import Any

from gorpc.cli.exits import ExitCode
from gorpc.cli.options import subcommand
from gorpc.exceptions import ConfigError
from gorpc.server import Server
from gorpc.service import Service

DESCRIPTION = """Run a server for one or more service classes until SIGINT or SIGTERM (then stop gracefully).

Each SERVICE is module:Name, where Name is a Service subclass (made with no arguments), a Service
instance, or a function returning one. The current directory is importable, as with python -m.

With --workers N, N processes serve the address (forked copies of this one, services and all) under
a supervisor that hands them connections in turn, restarts any that exits, and registers the
address once.

example:
  gorpc serve mypkg.greeter:Greeter --address 127.0.0.1:8000 --config gorpc.toml --workers auto"""


def add_parser(commands: Any) -> None:
    parser = subcommand(commands, "serve", "run a server for service classes", DESCRIPTION)
    parser.add_argument("services", nargs="+", metavar="SERVICE", help="module:Name of a service to host")
    parser.add_argument(
        "--address", help="host:port or unix:/path (default: the config's, else 127.0.0.1:8000)"
    )
    parser.add_argument(
        "--config", metavar="FILE", help="a gorpc TOML file; its [server] and [plugins.*] apply"
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        help='worker processes serving the address ("auto": one per core); default: the config\'s, else 1',
    )
    parser.add_argument("--no-reflection", action="store_true", help="do not answer gorpc describe")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> ExitCode:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    services = [load_service(spec) for spec in args.services]
    server = Server(
        address=args.address,
        config=args.config,
        reflection=False if args.no_reflection else None,
        workers=_workers(args.workers),
    )
    server.register(*services)
    server.serve()
    return ExitCode.OK


def _workers(text: str | None) -> int | str | None:
    if text is None or text == "auto":
        return text
    if not text.isdigit():
        raise ConfigError(f'--workers {text!r}: a number of processes, or "auto"')
    return int(text)


def load_service(spec: str) -> Service:
    """The service `module:Name` names; raises ConfigError saying what is wrong with it."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"{spec!r} is not module:Name (e.g. mypkg.greeter:Greeter)")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(f"module {module_name!r} has no {attribute!r}") from None
    if inspect.isclass(target) and not issubclass(target, Service):
        raise ConfigError(f"{spec} is a class but not a gorpc.Service")
    service = target() if callable(target) and not isinstance(target, Service) else target
    if not isinstance(service, Service):
        raise ConfigError(f"{spec} gave {service!r}, not a gorpc.Service")
    return service
