"""Watch the buffer tank's level for a minute of lab time; report the lowest and highest level.

The lab hands its addresses in environment variables (SIMLAB_OPCUA_URL, SIMLAB_OPCUA_NAMESPACE).

As shipped it works the way a first script works: it asks plc1 for the level again and again
(polling). Polling loads the network and the server with questions whose answer has not
changed, and it misses whatever happens between two reads. Replace it with a subscription:
see the TODO.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from pathlib import Path

from asyncua import Client, Node

WATCH_S = 60.0  # seconds of lab time, measured with the server's source timestamps


async def watch(node: Node) -> tuple[float, float]:
    """The lowest and highest level over WATCH_S seconds of lab time."""
    # TODO: replace this polling loop by a subscription to the node: a handler object whose
    # datachange_notification(node, val, data) keeps the minimum and the maximum, and tells
    # main when WATCH_S seconds of lab time have passed (data.monitored_item.Value has the
    # SourceTimestamp). No read of the level at all.
    low, high = math.inf, -math.inf
    first = None
    while True:
        reading = await node.read_data_value()
        value, stamp = float(reading.Value.Value), reading.SourceTimestamp
        low, high = min(low, value), max(high, value)
        first = first or stamp
        if (stamp - first).total_seconds() >= WATCH_S:
            return low, high
        await asyncio.sleep(0.2)


async def main() -> None:
    async with Client(os.environ["SIMLAB_OPCUA_URL"]) as client:
        ns = await client.get_namespace_index(os.environ["SIMLAB_OPCUA_NAMESPACE"])
        low, high = await watch(client.get_node(f"ns={ns};s=plc1.level"))
    print(f"level between {low:.3f} and {high:.3f} m")
    answers = {"min": low, "max": high}
    Path(os.environ["SIMLAB_ANSWERS"]).write_text(json.dumps(answers), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
