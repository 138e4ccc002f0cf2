"""Stream calls over real sockets: the three kinds with both clients, cancellation, errors and
deadlines mid-stream, flow control, many streams on one connection, limits, graceful stop,
interceptors and tracing, and what a peer from before streams answers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import msgpack
import pytest
import pytest_asyncio

from gorpc import (
    BlockingClient,
    CallContext,
    Client,
    ClientConfig,
    DeadlineExceeded,
    InvalidRequest,
    MessageTooLarge,
    MethodKind,
    ProtocolError,
    RemoteError,
    Server,
    Service,
    Unavailable,
)
from gorpc.frame import FLAG_STREAM, FrameDecoder, MessageType, encode_header, encode_window
from gorpc.testing import eventually, loopback

pytestmark = pytest.mark.asyncio

FEED = "/test.Feed"
PROTOCOL_DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
WINDOW = ClientConfig().stream_window_messages  # the default, both sides


class Feed(Service):
    """A method of each kind, and some that misbehave, with hooks to see what the server did."""

    name = "test.Feed"

    def __init__(self) -> None:
        self.closed: list[str] = []  # handlers whose `finally` ran
        self.produced = 0  # items Forever has made
        self.pulled = asyncio.Event()
        self.read_gate = asyncio.Event()  # SlowReader reads once this is set

    async def Count(self, n: int) -> AsyncIterator[int]:
        try:
            for i in range(n):
                yield i
        finally:
            self.closed.append("Count")

    def SyncCount(self, n: int):
        for i in range(n):
            yield [i, threading.current_thread().name]

    async def Forever(self, size: int) -> AsyncIterator[bytes]:
        try:
            while True:
                self.produced += 1
                yield b"x" * size
        finally:
            self.closed.append("Forever")

    async def FailAfter(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i
        raise ValueError(f"broke after {n}")

    async def Sum(self, numbers: AsyncIterator[int]) -> int:
        return sum([n async for n in numbers])

    async def FirstThree(self, numbers: AsyncIterator[int]) -> int:
        return sum([await anext(numbers) for _ in range(3)])

    async def Echo(self, items: AsyncIterator[object]) -> AsyncIterator[object]:
        async for item in items:
            yield item

    async def SlowReader(self, items: AsyncIterator[int]) -> int:
        await self.read_gate.wait()
        return len([i async for i in items])

    async def Headers(self, n: int, ctx: CallContext) -> AsyncIterator[int]:
        ctx.response_metadata["at-start"] = "yes"
        for i in range(n):
            yield i
        ctx.response_metadata["at-end"] = str(n)

    async def Unary(self, x: object) -> object:
        return x


@pytest_asyncio.fixture
async def feed():
    return Feed()


@pytest_asyncio.fixture
async def served(feed):
    async with loopback(feed) as (server, client):
        yield server, client


async def numbers(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


# -- the kinds --------------------------------------------------------------------------------------


async def test_server_streaming_replies_arrive_in_order_then_the_stream_ends(served):
    _, client = served
    assert [r async for r in client.stream(f"{FEED}/Count", 50)] == list(range(50))
    assert [r async for r in client.stream(f"{FEED}/Count", 0)] == []


async def test_client_streaming_sends_an_async_or_plain_iterable_and_returns_one_reply(served):
    _, client = served
    assert await client.call(f"{FEED}/Sum", requests=numbers(1000)) == sum(range(1000))
    assert await client.call(f"{FEED}/Sum", requests=[1, 2, 3]) == 6
    assert await client.call(f"{FEED}/Sum", requests=[]) == 0
    # Read as a stream, a client-streaming method's reply is a stream of one.
    assert [r async for r in client.stream(f"{FEED}/Sum", requests=[4, 5])] == [9]


async def test_bidirectional_replies_flow_while_requests_are_still_being_sent(served):
    _, client = served
    outbox: asyncio.Queue[object] = asyncio.Queue()

    async def requests() -> AsyncIterator[object]:
        while (item := await outbox.get()) is not None:
            yield item

    async with client.stream(f"{FEED}/Echo", requests=requests()) as replies:
        for word in ["ping", "pong", {"nested": [1, 2]}]:
            await outbox.put(word)
            assert await anext(replies) == word  # answered before the next request exists
        await outbox.put(None)
        assert [r async for r in replies] == []


async def test_a_plain_generator_handler_runs_in_the_thread_pool(served):
    _, client = served
    replies = [r async for r in client.stream(f"{FEED}/SyncCount", 3)]
    assert [i for i, _ in replies] == [0, 1, 2]
    assert all(thread.startswith("gorpc-handler") for _, thread in replies)


async def test_the_blocking_client_has_the_same_calls_with_plain_iterators(served, feed):
    server, _ = served

    def script() -> tuple[list[int], int, list[str], list[int]]:
        with BlockingClient(server.address) as client:
            counted = list(client.stream(f"{FEED}/Count", 4))
            summed = client.call(f"{FEED}/Sum", requests=iter(range(10)))
            echoed = list(client.stream(f"{FEED}/Echo", requests=["a", "b"]))
            with client.stream(f"{FEED}/Count", 1000) as replies:
                first = [next(replies), next(replies)]  # leaving early cancels the call
            for reply in client.stream(f"{FEED}/Forever", 10):
                if reply:
                    break  # so does breaking out of the loop
            return counted, summed, echoed, first

    assert await asyncio.to_thread(script) == ([0, 1, 2, 3], 45, ["a", "b"], [0, 1])
    await eventually(lambda: feed.closed.count("Count") == 2 and "Forever" in feed.closed)


async def test_response_metadata_comes_at_the_start_and_at_the_end(served):
    _, client = served
    async with client.stream(f"{FEED}/Headers", 3) as replies:
        assert await anext(replies) == 0
        assert replies.response_metadata == {"at-start": "yes"}
        assert [r async for r in replies] == [1, 2]
        assert replies.response_metadata == {"at-start": "yes", "at-end": "3"}


@pytest.mark.parametrize(
    ("call", "kind"),
    [
        (
            lambda c: c.call(f"{FEED}/Count", 1),
            "server-streaming method: call it with client.stream(path, request)",
        ),
        (
            lambda c: c.call(f"{FEED}/Echo", 1),
            "bidirectional method: call it with client.stream(path, requests=",
        ),
        (
            lambda c: c.call(f"{FEED}/Sum", 1),
            "client-streaming method: call it with client.call(path, requests=",
        ),
        (
            lambda c: anext(c.stream(f"{FEED}/Unary", 1)),
            "unary method: call it with client.call(path, request)",
        ),
        (lambda c: anext(c.stream(f"{FEED}/Echo", 1)), "bidirectional method"),
        (lambda c: c.call(f"{FEED}/Echo", requests=[1]), "bidirectional method"),
    ],
)
async def test_a_call_of_the_wrong_shape_is_refused_naming_the_methods_kind(served, feed, call, kind):
    _, client = served
    with pytest.raises(InvalidRequest, match=kind.replace("(", r"\(").replace(")", r"\)")):
        await call(client)
    assert feed.closed == []  # no handler ran


async def test_reflection_reports_each_methods_kind(served):
    _, client = served
    [described] = await client.call("/gorpc.Reflection/Describe", "test.Feed")
    kinds = {m["name"]: m["kind"] for m in described["methods"]}
    assert kinds["Count"] == kinds["SyncCount"] == MethodKind.SERVER_STREAMING.value
    assert kinds["Sum"] == MethodKind.CLIENT_STREAMING.value
    assert kinds["Echo"] == MethodKind.BIDIRECTIONAL.value
    assert kinds["Unary"] == MethodKind.UNARY.value


# -- ending early -----------------------------------------------------------------------------------


async def leave_by_break(client: Client) -> None:
    async for reply in client.stream(f"{FEED}/Forever", 10):
        if reply:
            break


async def leave_by_context(client: Client) -> None:
    async with client.stream(f"{FEED}/Forever", 10) as replies:
        await anext(replies)


async def leave_by_aclose(client: Client) -> None:
    replies = client.stream(f"{FEED}/Forever", 10)
    await anext(replies)
    await replies.aclose()


async def leave_by_dropping_it(client: Client) -> None:
    replies = client.stream(f"{FEED}/Forever", 10)
    await anext(replies)
    del replies  # read with anext() and never closed: collected, it still ends the call


@pytest.mark.parametrize("leave", [leave_by_break, leave_by_context, leave_by_aclose, leave_by_dropping_it])
async def test_leaving_a_stream_early_cancels_it_and_the_servers_finally_runs(served, feed, leave):
    server, client = served
    await leave(client)
    await eventually(lambda: "Forever" in feed.closed, what="the handler's finally ran")
    await eventually(lambda: all(conn.streams == 0 for conn in server.connections))
    assert await client.call(f"{FEED}/Unary", "still fine") == "still fine"


async def test_a_handler_error_after_n_items_gives_the_n_items_then_the_typed_error(served):
    _, client = served
    received = []
    with pytest.raises(RemoteError, match="broke after 5") as caught:
        async for reply in client.stream(f"{FEED}/FailAfter", 5):
            received.append(reply)
    assert received == [0, 1, 2, 3, 4]
    assert caught.value.type_name == "ValueError"


async def test_a_handler_that_returns_early_stops_the_callers_request_stream(served):
    _, client = served
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[int]:
        try:
            while True:
                yield 1
        finally:
            closed.set()

    # Sum of a stream read as "the first 3 only": a handler returning while requests still come.
    assert [r async for r in client.stream(f"{FEED}/FirstThree", requests=endless())] == [3]
    await asyncio.wait_for(closed.wait(), 5)  # the caller's generator was closed, not left running


async def test_the_deadline_covers_the_whole_stream(served, feed):
    _, client = served
    received = 0
    with pytest.raises(DeadlineExceeded):
        async for _ in client.stream(f"{FEED}/Forever", 10, timeout=0.3):
            received += 1
            await asyncio.sleep(0.01)  # a consumer doing work per item: the stream outlasts 0.3 s
    assert received > 0
    await eventually(lambda: "Forever" in feed.closed, what="the server cancelled the handler too")


async def test_a_failing_request_iterator_fails_the_call_with_its_error(served):
    _, client = served

    async def broken() -> AsyncIterator[int]:
        yield 1
        raise KeyError("the caller's own bug")

    with pytest.raises(KeyError, match="the caller's own bug"):
        await client.call(f"{FEED}/Sum", requests=broken())
    assert await client.call(f"{FEED}/Sum", requests=[1]) == 1


# -- flow control and limits ------------------------------------------------------------------------


async def test_a_handler_that_does_not_read_pauses_the_callers_request_stream_at_the_window(served, feed):
    _, client = served
    pulled = 0

    async def requests() -> AsyncIterator[int]:
        nonlocal pulled
        for i in range(10 * WINDOW):
            pulled += 1
            yield i

    call = asyncio.ensure_future(client.call(f"{FEED}/SlowReader", requests=requests()))
    # The window's worth is sent, one more is taken and waits for credit: the pump stops there.
    await eventually(lambda: pulled == WINDOW + 1, what="the sender filled the window")
    for _ in range(100):
        await asyncio.sleep(0)
    assert pulled == WINDOW + 1
    feed.read_gate.set()
    assert await call == 10 * WINDOW


async def test_a_thousand_streams_share_one_connection(served):
    _, client = served

    async def one(n: int) -> list[int]:
        return [r async for r in client.stream(f"{FEED}/Count", n % 20)]

    results = await asyncio.gather(*(one(n) for n in range(1000)))
    assert results == [list(range(n % 20)) for n in range(1000)]
    assert len(client.connections) == 1


async def test_a_stalled_stream_holds_up_no_other_call(served):
    _, client = served
    async with client.stream(f"{FEED}/Forever", 1024) as stalled:
        await anext(stalled)  # then read no more: its producer waits for credit
        assert [r async for r in client.stream(f"{FEED}/Count", 500)] == list(range(500))
        assert await client.call(f"{FEED}/Sum", requests=numbers(500)) == sum(range(500))
        assert await client.call(f"{FEED}/Unary", "through") == "through"


async def test_the_size_limit_is_per_message_and_a_streams_total_is_unbounded(feed):
    async with loopback(feed, server_options={"max_message_size": 64 * 1024}, max_message_size=64 * 1024) as (
        _,
        client,
    ):
        chunks = [b"y" * 60_000] * 40  # 2.4 MB in all
        assert [len(r) async for r in client.stream(f"{FEED}/Echo", requests=chunks)] == [60_000] * 40
        with pytest.raises(MessageTooLarge):
            await client.call(f"{FEED}/Sum", requests=[b"z" * 70_000])
        with pytest.raises(MessageTooLarge):
            async for _ in client.stream(f"{FEED}/Forever", 70_000):
                pass


async def test_streams_beyond_the_servers_limit_are_refused_as_unprocessed(feed):
    async with loopback(feed, server_options={"max_concurrent_streams": 2}) as (_, client):
        held = [client.stream(f"{FEED}/Forever", 1) for _ in range(2)]
        for stream in held:
            await anext(stream)
        with pytest.raises(Unavailable, match="max_concurrent_streams") as caught:
            await anext(client.stream(f"{FEED}/Count", 1))
        assert caught.value.unprocessed
        await held[0].aclose()
        await eventually(lambda: feed.closed.count("Forever") == 1)
        assert [r async for r in client.stream(f"{FEED}/Count", 2)] == [0, 1]
        await held[1].aclose()


# -- stopping ---------------------------------------------------------------------------------------


async def test_a_graceful_stop_lets_streams_finish_within_the_grace_then_cancels_them(feed):
    server = Server(address="127.0.0.1:0", grace=0.5)
    server.register(feed)
    await server.start()
    async with Client(server.address) as client:
        endless = client.stream(f"{FEED}/Forever", 10)
        await anext(endless)
        short = client.stream(f"{FEED}/Count", 3)
        assert await anext(short) == 0
        stopping = asyncio.ensure_future(server.stop())
        assert [r async for r in short] == [1, 2]  # finished within the grace period
        with pytest.raises(Unavailable):
            async for _ in endless:  # items keep coming until the grace period ends
                pass
        await stopping
    assert "Forever" in feed.closed


# -- interceptors and tracing -----------------------------------------------------------------------


async def test_interceptors_see_a_stream_start_and_can_wrap_its_replies(feed):
    seen: list[str] = []

    async def server_side(ctx: CallContext, request: object, call_next):
        seen.append(f"server {ctx.method} mode={int(ctx.mode)}")
        return await call_next(ctx, request)

    async def client_side(ctx: CallContext, request: object, call_next):
        ctx.metadata["who"] = "interceptor"
        replies = await call_next(ctx, request)

        async def doubled() -> AsyncIterator[object]:
            async for reply in replies:
                yield reply * 2

        return doubled()

    server = Server(address="127.0.0.1:0", interceptors=[server_side])
    server.register(feed)
    async with server, Client(server.address, interceptors=[client_side]) as client:
        assert [r async for r in client.stream(f"{FEED}/Count", 3)] == [0, 2, 4]
        # Its wrapper closes nothing it wraps: leaving early still ends the call on the server.
        async with client.stream(f"{FEED}/Forever", 1) as replies:
            await anext(replies)
        await eventually(lambda: "Forever" in feed.closed)
        await eventually(lambda: all(conn.streams == 0 for conn in server.connections))
    assert seen == [f"server {FEED}/Count mode=2", f"server {FEED}/Forever mode=2"]


async def test_a_stream_is_one_span_on_each_side_covering_all_its_replies(feed):
    from gorpc_tracing.mock import MockTracing

    tracing = MockTracing()
    async with loopback(feed, server_options={"tracer": tracing}, tracer=tracing) as (_, client):
        assert [r async for r in client.stream(f"{FEED}/Count", 4)] == [0, 1, 2, 3]
        with pytest.raises(RemoteError):
            async for _ in client.stream(f"{FEED}/FailAfter", 2):
                pass
    spans = tracing.finished_spans()
    count = {s.tags["span.kind"]: s for s in spans if s.operation_name == f"{FEED}/Count"}
    assert set(count) == {"client", "server"}
    assert count["server"].parent_id == count["client"].context.span_id
    assert count["client"].tags["rpc.stream.replies"] == count["server"].tags["rpc.stream.replies"] == 4
    failed = [s for s in spans if s.operation_name == f"{FEED}/FailAfter"]
    assert len(failed) == 2 and all(s.tags.get("error") for s in failed)


# -- the wire ---------------------------------------------------------------------------------------


class Counter(Service):
    name = "demo.Counter"

    async def Count(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i


async def test_the_protocol_documents_stream_example_is_what_a_server_answers():
    """docs/protocol.md shows a server-streaming call byte by byte: a real server answers it so."""
    import re

    doc = PROTOCOL_DOC.read_text()
    blocks = [
        bytes.fromhex(b.replace("\n", " ")) for b in re.findall(r"```\n((?:[0-9a-f]{2}[ \n])+)```", doc)
    ]
    _, stream_call, window, end = blocks
    request, answer = stream_call[: 20 + 32 + 1], stream_call[20 + 32 + 1 :]
    server = Server(address="127.0.0.1:0")
    server.register(Counter())
    async with server:
        host, port = server.address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        received = b""
        while len(received) < len(answer):
            received += await reader.read(65536)
        assert received == answer
        writer.close()
        await writer.wait_closed()
    assert window == encode_window(1, 64, 32768)
    assert end == encode_header(MessageType.END, 1, 0, 0)


async def open_raw_sum_stream(address: str):
    """A hand-driven client that opens a /test.Feed/Sum stream and reads the server's grant."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    head = msgpack.packb([f"{FEED}/Sum", None, None, [3, 128, 1 << 18]])
    writer.write(encode_header(MessageType.REQUEST, 1, len(head), 0, FLAG_STREAM, 1) + head)
    decoder = FrameDecoder(1 << 20)
    [grant] = decoder.feed(await reader.readexactly(28))
    assert (grant.type, grant.request_id, bytes(grant.body)) == (
        MessageType.WINDOW,
        1,
        encode_window(1, WINDOW, 1 << 18)[20:],
    )
    return reader, writer


def messages(*bodies: bytes) -> bytes:
    """A MESSAGE frame's body: each message, length first."""
    return b"".join(len(body).to_bytes(4, "big") + body for body in bodies)


@pytest.mark.parametrize(
    ("body", "logged"),
    [
        (messages(*[msgpack.packb(1)] * (WINDOW + 1)), "beyond the window granted"),  # one too many
        (messages(msgpack.packb(1))[:-1], "runs past its frame"),
        (messages(msgpack.packb(1)) + b"\x00\x00", "length cut short"),
    ],
)
async def test_a_message_frame_that_breaks_the_rules_closes_the_connection(served, caplog, body, logged):
    server, client = served
    reader, writer = await open_raw_sum_stream(server.address)
    writer.write(encode_header(MessageType.MESSAGE, 1, 0, len(body), 0, 1) + body)
    while await reader.read(65536):
        pass  # until the server closes the connection
    assert logged in caplog.text
    writer.close()
    assert await client.call(f"{FEED}/Unary", "others are served") == "others are served"


async def test_messages_within_the_window_are_served_whatever_frames_carry_them(served):
    server, _ = served
    reader, writer = await open_raw_sum_stream(server.address)
    one = msgpack.packb(1)
    for body in (messages(*[one] * (WINDOW - 28)), messages(one), messages(*[one] * 27)):  # the window
        writer.write(encode_header(MessageType.MESSAGE, 1, 0, len(body), 0, 1) + body)
    writer.write(encode_header(MessageType.END, 1, 0, 0))
    frames = []
    decoder = FrameDecoder(1 << 20)
    while not any(f.type == MessageType.RESPONSE for f in frames):
        frames.extend(decoder.feed(await reader.read(65536)))
    assert msgpack.unpackb(frames[-1].body) == WINDOW
    writer.close()


async def test_a_server_from_before_streams_gives_a_clear_typed_error():
    """A peer speaking protocol 1 as released before streams: it reads a four-field head as
    malformed, answers PROTOCOL_ERROR and closes (the released server's behaviour, byte for byte)."""

    async def old_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder(1 << 20)
        while data := await reader.read(65536):
            for frame in decoder.feed(data):
                try:
                    _method, _metadata, _timeout = msgpack.unpackb(frame.head)
                except ValueError as exc:
                    head = msgpack.packb([15, f"malformed request head: {exc}", None, None])
                    writer.write(encode_header(MessageType.RESPONSE, frame.request_id, len(head), 0) + head)
                    writer.close()
                    return

    listener = await asyncio.start_server(old_server, "127.0.0.1", 0)
    host, port = listener.sockets[0].getsockname()[:2]
    async with listener, Client(f"{host}:{port}") as client:
        with pytest.raises(ProtocolError, match="it can serve unary calls only"):
            await anext(client.stream(f"{FEED}/Count", 3))
