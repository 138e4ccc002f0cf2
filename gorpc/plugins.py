"""Finding plugins by name through entry points, and knowing which ones are ours to close.

Plugins are objects; entry points only find a plugin's factory by its name. An unknown name is an
error that lists the names that are installed; nothing silently falls back to a default. A config
field holds a name or an object: `Owned` says which, once, so that only what was made from a name
is closed by the server or client that made it (an object passed in may be shared: its owner
closes it).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from gorpc.exceptions import ConfigError, PluginNotFound
from gorpc.types import Balancer, Codec, MetricsPlugin, Registry, Resolver, ResolverPlugin, TracingPlugin

if TYPE_CHECKING:
    from gorpc.config import _CommonConfig

T = TypeVar("T")

CODECS = "gorpc.codecs"
RESOLVERS = "gorpc.resolvers"
BALANCERS = "gorpc.balancers"
TRACERS = "gorpc.tracers"
METRICS = "gorpc.metrics"


@functools.cache
def _group(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def names(group: str) -> list[str]:
    """The plugin names installed in `group`, sorted."""
    return sorted(_group(group))


def check(group: str, name: str) -> None:
    """Raise PluginNotFound unless a plugin called `name` is installed in `group`."""
    if name not in _group(group):
        raise PluginNotFound(group, name, names(group))


def load(group: str, name: str) -> Any:
    """The object the entry point `name` of `group` names (usually a class or factory).

    A plugin whose dependencies are missing raises ConfigError saying which extra installs them.
    """
    check(group, name)
    entry = _group(group)[name]
    try:
        return entry.load()
    except ImportError as exc:
        raise ConfigError(f"{group} plugin {name!r} cannot be imported: {exc}{_install_hint(entry)}") from exc


def _install_hint(entry: EntryPoint) -> str:
    """How to install what the plugin needs: the extra its entry point declares."""
    if not entry.extras:
        return ""
    dist = entry.dist.name if entry.dist is not None else "gorpc"
    return f"; install its extra: pip install '{dist}[{','.join(entry.extras)}]'"


def make_codec(value: Any) -> Codec:
    """A codec from a name or an object."""
    codec = load(CODECS, value)() if isinstance(value, str) else value
    if not 0 < codec.id < 256:
        raise ConfigError(f"codec {codec.name!r} has id {codec.id}; ids are 1..255")
    return codec  # type: ignore[no-any-return]


def all_codecs() -> dict[int, Codec]:
    """Every installed codec by its wire id: a server answers in whichever one the caller used."""
    codecs: dict[int, Codec] = {}
    for name in names(CODECS):
        codec = make_codec(name)
        if codec.id in codecs:
            raise ConfigError(f"codecs {codecs[codec.id].name!r} and {name!r} share id {codec.id}")
        codecs[codec.id] = codec
    return codecs


@dataclass(frozen=True)
class Owned(Generic[T]):
    """A plugin object, and whether it was made here from its name (and so is ours to close)."""

    plugin: T
    owned: bool

    async def close(self) -> None:
        """Close the plugin if it is ours: `close()` awaited, or run in a thread if it blocks
        (tracing exporters flush synchronously)."""
        close = getattr(self.plugin, "close", None) if self.owned else None
        if close is None:
            return
        if inspect.iscoroutinefunction(close):
            await close()
        else:
            await asyncio.to_thread(close)


def _made(group: str, config: _CommonConfig, value: Any) -> Owned[Any]:
    """The one place that tells a plugin name (make it, with its options; ours) from an object."""
    if isinstance(value, str):
        return Owned(load(group, value)(config.plugin_options(value)), owned=True)
    return Owned(value, owned=False)


def make_resolver(config: _CommonConfig) -> Owned[ResolverPlugin]:
    """The resolver plugin a config names (made with its [plugins.<name>] options), or the object."""
    return _made(RESOLVERS, config, config.resolver)


def make_tracing(config: _CommonConfig) -> Owned[TracingPlugin]:
    """The tracing plugin a config names (made with its [plugins.<name>] options), or the object."""
    return _made(TRACERS, config, config.tracer)


def make_metrics(config: _CommonConfig) -> Owned[MetricsPlugin]:
    """The metrics plugin a config names (made with its [plugins.<name>] options), or the object."""
    return _made(METRICS, config, config.metrics)


def as_registry(plugin: ResolverPlugin, config: _CommonConfig) -> Registry:
    """The plugin in its server-side role; ConfigError if it only resolves."""
    if not isinstance(plugin, Registry):
        raise ConfigError(f"resolver {_name(config.resolver)} cannot register servers: it only resolves")
    return plugin


def as_resolver(plugin: ResolverPlugin, config: _CommonConfig) -> Resolver:
    """The plugin in its client-side role; ConfigError if it only registers."""
    if not isinstance(plugin, Resolver):
        raise ConfigError(f"resolver {_name(config.resolver)} cannot resolve services: it only registers")
    return plugin


def _name(value: Any) -> str:
    return repr(value) if isinstance(value, str) else type(value).__name__


def make_balancer_factory(value: Any) -> Callable[[], Balancer]:
    """A zero-argument factory: each service gets its own balancer (its own round-robin turn, say)."""
    return load(BALANCERS, value) if isinstance(value, str) else value  # type: ignore[no-any-return]
