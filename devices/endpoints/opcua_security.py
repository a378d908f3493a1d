"""OPC UA security of a device endpoint: certificate, trust list, users, security policies.

Every file lives in the endpoint's ``state_dir/pki`` in the layout UaExpert and most OPC UA
stacks use, so an apprentice recognises it::

    pki/own/cert.der        the server's certificate (made on first run, then reused)
    pki/private/key.pem     its private key
    pki/trusted/            client certificates the server accepts when auto_trust is off
    pki/rejected/           client certificates it refused: move one to trusted/ to accept it

With one :mod:`devices.endpoints.opcua` this is the only module that imports asyncua.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncua.ua
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from simlab.scenario.devices import UserSpec

__all__ = [
    "SECURITY_POLICIES",
    "LabUserManager",
    "Pki",
    "TrustList",
    "describe_policy",
    "ensure_server_certificate",
]

_log = logging.getLogger(__name__)

ua: Any = asyncua.ua
"""asyncua's types, untyped here: their NewType annotations (Int16, UInt32, ...) add only noise."""

SECURITY_POLICIES: dict[str, Any] = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256_Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}
"""Scenario name of an endpoint -> asyncua's security policy type."""

_MODE_NAMES = {
    ua.MessageSecurityMode.None_: "None",
    ua.MessageSecurityMode.Sign: "Sign",
    ua.MessageSecurityMode.SignAndEncrypt: "SignAndEncrypt",
}


def describe_policy(policy: Any) -> tuple[str, str]:
    """(security mode, security policy) of a channel's asyncua policy.

    For example ``('SignAndEncrypt', 'Basic256Sha256')`` or ``('None', 'None')``.
    """
    if policy is None:
        return "unknown", "unknown"
    mode = _MODE_NAMES.get(getattr(policy, "Mode", None), "unknown")
    uri = str(getattr(policy, "URI", "unknown"))
    return mode, uri.rpartition("#")[2]


@dataclass(frozen=True)
class Pki:
    """The endpoint's certificate folders under ``root`` (``state_dir/pki``)."""

    root: Path

    @property
    def certificate(self) -> Path:
        return self.root / "own" / "cert.der"

    @property
    def private_key(self) -> Path:
        return self.root / "private" / "key.pem"

    @property
    def trusted(self) -> Path:
        return self.root / "trusted"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    def create(self) -> None:
        """Make every folder (idempotent)."""
        for folder in (
            self.certificate.parent,
            self.private_key.parent,
            self.trusted,
            self.rejected,
        ):
            folder.mkdir(parents=True, exist_ok=True)


def _write_new_key(path: Path) -> None:
    key = cert_gen.generate_private_key()
    path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    path.chmod(0o600)


async def ensure_server_certificate(pki: Pki, application_uri: str, name: str) -> None:
    """Make the server's key and self-signed certificate unless valid ones exist.

    The certificate carries ``application_uri`` (clients refuse a server whose certificate
    does not) and this host's name; an expired or mismatching one is made again with the
    same key. The RSA key is generated in a thread: it takes a noticeable fraction of a second.
    """
    pki.create()
    if not pki.private_key.is_file():
        await asyncio.to_thread(_write_new_key, pki.private_key)
    await cert_gen.setup_self_signed_certificate(
        pki.private_key,
        pki.certificate,
        application_uri,
        socket.gethostname(),
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        {"organizationName": "simlab", "organizationalUnitName": name},
    )


def _thumbprint(der: bytes) -> str:
    return hashlib.sha1(der, usedforsecurity=False).hexdigest()


def _read_certificate(path: Path) -> bytes | None:
    """DER bytes of a PEM or DER certificate file; None if it is not one."""
    data = path.read_bytes()
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
        return x509.load_der_x509_certificate(data).public_bytes(Encoding.DER)
    except ValueError:
        _log.warning("ignoring %s in the trust list: not a PEM or DER certificate", path)
        return None


def _common_name(der: bytes) -> str:
    try:
        names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
            x509.NameOID.COMMON_NAME
        )
    except ValueError:
        return "?"
    return str(names[0].value) if names else "?"


class TrustList:
    """Which client certificates a secure channel may use.

    With ``auto_trust`` every certificate is accepted. Otherwise only those in
    ``pki/trusted`` (PEM or DER, compared by SHA-1 thumbprint) are; the folder is read again
    on every check, so an instructor can trust a client while the lab runs. A refused
    certificate is saved in ``pki/rejected`` under its thumbprint.
    """

    def __init__(self, pki: Pki, auto_trust: bool) -> None:
        self.pki = pki
        self.auto_trust = auto_trust
        self._cache: dict[Path, tuple[float, str | None]] = {}

    def trusted_thumbprints(self) -> set[str]:
        """Thumbprints of the certificates in ``pki/trusted`` now."""
        if not self.pki.trusted.is_dir():
            return set()
        found: set[str] = set()
        for path in sorted(self.pki.trusted.iterdir()):
            if not path.is_file():
                continue
            mtime = path.stat().st_mtime
            cached = self._cache.get(path)
            if cached is None or cached[0] != mtime:
                der = _read_certificate(path)
                cached = (mtime, _thumbprint(der) if der is not None else None)
                self._cache[path] = cached
            if cached[1] is not None:
                found.add(cached[1])
        return found

    def check(self, der: bytes) -> str | None:
        """None if a client may use certificate ``der``; else why not (it is saved as rejected)."""
        if self.auto_trust:
            return None
        thumbprint = _thumbprint(der)
        if thumbprint in self.trusted_thumbprints():
            return None
        self.pki.rejected.mkdir(parents=True, exist_ok=True)
        saved = self.pki.rejected / f"{thumbprint}.der"
        saved.write_bytes(der)
        return (
            f"client certificate CN={_common_name(der)} (SHA-1 {thumbprint}) is not trusted; "
            f"it was saved as {saved}: move it to {self.pki.trusted} to trust it"
        )


class LabUserManager(UserManager):
    """asyncua user manager for the scenario's users and the anonymous switch.

    Every accepted identity gets asyncua's ``User`` role: clients may read, write (through
    the device's checks), subscribe and call, never change the address space.
    """

    def __init__(self, users: list[UserSpec], anonymous: bool) -> None:
        self._passwords = {user.name: user.password for user in users}
        self.anonymous = anonymous

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        """The session's user, or None to refuse it (asyncua answers BadUserAccessDenied)."""
        if username is None:
            return User(role=UserRole.User) if self.anonymous else None
        expected = self._passwords.get(username)
        given = password if isinstance(password, str) else ""
        if expected is None or not hmac.compare_digest(expected.encode(), given.encode()):
            return None
        return User(role=UserRole.User, name=username)
