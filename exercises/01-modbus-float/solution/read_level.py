"""Read the buffer tank's level from plc1 over Modbus TCP: a float32 in two registers.

Reference solution. It reads the two registers of the data sheet with the function code of
their table, puts the four bytes back in big-endian order (A B C D) as the word order says,
decodes the float and writes it to the answers file.

The lab hands its addresses in environment variables (SIMLAB_MODBUS_HOST, SIMLAB_MODBUS_PORT,
SIMLAB_MODBUS_UNIT) and your data sheet in the JSON file named by SIMLAB_VARIANT (table,
address, word_order: the same values as in your brief).
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusTcpClient

# Where each byte of the big-endian float (A B C D) sits in the four bytes on the wire.
BYTE_POSITIONS = {
    "ABCD": (0, 1, 2, 3),  # registers AB CD: the Modbus norm (big-endian)
    "CDAB": (2, 3, 0, 1),  # registers CD AB: the words are swapped
    "BADC": (1, 0, 3, 2),  # registers BA DC: the bytes of each word are swapped
    "DCBA": (3, 2, 1, 0),  # registers DC BA: little-endian, everything reversed
}


def load_variant() -> dict[str, Any]:
    """Your data sheet (table, address, word_order), from the file the lab gives."""
    path = os.environ.get("SIMLAB_VARIANT")
    if not path:
        raise SystemExit("SIMLAB_VARIANT is not set: run me in a simlab exercise lab")
    values: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return values


async def read_registers(
    client: AsyncModbusTcpClient, table: str, address: int, unit: int
) -> list[int]:
    """The two registers of the float: FC 4 for input registers, FC 3 for holding registers."""
    if table == "input_register":
        reply = await client.read_input_registers(address, count=2, device_id=unit)
    else:
        reply = await client.read_holding_registers(address, count=2, device_id=unit)
    if reply.isError():
        raise SystemExit(f"plc1 answered {reply}")
    return list(reply.registers)


def decode_float32(registers: list[int], word_order: str) -> float:
    """Two 16-bit registers to a float, in the data sheet's word order."""
    wire = struct.pack(">HH", registers[0], registers[1])
    ordered = bytes(wire[i] for i in BYTE_POSITIONS[word_order])
    value: float = struct.unpack(">f", ordered)[0]
    return value


async def main() -> None:
    variant = load_variant()
    table, address, word_order = variant["table"], int(variant["address"]), variant["word_order"]
    client = AsyncModbusTcpClient(
        os.environ["SIMLAB_MODBUS_HOST"], port=int(os.environ["SIMLAB_MODBUS_PORT"])
    )
    if not await client.connect():
        raise SystemExit("cannot connect to plc1")
    try:
        registers = await read_registers(
            client, table, address, int(os.environ["SIMLAB_MODBUS_UNIT"])
        )
    finally:
        client.close()
    print(f"{table} {address}..{address + 1}: raw registers {registers} ({word_order})")
    level = decode_float32(registers, word_order)
    print(f"level: {level:.3f} m")
    Path(os.environ["SIMLAB_ANSWERS"]).write_text(json.dumps({"level": level}), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
