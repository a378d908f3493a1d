"""A Modbus TCP to MQTT gateway: the buffer tank's level, published into the UNS.

Your gateway polls plc1's level (a float32 in two input registers), decodes it and publishes
it on your UNS topic as a JSON message, until it is stopped (Ctrl-C or SIGTERM).

The lab hands its addresses in environment variables (SIMLAB_MODBUS_HOST, SIMLAB_MODBUS_PORT,
SIMLAB_MODBUS_UNIT, SIMLAB_MQTT_URL) and your exercise's values in the JSON file named by
SIMLAB_VARIANT (address, word_order, topic: the same values as in your brief).

As shipped it connects to both sides and prints the raw registers, then stops at the first
TODO: fill in the three TODOs.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from pymodbus.client import ModbusTcpClient

POLL_S = 0.5
SOURCE = "gateway:apprentice"


def load_variant() -> dict[str, Any]:
    """This exercise's values (address, word_order, topic), from the file the lab gives."""
    path = os.environ.get("SIMLAB_VARIANT")
    if not path:
        raise SystemExit("SIMLAB_VARIANT is not set: run me in a simlab exercise lab")
    values: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return values


def decode_float32(registers: list[int], word_order: str) -> float:
    """Two 16-bit registers to a float, in the register map's word order."""
    # TODO 1: rebuild the four bytes of the float from the two registers, in the right order
    # for word_order (ABCD, CDAB, BADC or DCBA), and unpack them (module struct).
    raise NotImplementedError("decode_float32")


def uns_payload(value: float) -> str:
    """The UNS JSON message of one reading, time-stamped now."""
    # TODO 2: the UNS contract wants {"value", "unit", "ts", "ts_ms", "quality", "source"}.
    raise NotImplementedError("uns_payload")


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
    print(f"gateway: input registers {address}-{address + 1} ({word_order}) -> {topic}")
    while running:
        reply = modbus.read_input_registers(address, count=2, device_id=unit)
        if reply.isError():
            print(f"gateway: the PLC answered {reply}")
        else:
            print(f"gateway: raw registers {reply.registers}", flush=True)
            level = decode_float32(reply.registers, word_order)
            # TODO 3: publish uns_payload(level) on your topic (QoS 1, retained, so that a new
            # subscriber gets the last value at once).
            print(f"gateway: level {level} m")
        time.sleep(POLL_S)
    modbus.close()
    bus.disconnect()
    bus.loop_stop()


if __name__ == "__main__":
    main()
