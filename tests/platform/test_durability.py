"""Durability of the platform: broker restarts, persistent sessions, and ``kill -9``.

- an embedded amqtt broker restarts: the platform reconnects by itself, subscribes again
  (amqtt forgets sessions) and stores what is published afterwards;
- Mosquitto keeps the platform's persistent session: 500 QoS 1 messages published while the
  platform is away (stopped, or its connection cut) are all stored, exactly once;
- a platform process killed with SIGKILL leaves a historian whose committed rows are intact.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sqlite3
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from simlab.bus.broker import EmbeddedBroker, probe
from simlab.bus.client import MqttClient
from simlab.bus.uns import UnsMessage
from simlab.platform.historian import SqliteHistorian
from simlab.platform.service import PlatformService
from simlab.scenario.loader import parse_scenario
from simlab.scenario.model import Scenario

MOSQUITTO_URL = "mqtt://127.0.0.1:1883"
T0_MS = 1_772_352_000_000  # 2026-03-01T08:00:00Z


@functools.cache
def mosquitto_answers() -> bool:
    """Whether Mosquitto answers at 127.0.0.1:1883 (asked once per process)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, probe("127.0.0.1", 1883, 2.0)).result()


def require_mosquitto() -> str:
    """Mosquitto's URL; skips the test if it does not answer (fails if SIMLAB_REQUIRE_TOOLS=1)."""
    if not mosquitto_answers():
        reason = (
            f"Mosquitto does not answer at {MOSQUITTO_URL}: persistent sessions across a "
            "disconnection are tested on Mosquitto (apt-get install -y mosquitto && mosquitto -d)"
        )
        if os.environ.get("SIMLAB_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{reason} (SIMLAB_REQUIRE_TOOLS=1)")
        pytest.skip(reason)
    return MOSQUITTO_URL


def scenario_text() -> str:
    """A one-tag scenario whose name (hence MQTT client id) and enterprise are unique."""
    unique = uuid.uuid4().hex[:10]
    return f"""\
format_version: 1
name: t{unique}
uns: {{enterprise: e{unique}, site: lyon, area: water}}
devices:
  - name: plc1
    type: plc
    uns: {{line: line-1, cell: tank-cell, asset: tank-1}}
    tags:
      - {{name: level, unit: m}}
"""


def lab_scenario() -> Scenario:
    return parse_scenario(scenario_text())


def level_of(scenario: Scenario) -> str:
    return scenario.uns_path("plc1", "level")


def now() -> float:
    return T0_MS / 1000.0


def uns(index: int) -> bytes:
    """Sample ``index``: value ``index`` at ``T0 + index`` ms."""
    return UnsMessage(float(index), "m", T0_MS + index, "plc1").to_json()


async def publish_range(url: str, topic: str, indexes: range) -> None:
    """Publish one QoS 1 UNS message per index (not retained: the broker keeps nothing)."""
    async with MqttClient(url) as publisher:
        await asyncio.gather(*(publisher.publish(topic, uns(i), qos=1) for i in indexes))


def stored_indexes(database: Path, tag: str) -> list[int]:
    """The sample indexes stored for ``tag``, read with a connection of our own."""
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT value FROM samples WHERE tag = ? ORDER BY ts", (tag,))
        return [int(value) for (value,) in rows]


async def forget_session(url: str, client_id: str) -> None:
    """Erase a persistent session on the broker (the shared Mosquitto keeps them)."""
    async with MqttClient(url, client_id=client_id, clean_session=True):
        pass


# --------------------------------------------------------------------------- broker restart


async def test_after_an_embedded_broker_restart_the_platform_stores_new_messages(
    tmp_path: Path,
) -> None:
    scenario = lab_scenario()
    level = level_of(scenario)
    async with (
        EmbeddedBroker() as broker,
        PlatformService(scenario, broker_url=broker.url, state_dir=tmp_path, now=now) as service,
    ):
        await publish_range(broker.url, level, range(1))
        await service.ingest.wait_until(lambda s: s.committed >= 1, timeout=10)
        # A QoS 1 round trip on the platform's connection: its PUBACK of the message above
        # has reached the broker, so the connection is quiet when the broker stops (amqtt's
        # shutdown can wait forever for a reader that receives data while being cancelled).
        await service.mqtt.publish(f"simlab-test/{uuid.uuid4().hex}", b"", qos=1)

        try:
            async with asyncio.timeout(15):
                await broker.stop()
        except TimeoutError:
            pytest.fail("the embedded amqtt broker did not shut down within 15 s")
        await service.mqtt.disconnected(timeout=5)
        await broker.start()  # same port; amqtt lost the session and its subscriptions
        await service.mqtt.connected(timeout=15)  # reconnected and subscribed again

        await publish_range(broker.url, level, range(1, 101))
        await service.ingest.wait_until(lambda s: s.committed >= 101, timeout=10)
        assert service.mqtt.stats.connects == 2
    assert stored_indexes(tmp_path / "historian.sqlite", level) == list(range(101))


# --------------------------------------------------------------------------- persistent session


async def test_qos1_messages_sent_while_the_platform_was_stopped_are_stored_exactly_once(
    tmp_path: Path,
) -> None:
    url = require_mosquitto()
    scenario = lab_scenario()
    level = level_of(scenario)
    first = PlatformService(scenario, broker_url=url, state_dir=tmp_path, now=now)
    try:
        async with first:  # the broker now holds the session and its subscriptions
            await publish_range(url, level, range(10))
            await first.ingest.wait_until(lambda s: s.committed >= 10, timeout=10)

        await publish_range(url, level, range(10, 510))  # 500 while nobody listens

        async with PlatformService(scenario, broker_url=url, state_dir=tmp_path, now=now) as second:
            stats = await second.ingest.wait_until(lambda s: s.committed >= 500, timeout=20)
            assert second.mqtt.client_id == first.client_id
    finally:
        await forget_session(url, first.client_id)
    assert stored_indexes(tmp_path / "historian.sqlite", level) == list(range(510))
    assert (stats.received, stats.duplicates) == (500, 0)


async def test_qos1_messages_sent_while_the_connection_was_cut_are_stored_exactly_once(
    tmp_path: Path,
) -> None:
    url = require_mosquitto()
    scenario = lab_scenario()
    level = level_of(scenario)
    service = PlatformService(scenario, broker_url=url, state_dir=tmp_path, now=now)
    try:
        async with service:
            await publish_range(url, level, range(100))
            await service.ingest.wait_until(lambda s: s.committed >= 100, timeout=10)

            await service.mqtt.drop_connection()  # a network cut: no DISCONNECT
            await service.mqtt.disconnected(timeout=5)
            await publish_range(url, level, range(100, 600))  # queued for the session
            await service.mqtt.connected(timeout=15)  # paho reconnects with the same id

            stats = await service.ingest.wait_until(lambda s: s.committed >= 600, timeout=20)
            assert service.mqtt.stats.connects == 2
    finally:
        await forget_session(url, service.client_id)
    assert stored_indexes(tmp_path / "historian.sqlite", level) == list(range(600))
    assert stats.stored == 600 and stats.received == 600 + stats.duplicates


# --------------------------------------------------------------------------- kill -9

_PLATFORM_PROCESS = """\
import asyncio, sys, time
from pathlib import Path

from simlab.platform.service import PlatformService
from simlab.scenario.loader import parse_scenario


async def main() -> None:
    scenario = parse_scenario(Path(sys.argv[1]).read_text())
    async with PlatformService(
        scenario, broker_url=sys.argv[2], state_dir=Path(sys.argv[3]), token="t", now=time.time
    ) as platform:
        print("ready", flush=True)
        last = 0
        while True:
            stats = await platform.ingest.wait_until(lambda s: s.committed != last)
            last = stats.committed
            print(f"committed {last}", flush=True)


asyncio.run(main())
"""


async def test_committed_rows_survive_kill_9(tmp_path: Path) -> None:
    scenario_file = tmp_path / "scenario.yaml"
    scenario_file.write_text(scenario_text())
    level = level_of(parse_scenario(scenario_file.read_text()))
    state = tmp_path / "state"
    stderr = (tmp_path / "platform.log").open("wb")

    async with EmbeddedBroker() as broker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _PLATFORM_PROCESS,
            str(scenario_file),
            broker.url,
            str(state),
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
        assert process.stdout is not None
        stdout = process.stdout

        async def committed_at_least(count: int) -> int:
            """Read the platform's reports until one says ``count`` rows are committed."""
            while True:
                line = (await stdout.readline()).decode().strip()
                if not line:
                    log = (tmp_path / "platform.log").read_text()
                    pytest.fail(f"the platform process ended early:\n{log}")
                if line.startswith("committed ") and int(line.split()[1]) >= count:
                    return int(line.split()[1])

        try:
            async with asyncio.timeout(30):
                assert (await stdout.readline()).strip() == b"ready"
                await publish_range(broker.url, level, range(300))
                await committed_at_least(300)
                # More data flows; kill the process while it is ingesting them.
                more = asyncio.create_task(publish_range(broker.url, level, range(300, 1300)))
                reported = await committed_at_least(800)
                os.kill(process.pid, signal.SIGKILL)
                assert await process.wait() == -signal.SIGKILL
                await more
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            stderr.close()

    database = state / "historian.sqlite"
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    stored = stored_indexes(database, level)
    assert len(stored) >= reported  # every commit the process reported is there
    assert stored == list(range(len(stored)))  # in order, no hole, no duplicate
    with SqliteHistorian(database) as historian:  # the platform can reopen it
        assert historian.count(level) == len(stored)
