"""An OPC UA client for *browsing*, like UaExpert: connect, browse, read, write, subscribe.

The terminal UI's OPC UA browser uses it to talk to a lab's servers over the real protocol,
as an apprentice's own tool would. Its API speaks plain dataclasses (:class:`BrowseNode`,
:class:`NodeAttributes`, :class:`DataChange`) and simlab errors, never asyncua types::

    certificate = await make_client_certificate(Path("pki"))
    async with OpcUaBrowser(url, security="SignAndEncrypt", certificate=certificate) as ua:
        for child in await ua.browse(OBJECTS):
            print(child.display_name, child.node_id, child.node_class)
        attributes = await ua.read("ns=2;s=plc1.level")
        await ua.write("ns=2;s=plc1.level_sp", "1.4")  # converted to the node's DataType
        watch = await ua.subscribe("ns=2;s=plc1.level", print)
        await watch.stop()

Connecting first asks the server for its endpoints, so a security mode or identity the
server does not offer is named before anything else is tried ("offers no None endpoint
...; it offers: SignAndEncrypt (Basic256Sha256)"). Secure modes use the Basic256Sha256
policy and a client application instance certificate (:func:`make_client_certificate`); a
server that checks its trust list refuses an unknown certificate until it is copied into
the server's trusted folder.

With the server (:mod:`devices.endpoints.opcua`), its security helpers and the gateway's
poller, one of the modules of simlab that import asyncua.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import asyncua.ua
from asyncua.client.client import Client
from asyncua.crypto import cert_gen
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography.x509.oid import ExtendedKeyUsageOID

from devices.endpoints.modbus_client import DeviceUnreachable
from devices.endpoints.opcua_client import close_quietly
from simlab.errors import SimlabError, TagError, TagNotWritable, UnknownTag, ValueOutOfRange

__all__ = [
    "OBJECTS",
    "POLICY",
    "SECURITY_MODES",
    "BrowseNode",
    "CertificateNotTrusted",
    "ClientCertificate",
    "DataChange",
    "EndpointOffer",
    "Monitor",
    "NodeAttributes",
    "OpcUaBrowser",
    "Scalar",
    "SecurityMode",
    "make_client_certificate",
]

# asyncua logs every lost connection as a warning; keep it off the terminal (see opcua_client).
logging.getLogger("asyncua").addHandler(logging.NullHandler())

ua: Any = asyncua.ua
"""asyncua's types, untyped here (as in :mod:`devices.endpoints.opcua`)."""

SecurityMode = Literal["None", "Sign", "SignAndEncrypt"]
SECURITY_MODES: tuple[SecurityMode, ...] = ("None", "Sign", "SignAndEncrypt")
POLICY = "Basic256Sha256"
"""The security policy of the Sign and SignAndEncrypt modes."""
OBJECTS = "i=85"
"""NodeId of the Objects folder, where browsing starts."""
APPLICATION_URI = "urn:simlab:tui:opcua-browser"
"""Application URI of the browser's certificate (the certificate must carry it)."""

_MODES = {
    "None": ua.MessageSecurityMode.None_,
    "Sign": ua.MessageSecurityMode.Sign,
    "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
}
_TOKENS = {
    ua.UserTokenType.Anonymous: "anonymous",
    ua.UserTokenType.UserName: "user name",
    ua.UserTokenType.Certificate: "certificate",
    ua.UserTokenType.IssuedToken: "issued token",
}
_NOT_WRITABLE = frozenset({"BadNotWritable", "BadUserAccessDenied", "BadWriteNotSupported"})
_OUT_OF_RANGE = frozenset({"BadOutOfRange", "BadTypeMismatch", "BadIndexRangeInvalid"})
_UNKNOWN_NODE = frozenset({"BadNodeIdUnknown", "BadNodeIdInvalid"})
_IDENTITY_REFUSED = frozenset(
    {"BadUserAccessDenied", "BadIdentityTokenInvalid", "BadIdentityTokenRejected"}
)
_INTEGERS = {
    "SByte": (-(2**7), 2**7 - 1),
    "Byte": (0, 2**8 - 1),
    "Int16": (-(2**15), 2**15 - 1),
    "UInt16": (0, 2**16 - 1),
    "Int32": (-(2**31), 2**31 - 1),
    "UInt32": (0, 2**32 - 1),
    "Int64": (-(2**63), 2**63 - 1),
    "UInt64": (0, 2**64 - 1),
}
_TRUE, _FALSE = ("true", "1", "on", "yes"), ("false", "0", "off", "no")

# The attributes :meth:`OpcUaBrowser.read` asks for, in one Read request.
_ATTRIBUTES = (
    ua.AttributeIds.NodeId,
    ua.AttributeIds.BrowseName,
    ua.AttributeIds.DisplayName,
    ua.AttributeIds.NodeClass,
    ua.AttributeIds.Description,
    ua.AttributeIds.DataType,
    ua.AttributeIds.Value,
    ua.AttributeIds.AccessLevel,
    ua.AttributeIds.UserAccessLevel,
)

Scalar = bool | int | float | str
"""A value as the browser reads and writes it (structures are shown as text)."""


class CertificateNotTrusted(DeviceUnreachable):
    """The server refused the client's certificate: it must be trusted by the server first."""


@dataclass(frozen=True)
class ClientCertificate:
    """The browser's application instance certificate (DER) and private key (PEM)."""

    certificate: Path
    private_key: Path
    application_uri: str = APPLICATION_URI


@dataclass(frozen=True)
class EndpointOffer:
    """One endpoint a server offers: security mode and policy, identity tokens accepted."""

    mode: str
    policy: str
    tokens: tuple[str, ...]

    def __str__(self) -> str:
        policy = "" if self.policy == "None" else f" ({self.policy})"
        return f"{self.mode}{policy}"


@dataclass(frozen=True)
class BrowseNode:
    """A child found by browsing: what a tree shows of it."""

    node_id: str
    display_name: str
    browse_name: str
    node_class: str
    has_children: bool


@dataclass(frozen=True)
class NodeAttributes:
    """A node's attributes as read from the server; value attributes are None for non-variables."""

    node_id: str
    browse_name: str
    display_name: str
    node_class: str
    description: str
    data_type: str | None = None
    value: Scalar | None = None
    status: str | None = None
    source_timestamp: datetime | None = None
    server_timestamp: datetime | None = None
    readable: bool = False
    writable: bool = False

    @property
    def is_variable(self) -> bool:
        """Whether the node has a value (a Variable or VariableType)."""
        return self.data_type is not None


@dataclass(frozen=True)
class DataChange:
    """One notification of a subscribed node: its new value, status and source timestamp."""

    node_id: str
    value: Scalar | None
    status: str
    source_timestamp: datetime | None


class Monitor:
    """A subscribed node (a monitored item); :meth:`stop` unsubscribes it."""

    def __init__(self, node_id: str, stop: Callable[[], Awaitable[None]]) -> None:
        self.node_id = node_id
        self._stop = stop

    async def stop(self) -> None:
        """Delete the monitored item (quietly if the connection is gone)."""
        await self._stop()


async def make_client_certificate(
    folder: Path, application_uri: str = APPLICATION_URI
) -> ClientCertificate:
    """The browser's self-signed certificate in ``folder`` (``own/cert.der``,
    ``private/key.pem``), made on first use and reused after; the RSA key is made in a
    thread (it takes a noticeable fraction of a second)."""
    certificate = folder / "own" / "cert.der"
    key = folder / "private" / "key.pem"
    certificate.parent.mkdir(parents=True, exist_ok=True)
    key.parent.mkdir(parents=True, exist_ok=True)
    if not key.is_file():
        pem = await asyncio.to_thread(
            lambda: cert_gen.dump_private_key_as_pem(cert_gen.generate_private_key())
        )
        key.write_bytes(pem)
        key.chmod(0o600)
    await cert_gen.setup_self_signed_certificate(
        key,
        certificate,
        application_uri,
        socket.gethostname(),
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        {"organizationName": "simlab", "organizationalUnitName": "terminal UI"},
    )
    return ClientCertificate(certificate, key, application_uri)


class _Handler:
    """Subscription callbacks (on asyncua's task): hand each change to its node's callback."""

    def __init__(self) -> None:
        self.callbacks: dict[Any, Callable[[DataChange], None]] = {}  # NodeId -> callback

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        callback = self.callbacks.get(node.nodeid)
        if callback is not None:
            callback(_change(node.nodeid.to_string(), data.monitored_item.Value))


class OpcUaBrowser:
    """A browsing session on one OPC UA server; ``async with`` it (see the module doc).

    Args:
        url: the endpoint URL, ``opc.tcp://host:port/path``.
        security: ``None``, ``Sign`` or ``SignAndEncrypt`` (policy Basic256Sha256).
        user: a user name, or None for anonymous access.
        password: the user's password.
        certificate: the client certificate the secure modes need.
        timeout: seconds allowed for connecting and for each request.
    """

    def __init__(
        self,
        url: str,
        *,
        security: SecurityMode = "None",
        user: str | None = None,
        password: str = "",
        certificate: ClientCertificate | None = None,
        timeout: float = 4.0,
    ) -> None:
        if security not in _MODES:
            raise SimlabError(
                f"unknown security mode {security!r}: choose {', '.join(SECURITY_MODES)}"
            )
        self.url = url
        self.security: SecurityMode = security
        self.user = user or None
        self.password = password
        self.certificate = certificate
        self.timeout = timeout
        self.offers: list[EndpointOffer] = []
        """What the server offers (known once connected)."""
        self._client: Any = None
        self._subscription: Any = None
        self._handler = _Handler()

    def describe(self) -> str:
        """``SignAndEncrypt (Basic256Sha256), user operator``: how this session is secured."""
        mode = self.security if self.security == "None" else f"{self.security} ({POLICY})"
        return f"{mode}, {'user ' + self.user if self.user else 'anonymous'}"

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> OpcUaBrowser:
        """Open the session.

        Raises:
            DeviceUnreachable: nothing answers at the URL, or the server does not offer
                the security mode or identity asked for, or refuses the user.
            CertificateNotTrusted: the server does not trust the client certificate.
        """
        client: Any = Client(self.url, timeout=self.timeout)
        try:
            async with asyncio.timeout(self.timeout * 2):
                endpoint = await self._choose_endpoint(client)
                await self._secure(client, endpoint)
                await client.connect()
        except SimlabError:
            await close_quietly(client, self.timeout)
            raise
        except Exception as err:
            await close_quietly(client, self.timeout)
            raise self._refusal(err) from err
        self._client = client
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the session (and its subscription)."""
        client, self._client, self._subscription = self._client, None, None
        if client is not None:
            await close_quietly(client, self.timeout)

    async def _choose_endpoint(self, client: Any) -> Any:
        """The server's endpoint for the security mode asked for, checked against the identity."""
        try:
            endpoints = await client.connect_and_get_server_endpoints()
        except Exception as err:
            raise DeviceUnreachable(
                f"cannot reach {self.url}: {_describe(err)}; is the lab running and the "
                "address right?"
            ) from err
        self.offers = [_offer(e) for e in endpoints]
        policy = "None" if self.security == "None" else POLICY
        matches = [
            (endpoint, offer)
            for endpoint, offer in zip(endpoints, self.offers, strict=True)
            if offer.mode == self.security and offer.policy == policy
        ]
        if not matches:
            offered = ", ".join(dict.fromkeys(str(o) for o in self.offers)) or "nothing"
            raise DeviceUnreachable(
                f"{self.url} offers no {self.security} endpoint with {policy}; it offers: "
                f"{offered}. Choose one of those security modes"
            )
        endpoint, offer = matches[0]
        token = "user name" if self.user else "anonymous"
        if token not in offer.tokens:
            accepted = ", ".join(offer.tokens) or "no identity"
            fix = "Leave the user empty" if self.user else "Enter a user and password"
            raise DeviceUnreachable(
                f"{self.url} ({offer}) does not accept {token} access; it accepts: "
                f"{accepted}. {fix}"
            )
        return endpoint

    async def _secure(self, client: Any, endpoint: Any) -> None:
        if self.user:
            client.set_user(self.user)
            client.set_password(self.password)
        if self.security == "None":
            return
        if self.certificate is None:
            raise SimlabError(
                f"{self.security} needs a client certificate: make one with "
                "make_client_certificate(folder) and pass it as certificate="
            )
        client.application_uri = self.certificate.application_uri
        await client.set_security(
            SecurityPolicyBasic256Sha256,
            str(self.certificate.certificate),
            str(self.certificate.private_key),
            server_certificate=endpoint.ServerCertificate,
            mode=_MODES[self.security],
        )

    def _refusal(self, err: Exception) -> DeviceUnreachable:
        """A connection failure in plain words."""
        name = str(ua.StatusCode(err.code).name) if isinstance(err, ua.UaStatusCodeError) else ""
        if name == "BadSecurityChecksFailed" and self.certificate is not None:
            cert = self.certificate.certificate
            return CertificateNotTrusted(
                f"{self.url} does not trust this client's certificate ({cert}; the server "
                "answered BadSecurityChecksFailed). The server must trust it first: copy it "
                "into the server's pki/trusted folder (a simlab server keeps the refused one "
                "in pki/rejected: move it to pki/trusted), then connect again"
            )
        if name in _IDENTITY_REFUSED:
            who = f"user {self.user!r}" if self.user else "anonymous access"
            why = "unknown user or wrong password" if self.user else "enter a user and password"
            return DeviceUnreachable(f"{self.url} refused {who} ({name}): {why}")
        return DeviceUnreachable(f"cannot connect to {self.url}: {_describe(err)}")

    # --- services -------------------------------------------------------------------------

    @property
    def _session(self) -> Any:
        if self._client is None:
            raise DeviceUnreachable(f"not connected to {self.url}: connect first")
        return self._client

    async def _call(self, what: str, node_id: str, request: Callable[[], Awaitable[Any]]) -> Any:
        """Await one service call: a Bad answer becomes UnknownTag or TagError, a lost
        connection or a timeout DeviceUnreachable."""
        try:
            async with asyncio.timeout(self.timeout):
                return await request()
        except SimlabError:
            raise
        except ua.UaStatusCodeError as err:
            status = ua.StatusCode(err.code)
            _check_node(node_id, status)
            raise TagError(
                f"the server refused to {what} {node_id}: {status.name} ({status.doc})"
            ) from err
        except Exception as err:
            raise DeviceUnreachable(
                f"cannot {what} {node_id} on {self.url}: {_describe(err)}"
            ) from err

    async def browse(self, node_id: str = OBJECTS) -> list[BrowseNode]:
        """The children of ``node_id`` (hierarchical references, forward), in server order.

        Raises:
            UnknownTag: no such node, or a NodeId that does not parse.
            TagError: any other refusal by the server.
            DeviceUnreachable: the connection is lost or the server does not answer.
        """
        client, parent = self._session, _node_id(node_id)
        results = await self._call("browse", node_id, lambda: _browse(client, [parent]))
        result = results[0]
        _check_node(node_id, result.StatusCode)
        references = [r for r in result.References if r.IsForward]
        if not references:
            return []
        grandchildren = await self._call(
            "browse", node_id, lambda: _browse(client, [r.NodeId for r in references])
        )
        return [
            BrowseNode(
                node_id=ref.NodeId.to_string(),
                display_name=ref.DisplayName.Text or ref.BrowseName.Name,
                browse_name=_qualified(ref.BrowseName),
                node_class=ref.NodeClass.name,
                has_children=any(r.IsForward for r in below.References or []),
            )
            for ref, below in zip(references, grandchildren, strict=True)
        ]

    async def read(self, node_id: str) -> NodeAttributes:
        """The attributes of ``node_id`` in one Read request (source and server timestamps).

        Raises:
            UnknownTag: no such node, or a NodeId that does not parse.
            TagError: any other refusal by the server.
            DeviceUnreachable: the connection is lost or the server does not answer.
        """
        client, node = self._session, _node_id(node_id)
        params = ua.ReadParameters()
        params.TimestampsToReturn = ua.TimestampsToReturn.Both
        for which in _ATTRIBUTES:
            item = ua.ReadValueId()
            item.NodeId, item.AttributeId = node, which
            params.NodesToRead.append(item)
        values = await self._call("read", node_id, lambda: client.uaclient.read(params))
        data = dict(zip(_ATTRIBUTES, values, strict=True))
        _check_node(node_id, data[ua.AttributeIds.NodeId].StatusCode)

        def attribute(which: Any) -> Any:
            value = data[which]
            good = value.StatusCode is None or value.StatusCode.is_good()
            return value.Value.Value if good and value.Value is not None else None

        node_attributes = NodeAttributes(
            node_id=node.to_string(),
            browse_name=_qualified(attribute(ua.AttributeIds.BrowseName)),
            display_name=_text(attribute(ua.AttributeIds.DisplayName)),
            node_class=_class_name(attribute(ua.AttributeIds.NodeClass)),
            description=_text(attribute(ua.AttributeIds.Description)),
        )
        type_id = attribute(ua.AttributeIds.DataType)
        if type_id is None:  # no Variable: no value
            return node_attributes
        access = attribute(ua.AttributeIds.UserAccessLevel)
        if access is None:
            access = attribute(ua.AttributeIds.AccessLevel) or 0
        value = _change(node_attributes.node_id, data[ua.AttributeIds.Value])
        return dataclasses.replace(
            node_attributes,
            data_type=await self._type_name(type_id),
            value=value.value,
            status=value.status,
            source_timestamp=value.source_timestamp,
            server_timestamp=_utc(data[ua.AttributeIds.Value].ServerTimestamp),
            readable=bool(access & ua.AccessLevel.CurrentRead.mask),
            writable=bool(access & ua.AccessLevel.CurrentWrite.mask),
        )

    async def _type_name(self, type_id: Any) -> str:
        """``Double`` for ``i=11``; a server's own DataType by its BrowseName."""
        if type_id.NamespaceIndex == 0 and type_id.Identifier in ua.ObjectIdNames:
            return str(ua.ObjectIdNames[type_id.Identifier])
        node = self._session.get_node(type_id)
        name = await self._call("read", str(type_id.to_string()), node.read_browse_name)
        return str(name.Name)

    async def write(self, node_id: str, value: Scalar) -> Scalar:
        """Write ``value`` (text is parsed) as the node's DataType; returns the value sent.

        Raises:
            ValueOutOfRange: a value that is not of the DataType (``'abc'`` for a Double),
                or the server answers BadOutOfRange / BadTypeMismatch.
            TagNotWritable: the server answers BadNotWritable or BadUserAccessDenied.
            UnknownTag: no such node.
            TagError: any other refusal.
            DeviceUnreachable: the connection is lost or the server does not answer.
        """
        client, node = self._session, _node_id(node_id)
        target = client.get_node(node)
        try:
            variant_type = await self._call(
                "read the DataType of", node_id, target.read_data_type_as_variant_type
            )
        except UnknownTag:
            raise
        except TagError as err:
            raise TagNotWritable(f"{node_id} has no value to write: it is not a Variable") from err
        converted = _convert(node_id, value, variant_type.name)
        data = ua.DataValue(ua.Variant(converted, variant_type))
        statuses = await self._call(
            "write",
            node_id,
            lambda: client.write_values([target], [data], raise_on_partial_error=False),
        )
        _check_write(node_id, converted, statuses[0])
        return converted

    async def subscribe(
        self, node_id: str, on_change: Callable[[DataChange], None], interval_ms: float = 250.0
    ) -> Monitor:
        """Watch ``node_id``'s value: ``on_change`` gets each notification (on the event loop,
        first the current value); sampling and publishing every ``interval_ms``. One monitor
        per node: subscribing a node again replaces the callback.

        Raises:
            UnknownTag: no such node, or a NodeId that does not parse.
            TagError: the server refuses (a node without a value: BadAttributeIdInvalid).
            DeviceUnreachable: the connection is lost or the server does not answer.
        """
        client, node = self._session, _node_id(node_id)
        if self._subscription is None:
            self._subscription = await self._call(
                "subscribe to",
                node_id,
                lambda: client.create_subscription(interval_ms, self._handler),
            )
        subscription, callbacks = self._subscription, self._handler.callbacks
        callbacks[node] = on_change
        try:
            handle = await self._call(
                "subscribe to",
                node_id,
                lambda: subscription.subscribe_data_change(
                    client.get_node(node), sampling_interval=interval_ms
                ),
            )
        except SimlabError:
            callbacks.pop(node, None)
            raise

        async def stop() -> None:
            callbacks.pop(node, None)
            if self._client is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.timeout):
                        await subscription.unsubscribe(handle)

        return Monitor(node.to_string(), stop)


# --- conversions ----------------------------------------------------------------------------


async def _browse(client: Any, nodes: list[Any]) -> list[Any]:
    """One Browse request: every node's forward hierarchical references, with all fields."""
    params = ua.BrowseParameters()
    params.View = ua.ViewDescription()
    params.RequestedMaxReferencesPerNode = 0
    for node in nodes:
        description = ua.BrowseDescription()
        description.NodeId = node
        description.BrowseDirection = ua.BrowseDirection.Forward
        description.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HierarchicalReferences)
        description.IncludeSubtypes = True
        description.NodeClassMask = 0
        description.ResultMask = ua.BrowseResultMask.All
        params.NodesToBrowse.append(description)
    return list(await client.uaclient.browse(params))


def _node_id(text: str) -> Any:
    try:
        return ua.NodeId.from_string(text.strip())
    except (ua.UaStringParsingError, ValueError) as err:
        raise UnknownTag(
            f"{text!r} is not a NodeId; write it like ns=2;s=plc1.level or i=85"
        ) from err


def _check_node(node_id: str, status: Any) -> None:
    if status is not None and str(status.name) in _UNKNOWN_NODE:
        raise UnknownTag(f"the server has no node {node_id} ({status.name})")


def _offer(endpoint: Any) -> EndpointOffer:
    mode = {v: k for k, v in _MODES.items()}.get(endpoint.SecurityMode, "Invalid")
    tokens = tuple(
        dict.fromkeys(_TOKENS.get(t.TokenType, "other") for t in endpoint.UserIdentityTokens)
    )
    return EndpointOffer(mode, str(endpoint.SecurityPolicyUri).rpartition("#")[2], tokens)


def _change(node_id: str, data: Any) -> DataChange:
    status = data.StatusCode
    name = "Good" if status is None else str(status.name)
    variant = data.Value
    value = _plain(variant.Value) if variant is not None else None
    return DataChange(node_id, value, name, _utc(data.SourceTimestamp))


def _utc(stamp: datetime | None) -> datetime | None:
    """asyncua decodes DateTime as naive UTC: make it aware."""
    if stamp is None or stamp.tzinfo is not None:
        return stamp
    return stamp.replace(tzinfo=UTC)


def _plain(value: Any) -> Scalar | None:
    """A value as shown to a person: scalars as they are, structures as short text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return _text(value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, ua.LocalizedText):
        return str(value.Text or "")
    if isinstance(value, ua.QualifiedName):
        return _qualified(value)
    if isinstance(value, ua.NodeId):
        return str(value.to_string())
    if isinstance(value, datetime):
        return (_utc(value) or value).isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ", ".join(
            f"{f.name}={_text(getattr(value, f.name))}" for f in dataclasses.fields(value)
        )
        return f"{type(value).__name__}({fields})"
    return str(value)


def _qualified(name: Any) -> str:
    """``2:level``, as UaExpert writes a BrowseName (namespace index, name)."""
    if name is None:
        return ""
    return f"{name.NamespaceIndex}:{name.Name}" if name.NamespaceIndex else str(name.Name)


def _class_name(node_class: Any) -> str:
    return str(ua.NodeClass(node_class).name) if node_class is not None else "Unspecified"


def _convert(node_id: str, value: Scalar, type_name: str) -> Scalar:
    """``value`` (text typed by a person, or a Python value) as ``type_name``'s Python type."""
    text = value.strip() if isinstance(value, str) else value
    if type_name == "Boolean":
        if isinstance(text, str):
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueOutOfRange(f"{node_id} is a Boolean: enter true or false, not {text!r}")
        return bool(text)
    if type_name == "String":
        return str(value)
    if type_name in ("Float", "Double"):
        try:
            number = float(text)
        except (TypeError, ValueError) as err:
            raise ValueOutOfRange(
                f"{node_id} is a {type_name}: {text!r} is not a number (e.g. 1.25)"
            ) from err
        if not math.isfinite(number):
            raise ValueOutOfRange(f"{node_id} is a {type_name}: enter a finite number")
        return number
    if type_name in _INTEGERS:
        low, high = _INTEGERS[type_name]
        try:
            number = float(text)
            if not number.is_integer():
                raise ValueError(text)
        except (TypeError, ValueError, OverflowError) as err:
            raise ValueOutOfRange(
                f"{node_id} is an {type_name}: {text!r} is not a whole number"
            ) from err
        if not low <= number <= high:
            raise ValueOutOfRange(f"{node_id} is an {type_name}: {text} is not in {low}..{high}")
        return int(number)
    raise ValueOutOfRange(
        f"{node_id} has DataType {type_name}: this browser writes only numbers, "
        "Booleans and strings"
    )


def _check_write(node_id: str, value: Scalar, status: Any) -> None:
    if status is None or status.is_good():
        return
    name = str(status.name)
    if name in _NOT_WRITABLE:
        raise TagNotWritable(f"the server refused to write {node_id}: it is read-only ({name})")
    if name in _OUT_OF_RANGE:
        raise ValueOutOfRange(f"the server refused {node_id} = {value!r}: {name} ({status.doc})")
    _check_node(node_id, status)
    raise TagError(f"the server refused {node_id} = {value!r}: {name} ({status.doc})")


def _describe(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "no answer in time"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
