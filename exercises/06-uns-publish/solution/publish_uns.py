"""Publish the buffer tank's level and temperature into the unified namespace (UNS).

Reference solution. Twice a second it reads both tags from plc1 over OPC UA and publishes each
on its ISA-95 topic as a UNS JSON message (value, unit, ts, ts_ms, quality, source), QoS 1,
retained; after a minute of lab time it disconnects and exits.

The lab hands its addresses in environment variables (SIMLAB_OPCUA_URL, SIMLAB_OPCUA_NAMESPACE,
SIMLAB_MQTT_URL) and your values in the JSON file named by SIMLAB_VARIANT (site, asset).
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from asyncua import Client, ua

TAGS = {"level": "m", "temperature": "degC"}  # tag -> unit
RUN_S = 60.0  # seconds of lab time to publish for (the readings' source timestamps)
PERIOD_S = 0.5  # wall seconds between two rounds of publications
SOURCE = "opcua:plc1"


def load_variant() -> dict[str, Any]:
    """Your values (site, asset), from the file the lab gives."""
    path = os.environ.get("SIMLAB_VARIANT")
    if not path:
        raise SystemExit("SIMLAB_VARIANT is not set: run me in a simlab exercise lab")
    values: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return values


def uns_topic(variant: dict[str, Any], tag: str) -> str:
    """enterprise/site/area/line/cell/asset/tag of one tag of the buffer tank."""
    return f"acme/{variant['site']}/utilities/water/buffer_tank/{variant['asset']}/{tag}"


def uns_payload(reading: ua.DataValue, unit: str) -> str:
    """The UNS JSON message of one OPC UA reading, stamped with its source timestamp."""
    stamp: datetime = reading.SourceTimestamp
    if stamp.tzinfo is None:  # OPC UA times are UTC
        stamp = stamp.replace(tzinfo=UTC)
    ts_ms = int(stamp.timestamp() * 1000)
    return json.dumps(
        {
            "value": float(reading.Value.Value),
            "unit": unit,
            "ts": f"{stamp:%Y-%m-%dT%H:%M:%S}.{ts_ms % 1000:03d}Z",
            "ts_ms": ts_ms,
            "quality": reading.StatusCode.name,
            "source": SOURCE,
        }
    )


def connect_mqtt(url: str) -> mqtt.Client:
    parts = urlsplit(url)
    bus = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="apprentice-uns")
    bus.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    bus.loop_start()
    return bus


async def main() -> None:
    variant = load_variant()
    bus = connect_mqtt(os.environ["SIMLAB_MQTT_URL"])
    try:
        async with Client(os.environ["SIMLAB_OPCUA_URL"]) as client:
            ns = await client.get_namespace_index(os.environ["SIMLAB_OPCUA_NAMESPACE"])
            nodes = {tag: client.get_node(f"ns={ns};s=plc1.{tag}") for tag in TAGS}
            first: datetime | None = None
            while True:
                for tag, node in nodes.items():
                    reading = await node.read_data_value()
                    message = bus.publish(
                        uns_topic(variant, tag), uns_payload(reading, TAGS[tag]), qos=1, retain=True
                    )
                first = first or reading.SourceTimestamp
                if (reading.SourceTimestamp - first).total_seconds() >= RUN_S:
                    break
                await asyncio.sleep(PERIOD_S)
        message.wait_for_publish(timeout=5)  # the last message is acknowledged
    finally:
        bus.disconnect()
        bus.loop_stop()
    print(f"published {', '.join(TAGS)} under {uns_topic(variant, '')}")


if __name__ == "__main__":
    asyncio.run(main())
