"""Register map: tag values to and from 16-bit Modbus registers, and the handout table.

Pure data conversion (no protocol library): the Modbus endpoint uses it to serve and to
accept values, the grader and the handouts use it to say where a value lives.

Conventions, per :class:`~simlab.scenario.devices.ModbusTagSpec`:

- **Addresses are 0-based protocol addresses** (what travels in the request). The classic
  notation adds the table prefix and counts from 1: holding register 0 is ``40001``,
  input register 0 is ``30001``, coil 0 is ``00001``, discrete input 0 is ``10001``.
  From address 9999 on, the 5-digit form runs out and the 6-digit form is used
  (holding register 9999 is ``410000``).
- **Scaling**: ``raw = (value - offset) * gain``, so ``value = raw / gain + offset``.
  Integer types round ``raw`` to the nearest integer; a raw value that does not fit the
  type raises :class:`~simlab.errors.ValueOutOfRange` (or saturates with ``clamp=True``,
  which is what a device does when it serves an over-range reading).
- **Word and byte order** of multi-register values, with bytes ``A B C D`` the big-endian
  bytes of a 32-bit value:

  ====== =================================== ==========================
  order  registers of a 32-bit value          64-bit value ``A..H``
  ====== =================================== ==========================
  ABCD   ``AB CD`` (big-endian, Modbus norm)  ``AB CD EF GH``
  CDAB   ``CD AB`` (word swap)                ``GH EF CD AB``
  BADC   ``BA DC`` (byte swap)                ``BA DC FE HG``
  DCBA   ``DC BA`` (little-endian)            ``HG FE DC BA``
  ====== =================================== ==========================

  so CDAB reverses the order of the words (pymodbus' ``word_order="little"``, mbpoll's
  default without ``-B``) and BADC swaps the two bytes of each word.
- **Strings** hold ``length`` characters (Latin-1), the first in the high byte of the
  first register, padded with NUL bytes; a read value stops at the first NUL. Word order
  does not apply to text; the byte swap of BADC and DCBA does (first character in the
  low byte, as some devices store it).
- **Bits** (coils and discrete inputs, type ``bool``) are one value per address, 0 or 1;
  gain and offset do not apply.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from simlab.errors import ValueOutOfRange
from simlab.scenario.devices import ModbusTagSpec, PlcSpec, SmartSensorSpec

__all__ = [
    "RegisterRow",
    "Table",
    "TagCodec",
    "Value",
    "codec",
    "decode",
    "encode",
    "reference",
    "register_map",
]

Value = float | bool | str
Table = Literal["coil", "discrete_input", "input_register", "holding_register"]

TABLE_ORDER: tuple[Table, ...] = ("coil", "discrete_input", "input_register", "holding_register")
_PREFIX: dict[str, int] = {
    "coil": 0,
    "discrete_input": 1,
    "input_register": 3,
    "holding_register": 4,
}
_WRITABLE_TABLES = frozenset({"coil", "holding_register"})

# struct code and inclusive raw range of the numeric types
_INTEGER: dict[str, tuple[str, int, int]] = {
    "int16": ("h", -(2**15), 2**15 - 1),
    "uint16": ("H", 0, 2**16 - 1),
    "int32": ("i", -(2**31), 2**31 - 1),
    "uint32": ("I", 0, 2**32 - 1),
}
_FLOAT: dict[str, str] = {"float32": "f", "float64": "d"}
_FLOAT32_MAX = 3.4028234663852886e38


def reference(table: str, address: int) -> str:
    """Classic Modbus notation of a 0-based ``address``: ``40001`` for holding register 0.

    Addresses up to 9998 use five digits (``40001``..``49999``); higher ones six
    (``410000``..``465536``), the extended notation most tools accept.
    """
    number = address + 1
    if number <= 9999:
        return f"{_PREFIX[table]}{number:04d}"
    return f"{_PREFIX[table]}{number:05d}"


# How each order is produced with two struct conversions: the value is packed into bytes
# with the first byte order, and the bytes are read as 16-bit registers with the second.
# Big/big is ABCD; little/little reverses the words (CDAB); big/little swaps the bytes of
# each word (BADC); little/big reverses all bytes (DCBA). Text keeps its character order.
_ENDIAN: dict[str, tuple[str, str]] = {
    "ABCD": (">", ">"),
    "CDAB": ("<", "<"),
    "BADC": (">", "<"),
    "DCBA": ("<", ">"),
}


class TagCodec:
    """Converts one tag's values to and from registers, per its :class:`ModbusTagSpec`.

    Build one per tag (see :func:`codec`) and reuse it: the two struct conversions that
    produce its word and byte order are prepared once, which keeps the endpoint's read
    path cheap.
    """

    def __init__(self, spec: ModbusTagSpec, name: str = "") -> None:
        self.spec = spec
        self.name = name or "value"
        self.registers = spec.registers()
        self.is_bit = spec.type == "bool"
        self.is_text = spec.type == "string"
        value_order, word_order = _ENDIAN[spec.word_order]
        if self.is_text:  # characters stay in order; only the byte swap applies
            value_order, word_order = ">", ">" if value_order == word_order else "<"
        self._words = struct.Struct(f"{word_order}{self.registers}H")
        self._gain = spec.gain
        self._offset = spec.offset
        integer = _INTEGER.get(spec.type)
        self._limits = (integer[1], integer[2]) if integer else None
        code = integer[0] if integer else _FLOAT.get(spec.type, "x")
        self._value = struct.Struct(f"{value_order}{code}")
        self._float32 = spec.type == "float32"

    # --- encode ---------------------------------------------------------------------------

    def encode(self, value: Value, *, clamp: bool = False) -> list[int]:
        """The registers holding ``value`` (one 0/1 entry for a bit).

        Raises ValueOutOfRange when the value cannot be represented: a raw integer outside
        its type, a float beyond float32, NaN for an integer type, a string too long. With
        ``clamp=True`` integers saturate, float32 overflows to infinity and strings are
        truncated (NaN for an integer type still raises: no register pattern means it).
        """
        if self.is_bit:
            return [1 if _truthy(value) else 0]
        if self.is_text:
            return list(self._words.unpack(self._text(str(value), clamp)))
        raw = (_number(value, self.name) - self._offset) * self._gain
        if self._limits is not None:
            return list(self._words.unpack(self._value.pack(self._integer(raw, clamp))))
        if self._float32 and abs(raw) > _FLOAT32_MAX and math.isfinite(raw):
            if not clamp:
                raise ValueOutOfRange(f"{self.name}: {raw:g} is beyond the float32 range")
            raw = math.copysign(math.inf, raw)
        return list(self._words.unpack(self._value.pack(raw)))

    def _integer(self, raw: float, clamp: bool) -> int:
        assert self._limits is not None
        low, high = self._limits
        if math.isnan(raw):
            raise ValueOutOfRange(f"{self.name}: NaN has no {self.spec.type} representation")
        integer = round(raw) if math.isfinite(raw) else (high if raw > 0 else low)
        if low <= integer <= high:
            return integer
        if not clamp:
            raise ValueOutOfRange(
                f"{self.name}: raw value {raw:g} does not fit {self.spec.type} "
                f"[{low}, {high}] (raw = (value - {self._offset:g}) * {self._gain:g}); "
                "change the value, or the map's gain/offset/type"
            )
        return min(max(integer, low), high)

    def _text(self, text: str, clamp: bool) -> bytes:
        data = text.encode("latin-1", errors="replace")
        if len(data) > self.spec.length:
            if not clamp:
                raise ValueOutOfRange(
                    f"{self.name}: {text!r} is longer than {self.spec.length} characters"
                )
            data = data[: self.spec.length]
        return data.ljust(self.registers * 2, b"\x00")

    # --- decode ---------------------------------------------------------------------------

    def decode(self, registers: Sequence[int]) -> Value:
        """The value held by ``registers`` (exactly :attr:`registers` of them)."""
        if len(registers) != self.registers:
            raise ValueOutOfRange(
                f"{self.name}: a {self.spec.type} takes {self.registers} register(s), "
                f"got {len(registers)}"
            )
        if self.is_bit:
            return bool(registers[0])
        data = self._words.pack(*registers)
        if self.is_text:
            return data[: self.spec.length].split(b"\x00", 1)[0].decode("latin-1")
        raw: float = self._value.unpack(data)[0]
        return raw / self._gain + self._offset


def _number(value: Value, name: str) -> float:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError as err:
            raise ValueOutOfRange(f"{name}: {value!r} is not a number") from err
    return float(value)


def _truthy(value: Value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "on")
    return bool(value)


@lru_cache(maxsize=1024)
def codec(spec: ModbusTagSpec, name: str = "") -> TagCodec:
    """The (cached) codec of a tag's Modbus map."""
    return TagCodec(spec, name)


def encode(spec: ModbusTagSpec, value: Value, *, clamp: bool = False) -> list[int]:
    """Registers holding ``value`` per ``spec`` (see :meth:`TagCodec.encode`)."""
    return codec(spec).encode(value, clamp=clamp)


def decode(spec: ModbusTagSpec, registers: Sequence[int]) -> Value:
    """Value held by ``registers`` per ``spec`` (see :meth:`TagCodec.decode`)."""
    return codec(spec).decode(registers)


# --- handout ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterRow:
    """One line of a device's register map, as printed for apprentices."""

    tag: str
    table: Table
    address: int  # 0-based protocol address, what travels in the request
    reference: str  # classic notation: 40001 = holding register 0
    registers: int
    type: str
    word_order: str
    gain: float
    offset: float
    unit: str
    access: Literal["R", "R/W"]
    description: str


def register_map(
    device_spec: PlcSpec | SmartSensorSpec, *, units: Mapping[str, str] | None = None
) -> list[RegisterRow]:
    """The Modbus map of a device, ordered by table (coils first) then address.

    ``units`` gives resolved units by tag name (e.g. from ``Device.unit``) for tags that
    inherit theirs from a plant signal; otherwise a tag's declared unit (or none) is used.
    """
    rows: list[RegisterRow] = []
    for tag in device_spec.tags:
        m = tag.modbus
        if m is None:
            continue
        unit = (units or {}).get(tag.name) or tag.unit or ""
        writable = tag.writable and m.table in _WRITABLE_TABLES
        rows.append(
            RegisterRow(
                tag=tag.name,
                table=m.table,
                address=m.address,
                reference=reference(m.table, m.address),
                registers=m.registers(),
                type=m.type,
                word_order="-" if m.type == "bool" else m.word_order,
                gain=m.gain,
                offset=m.offset,
                unit="" if unit == "bool" else unit,
                access="R/W" if writable else "R",
                description=tag.description,
            )
        )
    rows.sort(key=lambda r: (TABLE_ORDER.index(r.table), r.address))
    return rows
