"""Word and byte orders of a poller's decoding, against hand-made register patterns."""

from __future__ import annotations

import struct

import pytest

from devices.wordorder import decode_range, encode_number, format_number, width, word_order
from simlab.errors import ValueOutOfRange

# 1.5 as a big-endian float32 is 3F C0 00 00: bytes A=3F B=C0 C=00 D=00
ONE_AND_A_HALF = {
    "ABCD": [0x3FC0, 0x0000],
    "CDAB": [0x0000, 0x3FC0],
    "BADC": [0xC03F, 0x0000],
    "DCBA": [0x0000, 0xC03F],
}


def test_the_two_switches_name_the_four_orders() -> None:
    assert word_order(swap_words=False, swap_bytes=False) == "ABCD"
    assert word_order(swap_words=True, swap_bytes=False) == "CDAB"
    assert word_order(swap_words=False, swap_bytes=True) == "BADC"
    assert word_order(swap_words=True, swap_bytes=True) == "DCBA"


@pytest.mark.parametrize("order", ["ABCD", "CDAB", "BADC", "DCBA"])
def test_float32_in_each_order(order: str) -> None:
    registers = ONE_AND_A_HALF[order]
    assert decode_range(registers, "float32", order) == [1.5, None]  # type: ignore[arg-type]
    assert encode_number("1.5", "float32", order) == registers  # type: ignore[arg-type]


def test_a_range_decodes_at_every_width_from_the_first_register() -> None:
    words = [*ONE_AND_A_HALF["ABCD"], 0xFFFF, 0xFFFE, 7]
    assert decode_range(words, "float32", "ABCD")[:2] == [1.5, None]
    assert decode_range(words, "int32", "ABCD") == [0x3FC00000, None, -2, None, None]
    assert decode_range(words, "uint32", "CDAB")[2] == 0xFFFEFFFF
    assert decode_range(words, "int16", "ABCD") == [0x3FC0, 0, -1, -2, 7]
    assert decode_range(words, "uint16", "BADC")[0] == 0xC03F
    assert (width("uint16"), width("float32")) == (1, 2)


def test_the_wrong_order_gives_another_number() -> None:
    words = list(struct.unpack(">HH", struct.pack(">f", 1.234)))
    right = decode_range(words, "float32", "ABCD")[0]
    wrong = decode_range(words, "float32", "CDAB")[0]
    assert format_number(right) == "1.234" and wrong != pytest.approx(1.234)


def test_numbers_show_as_an_apprentice_expects() -> None:
    assert format_number(0.4029999971389770) == "0.403"
    assert format_number(-3) == "-3"
    assert format_number(None) == ""


def test_encoding_takes_hex_and_refuses_in_plain_words() -> None:
    assert encode_number("0x10", "uint16", "ABCD") == [16]
    assert encode_number("-1", "int16", "ABCD") == [0xFFFF]
    assert encode_number("70000", "uint32", "CDAB") == [70000 & 0xFFFF, 70000 >> 16]
    with pytest.raises(ValueOutOfRange, match=r"70000 does not fit uint16 \(0 to 65535\)"):
        encode_number("70000", "uint16", "ABCD")
    with pytest.raises(ValueOutOfRange, match="'1.5' is not a whole number"):
        encode_number("1.5", "int16", "ABCD")
    with pytest.raises(ValueOutOfRange, match="'abc' is not a number"):
        encode_number("abc", "float32", "ABCD")
    with pytest.raises(ValueOutOfRange, match="beyond the float32 range"):
        encode_number("1e39", "float32", "ABCD")
