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
    assert client.codec.name == "json"


def test_keyword_plugin_options_merge_into_the_files_per_option(tmp_path):
    path = tmp_path / "gorpc.toml"
    path.write_text(
        '[plugins.opentelemetry]\nendpoint = "http://file:4318/v1/traces"\nservice_name = "checkout"\n'
        "sampler_ratio = 0.5\n"
        '[plugins.static]\nservices = { "a.B" = ["127.0.0.1:9000"] }\n'
    )
    config = ClientConfig.load(path, plugins={"opentelemetry": {"endpoint": "http://kw:4318/v1/traces"}})
    assert dict(config.plugin_options("opentelemetry")) == {
        "endpoint": "http://kw:4318/v1/traces",  # the keyword wins ...
        "service_name": "checkout",  # ... and the file's other options and tables stay
        "sampler_ratio": 0.5,
    }
    assert config.plugin_options("static")["services"] == {"a.B": ["127.0.0.1:9000"]}
    again = ClientConfig.load(config, plugins={"static": {"services": {}}})  # from a config object too
    assert again.plugin_options("opentelemetry")["service_name"] == "checkout"
    assert again.plugin_options("static")["services"] == {}


@pytest.mark.parametrize(
    ("role", "options", "message"),
    [
        (ClientConfig, {"tls": "false"}, r"\[client\] tls must be a boolean, got 'false' \(str\)"),
        (ClientConfig, {"uvloop": "false"}, r"\[client\] uvloop must be a boolean, got 'false'"),
        (ClientConfig, {"retries": "2"}, r"\[client\] retries must be an integer, got '2' \(str\)"),
        (ClientConfig, {"retries": True}, r"retries must be an integer, got True \(bool\)"),
        (ClientConfig, {"timeout": "1"}, r"\[client\] timeout must be a number or none, got '1'"),
        (ClientConfig, {"idempotent": [1]}, r"idempotent must be a list of a string, got \[1\]"),
        (ServerConfig, {"max_workers": 2.5}, r"\[server\] max_workers must be an integer or none, got 2.5"),
        (ServerConfig, {"grace": "5"}, r"\[server\] grace must be a number, got '5'"),
        (ServerConfig, {"metadata": {"w": [1]}}, r"\[server\] metadata must be a table of a string to"),
        (
            ServerConfig,
            {"plugins": {"static": 1}},
            r"\[server\] plugins must be a table of a string to a table",
        ),
    ],
)
def test_option_values_are_checked_against_their_types(role, options, message):
    with pytest.raises(ConfigError, match=message):
        role.load(None, **options)


def test_option_types_are_checked_in_toml_files_too(tmp_path):
    path = tmp_path / "gorpc.toml"
    path.write_text('[client]\ntls = "false"\n')
    with pytest.raises(ConfigError, match=r"\[client\] tls must be a boolean, got 'false'"):
        ClientConfig.load(path)


def test_an_int_is_a_float_but_not_the_other_way_round():
    assert ServerConfig.load(None, grace=2).grace == 2
    with pytest.raises(ConfigError, match="max_concurrent_calls must be an integer"):
        ServerConfig.load(None, max_concurrent_calls=2.0)


def test_plugin_options_are_checked_when_the_client_or_server_is_made():
    from gorpc import Client, Server

    with pytest.raises(ConfigError, match=r"\[plugins.consul\] session_ttl must be a number, got '10s'"):
        Client("some.Service", resolver="consul", plugins={"consul": {"session_ttl": "10s"}})
    with pytest.raises(ConfigError, match=r"unknown \[plugins.consul\] option\(s\) \['adress'\]"):
        Server(resolver="consul", plugins={"consul": {"adress": "127.0.0.1:8500"}})
    with pytest.raises(ConfigError, match=r"\[plugins.opentelemetry\] sampler_ratio must be 0..1"):
        Client("127.0.0.1:1", tracer="opentelemetry", plugins={"opentelemetry": {"sampler_ratio": 2}})


def test_a_consul_dns_mistake_names_its_own_table():
    from gorpc import Client

    with pytest.raises(ConfigError, match=r"unknown \[plugins.consul_dns\] option\(s\) \['dns_adress'\]"):
        Client("a.B", resolver="consul_dns", plugins={"consul_dns": {"dns_adress": "127.0.0.1:8600"}})
    with pytest.raises(ConfigError, match=r"\[plugins.consul_dns\] dns_address must be host:port"):
        Client("a.B", resolver="consul_dns", plugins={"consul_dns": {"dns_address": "unix:/x"}})


def test_a_plugin_whose_extra_is_missing_says_which_extra_to_install():
    import subprocess
    import sys

    program = (
        "import sys; sys.modules['aiohttp'] = None\n"  # as if the consul extra were not installed
        "from gorpc import Client, ConfigError\n"
        "try:\n    Client('a.B', resolver='consul')\nexcept ConfigError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout
    assert "gorpc.resolvers plugin 'consul' cannot be imported" in out
    assert "pip install 'gorpc[consul]'" in out


def test_consul_environment_variables_are_defaults_and_configuration_wins(monkeypatch, tmp_path):
    import trustme

    from gorpc_consul.resolver import ConsulResolver

    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "https://10.0.0.5:8501")
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "env-token")
    monkeypatch.setenv("CONSUL_CACERT", str(ca_file))
    options = ConsulResolver().options
    assert (options.address, options.scheme, options.token, options.tls_ca) == (
        "10.0.0.5:8501",
        "https",
        "env-token",
        str(ca_file),
    )
    monkeypatch.setenv("CONSUL_CACERT", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match=r"missing\.pem' cannot be used"):
        ConsulResolver()
    monkeypatch.delenv("CONSUL_CACERT")
    explicit = ConsulResolver({"address": "127.0.0.1:8500", "scheme": "http", "token": "mine"}).options
    assert (explicit.address, explicit.scheme, explicit.token) == ("127.0.0.1:8500", "http", "mine")
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "127.0.0.1:8500")
    monkeypatch.setenv("CONSUL_HTTP_SSL", "true")
    assert ConsulResolver().options.scheme == "https"
    monkeypatch.setenv("CONSUL_HTTP_SSL", "maybe")
    with pytest.raises(ConfigError, match="CONSUL_HTTP_SSL='maybe' is not true or false"):
        ConsulResolver()


def test_otel_endpoint_environment_variables_are_defaults(monkeypatch):
    from gorpc_tracing.opentelemetry import OpenTelemetryTracing

    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    # They name where gorpc's own provider exports; the global provider is the application's.
    assert OpenTelemetryTracing().options.endpoint is None
    otlp = {"provider": "otlp"}
    assert OpenTelemetryTracing(otlp).options.endpoint == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318/custom")
    assert OpenTelemetryTracing(otlp).options.endpoint == "http://traces:4318/custom"
    given = OpenTelemetryTracing({"endpoint": "http://mine:4318/v1/traces"})
    assert given.options.endpoint == "http://mine:4318/v1/traces"
