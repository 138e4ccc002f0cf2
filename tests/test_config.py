"""Configuration: TOML and keywords give the same frozen, validated objects."""

import dataclasses

import pytest

from gorpc import ClientConfig, ConfigError, PluginNotFound, ServerConfig
from gorpc.resolvers import StaticResolver


def test_toml_and_keywords_build_the_same_config(tmp_path):
    path = tmp_path / "gorpc.toml"
    path.write_text(
        '[server]\naddress = "127.0.0.1:9000"\ngrace = 2.5\nmetadata = { weight = 3 }\n'
        '[client]\nbalancer = "random"\ntimeout = 1.5\ncodec = "json"\n'
        '[plugins.static]\nservices = { "a.B" = ["127.0.0.1:9000"] }\n'
    )
    server = ServerConfig.load(path)
    assert server == ServerConfig(
        address="127.0.0.1:9000",
        grace=2.5,
        metadata={"weight": "3"},
        plugins={"static": {"services": {"a.B": ["127.0.0.1:9000"]}}},
    )
    client = ClientConfig.load(path, timeout=3.0)
    assert (client.balancer, client.timeout, client.codec) == ("random", 3.0, "json")
    assert client.plugin_options("static")["services"] == {"a.B": ["127.0.0.1:9000"]}


def test_config_is_frozen_all_the_way_down():
    config = ServerConfig(metadata={"weight": "1"}, plugins={"static": {"services": {}}})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.grace = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.plugins["static"]["services"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        config.metadata["weight"] = "2"  # type: ignore[index]


def test_unknown_plugin_name_lists_the_known_ones():
    known = "consistent_hash, least_loaded, random, round_robin, weighted_round_robin"
    with pytest.raises(PluginNotFound, match=rf"unknown gorpc.balancers plugin 'fastest'; known: {known}"):
        ClientConfig(balancer="fastest")
    with pytest.raises(PluginNotFound, match=r"gorpc.codecs plugin 'xml'; known: json, msgpack"):
        ClientConfig(codec="xml")
    with pytest.raises(
        PluginNotFound, match=r"gorpc.resolvers plugin 'etcd'; known: consul, consul_dns, static"
    ):
        ServerConfig(resolver="etcd")


def test_unknown_option_is_refused_with_the_known_ones(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nadress = "127.0.0.1:1"\n')
    with pytest.raises(ConfigError, match=r"unknown \[server\] option\(s\) \['adress'\]; known: .*'address'"):
        ServerConfig.load(path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_message_size": 0}, "max_message_size"),
        ({"heartbeat_interval": 5, "heartbeat_timeout": 5}, "heartbeat_timeout must be greater"),
        ({"compression": "brotli"}, "compression must be one of"),
        ({"address": "nowhere"}, "is not host:port"),
        ({"address": "127.0.0.1:70000"}, "out of range"),
        ({"tls_cert": "cert.pem"}, "tls_cert and tls_key go together"),
        ({"grace": -1}, "grace must be >= 0"),
    ],
)
def test_invalid_server_options_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        ServerConfig(**options)


def test_missing_or_broken_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        ServerConfig.load(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        ServerConfig.load(broken)


def test_config_object_with_overrides():
    base = ClientConfig(timeout=1.0)
    assert ClientConfig.load(base, target="127.0.0.1:1").target == "127.0.0.1:1"
    assert ClientConfig.load(base, target="127.0.0.1:1").timeout == 1.0


def test_static_resolver_options_are_checked():
    with pytest.raises(ConfigError, match=r"unknown \[plugins.static\] option"):
        StaticResolver({"servics": {}})
    with pytest.raises(ConfigError, match="is not an address"):
        StaticResolver({"services": {"a.B": [42]}})


def test_unknown_tracer_name_is_refused_not_ignored():
    with pytest.raises(PluginNotFound, match=r"unknown gorpc.tracers plugin 'zipkin'"):
        ServerConfig(tracer="zipkin")
    with pytest.raises(PluginNotFound, match=r"unknown gorpc.tracers plugin 'zipkin'"):
        ClientConfig(tracer="zipkin")


def test_plugin_objects_are_passed_through(tmp_path):
    from gorpc import Client, Server
    from gorpc.codecs import JsonCodec

    class Tracing:
        def tracer(self, service_name):
            return None

    resolver = StaticResolver()
    tracing = Tracing()
    server = Server(address="127.0.0.1:0", resolver=resolver, tracer=tracing)
    client = Client("127.0.0.1:1", codec=JsonCodec(), tracer=tracing)
    assert server.tracing is tracing and client.tracing is tracing
    assert client._codec.name == "json"
