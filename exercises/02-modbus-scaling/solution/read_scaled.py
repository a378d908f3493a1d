"""Read two scaled registers of plc1 and turn them into engineering values.

Reference solution. The temperature TT-101 is a signed int16 and the pump speed command an
unsigned uint16, each stored as raw = value x gain; the program reads both raw registers,
divides by the gains of the data sheet and writes the engineering values to the answers file.

The lab hands its addresses in environment variables (SIMLAB_MODBUS_HOST, SIMLAB_MODBUS_PORT,
SIMLAB_MODBUS_UNIT) and your data sheet in the JSON file named by SIMLAB_VARIANT
(temperature_address, temperature_gain, speed_address, speed_gain).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusTcpClient


def load_variant() -> dict[str, Any]:
    """Your data sheet (addresses and gains), from the file the lab gives."""
    path = os.environ.get("SIMLAB_VARIANT")
    if not path:
        raise SystemExit("SIMLAB_VARIANT is not set: run me in a simlab exercise lab")
    values: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return values


async def read_raw(client: AsyncModbusTcpClient, address: int, unit: int) -> int:
    """One input register (FC 4), as the 0..65535 integer it travels as."""
    reply = await client.read_input_registers(address, count=1, device_id=unit)
    if reply.isError():
        raise SystemExit(f"plc1 answered {reply} for input register {address}")
    raw: int = reply.registers[0]
    return raw


def to_engineering(raw: int, gain: float, *, signed: bool) -> float:
    """The value a register stands for: raw / gain, raw read as two's complement if signed."""
    if signed and raw >= 0x8000:
        raw -= 0x10000
    return raw / gain


async def main() -> None:
    sheet = load_variant()
    unit = int(os.environ["SIMLAB_MODBUS_UNIT"])
    client = AsyncModbusTcpClient(
        os.environ["SIMLAB_MODBUS_HOST"], port=int(os.environ["SIMLAB_MODBUS_PORT"])
    )
    if not await client.connect():
        raise SystemExit("cannot connect to plc1")
    try:
        raw_temperature = await read_raw(client, int(sheet["temperature_address"]), unit)
        raw_speed = await read_raw(client, int(sheet["speed_address"]), unit)
    finally:
        client.close()
    print(f"raw registers: temperature {raw_temperature}, pump speed {raw_speed}")
    answers = {
        "temperature": to_engineering(
            raw_temperature, float(sheet["temperature_gain"]), signed=True
        ),
        "pump_speed": to_engineering(raw_speed, float(sheet["speed_gain"]), signed=False),
    }
    print(f"temperature: {answers['temperature']:.2f} degC, pump speed: {answers['pump_speed']} %")
    Path(os.environ["SIMLAB_ANSWERS"]).write_text(json.dumps(answers), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
