"""The lineage data: which hops a tag has, how registers decode, and the lines shown."""

from __future__ import annotations

import pytest

from devices.endpoints.modbus_client import PolledValue
from devices.registermap import encode
from simlab.addresses import EndpointAddress
from simlab.bus.client import Message
from simlab.bus.uns import UnsMessage
from simlab.platform.historian import Sample
from simlab.scenario import load_scenario
from simlab.scenario.devices import ModbusTagSpec
from simlab.tui.lineage import (
    LabSide,
    Readings,
    explain_registers,
    format_number,
    format_value,
    hops,
    route_of,
)

WATER = load_scenario("water-tank")
LEVEL_TOPIC = "acme/riverside/utilities/water/buffer_tank/tank1/level"
ADDRESSES = [
    EndpointAddress("plc1", "modbus", "127.0.0.1", 5020, "modbus+tcp://127.0.0.1:5020", (1,)),
    EndpointAddress("plc1", "opcua", "127.0.0.1", 4840, "opc.tcp://127.0.0.1:4840/simlab/plc1"),
]
LEVEL_SIDE = LabSide(truth=0.4, truth_unit="m", value=0.403, quality="Good", unit="m")


def test_numbers_are_short_and_never_in_exponent_form() -> None:
    assert format_number(0.40299999713897705) == "0.403"
    assert format_number(12.0) == "12"
    assert format_number(1234567.89) == "1234568"
    assert format_number(1e-7) == "0.0000001"
    assert format_value(True) == "true"
    assert format_value(None, "m") == "—"
    assert format_value(1.5, "m3/h") == "1.5 m3/h"
    assert format_value(1.0, "bool") == "1"


@pytest.mark.parametrize(
    ("spec", "value", "words"),
    [
        (ModbusTagSpec(table="input_register", address=0), 1.2, "[0x3F99 0x999A] float32 ABCD"),
        (
            ModbusTagSpec(table="input_register", address=9, word_order="CDAB"),
            1.2,
            "[0x999A 0x3F99] float32 CDAB",
        ),
        (
            ModbusTagSpec(table="input_register", address=6, type="int16", gain=10),
            40.5,
            "[0x0195] int16 raw 405 ÷ 10",
        ),
        (
            ModbusTagSpec(table="holding_register", address=0, type="uint16", offset=-20),
            5,
            "[0x0019] uint16 raw 25 + -20",
        ),
    ],
)
def test_registers_decode_in_words_to_the_value(
    spec: ModbusTagSpec, value: float, words: str
) -> None:
    decoded, steps = explain_registers(spec, encode(spec, value))
    assert decoded == pytest.approx(value)
    assert steps.startswith(words)
    assert steps.endswith(f"→ {format_value(decoded)}")


def test_bits_and_text_decode_too() -> None:
    coil = ModbusTagSpec(table="coil", address=0, type="bool")
    assert explain_registers(coil, [1]) == (True, "bit 1 → true")
    text = ModbusTagSpec(table="holding_register", address=0, type="string", length=4)
    assert explain_registers(text, encode(text, "ab")) == (
        "ab",
        "[0x6162 0x0000] 4 chars ABCD → 'ab'",
    )


def test_the_level_travels_every_hop() -> None:
    route = route_of(WATER, ADDRESSES, "plc1.level")
    assert (route.kind, route.signal, route.drives) == ("PLC", "tank.level", False)
    assert route.modbus is not None and route.modbus.address == 0
    assert route.modbus_at == ADDRESSES[0] and route.unit_id == 1
    assert route.opcua_at == ADDRESSES[1] and route.opcua_namespace == "urn:simlab:water-tank"
    assert route.topic == LEVEL_TOPIC
    assert "gateway edge1 polls modbus" in route.publisher


def test_a_missing_hop_says_why() -> None:
    heater = route_of(WATER, ADDRESSES, "plc1.heater_cmd")
    assert heater.drives and heater.signal == "tank_heat.cmd_heater"
    assert heater.modbus is None and "no address in plc1's register map" in heater.modbus_why
    assert heater.topic is None and "over Modbus: no address, no poll" in heater.mqtt_why
    offline = route_of(WATER, [], "plc1.level")
    assert offline.modbus is None and offline.modbus_why == "the lab serves no Modbus endpoint"
    assert offline.opcua_at is None and offline.opcua_why == "the lab serves no OPC UA endpoint"
    assert offline.topic is None and "no modbus endpoint for the gateway" in offline.mqtt_why
    no_gateway = route_of(WATER.model_copy(update={"gateway": None}), ADDRESSES, "plc1.level")
    assert no_gateway.topic is None and "no edge gateway" in no_gateway.mqtt_why
    with pytest.raises(KeyError):
        route_of(WATER, ADDRESSES, "plc1.nope")


def test_an_mqtt_sensor_publishes_itself_and_serves_no_protocol() -> None:
    route = route_of(load_scenario("pump-station"), [], "vib1.vibration_rms")
    assert route.kind == "sensor"
    assert route.modbus_why == "vib1 has no Modbus server"
    assert route.opcua_why == "vib1 has no OPC UA server"
    assert route.topic == "acme/riverside/pumping/station1/pumps/motor1/vibration_rms"
    assert route.publisher == "published by vib1 itself every 1 s"


def test_the_lines_show_each_hop_value_and_how_it_was_made() -> None:
    route = route_of(WATER, ADDRESSES, "plc1.level")
    spec = route.modbus
    assert spec is not None
    ts_ms = 1767225600000
    payload = UnsMessage(0.403, "m", ts_ms, "gateway:edge1").to_json()
    readings = Readings(
        registers=encode(spec, 0.403),
        opcua=PolledValue(0.403, source_ms=ts_ms),
        node_id="ns=2;s=plc1.level",
        message=Message(LEVEL_TOPIC, payload, 1, True, 0.0),
        platform=Sample(LEVEL_TOPIC, ts_ms / 1000, 0.403, "Good", "gateway:edge1"),
    )
    lines = {hop.stage: hop for hop in hops(route, LEVEL_SIDE, readings)}
    assert list(lines) == ["plant", "PLC", "Modbus", "OPC UA", "MQTT", "platform"]
    assert all(hop.state == "ok" for hop in lines.values())
    assert (lines["plant"].where, lines["plant"].value) == ("tank.level", "0.4 m")
    assert "sensor noise ±0.002, step 0.001, lag 0.5 s, range 0..2" in lines["PLC"].note
    assert lines["Modbus"].where == "30001-30002 (input register 0, unit 1)"
    assert lines["Modbus"].value == "0.403 m"
    assert lines["Modbus"].note.startswith("[0x3ECE 0x5604] float32 ABCD → 0.403")
    assert (lines["OPC UA"].where, lines["OPC UA"].value) == ("ns=2;s=plc1.level", "0.403 m")
    assert lines["OPC UA"].note == "Good · source ts 00:00:00.000"
    assert (lines["MQTT"].where, lines["MQTT"].value) == (LEVEL_TOPIC, "0.403 m")
    assert lines["MQTT"].note == "Good · ts 00:00:00.000 · gateway:edge1"
    assert lines["platform"].value == "0.403 m"


def test_lines_wait_for_readings_and_name_errors() -> None:
    route = route_of(WATER, ADDRESSES, "plc1.level")
    waiting = {hop.stage: hop.state for hop in hops(route, LEVEL_SIDE, None)}
    assert waiting == {
        "plant": "ok",
        "PLC": "ok",
        "Modbus": "waiting",
        "OPC UA": "waiting",
        "MQTT": "waiting",
        "platform": "waiting",
    }
    failed = Readings(
        modbus_error="cannot connect to 127.0.0.1:5020",
        opcua=PolledValue(None, "Bad", "BadNotConnected", "refused"),
        message=Message(LEVEL_TOPIC, b"42", 0, False, 0.0),
    )
    lines = {hop.stage: hop for hop in hops(route, LEVEL_SIDE, failed)}
    assert (lines["Modbus"].state, lines["Modbus"].note) == (
        "error",
        "cannot connect to 127.0.0.1:5020",
    )
    assert lines["OPC UA"].note == "BadNotConnected: refused"
    assert lines["MQTT"].state == "error" and "not a UNS payload" in lines["MQTT"].note
    no_bus = LabSide(0.4, "m", 0.403, "Good", "m", has_bus=False)
    assert {h.stage: h.state for h in hops(route, no_bus, None)}["platform"] == "absent"


def test_an_internal_tag_has_no_plant_signal() -> None:
    route = route_of(WATER, ADDRESSES, "plc1.level_sp")
    side = LabSide(None, "", 1.2, "Good", "m")
    plant, device = hops(route, side, None)[:2]
    assert plant.state == "absent" and "internal tag" in plant.note
    assert device.note == "Good · writable"
