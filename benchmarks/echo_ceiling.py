"""The ceiling: a raw asyncio/uvloop pipelined msgpack echo with length-prefixed frames and request
ids, and no framework. `python benchmarks/echo_ceiling.py serve HOST:PORT` runs its server."""

from __future__ import annotations

import asyncio
import struct
import sys
from typing import Any

import msgpack
import uvloop

FRAME = struct.Struct("!II")  # length of the rest, request id


class EchoServer(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        out = []
        pos = 0
        while len(buf) - pos >= 8:
            length, rid = FRAME.unpack_from(buf, pos)
            if len(buf) - pos - 8 < length:
                break
            request = msgpack.unpackb(buf[pos + 8 : pos + 8 + length])
            reply = msgpack.packb({"msg": request["msg"] + " world"})
            out.append(FRAME.pack(len(reply), rid) + reply)
            pos += 8 + length
        del buf[:pos]
        if out:
            self.transport.write(b"".join(out))


class EchoClient(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        pos = 0
        while len(buf) - pos >= 8:
            length, rid = FRAME.unpack_from(buf, pos)
            if len(buf) - pos - 8 < length:
                break
            self.pending.pop(rid).set_result(msgpack.unpackb(buf[pos + 8 : pos + 8 + length]))
            pos += 8 + length
        del buf[:pos]

    async def call(self, request: Any) -> Any:
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        body = msgpack.packb(request)
        self.transport.write(FRAME.pack(len(body), self.next_id) + body)
        return await future


async def serve(address: str) -> None:
    host, port = address.rsplit(":", 1)
    server = await asyncio.get_running_loop().create_server(EchoServer, host, int(port))
    print(f"serving echo on {host}:{server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


async def connect(address: str) -> EchoClient:
    host, port = address.rsplit(":", 1)
    _, client = await asyncio.get_running_loop().create_connection(EchoClient, host, int(port))
    return client


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    uvloop.run(serve(sys.argv[2]))
