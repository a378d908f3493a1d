"""OPC UA endpoint, seen only through a real asyncua Client over a real socket.

One server is shared by the tests of this module (starting one takes about a second): the
tests run in order on one lab and each asserts relative to the state it finds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncua.ua
import pytest
import pytest_asyncio
from asyncua.client.client import Client
from asyncua.crypto import cert_gen, security_policies
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import TypeAdapter

from devices.endpoints.audit import SessionAudit
from devices.endpoints.opcua import DI_NAMESPACE, EU_NAMESPACE, OpcUaEndpoint, unit_id
from devices.plc.packml import PackMLState
from simlab.lab import Lab
from simlab.scenario import parse_scenario
from simlab.scenario.faults import FaultSpec

pytestmark = pytest.mark.asyncio(loop_scope="module")
ua: Any = asyncua.ua  # asyncua's NewType annotations (Int16, Double, ...) are noise here

FAULT = TypeAdapter[FaultSpec](FaultSpec)

SCENARIO = """
format_version: 1
name: opcua_test
seed: 3
clock: {step: 0.1}
plant:
  units:
    - {name: pump, type: pump, max_flow: 30.0, shutoff_head: 8.0, spin_time: 0.5, to: tank}
    - {name: tank, type: tank, area: 0.5, height: 2.0, initial_level: 0.4}
devices:
  - name: plc1
    type: plc
    description: Tank and line controller
    scan_time: 0.1
    identity: {manufacturer: ACME, model: SIM-PLC 1200, serial_number: WT-0001, revision: "1.2",
               product_code: SP1200, vendor_url: "https://acme.example"}
    opcua:
      namespace: urn:simlab:test
      methods: {Start: cmd_start, Stop: cmd_stop, Reset: cmd_reset}
    tags:
      - {name: level, signal: tank.level, unit: m, description: Tank level (LT-101),
         sensor: {range: [0, 2], noise: 0.001}}
      - {name: level_narrow, signal: tank.level, unit: m, description: Narrow-range level,
         sensor: {range: [0, 0.3]}, opcua: {folder: "Level/Sensors", browse_name: LT102}}
      - {name: inflow, signal: pump.flow, description: Supply flow (FT-101),
         sensor: {range: [0, 40]}}
      - {name: level_sp, unit: m, initial: 1.2, writable: true, range: [0.2, 1.8],
         description: Level setpoint}
      - {name: pump_run, type: bool, drives: pump.cmd_run, initial: true, writable: true,
         description: Pump run command}
      - {name: pump_speed, drives: pump.cmd_speed, unit: "%", initial: 40, range: [0, 100],
         description: Pump speed command}
      - {name: state, type: int, unit: state, description: PackML state}
      - {name: cmd_start, type: bool, writable: true, description: Start command}
      - {name: cmd_stop, type: bool, writable: true, description: Stop command}
      - {name: cmd_reset, type: bool, writable: true, description: Reset command}
      - {name: running, type: bool, description: Line in Execute}
      - {name: batch, type: string, initial: B-001, writable: true, description: Batch id}
    logic:
      - {type: packml, name: line, state: state, start: cmd_start, stop: cmd_stop,
         reset: cmd_reset, execute_output: running, initial_state: idle,
         starting_time: 0.3, stopping_time: 0.3, resetting_time: 0.3}
"""


@dataclass
class Rig:
    """A lab with one PLC served over OPC UA."""

    lab: Lab
    endpoint: OpcUaEndpoint
    audit: SessionAudit
    state_dir: Path
    ns: int = 0
    published: list[float] = field(default_factory=list)

    @property
    def plc(self) -> Any:
        return self.lab.devices["plc1"]

    def node_id(self, tag: str) -> str:
        return f"ns={self.ns};s=plc1.{tag}"

    async def advance(self, seconds: float, pause: float = 0.0) -> None:
        """Step the lab as its runtime will: publish after every scan of the device."""
        for _ in range(round(seconds / self.plc.scan_time)):
            await self.lab.run_for(self.plc.scan_time)
            self.endpoint.publish()
            self.published.append(self.lab.time)
            if pause:
                await asyncio.sleep(pause)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    lab = Lab(parse_scenario(SCENARIO))
    audit = SessionAudit()
    state_dir = tmp_path_factory.mktemp("opcua")
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
        rig = Rig(lab, endpoint, audit, state_dir, endpoint.namespace_index)
        yield rig


@pytest_asyncio.fixture(loop_scope="module")
async def client(rig: Rig) -> AsyncIterator[Client]:
    async with Client(rig.endpoint.url, timeout=5) as connected:
        yield connected


class Collector:
    """Subscription handler keeping every notification."""

    def __init__(self) -> None:
        self.values: list[tuple[str, Any, Any]] = []

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.values.append((node.nodeid.Identifier, val, data.monitored_item.Value))


# --- address space -----------------------------------------------------------------------


async def test_url_and_namespace(rig: Rig, client: Client) -> None:
    assert rig.endpoint.url.startswith("opc.tcp://127.0.0.1:")
    assert rig.endpoint.port != 0
    assert await client.get_namespace_index("urn:simlab:test") == rig.ns
    assert (await client.get_namespace_array())[1] == "urn:simlab:plc1"  # application URI


async def test_browse_tree_folders_by_binding(rig: Rig, client: Client) -> None:
    ns = rig.ns
    device = await client.nodes.objects.get_child(f"{ns}:plc1")
    assert device.nodeid.to_string() == f"ns={ns};s=plc1"
    names = {(await c.read_browse_name()).Name for c in await device.get_children()}
    assert {"Inputs", "Outputs", "Parameters", "Status", "Level"} <= names
    layout = {
        "Inputs": {"level", "inflow"},
        "Outputs": {"pump_run", "pump_speed"},
        "Parameters": {"level_sp", "cmd_start", "cmd_stop", "cmd_reset", "batch"},
        "Status": {"state", "running"},
    }
    for folder, tags in layout.items():
        node = await device.get_child(f"{ns}:{folder}")
        assert await node.read_type_definition() == ua.NodeId(ua.ObjectIds.FolderType)
        children = {(await c.read_browse_name()).Name for c in await node.get_children()}
        assert children == tags
    custom = await device.get_child([f"{ns}:Level", f"{ns}:Sensors", f"{ns}:LT102"])
    assert custom.nodeid.to_string() == rig.node_id("level_narrow")


async def test_data_types_descriptions_and_access(rig: Rig, client: Client) -> None:
    expected = {
        "level": (ua.ObjectIds.Double, False),
        "level_sp": (ua.ObjectIds.Double, True),
        "state": (ua.ObjectIds.Int32, False),
        "pump_run": (ua.ObjectIds.Boolean, True),
        "batch": (ua.ObjectIds.String, True),
    }
    for tag, (data_type, writable) in expected.items():
        node = client.get_node(rig.node_id(tag))
        assert await node.read_data_type() == ua.NodeId(data_type), tag
        description = (await node.read_description()).Text
        assert description == rig.plc.specs[tag].description
        access = await node.get_access_level()
        assert ua.AccessLevel.CurrentRead in access
        assert (ua.AccessLevel.CurrentWrite in access) is writable, tag
        assert await node.read_attribute(ua.AttributeIds.MinimumSamplingInterval) is not None
    level = client.get_node(rig.node_id("level"))
    assert await level.read_type_definition() == ua.NodeId(ua.ObjectIds.AnalogItemType)


async def test_engineering_units_and_ranges(rig: Rig, client: Client) -> None:
    async def eu(tag: str) -> Any:
        return await (
            await client.get_node(rig.node_id(tag)).get_child("0:EngineeringUnits")
        ).read_value()

    async def eu_range(tag: str) -> Any:
        return await (await client.get_node(rig.node_id(tag)).get_child("0:EURange")).read_value()

    metre = await eu("level")
    assert metre.NamespaceUri == EU_NAMESPACE
    assert metre.UnitId == unit_id("MTR") == 5067858
    assert (metre.DisplayName.Text, metre.Description.Text) == ("m", "metre")
    flow = await eu("inflow")
    assert flow.UnitId == unit_id("MQH")
    assert flow.DisplayName.Text == "m³/h"
    assert (await eu("pump_speed")).UnitId == unit_id("P1")
    assert (await eu_range("level")).Low == 0.0
    assert (await eu_range("level")).High == 2.0  # from the sensor
    sp_range = await eu_range("level_sp")
    assert (sp_range.Low, sp_range.High) == (0.2, 1.8)  # from the tag's range
    with pytest.raises(ua.UaError):
        await client.get_node(rig.node_id("running")).get_child("0:EngineeringUnits")


async def test_device_identification_properties(client: Client, rig: Rig) -> None:
    di = await client.get_namespace_index(DI_NAMESPACE)
    device = client.get_node(f"ns={rig.ns};s=plc1")
    values = {
        name: await (await device.get_child(f"{di}:{name}")).read_value()
        for name in (
            "Manufacturer",
            "Model",
            "SerialNumber",
            "SoftwareRevision",
            "ProductCode",
            "ManufacturerUri",
            "RevisionCounter",
        )
    }
    assert values["Manufacturer"].Text == "ACME"
    assert values["Model"].Text == "SIM-PLC 1200"
    assert values["SerialNumber"] == "WT-0001"
    assert values["SoftwareRevision"] == "1.2"
    assert values["ProductCode"] == "SP1200"
    assert values["ManufacturerUri"] == "https://acme.example"
    assert values["RevisionCounter"] == 0
    build = await client.get_node(ua.ObjectIds.Server_ServerStatus_BuildInfo).read_value()
    assert (build.ManufacturerName, build.ProductName) == ("ACME", "SIM-PLC 1200")


# --- values --------------------------------------------------------------------------------


async def test_read_equals_device_tag_with_sim_timestamp(rig: Rig, client: Client) -> None:
    await rig.advance(2.0)
    data: Any = await client.get_node(rig.node_id("level")).read_data_value()
    assert data.Value.Value == rig.plc.tags["level"]
    assert data.StatusCode.is_good()
    assert data.SourceTimestamp == rig.lab.clock.datetime_at(rig.lab.time)
    assert data.ServerTimestamp == data.SourceTimestamp
    assert await client.get_node(rig.node_id("state")).read_value() == int(rig.plc.tags["state"])
    assert await client.get_node(rig.node_id("batch")).read_value() == "B-001"
    now = await client.get_node(ua.ObjectIds.Server_ServerStatus_CurrentTime).read_value()
    assert abs((now - rig.lab.clock.datetime_at(rig.lab.time)).total_seconds()) <= 1.0


async def test_uncertain_when_process_leaves_sensor_range(rig: Rig, client: Client) -> None:
    data: Any = await client.get_node(rig.node_id("level_narrow")).read_data_value(
        raise_on_bad_status=False
    )
    assert data.StatusCode.value == ua.StatusCodes.UncertainEngineeringUnitsExceeded
    assert data.Value.Value == pytest.approx(0.3)


async def test_subscription_at_100ms_receives_changes(rig: Rig, client: Client) -> None:
    handler = Collector()
    subscription = await client.create_subscription(100, handler)
    await subscription.subscribe_data_change(client.get_node(rig.node_id("level")))
    await asyncio.sleep(0.2)
    first = len(handler.values)
    await rig.advance(2.0, pause=0.02)
    await asyncio.sleep(0.3)
    await subscription.delete()
    values = [value for _, value, _ in handler.values[first:]]
    assert len(values) >= 15  # 20 scans, each reading noisy: nearly every one is a change
    assert values[-1] == rig.plc.tags["level"]
    stamps = [data.SourceTimestamp for _, _, data in handler.values]
    assert stamps == sorted(stamps)


# --- writes and methods ------------------------------------------------------------------------


async def test_write_setpoint_accepted(rig: Rig, client: Client) -> None:
    node = client.get_node(rig.node_id("level_sp"))
    await node.write_value(1.5)
    assert rig.plc.tags["level_sp"] == 1.5
    assert await node.read_value() == 1.5
    await client.get_node(rig.node_id("batch")).write_value("B-002")
    assert rig.plc.tags["batch"] == "B-002"


async def test_write_refused_out_of_range_type_and_read_only(rig: Rig, client: Client) -> None:
    setpoint = client.get_node(rig.node_id("level_sp"))
    before = rig.plc.tags["level_sp"]
    with pytest.raises(ua.uaerrors.BadOutOfRange):
        await setpoint.write_value(5.0)
    with pytest.raises(ua.uaerrors.BadTypeMismatch):
        await setpoint.write_value(1)  # an Int64, not a Double
    with pytest.raises(ua.uaerrors.BadNotWritable):
        await client.get_node(rig.node_id("state")).write_value(ua.Variant(4, ua.VariantType.Int32))
    with pytest.raises(ua.uaerrors.BadUserAccessDenied):
        await setpoint.write_attribute(
            ua.AttributeIds.DisplayName, ua.DataValue(ua.Variant(ua.LocalizedText("x")))
        )
    assert rig.plc.tags["level_sp"] == before
    assert await setpoint.read_value() == before


async def test_methods_pulse_packml_commands(rig: Rig, client: Client) -> None:
    device = client.get_node(f"ns={rig.ns};s=plc1")
    state = client.get_node(rig.node_id("state"))
    await rig.advance(0.1)  # let the PLC consume commands other tests may have left
    assert await state.read_value() == PackMLState.IDLE
    await device.call_method(f"{rig.ns}:Start")
    assert rig.plc.tags["cmd_start"] is True  # the pulse, until the next scan consumes it
    await rig.advance(0.1)
    assert rig.plc.tags["cmd_start"] is False
    assert await state.read_value() == PackMLState.STARTING
    await rig.advance(0.5)
    assert await state.read_value() == PackMLState.EXECUTE
    assert await client.get_node(rig.node_id("running")).read_value() is True
    await device.call_method(f"{rig.ns}:Stop")
    await rig.advance(0.6)
    assert await state.read_value() == PackMLState.STOPPED
    with pytest.raises(ua.uaerrors.BadTooManyArguments):
        await device.call_method(f"{rig.ns}:Reset", ua.Variant(1, ua.VariantType.Int32))
    await device.call_method(f"{rig.ns}:Reset")
    await rig.advance(0.6)
    assert await state.read_value() == PackMLState.IDLE


# --- quality -----------------------------------------------------------------------------------


async def test_sensor_faults_give_bad_status(rig: Rig, client: Client) -> None:
    node = client.get_node(rig.node_id("level"))
    fault = rig.lab.inject_fault({"kind": "offline", "target": "plc1.level"})
    await rig.advance(0.1)
    data: Any = await node.read_data_value(raise_on_bad_status=False)
    assert data.StatusCode.value == ua.StatusCodes.BadCommunicationError
    assert data.Value.Value is None
    with pytest.raises(ua.uaerrors.BadCommunicationError):
        await node.read_value()
    rig.lab.clear_fault(fault)
    fault = rig.lab.inject_fault({"kind": "nan", "target": "plc1.level"})
    await rig.advance(0.1)
    data = await node.read_data_value(raise_on_bad_status=False)
    assert data.StatusCode.value == ua.StatusCodes.BadSensorFailure
    rig.lab.clear_fault(fault)
    await rig.advance(0.1)
    data = await node.read_data_value()
    assert data.StatusCode.is_good()
    assert data.Value.Value == rig.plc.tags["level"]


# --- security with auto_trust ----------------------------------------------------------------


async def test_sign_and_encrypt_with_any_client_certificate(rig: Rig, tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.der"
    uri = "urn:simlab:test:any-client"
    await cert_gen.setup_self_signed_certificate(
        key, cert, uri, "localhost", [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "any"}
    )
    client = Client(rig.endpoint.url, timeout=5)
    client.application_uri = uri
    await client.set_security(
        security_policies.SecurityPolicyBasic256Sha256,
        str(cert),
        str(key),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    async with client:
        assert await client.get_node(rig.node_id("level")).read_value() == rig.plc.tags["level"]
    sessions = [s for s in rig.audit.sessions.values() if s.security_mode == "SignAndEncrypt"]
    assert sessions
    assert sessions[-1].security_policy == "Basic256Sha256"
    assert (rig.state_dir / "pki" / "own" / "cert.der").is_file()


# --- audit ----------------------------------------------------------------------------------


async def test_audit_sessions_reads_subscriptions_writes_calls(rig: Rig) -> None:
    audit = rig.audit
    async with Client(rig.endpoint.url, timeout=5) as client:
        node = client.get_node(rig.node_id("level_sp"))
        await node.read_value()
        with pytest.raises(ua.uaerrors.BadOutOfRange):
            await node.write_value(9.0)
        subscription = await client.create_subscription(250, Collector())
        await subscription.subscribe_data_change(node, sampling_interval=ua.Double(100))
        await client.get_node(f"ns={rig.ns};s=plc1").call_method(f"{rig.ns}:Reset")
        await subscription.delete()
        connected_at = rig.lab.time
    await asyncio.sleep(0.1)
    session = list(audit.sessions.values())[-1]
    assert session.protocol == "opcua"
    assert session.device == "plc1"
    assert session.peer.startswith("127.0.0.1:")
    assert (session.security_mode, session.security_policy, session.user) == ("None", "None", None)
    assert session.connected_at == connected_at
    assert session.disconnected_at is not None
    events = [e for e in audit.events if e.session == session.id]
    kinds = [e.kind for e in events]
    assert kinds == ["read", "write", "subscribe", "call", "unsubscribe"]
    read, write, subscribe, call, _ = events
    assert read.target == "level_sp"
    assert not write.ok
    assert "outside its range" in write.reason
    assert write.detail["status"] == "BadOutOfRange"
    assert subscribe.detail["sampling_interval"] == 100
    assert subscribe.detail["publishing_interval"] == 250
    assert (call.target, call.detail["tag"], call.ok) == ("Reset", "cmd_reset", True)
    assert call.detail["node_id"] == f"ns={rig.ns};s=plc1.Reset"
    assert audit.call_at("plc1", "cmd_reset", call.time) is call  # its pulse is no client write
    assert not [e for e in audit.events if e.kind == "write" and e.target == "cmd_reset"]


async def test_ten_concurrent_subscriptions(rig: Rig) -> None:
    clients = [Client(rig.endpoint.url, timeout=5) for _ in range(10)]
    await asyncio.gather(*(c.connect() for c in clients))
    try:
        handlers = [Collector() for _ in clients]
        for c, handler in zip(clients, handlers, strict=True):
            subscription = await c.create_subscription(100, handler)
            await subscription.subscribe_data_change(c.get_node(rig.node_id("level")))
        await asyncio.sleep(0.2)
        marks = [len(h.values) for h in handlers]
        await rig.advance(1.0, pause=0.02)
        await asyncio.sleep(0.3)
        final = rig.plc.tags["level"]
        for handler, mark in zip(handlers, marks, strict=True):
            assert len(handler.values) - mark >= 5
            assert handler.values[-1][1] == final
    finally:
        await asyncio.gather(*(c.disconnect() for c in clients))


# --- endpoint faults ---------------------------------------------------------------------------


def _fault(kind: str, **extra: Any) -> FaultSpec:
    """An endpoint fault on plc1, validated like a scenario's ``faults:`` entry."""
    return FAULT.validate_python({"kind": kind, "target": "plc1", **extra})


async def test_frozen_fault_keeps_serving_old_values(rig: Rig, client: Client) -> None:
    node = client.get_node(rig.node_id("level"))
    frozen = _fault("frozen", protocol="opcua")
    rig.endpoint.apply_fault(frozen, True)
    before: Any = await node.read_data_value()
    await rig.advance(1.0)
    after: Any = await node.read_data_value()
    assert (after.Value.Value, after.SourceTimestamp) == (
        before.Value.Value,
        before.SourceTimestamp,
    )
    assert rig.plc.tags["level"] != before.Value.Value
    rig.endpoint.apply_fault(frozen, False)
    await rig.advance(0.1)
    assert await node.read_value() == rig.plc.tags["level"]


async def test_latency_fault_delays_replies(rig: Rig, client: Client) -> None:
    node = client.get_node(rig.node_id("level"))
    latency = _fault("latency", protocol="both", delay=300)
    rig.endpoint.apply_fault(latency, True)
    try:
        start = time.perf_counter()
        await node.read_value()
        assert time.perf_counter() - start >= 0.28
    finally:
        rig.endpoint.apply_fault(latency, False)
    start = time.perf_counter()
    await node.read_value()
    assert time.perf_counter() - start < 0.2


async def test_modbus_only_faults_are_ignored(rig: Rig, client: Client) -> None:
    rig.endpoint.apply_fault(_fault("comm_loss", protocol="modbus"), True)
    rig.endpoint.apply_fault(_fault("exception"), True)
    assert await client.get_node(rig.node_id("batch")).read_value() == rig.plc.tags["batch"]


async def test_comm_loss_drops_sessions_and_refuses_connections(rig: Rig) -> None:
    connected = Client(rig.endpoint.url, timeout=2)
    await connected.connect()
    comm_loss = _fault("comm_loss", protocol="opcua")
    rig.endpoint.apply_fault(comm_loss, True)
    try:
        await asyncio.sleep(0.1)
        with pytest.raises((ConnectionError, asyncio.TimeoutError, ua.UaError)):
            await connected.get_node(rig.node_id("level")).read_value()
        with pytest.raises((ConnectionError, OSError, asyncio.TimeoutError, ua.UaError)):
            async with Client(rig.endpoint.url, timeout=1):
                pass
    finally:
        rig.endpoint.apply_fault(comm_loss, False)
        await _quietly(connected.disconnect)
    async with Client(rig.endpoint.url, timeout=5) as again:
        assert await again.get_node(rig.node_id("batch")).read_value() == rig.plc.tags["batch"]


async def _quietly(action: Callable[[], Any]) -> None:
    with contextlib.suppress(Exception):  # the connection is already gone
        await action()
