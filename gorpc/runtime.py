"""Choosing the event loop: uvloop when installed and not turned off, asyncio's otherwise."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable


def uvloop_available() -> bool:
    """Whether uvloop can be imported here."""
    return importlib.util.find_spec("uvloop") is not None


def loop_factory(use_uvloop: bool = True) -> Callable[[], asyncio.AbstractEventLoop]:
    """A factory for `asyncio.Runner(loop_factory=...)`."""
    if use_uvloop and uvloop_available():
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop
