"""The core's balancers, chosen by name (`balancer = "..."`); more come as plugins through entry points.

Each client makes one balancer per service. `nodes` is the service's current node list; the
selector hands the same list object until it changes, so balancers cache what they derive from it.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import random
from collections.abc import Sequence

from gorpc.context import CallContext
from gorpc.exceptions import InvalidRequest
from gorpc.types import Node

HASH_KEY = "hash_key"  # the per-call option consistent_hash reads: client.call(..., hash_key=user_id)
VIRTUAL_NODES = 160  # points per node on the hash ring: keys spread within a few percent of even


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


class WeightedRoundRobinBalancer:
    """Smooth weighted round robin (as nginx does it): weights 5,1,1 give a a b a c a a, not a a a a a b c.

    Weights come from each node's `weight` metadata (default 1; 0 takes a node out unless all are 0).
    """

    def __init__(self) -> None:
        self._nodes: Sequence[Node] | None = None
        self._weights: list[int] = []
        self._current: list[int] = []
        self._total = 0

    def pick(self, nodes: Sequence[Node], ctx: CallContext) -> Node:
        if nodes is not self._nodes:
            self._reset(nodes)
        current, weights = self._current, self._weights
        best = 0
        for i, weight in enumerate(weights):
            current[i] += weight
            if current[i] > current[best]:
                best = i
        current[best] -= self._total
        return nodes[best]

    def _reset(self, nodes: Sequence[Node]) -> None:
        # Keep each surviving node's running weight, so a list change does not restart the cycle.
        previous = dict(zip((n.address for n in self._nodes or ()), self._current, strict=True))
        self._nodes = nodes
        self._weights = [node_weight(n) for n in nodes]
        if not any(self._weights):
            self._weights = [1] * len(nodes)
        self._current = [previous.get(n.address, 0) for n in nodes]
        self._total = sum(self._weights)


class ConsistentHashBalancer:
    """The same key goes to the same node: a hash ring with virtual nodes, built from the sorted nodes.

    The key is a per-call option, `client.call(..., hash_key=user_id)`. Adding an eleventh node to
    ten moves about 1/11 of the keys; the order nodes arrive in does not matter.
    """

    def __init__(self, virtual_nodes: int = VIRTUAL_NODES) -> None:
        self._virtual_nodes = virtual_nodes
        self._nodes: Sequence[Node] | None = None
        self._addresses: tuple[str, ...] = ()
        self._points: list[int] = []
        self._owners: list[Node] = []

    def pick(self, nodes: Sequence[Node], ctx: CallContext) -> Node:
        key = ctx.options.get(HASH_KEY)
        if key is None:
            raise InvalidRequest(f"{ctx.method}: the consistent_hash balancer needs {HASH_KEY}=... per call")
        if nodes is not self._nodes:
            self._rebuild(nodes)
        index = bisect.bisect(self._points, _hash(_key_bytes(key))) % len(self._points)
        return self._owners[index]

    def _rebuild(self, nodes: Sequence[Node]) -> None:
        self._nodes = nodes
        addresses = tuple(sorted(n.address for n in nodes))
        if addresses == self._addresses:
            return  # same nodes, new list object: the ring stands
        by_address = {n.address: n for n in nodes}
        ring = sorted(
            (_hash(f"{address}#{i}".encode()), address)
            for address in addresses
            for i in range(self._virtual_nodes)
        )
        self._addresses = addresses
        self._points = [point for point, _ in ring]
        self._owners = [by_address[address] for _, address in ring]


class LeastLoadedBalancer:
    """Power of two choices: of two random nodes, the one with fewer calls in flight from this client."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._random = rng or random.Random()  # a seeded one makes its picks repeatable (tests)
        self.inflight: dict[str, int] = {}

    def pick(self, nodes: Sequence[Node], ctx: CallContext) -> Node:
        if len(nodes) == 1:
            node = nodes[0]
        else:
            a, b = self._random.sample(range(len(nodes)), 2)
            load = self.inflight.get
            node = nodes[a] if load(nodes[a].address, 0) <= load(nodes[b].address, 0) else nodes[b]
        self.inflight[node.address] = self.inflight.get(node.address, 0) + 1
        return node

    def done(self, node: Node, ctx: CallContext) -> None:
        left = self.inflight.get(node.address, 0) - 1
        if left > 0:
            self.inflight[node.address] = left
        else:
            self.inflight.pop(node.address, None)  # departed nodes leave no entry behind


def node_weight(node: Node) -> int:
    """A node's `weight` metadata as a non-negative integer (1 when absent or not a number)."""
    try:
        return max(int(node.metadata.get("weight", 1)), 0)
    except (TypeError, ValueError):
        return 1


def _hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _key_bytes(key: object) -> bytes:
    if isinstance(key, bytes):
        return key
    return str(key).encode()
