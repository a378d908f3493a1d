"""An OPC UA to Sparkplug B edge node for the bottling line.

Your edge node reads five tags of line_plc over OPC UA twice a second and publishes them as
the Sparkplug B device ``line_plc`` of edge node ``<group_id>/<edge_node_id>`` (your values
are in the brief, and in the JSON file named by SIMLAB_VARIANT).

As shipped it connects to both sides, prints what it reads and stops at the first TODO: it
is not a Sparkplug edge node yet. Fill in the TODOs of the EdgeNode class and of main().
spb.py encodes the payloads for you (metric(...), payload(...), decode(...)); the session
rules are yours.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from asyncua import Client
from spb import DataType, metric, now_ms, payload  # noqa: F401 (metric, payload: for your TODOs)

DEVICE = "line_plc"
POLL_S = 0.5
# metric name (= OPC UA tag name) -> (alias, Sparkplug datatype)
METRICS: dict[str, tuple[int, DataType]] = {
    "state": (1, DataType.Int32),
    "bottles_in": (2, DataType.Int64),
    "bottles_good": (3, DataType.Int64),
    "bottles_rejected": (4, DataType.Int64),
    "fill_volume": (5, DataType.Double),
}
Reading = tuple[Any, int]  # (value, source timestamp in ms)


def load_variant() -> dict[str, Any]:
    path = os.environ.get("SIMLAB_VARIANT")
    if not path:
        raise SystemExit("SIMLAB_VARIANT is not set: run me in a simlab exercise lab")
    values: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return values


def ms(stamp: datetime | None) -> int:
    """A SourceTimestamp (asyncua gives naive UTC datetimes) in ms since the Unix epoch."""
    if stamp is None:
        return now_ms()
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return round(stamp.timestamp() * 1000)


class EdgeNode:
    """The Sparkplug session of one edge node with one device: topics, seq, bdSeq, births."""

    def __init__(self, group_id: str, edge_node_id: str) -> None:
        self.group_id = group_id
        self.edge_node_id = edge_node_id
        self.bd_seq = 0
        self.seq = 0
        self.sent: dict[str, Reading] = {}

    def topic(self, kind: str, device: str | None = None) -> str:
        """spBv1.0/<group_id>/<kind>/<edge_node_id>[/<device>]."""
        topic = f"spBv1.0/{self.group_id}/{kind}/{self.edge_node_id}"
        return f"{topic}/{device}" if device else topic

    def death(self) -> bytes:
        """The NDEATH payload (the Will, and the goodbye)."""
        # TODO: only the bdSeq metric, and no seq.
        raise NotImplementedError("death")

    def births(self, readings: dict[str, Reading]) -> list[tuple[str, bytes]]:
        """[(topic, payload)] of the NBIRTH and the DBIRTH, with every current value."""
        # TODO: NBIRTH (seq 0, bdSeq, "Node Control/Rebirth" = False), then DBIRTH (seq 1,
        # every metric of METRICS with name, alias, datatype, value and source timestamp).
        raise NotImplementedError("births")

    def data(self, readings: dict[str, Reading]) -> tuple[str, bytes] | None:
        """(topic, payload) of a DDATA with the metrics that changed, or None."""
        # TODO: by alias, the next seq, datatypes off the wire (payload(..., datatypes=False)).
        raise NotImplementedError("data")


async def read_all(client: Client, nodes: dict[str, Any]) -> dict[str, Reading]:
    """Every tag's value and SourceTimestamp, in one Read request."""
    results = await client.read_attributes(list(nodes.values()))
    readings: dict[str, Reading] = {}
    for name, data in zip(nodes, results, strict=True):
        value = data.Value.Value if data.StatusCode.is_good() else None
        readings[name] = (value, ms(data.SourceTimestamp))
    return readings


async def main() -> None:
    variant = load_variant()
    edge = EdgeNode(variant["group_id"], variant["edge_node_id"])
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async with Client(os.environ["SIMLAB_OPCUA_URL"]) as opcua:
        ns = await opcua.get_namespace_index(os.environ["SIMLAB_OPCUA_NAMESPACE"])
        nodes = {name: opcua.get_node(f"ns={ns};s={DEVICE}.{name}") for name in METRICS}

        url = urlsplit(os.environ["SIMLAB_MQTT_URL"])
        bus = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"{edge.group_id}-{edge.edge_node_id}"
        )
        # TODO: the Will (bus.will_set) must be set before connecting.
        bus.connect(url.hostname or "127.0.0.1", url.port or 1883)
        bus.loop_start()
        readings = await read_all(opcua, nodes)
        print({name: value for name, (value, _) in readings.items()}, flush=True)
        births = edge.births(readings)
        # TODO: publish the births once connected (wait for the CONNACK: on_connect).
        print(f"{len(births)} births ready")

        while not stop.is_set():
            readings = await read_all(opcua, nodes)
            print({name: value for name, (value, _) in readings.items()}, flush=True)
            # TODO: publish a DDATA when something changed.
            with contextlib.suppress(TimeoutError):  # wait one poll period, or until stopped
                await asyncio.wait_for(stop.wait(), POLL_S)

        # TODO: say goodbye with an NDEATH before disconnecting.
        bus.disconnect()
        bus.loop_stop()


if __name__ == "__main__":
    asyncio.run(main())
