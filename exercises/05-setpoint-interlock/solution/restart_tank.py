"""Put the buffer tank back in service: reset the latched HH trip, then raise the setpoint.

Reference solution. It confirms the trip (level_hh set) and that the level is really below
the high-high limit, resets the trip with plc1's AcknowledgeFault method, writes the new
setpoint as a Double, then watches the level through a subscription until it has stayed
within 4 cm of the setpoint for 30 s of lab time. It never writes the pump, the controller
mode or the valve: the controller brings the level up by itself.

The lab hands its addresses in environment variables (SIMLAB_OPCUA_URL, SIMLAB_OPCUA_NAMESPACE)
and your values in the JSON file named by SIMLAB_VARIANT (sp_digit: your setpoint is
1.<sp_digit>5 m).
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from asyncua import Client, Node, ua

HH_LIMIT = 1.85  # m: the high-high interlock trips above this level
BAND = 0.04  # m: settled means within this distance of the setpoint...
HOLD_S = 30.0  # ...for this many seconds of lab time
PUBLISHING_MS = 100


def load_variant() -> dict[str, Any]:
    path = os.environ.get("SIMLAB_VARIANT")
    if not path:
        raise SystemExit("SIMLAB_VARIANT is not set: run me in a simlab exercise lab")
    values: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return values


class SettleWatcher:
    """Subscription handler: done once the level stayed in the band for HOLD_S of lab time."""

    def __init__(self, setpoint: float) -> None:
        self.setpoint = setpoint
        self.since: datetime | None = None  # when the level last entered the band
        self.done = asyncio.Event()

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        stamp = data.monitored_item.Value.SourceTimestamp
        if abs(float(val) - self.setpoint) > BAND:
            self.since = None
            return
        self.since = self.since or stamp
        if (stamp - self.since).total_seconds() >= HOLD_S:
            self.done.set()


async def reset_trip(plc: Node, level: Node, level_hh: Node, ns: int) -> None:
    """Wait for the latched HH trip, check its cause is gone, and acknowledge it."""
    while not await level_hh.read_value():
        await asyncio.sleep(0.1)
    reading = await level.read_value()
    if reading >= HH_LIMIT:
        raise SystemExit(f"the level really is high ({reading:.3f} m): do not reset the trip")
    await plc.call_method(f"{ns}:AcknowledgeFault")  # the browse name of the method
    await asyncio.sleep(0.2)  # a few PLC scans
    if await level_hh.read_value():
        raise SystemExit("the HH trip is still active after AcknowledgeFault")
    print(f"HH trip reset (level {reading:.3f} m)")


async def write_setpoint(level_sp: Node, setpoint: float) -> None:
    """Write the new setpoint, with the DataType of level_sp (Double)."""
    await level_sp.write_value(ua.DataValue(ua.Variant(setpoint, ua.VariantType.Double)))
    print(f"level_sp = {setpoint} m; waiting for the level to settle")


async def wait_until_settled(client: Client, level: Node, setpoint: float) -> None:
    """Return once the level held the setpoint ± BAND for HOLD_S seconds of lab time."""
    watcher = SettleWatcher(setpoint)
    subscription = await client.create_subscription(PUBLISHING_MS, watcher)
    await subscription.subscribe_data_change(level)
    await watcher.done.wait()
    await subscription.delete()
    print(f"the level held {setpoint} m ± {BAND} m for {HOLD_S:g} s")


async def main() -> None:
    setpoint = float(f"1.{load_variant()['sp_digit']}5")
    async with Client(os.environ["SIMLAB_OPCUA_URL"]) as client:
        ns = await client.get_namespace_index(os.environ["SIMLAB_OPCUA_NAMESPACE"])
        plc = client.get_node(f"ns={ns};s=plc1")
        level = client.get_node(f"ns={ns};s=plc1.level")
        await reset_trip(plc, level, client.get_node(f"ns={ns};s=plc1.level_hh"), ns)
        await write_setpoint(client.get_node(f"ns={ns};s=plc1.level_sp"), setpoint)
        await wait_until_settled(client, level, setpoint)


if __name__ == "__main__":
    asyncio.run(main())
