"""Limits: what a client can make a server hold is bounded, whatever the client does."""

import asyncio
import os
from pathlib import Path

import msgpack
import pytest

from gorpc import Client, ClientConfig, MessageTooLarge, Server, Service, StatusCode
from gorpc.frame import HEADER, FrameDecoder, MessageType, encode_header
from gorpc.testing import eventually, loopback, server_process

from .conftest import Greeter

pytestmark = pytest.mark.asyncio
MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent


class Gate(Service):
    """Calls wait until the gate opens; counts how many run at once."""

    name = "test.Gate"

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.running = 0
        self.peak = 0

    async def Wait(self, req):
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.open.wait()
        finally:
            self.running -= 1
        return len(req) if isinstance(req, bytes) else req


def request(rid: int, method: str, payload: object) -> bytes:
    head, body = msgpack.packb([method, None, None]), msgpack.packb(payload)
    return encode_header(MessageType.REQUEST, rid, len(head), len(body), codec=1) + head + body


async def read_frame(reader: asyncio.StreamReader):
    header = await reader.readexactly(HEADER.size)
    *_, head_len, body_len = HEADER.unpack(header)
    (frame,) = FrameDecoder(1 << 30).feed(header + await reader.readexactly(head_len + body_len))
    return frame


def only(conns):
    (conn,) = conns
    return conn


async def test_an_oversized_frame_is_refused_from_its_header_and_never_buffered(greeter):
    async with loopback(greeter, server_options={"max_message_size": MiB}) as (server, _):
        host, port = server.address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        declared = 32 * MiB
        head = msgpack.packb(["/helloworld.Greeter/Echo", None, None])
        writer.write(encode_header(MessageType.REQUEST, 7, len(head), declared, codec=1) + head)
        # Refused from the header alone: the reply comes before a byte of the body is sent.
        reply = await read_frame(reader)
        code, message, _, _ = msgpack.unpackb(reply.head)
        assert reply.request_id == 7
        assert code == StatusCode.MESSAGE_TOO_LARGE and "over the server's" in message
        conn = only(server.connections)
        peak = 0
        chunk = b"\0" * MiB
        for _ in range(declared // MiB):  # the body arrives anyway: skipped as it comes
            writer.write(chunk)
            await writer.drain()
            peak = max(peak, conn.buffered)
        assert peak < HEADER.size
        writer.write(request(8, "/helloworld.Greeter/Echo", "after"))  # the stream is back in step
        answer = await read_frame(reader)
        assert answer.request_id == 8 and msgpack.unpackb(answer.body) == "after"
        writer.close()
        await writer.wait_closed()
        print(f"32 MiB frame refused; most bytes the server buffered meanwhile: {peak}")


async def test_calls_per_connection_are_capped_and_the_rest_wait_unread():
    gate = Gate()
    async with loopback(gate, server_options={"max_concurrent_calls": 4}) as (server, client):
        calls = [asyncio.ensure_future(client.call("/test.Gate/Wait", i)) for i in range(100)]
        conn = await _one_connection(server)
        await eventually(lambda: gate.running == 4 and conn.reading_paused)
        assert conn.held  # read, not started: at most what one read returned
        gate.open.set()
        assert await asyncio.gather(*calls) == list(range(100))
        assert gate.peak == 4
        assert not conn.reading_paused and not conn.held and conn.running == 0


async def test_backpressure_reaches_the_caller_who_waits_instead_of_buffering():
    gate = Gate()
    size, count = 256 * 1024, 256  # 64 MiB of requests the server will not read yet
    limits = {"max_concurrent_calls": 1, "max_message_size": 2 * size}
    async with loopback(gate, server_options=limits, max_message_size=2 * size) as (_, client):
        payload = b"x" * size
        calls = [asyncio.ensure_future(client.call("/test.Gate/Wait", payload)) for _ in range(count)]
        await eventually(lambda: gate.running == 1)
        await eventually(lambda: not client.connections[0].writable)
        buffered = client.connections[0].write_buffered
        # The rest of the 64 MiB waits in the callers (unencoded frames are never queued).
        assert buffered < 16 * MiB
        gate.open.set()
        assert await asyncio.gather(*calls) == [size] * count
        print(f"client write buffer while the server was not reading: {buffered / MiB:.1f} MiB of 64 MiB")


async def test_a_client_that_never_reads_cannot_grow_server_memory_without_bound():
    greeter = Greeter()
    reply = 64 * 1024
    server = Server(address="127.0.0.1:0", heartbeat_interval=0.5, heartbeat_timeout=3.0)
    server.register(greeter)
    async with server, Client(server.address) as bystander:
        host, port = server.address.rsplit(":", 1)
        _, writer = await asyncio.open_connection(host, int(port))
        sent = 20_000  # asks for 1.25 GiB of replies, then never reads one
        writer.write(b"".join(request(rid, "/helloworld.Greeter/Big", reply) for rid in range(1, sent + 1)))
        conn = only(server.connections)
        await eventually(lambda: not conn.writable and conn.reading_paused and conn.running == 0)
        started, held = conn.last_request_id, conn.held
        buffered = conn.transport.get_write_buffer_size()
        cap = server.config.max_concurrent_calls
        assert started < sent
        assert buffered <= (cap + 16) * (reply + 64)  # the calls already running, and no more
        # It still serves others, and drops the connection once it has read nothing for the timeout.
        assert await bystander.call("/helloworld.Greeter/SayHello", {"msg": "hi"}) == {"msg": "hi world"}
        await eventually(lambda: conn.transport is None, timeout=10)
        assert not conn.held
        writer.close()
        print(
            f"non-reading client: {sent} requests sent, {started} started, {held} held; server write "
            f"buffer {buffered / MiB:.1f} MiB (cap {cap} x {reply // 1024} KiB replies)"
        )


async def _one_connection(server):
    await eventually(lambda: len(server.connections) == 1)
    return only(server.connections)


SOAK_SERVER = Path(__file__).with_name("soak_server.py")


def rss_bytes(pid: int) -> int:
    """Resident memory of process `pid` (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@pytest.mark.slow
async def test_refused_compression_bombs_free_their_buffers_at_once():
    bombs = 128
    # Each request is about 5 KiB on the wire and inflates to 5 MiB, past the server's 4 MiB limit.
    with server_process([str(SOAK_SERVER)]) as server:
        async with (
            Client(server.address, compression="zlib", compression_threshold=0) as attacker,
            Client(server.address) as bystander,
        ):
            hello = {"msg": "hi"}
            assert await bystander.call("/test.Soak/SayHello", hello) == {"msg": "hi world"}
            before = rss_bytes(server.process.pid)
            bomb = b"\0" * (5 * MiB)
            attacks = [attacker.call("/test.Soak/SayHello", bomb) for _ in range(bombs)]
            served = [bystander.call("/test.Soak/SayHello", hello) for _ in range(bombs)]
            outcomes = await asyncio.gather(*attacks, *served, return_exceptions=True)
            after = rss_bytes(server.process.pid)
        refused, replies = outcomes[:bombs], outcomes[bombs:]
        assert all(isinstance(e, MessageTooLarge) and "inflates past" in e.message for e in refused)
        assert replies == [{"msg": "hi world"}] * bombs  # everyone else was served meanwhile
    growth = after - before
    print(f"{bombs} concurrent compression bombs: server RSS {before / MiB:.0f} -> {after / MiB:.0f} MiB")
    assert growth < 30 * MiB


async def test_a_consumer_that_does_not_read_holds_both_processes_to_the_stream_window():
    """A server streams 1 KiB items to a client that reads one and then nothing for 3 s: the
    producer waits at its `yield` once the window is full, so neither side's memory grows."""
    argv = ["-m", "gorpc", "serve", "tests.stream_service:Ticker", "--address", "127.0.0.1:0"]
    with server_process(argv, env={"PYTHONPATH": str(ROOT)}) as server:
        async with Client(server.address) as client, Client(server.address) as observer:
            server_before, client_before = rss_bytes(server.process.pid), rss_bytes(os.getpid())
            async with client.stream("/test.Ticker/Firehose", 1024) as items:
                assert len(await anext(items)) == 1024
                await asyncio.sleep(3)  # the scenario: a consumer busy elsewhere, reading nothing
                produced = await observer.call("/test.Ticker/Produced")
                server_after, client_after = rss_bytes(server.process.pid), rss_bytes(os.getpid())
                assert len(await anext(items)) == 1024  # and it resumes where it was
    config = ClientConfig()
    item = 1024 + 3  # a msgpack bin of 1 KiB: what the byte window counts
    window = min(config.stream_window_messages, config.stream_window_bytes // item + 1)
    print(f"produced {produced} items (window {window}); server RSS "
          f"+{(server_after - server_before) / MiB:.1f} MiB, client RSS "
          f"+{(client_after - client_before) / MiB:.1f} MiB")  # fmt: skip
    assert produced <= window + 2  # the window, the item read, and one waiting at its yield
    assert server_after - server_before < 8 * MiB  # without the window: hundreds of MiB in 3 s
    assert client_after - client_before < 8 * MiB
