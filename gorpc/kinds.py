"""The four kinds of method, and the shape a caller gives a call (which must fit the method's kind)."""

from __future__ import annotations

import enum


class StreamMode(enum.IntFlag):
    """How a call carries its messages: the `mode` a stream request head sends (docs/protocol.md).

    UNARY (0) is an ordinary request and reply. REQUESTS: the caller sends a stream of requests.
    REPLIES: the caller reads the replies as a stream.
    """

    UNARY = 0
    REQUESTS = 1
    REPLIES = 2


class MethodKind(enum.Enum):
    """What a handler's signature makes of a method."""

    UNARY = "unary"
    SERVER_STREAMING = "server-streaming"
    CLIENT_STREAMING = "client-streaming"
    BIDIRECTIONAL = "bidirectional"

    @property
    def streams_requests(self) -> bool:
        return self in (MethodKind.CLIENT_STREAMING, MethodKind.BIDIRECTIONAL)

    @property
    def streams_replies(self) -> bool:
        return self in (MethodKind.SERVER_STREAMING, MethodKind.BIDIRECTIONAL)

    @property
    def mode(self) -> StreamMode:
        """The shape of this kind's calls as its handler sees them."""
        return (StreamMode.REQUESTS if self.streams_requests else StreamMode.UNARY) | (
            StreamMode.REPLIES if self.streams_replies else StreamMode.UNARY
        )

    def accepts(self, mode: StreamMode) -> bool:
        """Whether a call of this shape fits: a client-streaming method's one reply may also be read
        as a stream of one (`client.stream(path, requests=...)`)."""
        if self is MethodKind.CLIENT_STREAMING:
            return bool(mode & StreamMode.REQUESTS)
        return mode == self.mode

    def how_to_call(self) -> str:
        """How a client calls a method of this kind, for errors."""
        return _HOW[self]


_HOW = {
    MethodKind.UNARY: "call it with client.call(path, request)",
    MethodKind.SERVER_STREAMING: "call it with client.stream(path, request)",
    MethodKind.CLIENT_STREAMING: "call it with client.call(path, requests=...)",
    MethodKind.BIDIRECTIONAL: "call it with client.stream(path, requests=...)",
}


def mismatch_message(path: str, kind: MethodKind) -> str:
    """The error for a call whose shape does not fit the method's kind."""
    return f"{path} is a {kind.value} method: {kind.how_to_call()}"
