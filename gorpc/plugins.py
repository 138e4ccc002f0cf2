"""Finding plugins by name through entry points.

Plugins are objects; entry points only find a plugin's factory by its name. An unknown name is an
error that lists the names that are installed; nothing silently falls back to a default.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from gorpc.exceptions import ConfigError, PluginNotFound
from gorpc.types import Balancer, Codec, ResolverPlugin, TracingPlugin

if TYPE_CHECKING:
    from gorpc.config import _CommonConfig

CODECS = "gorpc.codecs"
RESOLVERS = "gorpc.resolvers"
BALANCERS = "gorpc.balancers"
TRACERS = "gorpc.tracers"


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


def make_resolver(config: _CommonConfig) -> ResolverPlugin:
    """The resolver a config names, made with its [plugins.<name>] options; an object passes through."""
    value = config.resolver
    if not isinstance(value, str):
        return value  # type: ignore[no-any-return]
    return load(RESOLVERS, value)(config.plugin_options(value))  # type: ignore[no-any-return]


def make_balancer_factory(value: Any) -> Callable[[], Balancer]:
    """A zero-argument factory: each service gets its own balancer (its own round-robin turn, say)."""
    return load(BALANCERS, value) if isinstance(value, str) else value  # type: ignore[no-any-return]


async def close_tracing(tracing: TracingPlugin) -> None:
    """Flush and close a tracing plugin that has `close()`; exporters block, so in a thread."""
    close = getattr(tracing, "close", None)
    if close is not None:
        await asyncio.to_thread(close)


def make_tracing(config: _CommonConfig) -> TracingPlugin:
    """The tracing plugin a config names, made with its [plugins.<name>] options."""
    value = config.tracer
    if not isinstance(value, str):
        return value  # type: ignore[no-any-return]
    return load(TRACERS, value)(config.plugin_options(value))  # type: ignore[no-any-return]
