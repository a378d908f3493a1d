"""ModbusRawClient: mbpoll-like reads and writes against the lab's real Modbus server.

The water-tank lab serves plc1 over Modbus TCP on a free port (no OPC UA server: these
tests do not need it); its virtual clock stands still, so tags only change by writes.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from devices.endpoints.modbus_client import DeviceUnreachable
from devices.endpoints.modbus_raw import ModbusRawClient, ModbusRequestError, table_reference
from simlab.errors import ValueOutOfRange
from simlab.lab import Lab
from simlab.scenario import load_scenario, resolve_scenario


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    scenario = load_scenario(resolve_scenario("water-tank"))
    devices = [d.model_copy(update={"opcua": None}) for d in scenario.devices]
    scenario = scenario.model_copy(update={"devices": devices})
    async with Lab(scenario, serve=True, auto_ports=True, state_dir=tmp_path) as lab:
        yield lab


def client_of(lab: Lab, **options: float) -> ModbusRawClient:
    address = next(a for a in lab.addresses() if a.protocol == "modbus")
    return ModbusRawClient(address.host, address.port, unit=address.unit_ids[0], **options)


def float32(registers: list[int]) -> float:
    """ABCD: the high word first (the water tank's order)."""
    return float(struct.unpack(">f", struct.pack(">HH", *registers))[0])


async def test_reads_each_table_as_the_device_holds_it(lab: Lab) -> None:
    async with client_of(lab) as client:
        level = await client.read("input_registers", 0, 2)
        assert float32(level) == pytest.approx(float(lab.read("plc1.level")), rel=1e-6)
        inputs = await client.read("input_registers", 0, 8)
        assert inputs[:2] == level and all(0 <= word <= 0xFFFF for word in inputs)
        assert inputs[6] == round(float(lab.read("plc1.temperature")) * 10)
        setpoint = await client.read("holding_registers", 0, 2)
        assert float32(setpoint) == pytest.approx(1.2)
        coils = await client.read("coils", 0, 3)
        assert coils == [int(lab.read(f"plc1.{t}")) for t in ("pump_run", "auto", "hh_reset")]
        bits = await client.read("discrete_inputs", 0, 3)
        assert set(bits) <= {0, 1}


async def test_writes_reach_the_device(lab: Lab) -> None:
    async with client_of(lab) as client:
        words = list(struct.unpack(">HH", struct.pack(">f", 75.0)))
        await client.write_registers(2, words)  # valve_cmd, float32 ABCD
        assert lab.read("plc1.valve_cmd") == pytest.approx(75.0)
        assert await client.read("holding_registers", 2, 2) == words
        await client.write_coil(1, False)
        assert lab.read("plc1.auto") is False
        await client.write_coil(1, True)
        assert lab.read("plc1.auto") is True


async def test_an_exception_reply_names_code_function_and_address(lab: Lab) -> None:
    async with client_of(lab) as client:
        with pytest.raises(ModbusRequestError) as refused:
            await client.read("holding_registers", 100, 1)
        assert (refused.value.code, refused.value.function) == (2, 3)
        assert str(refused.value) == (
            "illegal data address: holding register 40101 (address 100) is not mapped (FC 3)"
        )
        with pytest.raises(ModbusRequestError, match=r"40001\.\.40016 \(0\.\.15\) are not all"):
            await client.read("holding_registers", 0, 16)
        # half of a float32: the device refuses the value (03), and says what to do
        with pytest.raises(ModbusRequestError, match="write all its registers") as partial:
            await client.write_register(0, 1)
        assert partial.value.code == 3
        with pytest.raises(ModbusRequestError, match="not mapped or not writable") as ro:
            await client.write_register(40, 1)
        assert ro.value.code == 2
        # the connection survives exception replies
        assert len(await client.read("input_registers", 0, 2)) == 2


async def test_limits_are_checked_before_sending(lab: Lab) -> None:
    async with client_of(lab) as client:
        with pytest.raises(ValueOutOfRange, match="count 126: .* 1 to 125"):
            await client.read("holding_registers", 0, 126)
        with pytest.raises(ValueOutOfRange, match="1 to 2000"):
            await client.read("coils", 0, 2001)
        with pytest.raises(ValueOutOfRange, match="past 65535"):
            await client.read("input_registers", 65535, 2)
        with pytest.raises(ValueOutOfRange, match="0 to 65535"):
            await client.write_register(2, 70000)
        with pytest.raises(ValueOutOfRange, match="no Modbus table"):
            await client.read("registers", 0, 1)  # type: ignore[arg-type]


async def test_no_device_and_no_answer_are_unreachable(
    lab: Lab, free_port: Callable[[], int]
) -> None:
    address = next(a for a in lab.addresses() if a.protocol == "modbus")
    with pytest.raises(DeviceUnreachable, match="cannot connect to 127.0.0.1:"):
        async with ModbusRawClient("127.0.0.1", free_port(), timeout=0.5):
            pass
    # a unit id the device does not serve gets no answer: a timeout that names the unit id
    async with ModbusRawClient(address.host, address.port, unit=9, timeout=0.3) as client:
        with pytest.raises(DeviceUnreachable, match="is unit id 9 right"):
            await client.read("holding_registers", 0, 2)
        assert not client.connected
    # the right unit on the same client object reconnects
    client.unit = address.unit_ids[0]
    async with client:
        assert len(await client.read("holding_registers", 0, 2)) == 2


def test_references_follow_the_classic_notation() -> None:
    assert table_reference("holding_registers", 0) == "40001"
    assert table_reference("input_registers", 7) == "30008"
    assert table_reference("coils", 2) == "00003"
    assert table_reference("discrete_inputs", 0) == "10001"
    assert table_reference("holding_registers", 9999) == "410000"
