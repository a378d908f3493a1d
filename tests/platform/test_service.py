"""The platform service end to end: a real broker, the real HTTP API on a socket, httpx."""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import stat
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from simlab.bus.broker import EmbeddedBroker, probe
from simlab.bus.client import BusError, MqttClient
from simlab.bus.uns import UnsMessage
from simlab.platform.alarms import AlarmState
from simlab.platform.historian import Sample, SqliteHistorian
from simlab.platform.kpi import OeeResult
from simlab.platform.rules import load_rules
from simlab.platform.service import PlatformService, historian_oee, starter_rules
from simlab.scenario.loader import load_scenario, parse_scenario
from simlab.scenario.model import Scenario

MOSQUITTO_URL = "mqtt://127.0.0.1:1883"
T0_MS = 1_772_352_000_000  # 2026-03-01T08:00:00Z
T0 = T0_MS / 1000.0


@functools.cache
def mosquitto_answers() -> bool:
    """Whether Mosquitto answers at 127.0.0.1:1883 (asked once per process)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, probe("127.0.0.1", 1883, 2.0)).result()


def require_mosquitto() -> str:
    """Mosquitto's URL; skips the test if it does not answer (fails if SIMLAB_REQUIRE_TOOLS=1)."""
    if not mosquitto_answers():
        reason = (
            f"Mosquitto does not answer at {MOSQUITTO_URL}: install and start it "
            "(apt-get install -y mosquitto && mosquitto -d) to run this test"
        )
        if os.environ.get("SIMLAB_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{reason} (SIMLAB_REQUIRE_TOOLS=1)")
        pytest.skip(reason)
    return MOSQUITTO_URL


@pytest.fixture(params=["embedded", "mosquitto"])
async def broker_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A running broker: each test taking it runs once on amqtt and once on Mosquitto."""
    if request.param == "mosquitto":
        yield require_mosquitto()
        return
    async with EmbeddedBroker() as broker:
        yield broker.url


@pytest.fixture
async def embedded_url() -> AsyncIterator[str]:
    """An embedded broker of this test's own."""
    async with EmbeddedBroker() as broker:
        yield broker.url


def lab_scenario(*, oee: bool = False) -> Scenario:
    """A small scenario whose name and enterprise no other test (or run) uses."""
    unique = uuid.uuid4().hex[:10]
    platform = (
        "platform:\n  oee: {state: plc1.state, good: plc1.good, rejected: plc1.rejected,"
        " ideal_rate_per_min: 60}\n"
        if oee
        else ""
    )
    return parse_scenario(
        f"""\
format_version: 1
name: t{unique}
uns: {{enterprise: e{unique}, site: lyon, area: water}}
devices:
  - name: plc1
    type: plc
    uns: {{line: line-1, cell: tank-cell, asset: tank-1}}
    tags:
      - {{name: level, unit: m, description: Tank level (LT-101), range: [0, 2]}}
      - {{name: state, type: int, description: PackML state}}
      - {{name: good, type: int, description: Good items}}
      - {{name: rejected, type: int, description: Rejected items}}
{platform}"""
    )


def fixed_clock(value: float = T0 + 60) -> Callable[[], float]:
    return lambda: value


async def forget_session(url: str, client_id: str) -> None:
    """Erase a persistent session on the broker (the shared Mosquitto keeps them)."""
    async with MqttClient(url, client_id=client_id, clean_session=True):
        pass


def uns(value: float, ts_ms: int, source: str = "plc1") -> bytes:
    return UnsMessage(value, None, ts_ms, source).to_json()


async def test_a_uns_message_is_stored_and_its_alarm_acknowledged_through_the_api(
    broker_url: str, tmp_path: Path
) -> None:
    scenario = lab_scenario()
    level = scenario.uns_path("plc1", "level")
    (tmp_path / "rules.yaml").write_text(
        f"format_version: 1\nalarms:\n  - {{name: LEVEL_HI, tag: {level}, kind: HI,"
        " limit: 1.8, severity: 700, message: Tank 1 nearly full}\n"
    )
    service = PlatformService(
        scenario, broker_url=broker_url, state_dir=tmp_path, now=fixed_clock()
    )
    try:
        async with service:
            async with MqttClient(broker_url) as publisher:
                await publisher.publish(level, uns(1.2, T0_MS), qos=1)
                await publisher.publish(level, uns(1.95, T0_MS + 1000), qos=1)
            await service.ingest.wait_until(lambda s: s.committed >= 2, timeout=10)

            assert service.historian.count(level) == 2
            assert service.registry.tag(level).value == 1.95
            auth = {"Authorization": f"Bearer {service.token}"}
            async with httpx.AsyncClient(base_url=service.api_url, headers=auth) as api:
                [alarm] = (await api.get("/api/alarms")).json()
                assert (alarm["name"], alarm["state"], alarm["value"]) == (
                    "LEVEL_HI",
                    "ACTIVE_UNACK",
                    1.95,
                )
                acked = await api.post(
                    "/api/alarms/LEVEL_HI/ack", json={"user": "alice", "comment": "on it"}
                )
                assert acked.status_code == 200, acked.text
                assert acked.json()["state"] == "ACTIVE_ACK"
                assert acked.json()["user"] == "alice"
                latest = (await api.get(f"/api/tags/{level}/latest")).json()
                assert (latest["value"], latest["unit"], latest["ts"]) == (1.95, "m", T0 + 1)
                history = (await api.get(f"/api/tags/{level}/history?start=0&end=now")).json()
                assert [s["value"] for s in history["samples"]] == [1.2, 1.95]
                assert (await api.get("/api/alarms")).status_code == 200
                unauthorized = await httpx.AsyncClient(base_url=service.api_url).get("/api/alarms")
                assert unauthorized.status_code == 401
            [status] = service.alarms.statuses()
            assert status.state is AlarmState.ACTIVE_ACK
    finally:
        await forget_session(broker_url, service.client_id)


async def test_state_dir_token_starter_rules_and_declared_tags(
    embedded_url: str, tmp_path: Path
) -> None:
    scenario = lab_scenario()
    state = tmp_path / "state"
    async with PlatformService(
        scenario, broker_url=embedded_url, state_dir=state, now=fixed_clock()
    ) as service:
        token_file = state / "api-token"
        assert token_file.read_text() == service.token and len(service.token) >= 32
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        rules_text = (state / "rules.yaml").read_text()
        assert rules_text == starter_rules(scenario)
        assert load_rules(state / "rules.yaml").alarms == []
        assert (state / "historian.sqlite").exists()
        assert service.client_id == f"simlab-platform-{scenario.name}"
        assert service.mqtt.subscriptions == {f"{scenario.uns.enterprise}/#": 1, "spBv1.0/#": 1}

        level = service.registry.tag(scenario.uns_path("plc1", "level"))
        assert (level.unit, level.description, level.source) == ("m", "Tank level (LT-101)", "plc1")
        assert level.declared and level.value is None
        assert len(service.registry) == 4
    with pytest.raises(RuntimeError, match="async with"):
        _ = service.api_url

    # A given token is used as is and not written; an edited rules file is kept.
    (state / "rules.yaml").write_text("format_version: 1\n")
    async with PlatformService(
        scenario, broker_url=embedded_url, state_dir=state, token="given", now=fixed_clock()
    ) as service:
        assert service.token == "given"
        assert (state / "api-token").read_text() != "given"
        assert (state / "rules.yaml").read_text() == "format_version: 1\n"
        async with httpx.AsyncClient(base_url=service.api_url) as api:
            health = await api.get("/api/health")
            assert health.status_code == 200 and health.json()["now"] == T0 + 60
            tags = await api.get("/api/tags", headers={"Authorization": "Bearer given"})
            assert len(tags.json()) == 4


async def test_rules_put_through_the_api_apply_at_once(embedded_url: str, tmp_path: Path) -> None:
    scenario = lab_scenario()
    level = scenario.uns_path("plc1", "level")
    async with PlatformService(
        scenario, broker_url=embedded_url, state_dir=tmp_path, now=fixed_clock()
    ) as service:
        async with MqttClient(embedded_url) as publisher:
            await publisher.publish(level, uns(0.1, T0_MS), qos=1)
        await service.ingest.wait_until(lambda s: s.committed >= 1, timeout=10)
        rules = (
            "format_version: 1\nalarms:\n"
            f"  - {{name: LEVEL_LO, tag: {level}, kind: LO, limit: 0.2}}\n"
        )
        auth = {"Authorization": f"Bearer {service.token}"}
        async with httpx.AsyncClient(base_url=service.api_url, headers=auth) as api:
            reply = await api.put(
                "/api/rules", content=rules, headers={"Content-Type": "application/yaml"}
            )
            assert reply.status_code == 200, reply.text
            # the new alarm is evaluated against the last sample at once
            [alarm] = (await api.get("/api/alarms")).json()
            assert (alarm["name"], alarm["state"]) == ("LEVEL_LO", "ACTIVE_UNACK")
        assert (tmp_path / "rules.yaml").read_text() == rules


async def test_oee_comes_from_the_historian(embedded_url: str, tmp_path: Path) -> None:
    scenario = lab_scenario(oee=True)
    path = functools.partial(scenario.uns_path, "plc1")
    async with PlatformService(
        scenario, broker_url=embedded_url, state_dir=tmp_path, now=fixed_clock(T0 + 600)
    ) as service:
        samples = [
            (path("state"), 6.0, 0),  # Execute for the whole window
            (path("good"), 0.0, 0),
            (path("rejected"), 0.0, 0),
            (path("good"), 270.0, 300_000),  # 300 s at 60/min would be 300 items
            (path("rejected"), 30.0, 300_000),
        ]
        async with MqttClient(embedded_url) as publisher:
            for tag, value, offset in samples:
                await publisher.publish(tag, uns(value, T0_MS + offset), qos=1)
        await service.ingest.wait_until(lambda s: s.committed >= len(samples), timeout=10)
        auth = {"Authorization": f"Bearer {service.token}"}
        async with httpx.AsyncClient(base_url=service.api_url, headers=auth) as api:
            reply = await api.get(f"/api/kpis/oee?start={T0}&end={T0 + 300}")
        assert reply.status_code == 200, reply.text
        result = reply.json()
        assert result["availability"] == pytest.approx(1.0)
        assert result["performance"] == pytest.approx(1.0)
        assert result["quality"] == pytest.approx(0.9)
        assert (result["produced"], result["good"]) == (300.0, 270.0)


def test_oee_reads_the_samples_around_the_window_at_their_real_instants() -> None:
    state, good, rejected = "l/state", "l/good", "l/rejected"
    with SqliteHistorian(":memory:") as historian:
        historian.write_many(
            [
                Sample(state, T0 - 100, 11.0, source="uns"),  # Held, then Execute from T0 - 40
                Sample(state, T0 - 40, 6.0, source="uns"),
                Sample(good, T0 - 100, 0.0, source="uns"),
                Sample(good, T0 + 20, 54.0, source="uns"),  # 0.9 per Execute second
                Sample(good, T0 + 60, 90.0, source="uns"),
                Sample(good, T0 + 110, 135.0, source="uns"),  # after the window
                Sample(good, T0 - 10, 500.0, source="spb"),  # another source, silent since
                Sample(rejected, T0 - 100, 0.0, source="uns"),  # 0.1 per Execute second
                Sample(rejected, T0 + 110, 15.0, source="uns"),
            ]
        )

        def compute(lookback_s: float) -> OeeResult:
            return historian_oee(
                historian,
                state=state,
                good=good,
                rejected=rejected,
                window_start=T0,
                window_end=T0 + 100,
                ideal_rate_per_min=75.0,
                lookback_s=lookback_s,
            )

        result = compute(3600.0)
        # good: 20 of the 60 Execute seconds of 0 → 54 (not of the 120 s, Held included),
        # all of 54 → 90, 40 of the 50 s of 90 → 135; rejected: 100 of 150 s of 0 → 15.
        assert result.good == pytest.approx(18.0 + 36.0 + 36.0)
        assert result.produced == pytest.approx(100.0)
        assert (result.counted_from, result.run_time, result.availability) == (T0, 100.0, 1.0)
        assert result.performance == pytest.approx(100 * 0.8 / 100)
        assert result.quality == pytest.approx(0.9)
        assert result.oee == pytest.approx(0.72)
        assert result.reasons == {}

        # Read as changes (report by exception): the value at T0 is the sample before it,
        # and the increase after the last sample in the window is not counted.
        held = historian_oee(
            historian,
            state=state,
            good=good,
            rejected=rejected,
            window_start=T0,
            window_end=T0 + 100,
            ideal_rate_per_min=75.0,
            held=True,
        )
        assert (held.good, held.produced, held.quality) == (90.0, 90.0, 1.0)
        assert held.performance == pytest.approx(90 * 0.8 / 100)

        # Samples further than the lookback are not used: the rejected counter has none.
        short = compute(50.0)
        assert (short.performance, short.quality, short.oee, short.counted_from) == (
            None,
            None,
            None,
            None,
        )
        assert "no reading of the rejected counter" in short.reasons["performance"]


async def test_without_oee_the_kpi_is_not_available(embedded_url: str, tmp_path: Path) -> None:
    async with PlatformService(
        lab_scenario(), broker_url=embedded_url, state_dir=tmp_path, now=fixed_clock()
    ) as service:
        assert service.oee(T0, T0 + 60) is None


async def test_leaving_stores_every_message_already_received(
    embedded_url: str, tmp_path: Path
) -> None:
    scenario = lab_scenario()
    level = scenario.uns_path("plc1", "level")
    async with PlatformService(
        scenario, broker_url=embedded_url, state_dir=tmp_path, now=fixed_clock()
    ) as service:
        async with MqttClient(embedded_url) as publisher:
            await asyncio.gather(
                *(publisher.publish(level, uns(i, T0_MS + i), qos=1) for i in range(200))
            )
        await service.ingest.wait_until(lambda s: s.received >= 200, timeout=10)
        stats = service.stats
    assert stats.committed == 200  # the last samples were committed on the way out
    with sqlite3.connect(tmp_path / "historian.sqlite") as db:
        assert db.execute("SELECT count(*) FROM samples").fetchone() == (200,)

    # After a restart the registry starts from the historian's last values.
    async with PlatformService(
        scenario, broker_url=embedded_url, state_dir=tmp_path, now=fixed_clock()
    ) as service:
        tag = service.registry.tag(level)
        assert (tag.value, tag.ts, tag.source) == (199.0, T0 + 0.199, "plc1")


async def test_a_bundled_scenario_starts_and_an_unreachable_broker_is_a_clear_error(
    free_port: Callable[[], int], tmp_path: Path
) -> None:
    scenario = load_scenario("water-tank")
    with pytest.raises(BusError, match="cannot reach the MQTT broker"):
        async with PlatformService(
            scenario,
            broker_url=f"mqtt://127.0.0.1:{free_port()}",
            state_dir=tmp_path,
            now=fixed_clock(),
        ):
            pass
    # the historian was closed again: the file can be opened and is a valid database
    assert (tmp_path / "historian.sqlite").exists()
    assert (tmp_path / "rules.yaml").exists()
