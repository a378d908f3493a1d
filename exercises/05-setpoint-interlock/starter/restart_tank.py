"""Put the buffer tank back in service: reset the latched HH trip, then raise the setpoint.

The lab hands its addresses in environment variables (SIMLAB_OPCUA_URL, SIMLAB_OPCUA_NAMESPACE)
and your values in the JSON file named by SIMLAB_VARIANT (sp_digit: your setpoint is
1.<sp_digit>5 m).

As shipped it connects, prints what plc1 says about the tank, and stops at the first TODO.
Safety first: never write pump_run, auto or valve_cmd. The controller runs the pump.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from asyncua import Client, Node

HH_LIMIT = 1.85  # m: the high-high interlock trips above this level


def load_variant() -> dict[str, Any]:
    path = os.environ.get("SIMLAB_VARIANT")
    if not path:
        raise SystemExit("SIMLAB_VARIANT is not set: run me in a simlab exercise lab")
    values: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return values


async def show(client: Client, ns: int) -> None:
    """Print the tags that tell what state the tank is in."""
    for tag in ("level", "level_sp", "level_hh", "pump_run", "pump_speed", "auto"):
        value = await client.get_node(f"ns={ns};s=plc1.{tag}").read_value()
        print(f"  {tag:<10} {value}")


async def reset_trip(plc: Node, level: Node, level_hh: Node, ns: int) -> None:
    """Wait for the latched HH trip, check its cause is gone, and acknowledge it."""
    # TODO 1: the trip comes early in the run: wait until level_hh is set. Make sure the level
    # is really below HH_LIMIT (never reset a trip whose cause is still there), call the
    # AcknowledgeFault method of plc1, and check that level_hh is clear a moment later.
    raise NotImplementedError("reset_trip")


async def write_setpoint(level_sp: Node, setpoint: float) -> None:
    """Write the new setpoint, with the DataType of level_sp (Double)."""
    # TODO 2: write setpoint to level_sp. Its DataType is Double: say so in the Variant you
    # send rather than let asyncua guess the type (a wrong guess is BadTypeMismatch).
    raise NotImplementedError("write_setpoint")


async def wait_until_settled(client: Client, level: Node, setpoint: float) -> None:
    """Return once the level held the setpoint ± a few cm for 30 s of lab time."""
    # TODO 3: watch the level (a subscription, as in the previous exercise) and return once
    # it has stayed within a few cm of the setpoint for 30 s of lab time (SourceTimestamp).
    # The lab stops when your program does: leaving early leaves nothing to grade.
    raise NotImplementedError("wait_until_settled")


async def main() -> None:
    setpoint = float(f"1.{load_variant()['sp_digit']}5")
    async with Client(os.environ["SIMLAB_OPCUA_URL"]) as client:
        ns = await client.get_namespace_index(os.environ["SIMLAB_OPCUA_NAMESPACE"])
        plc = client.get_node(f"ns={ns};s=plc1")
        level = client.get_node(f"ns={ns};s=plc1.level")
        print("plc1 now:")
        await show(client, ns)
        await reset_trip(plc, level, client.get_node(f"ns={ns};s=plc1.level_hh"), ns)
        await write_setpoint(client.get_node(f"ns={ns};s=plc1.level_sp"), setpoint)
        await wait_until_settled(client, level, setpoint)


if __name__ == "__main__":
    asyncio.run(main())
