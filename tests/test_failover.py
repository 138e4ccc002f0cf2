"""Fail modes and passive health over real sockets: dead nodes are skipped, nothing runs twice."""

import asyncio
from collections import Counter

import pytest

from gorpc import Client, ConnectionFailed, Server, Service, Unavailable
from gorpc.balancers import LeastLoadedBalancer
from gorpc.codecs import MsgpackCodec
from gorpc.context import CallContext
from gorpc.envelope import pack_request_head
from gorpc.exceptions import StatusCode, error_from_status, is_unprocessed, wire_type_name
from gorpc.failover import RetryPolicy
from gorpc.frame import FrameDecoder, MessageType, encode_header
from gorpc.health import Ejections
from gorpc.testing import eventually
from gorpc.types import Node

from .conftest import free_port

SERVICE = "test.Where"


class Where(Service):
    """Answers with its label; a hanging one never answers (until its connection goes)."""

    name = SERVICE

    def __init__(self, label: str, hang: bool = False) -> None:
        self.label = label
        self.hang = hang
        self.calls = 0
        self.started = asyncio.Event()

    async def Which(self, req):
        self.calls += 1
        self.started.set()
        if self.hang:
            await asyncio.Event().wait()
        return self.label


async def start(service: Service, address: str = "127.0.0.1:0") -> Server:
    server = Server(address=address)
    server.register(service)
    await server.start()
    return server


def client_for(*addresses: str, **options) -> Client:
    plugins = {"static": {"services": {SERVICE: list(addresses)}}}
    return Client(SERVICE, plugins=plugins, **options)


@pytest.mark.asyncio
async def test_failover_skips_a_dead_node_and_ejects_it():
    dead = f"127.0.0.1:{free_port()}"
    live = Where("live")
    server = await start(live)
    try:
        async with client_for(dead, server.address) as client:
            replies = [await client.call(f"/{SERVICE}/Which") for _ in range(6)]
            assert replies == ["live"] * 6
            assert client.ejected_nodes == [dead]
    finally:
        await server.stop()
    assert live.calls == 6


@pytest.mark.asyncio
async def test_failfast_reports_the_dead_node_at_once():
    dead = f"127.0.0.1:{free_port()}"
    async with client_for(dead, fail_mode="failfast") as client:
        with pytest.raises(ConnectionFailed, match=f"cannot connect to {dead}") as info:
            await client.call(f"/{SERVICE}/Which")
    assert info.value.unprocessed


@pytest.mark.asyncio
async def test_failover_with_every_node_dead_raises_the_real_failure():
    dead = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    async with client_for(*dead) as client:
        with pytest.raises(ConnectionFailed, match="cannot connect"):
            await client.call(f"/{SERVICE}/Which")
        assert client.ejected_nodes == sorted(dead)


async def call_while_first_node_dies(idempotent: bool):
    """Node A hangs on the call, then loses its connections; returns (result or error, A, B)."""
    a, b = Where("a", hang=True), Where("b")
    server_a, server_b = await start(a), await start(b)
    try:
        async with client_for(server_a.address, server_b.address) as client:
            call = asyncio.ensure_future(client.call(f"/{SERVICE}/Which", idempotent=idempotent))
            await a.started.wait()  # round robin starts with A; the handler is running there
            for conn in list(server_a.connections):
                conn.abort()
            try:
                return await call, a, b
            except Unavailable as exc:
                return exc, a, b
    finally:
        await server_a.stop(grace=0)
        await server_b.stop()


@pytest.mark.asyncio
async def test_a_call_that_may_have_run_is_not_retried():
    outcome, a, b = await call_while_first_node_dies(idempotent=False)
    assert isinstance(outcome, ConnectionFailed) and not outcome.unprocessed
    assert "lost" in outcome.message
    assert (a.calls, b.calls) == (1, 0)


@pytest.mark.asyncio
async def test_an_idempotent_call_is_retried_on_another_node():
    outcome, a, b = await call_while_first_node_dies(idempotent=True)
    assert outcome == "b"
    assert (a.calls, b.calls) == (1, 1)


@pytest.mark.asyncio
async def test_idempotent_methods_and_services_from_the_config():
    policy = RetryPolicy("failover", 2, [f"/{SERVICE}/Which", "other.Service"])
    lost = ConnectionFailed("connection lost")
    assert policy.should_retry(lost, CallContext(f"/{SERVICE}/Which"), 0)
    assert policy.should_retry(lost, CallContext("/other.Service/Any"), 1)
    assert not policy.should_retry(lost, CallContext("/other.Service/Any"), 2)  # retries used up
    assert not policy.should_retry(lost, CallContext(f"/{SERVICE}/Other"), 0)
    refused = Unavailable("stopping", unprocessed=True)
    assert policy.should_retry(refused, CallContext(f"/{SERVICE}/Other"), 0)
    assert not RetryPolicy("failfast", 2, []).should_retry(refused, CallContext("/a.B/C"), 0)


def test_the_unprocessed_mark_is_its_own_flag_not_the_error_type():
    refused = Unavailable("server is stopping", unprocessed=True)
    assert is_unprocessed(refused) and wire_type_name(refused) is None
    echoed = error_from_status(StatusCode.UNAVAILABLE, refused.message, None, unprocessed=True)
    assert isinstance(echoed, Unavailable) and echoed.unprocessed
    handler_raised = error_from_status(
        StatusCode.UNAVAILABLE, "db down", wire_type_name(Unavailable("db down"))
    )
    assert not is_unprocessed(Unavailable("db down")) and not handler_raised.unprocessed
    # A handler's exception named "unprocessed" does not make a call retryable.
    assert not error_from_status(StatusCode.UNAVAILABLE, "x", "unprocessed").unprocessed


@pytest.mark.asyncio
async def test_an_ejected_node_comes_back_after_its_ejection():
    address = f"127.0.0.1:{free_port()}"
    other = await start(Where("other"))
    revived = None
    try:
        async with client_for(address, other.address, eject_time=0.2) as client:
            assert await client.call(f"/{SERVICE}/Which") == "other"
            assert client.ejected_nodes == [address]
            revived = await start(Where("revived"), address)
            await eventually(lambda: not client.ejected_nodes)  # 0.2 s after the failure
            labels = Counter([await client.call(f"/{SERVICE}/Which") for _ in range(10)])
            assert labels == {"revived": 5, "other": 5}
    finally:
        for server in (revived, other):
            if server is not None:
                await server.stop()


def test_repeated_failures_double_the_ejection():
    ejections = Ejections(1.0, 3.0)
    ejections.eject("a", "refused")
    assert 0.9 < ejections.remaining("a") <= 1.0
    ejections.eject("a", "refused")
    assert 1.9 < ejections.remaining("a") <= 2.0
    ejections.eject("a", "refused")
    assert 2.9 < ejections.remaining("a") <= 3.0  # capped
    ejections.restore("a")
    assert ejections.remaining("a") == 0 and ejections.ejected() == []
    nodes = [Node("a"), Node("b")]
    ejections.eject("a", "refused")
    assert ejections.available(nodes) == [Node("b")]
    ejections.eject("b", "refused")
    assert ejections.available(nodes) == nodes  # all ejected: offer all rather than none


@pytest.mark.asyncio
async def test_least_loaded_is_told_when_each_call_ends():
    balancer = LeastLoadedBalancer()
    a, b = Where("a"), Where("b")
    servers = [await start(a), await start(b)]
    try:
        async with client_for(*(s.address for s in servers), balancer=lambda: balancer) as client:
            replies = await asyncio.gather(*(client.call(f"/{SERVICE}/Which") for _ in range(40)))
        assert Counter(replies).keys() == {"a", "b"}
        assert balancer.inflight == {}
    finally:
        for server in servers:
            await server.stop()


@pytest.mark.asyncio
async def test_consistent_hash_sends_a_key_to_the_same_server():
    services = [Where(f"s{i}") for i in range(3)]
    servers = [await start(s) for s in services]
    try:
        async with client_for(*(s.address for s in servers), balancer="consistent_hash") as client:
            for user in ("alice", "bob", "carol"):
                replies = {await client.call(f"/{SERVICE}/Which", hash_key=user) for _ in range(5)}
                assert len(replies) == 1
    finally:
        for server in servers:
            await server.stop()


@pytest.mark.asyncio
async def test_a_closing_server_says_which_request_it_took_last(started_server):
    # A peer that never closes on GOAWAY (not a gorpc client) holds the stop for its grace period;
    # then the server's last frame names the last request it took.
    host, port = started_server.address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    head = pack_request_head("/helloworld.Greeter/SayHello", None, None)
    body = MsgpackCodec().encode({"msg": "hi"})
    writer.write(encode_header(MessageType.REQUEST, 7, len(head), len(body)) + head + body)
    decoder = FrameDecoder(1 << 20)
    [reply] = decoder.feed(await reader.read(4096))
    assert (reply.type, reply.request_id) == (MessageType.RESPONSE, 7)
    stopping = asyncio.ensure_future(started_server.stop(grace=0.2))
    frames = decoder.feed(await reader.read())  # to EOF
    await stopping
    writer.close()
    assert [(f.type, f.request_id) for f in frames] == [(MessageType.GOAWAY, 0), (MessageType.GOAWAY, 7)]


class Payload:
    """A request object a test can watch for being freed (plain payloads take no weak references)."""


class OpaqueCodec(MsgpackCodec):
    """Encodes any request as nil: what matters is that the client held the request object."""

    def encode(self, obj):
        return super().encode(None)


@pytest.mark.asyncio
async def test_a_call_that_failed_over_everywhere_frees_its_request_without_a_gc_pass():
    import gc
    import weakref

    from gorpc.resolvers import StaticResolver

    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    resolver = StaticResolver({"services": {SERVICE: dead}})
    async with Client(SERVICE, resolver=resolver, codec=OpaqueCodec()) as client:
        gc.disable()
        try:
            payload = Payload()
            watch = weakref.ref(payload)
            with pytest.raises(ConnectionFailed):
                await client.call(f"/{SERVICE}/Which", payload)
            del payload
            for _ in range(2):  # the loop's callbacks scheduled by the failure run and let go
                await asyncio.sleep(0)
            # No reference cycle through the failed call's frames keeps the request alive.
            assert watch() is None
        finally:
            gc.enable()
