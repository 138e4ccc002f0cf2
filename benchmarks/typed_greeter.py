"""The hello-world method with declared types: the server decodes each request into a
HelloRequest and checks each reply against HelloReply; the load generator calls it through a stub.
Its untyped twin is servers.py's Greeter."""

from __future__ import annotations

import msgspec

from gorpc import Service


class HelloRequest(msgspec.Struct):
    msg: str


class HelloReply(msgspec.Struct):
    msg: str


class TypedGreeter(Service):
    name = "helloworld.TypedGreeter"

    async def SayHello(self, req: HelloRequest) -> HelloReply:
        return HelloReply(req.msg + " world")
