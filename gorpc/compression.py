"""zlib compression of payloads, bounded on the way in so a small body cannot inflate without limit.

The frame header has one compression bit, so there is one algorithm: `compression = "zlib"`.
"""

from __future__ import annotations

import zlib

from gorpc.exceptions import MessageTooLarge

CHOICES = ("none", "zlib")


def compress(data: bytes, level: int = 6) -> bytes:
    return zlib.compress(data, level)


def decompress(data: bytes | memoryview, limit: int) -> bytes:
    """Inflate `data`, refusing output over `limit` bytes; raises ValueError on a corrupt stream."""
    inflater = zlib.decompressobj()
    try:
        # max_length stops one byte past the limit: the check never inflates more than limit+1 bytes.
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"corrupt zlib stream: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        # Freed before raising: the traceback keeps this frame, and with it any local, alive for
        # as long as someone holds the exception.
        del out, inflater
        raise MessageTooLarge(f"compressed message inflates past the {limit}-byte limit")
    if not inflater.eof:
        raise ValueError("truncated zlib stream")
    return out
