"""Core balancers: every node gets its share."""

import asyncio
from collections import Counter

import pytest

from gorpc.balancers import RandomBalancer, RoundRobinBalancer
from gorpc.context import CallContext
from gorpc.types import Node

NODES = [Node(f"127.0.0.1:{9000 + i}") for i in range(3)]
CTX = CallContext("/a.B/C")


def test_round_robin_gives_each_node_equal_turns():
    balancer = RoundRobinBalancer()
    counts = Counter(balancer.pick(NODES, CTX).address for _ in range(300))
    assert counts == {n.address: 100 for n in NODES}


@pytest.mark.asyncio
async def test_round_robin_is_even_across_concurrent_callers():
    balancer = RoundRobinBalancer()
    picks: list[str] = []

    async def caller():
        for _ in range(50):
            picks.append(balancer.pick(NODES, CTX).address)
            await asyncio.sleep(0)

    await asyncio.gather(*(caller() for _ in range(6)))
    assert Counter(picks) == {n.address: 100 for n in NODES}


def test_round_robin_copes_with_a_shrinking_node_list():
    balancer = RoundRobinBalancer()
    for _ in range(5):
        balancer.pick(NODES, CTX)
    assert balancer.pick(NODES[:1], CTX) == NODES[0]


def test_random_reaches_every_node():
    balancer = RandomBalancer()
    counts = Counter(balancer.pick(NODES, CTX).address for _ in range(3000))
    assert set(counts) == {n.address for n in NODES}
    assert min(counts.values()) > 800  # expected 1000 each; 800 is > 8 standard deviations away
