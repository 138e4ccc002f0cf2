"""What docs/protocol.md promises, checked with raw frames against a real server.

Timeouts, metadata types, the UNPROCESSED flag, reserved flag bits, a type sent by the wrong side,
and what a cancelled call is answered.
"""

import asyncio
import math

import msgpack
import pytest

from gorpc import StatusCode
from gorpc.frame import FLAG_UNPROCESSED, FrameDecoder, MessageType, encode_header

pytestmark = pytest.mark.asyncio

ECHO = "/helloworld.Greeter/Echo"


class RawPeer:
    """A hand-driven client connection: write frames, read the frames that come back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = FrameDecoder(1 << 20)
        self.frames: list = []

    @classmethod
    async def connect(cls, address: str) -> "RawPeer":
        host, port = address.rsplit(":", 1)
        return cls(*await asyncio.open_connection(host, int(port)))

    def request(self, rid: int, head: list, body: object = None, *, flags: int = 0, kind=MessageType.REQUEST):
        head_bytes, body_bytes = msgpack.packb(head), msgpack.packb(body)
        header = encode_header(kind, rid, len(head_bytes), len(body_bytes), flags=flags, codec=1)
        self.writer.write(header + head_bytes + body_bytes)

    async def next_frame(self):
        while not self.frames:
            data = await self.reader.read(65536)
            if not data:
                return None  # the server closed the connection
            self.frames.extend(self.decoder.feed(data))
        return self.frames.pop(0)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def answer(peer: RawPeer, rid: int):
    frame = await peer.next_frame()
    assert frame is not None and frame.type == MessageType.RESPONSE and frame.request_id == rid
    code, message, type_name, _ = msgpack.unpackb(frame.head)
    return frame, code, message, type_name


@pytest.mark.parametrize(
    ("timeout", "message"),
    [
        (math.nan, "timeout must be a number of seconds >= 0, got nan"),
        (-1.0, "timeout must be a number of seconds >= 0, got -1.0"),
        (-math.inf, "got -inf"),
        (True, "timeout must be a number of seconds, got bool"),
        ("5", "timeout must be a number of seconds, got str"),
    ],
)
async def test_bad_timeouts_are_invalid_requests_not_handler_failures(pair, caplog, timeout, message):
    server, _ = pair
    peer = await RawPeer.connect(server.address)
    peer.request(3, [ECHO, None, timeout], "x")
    _, code, text, _ = await answer(peer, 3)
    assert code == StatusCode.INVALID_REQUEST and message in text
    peer.request(4, [ECHO, None, 5.0], "still open")  # the connection stays usable
    frame, code, _, _ = await answer(peer, 4)
    assert code == StatusCode.OK and msgpack.unpackb(frame.body) == "still open"
    await peer.close()
    assert "Traceback" not in caplog.text and "raised" not in caplog.text  # not logged as a handler failure


async def test_an_infinite_timeout_means_no_deadline(pair, greeter):
    server, _ = pair
    peer = await RawPeer.connect(server.address)
    peer.request(1, ["/helloworld.Greeter/Context", None, math.inf])
    frame, code, _, _ = await answer(peer, 1)
    assert code == StatusCode.OK and msgpack.unpackb(frame.body)["remaining"] is None
    await peer.close()


async def test_a_zero_timeout_is_a_deadline_already_passed(pair):
    server, _ = pair
    peer = await RawPeer.connect(server.address)
    peer.request(1, [ECHO, None, 0.0], "late")
    _, code, _, _ = await answer(peer, 1)
    assert code == StatusCode.DEADLINE_EXCEEDED
    await peer.close()


async def test_client_side_timeouts_are_checked_before_sending(client):
    from gorpc import InvalidRequest

    for bad in (math.nan, -1):
        with pytest.raises(InvalidRequest, match="timeout must be a number of seconds >= 0"):
            await client.call(ECHO, 1, timeout=bad)
    assert await client.call(ECHO, 1, timeout=math.inf) == 1


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"n": 1}, "value of 'n' must be str or bytes, got int"),
        ({"l": ["a"]}, "value of 'l' must be str or bytes, got list"),
    ],
)
async def test_metadata_values_other_than_str_or_bytes_are_invalid_requests(pair, metadata, message):
    server, _ = pair
    peer = await RawPeer.connect(server.address)
    peer.request(1, [ECHO, metadata, None], "x")
    _, code, text, _ = await answer(peer, 1)
    assert code == StatusCode.INVALID_REQUEST and message in text
    await peer.close()


async def test_reserved_flag_bits_are_ignored(pair):
    server, _ = pair
    peer = await RawPeer.connect(server.address)
    peer.request(1, [ECHO, None, None], "flags", flags=0b1111_1000)  # bits 3-7
    frame, code, _, _ = await answer(peer, 1)
    assert code == StatusCode.OK and msgpack.unpackb(frame.body) == "flags"
    await peer.close()


async def test_a_goaway_from_a_client_is_a_protocol_error_that_closes_the_connection(pair, caplog):
    server, client = pair
    peer = await RawPeer.connect(server.address)
    peer.writer.write(encode_header(MessageType.GOAWAY, 0, 0, 0))
    assert await peer.next_frame() is None  # closed
    assert "only servers send" in caplog.text
    await peer.close()
    assert await client.call(ECHO, "others are served") == "others are served"


async def test_a_response_from_a_client_is_a_protocol_error(pair, caplog):
    server, _ = pair
    peer = await RawPeer.connect(server.address)
    peer.request(1, [0, None, None, None], kind=MessageType.RESPONSE)
    assert await peer.next_frame() is None
    assert "only servers send" in caplog.text
    await peer.close()


async def test_a_cancelled_call_is_answered_cancelled(pair, greeter):
    server, _ = pair
    peer = await RawPeer.connect(server.address)
    peer.request(9, ["/helloworld.Greeter/Sleep", None, None], 30)
    await greeter.started.wait()
    peer.writer.write(encode_header(MessageType.CANCEL, 9, 0, 0))
    _, code, _, _ = await answer(peer, 9)
    assert code == StatusCode.CANCELLED and greeter.cancellations == 1
    await peer.close()


async def test_a_refusal_is_marked_unprocessed_in_the_flags_not_the_error_type(started_server):
    peer = await RawPeer.connect(started_server.address)
    peer.request(1, [ECHO, None, None], "first")  # the connection is up and known to the server
    await answer(peer, 1)
    stopping = asyncio.ensure_future(started_server.stop(grace=5))
    goaway = await peer.next_frame()
    assert goaway.type == MessageType.GOAWAY
    peer.request(2, [ECHO, None, None], "too late")
    frame, code, _, type_name = await answer(peer, 2)
    assert code == StatusCode.UNAVAILABLE
    assert frame.flags == FLAG_UNPROCESSED and type_name is None
    await peer.close()
    await stopping


async def test_a_handler_failure_is_not_marked_unprocessed(pair):
    server, _ = pair
    peer = await RawPeer.connect(server.address)
    peer.request(1, ["/helloworld.Greeter/Fail", None, None], 1)
    frame, code, _, type_name = await answer(peer, 1)
    assert (code, type_name, frame.flags & FLAG_UNPROCESSED) == (StatusCode.REMOTE_ERROR, "ValueError", 0)
    await peer.close()


@pytest.mark.parametrize("argument", [["a"], {"a": 1}, 42])
async def test_reflection_refuses_a_wrong_argument_as_an_invalid_request(client, caplog, argument):
    from gorpc import InvalidRequest

    # The built-in service declares its argument types: the server checks them, as any contract's.
    with pytest.raises(InvalidRequest, match=r"Describe does not match str \| None: Expected `str \| null`"):
        await client.call("/gorpc.Reflection/Describe", argument)
    with pytest.raises(InvalidRequest, match=r"/ListServices does not match None: Expected `null`, got"):
        await client.call("/gorpc.Reflection/ListServices", argument)
    assert "Traceback" not in caplog.text
    assert await client.call("/gorpc.Reflection/ListServices") == ["helloworld.Greeter"]
