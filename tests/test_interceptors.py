"""Interceptors on both sides: order, metadata, short-circuits, and one chain per client/server."""

import pytest

from gorpc import Client, InvalidRequest, Server, Unavailable
from gorpc import client as client_module
from gorpc import dispatch as dispatch_module
from gorpc.testing import loopback

pytestmark = pytest.mark.asyncio


def recorder(name, log):
    async def interceptor(ctx, request, next):
        log.append(f"{name}>")
        reply = await next(ctx, request)
        log.append(f"<{name}")
        return reply

    return interceptor


async def test_first_interceptor_is_outermost_on_both_sides(greeter):
    log: list[str] = []

    async def handler_mark(ctx, request, next):
        log.append("handler")
        return await next(ctx, request)

    server_chain = [recorder("s1", log), recorder("s2", log), handler_mark]
    client_chain = [recorder("c1", log), recorder("c2", log)]
    async with loopback(
        greeter, server_options={"interceptors": server_chain}, interceptors=client_chain
    ) as (_, client):
        assert await client.call("/helloworld.Greeter/Echo", 1) == 1
    assert log == ["c1>", "c2>", "s1>", "s2>", "handler", "<s2", "<s1", "<c2", "<c1"]


async def test_client_interceptor_adds_metadata_the_handler_sees(greeter):
    async def add_token(ctx, request, next):
        ctx.metadata["authorization"] = "Bearer t0ken"
        return await next(ctx, request)

    caller_metadata = {"trace": "1"}
    async with loopback(greeter, interceptors=[add_token]) as (_, client):
        reply = await client.call("/helloworld.Greeter/Context", None, metadata=caller_metadata)
    assert reply["metadata"] == {"trace": "1", "authorization": "Bearer t0ken"}
    assert caller_metadata == {"trace": "1"}  # the caller's dict is not changed


async def test_server_interceptor_can_refuse_a_call_before_the_handler(greeter):
    async def require_token(ctx, request, next):
        if ctx.metadata.get("authorization") != "secret":
            raise InvalidRequest("missing or bad token")
        return await next(ctx, request)

    async with loopback(greeter, server_options={"interceptors": [require_token]}) as (_, client):
        with pytest.raises(InvalidRequest, match="missing or bad token"):
            await client.call("/helloworld.Greeter/Record", "x")
        assert greeter.received.empty()
        assert await client.call("/helloworld.Greeter/Echo", 1, metadata={"authorization": "secret"}) == 1


async def test_client_interceptor_can_answer_without_calling_the_server(pair):
    server, _ = pair

    async def cache(ctx, request, next):
        if request == "cached":
            return "from cache"
        return await next(ctx, request)

    await server.stop()
    async with Client(server.address, interceptors=[cache]) as client:
        assert await client.call("/helloworld.Greeter/Echo", "cached") == "from cache"
        with pytest.raises(Unavailable):
            await client.call("/helloworld.Greeter/Echo", "live")


async def test_chains_are_built_once_not_per_call(greeter, monkeypatch):
    built = []

    def counting(build):
        def wrapper(*args):
            built.append(build)
            return build(*args)

        return wrapper

    monkeypatch.setattr(client_module, "build_chain", counting(client_module.build_chain))
    monkeypatch.setattr(dispatch_module, "build_chain", counting(dispatch_module.build_chain))
    interceptors = [recorder("x", [])]
    server = Server(address="127.0.0.1:0", interceptors=interceptors)
    server.register(greeter)
    async with server, Client(server.address, interceptors=interceptors) as client:
        for i in range(20):
            assert await client.call("/helloworld.Greeter/Echo", i) == i
    # One for the server; two for the client, made with it: unary calls' and stream calls'.
    assert len(built) == 3
