"""The head and body encodings round-trip whatever a caller may send."""

from hypothesis import given
from hypothesis import strategies as st

from gorpc.codecs import JsonCodec, MsgpackCodec
from gorpc.envelope import pack_request_head, pack_response_head, unpack_request_head, unpack_response_head
from gorpc.exceptions import InvalidRequest, StatusCode
from gorpc.payload import decode_body, encode_body

keys = st.text(max_size=20)
metadata = st.dictionaries(keys, st.one_of(st.text(max_size=50), st.binary(max_size=50)), max_size=5)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)
msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


@given(st.text(min_size=1), metadata, st.none() | st.floats(0, 1e6))
def test_request_head_round_trip(method, meta, timeout):
    head = memoryview(pack_request_head(method, meta, timeout))
    assert unpack_request_head(head) == (method, meta, timeout)


@given(st.sampled_from(list(StatusCode)), st.none() | st.text(), st.none() | st.text(), metadata)
def test_response_head_round_trip(code, message, type_name, meta):
    head = memoryview(pack_response_head(code, message, type_name, meta))
    assert unpack_response_head(head) == (code, message or "", type_name, meta or None)


@given(msgpack_values, st.booleans())
def test_msgpack_body_round_trip(value, compress):
    flags, body = encode_body(MsgpackCodec(), value, compress=compress, threshold=0, limit=1 << 20, what="x")
    assert (
        decode_body(MsgpackCodec(), flags, memoryview(body), limit=1 << 20, error=InvalidRequest, what="x")
        == value
    )


@given(json_values)
def test_json_body_round_trip(value):
    flags, body = encode_body(JsonCodec(), value, compress=False, threshold=0, limit=1 << 20, what="x")
    assert (
        decode_body(JsonCodec(), flags, memoryview(body), limit=1 << 20, error=InvalidRequest, what="x")
        == value
    )


def test_json_carries_a_non_finite_float_as_null():
    """JSON has no infinity or NaN: they travel as null, as in JSON.stringify (docs/protocol.md)."""
    codec = JsonCodec()
    assert codec.encode([float("inf"), float("nan")]) == b"[null,null]"
