"""Watch the buffer tank's level for a minute of lab time; report the lowest and highest level.

Reference solution. It subscribes to the level once and lets the server send every change;
a handler keeps the minimum, the maximum and the lab time covered (the source timestamps of
the notifications) and wakes main up when a minute of lab time has passed.

The lab hands its addresses in environment variables (SIMLAB_OPCUA_URL, SIMLAB_OPCUA_NAMESPACE).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from asyncua import Client, Node

WATCH_S = 60.0  # seconds of lab time, measured with the server's source timestamps
PUBLISHING_MS = 100  # how often the server may send the changes it collected


class LevelWatcher:
    """Subscription handler: the lowest and highest level, until WATCH_S of lab time passed."""

    def __init__(self) -> None:
        self.low, self.high = math.inf, -math.inf
        self.first: datetime | None = None
        self.done = asyncio.Event()

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        """Called by asyncua for every change of the level."""
        stamp = data.monitored_item.Value.SourceTimestamp
        self.low, self.high = min(self.low, float(val)), max(self.high, float(val))
        self.first = self.first or stamp
        if (stamp - self.first).total_seconds() >= WATCH_S:
            self.done.set()


async def main() -> None:
    async with Client(os.environ["SIMLAB_OPCUA_URL"]) as client:
        ns = await client.get_namespace_index(os.environ["SIMLAB_OPCUA_NAMESPACE"])
        watcher = LevelWatcher()
        subscription = await client.create_subscription(PUBLISHING_MS, watcher)
        await subscription.subscribe_data_change(client.get_node(f"ns={ns};s=plc1.level"))
        await watcher.done.wait()
        await subscription.delete()
    print(f"level between {watcher.low:.3f} and {watcher.high:.3f} m")
    answers = {"min": watcher.low, "max": watcher.high}
    Path(os.environ["SIMLAB_ANSWERS"]).write_text(json.dumps(answers), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
