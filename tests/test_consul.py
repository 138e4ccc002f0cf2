"""The consul resolver against a real Consul dev agent: registration, watches, failover, outages, ACLs."""

import asyncio
import base64
import json
import logging
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from gorpc import Client, NoNodesAvailable, Server, Unavailable
from gorpc.exceptions import ConfigError
from gorpc.testing import eventually, server_process
from gorpc.types import ServiceInstance
from gorpc_consul import ConsulError, ConsulPermissionDenied, ConsulResolver, dns_label
from gorpc_consul.dns import ConsulDnsResolver
from gorpc_consul.testing import cluster, dev_agent, free_ports

from .consul_helpers import SERVICE, Where, consul_plugins, start_where, stop_all

CALL = f"/{SERVICE}/Which"
EXAMPLE_SERVER = Path(__file__).resolve().parent.parent / "examples" / "consul" / "server.py"
consul = pytest.mark.consul


@pytest.fixture(scope="module")
def agent():
    """One dev agent for the module's tests; each test uses its own key prefix."""
    with dev_agent() as consul_agent:
        yield consul_agent


@pytest.fixture
def prefix(request):
    return f"t-{request.node.name.replace('[', '-').rstrip(']')}"


def kv(agent, path):
    return agent.get(f"/kv/{path}?recurse=true") or []


def client_for(agent, prefix, **options):
    return Client(
        SERVICE, resolver="consul", plugins=consul_plugins(agent.http_address, prefix=prefix), **options
    )


@consul
@pytest.mark.asyncio
async def test_registration_writes_keys_under_a_session_and_an_agent_service(agent, prefix):
    metadata = {"weight": "3", "version": "1.2.0", "tags": "blue, canary"}
    server = await start_where("a", agent.http_address, prefix=prefix, metadata=metadata)
    try:
        [entry] = kv(agent, f"{prefix}/{SERVICE}/")
        assert entry["Key"] == f"{prefix}/{SERVICE}/{server.address}"
        assert json.loads(base64.b64decode(entry["Value"])) == {
            "address": server.address,
            "metadata": metadata,
        }
        [session] = agent.get(f"/session/info/{entry['Session']}")
        assert (session["Behavior"], session["TTL"], session["LockDelay"]) == ("delete", "10s", 0)
        # Bound to the instance's TCP check: a dead server's keys go when the check fails.
        assert session["NodeChecks"] == ["serfHealth"]
        assert [c["ID"] for c in session["ServiceChecks"]] == [f"service:gorpc:{SERVICE}:{server.address}"]
        service = agent.get("/agent/services")[f"gorpc:{SERVICE}:{server.address}"]
        assert service["Service"] == dns_label(SERVICE) == "test-where"
        assert service["Tags"] == ["blue", "canary"]
        assert service["Meta"] == {**metadata, "gorpc_service": SERVICE, "gorpc_prefix": prefix}
        assert service["Weights"]["Passing"] == 3
        # The agent's TCP check reaches the server: the instance shows as passing in the health API.
        await eventually(lambda: agent.get(f"/health/service/{dns_label(SERVICE)}?passing=true"), timeout=10)
    finally:
        await server.stop()
    # A graceful stop takes everything back.
    assert kv(agent, f"{prefix}/{SERVICE}/") == []
    assert agent.get(f"/session/info/{entry['Session']}") in (None, [])
    assert f"gorpc:{SERVICE}:{server.address}" not in agent.get("/agent/services")


@consul
@pytest.mark.asyncio
async def test_a_watching_client_routes_to_a_new_server_within_a_second(agent, prefix):
    first = await start_where("first", agent.http_address, prefix=prefix)
    second = None
    try:
        async with client_for(agent, prefix) as client:
            assert await client.call(CALL) == "first"
            second = await start_where("second", agent.http_address, prefix=prefix)
            started = time.monotonic()
            while await client.call(CALL) != "second":
                pass
            took = time.monotonic() - started
            print(f"new server taking calls {took * 1000:.0f} ms after its start returned")
            assert took < 1.0
    finally:
        await stop_all(first, second)


@consul
@pytest.mark.asyncio
async def test_a_gracefully_stopped_server_leaves_rotation_within_a_second_and_no_call_fails(agent, prefix):
    servers = [await start_where(label, agent.http_address, prefix=prefix) for label in ("a", "b", "c")]
    try:
        async with client_for(agent, prefix) as client:
            await client.call(CALL)
            assert len(client.known_nodes(SERVICE)) == 3
            stopping = servers.pop()
            load = [asyncio.ensure_future(client.call(CALL)) for _ in range(200)]
            await stopping.stop()
            took = await eventually(lambda: len(client.known_nodes(SERVICE)) == 2, timeout=5)
            print(f"stopped server out of the client's list {took * 1000:.0f} ms after stop() returned")
            assert took < 1.0
            replies = await asyncio.gather(*load)
            assert len(replies) == 200  # every call answered, none lost to the stop
            assert set(Counter(await asyncio.gather(*(client.call(CALL) for _ in range(20))))) == {"a", "b"}
    finally:
        await stop_all(*servers)


@consul
@pytest.mark.slow
@pytest.mark.asyncio
async def test_a_killed_server_is_ejected_at_once_and_its_keys_vanish_when_its_check_fails(agent, prefix):
    def example_server(label):
        argv = [str(EXAMPLE_SERVER), "--consul", agent.http_address, "--label", label, "--prefix", prefix]
        return server_process(argv)

    hello = "examples.Hello"
    plugins = consul_plugins(agent.http_address, prefix=prefix)

    def keys():
        return len(kv(agent, f"{prefix}/{hello}/"))

    async def who(client):
        return (await client.call(f"/{hello}/SayHello", {"name": "x"}))["server"]

    with example_server("survivor"), example_server("doomed") as doomed:
        # SayHello is idempotent: a call caught on the dead connection may go to another node too.
        async with Client(hello, resolver="consul", plugins=plugins, idempotent=[hello]) as client:
            assert keys() == 2
            assert {await who(client) for _ in range(4)} == {"survivor", "doomed"}
            doomed.stop(signal.SIGKILL)
            # Failover answers every call (connection refused: the request never left; connection
            # lost: idempotent), and the first failure ejects the dead node: no more attempts.
            assert [await who(client) for _ in range(20)] == ["survivor"] * 20
            assert client.ejected_nodes == [doomed.address]
            # Its key was held by a session bound to its TCP check: it goes when the check fails.
            gone_after = await eventually(lambda: keys() == 1, timeout=30, interval=0.2)
            await eventually(lambda: len(client.known_nodes(hello)) == 1)
            print(f"killed server's key gone after {gone_after:.1f}s")


@consul
@pytest.mark.asyncio
async def test_calls_keep_working_from_the_cache_when_consul_stops(prefix):
    with dev_agent() as own_agent:
        server = await start_where("a", own_agent.http_address, prefix=prefix)
        try:
            async with client_for(own_agent, prefix) as client:
                assert await client.call(CALL) == "a"
                own_agent.stop()  # SIGTERM by PID
                assert [await client.call(CALL) for _ in range(20)] == ["a"] * 20
                # A client that never resolved the service gets a clear error instead.
                async with client_for(own_agent, prefix) as newcomer:
                    with pytest.raises(Unavailable, match=r"consul at .* is unreachable"):
                        await newcomer.call(CALL)
        finally:
            await server.stop()  # deregistration fails (logged); the stop completes


@consul
@pytest.mark.asyncio
async def test_an_unreachable_consul_fails_server_start_with_a_typed_error():
    address = f"127.0.0.1:{free_ports(1)[0]}"
    server = Server(
        address="127.0.0.1:0", resolver="consul", plugins=consul_plugins(address, register_retry=0.3)
    )
    server.register(Where("a"))
    started = time.monotonic()
    with pytest.raises(ConsulError, match=f"consul at {address} is unreachable"):
        await server.start()
    assert time.monotonic() - started >= 0.3  # it retried for register_retry seconds first
    assert server.connections == set()


@consul
@pytest.mark.asyncio
async def test_acl_token_is_required_and_used(prefix):
    with dev_agent(acl_token="s3cret") as acl_agent:
        anonymous = Server(
            address="127.0.0.1:0", resolver="consul", plugins=consul_plugins(acl_agent.http_address)
        )
        anonymous.register(Where("a"))
        with pytest.raises(ConsulPermissionDenied, match=r"permission denied.*token"):
            await anonymous.start()
        server = await start_where("a", acl_agent.http_address, prefix=prefix, token="s3cret")
        try:
            plugins = consul_plugins(acl_agent.http_address, prefix=prefix, token="s3cret")
            async with Client(SERVICE, resolver="consul", plugins=plugins) as client:
                assert await client.call(CALL) == "a"
            # Without a token, ACLs hide the keys: the service has no nodes.
            async with client_for(acl_agent, prefix) as client:
                with pytest.raises(NoNodesAvailable, match=SERVICE):
                    await client.call(CALL)
        finally:
            await server.stop()


@consul
@pytest.mark.asyncio
async def test_a_service_is_found_in_another_datacenter(prefix):
    with dev_agent(datacenter="dc1") as dc1, dev_agent(datacenter="dc2") as dc2:
        dc2.join_wan(dc1)
        await eventually(lambda: sorted(dc1.get("/catalog/datacenters")) == ["dc1", "dc2"], timeout=15)
        server = await start_where("in-dc2", dc2.http_address, prefix=prefix)
        try:
            cross = consul_plugins(dc1.http_address, prefix=prefix, datacenter="dc2")
            async with Client(SERVICE, resolver="consul", plugins=cross) as client:
                assert await client.call(CALL) == "in-dc2"
            async with client_for(dc1, prefix) as local:  # KV is per datacenter
                with pytest.raises(NoNodesAvailable):
                    await local.call(CALL)
        finally:
            await server.stop()


@consul
@pytest.mark.asyncio
async def test_consul_dns_resolver_returns_passing_instances_only(agent, prefix):
    live = await start_where("live", agent.http_address, prefix=prefix)
    dead_address = f"127.0.0.1:{free_ports(1)[0]}"
    resolver = ConsulResolver(consul_plugins(agent.http_address, prefix=prefix)["consul"])
    dead = ServiceInstance(SERVICE, dead_address, {})
    await resolver.register(dead)  # its TCP check can never pass
    options = {"address": agent.http_address, "prefix": prefix, "dns_address": agent.dns_address}
    dns = ConsulDnsResolver(options)
    try:
        assert dns.query_name(SERVICE) == "test-where.service.consul."

        async def only_the_live_one():
            nodes = await dns.resolve(SERVICE)
            return [(n.address, n.metadata) for n in nodes] == [(live.address, {"weight": "1"})]

        await eventually(only_the_live_one, timeout=10)
        async with Client(SERVICE, resolver="consul_dns", plugins={"consul_dns": options}) as client:
            assert await client.call(CALL) == "live"
    finally:
        await resolver.deregister(dead)
        await resolver.close()
        await dns.close()
        await live.stop()


def test_options_are_validated():
    with pytest.raises(ConfigError, match=r"unknown \[plugins.consul\] option\(s\) \['adress'\]"):
        ConsulResolver({"adress": "127.0.0.1:8500"})
    with pytest.raises(ConfigError, match=r"session_ttl must be 10\.\.86400"):
        ConsulResolver({"session_ttl": 5})
    with pytest.raises(ConfigError, match="scheme must be"):
        ConsulResolver({"scheme": "ftp"})
    assert ConsulResolver({"scheme": "https", "address": "consul.internal:8501"}).options.base_url == (
        "https://consul.internal:8501/v1"
    )


def test_dns_labels_are_dns_safe_and_distinct():
    assert dns_label("helloworld.Greeter") == "helloworld-greeter"
    assert dns_label("a_b..C") == "a-b-c"
    long = dns_label("x" * 80)
    assert len(long) <= 63 and long != dns_label("x" * 81)


@consul
@pytest.mark.slow
@pytest.mark.asyncio
async def test_registration_and_discovery_survive_the_loss_of_the_cluster_leader(prefix):
    with cluster(3) as servers:
        leader_address = servers[0].leader()
        [leader] = [s for s in servers if leader_address.endswith(f":{s.ports['server']}")]
        follower = next(s for s in servers if s is not leader)
        first = await start_where("first", follower.http_address, prefix=prefix)
        second = None
        try:
            async with client_for(follower, prefix) as client:
                assert await client.call(CALL) == "first"
                killed_at = time.monotonic()
                leader.kill()
                elected = await eventually(
                    lambda: follower.leader() not in ("", leader_address), timeout=30, interval=0.05
                )
                # Registration rides out the election by retrying; discovery's watch catches up.
                second = await start_where("second", follower.http_address, prefix=prefix, register_retry=30)
                registered = time.monotonic() - killed_at

                async def second_is_found():
                    return await client.call(CALL) == "second"

                await eventually(second_is_found, timeout=30, interval=0.05)
                found = time.monotonic() - killed_at
                assert await client.call(CALL) in ("first", "second")
                print(f"new leader after {elected:.1f}s, registered {registered:.1f}s, found {found:.1f}s")
        finally:
            await stop_all(first, second)


@consul
@pytest.mark.slow
@pytest.mark.asyncio
async def test_a_server_registers_again_when_consul_comes_back_empty(prefix):
    with dev_agent() as own_agent:
        server = await start_where("a", own_agent.http_address, prefix=prefix)
        try:
            own_agent.stop()
            own_agent.start()  # a dev agent keeps nothing: no session, no keys, no services
            own_agent.wait_for_leader()
            assert kv(own_agent, f"{prefix}/{SERVICE}/") == []
            # The renewer finds its session gone, makes a new one and writes everything again.
            took = await eventually(
                lambda: len(kv(own_agent, f"{prefix}/{SERVICE}/")) == 1, timeout=20, interval=0.1
            )
            assert f"gorpc:{SERVICE}:{server.address}" in own_agent.get("/agent/services")
            print(f"registered again {took:.1f}s after the agent came back")
        finally:
            await server.stop()


def leader_of(servers, local):
    """The server agent that `local` sees as leader now, and its address."""
    address = local.leader()
    [leader] = [s for s in servers if address.endswith(f":{s.ports['server']}")]
    return leader, address


async def election(servers, local):
    """Kill -9 the leader; return it once `local` sees another, and how long that took."""
    leader, address = leader_of(servers, local)
    killed_at = time.monotonic()
    leader.kill()
    await eventually(lambda: local.leader() not in ("", address), timeout=30, interval=0.05)
    return leader, time.monotonic() - killed_at


@consul
@pytest.mark.slow
@pytest.mark.asyncio
async def test_discovery_through_a_client_agent_lags_a_leader_election_by_under_a_second(prefix):
    with cluster(3, clients=1) as members:
        *servers, local = members  # services and clients use the client agent, as on a real host
        first = await start_where("first", local.http_address, prefix=prefix)
        second = None
        try:
            async with client_for(local, prefix) as client:
                assert await client.call(CALL) == "first"
                # One election: the agent answers 500s for seconds and the watch's polls fail.
                dead, took_first = await election(servers, local)
                dead.start()  # back as a follower: the cluster can lose another leader
                await asyncio.to_thread(dead.wait_for_leader)
                # A second one, with no change of the service in between.
                _, took_second = await election(servers, local)
                second = await start_where("second", local.http_address, prefix=prefix, register_retry=30)
                registered = time.monotonic()

                async def second_is_found():
                    return await client.call(CALL) == "second"

                await eventually(second_is_found, timeout=30, interval=0.01)
                found = time.monotonic() - registered
                print(
                    f"\nelections of {took_first:.1f}s and {took_second:.1f}s; a server registered right "
                    f"after the second was routable {found:.2f}s after its registration"
                )
                assert found < 1.0
        finally:
            await stop_all(first, second)


def test_watch_pauses_stay_short_while_the_agent_answers_and_reset_on_any_good_poll():
    from gorpc_consul.watching import Pauses

    pauses = Pauses()
    answered = ConsulError("failed with 500: No cluster leader", status=500)
    assert [pauses.after(answered) for _ in range(6)] == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]
    pauses.reset()  # one good poll: a later transient error pauses briefly again
    assert pauses.after(answered) == 0.1
    unreachable = ConsulError("connection refused")
    pauses.reset()
    assert max(pauses.after(unreachable) for _ in range(10)) == 1.0


def test_nodes_from_before_an_agent_restart_stay_until_seen_again_or_the_hold_passes(monkeypatch):
    from gorpc.types import Node
    from gorpc_consul import watching

    now = [100.0]
    monkeypatch.setattr(watching.time, "monotonic", lambda: now[0])
    a, b, c = Node("127.0.0.1:1"), Node("127.0.0.1:2"), Node("127.0.0.1:3")
    guard = watching.RestartGuard(hold=10)
    assert guard.apply([a]) == [a] and guard.time_left() is None
    guard.restarted([a, b])
    assert guard.apply([]) == [a, b]  # the new agent is still empty
    assert guard.apply([a, c]) == [a, b, c]  # a is back and c is new; b is still kept
    assert guard.apply([c]) == [b, c]  # a, seen again, is no longer protected: it left
    now[0] += 10
    assert guard.apply([c]) == [c] and guard.time_left() is None  # b never came back


class StreamingWhere(Where):
    """Where, with a stream of its label."""

    name = SERVICE

    async def Labels(self, n: int):
        for _ in range(n):
            yield self.label


async def start_streaming_where(label, agent, prefix, **options):
    server = Server(
        address="127.0.0.1:0",
        resolver="consul",
        plugins=consul_plugins(agent.http_address, prefix=prefix),
        **options,
    )
    server.register(StreamingWhere(label))
    await server.start()
    return server


@consul
@pytest.mark.asyncio
async def test_a_stream_fails_over_before_its_first_reply_and_never_after_it(agent, prefix, caplog):
    busy = await start_streaming_where("busy", agent, prefix, max_concurrent_streams=1, grace=0)
    free = await start_streaming_where("free", agent, prefix, grace=0)
    try:
        async with client_for(agent, prefix) as client:
            # `busy` takes one stream at a time per connection; hold one open on the client's.
            opened = [client.stream(f"/{SERVICE}/Labels", 1_000_000) for _ in range(2)]
            assert sorted([await anext(s) for s in opened]) == ["busy", "free"]  # round robin
            caplog.set_level(logging.INFO, "gorpc.client")
            streams = [[r async for r in client.stream(f"/{SERVICE}/Labels", 3)] for _ in range(6)]
            assert streams == [["free"] * 3] * 6  # every stream went to `free`, with no error
            assert "failed on " + busy.address in caplog.text  # the balancer's turns on busy failed over
            for stream in opened:
                await stream.aclose()

            # A stream that has had a reply is not tried again: its caller gets the error.
            replies = client.stream(f"/{SERVICE}/Labels", 1_000_000)
            first = await anext(replies)
            server = busy if first == "busy" else free
            await server.stop(grace=0)
            with pytest.raises(Unavailable):
                async for _ in replies:
                    pass
    finally:
        await stop_all(busy, free)


@consul
@pytest.mark.asyncio
async def test_a_not_serving_status_takes_the_instance_out_of_discovery_within_a_second(agent, prefix):
    from gorpc.serving import ServingStatus

    servers = [await start_where(name, agent.http_address, prefix=prefix) for name in ("a", "b")]
    a = servers[0]
    serving_check = f"service:gorpc:{SERVICE}:{a.address}:serving"
    try:
        async with client_for(agent, prefix) as client:
            assert await client.call(CALL) in ("a", "b")
            await eventually(lambda: len(client.known_nodes(SERVICE)) == 2, timeout=5)
            a.health.set(SERVICE, ServingStatus.NOT_SERVING)
            took = await eventually(lambda: len(client.known_nodes(SERVICE)) == 1, timeout=5)
            assert took < 1.0, f"still routable {took:.2f}s after NOT_SERVING"
            assert {await client.call(CALL) for _ in range(10)} == {"b"}
            # Consul's own health view follows too: the serving check of that instance is critical.
            assert agent.get("/agent/checks")[serving_check]["Status"] == "critical"
            a.health.set(SERVICE, "SERVING")
            took = await eventually(lambda: len(client.known_nodes(SERVICE)) == 2, timeout=5)
            assert took < 1.0, f"not routable {took:.2f}s after SERVING"
            assert agent.get("/agent/checks")[serving_check]["Status"] == "passing"
    finally:
        await stop_all(*servers)
