"""The streaming ceiling: raw asyncio/uvloop streams of length-prefixed msgpack items, no framework.

A connection's first frame is [mode, count, size]: mode "server" makes the server send `count`
items of `size` bytes as fast as the socket takes them; mode "bidi" makes it decode and send back
each item it receives. Each item is encoded and decoded with msgpack, as a framework's would be.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import msgpack

LENGTH = struct.Struct("!I")
BATCH = 64  # items per write


class Framed(asyncio.Protocol):
    """Length-prefixed frames in, `item_received` per frame; writes wait while the peer is slow."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.writable = asyncio.Event()
        self.writable.set()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= 4:
            (length,) = LENGTH.unpack_from(buf, pos)
            if end - pos - 4 < length:
                break
            self.item_received(msgpack.unpackb(buf[pos + 4 : pos + 4 + length]))
            pos += 4 + length
        del buf[:pos]

    def item_received(self, item: Any) -> None:
        raise NotImplementedError


def frame(item: Any) -> bytes:
    body = msgpack.packb(item)
    return LENGTH.pack(len(body)) + body


class StreamServer(Framed):
    def __init__(self) -> None:
        super().__init__()
        self.mode: str | None = None
        self.out: list[bytes] = []

    def item_received(self, item: Any) -> None:
        if self.mode is None:
            self.mode, count, size = item
            if self.mode == "server":
                asyncio.get_running_loop().create_task(self.produce(count, size))
            return
        self.out.append(frame(item))  # bidi: each item back
        if len(self.out) >= BATCH:
            self.flush()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.flush()

    def flush(self) -> None:
        if self.out:
            self.transport.write(b"".join(self.out))
            self.out.clear()

    async def produce(self, count: int, size: int) -> None:
        data = b"x" * size
        for start in range(0, count, BATCH):
            await self.writable.wait()
            self.transport.write(b"".join(frame(data) for _ in range(min(BATCH, count - start))))


class StreamClient(Framed):
    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.received = 0
        self.done = asyncio.get_running_loop().create_future()

    def item_received(self, item: Any) -> None:
        self.received += 1
        if self.received == self.expected:
            self.done.set_result(None)


async def serve(address: str) -> None:
    host, port = address.rsplit(":", 1)
    server = await asyncio.get_running_loop().create_server(StreamServer, host, int(port))
    print(f"serving streams on {host}:{server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


async def run(address: str, mode: str, count: int, size: int) -> None:
    """One stream of `count` items: received from the server, or sent and echoed back."""
    host, port = address.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_connection(lambda: StreamClient(count), host, int(port))
    transport.write(frame([mode, count, size]))
    if mode == "bidi":
        data = b"x" * size
        for start in range(0, count, BATCH):
            await client.writable.wait()
            transport.write(b"".join(frame(data) for _ in range(min(BATCH, count - start))))
    await client.done
    transport.close()
