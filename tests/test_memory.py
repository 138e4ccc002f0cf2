"""The in-memory tier: dispatch, client and connection logic over `memory:` transports, no sockets.

The same code paths as over TCP (framing, dispatch, backpressure, GOAWAY, deadlines), driven either
through a real server or, for the client's side of the protocol, a scripted server that sends
exactly the frames a test needs.
"""

import asyncio
import time

import msgpack
import pytest
import pytest_asyncio

from gorpc import (
    CallContext,
    Client,
    ConnectionFailed,
    DeadlineExceeded,
    MethodNotFound,
    RemoteError,
    Server,
    Service,
    StatusCode,
    Unavailable,
    memory,
)
from gorpc.frame import FLAG_UNPROCESSED, FrameDecoder, MessageType, encode_header
from gorpc.testing import eventually, memory_pair

from .conftest import Greeter

pytestmark = pytest.mark.asyncio
ECHO = "/helloworld.Greeter/Echo"


class ScriptedServer(asyncio.Protocol):
    """The server end of a memory connection, played by the test: frames in, chosen frames out."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue = asyncio.Queue()
        self.transport: memory.MemoryTransport | None = None
        self._decoder = FrameDecoder(1 << 20)

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        for frame in self._decoder.feed(data):
            self.frames.put_nowait(frame)

    def respond(self, rid: int, code: int, *, flags: int = 0, body: bytes = b"") -> None:
        head = msgpack.packb([code, None if code == 0 else "refused", None, None])
        self.transport.write(
            encode_header(MessageType.RESPONSE, rid, len(head), len(body), flags=flags, codec=1)
        )
        self.transport.write(head + body)


@pytest.fixture
def scripted():
    """A `memory:` address answered by a ScriptedServer; the test gets it once a client connects."""
    name = memory.unique_name("scripted")
    servers: list[ScriptedServer] = []

    def factory() -> ScriptedServer:
        servers.append(ScriptedServer())
        return servers[-1]

    listener = memory.listen(name, factory)
    yield f"memory:{name}", servers
    listener.close()


async def test_calls_errors_and_metadata_in_memory():
    async with memory_pair(Greeter()) as (server, client):
        assert await client.call("/helloworld.Greeter/SayHello", {"msg": "hi"}) == {"msg": "hi world"}
        replies = await asyncio.gather(*(client.call(ECHO, i) for i in range(500)))
        assert replies == list(range(500))
        with pytest.raises(RemoteError, match="ValueError"):
            await client.call("/helloworld.Greeter/Fail", 1)
        with pytest.raises(MethodNotFound):
            await client.call("/helloworld.Greeter/Nope", 1)
        context = await client.call("/helloworld.Greeter/Context", None, metadata={"user": "ada"})
        assert context["metadata"] == {"user": "ada"} and context["peer"].startswith("memory:")
        (connection,) = client.connections
        assert (connection.address, connection.state, connection.calls_in_flight) == (
            server.address,
            "open",
            0,
        )


async def test_deadline_and_cancel_in_memory(greeter):
    async with memory_pair(greeter) as (server, client):
        with pytest.raises(DeadlineExceeded, match=r"deadline of 0\.050s exceeded"):
            await client.call("/helloworld.Greeter/Sleep", 10, timeout=0.05)
        await eventually(lambda: greeter.cancellations == 1)
        call = asyncio.ensure_future(client.call("/helloworld.Greeter/Sleep", 10))
        greeter.started.clear()
        await greeter.started.wait()
        call.cancel()
        await eventually(lambda: greeter.cancellations == 2)  # the CANCEL reached the handler
        (conn,) = server.connections
        assert conn.running == 0


async def test_backpressure_in_memory():
    from .test_limits import Gate

    gate = Gate()
    limits = {"max_concurrent_calls": 2}
    async with memory_pair(gate, server_options=limits) as (server, client):
        calls = [asyncio.ensure_future(client.call("/test.Gate/Wait", b"x" * 4096)) for _ in range(200)]
        (conn,) = await _connections(server, 1)
        await eventually(lambda: gate.running == 2 and conn.reading_paused)
        await eventually(lambda: not client.connections[0].writable)  # the server stopped reading
        gate.open.set()
        assert await asyncio.gather(*calls) == [4096] * 200
        assert gate.peak == 2


async def test_a_refusal_marked_unprocessed_is_retryable_for_the_client(scripted):
    address, servers = scripted
    async with Client(address) as client:
        call = asyncio.ensure_future(client.call(ECHO, 1))
        await eventually(lambda: servers)
        request = await servers[0].frames.get()
        servers[0].respond(request.request_id, StatusCode.UNAVAILABLE, flags=FLAG_UNPROCESSED)
        with pytest.raises(Unavailable) as refused:
            await call
        assert refused.value.unprocessed


async def test_requests_past_the_last_taken_one_fail_as_unprocessed(scripted):
    address, servers = scripted
    async with Client(address) as client:
        taken = asyncio.ensure_future(client.call(ECHO, 1))
        unread = asyncio.ensure_future(client.call(ECHO, 2))
        await eventually(lambda: servers)
        first, second = await servers[0].frames.get(), await servers[0].frames.get()
        assert second.request_id > first.request_id
        # The server's last words: it took the first request only. Then it closes.
        servers[0].transport.write(encode_header(MessageType.GOAWAY, first.request_id, 0, 0))
        servers[0].transport.close()
        outcomes = await asyncio.gather(taken, unread, return_exceptions=True)
    assert isinstance(outcomes[0], ConnectionFailed) and not outcomes[0].unprocessed
    assert isinstance(outcomes[1], ConnectionFailed) and outcomes[1].unprocessed
    assert "before the server read the request" in str(outcomes[1])


async def test_a_draining_connection_closes_after_its_last_reply(scripted):
    address, servers = scripted
    async with Client(address) as client:
        call = asyncio.ensure_future(client.call(ECHO, 1))
        await eventually(lambda: servers)
        request = await servers[0].frames.get()
        servers[0].transport.write(encode_header(MessageType.GOAWAY, 0, 0, 0))
        await eventually(lambda: client.connections and client.connections[0].state == "draining")
        servers[0].respond(request.request_id, 0, body=msgpack.packb("done"))
        assert await call == "done"
        await eventually(lambda: client.connections == [])  # closed once its last call was answered


async def test_closing_a_listener_refuses_new_connections():
    async with memory_pair(Greeter()) as (server, _):
        address = server.address
    async with Client(address) as late:
        with pytest.raises(ConnectionFailed, match="nothing listens"):
            await late.call(ECHO, 1)


async def _connections(server: Server, count: int):
    await eventually(lambda: len(server.connections) == count)
    return list(server.connections)


# -- deadlines and cancellation flow into downstream calls ----------------------------------------


class Leaf(Service):
    """The last hop: says its deadline (monotonic seconds: one clock, all hops run in this process),
    or waits until cancelled."""

    name = "hop.C"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def Go(self, req, ctx: CallContext):
        self.started.set()
        if req.get("wait"):
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        return [ctx.deadline]


class Relay(Service):
    """Calls the next hop and adds its own deadline."""

    def __init__(self, downstream: Client, path: str) -> None:
        self.downstream = downstream
        self.path = path

    async def Go(self, req, ctx: CallContext):
        if req.get("spawn"):
            # From a task of its own, which cancelling this handler does not reach by itself.
            task = asyncio.get_running_loop().create_task(self.downstream.call(self.path, req))
            finished = asyncio.Event()
            task.add_done_callback(lambda _: finished.set())
            await finished.wait()
            below = task.result()
        else:
            below = await self.downstream.call(self.path, req, propagate=req.get("propagate"))
        return [ctx.deadline, *below]


class RelayA(Relay):
    name = "hop.A"


class RelayB(Relay):
    name = "hop.B"


@pytest_asyncio.fixture
async def hops():
    """A -> B -> C, three servers in memory; A's and B's handlers call on with a client each."""
    a, b, c = (f"memory:{memory.unique_name(n)}" for n in "abc")
    leaf = Leaf()
    to_b, to_c = Client(b), Client(c)
    servers = [Server(address=a), Server(address=b), Server(address=c)]
    servers[0].register(RelayA(to_b, "/hop.B/Go"))
    servers[1].register(RelayB(to_c, "/hop.C/Go"))
    servers[2].register(leaf)
    for server in servers:
        await server.start()
    async with Client(a) as caller:
        yield caller, leaf
    for client in (to_b, to_c):
        await client.close()
    for server in servers:
        await server.stop()


async def test_a_deadline_flows_over_three_hops(hops):
    caller, _ = hops
    sent = time.monotonic()
    deadlines = await caller.call("/hop.A/Go", {}, timeout=2.0)
    assert len(deadlines) == 3 and all(d is not None for d in deadlines)
    # Each hop inherited what was left: never later than its caller's deadline. (A timeout travels
    # relative, so each receiver's deadline lies up to the transit time past its caller's.)
    transit = 0.05
    assert sent + 2.0 + transit >= deadlines[0]
    assert deadlines[0] + transit >= deadlines[1] and deadlines[1] + transit >= deadlines[2]
    assert deadlines[2] < sent + 2.0 + 3 * transit and deadlines[2] > time.monotonic()


async def test_propagation_can_be_turned_off_per_call(hops):
    caller, _ = hops
    deadlines = await caller.call("/hop.A/Go", {"propagate": False}, timeout=2.0)
    assert deadlines[0] is not None and deadlines[1:] == [None, None]


async def test_a_shorter_own_timeout_wins(hops):
    caller, _ = hops
    with pytest.raises(DeadlineExceeded):
        await caller.call("/hop.A/Go", {"wait": True}, timeout=0.2)


@pytest.mark.parametrize("spawn", [False, True], ids=["same task", "spawned task"])
async def test_cancelling_the_first_call_cancels_every_hop(hops, spawn):
    caller, leaf = hops
    call = asyncio.ensure_future(caller.call("/hop.A/Go", {"wait": True, "spawn": spawn}))
    await leaf.started.wait()
    call.cancel()
    await asyncio.wait_for(leaf.cancelled.wait(), 5)  # A cancelled, so its call to B, so B's to C
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_a_client_with_propagation_off_does_not_inherit():
    leaf = Leaf()
    async with memory_pair(leaf) as (server, _):
        inner = Client(server.address, propagate=False)
        relay = RelayA(inner, "/hop.C/Go")
        async with memory_pair(relay) as (_, caller):
            deadlines = await caller.call("/hop.A/Go", {}, timeout=2.0)
        await inner.close()
    assert deadlines[0] is not None and deadlines[1] is None


async def test_tls_on_a_memory_address_is_refused_not_ignored(tmp_path):
    import trustme

    from gorpc import ConfigError

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    with pytest.raises(ConfigError, match="memory: addresses carry no TLS"):
        Server(address="memory:tls", tls_cert=str(cert_file), tls_key=str(key_file))
    async with memory_pair(Greeter()) as (server, _), Client(server.address, tls=True) as client:
        with pytest.raises(ConfigError, match="memory: addresses carry no TLS"):
            await client.call(ECHO, 1)
