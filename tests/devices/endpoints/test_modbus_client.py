"""ModbusPoller: the gateway's Modbus client, against the lab's real Modbus server.

The bundled water-tank scenario serves plc1 over Modbus TCP; its OPC UA server is left
out (these tests do not use it, and it takes a second to start). Every value the poller
returns is compared with the device's tag at the same simulated instant: the virtual
clock only moves through ``lab.run_for``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from devices.endpoints.modbus_client import (
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    DeviceUnreachable,
    ModbusPoller,
    PolledValue,
    ReadBlock,
    plan_reads,
    status_of_exception,
)
from simlab.errors import TagNotWritable, UnknownTag, ValueOutOfRange
from simlab.lab import Lab
from simlab.scenario import load_scenario, resolve_scenario
from simlab.scenario.devices import ModbusTagSpec
from simlab.scenario.model import Scenario


def modbus_only(name: str) -> Scenario:
    """A bundled scenario whose devices serve Modbus only (no OPC UA server to start)."""
    scenario = load_scenario(resolve_scenario(name))
    devices = [d.model_copy(update={"opcua": None}) for d in scenario.devices]
    return scenario.model_copy(update={"devices": devices})


def tolerance(spec: ModbusTagSpec) -> float:
    """How far a value read through the register map may be from the tag: its resolution."""
    if spec.type in ("float32", "float64"):
        return 1e-6
    if spec.type == "bool":
        return 0.0
    return 0.5 / abs(spec.gain) + 1e-9  # an integer register rounds raw = value * gain


class Rig:
    """A serving water-tank lab and a poller of every Modbus-mapped tag of plc1."""

    def __init__(self, lab: Lab, poller: ModbusPoller) -> None:
        self.lab = lab
        self.poller = poller
        self.device = lab.devices["plc1"]
        self.specs = {t.name: t.modbus for t in self.device.spec.tags if t.modbus is not None}

    def assert_matches_device(self, values: dict[str, PolledValue]) -> None:
        assert set(values) == set(self.specs)
        for tag, polled in values.items():
            assert polled.good, f"{tag}: {polled}"
            expected = self.device.tags[tag]
            if isinstance(expected, bool):
                assert polled.value is expected, tag
            else:
                assert isinstance(polled.value, float)
                tol = tolerance(self.specs[tag])
                assert polled.value == pytest.approx(expected, abs=tol, rel=1e-6), tag

    def fault(self, **fields: object) -> int:
        return self.lab.inject_fault({"target": "plc1", **fields})


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with Lab(
        modbus_only("water-tank"), serve=True, auto_ports=True, state_dir=tmp_path
    ) as lab:
        address = next(a for a in lab.addresses() if a.protocol == "modbus")
        specs = {t.name: t.modbus for t in lab.devices["plc1"].spec.tags if t.modbus}
        async with ModbusPoller(
            address.host, address.port, address.unit_ids[0], specs, timeout=0.3, name="plc1"
        ) as poller:
            yield Rig(lab, poller)


# --- the read plan -------------------------------------------------------------------------


def spec(table: str, address: int, type_: str = "float32", **extra: object) -> ModbusTagSpec:
    return ModbusTagSpec.model_validate(
        {"table": table, "address": address, "type": type_, **extra}
    )


def test_contiguous_ranges_merge_per_table_and_gaps_split() -> None:
    tags = {
        "a": spec("holding_register", 0),  # 0..1
        "b": spec("holding_register", 2, "uint16"),  # 2
        "c": spec("holding_register", 3, "float64"),  # 3..6
        "d": spec("holding_register", 10, "int16"),  # gap at 7..9
        "e": spec("input_register", 0),  # another table, same addresses
        "f": spec("coil", 5, "bool"),
        "g": spec("coil", 4, "bool"),
        "h": spec("discrete_input", 0, "bool"),
        "i": spec("discrete_input", 2, "bool"),  # gap at 1
        "j": spec("holding_register", 1, "uint16"),  # overlaps a: merged, never split
    }
    assert plan_reads(tags) == [
        ReadBlock("coil", 4, 2, ("g", "f")),
        ReadBlock("discrete_input", 0, 1, ("h",)),
        ReadBlock("discrete_input", 2, 1, ("i",)),
        ReadBlock("input_register", 0, 2, ("e",)),
        ReadBlock("holding_register", 0, 7, ("a", "j", "b", "c")),
        ReadBlock("holding_register", 10, 1, ("d",)),
    ]


def test_requests_stay_within_the_protocol_limits_without_splitting_a_value() -> None:
    registers = {f"r{i:03d}": spec("input_register", 2 * i) for i in range(70)}  # 140 words
    blocks = plan_reads(registers)
    assert [(b.start, b.count) for b in blocks] == [(0, 124), (124, 16)]
    assert all(b.count <= MAX_READ_REGISTERS for b in blocks)
    bits = {f"c{i:04d}": spec("coil", i, "bool") for i in range(2500)}
    assert [(b.start, b.count) for b in plan_reads(bits)] == [(0, MAX_READ_BITS), (2000, 500)]
    text = {"s": spec("holding_register", 0, "string", length=250)}
    assert [(b.start, b.count) for b in plan_reads(text)] == [(0, 125)]


def test_exception_codes_map_to_opc_ua_status_names() -> None:
    assert status_of_exception(4) == "BadDeviceFailure"
    assert status_of_exception(2) == "BadNodeIdUnknown"
    assert status_of_exception(6) == "BadResourceUnavailable"
    assert status_of_exception(99).startswith("Bad")


# --- polling a live device -------------------------------------------------------------------


async def test_poll_reads_each_table_in_one_request_and_matches_the_tags(rig: Rig) -> None:
    await rig.lab.run_for(20.0)
    requests_before = len(rig.lab.audit.events)
    values = await rig.poller.poll()
    rig.assert_matches_device(values)
    assert float(rig.device.tags["inflow"]) > 1.0, "the pump should be filling the tank"
    assert values["level"].value == pytest.approx(rig.device.tags["level"], abs=5e-7)
    targets = [e.target for e in rig.lab.audit.events[requests_before:] if e.kind == "request"]
    assert targets == [
        "fc1 coil 0..2",
        "fc2 discrete_input 0..2",
        "fc4 input_register 0..7",
        "fc3 holding_register 0..3",
    ]
    assert rig.poller.stats.requests == 4
    assert all(v.source_ms is None for v in values.values()), "Modbus has no timestamps"


async def test_float32_values_come_back_as_the_decimal_the_device_meant(rig: Rig) -> None:
    values = await rig.poller.poll()
    assert values["level_sp"].value == 1.2  # not 1.2000000476837158
    assert values["valve_cmd"].value == 50.0


async def test_an_exception_reply_marks_only_the_refusing_tag_bad(rig: Rig) -> None:
    rig.lab.inject_fault({"kind": "offline", "target": "plc1.level"})
    await rig.lab.run_for(0.5)  # the next scan reads the sensor: Bad quality
    values = await rig.poller.poll()
    level = values.pop("level")
    assert (level.value, level.quality, level.status) == (None, "Bad", "BadDeviceFailure")
    assert level.exception_code == 4
    assert "exception 4" in level.error
    # the neighbours of the same merged read were read again, one by one
    assert all(v.good for v in values.values()), values
    assert values["inflow"].value == pytest.approx(rig.device.tags["inflow"], abs=1e-6)


async def test_an_exception_fault_marks_every_tag_bad_with_its_code(rig: Rig) -> None:
    fault = rig.fault(kind="exception", code=6)
    values = await rig.poller.poll()
    assert {(v.quality, v.status, v.exception_code) for v in values.values()} == {
        ("Bad", "BadResourceUnavailable", 6)
    }
    assert rig.poller.connected, "an exception reply is an answer: the connection stays"
    rig.lab.clear_fault(fault)
    rig.assert_matches_device(await rig.poller.poll())


async def test_reconnects_after_a_comm_loss_fault(rig: Rig) -> None:
    rig.assert_matches_device(await rig.poller.poll())
    assert rig.poller.stats.connects == 1
    fault = rig.fault(kind="comm_loss", protocol="modbus")
    lost = await rig.poller.poll()  # the server dropped us: the read gets no answer
    assert {v.quality for v in lost.values()} == {"Bad"}
    assert {v.status for v in lost.values()} <= {"BadCommunicationError", "BadTimeout"}
    assert not rig.poller.connected
    silent = await rig.poller.poll()  # reconnected, but the server answers nothing
    assert {v.status for v in silent.values()} == {"BadTimeout"}
    rig.lab.clear_fault(fault)
    await rig.lab.run_for(1.0)
    back = await rig.poller.poll()
    rig.assert_matches_device(back)
    assert rig.poller.connected
    assert rig.poller.stats.connects == 3
    sessions = [s for s in rig.lab.audit.sessions.values() if s.protocol == "modbus"]
    assert len(sessions) == 3


# --- writes ------------------------------------------------------------------------------


async def test_writes_reach_the_plc_and_refusals_are_typed(rig: Rig) -> None:
    await rig.poller.write("level_sp", 1.5)  # float32 holding register, FC 16
    await rig.poller.write("auto", False)  # coil, FC 5
    assert rig.device.tags["level_sp"] == pytest.approx(1.5)
    assert rig.device.tags["auto"] is False
    writes = [e for e in rig.lab.audit.events if e.kind == "write"]
    assert [(e.target, e.ok, e.detail["function_code"]) for e in writes] == [
        ("level_sp", True, 16),
        ("auto", True, 5),
    ]
    with pytest.raises(TagNotWritable, match="input registers"):
        await rig.poller.write("level", 1.0)  # a read-only table: not even sent
    with pytest.raises(ValueOutOfRange, match="exception 3"):
        await rig.poller.write("level_sp", 5.0)  # outside the tag's range: the PLC says 03
    with pytest.raises(UnknownTag):
        await rig.poller.write("heater_cmd", 1.0)  # no Modbus address
    assert rig.device.tags["level_sp"] == pytest.approx(1.5)
    assert rig.poller.stats.writes == 2


async def test_an_unreachable_device_gives_bad_values_not_errors(
    free_port: Callable[[], int],
) -> None:
    tags = {"level": spec("input_register", 0), "sp": spec("holding_register", 2)}
    async with ModbusPoller("127.0.0.1", free_port(), 1, tags, timeout=0.3) as poller:
        values = await poller.poll()
        bad = PolledValue(None, "Bad", "BadNotConnected", poller.stats.last_error)
        assert values == {"level": bad, "sp": bad}
        assert "cannot connect" in bad.error
        with pytest.raises(DeviceUnreachable, match="cannot write sp"):
            await poller.write("sp", 1.0)
        assert not poller.connected
