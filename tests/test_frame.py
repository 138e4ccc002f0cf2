"""Frame encoding and parsing: round trips, chunked streams, refusals."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gorpc.exceptions import ProtocolError
from gorpc.frame import HEADER_SIZE, Frame, FrameDecoder, MessageType, OversizedFrame, encode_header

frames = st.tuples(
    st.sampled_from(list(MessageType)),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=300),
    st.binary(max_size=3000),
)


def encode(msg_type, rid, flags, codec, head, body):
    return encode_header(msg_type, rid, len(head), len(body), flags=flags, codec=codec) + head + body


def as_tuple(frame):
    return (frame.type, frame.request_id, frame.flags, frame.codec, bytes(frame.head), bytes(frame.body))


@given(st.lists(frames, max_size=8), st.data())
def test_any_frames_survive_any_chunking(specs, data):
    stream = b"".join(encode(*spec) for spec in specs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = FrameDecoder(max_size=1 << 20)
    decoded = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        decoded += decoder.feed(stream[start:end])
    assert [as_tuple(f) for f in decoded] == [tuple(s) for s in specs]
    assert decoder.buffered == 0


def test_header_is_twenty_bytes_big_endian():
    header = encode_header(MessageType.REQUEST, 0x01020304, 5, 6, flags=1, codec=2)
    assert len(header) == HEADER_SIZE == 20
    assert header == b"GR\x01\x01\x01\x02\x00\x00\x01\x02\x03\x04\x00\x00\x00\x05\x00\x00\x00\x06"


def test_bad_magic_is_refused():
    with pytest.raises(ProtocolError, match="bad magic"):
        FrameDecoder(1024).feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


def test_wrong_version_is_refused():
    frame = bytearray(encode(MessageType.PING, 0, 0, 0, b"", b""))
    frame[2] = 9
    with pytest.raises(ProtocolError, match="version 9"):
        FrameDecoder(1024).feed(bytes(frame))


def test_oversized_frame_is_reported_and_skipped_without_buffering():
    decoder = FrameDecoder(max_size=100)
    big = encode(MessageType.REQUEST, 7, 0, 1, b"h", b"x" * 10_000)
    after = encode(MessageType.REQUEST, 8, 0, 1, b"h", b"ok")
    out = decoder.feed(big[: HEADER_SIZE + 10])
    assert out == [OversizedFrame(MessageType.REQUEST, 7, 10_001)]
    for i in range(HEADER_SIZE + 10, len(big), 1000):  # the rest arrives in pieces and is dropped
        assert decoder.feed(big[i : i + 1000]) == []
        assert decoder.buffered == 0
    (frame,) = decoder.feed(after)
    assert isinstance(frame, Frame) and frame.request_id == 8 and bytes(frame.body) == b"ok"


def test_partial_frame_waits_for_the_rest():
    decoder = FrameDecoder(1 << 20)
    data = encode(MessageType.RESPONSE, 1, 0, 1, b"head", b"b" * 100_000)
    assert decoder.feed(data[:5]) == []
    assert decoder.feed(data[5:50_000]) == []
    (frame,) = decoder.feed(data[50_000:])
    assert bytes(frame.body) == b"b" * 100_000


def test_protocol_doc_example_is_what_the_client_sends():
    """docs/protocol.md shows a request byte by byte; it must match the encoder."""
    import re
    from pathlib import Path

    import msgpack

    from gorpc.envelope import pack_request_head

    doc = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    example = re.search(r"```\n((?:[0-9a-f]{2}[ \n])+)```", doc)
    assert example is not None
    head = pack_request_head("/helloworld.Greeter/SayHello", None, None)
    body = msgpack.packb({"msg": "hello"})
    sent = encode_header(MessageType.REQUEST, 1, len(head), len(body), codec=1) + head + body
    assert bytes.fromhex(example.group(1).replace("\n", " ")) == sent


def test_only_bodies_over_the_threshold_are_compressed():
    from gorpc.codecs import MsgpackCodec
    from gorpc.frame import FLAG_COMPRESSED
    from gorpc.payload import decode_body, encode_body

    codec = MsgpackCodec()
    small = encode_body(codec, "x" * 10, compress=True, threshold=100, limit=1 << 20, what="request")
    large = encode_body(codec, "x" * 1000, compress=True, threshold=100, limit=1 << 20, what="request")
    assert small[0] == 0
    assert large[0] == FLAG_COMPRESSED and len(large[1]) < 100
    out = decode_body(codec, large[0], memoryview(large[1]), limit=1 << 20, error=ProtocolError, what="x")
    assert out == "x" * 1000
