"""Register map: encoding per type, word order and scaling; range checks; the handout rows."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient

from devices.registermap import RegisterRow, TagCodec, decode, encode, reference, register_map
from simlab.errors import ValueOutOfRange
from simlab.scenario.devices import ModbusTagSpec, PlcSpec

ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")


def spec(type_: str = "float32", order: str = "ABCD", **extra: Any) -> ModbusTagSpec:
    table = "coil" if type_ == "bool" else "holding_register"
    return ModbusTagSpec(table=table, address=0, type=type_, word_order=order, **extra)


# --- known register patterns ------------------------------------------------------------

VECTORS = {
    # type, value: registers in ABCD, CDAB, BADC, DCBA
    ("float32", 1.5): ([0x3FC0, 0x0000], [0x0000, 0x3FC0], [0xC03F, 0x0000], [0x0000, 0xC03F]),
    ("int32", 0x01020304): ([0x0102, 0x0304], [0x0304, 0x0102], [0x0201, 0x0403], [0x0403, 0x0201]),
    ("uint32", 0xA1B2C3D4): (
        [0xA1B2, 0xC3D4],
        [0xC3D4, 0xA1B2],
        [0xB2A1, 0xD4C3],
        [0xD4C3, 0xB2A1],
    ),
    ("int16", -2): ([0xFFFE], [0xFFFE], [0xFEFF], [0xFEFF]),
    ("uint16", 0x1234): ([0x1234], [0x1234], [0x3412], [0x3412]),
    ("float64", 1.0): (
        [0x3FF0, 0, 0, 0],
        [0, 0, 0, 0x3FF0],
        [0xF03F, 0, 0, 0],
        [0, 0, 0, 0xF03F],
    ),
}


@pytest.mark.parametrize(("type_and_value", "patterns"), VECTORS.items())
@pytest.mark.parametrize("index", range(4), ids=ORDERS)
def test_known_patterns(type_and_value: tuple[str, float], patterns: Any, index: int) -> None:
    type_, value = type_and_value
    s = spec(type_, ORDERS[index])
    assert encode(s, value) == patterns[index]
    assert decode(s, patterns[index]) == value


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("type_", ["int16", "uint16", "int32", "uint32", "float32", "float64"])
def test_round_trip(order: str, type_: str) -> None:
    s = spec(type_, order, gain=100.0, offset=-40.0)
    for value in (-40.0, -12.34, 0.0, 1.0, 123.45):
        registers = encode(s, value)
        assert len(registers) == s.registers() and all(0 <= r <= 0xFFFF for r in registers)
        assert decode(s, registers) == pytest.approx(value, abs=0.005 if "int" in type_ else 1e-4)


@pytest.mark.parametrize(("order", "word_order"), [("ABCD", "big"), ("CDAB", "little")])
def test_agrees_with_pymodbus_client_conversions(order: str, word_order: Any) -> None:
    dt = ModbusTcpClient.DATATYPE
    for type_, datatype, value in (
        ("float32", dt.FLOAT32, 3.25),
        ("float64", dt.FLOAT64, -1234.5678),
        ("int32", dt.INT32, -123456),
        ("uint32", dt.UINT32, 3_000_000_000),
    ):
        ours = encode(spec(type_, order), value)
        assert ours == ModbusTcpClient.convert_to_registers(value, datatype, word_order=word_order)


# --- scaling and range --------------------------------------------------------------------


def test_scaling_rounds_raw_integers() -> None:
    s = spec("int16", gain=10.0, offset=-5.0)
    assert encode(s, 12.34) == [173]  # (12.34 + 5) * 10 = 173.4
    assert decode(s, [173]) == pytest.approx(12.3)
    assert encode(spec("uint16", gain=0.1), 1234.0) == [123]


def test_raw_integer_range_is_checked() -> None:
    with pytest.raises(ValueOutOfRange, match="does not fit int16"):
        encode(spec("int16"), 40000)
    with pytest.raises(ValueOutOfRange, match="uint16"):
        encode(spec("uint16"), -1)
    with pytest.raises(ValueOutOfRange, match="uint32"):
        encode(spec("uint32", gain=1000.0), 5_000_000.0)
    assert encode(spec("int16"), 32767.4) == [0x7FFF]
    assert encode(spec("int16"), -32768) == [0x8000]


def test_clamp_saturates_like_a_device() -> None:
    assert encode(spec("int16"), 40000, clamp=True) == [0x7FFF]
    assert encode(spec("uint16"), -5, clamp=True) == [0]
    assert encode(spec("int32"), math.inf, clamp=True) == [0x7FFF, 0xFFFF]
    assert decode(spec("float32"), encode(spec("float32"), 1e39, clamp=True)) == math.inf
    with pytest.raises(ValueOutOfRange, match="NaN"):
        encode(spec("int16"), math.nan, clamp=True)
    with pytest.raises(ValueOutOfRange, match="float32"):
        encode(spec("float32"), -1e39)


def test_floats_keep_nan_and_infinity() -> None:
    assert math.isnan(float(decode(spec("float32"), encode(spec("float32"), math.nan))))
    assert decode(spec("float64"), encode(spec("float64"), -math.inf)) == -math.inf


def test_non_numbers_are_refused() -> None:
    with pytest.raises(ValueOutOfRange, match="not a number"):
        encode(spec("float32"), "high")
    assert encode(spec("float32"), "1.5") == [0x3FC0, 0]


def test_decode_needs_the_whole_value() -> None:
    with pytest.raises(ValueOutOfRange, match="takes 2 register"):
        decode(spec("float32"), [0x3FC0])


# --- strings and bits ---------------------------------------------------------------------


def test_strings() -> None:
    s = spec("string", length=5)
    assert s.registers() == 3
    assert encode(s, "Hello") == [0x4865, 0x6C6C, 0x6F00]
    assert encode(s, "Hi") == [0x4869, 0, 0]
    assert decode(s, [0x4869, 0, 0]) == "Hi"
    assert decode(s, encode(s, "Hello")) == "Hello"
    assert encode(spec("string", "BADC", length=5), "Hello") == [0x6548, 0x6C6C, 0x006F]
    assert encode(spec("string", "CDAB", length=5), "Hello") == encode(s, "Hello")
    assert decode(spec("string", "DCBA", length=5), [0x6548, 0x6C6C, 0x006F]) == "Hello"
    with pytest.raises(ValueOutOfRange, match="longer than 5"):
        encode(s, "Hello!")
    assert decode(s, encode(s, "Hello, world", clamp=True)) == "Hello"
    assert decode(s, encode(s, "Grüße")) == "Grüße"  # Latin-1


def test_bits() -> None:
    s = spec("bool")
    assert [encode(s, v) for v in (True, False, 1.0, 0.0, "true", "0")] == [
        [1],
        [0],
        [1],
        [0],
        [1],
        [0],
    ]
    assert decode(s, [1]) is True and decode(s, [0]) is False


def test_codec_reports_tag_name() -> None:
    with pytest.raises(ValueOutOfRange, match="^level_raw: "):
        TagCodec(spec("uint16"), "level_raw").encode(-3)


def test_float32_is_what_struct_says() -> None:
    value = 0.123456789
    [hi, lo] = encode(spec("float32"), value)
    assert struct.unpack(">f", struct.pack(">HH", hi, lo))[0] == pytest.approx(value, rel=1e-7)


# --- handout ----------------------------------------------------------------------------


def test_reference_notation() -> None:
    assert reference("holding_register", 0) == "40001"
    assert reference("input_register", 0) == "30001"
    assert reference("coil", 0) == "00001"
    assert reference("discrete_input", 9) == "10010"
    assert reference("holding_register", 9998) == "49999"
    assert reference("holding_register", 9999) == "410000"
    assert reference("holding_register", 65535) == "465536"


def test_register_map_rows() -> None:
    device = PlcSpec.model_validate(
        {
            "name": "plc1",
            "type": "plc",
            "modbus": {"port": 5020},
            "tags": [
                {
                    "name": "level",
                    "signal": "tank.level",
                    "unit": "m",
                    "description": "Tank level",
                    "modbus": {"table": "input_register", "address": 0, "type": "float32"},
                },
                {
                    "name": "inflow",
                    "signal": "pump.flow",
                    "modbus": {
                        "table": "input_register",
                        "address": 2,
                        "type": "int16",
                        "gain": 100,
                    },
                },
                {
                    "name": "level_sp",
                    "unit": "m",
                    "writable": True,
                    "modbus": {
                        "table": "holding_register",
                        "address": 10,
                        "word_order": "CDAB",
                    },
                },
                {
                    "name": "auto",
                    "type": "bool",
                    "writable": True,
                    "modbus": {"table": "coil", "address": 3, "type": "bool"},
                },
                {"name": "alarm", "type": "bool", "description": "no Modbus address"},
            ],
        }
    )
    rows = register_map(device, units={"inflow": "m3/h"})
    assert [(r.tag, r.reference, r.access) for r in rows] == [
        ("auto", "00004", "R/W"),
        ("level", "30001", "R"),
        ("inflow", "30003", "R"),
        ("level_sp", "40011", "R/W"),
    ]
    assert rows[2] == RegisterRow(
        tag="inflow",
        table="input_register",
        address=2,
        reference="30003",
        registers=1,
        type="int16",
        word_order="ABCD",
        gain=100.0,
        offset=0.0,
        unit="m3/h",
        access="R",
        description="",
    )
    assert (rows[0].word_order, rows[0].unit) == ("-", "")
    assert (rows[1].unit, rows[1].registers, rows[1].description) == ("m", 2, "Tank level")
    assert rows[3].word_order == "CDAB"
    assert register_map(device)[2].unit == ""  # inherited units need the device to resolve
