"""Bad input and failures: each gives the caller a typed error; the server keeps serving others."""

import asyncio
import time
import zlib

import msgpack
import pytest

from gorpc import (
    Client,
    DeadlineExceeded,
    InternalError,
    InvalidRequest,
    MessageTooLarge,
    MethodNotFound,
    ProtocolError,
    RemoteError,
    StatusCode,
    Unavailable,
)
from gorpc.frame import FLAG_COMPRESSED, HEADER, FrameDecoder, MessageType, encode_header
from gorpc.testing import eventually, loopback

from .conftest import free_port

pytestmark = pytest.mark.asyncio


async def raw_call(address, frame: bytes):
    """Send raw bytes on a fresh connection; return (decoded response frames, connection still open)."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(frame)
    decoder = FrameDecoder(1 << 20)
    data = await reader.read(HEADER.size + 4096)
    frames = decoder.feed(data) if data else []
    writer.close()
    await writer.wait_closed()
    return frames


def request_frame(rid, head, body, *, codec=1, flags=0):
    return (
        encode_header(MessageType.REQUEST, rid, len(head), len(body), flags=flags, codec=codec) + head + body
    )


async def test_handler_exception_reaches_caller_with_type_and_message(client, caplog):
    with pytest.raises(RemoteError) as info:
        await client.call("/helloworld.Greeter/Fail", 42)
    assert info.value.type_name == "ValueError"
    assert info.value.message == "bad value 42"
    assert info.value.code == StatusCode.REMOTE_ERROR
    assert "Traceback" in caplog.text and "bad value 42" in caplog.text  # the server logged it
    assert await client.call("/helloworld.Greeter/Echo", 1) == 1


async def test_handler_raising_an_rpc_error_keeps_its_type(client):
    with pytest.raises(InvalidRequest, match="name is required"):
        await client.call("/helloworld.Greeter/Refuse", {})


async def test_unknown_method_and_service(client):
    with pytest.raises(MethodNotFound, match=r"service 'helloworld.Greeter' has no method 'Nope'"):
        await client.call("/helloworld.Greeter/Nope", None)
    with pytest.raises(
        MethodNotFound,
        match=(
            r"unknown service 'x.Y'; this server hosts "
            r"\['gorpc.Health', 'gorpc.Reflection', 'helloworld.Greeter'\]"
        ),
    ):
        await client.call("/x.Y/Z", None)


async def test_malformed_path_is_refused_before_sending(client):
    with pytest.raises(InvalidRequest, match="not /<service>/<Method>"):
        await client.call("helloworld.Greeter.SayHello", None)


async def test_unencodable_request_and_reply(client):
    with pytest.raises(InvalidRequest, match="cannot encode request with codec 'msgpack'"):
        await client.call("/helloworld.Greeter/Echo", object())
    with pytest.raises(InternalError, match="cannot encode reply with codec 'msgpack'"):
        await client.call("/helloworld.Greeter/Unencodable", None)


async def test_metadata_of_the_wrong_type_is_a_typed_error_on_either_side(client, caplog):
    with pytest.raises(
        InvalidRequest, match="request metadata value of 'when' must be str or bytes, got object"
    ):
        await client.call("/helloworld.Greeter/Echo", 1, metadata={"when": object()})
    with pytest.raises(InvalidRequest, match="request metadata value of 'n' must be str or bytes, got int"):
        await client.call("/helloworld.Greeter/Echo", 1, metadata={"n": 1})
    with pytest.raises(InternalError, match="response metadata value of 'when' must be str or bytes"):
        await client.call("/helloworld.Greeter/BadMetadata", 1)
    assert "Traceback" not in caplog.text  # not the handler's fault: nothing logged as a handler error


async def test_json_codec_refuses_what_json_cannot_carry(greeter):
    async with loopback(greeter, codec="json") as (_, client):
        with pytest.raises(InvalidRequest, match=r"cannot encode request with codec 'json': .*Unopened"):
            await client.call("/helloworld.Greeter/Echo", Unopened())
        # bytes travel as base64 text, as JSON APIs usually carry them (a typed field decodes it back)
        assert await client.call("/helloworld.Greeter/Echo", b"raw") == "cmF3"


class Unopened:
    """An object no codec knows how to write."""


async def test_deadline_exceeded_reaches_caller_in_time_and_cancels_the_handler(client, greeter):
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="Sleep"):
        await client.call("/helloworld.Greeter/Sleep", 30, timeout=0.2)
    assert time.monotonic() - started < 5  # the handler would take 30 s
    await asyncio.wait_for(greeter.cancelled.wait(), 5)  # and the server stopped it
    assert await client.call("/helloworld.Greeter/Echo", "after") == "after"


async def test_many_missed_deadlines_cancel_every_handler_and_leave_nothing_behind(pair, greeter):
    server, client = pair
    assert await client.call("/helloworld.Greeter/Echo", "warm") == "warm"
    tasks_before = len(asyncio.all_tasks())
    started = time.monotonic()
    results = await asyncio.gather(
        *(client.call("/helloworld.Greeter/Sleep", 30, timeout=0.2) for _ in range(100)),
        return_exceptions=True,
    )
    assert all(isinstance(r, DeadlineExceeded) for r in results)
    assert time.monotonic() - started < 5  # every handler would take 30 s
    (conn,) = server.connections
    await eventually(lambda: greeter.cancellations == 100 and conn.running == 0)
    assert not conn.tasks() and [c.calls_in_flight for c in client.connections] == [0]
    assert len(asyncio.all_tasks()) == tasks_before
    assert await client.call("/helloworld.Greeter/Echo", "after") == "after"


async def test_server_enforces_the_deadline_it_is_sent(pair, greeter):
    """Without the client's own timer: the server alone answers DEADLINE_EXCEEDED and stops the handler."""
    server, _ = pair
    head = msgpack.packb(["/helloworld.Greeter/Sleep", None, 0.1])
    (frame,) = await asyncio.wait_for(raw_call(server.address, request_frame(6, head, msgpack.packb(30))), 10)
    code, message, _, _ = msgpack.unpackb(frame.head)
    assert (frame.request_id, code) == (6, StatusCode.DEADLINE_EXCEEDED)
    assert "deadline of 0.100s exceeded" in message
    assert greeter.cancelled.is_set()


async def test_deadline_errors_are_timeout_errors(client):
    with pytest.raises(TimeoutError):
        await client.call("/helloworld.Greeter/Sleep", 30, timeout=0.05)


async def test_caller_cancellation_cancels_the_handler(client, greeter):
    call = asyncio.create_task(client.call("/helloworld.Greeter/Sleep", 30))
    await greeter.started.wait()
    call.cancel()
    await asyncio.wait_for(greeter.cancelled.wait(), 5)


async def test_nothing_listening_is_unavailable():
    async with Client(f"127.0.0.1:{free_port()}") as client:
        with pytest.raises(Unavailable, match=r"cannot connect to 127.0.0.1"):
            await client.call("/helloworld.Greeter/Echo", 1)
        with pytest.raises(ConnectionError):  # Unavailable is a ConnectionError too
            await client.call("/helloworld.Greeter/Echo", 1)


async def test_lost_connection_fails_calls_in_flight_then_reconnects(pair, greeter):
    server, client = pair
    call = asyncio.create_task(client.call("/helloworld.Greeter/Sleep", 30))
    await greeter.started.wait()
    for conn in list(server.connections):
        conn.abort()
    with pytest.raises(Unavailable, match="lost"):
        await call
    assert await client.call("/helloworld.Greeter/Echo", "again") == "again"


async def test_garbage_bytes_close_that_connection_only(pair, caplog):
    server, client = pair
    frames = await raw_call(server.address, b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
    assert frames == []  # closed without a reply
    assert "bad magic" in caplog.text
    assert await client.call("/helloworld.Greeter/Echo", "still here") == "still here"


async def test_malformed_head_gets_a_protocol_error_reply_then_the_connection_closes(pair, caplog):
    server, client = pair
    host, port = server.address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request_frame(5, b"\xc1", msgpack.packb(1)))
    frame, goaway = FrameDecoder(1 << 20).feed(await reader.read())  # read() returns at the server's close
    writer.close()
    code, message, _, _ = msgpack.unpackb(frame.head)
    assert (frame.request_id, code) == (5, StatusCode.PROTOCOL_ERROR)
    assert "malformed request head" in message
    assert (goaway.type, goaway.request_id) == (MessageType.GOAWAY, 5)  # the last request it took
    assert "protocol error: malformed request head" in caplog.text
    assert await client.call("/helloworld.Greeter/Echo", "others are served") == "others are served"


async def test_unknown_codec_gets_an_invalid_request_reply(pair):
    server, _ = pair
    head = msgpack.packb(["/helloworld.Greeter/Echo", None, None])
    (frame,) = await raw_call(server.address, request_frame(9, head, b"{}", codec=77))
    code, message, _, _ = msgpack.unpackb(frame.head)
    assert code == StatusCode.INVALID_REQUEST and "unknown codec id 77" in message


async def test_undecodable_body_gets_an_invalid_request_reply(pair):
    server, _ = pair
    head = msgpack.packb(["/helloworld.Greeter/Echo", None, None])
    (frame,) = await raw_call(server.address, request_frame(3, head, b"\xc1\xc1"))
    code, message, _, _ = msgpack.unpackb(frame.head)
    assert code == StatusCode.INVALID_REQUEST and "cannot decode request" in message


async def test_oversized_request_is_refused_by_the_server_and_the_connection_survives(greeter):
    async with loopback(greeter, server_options={"max_message_size": 1024}) as (_, client):
        with pytest.raises(MessageTooLarge, match="over the server's 1024-byte limit"):
            await client.call("/helloworld.Greeter/Echo", b"x" * 100_000)
        assert await client.call("/helloworld.Greeter/Echo", b"small") == b"small"
        assert len(client.connections) == 1


async def test_oversized_request_is_refused_by_the_client_before_sending(greeter):
    async with loopback(greeter, max_message_size=1024) as (_, client):
        with pytest.raises(MessageTooLarge, match=r"request of .* bytes is over the 1024-byte limit"):
            await client.call("/helloworld.Greeter/Echo", b"x" * 5000)


async def test_oversized_reply_is_refused_on_both_sides(greeter):
    async with loopback(greeter, server_options={"max_message_size": 1024}) as (_, client):
        with pytest.raises(MessageTooLarge, match=r"reply of .* bytes is over"):
            await client.call("/helloworld.Greeter/Big", 5000)
    async with loopback(greeter, max_message_size=1024) as (_, client):
        with pytest.raises(MessageTooLarge, match="over the client's 1024-byte limit"):
            await client.call("/helloworld.Greeter/Big", 5000)
        assert await client.call("/helloworld.Greeter/Big", 10) == b"x" * 10


async def test_compressed_body_that_inflates_past_the_limit_is_refused(pair):
    server, client = pair
    bomb = zlib.compress(msgpack.packb(b"\0" * (8 << 20)))  # 8 MiB of zeros in a few KiB
    head = msgpack.packb(["/helloworld.Greeter/Echo", None, None])
    (frame,) = await raw_call(server.address, request_frame(4, head, bomb, flags=FLAG_COMPRESSED))
    code, message, _, _ = msgpack.unpackb(frame.head)
    assert code == StatusCode.MESSAGE_TOO_LARGE and "inflates past" in message
    assert await client.call("/helloworld.Greeter/Echo", 1) == 1


async def test_dead_peer_is_detected_by_heartbeats():
    """A server that accepts and then says nothing: the call fails once the heartbeat times out."""

    async def silent(reader, writer):
        await reader.read()  # read until the client goes away; never answer
        writer.close()

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with (
        listener,
        Client(f"127.0.0.1:{port}", heartbeat_interval=0.05, heartbeat_timeout=0.3) as client,
    ):
        with pytest.raises(Unavailable, match="heartbeat timeout"):
            await asyncio.wait_for(client.call("/helloworld.Greeter/Echo", 1), 10)


async def test_idle_connection_is_kept_alive_by_heartbeats(greeter):
    options = {"heartbeat_interval": 0.05, "heartbeat_timeout": 0.2}
    async with loopback(greeter, server_options=options, **options) as (_, client):
        assert await client.call("/helloworld.Greeter/Echo", 1) == 1
        (conn,) = client.connections
        await asyncio.sleep(1.0)  # the scenario: idle for five heartbeat timeouts
        assert client.connections == [conn]  # the same connection, still open, nothing in flight
        assert await client.call("/helloworld.Greeter/Echo", 2) == 2
        assert [c.local for c in client.connections] == [conn.local]


async def test_reply_from_unknown_server_codec_is_a_protocol_error():
    """A server that answers in a codec the caller did not use is refused, not misread."""

    async def wrong_codec(reader, writer):
        data = await reader.read(4096)
        rid = HEADER.unpack_from(data)[6]
        head = msgpack.packb([0, None, None, None])
        writer.write(encode_header(MessageType.RESPONSE, rid, len(head), 2, codec=2) + head + b"{}")
        await writer.drain()
        await reader.read()
        writer.close()

    listener = await asyncio.start_server(wrong_codec, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener, Client(f"127.0.0.1:{port}") as client:
        with pytest.raises(ProtocolError, match="replied in codec 2"):
            await client.call("/helloworld.Greeter/Echo", 1, timeout=5)


async def test_server_drops_a_silent_client(greeter):
    """A client that connects and never speaks (nor answers pings) is dropped by the server."""
    options = {"heartbeat_interval": 0.05, "heartbeat_timeout": 0.3}
    async with loopback(greeter, server_options=options) as (server, _):
        host, port = server.address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        received = await asyncio.wait_for(reader.read(), 10)  # until the server closes the connection
        assert received and all(  # it pinged before giving up
            HEADER.unpack_from(received, i)[2] == MessageType.PING
            for i in range(0, len(received), HEADER.size)
        )
        assert server.connections == set()
        writer.close()
