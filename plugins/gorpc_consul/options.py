"""The `[plugins.consul]` options, validated once. `[plugins.consul_dns]` takes the same ones.

Consul's own environment variables give the defaults, as in Consul's CLI and client libraries:
`CONSUL_HTTP_ADDR` (`host:port`, or `http://` / `https://host:port`), `CONSUL_HTTP_TOKEN`,
`CONSUL_HTTP_SSL` (true: https) and `CONSUL_CACERT`. An option set in the configuration wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from gorpc.address import TcpAddress, parse_address
from gorpc.config import from_table
from gorpc.exceptions import ConfigError

MIN_SESSION_TTL = 10.0  # Consul refuses shorter session TTLs
MAX_SESSION_TTL = 86400.0


@dataclass(frozen=True, kw_only=True)
class ConsulOptions:
    """Where Consul is and how gorpc uses it. Durations are in seconds."""

    address: str = "127.0.0.1:8500"  # the local agent's HTTP API
    scheme: str = "http"  # or "https"
    tls_ca: str | None = None  # CA file to verify an https agent with (default: the system's CAs)
    token: str | None = None  # ACL token, sent with every request
    datacenter: str | None = None  # look services up in this datacenter (default: the agent's own)
    prefix: str = "gorpc"  # KV layout: <prefix>/<service>/<host:port>
    session_ttl: float = 10.0  # keys of a server that dies vanish within 2 x this
    check_interval: float = 1.0  # the agent's TCP check of each registered instance
    deregister_critical_after: float = 60.0  # the agent drops an instance critical this long
    wait: float = 30.0  # longest a blocking query is held open
    prefix_watch_after: int = 4  # services watched with a query each; the rest share one on the prefix
    stale: bool = False  # let any Consul server answer reads (faster, may lag the leader slightly)
    request_timeout: float = 5.0  # any other request to Consul
    register_retry: float = 0.0  # at server start, keep retrying an unreachable Consul this long
    dns_address: str = "127.0.0.1:8600"  # the agent's DNS interface (consul_dns resolver)
    dns_domain: str = "consul"
    dns_poll_interval: float = 1.0  # DNS has no blocking queries: how often consul_dns re-asks

    def __post_init__(self) -> None:
        _require(self.scheme in ("http", "https"), "scheme must be 'http' or 'https'")
        tcp_option(self.address, "address")
        tcp_option(self.dns_address, "dns_address")
        _require(
            MIN_SESSION_TTL <= self.session_ttl <= MAX_SESSION_TTL,
            f"session_ttl must be {MIN_SESSION_TTL:g}..{MAX_SESSION_TTL:g} seconds (Consul's limits)",
        )
        _require(
            self.prefix.strip("/") == self.prefix and self.prefix != "", "prefix must not start or end with /"
        )
        for name in ("check_interval", "wait", "request_timeout", "dns_poll_interval"):
            _require(getattr(self, name) > 0, f"{name} must be > 0")
        _require(
            self.deregister_critical_after >= 60, "deregister_critical_after must be >= 60 (Consul's minimum)"
        )
        _require(self.register_retry >= 0, "register_retry must be >= 0")
        _require(0 <= self.prefix_watch_after <= 64, "prefix_watch_after must be 0..64")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any], table: str = "plugins.consul") -> Self:
        """From a `[plugins.<name>]` table over the environment's defaults; an unknown or mistyped
        option raises, naming `table`."""
        return from_table(cls, table, {**environment_defaults(os.environ, table), **options})

    @property
    def base_url(self) -> str:
        """The agent's HTTP API root."""
        return f"{self.scheme}://{self.address}/v1"


TRUE_WORDS = ("1", "t", "true")  # what Consul's CLI takes as true (Go's strconv.ParseBool)
FALSE_WORDS = ("0", "f", "false")


def environment_defaults(environ: Mapping[str, str], table: str) -> dict[str, Any]:
    """The options Consul's standard environment variables set."""
    defaults: dict[str, Any] = {}
    address = environ.get("CONSUL_HTTP_ADDR", "").strip()
    if address:
        scheme, sep, rest = address.partition("://")
        if sep:
            if scheme not in ("http", "https"):
                raise ConfigError(f"[{table}] CONSUL_HTTP_ADDR={address!r}: the scheme must be http or https")
            defaults["scheme"], address = scheme, rest.rstrip("/")
        defaults["address"] = address
    ssl = environ.get("CONSUL_HTTP_SSL", "").strip().lower()
    if ssl:
        if ssl not in TRUE_WORDS + FALSE_WORDS:
            raise ConfigError(f"[{table}] CONSUL_HTTP_SSL={ssl!r} is not true or false")
        if ssl in TRUE_WORDS:
            defaults["scheme"] = "https"
    for variable, option in (("CONSUL_HTTP_TOKEN", "token"), ("CONSUL_CACERT", "tls_ca")):
        value = environ.get(variable, "").strip()
        if value:
            defaults[option] = value
    return defaults


def tcp_option(value: str, name: str) -> TcpAddress:
    """An option that must be host:port, parsed."""
    try:
        address = parse_address(value)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from exc
    if not isinstance(address, TcpAddress):
        raise ConfigError(f"{name} must be host:port, not {value!r}")
    return address


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
