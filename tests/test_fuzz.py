"""Hostile bytes over real sockets: hypothesis-made and mutated frames against a running server.

For every input the server must stay up, close the connection when the framing breaks the protocol
(logging why), answer only with well-formed frames, and leak nothing; a well-behaved client calling
the same server all the while must see no error at all.
"""

import asyncio
import logging
import os
import socket
import struct
import threading
from collections.abc import Iterator

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gorpc import Client, ProtocolError, Server
from gorpc.frame import HEADER, MAGIC, VERSION, FrameDecoder, MessageType, OversizedFrame
from gorpc.testing import eventually

from .conftest import Greeter

LIMIT = 64 * 1024  # the fuzzed server's max_message_size
CLIENT_TYPES = {MessageType.REQUEST, MessageType.ONEWAY, MessageType.PING, MessageType.PONG,
                MessageType.GOAWAY, MessageType.CANCEL, MessageType.MESSAGE, MessageType.END,
                MessageType.WINDOW}  # fmt: skip
METHODS = ["/helloworld.Greeter/Echo", "/helloworld.Greeter/SayHello", "/helloworld.Greeter/Sleep",
           "/helloworld.Greeter/Fail", "/nope.Nope/X", "", "no-slashes"]  # fmt: skip


class ServerThread:
    """A server on its own event loop in a thread, and a client calling it the whole time."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.good_calls = 0
        self.good_errors: list[BaseException] = []
        self.going = asyncio.Event()  # set on the server's loop: the good client calls while set
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> "ServerThread":
        self._thread.start()
        self.server = self.run(self._start())
        return self

    async def _start(self) -> Server:
        server = Server(address="127.0.0.1:0", max_message_size=LIMIT, grace=0.5)
        server.register(Greeter())
        await server.start()
        self.client = Client(server.address)
        await self.client.call("/helloworld.Greeter/Echo", "connect")  # its connection counts from now
        self._load = asyncio.get_running_loop().create_task(self._good_client())
        return server

    async def _good_client(self) -> None:
        while True:
            await self.going.wait()
            try:
                assert await self.client.call("/helloworld.Greeter/Echo", {"n": self.good_calls}) == {
                    "n": self.good_calls
                }
                self.good_calls += 1
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # recorded for the test to fail on
                self.good_errors.append(exc)
                await asyncio.sleep(0.01)

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    async def state(self) -> dict[str, int]:
        """What could leak: connections, calls running or held, tasks (the good client paused)."""
        self.going.clear()
        conns = self.server.connections
        await eventually(lambda: sum(c.running for c in conns) == 0, timeout=10)
        return {
            "connections": len(conns),
            "running": sum(c.running for c in conns),
            "held": sum(c.held for c in conns),
            "tasks": len(asyncio.all_tasks()),
        }

    async def _stop(self) -> None:
        self._load.cancel()
        await asyncio.gather(self._load, return_exceptions=True)
        await self.client.close()
        await self.server.stop()

    async def resume(self) -> None:
        self.going.set()

    def __exit__(self, *exc: object) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread() as running:
        yield running


@pytest.fixture(scope="module")
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("gorpc")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


# -- inputs ---------------------------------------------------------------------------------------


def frame(msg_type: int, rid: int, head: bytes, body: bytes, *, flags: int = 0, codec: int = 1) -> bytes:
    return HEADER.pack(MAGIC, VERSION, msg_type, flags, codec, 0, rid, len(head), len(body)) + head + body


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)  # fmt: skip
heads = st.one_of(
    st.builds(lambda m, md, t: msgpack.packb([m, md, t]), st.sampled_from(METHODS),
              st.none() | st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
              st.none() | st.floats(-1, 5) | st.integers(-5, 5)),
    msgpack_values.map(msgpack.packb),  # wrong shape or types
    st.binary(max_size=40),  # not msgpack at all
)  # fmt: skip
bodies = msgpack_values.map(msgpack.packb) | st.binary(max_size=64)
frames = st.builds(
    frame,
    st.sampled_from([t.value for t in MessageType]) | st.integers(0, 255),
    st.integers(0, 2**32 - 1) | st.integers(1, 3),
    heads,
    bodies,
    flags=st.integers(0, 255) | st.just(0),
    codec=st.integers(0, 255) | st.just(1),
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """Valid-looking frames, then one mutation: a flipped byte, a cut, a rewritten header field."""
    data = bytearray(b"".join(draw(st.lists(frames, min_size=1, max_size=4))))
    kind = draw(st.sampled_from(["flip", "truncate", "length", "magic", "version", "insert", "none"]))
    if kind == "flip":
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= draw(st.integers(1, 255))
    elif kind == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "length":  # head or body length of the first frame: huge, or just wrong
        offset = draw(st.sampled_from([12, 16]))
        data[offset : offset + 4] = struct.pack("!I", draw(st.integers(0, 2**32 - 1)))
    elif kind == "magic":
        data[0:2] = draw(st.binary(min_size=2, max_size=2).filter(lambda m: m != MAGIC))
    elif kind == "version":
        data[2] = draw(st.integers(0, 255).filter(lambda v: v != VERSION))
    elif kind == "insert":
        i = draw(st.integers(0, len(data)))
        data[i:i] = draw(st.binary(min_size=1, max_size=30))
    return bytes(data)


inputs = st.one_of(mutated(), st.binary(min_size=1, max_size=200), st.lists(frames, max_size=3).map(b"".join))


def breaks_framing(data: bytes) -> bool:
    """Whether the bytes alone break the protocol at the framing level (so the server must close)."""
    try:
        parsed = FrameDecoder(LIMIT).feed(data)
    except ProtocolError:
        return True
    for item in parsed:
        if item.type not in CLIENT_TYPES:
            return True
        if isinstance(item, OversizedFrame) and item.type not in (MessageType.REQUEST, MessageType.ONEWAY):
            return True
    return False


def exchange(address: str, data: bytes) -> tuple[str, bytes]:
    """Send `data` and our EOF, then read until the server closes; returns (our address as the
    server sees it, the bytes received)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        host, port = sock.getsockname()[:2]
        me = f"{host}:{port}"
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            return me, b""  # closed on us mid-send: the server refused the bytes
        received = bytearray()
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            received += chunk
    return me, bytes(received)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- the test -------------------------------------------------------------------------------------


def test_hostile_bytes_never_hurt_the_server_or_other_clients(server: ServerThread, records: Records) -> None:
    before = server.run(server.state())
    fds_before = open_fds()
    calls_before = server.good_calls
    server.run(server.resume())

    @settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
    @given(inputs)
    def one_input(data: bytes) -> None:
        me, received = exchange(server.server.address, data)
        if breaks_framing(data):
            assert any(me in m and "protocol error" in m for m in records.messages), (
                f"no protocol error logged for {me}"
            )
        # Whatever the server sent back is well-formed: responses, pongs, goaways only.
        for reply in FrameDecoder(LIMIT + 1024).feed(received):
            assert reply.type in (MessageType.RESPONSE, MessageType.PONG, MessageType.GOAWAY)
            if reply.type == MessageType.RESPONSE:
                code, _, _, _ = msgpack.unpackb(reply.head)
                assert isinstance(code, int)
        assert not server.good_errors

    one_input()

    async def settled() -> bool:
        return await server.state() == before

    server.run(eventually(settled, timeout=10))
    assert open_fds() <= fds_before
    assert not server.good_errors
    assert server.good_calls > calls_before
    print(f"good client made {server.good_calls - calls_before} calls during the fuzzing, 0 failed")
