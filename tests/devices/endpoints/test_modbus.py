"""Modbus TCP endpoint, through a real pymodbus client on a real socket.

The water-tank scenario is given a Modbus map here (the bundled scenarios have none yet).
The lab's clock is virtual: it only moves through ``lab.run_for``, so values read over
the wire are compared with the device's tags at the same instant.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.diag_message import ReturnQueryDataRequest
from pymodbus.pdu.file_message import FileRecord

from devices.endpoints.audit import SessionAudit
from devices.endpoints.modbus import ModbusEndpoint
from simlab.errors import FaultError, LabError
from simlab.lab import Lab
from simlab.scenario import parse_scenario, resolve_scenario
from simlab.scenario.faults import FaultSpec

FAULT = TypeAdapter[FaultSpec](FaultSpec)
HOLDING, INPUT, COIL, DISCRETE = "holding_register", "input_register", "coil", "discrete_input"
BIG, LITTLE = "big", "little"


def modbus_map(level_order: str = "ABCD") -> dict[str, dict[str, Any]]:
    """The test map of plc1: every type, every table, one read-only register, a gap at 11."""
    return {
        "level_sp": {"table": HOLDING, "address": 0, "type": "float32"},
        "valve_cmd": {"table": HOLDING, "address": 2, "type": "uint16", "gain": 10},
        "pump_speed": {"table": HOLDING, "address": 4, "type": "float32"},  # not writable
        "label": {"table": HOLDING, "address": 10, "type": "string", "length": 12},
        "level": {"table": INPUT, "address": 0, "type": "float32", "word_order": level_order},
        "inflow": {"table": INPUT, "address": 2, "type": "int16", "gain": 100},
        "temperature": {"table": INPUT, "address": 3, "type": "int32", "gain": 1000, "offset": 50},
        "outflow": {"table": INPUT, "address": 5, "type": "uint32", "gain": 1000},
        "heater_cmd": {"table": INPUT, "address": 7, "type": "float64", "word_order": "CDAB"},
        "auto": {"table": COIL, "address": 0, "type": "bool"},
        "pump_run": {"table": COIL, "address": 1, "type": "bool"},
        "hh_reset": {"table": COIL, "address": 2, "type": "bool"},
        "pump_running": {"table": DISCRETE, "address": 0, "type": "bool"},
        "level_ll": {"table": DISCRETE, "address": 1, "type": "bool"},
        "level_hh": {"table": DISCRETE, "address": 2, "type": "bool"},
    }


def water_tank_lab(
    level_order: str = "ABCD", unit_ids: list[int] | None = None, *, modbus: bool = True
) -> Lab:
    """The bundled water-tank scenario with this file's Modbus server and map on plc1.

    Whatever map the bundled file may carry is replaced, so these tests do not depend on it.
    """
    data = yaml.safe_load(resolve_scenario("water-tank").read_text())
    plc = next(d for d in data["devices"] if d["name"] == "plc1")
    plc.pop("modbus", None)
    data.pop("gateway", None)  # it polls plc1 over Modbus, which this file redefines
    if modbus:
        plc["modbus"] = {"port": 5020, "unit_ids": unit_ids or [1]}
    plc["identity"]["vendor_url"] = "https://example.invalid/plc"
    plc["tags"].append({"name": "label", "type": "string", "initial": "LT-101", "writable": True})
    mapping = modbus_map(level_order) if modbus else {}
    for tag in plc["tags"]:
        tag.pop("modbus", None)
        if tag["name"] in mapping:
            tag["modbus"] = mapping[tag["name"]]
    return Lab(parse_scenario(yaml.safe_dump(data), "water-tank+modbus"))


class Rig:
    """A lab, its plc1 endpoint on a free port, and the audit the endpoint writes."""

    def __init__(self, lab: Lab, endpoint: ModbusEndpoint, audit: SessionAudit) -> None:
        self.lab = lab
        self.endpoint = endpoint
        self.audit = audit
        self.device = lab.devices["plc1"]
        self.port = endpoint.port

    def client(self, timeout: float = 2.0) -> AsyncModbusTcpClient:
        return AsyncModbusTcpClient(
            "127.0.0.1", port=self.port, timeout=timeout, retries=0, reconnect_delay=0.05
        )

    def fault(self, **fields: Any) -> FaultSpec:
        return FAULT.validate_python({"target": "plc1", **fields})


async def start(lab: Lab, port: int) -> tuple[ModbusEndpoint, SessionAudit]:
    audit = SessionAudit()
    endpoint = ModbusEndpoint(
        lab.devices["plc1"], host="127.0.0.1", port=port, audit=audit, now=lambda: lab.time
    )
    await endpoint.__aenter__()
    return endpoint, audit


@pytest.fixture
async def rig(free_port: Callable[[], int]) -> AsyncIterator[Rig]:
    lab = water_tank_lab()
    endpoint, audit = await start(lab, free_port())
    try:
        yield Rig(lab, endpoint, audit)
    finally:
        await endpoint.__aexit__(None, None, None)


@pytest.fixture
async def client(rig: Rig) -> AsyncIterator[AsyncModbusTcpClient]:
    async with rig.client() as c:
        assert c.connected
        yield c


def decode_float32(registers: list[int], order: str) -> float:
    """Independent decoder (not simlab's) of a float32 in each word order."""
    r0, r1 = registers
    packed = {
        "ABCD": struct.pack(">2H", r0, r1),
        "CDAB": struct.pack(">2H", r1, r0),
        "BADC": struct.pack("<2H", r0, r1),
        "DCBA": struct.pack("<2H", r1, r0),
    }[order]
    return float(struct.unpack(">f", packed)[0])


async def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait until ``condition()`` holds (polled every 10 ms), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def exception_code(response: ModbusPDU) -> int:
    assert response.isError(), f"expected an exception response, got {response}"
    return int(response.exception_code)


# --- reads ------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["ABCD", "CDAB", "BADC", "DCBA"])
async def test_float32_level_in_each_word_order(free_port: Callable[[], int], order: str) -> None:
    lab = water_tank_lab(level_order=order)
    await lab.run_for(5.0)
    endpoint, _ = await start(lab, free_port())
    try:
        async with AsyncModbusTcpClient("127.0.0.1", port=endpoint.port, retries=0) as client:
            response = await client.read_input_registers(0, count=2, device_id=1)
        assert not response.isError()
        level = lab.devices["plc1"].tags["level"]
        assert isinstance(level, float)
        assert decode_float32(response.registers, order) == pytest.approx(level, abs=1e-6)
        if order in ("ABCD", "CDAB"):
            word_order = BIG if order == "ABCD" else LITTLE
            value = client.convert_from_registers(
                response.registers, client.DATATYPE.FLOAT32, word_order=word_order
            )
            assert value == pytest.approx(level, abs=1e-6)
    finally:
        await endpoint.__aexit__(None, None, None)


async def test_scaled_and_wide_types(rig: Rig, client: AsyncModbusTcpClient) -> None:
    await rig.lab.run_for(30.0)
    tags = rig.device.tags
    response = await client.read_input_registers(2, count=9, device_id=1)
    assert not response.isError()
    regs = response.registers
    dt = client.DATATYPE
    inflow = client.convert_from_registers(regs[0:1], dt.INT16) / 100
    temperature = client.convert_from_registers(regs[1:3], dt.INT32) / 1000 + 50
    outflow = client.convert_from_registers(regs[3:5], dt.UINT32) / 1000
    heater = client.convert_from_registers(regs[5:9], dt.FLOAT64, word_order=LITTLE)
    assert inflow == pytest.approx(tags["inflow"], abs=0.005)
    assert float(tags["inflow"]) > 1.0, "the pump should be filling the tank by now"
    assert temperature == pytest.approx(tags["temperature"], abs=0.0005)
    assert temperature < 50, "offset 50 makes the raw int32 negative: the sign must survive"
    assert outflow == pytest.approx(tags["outflow"], abs=0.0005)
    assert heater == tags["heater_cmd"]


async def test_string_reads_and_writes_whole(rig: Rig, client: AsyncModbusTcpClient) -> None:
    response = await client.read_holding_registers(10, count=6, device_id=1)
    text = client.convert_from_registers(response.registers, client.DATATYPE.STRING)
    assert text.rstrip("\x00") == "LT-101"
    registers = client.convert_to_registers("LT-102 TANK", client.DATATYPE.STRING)
    registers += [0] * (6 - len(registers))
    assert not (await client.write_registers(10, registers, device_id=1)).isError()
    assert rig.device.tags["label"] == "LT-102 TANK"


async def test_coils_and_discrete_inputs(rig: Rig, client: AsyncModbusTcpClient) -> None:
    await rig.lab.run_for(5.0)
    tags = rig.device.tags
    coils = await client.read_coils(0, count=3, device_id=1)
    inputs = await client.read_discrete_inputs(0, count=3, device_id=1)
    assert coils.bits[:3] == [tags["auto"], tags["pump_run"], tags["hh_reset"]]
    assert coils.bits[:3] == [True, True, False]
    assert inputs.bits[:3] == [tags["pump_running"], tags["level_ll"], tags["level_hh"]]


async def test_reads_follow_the_tags_on_demand(rig: Rig, client: AsyncModbusTcpClient) -> None:
    seen = []
    for _ in range(3):
        await rig.lab.run_for(10.0)
        response = await client.read_input_registers(0, count=2, device_id=1)
        value = client.convert_from_registers(response.registers, client.DATATYPE.FLOAT32)
        assert value == pytest.approx(rig.device.tags["level"], abs=1e-6)
        seen.append(value)
    assert len(set(seen)) == 3, "each read must reflect the level of its own instant"


# --- writes -----------------------------------------------------------------------------


async def test_fc16_setpoint_reaches_device_and_plant(
    rig: Rig, client: AsyncModbusTcpClient
) -> None:
    registers = client.convert_to_registers(1.5, client.DATATYPE.FLOAT32)
    response = await client.write_registers(0, registers, device_id=1)
    assert not response.isError()
    assert rig.device.tags["level_sp"] == 1.5
    plant = rig.lab.plant
    before = float(plant.values[plant.index("tank.level")])
    await rig.lab.run_for(240.0)
    after = float(plant.values[plant.index("tank.level")])
    assert before < 0.5 and after == pytest.approx(1.5, abs=0.1)
    writes = rig.audit.query(kind="write")
    assert [(w.target, w.ok, w.detail["value"]) for w in writes] == [("level_sp", True, 1.5)]


async def test_fc6_scaled_register_and_fc5_fc15_coils(
    rig: Rig, client: AsyncModbusTcpClient
) -> None:
    assert not (await client.write_register(2, 455, device_id=1)).isError()
    assert rig.device.tags["valve_cmd"] == pytest.approx(45.5)
    assert (await client.read_holding_registers(2, count=1, device_id=1)).registers == [455]
    assert not (await client.write_coil(0, False, device_id=1)).isError()
    assert rig.device.tags["auto"] is False
    assert not (await client.write_coils(0, [True, False], device_id=1)).isError()
    assert (rig.device.tags["auto"], rig.device.tags["pump_run"]) == (True, False)


async def test_out_of_range_write_is_refused_with_03_and_audited(
    rig: Rig, client: AsyncModbusTcpClient
) -> None:
    registers = client.convert_to_registers(5.0, client.DATATYPE.FLOAT32)
    response = await client.write_registers(0, registers, device_id=1)
    assert exception_code(response) == 3
    assert rig.device.tags["level_sp"] == 1.2
    [write] = rig.audit.query(kind="write")
    assert (write.target, write.ok) == ("level_sp", False)
    assert "outside its range" in write.reason
    [request] = rig.audit.query(kind="request")
    assert request.target == "fc16 holding_register 0..1"
    assert (request.ok, request.detail["exception"]) == (False, 3)


async def test_multi_tag_write_is_all_or_nothing(rig: Rig, client: AsyncModbusTcpClient) -> None:
    registers = [*client.convert_to_registers(1.0, client.DATATYPE.FLOAT32), 5000]  # 500 %
    assert exception_code(await client.write_registers(0, registers, device_id=1)) == 3
    assert rig.device.tags["level_sp"] == 1.2, "the valid part must be rolled back"
    assert rig.device.tags["valve_cmd"] == 50
    registers[2] = 300
    assert not (await client.write_registers(0, registers, device_id=1)).isError()
    assert (rig.device.tags["level_sp"], rig.device.tags["valve_cmd"]) == (1.0, 30.0)


async def test_read_only_address_answers_02(rig: Rig, client: AsyncModbusTcpClient) -> None:
    registers = client.convert_to_registers(10.0, client.DATATYPE.FLOAT32)
    assert exception_code(await client.write_registers(4, registers, device_id=1)) == 2
    assert exception_code(await client.write_coil(5, True, device_id=1)) == 2  # unmapped
    [write, unmapped] = rig.audit.query(kind="write")
    assert (write.target, write.ok) == ("pump_speed", False)
    assert write.reason == "pump_speed is read-only"
    assert (unmapped.target, unmapped.ok) == ("coil 5..5", False)


async def test_partial_write_of_a_float_answers_03(rig: Rig, client: AsyncModbusTcpClient) -> None:
    assert exception_code(await client.write_register(1, 0x4000, device_id=1)) == 3
    assert exception_code(await client.write_registers(1, [1, 2], device_id=1)) == 3
    assert rig.device.tags["level_sp"] == 1.2
    assert "write all of them in one request" in rig.audit.query(kind="write")[0].reason


# --- exceptions -------------------------------------------------------------------------


async def test_unmapped_addresses_answer_02(client: AsyncModbusTcpClient) -> None:
    assert exception_code(await client.read_holding_registers(100, count=1, device_id=1)) == 2
    assert exception_code(await client.read_input_registers(9, count=3, device_id=1)) == 2
    assert exception_code(await client.read_coils(3, count=1, device_id=1)) == 2
    assert exception_code(await client.read_discrete_inputs(0, count=8, device_id=1)) == 2
    assert exception_code(await client.read_holding_registers(65535, count=2, device_id=1)) == 2
    assert not (await client.read_input_registers(9, count=2, device_id=1)).isError()


async def test_unsupported_functions_answer_01(client: AsyncModbusTcpClient) -> None:
    diagnostics = await client.execute(False, ReturnQueryDataRequest(b"\x12\x34", dev_id=1))
    assert exception_code(diagnostics) == 1
    record = FileRecord(file_number=1, record_number=0, record_length=2)
    assert exception_code(await client.read_file_record([record], device_id=1)) == 1
    assert exception_code(await client.report_device_id(device_id=1)) == 1
    assert exception_code(await client.mask_write_register(address=0, device_id=1)) == 1
    assert exception_code(await client.read_exception_status(device_id=1)) == 1


async def test_bad_quality_reads_answer_04(rig: Rig, client: AsyncModbusTcpClient) -> None:
    rig.lab.inject_fault({"kind": "offline", "target": "plc1.level"})
    await rig.lab.run_for(0.5)
    assert exception_code(await client.read_input_registers(0, count=2, device_id=1)) == 4
    assert exception_code(await client.read_input_registers(1, count=2, device_id=1)) == 4
    assert not (await client.read_input_registers(2, count=1, device_id=1)).isError()
    assert "BAD quality" in rig.audit.query(kind="request", ok=False)[0].reason


@pytest.mark.parametrize("code", [4, 6])
async def test_exception_fault(rig: Rig, client: AsyncModbusTcpClient, code: int) -> None:
    fault = rig.fault(kind="exception", code=code)
    rig.endpoint.apply_fault(fault, True)
    assert exception_code(await client.read_holding_registers(0, count=2, device_id=1)) == code
    assert exception_code(await client.write_coil(0, False, device_id=1)) == code
    assert rig.device.tags["auto"] is True
    rig.endpoint.apply_fault(fault, False)
    assert not (await client.read_holding_registers(0, count=2, device_id=1)).isError()


# --- endpoint faults --------------------------------------------------------------------


async def test_comm_loss_drops_connections_and_goes_silent(rig: Rig) -> None:
    fault = rig.fault(kind="comm_loss")
    async with rig.client(timeout=0.3) as client:
        assert not (await client.read_coils(0, count=1, device_id=1)).isError()
        rig.endpoint.apply_fault(fault, True)
        await eventually(lambda: not client.connected)  # the server aborted the socket
        first = rig.audit.sessions[min(rig.audit.sessions)]
        assert first.disconnected_at is not None
        await eventually(lambda: client.connected)  # pymodbus reconnects: the port still accepts
        with pytest.raises(ModbusIOException):  # ...but nothing answers
            await client.read_coils(0, count=1, device_id=1)
        rig.endpoint.apply_fault(fault, False)
        assert not (await client.read_coils(0, count=1, device_id=1)).isError()
    unanswered = [e for e in rig.audit.query(kind="request", ok=False) if "comm_loss" in e.reason]
    assert len(unanswered) == 1


async def test_latency_delays_replies(rig: Rig, client: AsyncModbusTcpClient) -> None:
    fault = rig.fault(kind="latency", delay=250)
    rig.endpoint.apply_fault(fault, True)
    started = time.perf_counter()
    response = await client.read_holding_registers(0, count=2, device_id=1)
    elapsed = time.perf_counter() - started
    assert not response.isError()
    assert 0.25 <= elapsed < 1.5
    rig.endpoint.apply_fault(fault, False)
    started = time.perf_counter()
    await client.read_holding_registers(0, count=2, device_id=1)
    assert time.perf_counter() - started < 0.2


async def test_latency_of_an_opcua_only_fault_is_ignored(rig: Rig) -> None:
    rig.endpoint.apply_fault(rig.fault(kind="latency", delay=5000, protocol="opcua"), True)
    async with rig.client(timeout=1.0) as client:
        assert not (await client.read_coils(0, count=1, device_id=1)).isError()


async def test_frozen_serves_values_of_fault_start(rig: Rig, client: AsyncModbusTcpClient) -> None:
    fault = rig.fault(kind="frozen")
    rig.endpoint.apply_fault(fault, True)
    assert not (await client.write_register(2, 700, device_id=1)).isError()
    assert rig.device.tags["valve_cmd"] == 70.0, "writes still reach the device"
    await rig.lab.run_for(20.0)
    frozen = await client.read_holding_registers(2, count=1, device_id=1)
    assert frozen.registers == [500]
    level = await client.read_input_registers(0, count=2, device_id=1)
    rig.endpoint.apply_fault(fault, False)
    live = await client.read_holding_registers(2, count=1, device_id=1)
    assert live.registers == [700]
    level_live = await client.read_input_registers(0, count=2, device_id=1)
    assert level.registers != level_live.registers


async def test_word_swap(rig: Rig, client: AsyncModbusTcpClient) -> None:
    fault = rig.fault(kind="word_swap")
    normal = (await client.read_holding_registers(0, count=3, device_id=1)).registers
    rig.endpoint.apply_fault(fault, True)
    swapped = (await client.read_holding_registers(0, count=3, device_id=1)).registers
    assert swapped == [normal[1], normal[0], normal[2]], "one-register values do not change"
    rig.endpoint.apply_fault(fault, False)
    assert (await client.read_holding_registers(0, count=3, device_id=1)).registers == normal


async def test_wrong_unit_id(rig: Rig) -> None:
    async with rig.client(timeout=0.3) as client:
        with pytest.raises(ModbusException):
            await client.read_coils(0, count=1, device_id=2)  # never served
        fault = rig.fault(kind="wrong_unit_id", unit_id=7)
        rig.endpoint.apply_fault(fault, True)
    async with rig.client(timeout=0.3) as client:
        assert not (await client.read_coils(0, count=1, device_id=7)).isError()
        with pytest.raises(ModbusException):
            await client.read_coils(0, count=1, device_id=1)
        rig.endpoint.apply_fault(fault, False)
    async with rig.client() as client:
        assert not (await client.read_coils(0, count=1, device_id=1)).isError()
    reasons = [e.reason for e in rig.audit.query(kind="request", ok=False)]
    assert "not answered: unit id 1 not served (7)" in reasons


async def test_several_unit_ids(free_port: Callable[[], int]) -> None:
    lab = water_tank_lab(unit_ids=[1, 3])
    endpoint, _ = await start(lab, free_port())
    try:
        async with AsyncModbusTcpClient("127.0.0.1", port=endpoint.port, retries=0) as client:
            for unit in (1, 3):
                response = await client.read_coils(0, count=1, device_id=unit)
                assert not response.isError() and response.dev_id == unit
    finally:
        await endpoint.__aexit__(None, None, None)


def test_non_endpoint_fault_is_refused(rig: Rig) -> None:
    with pytest.raises(FaultError):
        rig.endpoint.apply_fault(
            FAULT.validate_python({"kind": "leak", "target": "tank", "flow": 1}), True
        )


# --- identification, sessions, concurrency, lifecycle -----------------------------------


async def test_fc43_device_identification(client: AsyncModbusTcpClient) -> None:
    basic = await client.read_device_information(read_code=1, device_id=1)
    assert basic.information == {0: b"simlab", 1: b"SIM", 2: b"1.2"}
    regular = await client.read_device_information(read_code=2, device_id=1)
    assert regular.information[3] == b"https://example.invalid/plc"
    assert regular.information[4] == regular.information[5] == b"SIM-PLC 1200"
    assert regular.information[6] == b"plc1"
    extended = await client.read_device_information(read_code=3, device_id=1)
    assert extended.information[0x80] == b"WT-0001"
    one = await client.read_device_information(read_code=4, object_id=0x80, device_id=1)
    assert one.information == {0x80: b"WT-0001"}
    assert exception_code(await client.read_device_information(read_code=4, object_id=0x90)) == 2


async def test_sessions_and_requests_are_audited(rig: Rig) -> None:
    await rig.lab.run_for(2.0)
    async with rig.client() as client:
        await client.read_holding_registers(0, count=10, device_id=1)
        await rig.lab.run_for(1.0)
        await client.read_coils(1, count=2, device_id=1)
    await eventually(lambda: all(s.disconnected_at for s in rig.audit.sessions.values()))
    [session] = rig.audit.sessions.values()
    host, _, port = session.peer.rpartition(":")
    assert (host, session.protocol, session.device) == ("127.0.0.1", "modbus", "plc1")
    assert int(port) > 0 and session.connected_at == pytest.approx(2.0)
    assert session.disconnected_at == pytest.approx(3.0)
    events = [(e.time, e.target, e.ok) for e in rig.audit.query(kind="request")]
    assert events == [
        (pytest.approx(2.0), "fc3 holding_register 0..9", False),  # 6..9 are not mapped
        (pytest.approx(3.0), "fc1 coil 1..2", True),
    ]


async def test_ten_clients_are_served_at_once(rig: Rig) -> None:
    clients = [rig.client() for _ in range(10)]
    await asyncio.gather(*(c.connect() for c in clients))
    try:
        open_sessions = [s for s in rig.audit.sessions.values() if s.disconnected_at is None]
        assert len(open_sessions) == 10

        async def poll(client: AsyncModbusTcpClient) -> list[int]:
            values = []
            for _ in range(20):
                response = await client.read_holding_registers(0, count=3, device_id=1)
                values.extend(response.registers)
            return values

        results = await asyncio.gather(*(poll(c) for c in clients))
        expected = [*float32_registers(1.2), 500]
        assert all(r == expected * 20 for r in results)
        assert len(rig.audit.query(kind="request", ok=True)) == 200
    finally:
        for c in clients:
            c.close()


def float32_registers(value: float) -> list[int]:
    return list(struct.unpack(">2H", struct.pack(">f", value)))


async def test_lifecycle_leaves_no_listener_and_no_task(free_port: Callable[[], int]) -> None:
    lab = water_tank_lab()
    port = free_port()
    before = asyncio.all_tasks()
    audit = SessionAudit()
    device = lab.devices["plc1"]
    async with ModbusEndpoint(device, host="127.0.0.1", port=port, audit=audit, now=lambda: 0.0):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(bytes.fromhex("0001 0000 0006 01 03 0000 0002"))
        reply = await asyncio.wait_for(reader.readexactly(13), 2.0)
        assert reply[:9] == bytes.fromhex("0001 0000 0007 01 03 04")
    assert await asyncio.wait_for(reader.read(), 2.0) == b"", "open connections are closed"
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    assert asyncio.all_tasks() <= before | {asyncio.current_task()}
    [session] = audit.sessions.values()
    assert session.disconnected_at is not None


async def test_port_in_use_is_a_lab_error(rig: Rig) -> None:
    other = ModbusEndpoint(
        rig.device, host="127.0.0.1", port=rig.port, audit=SessionAudit(), now=lambda: 0.0
    )
    with pytest.raises(LabError, match="cannot listen"):
        async with other:
            pass


def test_device_without_modbus_is_a_lab_error() -> None:
    lab = water_tank_lab(modbus=False)
    with pytest.raises(LabError, match="no Modbus server"):
        ModbusEndpoint(
            lab.devices["plc1"], host="127.0.0.1", port=1, audit=SessionAudit(), now=lambda: 0.0
        )
