"""Calls over real sockets: shapes of handlers, concurrency, codecs, transports, clients."""

import asyncio
import ssl
import threading

import pytest
import trustme

from gorpc import BlockingClient, Client, InvalidRequest, Server, Unavailable
from gorpc.resolvers import StaticResolver
from gorpc.testing import loopback

from .conftest import Greeter

pytestmark = pytest.mark.asyncio


async def test_hello_world(client):
    assert await client.call("/helloworld.Greeter/SayHello", {"msg": "hello"}) == {"msg": "hello world"}


async def test_payload_types_round_trip(client):
    payload = {"int": -5, "float": 1.5, "bytes": b"\x00\xff", "list": [1, "two", None], "nested": {"t": True}}
    assert await client.call("/helloworld.Greeter/Echo", payload) == payload


async def test_context_carries_method_metadata_deadline_and_peer(client):
    reply = await client.call("/helloworld.Greeter/Context", None, metadata={"user": "ada"}, timeout=5)
    assert reply["method"] == "/helloworld.Greeter/Context"
    assert reply["metadata"] == {"user": "ada"}
    assert reply["peer"].startswith("127.0.0.1:")
    assert 4 < reply["remaining"] <= 5


async def test_calls_on_one_connection_complete_out_of_order(pair, greeter):
    _, client = pair
    slow = asyncio.create_task(client.call("/helloworld.Greeter/Sleep", 0.5))
    await greeter.started.wait()
    assert await client.call("/helloworld.Greeter/SayHello", {"msg": "fast"}) == {"msg": "fast world"}
    assert not slow.done()
    assert await slow == "slept"
    assert len(client.connections) == 1  # both calls shared one connection


async def test_many_calls_in_flight_get_their_own_replies(client):
    replies = await asyncio.gather(*(client.call("/helloworld.Greeter/Echo", i) for i in range(2000)))
    assert replies == list(range(2000))


async def test_sync_handler_runs_in_a_thread_and_does_not_block_the_loop(client):
    blocking = asyncio.create_task(client.call("/helloworld.Greeter/BlockingSleep", 0.5))
    # While the sync handler sleeps, async calls are still served.
    for _ in range(5):
        assert await client.call("/helloworld.Greeter/Echo", 1) == 1
    assert not blocking.done()
    thread_name = await blocking
    assert thread_name.startswith("gorpc-handler")


@pytest.mark.parametrize("codec", ["json", "msgpack"])
async def test_server_answers_in_the_callers_codec(greeter, codec):
    async with loopback(greeter, codec=codec) as (_, client):
        assert await client.call("/helloworld.Greeter/Echo", {"k": [1, 2]}) == {"k": [1, 2]}


async def test_zlib_compression_both_ways(greeter):
    big = {"text": "abc" * 100_000}
    async with loopback(greeter, compression="zlib", server_options={"compression": "zlib"}) as (_, client):
        assert await client.call("/helloworld.Greeter/Echo", big) == big


async def test_large_payload_under_the_limit(client):
    blob = bytes(range(256)) * 12_000  # 3 MB, under the 4 MiB default
    assert await client.call("/helloworld.Greeter/Echo", blob) == blob


async def test_one_way_call_runs_the_handler_without_a_reply(pair, greeter):
    _, client = pair
    assert await client.notify("/helloworld.Greeter/Record", {"event": 1}) is None
    assert await asyncio.wait_for(greeter.received.get(), 5) == {"event": 1}
    # An error in a one-way handler is logged on the server; the connection keeps working.
    await client.notify("/helloworld.Greeter/Fail", 1)
    assert await client.call("/helloworld.Greeter/Echo", 2) == 2


async def test_unix_socket(greeter, tmp_path):
    path = tmp_path / "gorpc.sock"
    server = Server(address=f"unix:{path}")
    server.register(greeter)
    async with server, Client(f"unix:{path}") as client:
        assert server.address == f"unix:{path}"
        assert await client.call("/helloworld.Greeter/SayHello", {"msg": "unix"}) == {"msg": "unix world"}
    assert not path.exists()  # the socket file is removed on stop


async def test_tls(greeter):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ssl)
    client_ssl = ssl.create_default_context()
    ca.configure_trust(client_ssl)
    server = Server(address="127.0.0.1:0", ssl=server_ssl)
    server.register(greeter)
    async with server:
        async with Client(server.address, ssl=client_ssl) as client:
            assert await client.call("/helloworld.Greeter/SayHello", {"msg": "tls"}) == {"msg": "tls world"}
        # A client that does not trust the server's CA is refused with a typed error.
        async with Client(server.address, ssl=ssl.create_default_context()) as untrusting:
            with pytest.raises(Unavailable, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.call("/helloworld.Greeter/SayHello", {"msg": "tls"})
        # A plain-text client cannot talk to a TLS server either.
        async with Client(server.address, heartbeat_interval=0.1, heartbeat_timeout=0.5) as plain:
            with pytest.raises(Unavailable):
                await plain.call("/helloworld.Greeter/SayHello", {"msg": "plain"})


async def test_tls_from_config_files(greeter, tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    pem = str(tmp_path / "server.pem")
    server = Server(address="127.0.0.1:0", tls_cert=pem, tls_key=pem)
    server.register(greeter)
    async with server, Client(server.address, tls_ca=str(tmp_path / "ca.pem")) as client:
        assert await client.call("/helloworld.Greeter/Echo", "secure") == "secure"


async def test_service_name_target_resolved_by_the_static_resolver(greeter):
    async with loopback(greeter) as (server, _):
        plugins = {"static": {"services": {"helloworld.Greeter": [server.address]}}}
        async with Client("helloworld.Greeter", plugins=plugins) as client:
            assert await client.call("/helloworld.Greeter/Echo", 7) == 7
        # With no target, the service named in the path is resolved.
        async with Client(plugins=plugins) as client:
            assert await client.call("/helloworld.Greeter/Echo", 8) == 8


async def test_servers_register_with_a_shared_resolver_and_calls_spread_over_them():
    resolver = StaticResolver()
    servers = [Server(address="127.0.0.1:0", resolver=resolver) for _ in range(3)]

    class Where(Greeter):
        name = "helloworld.Greeter"

        def __init__(self, index):
            super().__init__()
            self.index = index

        async def Which(self, req):
            return self.index

    for i, server in enumerate(servers):
        server.register(Where(i))
        await server.start()
    try:
        async with Client(resolver=resolver, balancer="round_robin") as client:
            seen = [await client.call("/helloworld.Greeter/Which") for _ in range(9)]
            assert sorted(seen) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
            await servers[0].stop()
            # The stopped server deregistered: every later call goes to the other two.
            seen = {await client.call("/helloworld.Greeter/Which") for _ in range(6)}
            assert seen == {1, 2}
            # Stopping a server did not close the shared resolver: a new server is still found.
            servers.append(Server(address="127.0.0.1:0", resolver=resolver))
            servers[-1].register(Where(3))
            await servers[-1].start()
            seen = {await client.call("/helloworld.Greeter/Which") for _ in range(6)}
            assert seen == {1, 2, 3}
    finally:
        for server in servers:
            await server.stop()


async def test_blocking_client_from_another_thread(pair):
    server, _ = pair
    result: dict = {}

    def script():
        with BlockingClient(server.address) as client:
            result["reply"] = client.call("/helloworld.Greeter/SayHello", {"msg": "sync"}, timeout=5)
            try:
                client.call("/helloworld.Greeter/Fail", 1)
            except Exception as exc:
                result["error"] = exc

    thread = threading.Thread(target=script)
    thread.start()
    await asyncio.to_thread(thread.join)
    assert result["reply"] == {"msg": "sync world"}
    assert type(result["error"]).__name__ == "RemoteError"


async def test_response_metadata_reaches_client_interceptors(greeter):
    seen = {}

    async def capture(ctx, request, next):
        try:
            return await next(ctx, request)
        finally:
            seen.update(ctx.response_metadata)

    async with loopback(greeter, interceptors=[capture]) as (_, client):
        await client.call("/helloworld.Greeter/Context", None)
        assert seen == {"served-by": "greeter"}
        seen.clear()
        with pytest.raises(InvalidRequest):  # an error reply carries what was set before the raise
            await client.call("/helloworld.Greeter/Refuse", None)
        assert seen == {"retry-after": "never"}


async def test_unknown_service_name_is_a_typed_error_naming_it():
    from gorpc import NoNodesAvailable

    async with Client("billing.Invoices") as client:
        with pytest.raises(NoNodesAvailable, match=r"'billing\.Invoices'"):
            await client.call("/billing.Invoices/Get", 1)


async def test_blocking_client_is_safe_to_share_between_threads(pair):
    server, _ = pair
    with BlockingClient(server.address) as client:

        def worker(n):
            return [client.call("/helloworld.Greeter/Echo", [n, i]) for i in range(50)]

        results = await asyncio.gather(*(asyncio.to_thread(worker, n) for n in range(4)))
    assert results == [[[n, i] for i in range(50)] for n in range(4)]


async def test_a_misspelt_call_option_is_a_type_error_naming_it(pair):
    server, client = pair
    with pytest.raises(TypeError, match="timout"):
        await client.call("/helloworld.Greeter/Echo", 1, timout=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="metdata"):
        await client.notify("/helloworld.Greeter/Record", 1, metdata={})  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"unknown per-call option\(s\) \['priority'\]"):
        await client.call("/helloworld.Greeter/Echo", 1, options={"priority": 1})
    with BlockingClient(server.address) as blocking, pytest.raises(TypeError, match="idempotnet"):
        await asyncio.to_thread(
            lambda: blocking.call("/helloworld.Greeter/Echo", 1, idempotnet=True)  # type: ignore[call-arg]
        )


async def test_per_call_options_a_plugin_declares_reach_it(greeter):
    seen = []

    async def by_priority(ctx, request, next):
        seen.append(ctx.options.get("priority"))
        return await next(ctx, request)

    by_priority.call_options = frozenset({"priority"})
    async with loopback(greeter, interceptors=[by_priority]) as (_, client):
        assert "priority" in client.plugin_call_options
        assert await client.call("/helloworld.Greeter/Echo", 1, options={"priority": 7}, hash_key="k") == 1
    assert seen == [7]
