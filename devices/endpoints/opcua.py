"""OPC UA server of one device: its tags as a browsable address space over a real socket.

Address space (``ns`` is the index of the device's namespace, ``spec.opcua.namespace``)::

    Objects/<device>                      ns=<ns>;s=<device>     DI properties, methods
        Manufacturer, Model, SerialNumber, SoftwareRevision, ...  (DI namespace browse names)
        Start, Stop, ...                  ns=<ns>;s=<device>.<Method>  (pulse a command tag)
        Inputs | Outputs | Parameters | Status | <tag.opcua.folder>   ns=<ns>;s=<device>/<path>
            <tag>                         ns=<ns>;s=<device>.<tag>
                EURange, EngineeringUnits ns=<ns>;s=<device>.<tag>.EURange ...

The lab calls :meth:`OpcUaEndpoint.publish` after every scan of the device: it copies the
tags that changed into the address space (value, status code from the reading's quality,
source timestamp from the lab's clock) at the cost of a dict update each, and hands them to
the subscriptions in one task. Client writes and method calls go through
:meth:`Device.write`, so the device's checks (writable, type, range) decide, and the
:class:`SessionAudit` records every session, read, subscription, write and call.

asyncua has no public hook for per-session auditing, refused writes or trust decisions, so
this module gives the asyncua server its own ``InternalServer`` that creates
:class:`_LabSession` objects. This module and :mod:`devices.endpoints.opcua_security` are
the only ones that import asyncua.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncua.ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession
from asyncua.server.server import Server

from devices.device import Device, TagValue
from devices.endpoints.audit import SessionAudit
from devices.endpoints.opcua_security import (
    SECURITY_POLICIES,
    LabUserManager,
    Pki,
    TrustList,
    describe_policy,
    ensure_server_certificate,
)
from devices.sensors import Quality
from simlab.clock import Clock
from simlab.errors import LabError, TagError, TagNotWritable, ValueOutOfRange
from simlab.scenario.devices import OpcUaDeviceSpec, TagSpec
from simlab.scenario.faults import CommLossFault, FaultSpec, FrozenFault, LatencyFault
from simlab.units import UNITS

__all__ = ["DI_NAMESPACE", "EU_NAMESPACE", "OpcUaEndpoint", "default_folder", "unit_id"]

_log = logging.getLogger(__name__)

ua: Any = asyncua.ua
"""asyncua's types, untyped here: their NewType annotations (Int16, UInt32, ...) add only noise."""

EU_NAMESPACE = "http://www.opcfoundation.org/UA/units/un/cefact"
"""NamespaceUri of EUInformation built from UN/CEFACT common codes (OPC 10000-8)."""
DI_NAMESPACE = "http://opcfoundation.org/UA/DI/"
"""Namespace of the Device Integration companion spec: browse names of identification properties."""

_S = ua.StatusCodes
_GOOD = ua.StatusCode(_S.Good)
_UNCERTAIN = ua.StatusCode(_S.UncertainEngineeringUnitsExceeded)
_BAD_SENSOR = ua.StatusCode(_S.BadSensorFailure)
_BAD_COMMUNICATION = ua.StatusCode(_S.BadCommunicationError)
_NULL = ua.Variant(None, ua.VariantType.Null)
_INT32 = (-(2**31), 2**31 - 1)

# UN/CEFACT symbols where they differ from simlab's ASCII ones (EUInformation.DisplayName).
_UNECE_SYMBOLS = {
    "CEL": "°C",
    "MTK": "m²",
    "MTQ": "m³",
    "MQH": "m³/h",
    "MQS": "m³/s",
    "LTR": "l",
    "MLT": "ml",
    "L2": "l/min",
    "G51": "l/s",
    "RPM": "r/min",
    "C94": "min⁻¹",
}


def unit_id(common_code: str) -> int:
    """EUInformation.UnitId of a UN/CEFACT common code (OPC 10000-8 §5.6.3): its ASCII bytes."""
    value = 0
    for char in common_code[:4]:
        value = (value << 8) | ord(char)
    return value


def default_folder(tag: TagSpec) -> str:
    """Folder of a tag without ``opcua.folder``: by what it is bound to."""
    if tag.signal:
        return "Inputs"
    if tag.drives:
        return "Outputs"
    if tag.writable:
        return "Parameters"
    return "Status"


def _to_int32(value: TagValue) -> int:
    number = float(value)
    if math.isnan(number):
        return 0
    return int(min(max(round(number), _INT32[0]), _INT32[1]))


@dataclass(frozen=True)
class _Kind:
    """How a tag type appears in OPC UA."""

    variant: Any  # ua.VariantType
    data_type: int  # ua.ObjectIds of the DataType
    convert: Callable[[TagValue], object]


_KINDS = {
    "bool": _Kind(ua.VariantType.Boolean, ua.ObjectIds.Boolean, bool),
    "int": _Kind(ua.VariantType.Int32, ua.ObjectIds.Int32, _to_int32),
    "float": _Kind(ua.VariantType.Double, ua.ObjectIds.Double, float),
    "string": _Kind(ua.VariantType.String, ua.ObjectIds.String, str),
}


@dataclass(eq=False)
class _TagNode:
    """A tag in the address space, with what :meth:`OpcUaEndpoint.publish` needs to update it."""

    name: str
    node_id: Any  # ua.NodeId
    kind: _Kind
    sensor: int | None  # position in the sensor bank (to tell a dead link from a dead sensor)
    attribute: Any = None  # asyncua AttributeValue of the Value attribute, bound once built
    value: TagValue | None = None
    quality: Quality | None = None


@dataclass(frozen=True)
class _Method:
    """A method on the device object that pulses a bool command tag."""

    name: str
    tag: str
    node_id: Any


@dataclass
class _Faults:
    """Endpoint faults acting now (several of a kind may overlap)."""

    comm_loss: list[FaultSpec] = field(default_factory=list)
    latency: list[LatencyFault] = field(default_factory=list)
    frozen: list[FaultSpec] = field(default_factory=list)

    @property
    def delay(self) -> float:
        """Seconds every reply is held back."""
        return max((f.delay for f in self.latency), default=0.0) / 1000.0


def _peer(name: Any) -> str:
    if isinstance(name, tuple) and len(name) >= 2:
        host = f"[{name[0]}]" if ":" in str(name[0]) else str(name[0])
        return f"{host}:{name[1]}"
    return str(name)


def _both_nan(a: object, b: object) -> bool:
    """True when both are float NaN (NaN != NaN, yet an unchanged NaN reading is no change)."""
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


def _status_name(code: int) -> str:
    return str(ua.StatusCode(code).name)


# --- address space items --------------------------------------------------------------


def _item(
    node_id: Any,
    name: Any,
    parent: Any,
    *,
    reference: int,
    node_class: Any,
    type_def: int | None,
    attributes: Any,
) -> Any:
    """One AddNodesItem."""
    item = ua.AddNodesItem()
    item.RequestedNewNodeId = node_id
    item.BrowseName = name
    item.ParentNodeId = parent
    item.ReferenceTypeId = ua.NodeId(reference)
    item.NodeClass = node_class
    if type_def is not None:
        item.TypeDefinition = ua.NodeId(type_def)
    item.NodeAttributes = attributes
    return item


def _object_item(
    node_id: Any, name: Any, parent: Any, *, folder: bool = False, description: str = ""
) -> Any:
    """An object: a folder (organized by its parent) or the device (organized by Objects)."""
    attrs = ua.ObjectAttributes()
    attrs.DisplayName = ua.LocalizedText(name.Name)
    attrs.Description = ua.LocalizedText(description)
    attrs.EventNotifier = 0
    attrs.WriteMask = attrs.UserWriteMask = 0
    type_def = ua.ObjectIds.FolderType if folder else ua.ObjectIds.BaseObjectType
    return _item(
        node_id,
        name,
        parent,
        reference=ua.ObjectIds.Organizes,
        node_class=ua.NodeClass.Object,
        type_def=type_def,
        attributes=attrs,
    )


def _variable_item(
    node_id: Any,
    name: Any,
    parent: Any,
    *,
    value: Any,
    data_type: int,
    description: str = "",
    property_: bool = False,
    writable: bool = False,
    type_def: int = ua.ObjectIds.BaseDataVariableType,
    reference: int | None = None,
    sampling_ms: float = 0.0,
) -> Any:
    """A scalar variable (or property) holding ``value`` (a Variant)."""
    attrs = ua.VariableAttributes()
    attrs.DisplayName = ua.LocalizedText(name.Name)
    attrs.Description = ua.LocalizedText(description)
    attrs.DataType = ua.NodeId(data_type)
    attrs.Value = value
    attrs.ValueRank = ua.ValueRank.Scalar
    attrs.ArrayDimensions = None
    access = ua.AccessLevel.CurrentRead.mask
    if writable:
        access |= ua.AccessLevel.CurrentWrite.mask
    attrs.AccessLevel = attrs.UserAccessLevel = access
    attrs.WriteMask = attrs.UserWriteMask = 0
    attrs.Historizing = False
    attrs.MinimumSamplingInterval = sampling_ms
    if property_:
        type_def, reference = ua.ObjectIds.PropertyType, ua.ObjectIds.HasProperty
    reference = ua.ObjectIds.HasComponent if reference is None else reference
    return _item(
        node_id,
        name,
        parent,
        reference=reference,
        node_class=ua.NodeClass.Variable,
        type_def=type_def,
        attributes=attrs,
    )


def _method_item(node_id: Any, name: Any, parent: Any, description: str) -> Any:
    attrs = ua.MethodAttributes()
    attrs.DisplayName = ua.LocalizedText(name.Name)
    attrs.Description = ua.LocalizedText(description)
    attrs.Executable = attrs.UserExecutable = True
    attrs.WriteMask = attrs.UserWriteMask = 0
    return _item(
        node_id,
        name,
        parent,
        reference=ua.ObjectIds.HasComponent,
        node_class=ua.NodeClass.Method,
        type_def=None,
        attributes=attrs,
    )


def _eu_information(symbol: str) -> Any | None:
    """EngineeringUnits of a simlab unit symbol; None for no unit and booleans."""
    if symbol in ("", "bool") or symbol not in UNITS:
        return None
    unit = UNITS[symbol]
    return ua.EUInformation(
        NamespaceUri=EU_NAMESPACE,
        UnitId=unit_id(unit.unece),
        DisplayName=ua.LocalizedText(_UNECE_SYMBOLS.get(unit.unece, symbol)),
        Description=ua.LocalizedText(unit.description),
    )


def _eu_range(tag: TagSpec) -> tuple[float, float] | None:
    if tag.range is not None:
        return tag.range
    if tag.sensor is not None and tag.sensor.range is not None:
        return tag.sensor.range
    return None


# --- sessions ---------------------------------------------------------------------------


class _LabSession(InternalSession):
    """A client's session: every service a client uses passes the endpoint's audit and checks."""

    def __init__(self, lab: OpcUaEndpoint, *args: Any, **kwargs: Any) -> None:
        self.lab = lab
        self.audit_id: int | None = None
        self.monitored: dict[tuple[int, int], str] = {}  # (subscription, item) -> tag
        super().__init__(*args, **kwargs)

    async def create_session(self, params: Any, sockname: Any = None) -> Any:
        self.lab._attach(self)
        self.lab._check_certificate(self, params.ClientCertificate)
        return await super().create_session(params, sockname=sockname)

    def activate_session(self, params: Any, peer_certificate: Any) -> Any:
        self.lab._attach(self)
        token = params.UserIdentityToken
        try:
            self.lab._check_token(token)
            result = super().activate_session(params, peer_certificate)
        except (ServiceError, ua.UaStatusCodeError) as err:
            self.lab._refused_activation(self, token, int(err.code))
            raise
        self.lab._activated(self)
        return result

    async def close_session(self, delete_subs: bool = True) -> None:
        await super().close_session(delete_subs)
        self.lab._sessions.discard(self)
        self.lab._closed(self)

    async def read(self, params: Any) -> Any:
        results = await super().read(params)
        self.lab._record_reads(self, params.NodesToRead, results)
        return results

    async def write(self, params: Any) -> list[Any]:
        return await self.lab._write(self, params, super().write)

    async def call(self, params: list[Any]) -> list[Any]:
        return await self.lab._call(self, params, super().call)

    async def create_monitored_items(self, params: Any) -> list[Any]:
        results = await super().create_monitored_items(params)
        self.lab._record_subscriptions(self, params, results)
        return results

    async def delete_monitored_items(self, params: Any) -> list[Any]:
        results = await super().delete_monitored_items(params)
        self.lab._record_unsubscriptions(
            self, [(params.SubscriptionId, int(i)) for i in params.MonitoredItemIds]
        )
        return results

    async def delete_subscriptions(self, ids: list[int]) -> list[Any]:
        gone = [key for key in self.monitored if key[0] in ids]
        results = await super().delete_subscriptions(ids)
        self.lab._record_unsubscriptions(self, gone)
        return results


class _LabInternalServer(InternalServer):
    """asyncua's internal server, creating :class:`_LabSession` for network clients."""

    def __init__(self, lab: OpcUaEndpoint, user_manager: LabUserManager) -> None:
        self.lab = lab
        super().__init__(user_manager=user_manager)

    def create_session(self, name: Any, user: Any = None, external: bool = False) -> Any:
        user = User(role=UserRole.Anonymous) if user is None else user
        if not external:
            return super().create_session(name, user=user, external=external)
        session = _LabSession(
            self.lab, self, self.aspace, self.subscription_service, name, user=user, external=True
        )
        self.lab._sessions.add(session)
        return session


class _DelayedTransport:
    """Stands in for a connection's transport: writes leave ``delay()`` seconds late, in order."""

    def __init__(self, transport: Any, delay: Callable[[], float]) -> None:
        self._transport = transport
        self._delay = delay
        self._queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None

    def write(self, data: bytes) -> None:
        delay = self._delay()
        if delay <= 0 and not self._queue:
            self._transport.write(data)
            return
        loop = asyncio.get_running_loop()
        self._queue.append((loop.time() + delay, data))
        if self._timer is None:
            self._timer = loop.call_at(self._queue[0][0], self._send_due)

    def _send_due(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        while self._queue and self._queue[0][0] <= loop.time() + 1e-4:
            _, data = self._queue.popleft()
            if not self._transport.is_closing():
                self._transport.write(data)
        if self._queue:
            self._timer = loop.call_at(self._queue[0][0], self._send_due)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


# --- the endpoint -----------------------------------------------------------------------


class OpcUaEndpoint:
    """The OPC UA server of one device (an async context manager; listening once entered)."""

    def __init__(
        self,
        device: Device,
        *,
        host: str,
        port: int,
        audit: SessionAudit,
        clock: Clock,
        now: Callable[[], float],
        state_dir: Path,
    ) -> None:
        self.device = device
        self.spec: OpcUaDeviceSpec = device.spec.opcua or OpcUaDeviceSpec()
        self.host = host
        self.port = port
        self.audit = audit
        self.clock = clock
        self._now = now
        self.state_dir = Path(state_dir)
        self.pki = Pki(self.state_dir / "pki")
        self.trust = TrustList(self.pki, self.spec.auto_trust)
        self.application_uri = f"urn:simlab:{device.name}"
        self._users = LabUserManager(self.spec.users, self.spec.anonymous)
        self._server = Server(iserver=_LabInternalServer(self, self._users))
        self._max_connections = int(self._server.iserver.max_connections)
        self._faults = _Faults()
        self._nodes: list[_TagNode] = []
        self._by_node: dict[Any, _TagNode] = {}
        self._by_tag: dict[str, _TagNode] = {}
        self._methods: dict[Any, _Method] = {}
        self._sessions: set[_LabSession] = set()
        self._device_node: Any = None
        self.namespace_index = 0
        self._pending: list[tuple[Any, Any]] = []
        self._notify_task: asyncio.Task[None] | None = None
        self._clock_attribute: Any = None
        self._clock_sent = -math.inf
        self._running = False

    @property
    def url(self) -> str:
        """The endpoint URL clients connect to."""
        return f"opc.tcp://{self.host}:{self.port}/simlab/{self.device.name}"

    @property
    def connections(self) -> int:
        """Client connections open now (any stage: before, during or after a session)."""
        return len(self._protocols())

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> OpcUaEndpoint:
        await self._configure()
        await self._build_address_space()
        self._running = True
        self._publish(force=True)
        try:
            await self._server.start()
        except OSError as err:
            self._running = False
            raise LabError(
                f"OPC UA server of {self.device.name!r} cannot listen on {self.host}:{self.port}: "
                f"{err.strerror or err}; is another lab or server using the port?"
            ) from err
        if self._server.bserver is not None and self.port == 0:
            self.port = int(self._server.bserver.port)
            self._advertise_port()
        _log.info("OPC UA server of %s listening on %s", self.device.name, self.url)
        return self

    def _advertise_port(self) -> None:
        """After binding port 0, put the port the OS chose into the endpoint descriptions."""
        self._server.set_endpoint(self.url)
        for endpoint in self._server.iserver.endpoints:
            endpoint.EndpointUrl = self.url
            endpoint.Server.DiscoveryUrls = [self.url]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._running = False
        if self._notify_task is not None:
            self._notify_task.cancel()
        await self._server.stop()
        for session in list(self._sessions):  # those with subscriptions outlive their connection
            await session.close_session(True)
        now = self._now()
        for record in self.audit.sessions.values():
            if record.device == self.device.name and record.protocol == "opcua":
                self.audit.close(record.id, now)

    async def _configure(self) -> None:
        """Certificates, endpoints, identity tokens and build info, before the server starts."""
        server, spec, identity = self._server, self.spec, self.device.spec.identity
        self.state_dir.mkdir(parents=True, exist_ok=True)
        secure = any(name != "None" for name in spec.security)
        if secure:
            await ensure_server_certificate(self.pki, self.application_uri, self.device.name)
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name(f"simlab {self.device.name} ({identity.model})")
        server.product_uri = "urn:simlab"
        server.manufacturer_name = identity.manufacturer
        server.allow_remote_admin(False)
        server.disable_clock()
        await server.set_application_uri(self.application_uri)
        if secure:
            await server.load_certificate(str(self.pki.certificate))
            await server.load_private_key(str(self.pki.private_key))
        server.set_security_policy([SECURITY_POLICIES[name] for name in spec.security])
        tokens: list[type] = [ua.AnonymousIdentityToken] if spec.anonymous else []
        if spec.users:
            tokens.append(ua.UserNameIdentityToken)
        server.set_identity_tokens(tokens)
        await server.set_build_info(
            "urn:simlab",
            identity.manufacturer,
            identity.model,
            identity.revision,
            identity.serial_number,
            self.clock.epoch,
        )

    # --- address space ----------------------------------------------------------------------

    async def _build_address_space(self) -> None:
        server, name = self._server, self.device.name
        ns = self.namespace_index = await server.register_namespace(self.spec.namespace)
        di = await server.register_namespace(DI_NAMESPACE)
        self._device_node = ua.NodeId(name, ns)
        items = [
            _object_item(
                self._device_node,
                ua.QualifiedName(name, ns),
                ua.NodeId(ua.ObjectIds.ObjectsFolder),
                description=self.device.spec.description or name,
            ),
            *self._identity_items(di),
            *self._method_items(),
        ]
        folders: dict[str, Any] = {"": self._device_node}
        for tag in self.device.spec.tags:
            parent = self._folder(tag, folders, items)
            items.extend(self._tag_items(tag, parent, parent != self._device_node))
        results = await server.iserver.isession.add_nodes(items)
        for item, result in zip(items, results, strict=True):
            if not result.StatusCode.is_good():
                raise LabError(
                    f"OPC UA node {item.RequestedNewNodeId} of {name!r} could not be "
                    f"created: {result.StatusCode.name}"
                )
        self._bind_nodes()

    def _identity_items(self, di: int) -> list[Any]:
        identity, parent = self.device.spec.identity, self._device_node
        text, string = ua.VariantType.LocalizedText, ua.VariantType.String
        values = [
            (
                "Manufacturer",
                ua.LocalizedText(identity.manufacturer),
                text,
                ua.ObjectIds.LocalizedText,
            ),
            ("ManufacturerUri", identity.vendor_url, string, ua.ObjectIds.String),
            ("Model", ua.LocalizedText(identity.model), text, ua.ObjectIds.LocalizedText),
            ("ProductCode", identity.product_code, string, ua.ObjectIds.String),
            ("SerialNumber", identity.serial_number, string, ua.ObjectIds.String),
            ("SoftwareRevision", identity.revision, string, ua.ObjectIds.String),
            ("RevisionCounter", 0, ua.VariantType.Int32, ua.ObjectIds.Int32),
        ]
        return [
            _variable_item(
                ua.NodeId(f"{self.device.name}.{prop}", self.namespace_index),
                ua.QualifiedName(prop, di),
                parent,
                value=ua.Variant(value, vtype),
                data_type=dtype,
                property_=True,
            )
            for prop, value, vtype, dtype in values
        ]

    def _method_items(self) -> list[Any]:
        items = []
        for method, tag in self.spec.methods.items():
            node_id = ua.NodeId(f"{self.device.name}.{method}", self.namespace_index)
            self._methods[node_id] = _Method(method, tag, node_id)
            description = f"Pulses {tag}: {self.device.specs[tag].description}".rstrip(": ")
            items.append(
                _method_item(
                    node_id,
                    ua.QualifiedName(method, self.namespace_index),
                    self._device_node,
                    description,
                )
            )
        return items

    def _folder(self, tag: TagSpec, folders: dict[str, Any], items: list[Any]) -> Any:
        """NodeId of the tag's folder, adding the folders of its path that are new."""
        path = (
            tag.opcua.folder if tag.opcua and tag.opcua.folder is not None else default_folder(tag)
        )
        parts = [part for part in path.split("/") if part]
        for depth in range(1, len(parts) + 1):
            key = "/".join(parts[:depth])
            if key not in folders:
                node_id = ua.NodeId(f"{self.device.name}/{key}", self.namespace_index)
                parent = folders["/".join(parts[: depth - 1])]
                items.append(
                    _object_item(
                        node_id,
                        ua.QualifiedName(parts[depth - 1], self.namespace_index),
                        parent,
                        folder=True,
                    )
                )
                folders[key] = node_id
        return folders["/".join(parts)]

    def _tag_items(self, tag: TagSpec, parent: Any, in_folder: bool) -> list[Any]:
        """The tag's variable and its EURange / EngineeringUnits properties."""
        ns, kind = self.namespace_index, _KINDS[tag.type]
        node_id = ua.NodeId(f"{self.device.name}.{tag.name}", ns)
        position = self.device.sensors.position.get(f"{self.device.name}.{tag.name}")
        node = _TagNode(tag.name, node_id, kind, position)
        self._nodes.append(node)
        self._by_node[node_id] = node
        self._by_tag[tag.name] = node
        numeric = tag.type in ("int", "float")
        eu_range = _eu_range(tag) if numeric else None
        eu = _eu_information(self.device.unit(tag.name)) if numeric else None
        type_def = ua.ObjectIds.BaseDataVariableType
        if eu_range is not None:
            type_def = ua.ObjectIds.AnalogItemType
        elif eu is not None:
            type_def = ua.ObjectIds.AnalogUnitType
        browse = tag.opcua.browse_name if tag.opcua and tag.opcua.browse_name else tag.name
        initial = ua.Variant(kind.convert(self.device.tags[tag.name]), kind.variant)
        items = [
            _variable_item(
                node_id,
                ua.QualifiedName(browse, ns),
                parent,
                value=initial,
                data_type=kind.data_type,
                description=tag.description,
                writable=tag.writable,
                type_def=type_def,
                reference=ua.ObjectIds.Organizes if in_folder else ua.ObjectIds.HasComponent,
                sampling_ms=self.device.scan_time * 1000.0,
            )
        ]
        if eu_range is not None:
            items.append(
                _variable_item(
                    ua.NodeId(f"{node_id.Identifier}.EURange", ns),
                    ua.QualifiedName("EURange", 0),
                    node_id,
                    value=ua.Variant(ua.Range(*eu_range), ua.VariantType.ExtensionObject),
                    data_type=ua.ObjectIds.Range,
                    property_=True,
                )
            )
        if eu is not None:
            items.append(
                _variable_item(
                    ua.NodeId(f"{node_id.Identifier}.EngineeringUnits", ns),
                    ua.QualifiedName("EngineeringUnits", 0),
                    node_id,
                    value=ua.Variant(eu, ua.VariantType.ExtensionObject),
                    data_type=ua.ObjectIds.EUInformation,
                    property_=True,
                )
            )
        return items

    def _bind_nodes(self) -> None:
        """Keep the Value attribute of every tag, and link the methods' callbacks."""
        aspace = self._server.iserver.aspace
        for node in self._nodes:
            node.attribute = aspace[node.node_id].attributes[ua.AttributeIds.Value]
        clock_node = aspace[ua.NodeId(ua.ObjectIds.Server_ServerStatus_CurrentTime)]
        self._clock_attribute = clock_node.attributes[ua.AttributeIds.Value]
        for method in self._methods.values():
            aspace.add_method_callback(method.node_id, self._internal_method(method))

    def _internal_method(self, method: _Method) -> Callable[..., Any]:
        async def pulse(parent: Any, *args: Any) -> list[Any]:
            self._pulse(method)
            return []

        return pulse

    # --- publishing -------------------------------------------------------------------------

    def publish(self) -> None:
        """Copy changed tags into the address space; call after every scan of the device.

        Synchronous and cheap: a comparison per tag, a DataValue per change. Subscribers are
        notified from one task scheduled on the running loop (it runs at the loop's next turn).
        """
        self._publish(force=False)

    def _publish(self, force: bool) -> None:
        if not self._running:
            return
        now = self._now()
        self._tick_server_clock(now)
        if not self._faults.frozen:
            tags, quality = self.device.tags, self.device.quality
            stamp: datetime | None = None
            for node in self._nodes:
                value, q = tags[node.name], quality[node.name]
                previous = node.value
                if (
                    not force
                    and q is node.quality
                    and (value == previous or _both_nan(value, previous))
                ):
                    continue
                if stamp is None:
                    stamp = self.clock.datetime_at(now)
                self._set(node, value, q, stamp)
        self._schedule_notify()

    def _set(self, node: _TagNode, value: TagValue, quality: Quality, stamp: datetime) -> None:
        """Put one tag value in the address space and queue it for the subscriptions."""
        node.value, node.quality = value, quality
        if quality is Quality.BAD:
            variant = _NULL  # OPC 10000-4 §7.7.1: the value of a Bad DataValue is null
        else:
            variant = ua.Variant(node.kind.convert(value), node.kind.variant)
        data = ua.DataValue(
            Value=variant,
            StatusCode=self._status(node, quality),
            SourceTimestamp=stamp,
            ServerTimestamp=stamp,
        )
        attribute = node.attribute
        attribute.value = data
        if attribute.datachange_callbacks:
            self._pending.append((attribute, data))

    def _status(self, node: _TagNode, quality: Quality) -> Any:
        if quality is Quality.GOOD:
            return _GOOD
        if quality is Quality.UNCERTAIN:
            return _UNCERTAIN
        if node.sensor is not None and bool(self.device.sensors.offline[node.sensor]):
            return _BAD_COMMUNICATION
        return _BAD_SENSOR

    def _tick_server_clock(self, now: float) -> None:
        """Server_ServerStatus_CurrentTime follows the lab's clock, once per simulated second."""
        if now - self._clock_sent < 1.0 or self._clock_attribute is None:
            return
        self._clock_sent = now
        stamp = self.clock.datetime_at(now)
        data = ua.DataValue(
            Value=ua.Variant(stamp, ua.VariantType.DateTime),
            SourceTimestamp=stamp,
            ServerTimestamp=stamp,
        )
        self._clock_attribute.value = data
        if self._clock_attribute.datachange_callbacks:
            self._pending.append((self._clock_attribute, data))

    def _schedule_notify(self) -> None:
        if not self._pending or self._notify_task is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop yet: the next publish in one will notify
            return
        self._notify_task = loop.create_task(
            self._notify(), name=f"opcua:{self.device.name}:notify"
        )

    async def _notify(self) -> None:
        """Hand every queued change, in order, to the monitored items watching it."""
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                for attribute, data in batch:
                    for handle, callback in list(attribute.datachange_callbacks.items()):
                        try:
                            await callback(handle, data)
                        except Exception:
                            _log.exception(
                                "OPC UA monitored item %s of %s failed", handle, self.device.name
                            )
        finally:
            self._notify_task = None

    # --- faults -----------------------------------------------------------------------------

    def apply_fault(self, fault: FaultSpec, on: bool) -> None:
        """Start (``on``) or end an endpoint fault of this device; others are ignored.

        comm_loss closes every connection and refuses new ones (a session with
        subscriptions survives, as OPC UA lets a client resume it once the fault ends);
        latency holds every reply back by ``delay`` ms; frozen stops :meth:`publish`, so
        clients keep reading the values (and timestamps) of the moment it started, while
        their writes and method calls still reach the device.
        """
        if fault.target != self.device.name or getattr(fault, "protocol", None) not in (
            "opcua",
            "both",
        ):
            return
        if isinstance(fault, CommLossFault):
            _toggle(self._faults.comm_loss, fault, on)
            self._set_comm_loss(bool(self._faults.comm_loss))
        elif isinstance(fault, LatencyFault):
            _toggle(self._faults.latency, fault, on)
            for protocol in self._protocols():
                self._delay_replies(protocol)
        elif isinstance(fault, FrozenFault):
            _toggle(self._faults.frozen, fault, on)

    def _set_comm_loss(self, on: bool) -> None:
        iserver = self._server.iserver
        iserver.max_connections = 0 if on else self._max_connections
        if on:
            for protocol in self._protocols():
                if protocol.transport is not None:
                    protocol.transport.close()

    def _protocols(self) -> list[Any]:
        bserver = self._server.bserver
        return list(bserver.clients) if bserver is not None else []

    def _delay_replies(self, protocol: Any) -> None:
        processor = protocol.processor
        if processor is not None and not isinstance(processor._transport, _DelayedTransport):
            processor._transport = _DelayedTransport(
                processor._transport, lambda: self._faults.delay
            )

    # --- sessions and audit -----------------------------------------------------------------

    def _protocol_of(self, session: _LabSession) -> Any:
        for protocol in self._protocols():
            if protocol.processor is not None and protocol.processor.session is session:
                return protocol
        return None

    def _attach(self, session: _LabSession) -> None:
        """Open the session's audit record (again after a reconnect) and watch its connection."""
        if (
            session.audit_id is not None
            and self.audit.sessions[session.audit_id].disconnected_at is None
        ):
            return
        protocol = self._protocol_of(session)
        policy = protocol.processor._connection.security_policy if protocol is not None else None
        mode, policy_name = describe_policy(policy)
        session.audit_id = self.audit.open(
            self.device.name,
            "opcua",
            _peer(session.name),
            self._now(),
            security_mode=mode,
            security_policy=policy_name,
        )
        if protocol is not None:
            self._delay_replies(protocol)
            self._watch(session, protocol)

    def _watch(self, session: _LabSession, protocol: Any) -> None:
        """Close the audit record when the connection drops (a session may outlive it)."""
        original = protocol.connection_lost

        def connection_lost(exc: BaseException | None) -> None:
            try:
                original(exc)
            finally:
                self._closed(session)

        protocol.connection_lost = connection_lost

    def _closed(self, session: _LabSession) -> None:
        if session.audit_id is not None:
            self.audit.close(session.audit_id, self._now())

    def _check_certificate(self, session: _LabSession, certificate: bytes | None) -> None:
        """Refuse a secure channel whose client certificate is not trusted."""
        record = self.audit.sessions[session.audit_id] if session.audit_id is not None else None
        if not certificate or record is None or record.security_mode in ("None", "unknown"):
            return
        reason = self.trust.check(certificate)
        if reason is not None:
            _log.warning("OPC UA %s: %s", self.device.name, reason)
            self._refuse(session, "CreateSession", _S.BadSecurityChecksFailed, reason)
            self._closed(session)
            raise ServiceError(_S.BadSecurityChecksFailed)

    def _check_token(self, token: Any) -> None:
        anonymous = (
            token is None
            or isinstance(token, ua.AnonymousIdentityToken)
            or (
                isinstance(token, ua.ExtensionObject)
                and token.TypeId == ua.NodeId(ua.ObjectIds.Null)
            )
        )
        if anonymous and not self.spec.anonymous:
            raise ServiceError(_S.BadIdentityTokenInvalid)

    def _refused_activation(self, session: _LabSession, token: Any, code: int) -> None:
        if isinstance(token, ua.UserNameIdentityToken):
            who = f"user {token.UserName!r}"
            why = "unknown user or wrong password"
        else:
            who = "anonymous" if not isinstance(token, ua.X509IdentityToken) else "certificate user"
            why = "anonymous access is off" if who == "anonymous" else "identity not accepted"
        if code == _S.BadIdentityTokenRejected:
            why = "this identity token type is not offered by the server"
        self._refuse(session, "ActivateSession", code, f"{who}: {why}")

    def _refuse(self, session: _LabSession, target: str, code: int, reason: str) -> None:
        if session.audit_id is not None:
            self.audit.record(
                session.audit_id,
                self._now(),
                "refused",
                target,
                ok=False,
                reason=f"{_status_name(code)}: {reason}",
                status=_status_name(code),
            )

    def _activated(self, session: _LabSession) -> None:
        if session.audit_id is not None:
            self.audit.sessions[session.audit_id].user = session.user.name

    def _record_reads(self, session: _LabSession, items: list[Any], results: list[Any]) -> None:
        if session.audit_id is None:
            return
        now = self._now()
        for item, result in zip(items, results, strict=False):
            node = self._by_node.get(item.NodeId)
            if node is not None and item.AttributeId == ua.AttributeIds.Value:
                status = result.StatusCode.name if result.StatusCode is not None else "Good"
                self.audit.record(
                    session.audit_id,
                    now,
                    "read",
                    node.name,
                    node_id=node.node_id.to_string(),
                    status=status,
                )

    def _record_subscriptions(self, session: _LabSession, params: Any, results: list[Any]) -> None:
        if session.audit_id is None:
            return
        now, subscription = self._now(), params.SubscriptionId
        isub = self._server.iserver.subscription_service.subscriptions.get(subscription)
        interval = isub.data.RevisedPublishingInterval if isub is not None else None
        for item, result in zip(params.ItemsToCreate, results, strict=False):
            node = self._by_node.get(item.ItemToMonitor.NodeId)
            if node is None or item.ItemToMonitor.AttributeId != ua.AttributeIds.Value:
                continue
            ok = result.StatusCode.is_good()
            if ok:
                session.monitored[(subscription, result.MonitoredItemId)] = node.name
            self.audit.record(
                session.audit_id,
                now,
                "subscribe",
                node.name,
                ok=ok,
                reason="" if ok else result.StatusCode.name,
                node_id=node.node_id.to_string(),
                subscription=subscription,
                monitored_item=result.MonitoredItemId,
                sampling_interval=item.RequestedParameters.SamplingInterval,
                revised_sampling_interval=result.RevisedSamplingInterval,
                publishing_interval=interval,
                queue_size=result.RevisedQueueSize,
            )

    def _record_unsubscriptions(self, session: _LabSession, keys: list[tuple[int, int]]) -> None:
        now = self._now()
        for key in keys:
            tag = session.monitored.pop(key, None)
            if tag is not None and session.audit_id is not None:
                self.audit.record(
                    session.audit_id,
                    now,
                    "unsubscribe",
                    tag,
                    subscription=key[0],
                    monitored_item=key[1],
                )

    # --- client writes and calls --------------------------------------------------------------

    async def _write(
        self, session: _LabSession, params: Any, write_others: Callable[[Any], Any]
    ) -> list[Any]:
        """Tag values through :meth:`Device.write`; anything else through asyncua (refused)."""
        results: list[Any] = [None] * len(params.NodesToWrite)
        others, positions = ua.WriteParameters(), []
        for index, item in enumerate(params.NodesToWrite):
            node = self._by_node.get(item.NodeId)
            if node is not None and item.AttributeId == ua.AttributeIds.Value:
                results[index] = self._write_tag(session, node, item)
            else:
                others.NodesToWrite.append(item)
                positions.append(index)
        if others.NodesToWrite:
            statuses = await write_others(others)
            for index, item, status in zip(positions, others.NodesToWrite, statuses, strict=True):
                results[index] = status
                self._record_write(session, item.NodeId.to_string(), status.value)
        return results

    def _write_tag(self, session: _LabSession, node: _TagNode, item: Any) -> Any:
        variant = item.Value.Value if item.Value is not None else None
        code, reason = _S.Good, ""
        if item.IndexRange:
            code, reason = _S.BadIndexRangeInvalid, "an IndexRange cannot address part of a scalar"
        elif (
            variant is None
            or variant.VariantType != node.kind.variant
            or variant.is_array
            or isinstance(variant.Value, list)
        ):
            got = "null" if variant is None else variant.VariantType.name
            code = _S.BadTypeMismatch
            reason = f"{node.name} has DataType {node.kind.variant.name}; the value had type {got}"
        else:
            try:
                self.device.write(node.name, variant.Value)
            except TagNotWritable as err:
                code, reason = _S.BadNotWritable, str(err)
            except ValueOutOfRange as err:
                code, reason = _S.BadOutOfRange, str(err)
            except TagError as err:
                code, reason = _S.BadNotWritable, str(err)
        value = variant.Value if variant is not None else None
        self._record_write(
            session, node.name, code, reason=reason, value=value, node_id=node.node_id.to_string()
        )
        if code == _S.Good:
            self._show(node)
        return ua.StatusCode(code)

    def _record_write(
        self,
        session: _LabSession,
        target: str,
        code: int,
        *,
        reason: str = "",
        value: object = None,
        node_id: str | None = None,
    ) -> None:
        if session.audit_id is None:
            return
        ok = ua.StatusCode(code).is_good()
        self.audit.record(
            session.audit_id,
            self._now(),
            "write",
            target,
            ok=ok,
            reason=reason or ("" if ok else _status_name(code)),
            status=_status_name(code),
            value=value,
            node_id=node_id or target,
        )

    def _show(self, node: _TagNode) -> None:
        """Put a tag just written by a client in the address space now (unless frozen)."""
        if self._running and not self._faults.frozen:
            stamp = self.clock.datetime_at(self._now())
            self._set(node, self.device.tags[node.name], self.device.quality[node.name], stamp)
            self._schedule_notify()

    async def _call(
        self, session: _LabSession, requests: list[Any], call_others: Callable[[list[Any]], Any]
    ) -> list[Any]:
        results = []
        for request in requests:
            method = self._methods.get(request.MethodId)
            if method is not None:
                results.append(self._call_method(session, method, request))
                continue
            result = (await call_others([request]))[0]
            if session.audit_id is not None:
                ok = result.StatusCode.is_good()
                self.audit.record(
                    session.audit_id,
                    self._now(),
                    "call",
                    request.MethodId.to_string(),
                    ok=ok,
                    reason="" if ok else result.StatusCode.name,
                )
            results.append(result)
        return results

    def _call_method(self, session: _LabSession, method: _Method, request: Any) -> Any:
        result = ua.CallMethodResult()
        code, reason = _S.Good, ""
        if request.ObjectId != self._device_node:
            code = _S.BadMethodInvalid
            reason = f"{method.name} is a method of {self._device_node.to_string()}"
        elif request.InputArguments:
            code, reason = _S.BadTooManyArguments, f"{method.name} takes no arguments"
        else:
            try:
                self._pulse(method)
            except TagError as err:
                code, reason = _S.BadNotWritable, str(err)
        result.StatusCode = ua.StatusCode(code)
        if session.audit_id is not None:
            self.audit.record(
                session.audit_id,
                self._now(),
                "call",  # a call, not a write: the audit keeps them apart (see audit.py)
                method.name,
                ok=code == _S.Good,
                reason=reason,
                tag=method.tag,
                status=_status_name(code),
                node_id=method.node_id.to_string(),
            )
        return result

    def _pulse(self, method: _Method) -> None:
        """Set the method's command bit; the PLC logic consumes (clears) it at its next scan."""
        self.device.write(method.tag, True)
        self._show(self._by_tag[method.tag])


def _toggle(active: list[Any], fault: Any, on: bool) -> None:
    if on:
        active.append(fault)
    elif fault in active:
        active.remove(fault)
