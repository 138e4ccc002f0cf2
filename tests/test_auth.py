"""Authentication: per-call bearer tokens, and TLS with a self-signed certificate made here."""

import datetime
import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gorpc import Client, ConnectionFailed, Server, Unauthenticated, Unavailable
from gorpc.auth import bearer_token, require_token
from gorpc.testing import loopback, server_process

from .conftest import Greeter

ROOT = Path(__file__).resolve().parent.parent
HELLO = "/helloworld.Greeter/SayHello"
LOCALHOST = ipaddress.ip_address("127.0.0.1")


def self_signed(directory: Path, name: str = "server") -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files: (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)  # self-signed: it is its own issuer
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(LOCALHOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


# -- tokens ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_calls_without_a_valid_token_are_refused_and_the_server_serves_on(greeter):
    async with loopback(greeter, server_options={"interceptors": [require_token({"s3cret", "other"})]}) as (
        server,
        anonymous,
    ):
        with pytest.raises(Unauthenticated, match="needs a bearer token"):
            await anonymous.call(HELLO, {"msg": "hi"})
        async with Client(server.address, interceptors=[bearer_token("guess")]) as wrong:
            with pytest.raises(Unauthenticated, match="not valid") as refused:
                await wrong.call(HELLO, {"msg": "hi"})
            assert "guess" not in str(refused.value)  # a token is never echoed back
        rotating = iter(["s3cret", "other"])
        async with Client(server.address, interceptors=[bearer_token(lambda: next(rotating))]) as client:
            assert await client.call(HELLO, {"msg": "a"}) == {"msg": "a world"}
            assert await client.call(HELLO, {"msg": "b"}) == {"msg": "b world"}


@pytest.mark.asyncio
async def test_a_token_check_may_be_async_and_methods_may_be_exempt(greeter):
    async def known(token: str) -> bool:
        return token == "from-the-database"

    interceptor = require_token(known, exempt=["/helloworld.Greeter/Echo"])
    async with loopback(greeter, server_options={"interceptors": [interceptor]}) as (server, anonymous):
        assert await anonymous.call("/helloworld.Greeter/Echo", "public") == "public"
        with pytest.raises(Unauthenticated):
            await anonymous.call(HELLO, {"msg": "hi"})
        async with Client(server.address, interceptors=[bearer_token("from-the-database")]) as client:
            assert await client.call(HELLO, {"msg": "hi"}) == {"msg": "hi world"}


def test_require_token_needs_a_token():
    with pytest.raises(ValueError, match="at least one"):
        require_token(set())


# -- TLS with a self-signed certificate -----------------------------------------------------------


@pytest.mark.asyncio
async def test_tls_with_a_self_signed_certificate(tmp_path):
    cert, key = self_signed(tmp_path)
    server = Server(address="127.0.0.1:0", tls_cert=cert, tls_key=key)
    server.register(Greeter())
    async with server:
        async with Client(server.address, tls_ca=cert) as trusting:  # trusts exactly that certificate
            assert await trusting.call(HELLO, {"msg": "tls"}) == {"msg": "tls world"}
            (connection,) = trusting.connections
            peer_cert = connection.peer_certificate
            assert dict(x[0] for x in peer_cert["subject"])["commonName"] == "server"
        # Not trusted by the system's CAs: refused with a typed error, before any call is sent.
        async with Client(server.address, tls=True) as untrusting:
            with pytest.raises(ConnectionFailed, match="CERTIFICATE_VERIFY_FAILED") as refused:
                await untrusting.call(HELLO, {"msg": "x"})
            assert refused.value.unprocessed
        # Another self-signed certificate does not vouch for this one.
        other, _ = self_signed(tmp_path, "impostor")
        async with Client(server.address, tls_ca=other) as mistaken:
            with pytest.raises(ConnectionFailed, match="CERTIFICATE_VERIFY_FAILED"):
                await mistaken.call(HELLO, {"msg": "x"})
        # Plain text to a TLS server fails fast, typed, and the server serves on.
        async with Client(server.address, heartbeat_interval=0.1, heartbeat_timeout=0.5) as plain:
            with pytest.raises(Unavailable):
                await plain.call(HELLO, {"msg": "plain"})
        async with Client(server.address, tls_ca=cert) as again:
            assert await again.call(HELLO, {"msg": "still"}) == {"msg": "still world"}


@pytest.mark.asyncio
async def test_mutual_tls_refuses_a_client_without_a_certificate(tmp_path):
    server_cert, server_key = self_signed(tmp_path, "server")
    client_cert, client_key = self_signed(tmp_path, "client")
    # tls_ca on the server: clients must present a certificate it vouches for.
    server = Server(address="127.0.0.1:0", tls_cert=server_cert, tls_key=server_key, tls_ca=client_cert)
    server.register(Greeter())
    async with server:
        async with Client(server.address, tls_ca=server_cert, tls_cert=client_cert, tls_key=client_key) as c:
            assert await c.call(HELLO, {"msg": "mtls"}) == {"msg": "mtls world"}
            (conn,) = server.connections
            peer = conn.transport.get_extra_info("peercert")
            assert dict(x[0] for x in peer["subject"])["commonName"] == "client"
        certless = {"tls_ca": server_cert, "heartbeat_interval": 0.1, "heartbeat_timeout": 0.5}
        async with Client(server.address, **certless) as c:
            with pytest.raises(Unavailable):  # TLS 1.3: the refusal arrives after the handshake
                await c.call(HELLO, {"msg": "no cert"})


def test_auth_example_over_tls(tmp_path):
    cert, key = self_signed(tmp_path)
    server_argv = [str(ROOT / "examples/auth/server.py"), "--address", "127.0.0.1:0", "--tls-cert", cert,
                   "--tls-key", key]  # fmt: skip
    with server_process(server_argv, env={"GORPC_TOKENS": "s3cret"}) as server:
        client_argv = [str(ROOT / "examples/auth/client.py"), "--target", server.address, "--tls-ca", cert]
        client = subprocess.run(
            [sys.executable, *client_argv],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "GORPC_TOKEN": "s3cret"},
        )
        assert client.returncode == 0, client.stderr
        assert client.stdout.splitlines() == [
            "without a token: [UNAUTHENTICATED] /helloworld.Greeter/SayHello needs a bearer token in the "
            "'authorization' metadata",
            "with the token: hello world",
        ]
        assert server.stop() == 0
