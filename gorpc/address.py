"""Parsing the addresses servers listen on and clients dial: `host:port`, `[v6]:port`, `unix:/path`,
and `memory:NAME` (in-process, see `gorpc.memory`)."""

from __future__ import annotations

from dataclasses import dataclass

from gorpc.exceptions import ConfigError

UNIX_PREFIX = "unix:"
MEMORY_PREFIX = "memory:"


@dataclass(frozen=True)
class TcpAddress:
    """`host:port` (IPv6 hosts are written `[::1]:port`)."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class UnixAddress:
    """`unix:/path/to/socket`."""

    path: str

    def __str__(self) -> str:
        return f"{UNIX_PREFIX}{self.path}"


@dataclass(frozen=True)
class MemoryAddress:
    """`memory:NAME`: a server in this process, reached without a socket."""

    name: str

    def __str__(self) -> str:
        return f"{MEMORY_PREFIX}{self.name}"


Address = TcpAddress | UnixAddress | MemoryAddress


def is_address(target: str) -> bool:
    """True for something to dial directly; False for a service name to resolve."""
    return target.startswith(UNIX_PREFIX) or ":" in target


def parse_address(text: str) -> Address:
    """Parse a listen or dial address; raises ConfigError naming what is wrong."""
    if text.startswith(MEMORY_PREFIX):
        name = text[len(MEMORY_PREFIX) :]
        if not name:
            raise ConfigError(f"memory address {text!r} has no name")
        return MemoryAddress(name)
    if text.startswith(UNIX_PREFIX):
        path = text[len(UNIX_PREFIX) :]
        if not path:
            raise ConfigError(f"unix address {text!r} has no path")
        return UnixAddress(path)
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ConfigError(f"address {text!r} is not host:port or unix:/path")
    port = int(port_text)
    if port > 65535:
        raise ConfigError(f"address {text!r} has port {port} out of range")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ConfigError(f"address {text!r} has no host")
    return TcpAddress(host, port)
