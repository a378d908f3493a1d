"""An OPC UA to Sparkplug B edge node for the bottling line.

Reference solution. It reads five tags of line_plc over OPC UA twice a second and publishes
them as the Sparkplug B device ``line_plc`` of edge node ``<group_id>/<edge_node_id>``:

- before connecting, the Will: an NDEATH carrying this connection's bdSeq;
- once connected: NBIRTH (seq 0, bdSeq, Node Control/Rebirth), then DBIRTH (seq 1, every
  metric with name, alias, datatype, value);
- then DDATA with the metrics that changed, by alias, seq + 1 each time (255 wraps to 0);
- an NCMD "Node Control/Rebirth" = true: the births again (seq back to 0, same bdSeq);
- on SIGTERM/Ctrl-C (or after GATEWAY_RUN_S seconds when that environment variable is set,
  for unattended test runs): an NDEATH with the same bdSeq, then a clean disconnect.

Metrics are time-stamped with the OPC UA SourceTimestamp: when the PLC measured the value,
on the lab's clock (not when this program happened to read it).
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
from spb import DataType, decode, metric, now_ms, payload

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
        topic = f"spBv1.0/{self.group_id}/{kind}/{self.edge_node_id}"
        return f"{topic}/{device}" if device else topic

    def next_seq(self) -> int:
        seq, self.seq = self.seq, (self.seq + 1) % 256
        return seq

    def death(self) -> bytes:
        """NDEATH: only the bdSeq metric, no seq (the Will, and the goodbye)."""
        return payload([metric("bdSeq", self.bd_seq, DataType.Int64)], seq=None)

    def births(self, readings: dict[str, Reading]) -> list[tuple[str, bytes]]:
        """NBIRTH then DBIRTH, with every metric's current value."""
        stamp = max(ts for _, ts in readings.values())
        self.seq = 0
        node = payload(
            [
                metric("bdSeq", self.bd_seq, DataType.Int64),
                metric("Node Control/Rebirth", False, DataType.Boolean),
            ],
            seq=self.next_seq(),
            timestamp_ms=stamp,
        )
        device = payload(
            [
                metric(name, value, datatype, alias=alias, timestamp_ms=stamp)
                for name, (alias, datatype) in METRICS.items()
                for value, stamp in [readings[name]]
            ],
            seq=self.next_seq(),
            timestamp_ms=stamp,
        )
        self.sent = dict(readings)
        return [(self.topic("NBIRTH"), node), (self.topic("DBIRTH", DEVICE), device)]

    def data(self, readings: dict[str, Reading]) -> tuple[str, bytes] | None:
        """DDATA with the metrics whose value changed since they were last sent, or None."""
        changed = [n for n, (value, _) in readings.items() if self.sent[n][0] != value]
        if not changed:
            return None
        metrics = []
        for name in changed:
            alias, datatype = METRICS[name]
            value, stamp = readings[name]
            metrics.append(metric(value=value, datatype=datatype, alias=alias, timestamp_ms=stamp))
            self.sent[name] = readings[name]
        stamp = max(readings[n][1] for n in changed)
        body = payload(metrics, seq=self.next_seq(), timestamp_ms=stamp, datatypes=False)
        return self.topic("DDATA", DEVICE), body


async def read_all(client: Client, nodes: dict[str, Any]) -> dict[str, Reading]:
    """Every tag's value and SourceTimestamp, in one Read request."""
    results = await client.read_attributes(list(nodes.values()))
    readings: dict[str, Reading] = {}
    for name, data in zip(nodes, results, strict=True):
        value = data.Value.Value if data.StatusCode.is_good() else None
        if value is not None and METRICS[name][1] is DataType.Double:
            value = float(value)
        elif value is not None:
            value = int(value)
        readings[name] = (value, ms(data.SourceTimestamp))
    return readings


async def main() -> None:
    variant = load_variant()
    edge = EdgeNode(variant["group_id"], variant["edge_node_id"])
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    rebirth = asyncio.Event()
    connected = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if "GATEWAY_RUN_S" in os.environ:  # unattended test runs: stop by itself after that long
        loop.call_later(float(os.environ["GATEWAY_RUN_S"]), stop.set)

    async with Client(os.environ["SIMLAB_OPCUA_URL"]) as opcua:
        ns = await opcua.get_namespace_index(os.environ["SIMLAB_OPCUA_NAMESPACE"])
        nodes = {name: opcua.get_node(f"ns={ns};s={DEVICE}.{name}") for name in METRICS}
        readings = await read_all(opcua, nodes)

        def on_connect(client: mqtt.Client, data: object, flags: Any, rc: Any, pr: Any) -> None:
            client.subscribe(edge.topic("NCMD"), qos=1)
            loop.call_soon_threadsafe(connected.set)

        def on_message(client: mqtt.Client, data: object, message: mqtt.MQTTMessage) -> None:
            if message.topic != edge.topic("NCMD"):
                return  # the lab's broker may also hand out other topics' retained messages
            try:
                command = decode(message.payload).metric("Node Control/Rebirth")
            except ValueError as err:  # a malformed command must not kill the MQTT thread
                print(f"edge node: ignoring a bad NCMD: {err}")
                return
            if command is not None and command.value is True:
                loop.call_soon_threadsafe(rebirth.set)

        url = urlsplit(os.environ["SIMLAB_MQTT_URL"])
        bus = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"{edge.group_id}-{edge.edge_node_id}"
        )
        bus.on_connect = on_connect
        bus.on_message = on_message
        # The Will first: if this program dies, the broker announces it with this bdSeq.
        bus.will_set(edge.topic("NDEATH"), edge.death(), qos=1, retain=False)
        bus.connect(url.hostname or "127.0.0.1", url.port or 1883)
        bus.loop_start()
        await asyncio.wait_for(connected.wait(), 10)
        for topic, body in edge.births(readings):
            bus.publish(topic, body, qos=0)
        print(f"edge node {edge.group_id}/{edge.edge_node_id} born (bdSeq {edge.bd_seq})")

        while not stop.is_set():
            readings = await read_all(opcua, nodes)
            if rebirth.is_set():
                rebirth.clear()
                for topic, body in edge.births(readings):
                    bus.publish(topic, body, qos=0)
            else:
                message = edge.data(readings)
                if message is not None:
                    bus.publish(*message, qos=0)
            with contextlib.suppress(TimeoutError):  # wait one poll period, or until stopped
                await asyncio.wait_for(stop.wait(), POLL_S)

        goodbye = bus.publish(edge.topic("NDEATH"), edge.death(), qos=1)
        goodbye.wait_for_publish(timeout=1.0)
        bus.disconnect()
        bus.loop_stop()


if __name__ == "__main__":
    asyncio.run(main())
