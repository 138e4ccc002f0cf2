"""Typed contracts: the request and reply types a method's annotations declare, and codecs that
decode straight into them.

A handler `async def SayHello(self, req: HelloRequest) -> HelloReply` has the contract
(HelloRequest, HelloReply); for streams the types are those of the items (`AsyncIterator[T]`).
An unannotated side (or `Any`) is untyped and goes through the codec as plain data, as before.
The server decodes requests into the request type and checks every reply against the reply type;
a client stub decodes replies into the reply type. Nothing about the wire changes.
"""

from __future__ import annotations

import collections.abc
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from gorpc.codecs import Decode
from gorpc.kinds import MethodKind
from gorpc.schema import check_decodable
from gorpc.types import Codec

_STREAM_IN = (collections.abc.AsyncIterator, collections.abc.AsyncIterable)
_STREAM_OUT = (
    *_STREAM_IN,
    collections.abc.AsyncGenerator,
    collections.abc.Iterator,
    collections.abc.Iterable,
    collections.abc.Generator,
)
_UNTYPED = (inspect.Parameter.empty, Any, object)


@dataclass(frozen=True)
class Signature:
    """What a method's signature says: its kind and its contract."""

    kind: MethodKind
    contract: Contract | None  # None: both sides untyped
    takes_context: bool
    unresolved: str = ""  # an annotation that did not evaluate (so the method is untyped)


@dataclass(eq=False)
class Contract:
    """The declared request and reply types of one method (None: that side is untyped), and the
    typed codecs made from them, one per base codec and side."""

    request: Any
    reply: Any
    path: str = ""  # the method's, for error messages (set at registration)
    # Made on first use, by base codec id: the call path looks here first (no method call).
    server_codecs: dict[int, Codec] = field(default_factory=dict, repr=False)
    client_codecs: dict[int, Codec] = field(default_factory=dict, repr=False)

    def server_codec(self, base: Codec, *, check: bool = True) -> Codec:
        """Decodes requests into the request type; checks replies against the reply type (unless
        not `check`). Made once per base codec (a server's config decides `check` once)."""
        return self._codec(base, True, check)

    def client_codec(self, base: Codec) -> Codec:
        """Decodes replies into the reply type; encodes typed requests."""
        return self._codec(base, False, False)

    def check(self) -> None:
        """Raise TypeError now if msgspec cannot decode a declared type."""
        for type_ in (self.request, self.reply):
            if type_ is not None:
                msgspec.msgpack.Decoder(type_)
                check_decodable(type_)

    def _codec(self, base: Codec, server: bool, check: bool) -> Codec:
        made = self.server_codecs if server else self.client_codecs
        codec = made.get(base.id)
        if codec is None:
            decoded, checked = (self.request, self.reply if check else None) if server else (self.reply, None)
            codec = made[base.id] = TypedCodec(base, decoded, checked, self.path)
        return codec


class TypedCodec:
    """`base`, decoding into `decoded` and checking what it encodes against `checked` (either may
    be None). A codec that offers `decoder_for(type)` decodes straight into the type; any other goes
    through its plain form (`msgspec.convert` / `msgspec.to_builtins`).

    A message that does not match raises msgspec.ValidationError, which says where and why; the
    layer that catches it names the type from `decoded_name` or `checked_name`. No wrapper around
    msgspec's own functions: each would cost a Python call per message.
    """

    def __init__(self, base: Codec, decoded: Any, checked: Any, path: str = "") -> None:
        self.path = path
        self.name = base.name
        self.id = base.id
        self.decoded_name = type_name(decoded) if decoded is not None else ""
        self.checked_name = type_name(checked) if checked is not None else ""
        native = getattr(base, "decoder_for", None)
        self.encode: Callable[[Any], bytes] = (
            base.encode if native is not None else lambda obj: base.encode(msgspec.to_builtins(obj))
        )
        self.decode: Decode = base.decode if decoded is None else _decoder(base, decoded)
        if checked is not None:
            self.encode = _checked_encoder(self.encode, _decoder(base, checked))


def _decoder(base: Codec, type_: Any) -> Decode:
    native = getattr(base, "decoder_for", None)
    if native is not None:
        return native(type_)  # type: ignore[no-any-return]
    return lambda data: msgspec.convert(base.decode(data), type_, strict=False)


def _checked_encoder(encode: Callable[[Any], bytes], check: Decode) -> Callable[[Any], bytes]:
    # Encoding alone checks nothing (a Struct takes any value for a field): decoding what was
    # encoded with the declared type's decoder does, for about what the encoding costs.
    def checked(obj: Any) -> bytes:
        body = encode(obj)
        check(body)
        return body

    return checked


def mismatch(codec: object, exc: msgspec.ValidationError, side: str = "decoded") -> str:
    """ "to /pkg.Svc/Method does not match HelloRequest: Expected `int`, got `str` - at `$.count`"
    for a message `codec` (a TypedCodec) refused."""
    name = getattr(codec, f"{side}_name", "") or "its declared type"
    path = getattr(codec, "path", "")
    return f"{'to ' + path + ' ' if path and side == 'decoded' else ''}does not match {name}: {exc}"


def type_name(type_: Any) -> str:
    """`HelloRequest`, `list[int]`, `str | None`: a type as a reader would write it."""
    if type_ is type(None):
        return "None"
    if isinstance(type_, type) and not typing.get_args(type_):
        return type_.__name__
    return repr(type_).replace("typing.", "")


def signature(func: Callable[..., Any], *, by_annotation: bool = False) -> Signature:
    """The kind and contract of a handler (or of an interface method, when `by_annotation`: there a
    reply annotated as an iterator means a reply stream, since an interface's bodies are `...`).

    Raises TypeError for a handler that takes neither (request) nor (request, context)."""
    params = [
        p
        for p in inspect.signature(func).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if inspect.isfunction(func) and params and params[0].name == "self":
        params = params[1:]  # a method of the class, not of an instance
    if len(params) not in (1, 2):
        raise TypeError(f"a handler takes (request) or (request, context), not {len(params)} args")
    hints = _hints(func)
    request = hints.get(params[0].name, params[0].annotation)
    reply = hints.get("return", inspect.Parameter.empty)
    streams_in = _is_stream(request, _STREAM_IN)
    streams_out = inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func)
    if by_annotation and not streams_out and _is_stream(reply, _STREAM_OUT):
        streams_out = True
    request_type = _item(request) if streams_in else _typed(request)
    reply_type = _item(reply) if streams_out else _typed(reply)
    unresolved = next((t for t in (request_type, reply_type) if isinstance(t, str)), "")
    if unresolved:
        request_type = reply_type = None  # an annotation that does not evaluate here: untyped
    contract = None if request_type is None and reply_type is None else Contract(request_type, reply_type)
    return Signature(_KINDS[streams_in, streams_out], contract, len(params) == 2, unresolved)


_KINDS = {
    (False, False): MethodKind.UNARY,
    (False, True): MethodKind.SERVER_STREAMING,
    (True, False): MethodKind.CLIENT_STREAMING,
    (True, True): MethodKind.BIDIRECTIONAL,
}


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    """The annotations, evaluated when they can be (`from __future__ import annotations` makes
    every annotation a string); the ones that cannot stay strings."""
    try:
        return typing.get_type_hints(func)
    except Exception:  # a name only a type checker sees: fall back to the text
        return dict(getattr(func, "__annotations__", {}))


def _is_stream(annotation: Any, origins: tuple[type, ...]) -> bool:
    """Whether `annotation` is one of `origins` (collections.abc or typing), bare or parameterised."""
    if isinstance(annotation, str):  # unevaluated: judge by the name
        name = annotation.split("[", 1)[0].rsplit(".", 1)[-1]
        return name in {origin.__name__ for origin in origins}
    return annotation in origins or typing.get_origin(annotation) in origins


def _item(annotation: Any) -> Any:
    """T of AsyncIterator[T] and the like; None when bare, unevaluated or Any."""
    args = typing.get_args(annotation) if not isinstance(annotation, str) else ()
    return _typed(args[0]) if args else None


def _typed(annotation: Any) -> Any:
    return None if any(annotation is untyped for untyped in _UNTYPED) else annotation
