"""A Modbus TCP to MQTT gateway: the buffer tank's level, published into the UNS.

Reference solution. It polls plc1's level (a float32 in two input registers) twice a second,
decodes it with the word order of the register map and publishes it as a UNS JSON message,
retained, until it is stopped (Ctrl-C or SIGTERM; or after GATEWAY_RUN_S seconds if that
environment variable is set, for unattended test runs).

The lab hands its addresses in environment variables (SIMLAB_MODBUS_HOST, SIMLAB_MODBUS_PORT,
SIMLAB_MODBUS_UNIT, SIMLAB_MQTT_URL) and your exercise's values in the JSON file named by
SIMLAB_VARIANT (address, word_order, topic: the same values as in your brief).
"""

from __future__ import annotations

import json
import math
import os
import signal
import struct
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from pymodbus.client import ModbusTcpClient

POLL_S = 0.5
SOURCE = "gateway:apprentice"

# Where each byte of the big-endian float (A B C D) sits in the four bytes on the wire.
BYTE_POSITIONS = {
    "ABCD": (0, 1, 2, 3),  # registers AB CD: the Modbus norm (big-endian)
    "CDAB": (2, 3, 0, 1),  # registers CD AB: the words are swapped
    "BADC": (1, 0, 3, 2),  # registers BA DC: the bytes of each word are swapped
    "DCBA": (3, 2, 1, 0),  # registers DC BA: little-endian, everything reversed
}


def load_variant() -> dict[str, Any]:
    """This exercise's values (address, word_order, topic), from the file the lab gives."""
    path = os.environ.get("SIMLAB_VARIANT")
    if not path:
        raise SystemExit("SIMLAB_VARIANT is not set: run me in a simlab exercise lab")
    values: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return values


def decode_float32(registers: list[int], word_order: str) -> float:
    """Two 16-bit registers to a float, in the register map's word order."""
    wire = struct.pack(">HH", registers[0], registers[1])
    ordered = bytes(wire[i] for i in BYTE_POSITIONS[word_order])
    value: float = struct.unpack(">f", ordered)[0]
    return value


def uns_payload(value: float | None, quality: str = "Good") -> str:
    """The UNS JSON message of one reading, time-stamped now."""
    ts_ms = time.time_ns() // 1_000_000
    moment = datetime.fromtimestamp(ts_ms // 1000, UTC)
    ts = f"{moment:%Y-%m-%dT%H:%M:%S}.{ts_ms % 1000:03d}Z"
    document = {
        "value": value,
        "unit": "m",
        "ts": ts,
        "ts_ms": ts_ms,
        "quality": quality,
        "source": SOURCE,
    }
    return json.dumps(document, allow_nan=False)


def connect_mqtt(url: str) -> mqtt.Client:
    parts = urlsplit(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="apprentice-gateway")
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    return client


def main() -> None:
    variant = load_variant()
    address, word_order, topic = int(variant["address"]), variant["word_order"], variant["topic"]
    unit = int(os.environ.get("SIMLAB_MODBUS_UNIT", "1"))
    modbus = ModbusTcpClient(
        os.environ.get("SIMLAB_MODBUS_HOST", "127.0.0.1"),
        port=int(os.environ.get("SIMLAB_MODBUS_PORT", "5020")),
        timeout=2,
    )
    modbus.connect()
    bus = connect_mqtt(os.environ.get("SIMLAB_MQTT_URL", "mqtt://127.0.0.1:1883"))

    running = True

    def stop(signum: int, frame: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Unattended test runs may ask it to stop by itself after GATEWAY_RUN_S seconds.
    deadline = time.monotonic() + float(os.environ.get("GATEWAY_RUN_S", "inf"))
    print(f"gateway: input registers {address}-{address + 1} ({word_order}) -> {topic}")
    while running and time.monotonic() < deadline:
        started = time.monotonic()
        try:
            reply = modbus.read_input_registers(address, count=2, device_id=unit)
        except Exception as err:  # connection lost: publish Bad, reconnect on the next poll
            print(f"gateway: read failed: {err}")
            bus.publish(topic, uns_payload(None, "BadCommunicationError"), qos=1, retain=True)
        else:
            if reply.isError():
                print(f"gateway: the PLC answered {reply}")
                bus.publish(topic, uns_payload(None, "BadDeviceFailure"), qos=1, retain=True)
            else:
                level = decode_float32(reply.registers, word_order)
                if math.isfinite(level):
                    bus.publish(topic, uns_payload(level), qos=1, retain=True)
        time.sleep(max(0.0, POLL_S - (time.monotonic() - started)))
    modbus.close()
    bus.disconnect()
    bus.loop_stop()


if __name__ == "__main__":
    main()
