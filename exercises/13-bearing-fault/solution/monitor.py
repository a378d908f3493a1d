"""Watch the pump motor's drive-end bearing: when does it cross 4.5 mm/s, when did wear start?

Reference solution. It subscribes to the wireless vibration sensor vib1 (UNS JSON over MQTT),
keeps every reading with its lab timestamp, and at the first reading above 4.5 mm/s writes:

- ``detected_at``: that reading's ``ts``;
- ``wear_onset``: where the wear started, extrapolated back. Vibration grows with the square
  of the wear and the wear grows linearly, so sqrt(v - baseline) is a straight line in time
  that crosses zero at the onset.
"""

from __future__ import annotations

import json
import os
import queue
import statistics
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import paho.mqtt.client as mqtt

TOPIC = "acme/riverside/pumping/station1/pumps/motor1/vibration_rms"
THRESHOLD = 4.5  # mm/s: the maintenance team's early warning, inside ISO 10816 zone C
RUNNING = 1.0  # mm/s: below this the motor is not (yet) up to speed
BASELINE_READINGS = 10
FIT_FROM = 0.3  # mm/s above the baseline: where the rise is clear of the noise
GIVE_UP_S = 900.0  # lab seconds without a detection


def iso(ts_ms: float) -> str:
    moment = datetime.fromtimestamp(ts_ms / 1000.0, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def wear_onset(readings: list[tuple[float, float]]) -> float:
    """Lab time (ms since the Unix epoch) when the wear started, from (ts_ms, mm/s) readings."""
    running = [(ts, v) for ts, v in readings if v > RUNNING]
    baseline = statistics.median(v for _, v in running[:BASELINE_READINGS])
    rising = [(ts, v) for ts, v in running if v - baseline >= FIT_FROM]
    times = np.array([ts for ts, _ in rising])
    roots = np.sqrt(np.array([v for _, v in rising]) - baseline)
    slope, intercept = np.polyfit(times - times[0], roots, 1)
    return float(times[0] - intercept / slope)


def main() -> None:
    inbox: queue.Queue[tuple[float, float]] = queue.Queue()

    def on_connect(
        client: mqtt.Client, data: object, flags: object, rc: object, pr: object
    ) -> None:
        client.subscribe(TOPIC, qos=1)

    def on_message(client: mqtt.Client, data: object, message: mqtt.MQTTMessage) -> None:
        if message.retain or message.topic != TOPIC:  # old values, or another tag's
            return
        payload = json.loads(message.payload)
        if payload.get("value") is not None and payload.get("quality", "Good") == "Good":
            inbox.put((float(payload["ts_ms"]), float(payload["value"])))

    url = urlsplit(os.environ["SIMLAB_MQTT_URL"])
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bearing-monitor")
    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(url.hostname or "127.0.0.1", url.port or 1883)
    client.loop_start()

    readings: list[tuple[float, float]] = []
    detected: tuple[float, float] | None = None
    while detected is None:
        ts_ms, value = inbox.get(timeout=60)
        readings.append((ts_ms, value))
        if value > THRESHOLD:
            detected = (ts_ms, value)
        elif ts_ms - readings[0][0] > GIVE_UP_S * 1000:
            raise SystemExit(f"no reading above {THRESHOLD} mm/s in {GIVE_UP_S:g} s")
    client.disconnect()
    client.loop_stop()

    onset = wear_onset(readings)
    answers = {"detected_at": iso(detected[0]), "wear_onset": iso(onset)}
    print(f"{detected[1]:.2f} mm/s at {answers['detected_at']}; wear since {answers['wear_onset']}")
    Path(os.environ["SIMLAB_ANSWERS"]).write_text(json.dumps(answers), encoding="utf-8")


if __name__ == "__main__":
    main()
