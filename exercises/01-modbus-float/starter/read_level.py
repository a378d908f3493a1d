"""Read the buffer tank's level from plc1 over Modbus TCP: a float32 in two registers.

The lab hands its addresses in environment variables (SIMLAB_MODBUS_HOST, SIMLAB_MODBUS_PORT,
SIMLAB_MODBUS_UNIT) and your data sheet in the JSON file named by SIMLAB_VARIANT (table,
address, word_order: the same values as in your brief).

As shipped it connects to plc1 and stops at the first TODO: fill in the two TODOs, run it
against your lab, and look at the raw registers it prints before you trust the float.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusTcpClient


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
    """The two registers of the float, read with the function code of their table."""
    # TODO 1: read the two registers at `address` from the right table (input_register or
    # holding_register: which function code reads which?), with device_id=unit. Check
    # reply.isError() before you use reply.registers.
    raise NotImplementedError("read_registers")


def decode_float32(registers: list[int], word_order: str) -> float:
    """Two 16-bit registers to a float, in the data sheet's word order."""
    # TODO 2: rebuild the four bytes A B C D of the big-endian float from the two registers,
    # as word_order (ABCD, CDAB, BADC or DCBA) says they are arranged, and unpack them with
    # the module struct.
    raise NotImplementedError("decode_float32")


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
