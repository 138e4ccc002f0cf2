"""The core's balancers. Each picks one node per call; more come as plugins through entry points."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from gorpc.context import CallContext
from gorpc.types import Node


class RandomBalancer:
    """Uniformly random: no shared state, fine for many clients."""

    def __init__(self) -> None:
        self._random = random.Random()

    def pick(self, nodes: Sequence[Node], ctx: CallContext) -> Node:
        return nodes[self._random.randrange(len(nodes))]


class RoundRobinBalancer:
    """Each node in turn. `next()` on a counter is atomic, so concurrent calls never share a turn."""

    def __init__(self) -> None:
        self._turn = itertools.count()

    def pick(self, nodes: Sequence[Node], ctx: CallContext) -> Node:
        return nodes[next(self._turn) % len(nodes)]
