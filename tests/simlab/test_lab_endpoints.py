"""A served lab, as an apprentice meets it: bundled scenario, real Modbus and OPC UA clients."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from asyncua import Client, ua
from pymodbus.client import AsyncModbusTcpClient

from simlab.addresses import plan_ports
from simlab.errors import LabError
from simlab.lab import Lab
from simlab.scenario import load_scenario, parse_scenario, resolve_scenario


def as_float(registers: list[int]) -> float:
    return float(struct.unpack(">f", struct.pack(">HH", *registers))[0])


async def test_one_tag_one_truth_and_writes_over_both_protocols(tmp_path: Path) -> None:
    lab = Lab(load_scenario("water-tank"), serve=True, auto_ports=True, state_dir=tmp_path)
    async with lab:
        await lab.run_for(60)
        addresses = {a.protocol: a for a in lab.addresses()}
        modbus = AsyncModbusTcpClient("127.0.0.1", port=addresses["modbus"].port)
        await modbus.connect()
        async with Client(addresses["opcua"].url) as opcua:
            ns = await opcua.get_namespace_index("urn:simlab:water-tank")
            level_node = opcua.get_node(f"ns={ns};s=plc1.level")
            over_modbus = as_float(
                (await modbus.read_input_registers(0, count=2, device_id=1)).registers
            )
            over_opcua = await level_node.read_value()
            assert over_modbus == pytest.approx(over_opcua, abs=1e-6)  # float32 vs double
            assert over_opcua == lab.read("plc1.level")

            # A setpoint written over OPC UA, then one over Modbus: the plant follows each.
            sp = opcua.get_node(f"ns={ns};s=plc1.level_sp")
            await sp.write_value(ua.DataValue(ua.Variant(0.7, ua.VariantType.Double)))
            await lab.run_for(400)
            assert lab.truth.value_at("tank.level", lab.time) == pytest.approx(0.7, abs=0.03)
            raw = struct.unpack(">HH", struct.pack(">f", 1.5))
            reply = await modbus.write_registers(0, list(raw), device_id=1)
            assert not reply.isError()
            await lab.run_for(400)
            assert lab.truth.value_at("tank.level", lab.time) == pytest.approx(1.5, abs=0.03)

            # The device fault shows on both: Modbus exception 04, OPC UA Bad status.
            lab.inject_fault({"kind": "offline", "target": "plc1.level"})
            await lab.run_for(1)
            reply = await modbus.read_input_registers(0, count=2, device_id=1)
            assert reply.isError() and reply.exception_code == 4
            value = await level_node.read_data_value(raise_on_bad_status=False)
            assert value.StatusCode.is_bad()
        modbus.close()
        writes = [e for e in lab.truth.events if e.kind == "write"]
        assert [w.detail["tag"] for w in writes] == ["plc1.level_sp", "plc1.level_sp"]
        protocols = {s.protocol for s in lab.audit.sessions.values()}
        assert protocols == {"modbus", "opcua"}
    endpoint_map = json.loads((tmp_path / "endpoints.json").read_text())
    assert endpoint_map["plc1"]["opcua"]["url"] == addresses["opcua"].url
    assert endpoint_map["plc1"]["modbus"]["port"] == addresses["modbus"].port


async def test_bundled_methods_drive_the_bottling_line(tmp_path: Path) -> None:
    lab = Lab(load_scenario("bottling-line"), serve=True, auto_ports=True, state_dir=tmp_path)
    async with lab:
        await lab.run_for(10)
        assert lab.read("line_plc.state") == 6.0
        (opcua_address,) = [a for a in lab.addresses() if a.protocol == "opcua"]
        async with Client(opcua_address.url) as client:
            ns = await client.get_namespace_index("urn:simlab:bottling-line")
            line = client.get_node(f"ns={ns};s=line_plc")
            await line.call_method(f"{ns}:Stop")
            await lab.run_for(5)
            assert lab.read("line_plc.state") == 2.0  # Stopped
            await line.call_method(f"{ns}:Reset")
            await lab.run_for(5)
            await line.call_method(f"{ns}:Start")
            await lab.run_for(5)
            assert lab.read("line_plc.state") == 6.0  # Execute again


def test_ports_shift_with_an_offset_and_refuse_impossible_ones() -> None:
    scenario = load_scenario("water-tank")
    assert plan_ports(scenario, host="127.0.0.1", offset=100) == {
        ("plc1", "modbus"): 5120,
        ("plc1", "opcua"): 4940,
    }
    with pytest.raises(LabError, match="smaller --port-offset"):
        plan_ports(scenario, host="127.0.0.1", offset=70000)


async def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    first = Lab(load_scenario("water-tank"), serve=True, auto_ports=True, state_dir=tmp_path)
    async with first:
        ports = {p: port for (_, p), port in first.ports.items()}
        offset = ports["modbus"] - 5020  # a second lab on the same ports
        second = Lab(
            load_scenario("water-tank"),
            serve=True,
            port_offset=offset,
            state_dir=tmp_path / "second",
        )
        with pytest.raises(LabError, match="port"):
            async with second:
                pass


async def test_timeline_endpoint_fault_due_at_start_acts_once_served(tmp_path: Path) -> None:
    text = resolve_scenario("water-tank").read_text()
    text = text.replace("faults: []", "faults: [{kind: exception, target: plc1, at: 0, code: 6}]")
    lab = Lab(parse_scenario(text), serve=True, auto_ports=True, state_dir=tmp_path)
    async with lab:
        (modbus_address,) = [a for a in lab.addresses() if a.protocol == "modbus"]
        client = AsyncModbusTcpClient("127.0.0.1", port=modbus_address.port)
        await client.connect()
        reply = await client.read_input_registers(0, count=2, device_id=1)
        assert reply.isError() and reply.exception_code == 6  # busy, from t=0
        client.close()
