"""Raw Modbus registers read as numbers, in any word and byte order: what a poller shows.

A poller (mbpoll, ModScan, the terminal UI's Modbus screen) does not know the register map:
it shows a range of registers decoded as one type chosen by the user, in the word and
byte order the user chose, so a wrong choice shows as a wrong number. The conversions are
those of :class:`~devices.registermap.TagCodec`, the code the Modbus endpoint serves with,
so the tool and the device cannot disagree on what ABCD, CDAB, BADC and DCBA mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from devices.registermap import codec
from simlab.errors import ValueOutOfRange
from simlab.scenario.devices import ModbusTagSpec

__all__ = [
    "NUMBER_TYPES",
    "NumberType",
    "WordOrder",
    "decode_range",
    "encode_number",
    "format_number",
    "width",
    "word_order",
]

NumberType = Literal["int16", "uint16", "int32", "uint32", "float32"]
NUMBER_TYPES: tuple[NumberType, ...] = ("int16", "uint16", "int32", "uint32", "float32")
WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]

_LIMITS: dict[str, tuple[int, int]] = {
    "uint16": (0, 2**16 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint32": (0, 2**32 - 1),
    "int32": (-(2**31), 2**31 - 1),
}
_FLOAT32_MAX = 3.4028234663852886e38


def word_order(*, swap_words: bool, swap_bytes: bool) -> WordOrder:
    """ABCD (the Modbus norm), CDAB (words swapped), BADC (bytes swapped), DCBA (both)."""
    if swap_words:
        return "DCBA" if swap_bytes else "CDAB"
    return "BADC" if swap_bytes else "ABCD"


def width(type_: NumberType) -> int:
    """Registers one value of ``type_`` takes: 1 or 2."""
    return 1 if type_ in ("uint16", "int16") else 2


def _spec(type_: NumberType, order: WordOrder) -> ModbusTagSpec:
    return ModbusTagSpec(table="holding_register", address=0, type=type_, word_order=order)


def decode_range(
    words: Sequence[int], type_: NumberType, order: WordOrder
) -> list[int | float | None]:
    """One entry per register of ``words``: the value that starts there, or ``None``.

    Values start at the first register and every :func:`width` registers after it; the
    other registers of a value, and a last register without the rest of its value, get
    ``None``. Integers come back as ``int``, float32 as the exact value it holds.
    """
    size = width(type_)
    decode = codec(_spec(type_, order)).decode
    values: list[int | float | None] = [None] * len(words)
    for start in range(0, len(words) - size + 1, size):
        value = float(decode(words[start : start + size]))
        values[start] = value if type_ == "float32" else int(value)
    return values


def format_number(value: int | float | None) -> str:
    """A decoded value as text: float32 by its shortest decimal (0.403, not 0.4029999971)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return str(np.float32(value))
    return str(value)


def encode_number(text: str, type_: NumberType, order: WordOrder) -> list[int]:
    """The registers holding ``text`` read as a ``type_`` in ``order``.

    Integers may be written in decimal or with a ``0x`` prefix. Raises
    :class:`ValueOutOfRange` saying why when ``text`` is not a number of that type or does
    not fit it.
    """
    text = text.strip()
    value: float
    if type_ == "float32":
        try:
            value = float(text)
        except ValueError:
            raise ValueOutOfRange(f"{text!r} is not a number (float32, e.g. 1.25)") from None
        if abs(value) > _FLOAT32_MAX and np.isfinite(value):
            raise ValueOutOfRange(f"{text} is beyond the float32 range (±3.4e38)")
    else:
        low, high = _LIMITS[type_]
        try:
            value = int(text, 0)
        except ValueError:
            raise ValueOutOfRange(
                f"{text!r} is not a whole number ({type_} holds {low} to {high})"
            ) from None
        if not low <= value <= high:
            raise ValueOutOfRange(f"{text} does not fit {type_} ({low} to {high})")
    return codec(_spec(type_, order)).encode(value)
