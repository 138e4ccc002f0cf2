"""Services: which methods are served, and what registration refuses."""

import pytest

from gorpc import ConfigError, MethodNotFound, Server, Service
from gorpc.service import service_methods
from gorpc.testing import loopback


class Greeter(Service):
    name = "helloworld.Greeter"

    async def SayHello(self, req):
        """Greets."""
        return req

    def Blocking(self, req, ctx):
        return req

    def _helper(self):
        return None


def test_public_methods_are_served_with_their_shape():
    methods = {m.path: m for m in service_methods(Greeter())}
    assert sorted(methods) == ["/helloworld.Greeter/Blocking", "/helloworld.Greeter/SayHello"]
    assert methods["/helloworld.Greeter/SayHello"].is_async
    assert not methods["/helloworld.Greeter/SayHello"].takes_context
    assert methods["/helloworld.Greeter/SayHello"].doc == "Greets."
    assert not methods["/helloworld.Greeter/Blocking"].is_async
    assert methods["/helloworld.Greeter/Blocking"].takes_context


def test_service_name_defaults_to_the_class_name():
    class Echo(Service):
        async def Echo(self, req):
            return req

    assert [m.path for m in service_methods(Echo())] == ["/Echo/Echo"]


def test_duplicate_service_name_is_refused():
    server = Server(address="127.0.0.1:0")
    server.register(Greeter())
    with pytest.raises(ConfigError, match="already registered"):
        server.register(Greeter())


def test_handler_with_wrong_arity_is_refused():
    class Bad(Service):
        async def TooMany(self, a, b, c):
            return a

    with pytest.raises(ConfigError, match=r"takes \(request\) or \(request, context\)"):
        Server(address="127.0.0.1:0").register(Bad())


def test_non_service_is_refused():
    with pytest.raises(ConfigError, match=r"not a gorpc.Service"):
        Server(address="127.0.0.1:0").register(object())  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_every_server_describes_itself_unless_told_not_to():
    async with loopback(Greeter()) as (server, client):
        assert server.services == ["helloworld.Greeter"]  # reflection is not registered with resolvers
        assert await client.call("/gorpc.Reflection/ListServices") == ["helloworld.Greeter"]
        [described] = await client.call("/gorpc.Reflection/Describe", "helloworld.Greeter")
        assert described["name"] == "helloworld.Greeter"
        assert [(m["name"], m["runs"], m["doc"]) for m in described["methods"]] == [
            ("Blocking", "thread", ""),
            ("SayHello", "async", "Greets."),
        ]
    async with loopback(Greeter(), server_options={"reflection": False}) as (_, client):
        with pytest.raises(MethodNotFound):
            await client.call("/gorpc.Reflection/ListServices")
