"""OPC UA security: server certificate, trust list, users and the anonymous switch.

One locked-down server is shared by the module: every endpoint kind, ``auto_trust: false``,
no anonymous access, one user. Client certificates are made with asyncua's ``cert_gen``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncua.ua
import pytest
import pytest_asyncio
from asyncua.client.client import Client
from asyncua.crypto import cert_gen, security_policies
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from devices.endpoints.audit import Session, SessionAudit
from devices.endpoints.opcua import OpcUaEndpoint
from simlab.lab import Lab
from simlab.scenario import parse_scenario

pytestmark = pytest.mark.asyncio(loop_scope="module")
ua: Any = asyncua.ua  # asyncua's NewType annotations (Int16, Double, ...) are noise here

SCENARIO = """
format_version: 1
name: opcua_security
plant:
  units:
    - {name: tank, type: tank, area: 0.5, height: 2.0, initial_level: 0.7}
devices:
  - name: plc1
    type: plc
    opcua:
      auto_trust: false
      anonymous: false
      users: [{name: operator, password: s3cret}]
    tags:
      - {name: level, signal: tank.level, unit: m}
      - {name: level_sp, unit: m, initial: 1.0, writable: true, range: [0.2, 1.8]}
"""

BASIC256SHA256 = security_policies.SecurityPolicyBasic256Sha256
SIGN_AND_ENCRYPT = ua.MessageSecurityMode.SignAndEncrypt


@dataclass(frozen=True)
class ClientCertificate:
    """A client application's certificate and key."""

    uri: str
    certificate: Path
    key: Path


@dataclass
class Rig:
    lab: Lab
    endpoint: OpcUaEndpoint
    audit: SessionAudit
    state_dir: Path
    trusted: ClientCertificate
    stranger: ClientCertificate

    def last_session(self) -> Session:
        return list(self.audit.sessions.values())[-1]


async def _client_certificate(folder: Path, name: str) -> ClientCertificate:
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"urn:simlab:test:{name}"
    key, certificate = folder / f"{name}-key.pem", folder / f"{name}-cert.der"
    await cert_gen.setup_self_signed_certificate(
        key,
        certificate,
        uri,
        socket.gethostname(),
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        {"organizationName": "simlab tests"},
    )
    return ClientCertificate(uri, certificate, key)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    lab = Lab(parse_scenario(SCENARIO))
    audit = SessionAudit()
    state_dir = tmp_path_factory.mktemp("opcua-state")
    clients = tmp_path_factory.mktemp("clients")
    trusted = await _client_certificate(clients, "trusted")
    stranger = await _client_certificate(clients, "stranger")
    (state_dir / "pki" / "trusted").mkdir(parents=True)
    shutil.copy(trusted.certificate, state_dir / "pki" / "trusted" / "trusted.der")
    endpoint = OpcUaEndpoint(
        lab.devices["plc1"],
        host="127.0.0.1",
        port=0,
        audit=audit,
        clock=lab.clock,
        now=lambda: lab.time,
        state_dir=state_dir,
    )
    async with endpoint:
        yield Rig(lab, endpoint, audit, state_dir, trusted, stranger)


async def _secure_client(
    rig: Rig,
    who: ClientCertificate,
    mode: ua.MessageSecurityMode = SIGN_AND_ENCRYPT,
    user: str | None = "operator",
    password: str = "s3cret",
) -> Client:
    client = Client(rig.endpoint.url, timeout=5)
    client.application_uri = who.uri
    if user is not None:
        client.set_user(user)
        client.set_password(password)
    await client.set_security(BASIC256SHA256, str(who.certificate), str(who.key), mode=mode)
    return client


def _level(rig: Rig) -> str:
    return f"ns={rig.endpoint.namespace_index};s=plc1.level"


async def test_server_certificate_carries_application_uri(rig: Rig) -> None:
    path = rig.state_dir / "pki" / "own" / "cert.der"
    certificate = x509.load_der_x509_certificate(path.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert rig.endpoint.application_uri == "urn:simlab:plc1"
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:simlab:plc1"]
    assert (rig.state_dir / "pki" / "private" / "key.pem").is_file()
    probe = Client(rig.endpoint.url, timeout=5)
    endpoints = await probe.connect_and_get_server_endpoints()
    offered = {(e.SecurityPolicyUri.rpartition("#")[2], e.SecurityMode.name) for e in endpoints}
    assert offered == {
        ("None", "None_"),
        ("Basic256Sha256", "Sign"),
        ("Basic256Sha256", "SignAndEncrypt"),
    }
    for endpoint in endpoints:
        assert endpoint.ServerCertificate == path.read_bytes()
        assert endpoint.Server.ApplicationUri == "urn:simlab:plc1"
        tokens = {t.TokenType for t in endpoint.UserIdentityTokens}
        assert tokens == {ua.UserTokenType.UserName}  # anonymous is off


async def test_certificate_reused_on_next_run(rig: Rig) -> None:
    before = (rig.state_dir / "pki" / "own" / "cert.der").read_bytes()
    key = (rig.state_dir / "pki" / "private" / "key.pem").read_bytes()
    again = OpcUaEndpoint(
        rig.lab.devices["plc1"],
        host="127.0.0.1",
        port=0,
        audit=SessionAudit(),
        clock=rig.lab.clock,
        now=lambda: rig.lab.time,
        state_dir=rig.state_dir,
    )
    async with again:
        probe = Client(again.url, timeout=5)
        endpoints = await probe.connect_and_get_server_endpoints()
    assert (rig.state_dir / "pki" / "own" / "cert.der").read_bytes() == before
    assert (rig.state_dir / "pki" / "private" / "key.pem").read_bytes() == key
    assert all(e.ServerCertificate == before for e in endpoints if e.SecurityMode.value > 1)


@pytest.mark.parametrize(
    "mode", [ua.MessageSecurityMode.SignAndEncrypt, ua.MessageSecurityMode.Sign]
)
async def test_trusted_certificate_and_password_connect(
    rig: Rig, mode: ua.MessageSecurityMode
) -> None:
    client = await _secure_client(rig, rig.trusted, mode)
    async with client:
        value = await client.get_node(_level(rig)).read_value()
        assert value == rig.lab.devices["plc1"].tags["level"]
    session = rig.last_session()
    assert session.security_mode == mode.name
    assert session.security_policy == "Basic256Sha256"
    assert session.user == "operator"


async def test_untrusted_certificate_refused_until_trusted(rig: Rig) -> None:
    client = await _secure_client(rig, rig.stranger)
    with pytest.raises(ua.uaerrors.BadSecurityChecksFailed):
        await client.connect()
    await _disconnect(client)
    refused = [e for e in rig.audit.events if e.kind == "refused" and e.target == "CreateSession"]
    assert refused
    assert "CN=urn:simlab:test:stranger" in refused[-1].reason
    assert refused[-1].detail["status"] == "BadSecurityChecksFailed"
    rejected = list((rig.state_dir / "pki" / "rejected").glob("*.der"))
    assert [p.read_bytes() for p in rejected] == [rig.stranger.certificate.read_bytes()]
    # The instructor's fix: move the certificate from rejected/ to trusted/.
    shutil.move(rejected[0], rig.state_dir / "pki" / "trusted" / rejected[0].name)
    client = await _secure_client(rig, rig.stranger)
    async with client:
        assert await client.get_node(_level(rig)).read_value() is not None


async def test_wrong_password_refused(rig: Rig) -> None:
    client = Client(rig.endpoint.url, timeout=5)
    client.set_user("operator")
    client.set_password("wrong")
    with pytest.raises(ua.uaerrors.BadUserAccessDenied):
        await client.connect()
    await _disconnect(client)
    event = rig.audit.events[-1]
    assert (event.kind, event.target, event.ok) == ("refused", "ActivateSession", False)
    assert "operator" in event.reason
    assert "hunter2" not in event.reason  # never the password


async def test_unknown_user_refused(rig: Rig) -> None:
    client = await _secure_client(rig, rig.trusted, user="intruder", password="x")
    with pytest.raises(ua.uaerrors.BadUserAccessDenied):
        await client.connect()
    await _disconnect(client)


async def test_anonymous_refused_when_off(rig: Rig) -> None:
    client = Client(rig.endpoint.url, timeout=5)
    with pytest.raises(ua.uaerrors.BadIdentityTokenInvalid):
        await client.connect()
    await _disconnect(client)
    assert "anonymous" in rig.audit.events[-1].reason


async def test_password_over_none_endpoint_is_accepted(rig: Rig) -> None:
    client = Client(rig.endpoint.url, timeout=5)
    client.set_user("operator")
    client.set_password("s3cret")
    async with client:
        await client.get_node(f"ns={rig.endpoint.namespace_index};s=plc1.level_sp").write_value(1.1)
    assert rig.lab.devices["plc1"].tags["level_sp"] == 1.1
    session = rig.last_session()
    assert (session.security_mode, session.user) == ("None", "operator")


async def _disconnect(client: Client) -> None:
    with contextlib.suppress(Exception):  # half-open after a refused session: nothing to close
        await client.disconnect()
