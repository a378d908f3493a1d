"""The platform ingest: UNS JSON and Sparkplug B into historian, alarms and registry.

The first half feeds :meth:`Ingest.handle` directly (fast, exhaustive); the second half runs
:meth:`Ingest.run` against real brokers — an embedded amqtt broker of our own and the
machine's Mosquitto — with unique topics per test.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from simlab.bus.broker import EmbeddedBroker, probe
from simlab.bus.client import Message, MqttClient, Will
from simlab.bus.sparkplug import (
    REBIRTH,
    DataType,
    EdgeNodeSession,
    Metric,
    MetricDef,
    MqttMessage,
    decode_payload,
    encode_payload,
)
from simlab.bus.uns import UnsMessage
from simlab.platform.alarms import AlarmDefinition, AlarmEngine, AlarmState
from simlab.platform.historian import SqliteHistorian
from simlab.platform.ingest import BadReason, Ingest, IngestStats
from simlab.platform.registry import AssetRegistry

MOSQUITTO_URL = "mqtt://127.0.0.1:1883"
T0_MS = 1_772_352_000_000  # 2026-03-01T08:00:00Z
T0 = T0_MS / 1000.0


# --------------------------------------------------------------------------- helpers


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
def enterprise() -> str:
    """A UNS enterprise (root) no other test or run uses."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def platform() -> tuple[SqliteHistorian, AlarmEngine, AssetRegistry]:
    """An in-memory historian, an alarm engine and a registry."""
    return SqliteHistorian(":memory:"), AlarmEngine(), AssetRegistry()


def uns(
    value: float | str | None,
    ts_ms: int = T0_MS,
    *,
    quality: str = "Good",
    source: str = "plc1",
    unit: str | None = "m",
) -> bytes:
    """A UNS JSON payload."""
    return UnsMessage(value, unit, ts_ms, source, quality).to_json()


def msg(topic: str, payload: bytes, *, retain: bool = False) -> Message:
    """A received message, as MqttClient hands it over."""
    return Message(topic, payload, 1, retain, time.monotonic())


def values(historian: SqliteHistorian, tag: str) -> list[float | None]:
    """The stored values of ``tag``, oldest first."""
    return [s.value for s in historian.history(tag, 0, 1e12)]


def will_of(session: EdgeNodeSession) -> Callable[[], Will]:
    """A Will factory running the Sparkplug bdSeq dance before every connection."""

    def factory() -> Will:
        death = session.new_connection(timestamp_ms=T0_MS)
        return Will(death.topic, death.payload, death.qos, death.retain)

    return factory


async def publish_all(client: MqttClient, messages: list[MqttMessage]) -> None:
    for message in messages:
        await client.publish(message.topic, message.payload, message.qos, message.retain)


# --------------------------------------------------------------------------- handle(): UNS


def test_a_uns_message_becomes_a_row_a_registry_value_and_an_alarm_evaluation(
    platform: tuple[SqliteHistorian, AlarmEngine, AssetRegistry],
) -> None:
    historian, alarms, registry = platform
    path = "acme/lyon/water/line-1/tank-cell/tank-1/level"
    alarms.replace_definitions([AlarmDefinition(name="LEVEL_HI", tag=path, kind="HI", limit=1.8)])
    ingest = Ingest(historian, alarms, registry, uns_roots=["acme"])

    assert ingest.handle(msg(path, uns(1.5))) == []
    assert ingest.handle(msg(path, uns(1.9, T0_MS + 1000))) == []
    assert ingest.handle(msg(path, uns(None, T0_MS + 2000, quality="BadSensorFailure"))) == []

    assert path not in registry  # the registry is updated with each commit
    assert ingest.flush() == 3
    assert values(historian, path) == [1.5, 1.9, None]
    [bad] = historian.history(path, T0 + 2, T0 + 3)
    assert (bad.quality, bad.source) == ("BadSensorFailure", "plc1")
    tag = registry.tag(path)
    assert (tag.value, tag.unit, tag.quality, tag.ts) == (None, "m", "BadSensorFailure", T0 + 2)
    assert registry.status("acme/lyon/water/line-1/tank-cell/tank-1").state == "online"
    [status] = alarms.statuses()
    assert status.state is AlarmState.ACTIVE_UNACK and status.value == 1.9
    assert ingest.stats.received == 3 and ingest.stats.stored == 3
    assert ingest.stats.bad == {}


def test_text_values_go_to_the_registry_only_and_empty_payloads_are_ignored(
    platform: tuple[SqliteHistorian, AlarmEngine, AssetRegistry],
) -> None:
    historian, alarms, registry = platform
    path = "acme/lyon/water/line-1/tank-cell/tank-1/mode"
    ingest = Ingest(historian, alarms, registry)
    ingest.handle(msg(path, uns("AUTO", unit=None)))
    ingest.handle(msg(path, b"", retain=True))  # a retained value being cleared
    ingest.flush()
    assert registry.tag(path).value == "AUTO"
    assert historian.count() == 0
    assert (ingest.stats.not_stored, ingest.stats.ignored, ingest.stats.bad) == (1, 1, {})


def test_a_retained_message_does_not_mark_its_asset_online(
    platform: tuple[SqliteHistorian, AlarmEngine, AssetRegistry],
) -> None:
    historian, alarms, registry = platform
    path = "acme/lyon/water/line-1/tank-cell/tank-1/level"
    ingest = Ingest(historian, alarms, registry)
    ingest.handle(msg(path, uns(1.0), retain=True))
    assert registry.status("acme/lyon/water/line-1/tank-cell/tank-1").state == "unknown"
    assert historian.count(path) == 1


def test_a_repeated_sample_is_skipped_and_counted(
    platform: tuple[SqliteHistorian, AlarmEngine, AssetRegistry],
) -> None:
    historian, alarms, registry = platform
    path = "acme/lyon/water/line-1/tank-cell/tank-1/level"
    ingest = Ingest(historian, alarms, registry)
    for _ in range(3):
        ingest.handle(msg(path, uns(1.5)))
    ingest.handle(msg(path, uns(1.5, source="plc2")))  # another source: another sample
    assert historian.count(path) == 2
    assert (ingest.stats.stored, ingest.stats.duplicates) == (2, 2)


def test_bad_payloads_are_counted_per_reason_logged_with_their_topic_and_ingest_goes_on(
    platform: tuple[SqliteHistorian, AlarmEngine, AssetRegistry],
    caplog: pytest.LogCaptureFixture,
) -> None:
    historian, alarms, registry = platform
    good = "acme/lyon/water/line-1/tank-cell/tank-1/level"
    ingest = Ingest(historian, alarms, registry, uns_roots=["acme"], max_sparkplug_bytes=1000)
    bad_messages = [
        (good, b"not json at all", BadReason.NOT_JSON),
        (good, b"\xff\xfe", BadReason.NOT_JSON),
        (good, b"[1, 2]", BadReason.NOT_JSON),
        (good, b'{"value": {"nested": 1}}', BadReason.UNS_FIELD),
        (good, uns(1.0).replace(b'"Good"', b"42"), BadReason.UNS_FIELD),
        (good, b'{"value": 1}' + b" " * 70_000, BadReason.OVERSIZED),
        ("acme/lyon/too-short", uns(1.0), BadReason.UNS_TOPIC),
        ("acme/lyon/water/line-1/tank-cell/Tank-1/level", uns(1.0), BadReason.UNS_TOPIC),
        ("spBv1.0/g1/NDATA/edge1", b"\xff\xff\xff", BadReason.SPARKPLUG_PAYLOAD),
        ("spBv1.0/g1/NDATA/edge1", bytes(2000), BadReason.OVERSIZED),
        ("spBv1.0/g1/BOGUS/edge1", b"", BadReason.SPARKPLUG_TOPIC),
        ("spBv1.0/g1/NDATA", b"", BadReason.SPARKPLUG_TOPIC),
    ]
    with caplog.at_level(logging.WARNING, logger="simlab.platform.ingest"):
        for topic, payload, _ in bad_messages:
            assert ingest.handle(msg(topic, payload)) == []
        ingest.handle(msg(good, uns(1.25)))

    expected: dict[str, int] = {}
    for _, _, reason in bad_messages:
        expected[reason.value] = expected.get(reason.value, 0) + 1
    assert ingest.stats.bad == expected
    assert ingest.stats.bad_total == len(bad_messages)
    assert values(historian, good) == [1.25]  # still ingesting
    logged = [r.getMessage() for r in caplog.records]
    assert any("not_json" in line and good in line for line in logged)
    assert any("sparkplug_topic" in line and "spBv1.0/g1/BOGUS/edge1" in line for line in logged)


def test_warnings_are_rate_limited_per_reason(
    platform: tuple[SqliteHistorian, AlarmEngine, AssetRegistry],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ingest = Ingest(*platform, log_interval=60.0)
    topic = "acme/lyon/water/line-1/tank-cell/tank-1/level"
    with caplog.at_level(logging.WARNING, logger="simlab.platform.ingest"):
        for _ in range(50):
            ingest.handle(msg(topic, b"garbage"))
    assert ingest.stats.bad == {"not_json": 50}
    assert len(caplog.records) == 1


def test_an_unexpected_error_or_a_failing_historian_does_not_stop_the_ingest(
    platform: tuple[SqliteHistorian, AlarmEngine, AssetRegistry],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    historian, alarms, registry = platform
    ingest = Ingest(historian, alarms, registry)
    path = "acme/lyon/water/line-1/tank-cell/tank-1/level"

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING):
        patch.setattr(registry, "mark_online", broken)
        assert ingest.handle(msg(path, uns(1.0))) == []
    assert ingest.stats.bad == {"internal_error": 1}
    assert "boom" in caplog.text and "Traceback" in caplog.text
    ingest.handle(msg(path, uns(2.0, T0_MS + 1)))  # carries on
    assert values(historian, path) == [2.0]

    historian.close()  # from now on every commit fails
    ingest.handle(msg(path, uns(3.0, T0_MS + 2)))
    assert ingest.flush() == 0
    assert ingest.stats.flush_errors >= 1
    assert ingest.stats.committed < ingest.stats.stored


def test_subscriptions_follow_the_roots_and_groups() -> None:
    parts = SqliteHistorian(":memory:"), AlarmEngine(), AssetRegistry()
    assert Ingest(*parts).subscriptions == {"#": 1}
    assert Ingest(*parts, uns_roots=["acme", "acme/", "beta/lyon"]).subscriptions == {
        "acme/#": 1,
        "beta/lyon/#": 1,
        "spBv1.0/#": 1,
    }
    assert Ingest(*parts, uns_roots=["acme"], sparkplug_groups=["g2", "g1"]).subscriptions == {
        "acme/#": 1,
        "spBv1.0/g1/#": 1,
        "spBv1.0/g2/#": 1,
    }
    assert Ingest(*parts, uns_roots=["acme"], sparkplug=False).subscriptions == {"acme/#": 1}
    for bad in (["acme/#"], ["spBv1.0"], [""], []):
        with pytest.raises(ValueError, match="root"):
            Ingest(*parts, uns_roots=bad)


# --------------------------------------------------------------------------- handle(): Sparkplug

LEVEL = "acme/lyon/water/line-1/tank-cell/tank-1/level"
SPEED = "acme/lyon/water/line-1/pumps/pump-1/speed"


def edge_session(group: str = "g1") -> EdgeNodeSession:
    """An edge node with one UNS-named node metric, one plain one, and a device."""
    return EdgeNodeSession(
        group,
        "edge1",
        {"pump": [MetricDef(SPEED, DataType.Float, 0.0), MetricDef("Running", DataType.Boolean)]},
        node_metrics=[
            MetricDef(LEVEL, DataType.Double, 0.5),
            MetricDef("Inputs/Counter", DataType.Int32, 0),
        ],
    )


def birth(ingest: Ingest, session: EdgeNodeSession) -> None:
    session.new_connection(timestamp_ms=T0_MS)
    for message in session.on_connect(timestamp_ms=T0_MS):
        assert ingest.handle(msg(message.topic, message.payload)) == []


def test_births_and_data_by_alias_are_stored_under_the_metric_names(
    platform: tuple[SqliteHistorian, AlarmEngine, AssetRegistry],
) -> None:
    historian, alarms, registry = platform
    ingest = Ingest(historian, alarms, registry)
    session = edge_session()
    birth(ingest, session)
    data = [
        session.node_data({LEVEL: 0.75, "Inputs/Counter": -3}, timestamp_ms=T0_MS + 100),
        session.device_data("pump", {SPEED: 42.5, "Running": True}, timestamp_ms=T0_MS + 200),
    ]
    for message in data:
        assert message is not None
        assert all(m.name is None for m in decode_payload(message.payload).metrics)  # by alias
        assert ingest.handle(msg(message.topic, message.payload)) == []
    ingest.flush()

    assert values(historian, LEVEL) == [0.5, 0.75]  # UNS-named metric: its own path
    assert values(historian, "g1/edge1/Inputs/Counter") == [0, -3]  # Int32 sign restored
    assert values(historian, SPEED) == [0.0, 42.5]
    assert values(historian, "g1/edge1/pump/Running") == [None, 1.0]  # null at birth, then true
    assert {t.tag for t in historian.tags()} == {
        LEVEL,
        SPEED,
        "g1/edge1/Inputs/Counter",
        "g1/edge1/pump/Running",
    }  # no bdSeq, no Node Control
    assert historian.latest(SPEED).source == "spBv1.0/g1/edge1/pump"  # type: ignore[union-attr]
    assert registry.tag(LEVEL).value == 0.75
    assert "g1/edge1/Inputs/Counter" not in registry  # not a UNS path: historian only
    assert registry.status("acme/lyon/water/line-1/tank-cell/tank-1").state == "online"
    assert registry.status("acme/lyon/water/line-1/pumps/pump-1").state == "online"
    assert ingest.stats.bad == {} and ingest.stats.gaps == 0


def test_ndeath_and_ddeath_mark_the_assets_stale(
    platform: tuple[SqliteHistorian, AlarmEngine, AssetRegistry],
) -> None:
    historian, alarms, registry = platform
    ingest = Ingest(historian, alarms, registry)
    session = edge_session()
    birth(ingest, session)
    tank, pump = "acme/lyon/water/line-1/tank-cell/tank-1", "acme/lyon/water/line-1/pumps/pump-1"

    ddeath = session.device_death("pump", timestamp_ms=T0_MS + 100)
    ingest.handle(msg(ddeath.topic, ddeath.payload))
    assert registry.status(pump).state == "stale"
    assert "DDEATH" in registry.status(pump).reason
    assert registry.status(tank).state == "online"

    stale_will = encode_payload(
        [Metric(name="bdSeq", datatype=DataType.Int64, value=99)], seq=None, timestamp_ms=T0_MS
    )
    ingest.handle(msg("spBv1.0/g1/NDEATH/edge1", stale_will))  # an old session's Will
    assert registry.status(tank).state == "online"
    assert ingest.stats.ignored == 1

    ndeath = session.disconnect(timestamp_ms=T0_MS + 200)
    ingest.handle(msg(ndeath.topic, ndeath.payload))
    status = registry.status(tank)
    assert (status.state, status.since) == ("stale", T0 + 0.2)
    assert status.reason == "NDEATH of Sparkplug edge node g1/edge1"
    birth(ingest, session)  # back: online again, but the dead device is not born yet
    assert registry.status(tank).state == "online"
    assert registry.status(pump).state == "stale"
    dbirth = session.device_birth("pump", timestamp_ms=T0_MS + 300)
    ingest.handle(msg(dbirth.topic, dbirth.payload))
    assert registry.status(pump).state == "online"


def test_a_seq_gap_is_counted_the_data_kept_and_one_rebirth_requested(
    platform: tuple[SqliteHistorian, AlarmEngine, AssetRegistry],
) -> None:
    historian, alarms, registry = platform
    ingest = Ingest(historian, alarms, registry, now=lambda: T0 + 5, rebirth_holdoff=60)
    session = edge_session()
    birth(ingest, session)
    session.node_data({LEVEL: 0.6}, timestamp_ms=T0_MS + 100)  # lost on the way
    after = session.node_data({LEVEL: 0.7}, timestamp_ms=T0_MS + 200)
    again = session.node_data({LEVEL: 0.8}, timestamp_ms=T0_MS + 300)
    assert after is not None and again is not None
    [request] = ingest.handle(msg(after.topic, after.payload))
    assert request.topic == "spBv1.0/g1/NCMD/edge1"
    command = session.handle_command(request.topic, request.payload, timestamp_ms=T0_MS + 400)
    assert command.rebirth  # the edge node understands it
    assert decode_payload(request.payload).metric(REBIRTH) == Metric(
        name=REBIRTH, timestamp_ms=T0_MS + 5000, datatype=DataType.Boolean, value=True
    )
    assert ingest.handle(msg(again.topic, again.payload)) == []  # in order again
    assert values(historian, LEVEL) == [0.5, 0.7, 0.8]
    assert ingest.stats.gaps == 1 and ingest.stats.bad == {"seq_gap": 1}

    # Data from a node whose NBIRTH the platform never saw: dropped, rebirth asked once.
    other = EdgeNodeSession("g1", "edge2", node_metrics=[MetricDef("x", DataType.Double, 0.0)])
    other.new_connection(timestamp_ms=T0_MS)
    other.on_connect(timestamp_ms=T0_MS)  # NBIRTH not delivered
    first = other.node_data({"x": 1.0}, timestamp_ms=T0_MS)
    second = other.node_data({"x": 2.0}, timestamp_ms=T0_MS)
    assert first is not None and second is not None
    assert [m.topic for m in ingest.handle(msg(first.topic, first.payload))] == [
        "spBv1.0/g1/NCMD/edge2"
    ]
    assert ingest.handle(msg(second.topic, second.payload)) == []  # within the holdoff
    assert ingest.stats.bad["sparkplug_no_session"] == 2
    assert "g1/edge2/x" not in {t.tag for t in historian.tags()}


def test_unknown_aliases_and_misfit_values_drop_only_that_metric(
    platform: tuple[SqliteHistorian, AlarmEngine, AssetRegistry],
) -> None:
    historian, alarms, registry = platform
    ingest = Ingest(historian, alarms, registry)
    birth(ingest, edge_session())
    level_alias = 1  # EdgeNodeSession numbers node metrics from 1
    payload = encode_payload(
        [
            Metric(alias=level_alias, value=0.9, datatype=DataType.Double),
            Metric(alias=999, value=1.0, datatype=DataType.Double),
            Metric(alias=2, value="text", datatype=DataType.String),  # Inputs/Counter: Int32
        ],
        seq=2,  # NBIRTH 0, DBIRTH 1
        timestamp_ms=T0_MS + 100,
        include_datatypes=True,
    )
    ingest.handle(msg("spBv1.0/g1/NDATA/edge1", payload))
    assert values(historian, LEVEL) == [0.5, 0.9]
    assert ingest.stats.bad == {"sparkplug_metric": 1, "sparkplug_value": 1}


def test_commands_state_and_other_groups_are_ignored(
    platform: tuple[SqliteHistorian, AlarmEngine, AssetRegistry],
) -> None:
    historian, alarms, registry = platform
    ingest = Ingest(historian, alarms, registry, sparkplug_groups=["g1"])
    ingest.handle(msg("spBv1.0/g1/NCMD/edge1", b"\x00"))
    ingest.handle(msg("spBv1.0/STATE/host1", b'{"online": true}'))
    other = edge_session("g2")
    other.new_connection(timestamp_ms=T0_MS)
    for message in other.on_connect(timestamp_ms=T0_MS):
        ingest.handle(msg(message.topic, message.payload))
    assert ingest.stats.ignored == 4
    assert ingest.stats.bad == {} and historian.count() == 0


# --------------------------------------------------------------------------- one transport per tag


def sources(historian: SqliteHistorian, tag: str) -> set[str]:
    return {s.source for s in historian.history(tag, 0, 1e12)}


async def test_handle_batch_is_handle_in_order_with_one_check_of_the_waiters(
    platform: tuple[SqliteHistorian, AlarmEngine, AssetRegistry],
) -> None:
    historian, alarms, registry = platform
    ingest = Ingest(historian, alarms, registry)
    session = edge_session()
    session.new_connection(timestamp_ms=T0_MS)
    births = [msg(m.topic, m.payload) for m in session.on_connect(timestamp_ms=T0_MS)]
    session.node_data({LEVEL: 0.6}, timestamp_ms=T0_MS + 100)  # lost on the way
    after = session.node_data({LEVEL: 0.7}, timestamp_ms=T0_MS + 200)
    assert after is not None
    batch = [
        *births,
        msg(SPEED.replace("speed", "flow"), uns(1.0)),
        msg(after.topic, after.payload),
    ]
    checked: list[int] = []

    def predicate(stats: IngestStats) -> bool:
        checked.append(stats.received)
        return stats.received >= len(batch)

    waiter = asyncio.create_task(ingest.wait_until(predicate, timeout=5))
    await asyncio.sleep(0)
    [request] = ingest.handle_batch(batch)
    assert request.topic == "spBv1.0/g1/NCMD/edge1"  # the gap in the last message
    assert (await waiter).received == len(batch)
    assert checked == [0, len(batch)]  # once on waiting, once after the whole batch
    ingest.flush()
    assert values(historian, LEVEL) == [0.5, 0.7]
    assert values(historian, SPEED.replace("speed", "flow")) == [1.0]
    assert ingest.stats.gaps == 1


def test_a_tag_with_a_uns_source_is_not_stored_again_from_sparkplug(
    platform: tuple[SqliteHistorian, AlarmEngine, AssetRegistry],
) -> None:
    historian, alarms, registry = platform
    alarms.replace_definitions([AlarmDefinition(name="LEVEL_HI", tag=LEVEL, kind="HI", limit=0.8)])
    ingest = Ingest(historian, alarms, registry)
    session = edge_session()
    birth(ingest, session)  # before any UNS message: Sparkplug is the tag's only source
    ingest.handle(msg(LEVEL, uns(0.55, T0_MS + 50, source="gateway:edge1")))
    data = [
        session.node_data({LEVEL: 0.9, "Inputs/Counter": 7}, timestamp_ms=T0_MS + 100),
        session.device_data("pump", {SPEED: 42.5}, timestamp_ms=T0_MS + 100),
    ]
    for message in data:
        assert message is not None
        ingest.handle(msg(message.topic, message.payload))
    ingest.handle(msg(LEVEL, uns(0.6, T0_MS + 100, source="gateway:edge1")))
    ingest.flush()

    assert values(historian, LEVEL) == [0.5, 0.55, 0.6]  # the birth, then UNS only
    assert sources(historian, LEVEL) == {"spBv1.0/g1/edge1", "gateway:edge1"}
    assert ingest.stats.other_transport == 1  # the NDATA level
    assert values(historian, "g1/edge1/Inputs/Counter") == [0, 7]  # not a UNS path: kept
    assert values(historian, SPEED) == [0.0, 42.5]  # no UNS source: kept
    assert registry.tag(LEVEL).value == 0.6
    assert alarms.statuses()[0].state is AlarmState.CLEARED_ACK  # 0.9 never reached them
    latest = historian.latest(LEVEL)
    assert latest is not None and (latest.value, latest.source) == (0.6, "gateway:edge1")


def test_dual_tags_are_held_by_uns_from_the_start_while_births_still_tell_the_state(
    platform: tuple[SqliteHistorian, AlarmEngine, AssetRegistry],
) -> None:
    historian, alarms, registry = platform
    ingest = Ingest(historian, alarms, registry, dual_tags=[LEVEL, SPEED])
    session = edge_session()
    birth(ingest, session)
    assert ingest.stats.other_transport == 2  # LEVEL and SPEED in the births
    assert registry.status("acme/lyon/water/line-1/tank-cell/tank-1").state == "online"
    ddeath = session.device_death("pump", timestamp_ms=T0_MS + 100)
    ingest.handle(msg(ddeath.topic, ddeath.payload))
    assert registry.status("acme/lyon/water/line-1/pumps/pump-1").state == "stale"
    ingest.handle(msg(LEVEL, uns(0.5, T0_MS, source="gateway:edge1")))
    ingest.flush()
    assert {t.tag for t in historian.tags()} == {
        LEVEL,
        "g1/edge1/Inputs/Counter",
        "g1/edge1/pump/Running",
    }
    assert sources(historian, LEVEL) == {"gateway:edge1"}


def test_prefer_sparkplug_stores_uns_only_while_no_sparkplug_session_holds_the_tag(
    platform: tuple[SqliteHistorian, AlarmEngine, AssetRegistry],
) -> None:
    historian, alarms, registry = platform
    ingest = Ingest(historian, alarms, registry, prefer="sparkplug", dual_tags=[SPEED])
    ingest.handle(msg(SPEED, uns(1.0, T0_MS - 100)))  # dual: expected from Sparkplug
    ingest.handle(msg(LEVEL, uns(0.4, T0_MS - 100)))  # no Sparkplug source (yet)
    session = edge_session()
    birth(ingest, session)
    ingest.handle(msg(SPEED, uns(2.0, T0_MS + 50)))  # the device is born: left out
    ingest.handle(msg(LEVEL, uns(0.45, T0_MS + 50)))  # the node is born: left out
    ddeath = session.device_death("pump", timestamp_ms=T0_MS + 100)
    ingest.handle(msg(ddeath.topic, ddeath.payload))
    ingest.handle(msg(SPEED, uns(None, T0_MS + 150, quality="BadCommunicationError")))
    ingest.handle(msg(LEVEL, uns(0.47, T0_MS + 150)))  # its node lives: left out
    dbirth = session.device_birth("pump", timestamp_ms=T0_MS + 200)
    ingest.handle(msg(dbirth.topic, dbirth.payload))
    ingest.handle(msg(SPEED, uns(3.0, T0_MS + 250)))
    ndeath = session.disconnect(timestamp_ms=T0_MS + 300)
    ingest.handle(msg(ndeath.topic, ndeath.payload))
    ingest.handle(msg(SPEED, uns(4.0, T0_MS + 350)))  # no session at all: stored
    ingest.handle(msg(LEVEL, uns(0.5, T0_MS + 350)))
    ingest.flush()

    assert values(historian, SPEED) == [0.0, None, 0.0, 4.0]  # birth, UNS, rebirth, UNS
    assert values(historian, LEVEL) == [0.4, 0.5, 0.5]  # UNS, birth, UNS
    assert ingest.stats.other_transport == 5
    with pytest.raises(ValueError, match="prefer"):
        Ingest(historian, alarms, registry, prefer="opcua")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- run(): real brokers


async def test_run_ingests_uns_from_a_real_broker_and_survives_bad_payloads(
    broker_url: str, enterprise: str
) -> None:
    historian, alarms, registry = SqliteHistorian(":memory:"), AlarmEngine(), AssetRegistry()
    path = f"{enterprise}/lyon/water/line-1/tank-cell/tank-1/level"
    alarms.replace_definitions([AlarmDefinition(name="LEVEL_HI", tag=path, kind="HI", limit=1.8)])
    reports: list[IngestStats] = []
    ingest = Ingest(historian, alarms, registry, uns_roots=[enterprise], on_stats=reports.append)
    async with MqttClient(broker_url, subscriptions=ingest.subscriptions) as client:
        task = asyncio.create_task(ingest.run(client), name="test-ingest")
        async with MqttClient(broker_url) as publisher:
            await publisher.publish(f"{enterprise}/lyon/short", uns(1.0), qos=1)
            await publisher.publish(path, b"{not json", qos=1)
            await publisher.publish(path, b'{"value": true}', qos=1)
            await publisher.publish(path, b"x" * 70_000, qos=1)
            for i, value in enumerate([1.0, 1.9, 1.5]):
                await publisher.publish(path, uns(value, T0_MS + i * 1000), qos=1)
        stats = await ingest.wait_until(lambda s: s.committed >= 3, timeout=10)
    await asyncio.wait_for(task, timeout=5)  # run() ends when the client closes

    assert values(historian, path) == [1.0, 1.9, 1.5]
    assert stats.bad == {"uns_topic": 1, "not_json": 1, "uns_field": 1, "oversized": 1}
    assert registry.tag(path).value == 1.5
    assert [e.kind for e in alarms.journal()] == ["raised", "cleared"]
    assert reports[-1].committed == 3  # the final report, when run() ended


async def test_a_uns_message_from_mosquitto_pub_is_ingested(enterprise: str) -> None:
    url = require_mosquitto()
    tool = shutil.which("mosquitto_pub")
    if tool is None:
        if os.environ.get("SIMLAB_REQUIRE_TOOLS") == "1":
            pytest.fail("mosquitto_pub not found (SIMLAB_REQUIRE_TOOLS=1)")
        pytest.skip("mosquitto_pub not found: apt-get install -y mosquitto-clients")
    historian, alarms, registry = SqliteHistorian(":memory:"), AlarmEngine(), AssetRegistry()
    path = f"{enterprise}/lyon/water/line-1/tank-cell/tank-1/level"
    ingest = Ingest(historian, alarms, registry, uns_roots=[enterprise])
    async with MqttClient(url, subscriptions=ingest.subscriptions) as client:
        task = asyncio.create_task(ingest.run(client), name="test-ingest")
        process = await asyncio.create_subprocess_exec(
            tool, "-h", "127.0.0.1", "-p", "1883", "-q", "1", "-t", path, "-m", uns(2.5).decode()
        )
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
        await ingest.wait_until(lambda s: s.committed >= 1, timeout=10)
    await asyncio.wait_for(task, timeout=5)
    assert values(historian, path) == [2.5]


async def test_run_ingests_sparkplug_requests_rebirth_on_a_gap_and_sees_the_death(
    broker_url: str, enterprise: str
) -> None:
    group = f"g{uuid.uuid4().hex[:10]}"
    level = f"{enterprise}/lyon/water/line-1/tank-cell/tank-1/level"
    speed = f"{enterprise}/lyon/water/line-1/pumps/pump-1/speed"
    tank = level.rsplit("/", 1)[0]
    session = EdgeNodeSession(
        group,
        "edge1",
        {"pump": [MetricDef(speed, DataType.Float, 0.0)]},
        node_metrics=[MetricDef(level, DataType.Double, 0.5), MetricDef("Counter", DataType.Int32)],
    )
    historian, alarms, registry = SqliteHistorian(":memory:"), AlarmEngine(), AssetRegistry()
    ingest = Ingest(historian, alarms, registry, uns_roots=[enterprise], sparkplug_groups=[group])
    ncmd = f"spBv1.0/{group}/NCMD/edge1"
    async with (
        MqttClient(broker_url, subscriptions=ingest.subscriptions) as client,
        MqttClient(broker_url, subscriptions={ncmd: 1}) as edge_commands,
    ):
        task = asyncio.create_task(ingest.run(client), name="test-ingest")
        async with MqttClient(broker_url, will=will_of(session)) as edge:
            await publish_all(edge, session.on_connect(timestamp_ms=T0_MS))
            data = session.node_data({level: 0.75, "Counter": -7}, timestamp_ms=T0_MS + 100)
            device = session.device_data("pump", {speed: 12.5}, timestamp_ms=T0_MS + 200)
            assert data is not None and device is not None
            await publish_all(edge, [data, device])
            await ingest.wait_until(lambda s: s.committed >= 6, timeout=10)
            assert values(historian, level) == [0.5, 0.75]
            assert values(historian, speed) == [0.0, 12.5]
            assert values(historian, f"{group}/edge1/Counter") == [None, -7]
            assert registry.status(tank).state == "online"

            # A lost NDATA: the next one shows a gap and the platform asks for a rebirth.
            session.node_data({level: 0.8}, timestamp_ms=T0_MS + 300)
            after = session.node_data({level: 0.9}, timestamp_ms=T0_MS + 400)
            assert after is not None
            await edge.publish(after.topic, after.payload)
            async with asyncio.timeout(10):
                request = await anext(edge_commands.messages())
            assert request.topic == ncmd
            command = session.handle_command(ncmd, request.payload, timestamp_ms=T0_MS + 500)
            assert command.rebirth
            await publish_all(edge, list(command.messages))  # NBIRTH + DBIRTH again
            await ingest.wait_until(lambda s: s.rebirths_requested == 1, timeout=10)
            await ingest.wait_until(lambda _: registry.tag(level).ts == T0 + 0.5, timeout=10)

            # The edge node vanishes: the broker publishes its Will, the NDEATH.
            await edge.drop_connection()
            await ingest.wait_until(lambda _: registry.status(tank).state == "stale", timeout=10)
            await edge.connected(timeout=10)  # it comes back by itself (no new birth here)
    await asyncio.wait_for(task, timeout=5)

    assert values(historian, level) == [0.5, 0.75, 0.9, 0.9]  # the rebirth's value at +0.5 s
    assert ingest.stats.gaps == 1 and ingest.stats.bad == {"seq_gap": 1}
    assert "NDEATH" in registry.status(f"{enterprise}/lyon/water/line-1/pumps/pump-1").reason
