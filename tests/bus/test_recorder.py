"""BusRecorder against real brokers: what it records, filters, waits for, and the retained probe."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import pytest

from simlab.bus.broker import EmbeddedBroker
from simlab.bus.client import BusError, MqttClient
from simlab.bus.recorder import BusRecorder, RecordedMessage, topic_matches


class FakeLabClock:
    """Stands in for ``lambda: lab.time``: simulated seconds the test moves by hand."""

    def __init__(self) -> None:
        self.time = 0.0

    def __call__(self) -> float:
        return self.time


async def test_records_every_field_with_the_lab_time(broker_url: str, topic_prefix: str) -> None:
    clock = FakeLabClock()
    level, state = f"{topic_prefix}/tank1/level", f"{topic_prefix}/pump/state"
    async with (
        BusRecorder(broker_url, now=clock, topic_filter=f"{topic_prefix}/#") as recorder,
        MqttClient(broker_url) as publisher,
    ):
        clock.time = 12.5
        before = time.monotonic()
        await publisher.publish(level, b"1.25", qos=1)
        await recorder.wait_for(level)
        clock.time = 13.0
        await publisher.publish(state, b"\x00\xff", qos=0)
        await publisher.publish(level, b"1.5", qos=1)
        got = await recorder.wait_for(f"{topic_prefix}/#", count=3)
    assert [m.topic for m in got] == [level, state, level]
    first = got[0]
    assert (first.payload, first.qos, first.retain, first.sim_time) == (b"1.25", 1, False, 12.5)
    assert before <= first.monotonic <= time.monotonic()
    assert [m.index for m in got] == [0, 1, 2]
    assert got[1].sim_time == 13.0
    assert got[1].text() is None  # not UTF-8
    assert first.text() == "1.25"
    # what was recorded stays readable after the recorder stopped
    assert recorder.messages(f"{topic_prefix}/+/level") == [got[0], got[2]]
    assert recorder.topics() == [level, state]
    assert len(recorder) == 3


async def test_retained_copies_are_flagged_and_probed(embedded_broker: EmbeddedBroker) -> None:
    url = embedded_broker.url
    clock = FakeLabClock()
    async with MqttClient(url) as publisher:
        await publisher.publish("site/old", b"7", qos=1, retain=True)
        async with BusRecorder(url, now=clock) as recorder:
            (old,) = await recorder.wait_for("site/old")
            assert old.retain  # delivered because of the new subscription
            await publisher.publish("site/kept", b"1", qos=1, retain=True)
            await publisher.publish("site/live", b"2", qos=1, retain=False)
            await publisher.publish("site/gone", b"3", qos=1, retain=True)
            await publisher.publish("site/gone", b"", qos=1, retain=True)  # deletes it
            live = await recorder.wait_for("site/#", count=5)
            # a live message is never flagged, however it was published (MQTT-3.3.1-9)
            assert not any(m.retain for m in live[1:])
            snapshot = await recorder.retained("site/#", quiet_s=0.2)
    assert sorted(snapshot) == ["site/kept", "site/old"]
    assert snapshot["site/kept"].payload == b"1"
    assert all(isinstance(m, RecordedMessage) and m.retain for m in snapshot.values())
    assert recorder.retained_snapshot == snapshot
    assert len(recorder) == 5  # the probe's copies are not added to the recording


async def test_wait_for_times_out_saying_what_came(embedded_broker: EmbeddedBroker) -> None:
    async with (
        BusRecorder(embedded_broker.url, now=FakeLabClock()) as recorder,
        MqttClient(embedded_broker.url) as publisher,
    ):
        await publisher.publish("a/b", b"1", qos=1)
        await recorder.wait_for("a/b")
        with pytest.raises(BusError, match=r"got 0 of 1 messages on 'x/#' .*topics seen: a/b"):
            await recorder.wait_for("x/#", timeout=0.2)


async def test_max_messages_counts_the_dropped(embedded_broker: EmbeddedBroker) -> None:
    async with (
        BusRecorder(embedded_broker.url, now=FakeLabClock(), max_messages=2) as recorder,
        MqttClient(embedded_broker.url) as publisher,
    ):
        for i in range(4):
            await publisher.publish("n", str(i).encode(), qos=1)
        async with asyncio.timeout(5):
            while recorder.dropped < 2:  # the two over the limit are counted, not kept
                await asyncio.sleep(0.01)
    assert [m.payload for m in recorder.all] == [b"0", b"1"]
    assert recorder.dropped == 2
    with pytest.raises(BusError, match="max_messages"):
        BusRecorder(embedded_broker.url, now=FakeLabClock(), max_messages=0)


async def test_stop_is_idempotent_and_a_missing_broker_is_reported(
    free_port: Callable[[], int], embedded_broker: EmbeddedBroker
) -> None:
    recorder = BusRecorder(embedded_broker.url, now=FakeLabClock())
    await recorder.start()
    await recorder.stop()
    await recorder.stop()
    assert recorder.all == []
    port = free_port()
    with pytest.raises(BusError, match="cannot reach the MQTT broker"):
        async with BusRecorder(f"mqtt://127.0.0.1:{port}", now=FakeLabClock()):
            pass


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("#", "a/b", True),
        ("#", "$SYS/broker", False),
        ("+/b", "$SYS/b", False),
        ("$SYS/#", "$SYS/broker/load", True),
        ("a/#", "a", True),
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
        ("a/+", "a/b/c", False),
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("+", "a", True),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


async def test_a_failing_clock_does_not_stop_the_recording(
    embedded_broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_clock() -> float:
        raise RuntimeError("the lab is gone")

    async with (
        BusRecorder(embedded_broker.url, now=broken_clock) as recorder,
        MqttClient(embedded_broker.url) as publisher,
    ):
        await publisher.publish("a", b"1", qos=1)
        await publisher.publish("a", b"2", qos=1)
        got = await recorder.wait_for("a", count=2)
    assert [m.payload for m in got] == [b"1", b"2"]
    assert all(math.isnan(m.sim_time) for m in got)
    assert "lab clock callable failed" in caplog.text
