"""MQTT throughput: simlab's MqttClient against bare paho, on Mosquitto and the embedded broker.

For each broker (the machine's Mosquitto at 127.0.0.1:1883 if it answers, and an embedded
amqtt broker), in the same run, it pushes ``--count`` messages of ``--size`` bytes from one
publisher to one subscriber and reports end-to-end messages per second (first publish to
last message received), for QoS 0 and QoS 1:

- ``bare paho``: two paho clients with ``loop_start``, the publisher calling ``publish`` in
  a tight loop (QoS 1: pipelined, 20 in flight) and the subscriber counting in ``on_message``;
- ``MqttClient``: the same through simlab's asyncio bridge; QoS 1 publishes are awaited
  in windows of ``--window`` concurrent ``publish`` calls (paho still keeps 20 in flight);
- ``MqttClient, await each``: QoS 1 only, one ``await publish`` after the other (each waits
  for its PUBACK): the latency-bound rate of naive code.

A run that stops receiving for 3 s ends and reports the messages lost (Mosquitto drops
QoS 1 messages beyond ``max_queued_messages``, 1,000 by default, when a subscriber falls
behind a pipelined publisher).

The embedded broker runs in a child process by default, so broker and clients do not share
one GIL; ``--in-process`` runs it in the benchmark's event loop instead (as a lab does).
Figures are medians of ``--rounds`` rounds; a run that loses messages says so.

Run: ``.venv/bin/python benchmarks/mqtt_throughput.py [--count 10000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from simlab.bus.broker import EmbeddedBroker, probe
from simlab.bus.client import MqttClient, parse_broker_url

MOSQUITTO = ("127.0.0.1", 1883)
IDLE_TIMEOUT = 3.0  # a run ends when no message came for this long (messages were lost)


@dataclass
class Run:
    """One measured transfer."""

    received: int
    expected: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------- bare paho


def _paho_client(host: str, port: int) -> tuple[paho.Client, threading.Event]:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:10]}")
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: connected.set()
    client.connect(host, port, keepalive=60)
    client.loop_start()
    if not connected.wait(5):
        raise RuntimeError(f"paho could not connect to {host}:{port}")
    return client, connected


def bare_paho(host: str, port: int, qos: int, count: int, payload: bytes) -> Run:
    """Publish ``count`` messages with one paho client, receive them with another."""
    topic = f"bench/{uuid.uuid4().hex}"
    done = threading.Event()
    received = 0
    last = 0.0

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        nonlocal received, last
        received += 1
        last = time.perf_counter()
        if received == count:
            done.set()

    subscriber, _ = _paho_client(host, port)
    subscribed = threading.Event()
    subscriber.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
    subscriber.on_message = on_message
    subscriber.subscribe(topic, qos)
    subscribed.wait(5)
    publisher, _ = _paho_client(host, port)
    try:
        start = time.perf_counter()
        for _ in range(count):
            info = publisher.publish(topic, payload, qos)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise RuntimeError(f"paho publish failed: {paho.error_string(info.rc)}")
        seen = -1
        while not done.wait(IDLE_TIMEOUT) and received != seen:
            seen = received  # still receiving: keep waiting
        return Run(received, count, (last or time.perf_counter()) - start)
    finally:
        for client in (publisher, subscriber):
            client.disconnect()
            client.loop_stop()


# --------------------------------------------------------------------------- MqttClient


async def through_mqttclient(url: str, qos: int, count: int, payload: bytes, window: int) -> Run:
    """The same transfer through MqttClient; ``window`` 1 awaits each publish in turn."""
    topic = f"bench/{uuid.uuid4().hex}"
    async with MqttClient(url, subscriptions={topic: qos}) as sub, MqttClient(url) as pub:
        received = 0
        last = 0.0

        async def consume() -> None:
            nonlocal received, last
            async for _ in sub.messages():
                received += 1
                last = time.perf_counter()
                if received == count:
                    return

        consumer = asyncio.create_task(consume())
        start = time.perf_counter()
        if qos == 0 or window <= 1:
            for _ in range(count):
                await pub.publish(topic, payload, qos=qos)
        else:  # a sliding window: at most `window` publishes awaiting their PUBACK
            slots = asyncio.Semaphore(window)

            async def one() -> None:
                try:
                    await pub.publish(topic, payload, qos=qos)
                finally:
                    slots.release()

            tasks = []
            for _ in range(count):
                await slots.acquire()
                tasks.append(asyncio.create_task(one()))
            await asyncio.gather(*tasks)
        seen = -1
        while not consumer.done() and received != seen:
            seen = received
            await asyncio.wait([consumer], timeout=IDLE_TIMEOUT)
        consumer.cancel()
        return Run(received, count, (last or time.perf_counter()) - start)


# --------------------------------------------------------------------------- brokers


def _serve_embedded(conn: Connection) -> None:
    """Child process: run an embedded broker until the parent says stop."""

    async def main() -> None:
        async with EmbeddedBroker() as broker:
            conn.send(broker.port)
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(main())


class ChildBroker:
    """An embedded broker in a child process (its own interpreter and GIL)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=_serve_embedded, args=(child_conn,), daemon=True)
        self._process.start()
        if not self._conn.poll(30):
            raise RuntimeError("the embedded broker process did not start")
        self.port = int(self._conn.recv())

    def stop(self) -> None:
        self._conn.send("stop")
        self._process.join(10)


# --------------------------------------------------------------------------- main


def median_run(rounds: int, measure: Callable[[], Run]) -> Run:
    runs = [measure() for _ in range(rounds)]
    runs.sort(key=lambda r: r.rate)
    return runs[len(runs) // 2]


async def amedian_run(rounds: int, measure: Callable[[], Awaitable[Run]]) -> Run:
    runs = [await measure() for _ in range(rounds)]
    runs.sort(key=lambda r: r.rate)
    return runs[len(runs) // 2]


def cell(run: Run | None) -> str:
    if run is None:
        return "-"
    text = f"{run.rate:,.0f}"
    if run.received < run.expected:
        text += f" (lost {run.expected - run.received})"
    return text


async def bench_broker(name: str, url: str, args: argparse.Namespace) -> list[list[str]]:
    address = parse_broker_url(url)
    payload = bytes(args.size)
    rows: list[list[str]] = []
    loop = asyncio.get_running_loop()

    def bare(qos: int) -> Awaitable[Run]:
        return loop.run_in_executor(
            None,
            median_run,
            args.rounds,
            lambda: bare_paho(address.host, address.port, qos, args.count, payload),
        )

    bare0, bare1 = await bare(0), await bare(1)
    rows.append([name, "bare paho", cell(bare0), cell(bare1)])
    ours0 = await amedian_run(
        args.rounds, lambda: through_mqttclient(url, 0, args.count, payload, args.window)
    )
    ours1 = await amedian_run(
        args.rounds, lambda: through_mqttclient(url, 1, args.count, payload, args.window)
    )
    rows.append(["", f"MqttClient (QoS 1 window {args.window})", cell(ours0), cell(ours1)])
    seq_count = max(1, args.count // 5)
    seq1 = await amedian_run(
        args.rounds, lambda: through_mqttclient(url, 1, seq_count, payload, window=1)
    )
    rows.append(["", "MqttClient, await each publish", "-", cell(seq1)])
    return rows


async def main(args: argparse.Namespace) -> None:
    rows: list[list[str]] = []
    if await probe(*MOSQUITTO, timeout=2.0):
        rows += await bench_broker("Mosquitto 127.0.0.1:1883", "mqtt://127.0.0.1:1883", args)
    else:
        rows.append(["Mosquitto 127.0.0.1:1883", "not answering: skipped", "-", "-"])
    if args.in_process:
        async with EmbeddedBroker() as broker:
            rows += await bench_broker("embedded amqtt (in process)", broker.url, args)
    else:
        child = ChildBroker()
        try:
            url = f"mqtt://127.0.0.1:{child.port}"
            rows += await bench_broker("embedded amqtt (child process)", url, args)
        finally:
            child.stop()

    header = ["broker", "client", "QoS 0 msg/s", "QoS 1 msg/s"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    print(
        f"\n{args.count:,} messages of {args.size} B, one publisher -> one subscriber, "
        f"median of {args.rounds} (MqttClient 'await each': {max(1, args.count // 5):,} messages)"
    )
    for row in [header, ["-" * w for w in widths], *rows]:
        cells = zip(row, widths, strict=True)
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(cells)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--count", type=int, default=10_000, help="messages per run")
    parser.add_argument("--size", type=int, default=64, help="payload bytes")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (median)")
    parser.add_argument("--window", type=int, default=100, help="concurrent QoS 1 publishes")
    parser.add_argument(
        "--in-process", action="store_true", help="run amqtt in this event loop, as a lab does"
    )
    return parser.parse_args()


if __name__ == "__main__":
    started = time.perf_counter()
    asyncio.run(main(parse_args()))
    print(f"({time.perf_counter() - started:.0f} s)")
