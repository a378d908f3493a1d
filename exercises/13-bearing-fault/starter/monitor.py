"""Watch the pump motor's drive-end bearing: when does it cross 4.5 mm/s, when did wear start?

Your monitor subscribes to the wireless vibration sensor vib1 (UNS JSON over MQTT) and, at
the first reading above 4.5 mm/s, writes two answers to the file named by SIMLAB_ANSWERS:
``detected_at`` (that reading's ts) and ``wear_onset`` (your estimate of when the bearing
started to wear), then exits.

As shipped it prints the first ten readings and stops at the TODO.
"""

from __future__ import annotations

import json
import os
import queue
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

TOPIC = "acme/riverside/pumping/station1/pumps/motor1/vibration_rms"
THRESHOLD = 4.5  # mm/s


def main() -> None:
    inbox: queue.Queue[tuple[str, bool, dict[str, object]]] = queue.Queue()

    def on_connect(
        client: mqtt.Client, data: object, flags: object, rc: object, pr: object
    ) -> None:
        client.subscribe(TOPIC, qos=1)

    def on_message(client: mqtt.Client, data: object, message: mqtt.MQTTMessage) -> None:
        # Runs on paho's thread: hand the message over. Look at topic and retain flag: right
        # after you subscribe, the broker replays retained (old) values, of other tags too.
        inbox.put((message.topic, message.retain, json.loads(message.payload)))

    url = urlsplit(os.environ["SIMLAB_MQTT_URL"])
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bearing-monitor")
    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(url.hostname or "127.0.0.1", url.port or 1883)
    client.loop_start()

    for _ in range(10):
        print(inbox.get(timeout=60))
    # TODO 1: keep every reading (its ts and value) until the first one above THRESHOLD.
    # TODO 2: estimate when the wear started from the readings you kept.
    # TODO 3: write {"detected_at": ..., "wear_onset": ...} as JSON to SIMLAB_ANSWERS, exit.
    raise NotImplementedError("detect the bearing fault")


if __name__ == "__main__":
    main()
