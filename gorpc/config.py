"""Frozen, validated configuration for servers and clients.

A TOML file and keyword arguments produce the same objects; keywords override the file, and
keyword plugin options (`plugins={"consul": {...}}`) merge into the file's, option by option:

    [server]                      # ServerConfig fields
    address = "127.0.0.1:8000"
    [client]                      # ClientConfig fields
    balancer = "round_robin"
    [plugins.static]              # options for the plugin called "static", shared by both roles
    services = { "helloworld.Greeter" = ["127.0.0.1:8000"] }
"""

from __future__ import annotations

import dataclasses
import os
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Self, TypeVar, cast

from gorpc import plugins
from gorpc.address import parse_address
from gorpc.compression import CHOICES as COMPRESSION_CHOICES
from gorpc.exceptions import ConfigError
from gorpc.failover import FAIL_MODES
from gorpc.option_types import check_option, field_types
from gorpc.stream import Window

DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024
MAX_FRAME_LENGTH = 0xFFFFFFFF  # head + body length fields are uint32 (so are stream windows)

ConfigSource = str | os.PathLike[str] | Mapping[str, Any] | None
T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class _CommonConfig:
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    compression: str = "none"
    compression_threshold: int = 1024  # bodies shorter than this are sent uncompressed
    heartbeat_interval: float = 10.0  # ping a connection idle this long
    heartbeat_timeout: float = 30.0  # drop a connection silent this long
    # Each stream's receive window: messages (and their bytes) the peer may send before we read them.
    stream_window_messages: int = 1024
    stream_window_bytes: int = 256 * 1024

    @property
    def stream_window(self) -> Window:
        """This side's receive window for each stream; never more bytes than `max_message_size`,
        since a sender's frames stay within half the window (docs/protocol.md, "Streams")."""
        return Window(self.stream_window_messages, min(self.stream_window_bytes, self.max_message_size))

    uvloop: bool = True  # used when installed
    resolver: Any = "static"  # a name, or a ResolverPlugin object
    tracer: Any = "noop"  # a name, or a TracingPlugin object; "noop": no tracing work at all
    metrics: Any = "none"  # a name, or a MetricsPlugin object; "none": nothing recorded
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    plugins: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(0 < self.max_message_size <= MAX_FRAME_LENGTH, "max_message_size must be 1..4294967295")
        _require(self.compression_threshold >= 0, "compression_threshold must be >= 0")
        _require(
            0 < self.stream_window_messages <= MAX_FRAME_LENGTH,
            "stream_window_messages must be 1..4294967295",
        )
        _require(
            0 < self.stream_window_bytes <= MAX_FRAME_LENGTH, "stream_window_bytes must be 1..4294967295"
        )
        _require(self.heartbeat_interval > 0, "heartbeat_interval must be > 0")
        _require(
            self.heartbeat_timeout > self.heartbeat_interval,
            "heartbeat_timeout must be greater than heartbeat_interval",
        )
        _require((self.tls_cert is None) == (self.tls_key is None), "tls_cert and tls_key go together")
        _require(self.compression in COMPRESSION_CHOICES, f"compression must be one of {COMPRESSION_CHOICES}")
        _check_plugin(plugins.RESOLVERS, self.resolver)
        _check_plugin(plugins.TRACERS, self.tracer)
        _check_plugin(plugins.METRICS, self.metrics)
        # Frozen all the way down, so a config shared by many objects cannot be changed by one.
        frozen = {name: MappingProxyType(dict(opts)) for name, opts in self.plugins.items()}
        object.__setattr__(self, "plugins", MappingProxyType(frozen))

    def plugin_options(self, name: str) -> Mapping[str, Any]:
        """The [plugins.<name>] table, empty if the config has none."""
        return self.plugins.get(name, MappingProxyType({}))

    @classmethod
    def load(cls, source: ConfigSource | _CommonConfig = None, /, **overrides: Any) -> Self:
        """Build from a TOML file, a parsed mapping or a config object, and keyword overrides.

        Keywords override the source; `plugins=` merges into the source's plugin tables, per
        plugin and per option. Every value is checked against its option's type.
        """
        if isinstance(source, cls):
            section = {f.name: getattr(source, f.name) for f in dataclasses.fields(source)}
        else:
            data = _read(source)
            section = dict(data.get(cls._section, {}))
            section["plugins"] = merge_plugins(data.get("plugins", {}), section.get("plugins", {}))
        given = {k: v for k, v in overrides.items() if v is not None}
        if "plugins" in given:
            given["plugins"] = merge_plugins(section.get("plugins", {}), given["plugins"])
        section.update(given)
        return from_table(cls, cls._section, section)

    _section = ""


@dataclass(frozen=True, kw_only=True)
class ServerConfig(_CommonConfig):
    """How a server listens, stops and registers itself."""

    _section = "server"
    address: str = "127.0.0.1:8000"
    advertise_address: str | None = None  # what the resolver registers, if not `address`
    grace: float = 5.0  # seconds in-flight calls get to finish on a graceful stop
    max_workers: int | None = None  # thread pool for plain `def` handlers (None: Python's default)
    workers: int | str = 1  # processes serving the address (see gorpc.workers); "auto": one per core
    # Registered with each service; numbers are written as strings (weight = 3 -> "3").
    metadata: Mapping[str, str | int | float] = field(default_factory=dict)
    # Per connection; further requests wait unread, which slows the client down (TCP backpressure).
    max_concurrent_calls: int = 256
    # Per connection; a stream opened beyond this is refused (UNAVAILABLE, unprocessed: retry elsewhere).
    max_concurrent_streams: int = 1024
    reflection: bool = True  # serve gorpc.Reflection, which `gorpc describe` asks what this server offers
    health: bool = True  # serve gorpc.Health, which `gorpc health` (a probe) asks
    access_log: bool = False  # one INFO line per call on the `gorpc.access` logger
    # Check each reply of a method with a declared reply type against it (a mismatch is an
    # InternalError, logged). It decodes what was encoded: about 2% of a small call.
    check_replies: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_address(self.address)
        if self.advertise_address is not None:
            parse_address(self.advertise_address)
        _require(self.grace >= 0, "grace must be >= 0")
        _require(self.max_workers is None or self.max_workers > 0, "max_workers must be > 0")
        _require(
            self.workers == "auto" or (isinstance(self.workers, int) and self.workers >= 1),
            'workers must be >= 1 or "auto"',
        )
        _require(self.max_concurrent_calls > 0, "max_concurrent_calls must be > 0")
        _require(self.max_concurrent_streams > 0, "max_concurrent_streams must be > 0")
        object.__setattr__(self, "metadata", MappingProxyType({k: str(v) for k, v in self.metadata.items()}))

    @property
    def worker_count(self) -> int:
        """How many processes serve: `workers`, with "auto" meaning one per core."""
        return (os.cpu_count() or 1) if self.workers == "auto" else int(self.workers)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A server TLS context from the PEM files, or None without `tls_cert`."""
        if self.tls_cert is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=self.tls_ca)
        context.load_cert_chain(self.tls_cert, self.tls_key)
        if self.tls_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED  # a CA for clients means: clients must show a cert
        return context


@dataclass(frozen=True, kw_only=True)
class ClientConfig(_CommonConfig):
    """How a client finds servers and makes calls."""

    _section = "client"
    target: str | None = None  # host:port, unix:/path, a service name, or None: resolve per call
    codec: Any = "msgpack"  # a name, or a Codec object
    balancer: Any = "round_robin"  # a name, or a zero-argument Balancer factory
    timeout: float | None = None  # default per-call timeout in seconds
    connect_timeout: float = 5.0
    connections_per_host: int = 1  # connections to each address; calls go to the least busy
    watch_expiry: float = 300.0  # stop watching a service no call used for this long (seconds)
    tls: bool = False  # TLS with the system's CAs (implied by tls_ca / tls_cert)
    fail_mode: str = "failover"  # or "failfast": see gorpc.failover
    retries: int = 2  # failover: further nodes tried after the first
    idempotent: tuple[str, ...] = ()  # methods ("/pkg.Service/Method") or services safe to run twice
    # Calls made while handling a call inherit its remaining deadline and are cancelled with it.
    propagate: bool = True
    eject_time: float = 1.0  # a node whose connection fails sits out this long, doubling per failure
    eject_time_max: float = 30.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_plugin(plugins.CODECS, self.codec)
        _check_plugin(plugins.BALANCERS, self.balancer)
        _require(self.timeout is None or self.timeout > 0, "timeout must be > 0")
        _require(self.connect_timeout > 0, "connect_timeout must be > 0")
        _require(1 <= self.connections_per_host <= 64, "connections_per_host must be 1..64")
        _require(self.watch_expiry > 0, "watch_expiry must be > 0")
        _require(self.fail_mode in FAIL_MODES, f"fail_mode must be one of {FAIL_MODES}")
        _require(self.retries >= 0, "retries must be >= 0")
        _require(0 < self.eject_time <= self.eject_time_max, "eject_time must be > 0 and <= eject_time_max")
        _require(
            not isinstance(self.idempotent, str), "idempotent is a list of method paths or service names"
        )
        object.__setattr__(self, "idempotent", tuple(self.idempotent))

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context, or None when TLS is not asked for."""
        if not (self.tls or self.tls_ca or self.tls_cert):
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.tls_ca)
        if self.tls_cert is not None:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        return context


def from_table(cls: type[T], table: str, options: Mapping[str, Any]) -> T:
    """The dataclass `cls` built from the config table `[table]` (for plugins' options too).

    An unknown key raises ConfigError listing the known ones; a value not of its option's declared
    type raises naming the option, the type and the value; so does a value `cls` refuses.
    """
    if not isinstance(options, Mapping):
        raise ConfigError(f"[{table}] must be a table of options, got {type(options).__name__}")
    declared = field_types(cast(type, cls))
    unknown = sorted(set(options) - set(declared))
    if unknown:
        raise ConfigError(f"unknown [{table}] option(s) {unknown}; known: {sorted(declared)}")
    for name, value in options.items():
        check_option(table, name, value, declared[name])
    try:
        return cls(**options)
    except ConfigError as exc:
        message = str(exc)
        if type(exc) is not ConfigError or message.startswith("["):  # says what it is about already
            raise
        raise ConfigError(f"[{table}] {message}") from exc
    except TypeError as exc:
        raise ConfigError(f"invalid [{table}] configuration: {exc}") from exc


def merge_plugins(base: Any, extra: Any) -> Any:
    """`extra`'s plugin tables merged into `base`'s, option by option (extra wins)."""
    if not _is_table_of_tables(base) or not _is_table_of_tables(extra):
        return extra  # not tables of options: from_table names the mistake
    merged = {name: dict(options) for name, options in base.items()}
    for name, options in extra.items():
        merged.setdefault(name, {}).update(options)
    return merged


def _is_table_of_tables(value: Any) -> bool:
    return isinstance(value, Mapping) and all(isinstance(v, Mapping) for v in value.values())


def _read(source: ConfigSource | _CommonConfig) -> Mapping[str, Any]:
    if isinstance(source, _CommonConfig):
        raise ConfigError(f"a {type(source).__name__} cannot configure this role")
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return source
    path = Path(source)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {str(path)!r} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from exc


def _check_plugin(group: str, value: Any) -> None:
    if isinstance(value, str):
        plugins.check(group, value)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
