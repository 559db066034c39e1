"""Connecting through Temporal's environment configuration: a TOML profile and TEMPORAL_*
variables reach a real dev server, mTLS reaches it through a real TLS endpoint with a
throwaway CA, and an unusable setting stops us with one sentence naming it.

`temporal server start-dev` cannot serve TLS, so the TLS tests put a TLS-terminating
proxy (Python's ssl, requiring a client certificate) in front of the dev server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import TLSConfig

from duecourse.security.payload_keys import KeyRing, new_key_line, parse_keys
from duecourse.settings import Settings
from duecourse.temporal.connection import TemporalConfigError, connect, options_for
from duecourse.temporal.devserver import DevServer
from duecourse.temporal.environment import connect_options
from tests.support.devserver import TEMPORAL_CLI

NAMESPACE = "duecourse-conn"  # exists only on this module's server: proves the profile's
SERVER_NAME = "temporal.duecourse.test"


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    tmp = tmp_path_factory.mktemp("conn")
    async with DevServer(binary=TEMPORAL_CLI, headless=True, namespace=NAMESPACE,
                         log_file=tmp / "temporal.log") as dev:
        yield dev


@pytest.fixture
def ring() -> KeyRing:
    return parse_keys(new_key_line(), "test keys")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No TEMPORAL_* or DUECOURSE_TEMPORAL_* variable of the machine leaks in."""
    import os
    for name in list(os.environ):
        if name.startswith(("TEMPORAL_", "DUECOURSE_TEMPORAL_")):
            monkeypatch.delenv(name)
    return monkeypatch


async def namespace_of(client: Client) -> str:
    reply = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=client.namespace))
    return reply.namespace_info.name


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ a profile, for real
async def test_a_profile_file_names_the_server_and_namespace(
        server: DevServer, clean_env: pytest.MonkeyPatch, tmp_path: Path,
        ring: KeyRing) -> None:
    config = write(tmp_path / "temporal.toml", f"""
[profile.default]
address = "127.0.0.1:1"

[profile.ops]
address = "{server.address}"
namespace = "{NAMESPACE}"
""")
    clean_env.setenv("TEMPORAL_CONFIG_FILE", str(config))
    clean_env.setenv("TEMPORAL_PROFILE", "ops")
    clean_env.setenv("DUECOURSE_TEMPORAL_ADDRESS", "127.0.0.1:2")  # the profile ranks above
    settings = Settings()
    assert (settings.temporal_address, settings.temporal_namespace) == (
        server.address, NAMESPACE)  # what logs, banners and `duecourse env` print
    client = await connect(settings, ring=ring)
    assert await namespace_of(client) == NAMESPACE


async def test_temporal_variables_beat_the_profile(
        server: DevServer, clean_env: pytest.MonkeyPatch, tmp_path: Path,
        ring: KeyRing) -> None:
    config = write(tmp_path / "temporal.toml", f"""
[profile.default]
address = "127.0.0.1:1"
namespace = "{NAMESPACE}"
""")
    clean_env.setenv("TEMPORAL_CONFIG_FILE", str(config))
    clean_env.setenv("TEMPORAL_ADDRESS", server.address)
    settings = Settings()
    assert (settings.temporal_address, settings.temporal_namespace) == (
        server.address, NAMESPACE)
    assert await namespace_of(await connect(settings, ring=ring)) == NAMESPACE
    clean_env.setenv("TEMPORAL_NAMESPACE", "default")
    assert Settings().temporal_namespace == "default"


# ---------------------------------------------------------------- mTLS, for real
@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _issue(name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
           signer: ec.EllipticCurvePrivateKey, *, ca: bool = False,
           server: bool = False) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5))
               .not_valid_after(now + timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA with a server certificate for SERVER_NAME and a client certificate."""
    tmp = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "duecourse test CA")])
    ca = _issue("duecourse test CA", ca_key, ca_name, ca_key, ca=True)
    files = {"ca": ca.public_bytes(serialization.Encoding.PEM)}
    for who, server in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(SERVER_NAME if server else "duecourse-worker", key, ca_name, ca_key,
                      server=server)
        files[f"{who}_cert"] = cert.public_bytes(serialization.Encoding.PEM)
        files[f"{who}_key"] = _pem_key(key)
    paths = {}
    for name, data in files.items():
        paths[name] = tmp / f"{name}.pem"
        paths[name].write_bytes(data)
    return Pki(**paths)


@contextlib.asynccontextmanager
async def mtls_proxy(pki: Pki, upstream: str) -> AsyncIterator[str]:
    """A TLS endpoint that requires a client certificate from the CA and forwards the
    decrypted HTTP/2 stream to the plaintext dev server; yields its address."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["h2"])
    host, port = upstream.rsplit(":", 1)
    pipes: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        for task in (pipe(reader, up_writer), pipe(up_reader, writer)):
            pipes.add(asyncio.ensure_future(task))

    proxy = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    try:
        yield f"127.0.0.1:{proxy.sockets[0].getsockname()[1]}"
    finally:
        proxy.close()
        for task in pipes:
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)


async def test_mtls_profile_connects_through_tls(
        server: DevServer, pki: Pki, clean_env: pytest.MonkeyPatch, tmp_path: Path,
        ring: KeyRing) -> None:
    async with mtls_proxy(pki, server.address) as endpoint:
        config = write(tmp_path / "temporal.toml", f"""
[profile.cluster]
address = "{endpoint}"
namespace = "{NAMESPACE}"

[profile.cluster.tls]
server_name = "{SERVER_NAME}"
server_ca_cert_path = "{pki.ca}"
client_cert_path = "{pki.client_cert}"
client_key_path = "{pki.client_key}"

[profile.anonymous]
address = "{endpoint}"
namespace = "{NAMESPACE}"
tls = {{ server_name = "{SERVER_NAME}", server_ca_cert_path = "{pki.ca}" }}
""")
        clean_env.setenv("TEMPORAL_CONFIG_FILE", str(config))
        clean_env.setenv("TEMPORAL_PROFILE", "cluster")
        client = await connect(Settings(), ring=ring)
        assert await namespace_of(client) == NAMESPACE

        # the same endpoint without a client certificate is refused: the TLS was real
        clean_env.setenv("TEMPORAL_PROFILE", "anonymous")
        with pytest.raises(RuntimeError, match="Failed client connect"):
            await asyncio.wait_for(namespace_of(await connect(Settings(), ring=ring)), 20)


# ------------------------------------------------------------ what connect is given
def test_an_api_key_profile_sends_the_key_over_tls(tmp_path: Path) -> None:
    config = write(tmp_path / "cloud.toml", """
[profile.cloud]
address = "eu-west-1.aws.api.temporal.io:7233"
namespace = "collections.a1b2c"
api_key = "sekret-api-key"

[profile.cloud.grpc_meta]
x-lender = "acme"
""")
    options = connect_options("eu-west-1.aws.api.temporal.io:7233", "collections.a1b2c",
                              env={"TEMPORAL_CONFIG_FILE": str(config),
                                   "TEMPORAL_PROFILE": "cloud"})
    assert options.api_key == "sekret-api-key"
    assert options.tls is True  # system roots, as Temporal Cloud needs
    assert options.rpc_metadata == {"x-lender": "acme"}
    assert "sekret" not in repr(options)  # a logged options object leaks no key

    from_env = connect_options("x:7233", "ns", env={"TEMPORAL_API_KEY": "k2"})
    assert (from_env.api_key, from_env.tls) == ("k2", True)


def test_an_mtls_profile_carries_cert_key_ca_and_server_name(
        pki: Pki, tmp_path: Path) -> None:
    config = write(tmp_path / "mtls.toml", f"""
[profile.default]
address = "temporal.internal:7233"
[profile.default.tls]
server_name = "{SERVER_NAME}"
server_ca_cert_path = "{pki.ca}"
client_cert_path = "{pki.client_cert}"
client_key_path = "{pki.client_key}"
""")
    options = connect_options("temporal.internal:7233", "default",
                              env={"TEMPORAL_CONFIG_FILE": str(config)})
    assert options.tls == TLSConfig(
        domain=SERVER_NAME, server_root_ca_cert=pki.ca.read_bytes(),
        client_cert=pki.client_cert.read_bytes(),
        client_private_key=pki.client_key.read_bytes())
    assert "PRIVATE KEY" not in repr(options)

    inline = connect_options("h:1", "default", env={
        "TEMPORAL_TLS_CLIENT_CERT_DATA": pki.client_cert.read_text(),
        "TEMPORAL_TLS_CLIENT_KEY_DATA": pki.client_key.read_text(),
        "TEMPORAL_TLS_SERVER_NAME": SERVER_NAME})
    assert isinstance(inline.tls, TLSConfig)
    assert (inline.tls.domain, inline.tls.client_cert) == (
        SERVER_NAME, pki.client_cert.read_bytes())


def test_a_server_we_started_is_reached_plainly(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TEMPORAL_API_KEY", "cloud-only")
    options = options_for(Settings(), address="127.0.0.1:7999")
    assert (options.target_host, options.api_key, options.tls) == ("127.0.0.1:7999", None,
                                                                   False)
    assert options_for(Settings()).api_key == "cloud-only"


# ----------------------------------------------------------- one sentence, at start
@pytest.fixture
def files(tmp_path: Path, pki: Pki) -> Iterator[dict[str, Path]]:
    yield {
        "malformed": write(tmp_path / "bad.toml", "[profile.ops\naddress = 'x'\n"),
        "typo": write(tmp_path / "typo.toml", "[profile.default]\nadress = 'x:1'\n"),
        "ops": write(tmp_path / "ops.toml", "[profile.ops]\naddress = 'x:1'\n"),
        "gone_cert": write(tmp_path / "gone.toml", f"""
[profile.default.tls]
client_cert_path = "{tmp_path / 'missing.pem'}"
client_key_path = "{pki.client_key}"
"""),
        "key_only": write(tmp_path / "key.toml", f"""
[profile.default.tls]
client_key_path = "{pki.client_key}"
"""),
    }


@pytest.mark.parametrize(("env", "named"), [
    ({"TEMPORAL_CONFIG_FILE": "{malformed}"}, "bad.toml is not valid TOML"),
    ({"TEMPORAL_CONFIG_FILE": "{typo}"}, "unknown field `adress`"),
    ({"TEMPORAL_CONFIG_FILE": "{ops}", "TEMPORAL_PROFILE": "prod"},
     "TEMPORAL_PROFILE 'prod' is not in TEMPORAL_CONFIG_FILE"),
    ({"TEMPORAL_CONFIG_FILE": "{ops}"}, "has no [profile.default] (its profiles: ops)"),
    ({"TEMPORAL_CONFIG_FILE": "{ops}.missing"}, "ops.toml.missing does not exist"),
    ({"TEMPORAL_CONFIG_FILE": "{gone_cert}"},
     "tls.client_cert_path of profile 'default' in "),
    ({"TEMPORAL_TLS_CLIENT_CERT_PATH": "/nonexistent/cert.pem",
      "TEMPORAL_TLS_CLIENT_KEY_PATH": "/nonexistent/key.pem"},
     "TEMPORAL_TLS_CLIENT_CERT_PATH (/nonexistent/cert.pem) cannot be read"),
    ({"TEMPORAL_CONFIG_FILE": "{key_only}"},
     "tls.client_key_path of profile 'default' in "),
    ({"TEMPORAL_TLS_CLIENT_KEY_DATA": "-----BEGIN PRIVATE KEY-----\n"},
     "TEMPORAL_TLS_CLIENT_KEY_DATA is set without a TLS client cert"),
    ({"TEMPORAL_TLS_CLIENT_CERT_DATA": "not a certificate",
      "TEMPORAL_TLS_CLIENT_KEY_DATA": "-----BEGIN PRIVATE KEY-----\n"},
     "TEMPORAL_TLS_CLIENT_CERT_DATA is not PEM"),
    ({"TEMPORAL_TLS": "yes"}, "TEMPORAL_TLS must be true or false, not 'yes'"),
    ({"TEMPORAL_TLS_DISABLE_HOST_VERIFICATION": "true"},
     "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION is not supported"),
])
async def test_an_unusable_setting_is_one_sentence_naming_it(
        env: dict[str, str], named: str, files: dict[str, Path],
        clean_env: pytest.MonkeyPatch, ring: KeyRing) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value.format(**{k: str(v) for k, v in files.items()}))
    settings = Settings()  # a broken profile never breaks loading the other settings
    with pytest.raises(TemporalConfigError) as raised:
        await connect(settings, ring=ring)
    message = str(raised.value)
    assert named in message, message
    assert isinstance(raised.value, ValueError)
    assert "\n" not in message and "Traceback" not in message
    assert "PRIVATE KEY" not in message
