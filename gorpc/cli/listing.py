"""`gorpc list [SERVICE ...]`: the services the resolver knows, with their nodes and health."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from gorpc.cli.exits import ExitCode
from gorpc.cli.jsonio import to_json
from gorpc.cli.options import run_async, subcommand
from gorpc.config import ClientConfig
from gorpc.exceptions import ConfigError
from gorpc.plugins import make_resolver
from gorpc.types import CatalogResolver, NodeStatus

DESCRIPTION = """List the services the configured resolver knows, each with its nodes, their metadata
and their health (from Consul's checks; "unknown" where the resolver has no health, as with static).

examples:
  gorpc list --consul 127.0.0.1:8500
  gorpc list --config gorpc.toml helloworld.Greeter"""


def add_parser(commands: Any) -> None:
    parser = subcommand(commands, "list", "list services, their nodes and health", DESCRIPTION)
    parser.add_argument("services", nargs="*", metavar="SERVICE", help="only these services")
    parser.add_argument("--config", metavar="FILE", help="a gorpc TOML file; its [client] resolver is used")
    parser.add_argument("--resolver", help="resolver plugin name (default: the config's, else static)")
    parser.add_argument("--consul", metavar="HOST:PORT", help="shorthand: the consul resolver at this agent")
    parser.add_argument("--prefix", help="the consul resolver's KV prefix (default: gorpc)")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> ExitCode:
    config = _config(args)
    catalog = run_async(_catalog(config), config)
    if args.services:
        catalog = {name: catalog.get(name, []) for name in args.services}
    if args.json:
        print(to_json({name: [_as_dict(s) for s in nodes] for name, nodes in catalog.items()}))
    else:
        print(render(catalog))
    return ExitCode.OK


def _config(args: argparse.Namespace) -> ClientConfig:
    config = ClientConfig.load(args.config)
    if not (args.consul or args.prefix):
        return ClientConfig.load(config, resolver=args.resolver)
    # The shorthands are options of the consul resolver, or of consul_dns when that is asked for.
    resolver = args.resolver or "consul"
    options = dict(config.plugin_options(resolver))
    if args.consul:
        options["address"] = args.consul
    if args.prefix:
        options["prefix"] = args.prefix
    return ClientConfig.load(config, resolver=resolver, plugins={**config.plugins, resolver: options})


async def _catalog(config: ClientConfig) -> Mapping[str, Sequence[NodeStatus]]:
    made = make_resolver(config)
    try:
        resolver = made.plugin
        if not isinstance(resolver, CatalogResolver):
            raise ConfigError(f"the {config.resolver!r} resolver cannot list its services")
        return await resolver.catalog()
    finally:
        await made.close()


def _as_dict(status: NodeStatus) -> dict[str, Any]:
    return {"address": status.node.address, "health": status.health, "metadata": dict(status.node.metadata)}


def render(catalog: Mapping[str, Sequence[NodeStatus]]) -> str:
    """One block per service: its name and node count, then a line per node."""
    if not catalog:
        return "(no services)"
    lines: list[str] = []
    for name, nodes in catalog.items():
        lines.append(f"{name}  ({len(nodes)} node{'' if len(nodes) == 1 else 's'})")
        width = max((len(s.node.address) for s in nodes), default=0)
        for status in nodes:
            metadata = " ".join(f"{k}={v}" for k, v in sorted(status.node.metadata.items()))
            lines.append(f"  {status.node.address:<{width}}  {status.health:<8}  {metadata}".rstrip())
    return "\n".join(lines)
