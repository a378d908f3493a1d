"""Platform ingest figures: publish → readable-in-the-historian latency, and throughput.

For each broker — the machine's Mosquitto at 127.0.0.1:1883 (if it answers) and an embedded
amqtt broker (in a child process, so it does not share the benchmark's GIL) — it starts a
real :class:`~simlab.platform.service.PlatformService` (historian in a temporary directory,
WAL, API serving) and measures, in the same run:

- **latency**: a publisher process (bare paho) publishes UNS messages at QoS 1, paced at
  ``--rate`` msg/s for ``--seconds`` s. Each message's value is ``time.monotonic()`` at
  publication (CLOCK_MONOTONIC is system-wide on Linux). A reader process polls the
  historian file through its own SQLite connection every 0.5 ms; a row's latency is the
  time it was first seen minus its value: publish → broker → ingest → commit → readable by
  another process. Goal: p99 < 50 ms.
- **throughput**: ``--count`` messages pushed as fast as the pipeline takes them, with at
  most two batches of ``--batch`` messages outstanding (Mosquitto drops QoS 1 messages
  beyond 1,000 queued per client, so an unbounded flood would measure its queue limit, not
  the subscriber). Compared with a bare paho subscriber (counting in ``on_message``) on the
  same broker, rounds alternating, median of ``--rounds``. For the platform the clock stops
  when every row is committed. Goal: platform ≥ 0.8 × bare paho. simlab's ``MqttClient``
  alone (counting in ``message_batches()``, as the ingest reads, no ingest) is measured
  too, to show how much of the gap is the asyncio bridge and how much the ingest
  (validation, historian, alarms). The ratio is given twice: of the medians, and the
  median of each round's own ratio (less sensitive to the machine's load drifting between
  rounds). ``cpu`` is the benchmark process's CPU time per message (all its threads; the
  publisher and the broker run elsewhere): a steadier figure of what each variant costs.

On a shared 2-core machine the figures move by ±30 % between runs (the publisher, the
broker and the benchmark compete for the cores): run it a few times.

Run: ``.venv/bin/python benchmarks/platform_latency.py [--seconds 10] [--rate 1000]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import resource
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from simlab.bus.broker import EmbeddedBroker, probe
from simlab.bus.client import MqttClient, parse_broker_url
from simlab.bus.uns import UnsMessage
from simlab.platform.service import PlatformService
from simlab.scenario.loader import parse_scenario
from simlab.scenario.model import Scenario

MOSQUITTO = ("127.0.0.1", 1883)
T0_MS = 1_772_352_000_000
SPAWN = multiprocessing.get_context("spawn")


# --------------------------------------------------------------------------- child processes


def _paho_connect(host: str, port: int) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:10]}")
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: connected.set()
    client.max_inflight_messages_set(20)
    client.connect(host, port, keepalive=60)
    client.loop_start()
    if not connected.wait(10):
        raise RuntimeError(f"paho could not connect to {host}:{port}")
    return client


def _publisher(host: str, port: int, conn: Connection) -> None:
    """Child process: publish what the parent asks, report when paho has sent it all."""
    client = _paho_connect(host, port)
    index = 0
    try:
        while True:
            command = conn.recv()
            if command[0] == "stop":
                break
            _, topic, count, rate = command
            start = time.monotonic()
            infos = []
            for k in range(count):
                if rate:
                    pause = start + k / rate - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
                payload = UnsMessage(time.monotonic(), "s", T0_MS + index, "bench").to_json()
                index += 1
                info = client.publish(topic, payload, qos=1)
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    raise RuntimeError(f"publish failed: {paho.error_string(info.rc)}")
                infos.append(info)
            if rate:  # paced: say when done (throughput batches need no answer)
                for info in infos:
                    info.wait_for_publish(10)
                conn.send(("sent", count, time.monotonic() - start))
    finally:
        client.disconnect()
        client.loop_stop()


def _reader(database: str, tag: str, count: int, timeout: float, conn: Connection) -> None:
    """Child process: poll the historian until ``count`` rows of ``tag`` were seen."""
    latencies: list[float] = []
    deadline = time.monotonic() + timeout
    db: sqlite3.Connection | None = None
    last_ts = -math.inf
    conn.send("polling")
    while len(latencies) < count and time.monotonic() < deadline:
        if db is None:
            if Path(database).exists():
                db = sqlite3.connect(database)
            else:
                time.sleep(0.0005)
                continue
        try:
            rows = db.execute(
                "SELECT ts, value FROM samples WHERE tag = ? AND ts > ? ORDER BY ts",
                (tag, last_ts),
            ).fetchall()
        except sqlite3.OperationalError:  # the table does not exist yet
            rows = []
        seen = time.monotonic()
        for ts, value in rows:
            latencies.append(seen - value)
            last_ts = ts
        time.sleep(0.0005)
    conn.send(latencies)


class Child:
    """A child process with a pipe to it."""

    def __init__(self, target: Callable[..., None], *args: object) -> None:
        self.conn, child_conn = SPAWN.Pipe()
        self.process = SPAWN.Process(target=target, args=(*args, child_conn), daemon=True)
        self.process.start()

    async def recv(self, timeout: float) -> object:
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self.conn.poll, timeout):
            raise RuntimeError(f"no answer from {self.process.name} within {timeout} s")
        return self.conn.recv()

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


def _serve_embedded(conn: Connection) -> None:
    async def main() -> None:
        async with EmbeddedBroker() as broker:
            conn.send(broker.port)
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(main())


# --------------------------------------------------------------------------- measurements


def cpu_seconds() -> float:
    """CPU time of this process so far (every thread), user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Rate:
    """One throughput round: messages per second, and this process's CPU µs per message."""

    per_second: float
    cpu_us: float


@dataclass
class Latency:
    count: int
    expected: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def scenario() -> Scenario:
    unique = uuid.uuid4().hex[:8]
    return parse_scenario(
        f"""\
format_version: 1
name: bench{unique}
uns: {{enterprise: bench{unique}, site: lab, area: bench}}
devices:
  - name: plc1
    type: plc
    uns: {{line: line-1, cell: cell-1, asset: asset-1}}
    tags:
      - {{name: latency, unit: s}}
"""
    )


async def measure_latency(
    service: PlatformService, tag: str, publisher: Child, args: argparse.Namespace
) -> Latency:
    count = int(args.rate * args.seconds)
    database = service.state_dir / "historian.sqlite"
    reader = Child(_reader, str(database), tag, count, args.seconds + 30.0)
    try:
        await reader.recv(30)  # "polling"
        publisher.conn.send(("publish", tag, count, args.rate))
        sent = await publisher.recv(args.seconds + 30)
        latencies = await reader.recv(args.seconds + 40)
    finally:
        reader.stop()
    assert isinstance(latencies, list) and isinstance(sent, tuple)
    if not latencies:
        return Latency(0, count, math.nan, math.nan, math.nan)
    ms = sorted(x * 1000.0 for x in latencies)
    return Latency(
        len(ms), count, statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))], ms[-1]
    )


async def windowed(
    publisher: Child,
    topic: str,
    count: int,
    batch: int,
    received_at_least: Callable[[int], Awaitable[None]],
    *,
    finished: Callable[[], Awaitable[None]] | None = None,
) -> Rate:
    """Push ``count`` messages with at most two batches outstanding, until all are received
    (and ``finished()`` returned, if given)."""
    batches = math.ceil(count / batch)
    cpu = cpu_seconds()
    start = time.perf_counter()
    for k in range(batches):
        if k >= 2:
            await received_at_least((k - 1) * batch)
        publisher.conn.send(("publish", topic, min(batch, count - k * batch), 0))
    await received_at_least(count)
    if finished is not None:
        await finished()
    seconds = time.perf_counter() - start
    return Rate(count / seconds, (cpu_seconds() - cpu) / count * 1e6)


async def bare_paho_rate(host: str, port: int, publisher: Child, args: argparse.Namespace) -> Rate:
    topic = f"bench-bare/{uuid.uuid4().hex}"
    received = 0
    condition = threading.Condition()

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        nonlocal received
        with condition:
            received += 1
            condition.notify_all()

    subscriber = _paho_connect(host, port)
    subscribed = threading.Event()
    subscriber.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
    subscriber.on_message = on_message
    subscriber.subscribe(topic, 1)
    subscribed.wait(10)
    loop = asyncio.get_running_loop()

    async def at_least(target: int) -> None:
        def wait() -> None:
            with condition:
                if not condition.wait_for(lambda: received >= target, timeout=30):
                    raise RuntimeError(f"bare paho: {received} of {target} messages in 30 s")

        await loop.run_in_executor(None, wait)

    try:
        return await windowed(publisher, topic, args.count, args.batch, at_least)
    finally:
        subscriber.disconnect()
        subscriber.loop_stop()


async def mqttclient_rate(url: str, publisher: Child, args: argparse.Namespace) -> Rate:
    """The same through simlab's MqttClient alone (counting in ``message_batches()``): the
    bus bridge's share of the platform's cost."""
    topic = f"bench-bare/{uuid.uuid4().hex}"
    received = 0
    waiters: list[tuple[int, asyncio.Future[None]]] = []

    async with MqttClient(url, subscriptions={topic: 1}) as client:

        async def consume() -> None:
            nonlocal received
            async for batch in client.message_batches():
                received += len(batch)
                for target, waiter in list(waiters):
                    if received >= target and not waiter.done():
                        waiter.set_result(None)

        async def at_least(target: int) -> None:
            if received >= target:
                return
            waiter = asyncio.get_running_loop().create_future()
            waiters.append((target, waiter))
            await asyncio.wait_for(waiter, 30)
            waiters.remove((target, waiter))

        consumer = asyncio.create_task(consume())
        try:
            return await windowed(publisher, topic, args.count, args.batch, at_least)
        finally:
            consumer.cancel()


async def platform_rate(
    service: PlatformService, tag: str, publisher: Child, args: argparse.Namespace
) -> Rate:
    ingest = service.ingest
    base_received, base_committed = ingest.stats.received, ingest.stats.committed

    async def at_least(target: int) -> None:
        await ingest.wait_until(lambda s: s.received - base_received >= target, timeout=30)

    async def all_committed() -> None:
        await ingest.wait_until(lambda s: s.committed - base_committed >= args.count, timeout=30)

    return await windowed(publisher, tag, args.count, args.batch, at_least, finished=all_committed)


async def bench_broker(name: str, url: str, args: argparse.Namespace) -> list[str]:
    address = parse_broker_url(url)
    lines = [f"\n{name}"]
    publisher = Child(_publisher, address.host, address.port)
    plan = scenario()
    tag = plan.uns_path("plc1", "latency")
    with tempfile.TemporaryDirectory(prefix="simlab-bench-") as state:
        service = PlatformService(plan, broker_url=url, state_dir=Path(state), now=time.time)
        try:
            async with service:
                latency = await measure_latency(service, tag, publisher, args)
                lines.append(
                    f"  latency publish -> readable in the historian, {args.rate:g} msg/s for "
                    f"{args.seconds:g} s: p50 {latency.p50_ms:.1f} ms, p99 {latency.p99_ms:.1f} ms"
                    f", max {latency.max_ms:.1f} ms ({latency.count}/{latency.expected} rows)"
                    f"  [goal p99 < 50 ms: {'ok' if latency.p99_ms < 50 else 'MISSED'}]"
                )
                bare: list[Rate] = []
                bridge: list[Rate] = []
                ours: list[Rate] = []
                for _ in range(args.rounds):
                    bare.append(await bare_paho_rate(address.host, address.port, publisher, args))
                    bridge.append(await mqttclient_rate(url, publisher, args))
                    ours.append(await platform_rate(service, tag, publisher, args))
                stats = service.stats
        finally:
            with_session = MqttClient(url, client_id=service.client_id, clean_session=True)
            async with with_session:
                pass  # erase the platform's persistent session on the broker
            with contextlib.suppress(OSError):
                publisher.conn.send(("stop",))
            publisher.stop()
    bare_rate, ours_rate, bridge_rate = (
        statistics.median(r.per_second for r in rates) for rates in (bare, ours, bridge)
    )
    ratio = ours_rate / bare_rate
    paired = statistics.median(o.per_second / b.per_second for o, b in zip(ours, bare, strict=True))
    lines.append(
        f"  throughput, {args.count:,} msgs, window {2 * args.batch}, median of {args.rounds}: "
        f"bare paho {bare_rate:,.0f} msg/s, platform {ours_rate:,.0f} msg/s stored = "
        f"{ratio:.2f}x (per round: {paired:.2f}x)"
        f"  [goal >= 0.8x: {'ok' if ratio >= 0.8 else 'MISSED'}]"
    )
    lines.append(
        f"  (MqttClient alone, no ingest: {bridge_rate:,.0f} msg/s = "
        f"{bridge_rate / bare_rate:.2f}x bare paho)"
    )
    lines.append(
        "  rounds (msg/s): bare "
        + ", ".join(f"{r.per_second:,.0f}" for r in bare)
        + " | platform "
        + ", ".join(f"{r.per_second:,.0f}" for r in ours)
    )
    lines.append(
        "  cpu of this process per message (median): "
        + ", ".join(
            f"{name} {statistics.median(r.cpu_us for r in rates):.0f} µs"
            for name, rates in (("bare paho", bare), ("MqttClient", bridge), ("platform", ours))
        )
    )
    lines.append(
        f"  ingest: received {stats.received:,}, stored {stats.stored:,}, committed "
        f"{stats.committed:,}, commits {stats.flushes:,}, duplicates {stats.duplicates}, "
        f"bad {stats.bad or 0}"
    )
    return lines


async def main(args: argparse.Namespace) -> None:
    lines: list[str] = []
    if "mosquitto" in args.brokers:
        if await probe(*MOSQUITTO, timeout=2.0):
            lines += await bench_broker("Mosquitto 127.0.0.1:1883", "mqtt://127.0.0.1:1883", args)
        else:
            lines.append("\nMosquitto 127.0.0.1:1883: not answering, skipped")
    if "embedded" in args.brokers:
        parent, child = SPAWN.Pipe()
        process = SPAWN.Process(target=_serve_embedded, args=(child,), daemon=True)
        process.start()
        try:
            if not parent.poll(30):
                raise RuntimeError("the embedded broker process did not start")
            url = f"mqtt://127.0.0.1:{parent.recv()}"
            lines += await bench_broker("embedded amqtt (child process)", url, args)
        finally:
            parent.send("stop")
            process.join(10)
    print("\n".join(lines))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency run length")
    parser.add_argument("--rate", type=float, default=1000.0, help="paced msg/s")
    parser.add_argument("--count", type=int, default=20_000, help="messages per throughput run")
    parser.add_argument("--batch", type=int, default=400, help="throughput batch (2 in flight)")
    parser.add_argument("--rounds", type=int, default=5, help="throughput rounds (median)")
    parser.add_argument(
        "--brokers",
        default="mosquitto,embedded",
        help="comma-separated: mosquitto, embedded",
    )
    return parser.parse_args()


if __name__ == "__main__":
    started = time.perf_counter()
    asyncio.run(main(parse_args()))
    print(f"({time.perf_counter() - started:.0f} s)")
