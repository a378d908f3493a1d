"""SensorPublisher: MQTT-native smart sensors publishing their own tags, on a real broker.

The pump station's vib1 is a wireless vibration sensor with ``mqtt: {interval: 1.0}``. The
lab here is wired as the runtime must wire it: the publisher ticks after every lab step
(``PublishingLab``), on the lab's virtual clock. An independent MqttClient checks what
arrives. No endpoint is served: the sensor's firmware reads its own tags in-process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

import pytest

from simlab.bus.broker import EmbeddedBroker
from simlab.bus.client import Message, MqttClient
from simlab.bus.publisher import (
    DeviceReading,
    SensorPublisher,
    as_tag_type,
    device_reader,
    tag_unit,
)
from simlab.bus.sparkplug import (
    BD_SEQ,
    DataType,
    Metric,
    decode_payload,
    encode_payload,
    node_topic,
    rebirth_request,
)
from simlab.bus.uns import UnsMessage
from simlab.errors import LabError
from simlab.lab import Lab
from simlab.scenario import load_scenario, resolve_scenario
from simlab.scenario.model import Scenario

EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SENSOR = "vib1"


def pump_station(convention: str = "uns") -> Scenario:
    scenario = load_scenario(resolve_scenario("pump-station"))
    devices = []
    for device in scenario.devices:
        if device.name == SENSOR and convention != "uns":
            mqtt = device.mqtt.model_copy(update={"convention": convention})  # type: ignore[union-attr]
            devices.append(device.model_copy(update={"mqtt": mqtt}))
        else:
            devices.append(device)
    return scenario.model_copy(update={"devices": devices})


class PublishingLab(Lab):
    """A lab wired as the runtime must be: ``publisher.tick()`` after every step.

    It also keeps the sensor's tag values at each whole simulated second, to check what
    was published against what the device held at that instant.
    """

    publisher: SensorPublisher | None = None

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario)
        self.trace: dict[int, dict[str, Any]] = {self.now_ms(): dict(self.devices[SENSOR].tags)}

    def now_ms(self) -> int:
        return round(self.clock.datetime_at(self.time).timestamp() * 1000)

    def step(self) -> None:
        super().step()
        self.trace[self.now_ms()] = dict(self.devices[SENSOR].tags)
        if self.publisher is not None:
            self.publisher.tick()

    def publishing(self, url: str) -> SensorPublisher:
        self.publisher = SensorPublisher(
            self.scenario, device_reader(self.devices), url, self.now_ms
        )
        return self.publisher


class Recorder:
    """Messages an independent subscriber receives, with bounded waits."""

    def __init__(self, client: MqttClient) -> None:
        self.client = client
        self.messages: list[Message] = []
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Recorder:
        self._task = asyncio.create_task(self._pump())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task is not None
        self._task.cancel()

    async def _pump(self) -> None:
        async for message in self.client.messages():
            self.messages.append(message)
            async with self._changed:
                self._changed.notify_all()

    async def count(
        self, predicate: Callable[[Message], bool], n: int, *, after: int = 0, timeout: float = 5.0
    ) -> list[Message]:
        try:
            async with asyncio.timeout(timeout), self._changed:
                while True:
                    found = [m for m in self.messages[after:] if predicate(m)]
                    if len(found) >= n:
                        return found
                    await self._changed.wait()
        except TimeoutError:
            found = [m for m in self.messages[after:] if predicate(m)]
            pytest.fail(f"{len(found)} of {n} matching messages within {timeout} s")


@pytest.fixture
async def broker() -> AsyncIterator[str]:
    async with EmbeddedBroker() as embedded:
        yield embedded.url


@pytest.fixture
async def bus(broker: str) -> AsyncIterator[Recorder]:
    async with MqttClient(broker) as client:
        await client.subscribe("acme/#", 1)
        await client.subscribe("spBv1.0/#", 1)
        async with Recorder(client) as recorder:
            yield recorder


def topic_is(topic: str) -> Callable[[Message], bool]:
    return lambda m: m.topic == topic


# --- UNS ---------------------------------------------------------------------------------


async def test_vib1_publishes_vibration_rms_by_itself_every_interval(
    broker: str, bus: Recorder
) -> None:
    lab = PublishingLab(pump_station())
    vibration = lab.scenario.uns_path(SENSOR, "vibration_rms")
    housing = lab.scenario.uns_path(SENSOR, "housing_temperature")
    assert vibration == "acme/riverside/pumping/station1/pumps/motor1/vibration_rms"
    async with lab.publishing(broker) as publisher:
        assert publisher.devices == (SENSOR,)
        await lab.run_for(3.0)
        await publisher.flush()
    got = await bus.count(topic_is(vibration), 4)
    assert len(await bus.count(topic_is(housing), 4)) == 4
    assert not [m for m in bus.messages if "station_plc" in m.topic or "/pump1/" in m.topic]
    assert all(m.qos == 1 for m in got)
    messages = [UnsMessage.from_json(m.payload) for m in got]
    assert [m.ts_ms - EPOCH_MS for m in messages] == [0, 1000, 2000, 3000]
    for message in messages:
        assert (message.source, message.unit, message.quality) == (SENSOR, "mm/s", "Good")
        assert message.value == lab.trace[message.ts_ms]["vibration_rms"]
    assert messages[-1].value == lab.devices[SENSOR].tags["vibration_rms"]
    assert publisher.stats.samples == 4
    assert publisher.stats.uns_published == 8
    async with MqttClient(broker) as late:  # retained: a newcomer gets the last value
        await late.subscribe(vibration, 1)
        async with Recorder(late) as newcomer:
            copies = await newcomer.count(topic_is(vibration), 1)  # amqtt may send it twice
    assert {(m.retain, UnsMessage.from_json(m.payload)) for m in copies} == {(True, messages[-1])}


async def test_an_offline_sensor_publishes_bad_quality_and_no_value(
    broker: str, bus: Recorder
) -> None:
    lab = PublishingLab(pump_station())
    vibration = lab.scenario.uns_path(SENSOR, "vibration_rms")
    housing = lab.scenario.uns_path(SENSOR, "housing_temperature")
    async with lab.publishing(broker) as publisher:
        lab.inject_fault({"kind": "offline", "target": f"{SENSOR}.vibration_rms"})
        await lab.run_for(1.0)
        await publisher.flush()
    first, offline = (
        UnsMessage.from_json(m.payload) for m in await bus.count(topic_is(vibration), 2)
    )
    assert first.quality == "Good"
    assert (offline.value, offline.quality, offline.severity) == (
        None,
        "BadCommunicationError",
        "Bad",
    )
    temperature = UnsMessage.from_json((await bus.count(topic_is(housing), 2))[-1].payload)
    assert temperature.quality == "Good"


async def test_a_late_tick_publishes_once_then_the_cadence_resumes(
    broker: str, bus: Recorder
) -> None:
    scenario = pump_station()
    clock = {"now": EPOCH_MS}
    readings = DeviceReading(
        {"vibration_rms": 2.5, "housing_temperature": 40.0},
        {"vibration_rms": "Good", "housing_temperature": "UncertainEngineeringUnitsExceeded"},
    )
    publisher = SensorPublisher(scenario, lambda name: readings, broker, lambda: clock["now"])
    publisher.tick()  # before it starts: nothing
    async with publisher:  # the power-up sample, at +0
        for offset in (500, 999, 1000, 3700, 3999, 4000):
            clock["now"] = EPOCH_MS + offset
            publisher.tick()
        await publisher.flush()
    topic = scenario.uns_path(SENSOR, "housing_temperature")
    messages = [UnsMessage.from_json(m.payload) for m in await bus.count(topic_is(topic), 4)]
    assert [m.ts_ms - EPOCH_MS for m in messages] == [0, 1000, 3700, 4000]
    assert {(m.value, m.quality, m.unit) for m in messages} == {
        (40.0, "UncertainEngineeringUnitsExceeded", "degC")
    }
    assert publisher.stats.samples == 4


# --- Sparkplug ----------------------------------------------------------------------------


async def test_a_sparkplug_sensor_is_its_own_edge_node(broker: str, bus: Recorder) -> None:
    lab = PublishingLab(pump_station("sparkplug"))
    names = {lab.scenario.uns_path(SENSOR, tag): tag for tag in lab.devices[SENSOR].tags}
    nbirth, ndata, ndeath = (
        node_topic("simlab", kind, SENSOR) for kind in ("NBIRTH", "NDATA", "NDEATH")
    )
    async with lab.publishing(broker) as publisher:
        [birth_message] = await bus.count(topic_is(nbirth), 1)
        await lab.run_for(2.0)
        await publisher.flush()
        data = [decode_payload(m.payload) for m in await bus.count(topic_is(ndata), 2)]
        # a host asks for a rebirth, then tries to write: a sensor accepts no writes
        client = publisher.client(SENSOR)
        request = rebirth_request("simlab", SENSOR, timestamp_ms=lab.now_ms())
        async with MqttClient(broker) as host:
            await host.publish(request.topic, request.payload, qos=1)
            await bus.count(topic_is(nbirth), 2)
            write = Metric(name=next(iter(names)), datatype=DataType.Double, value=1.0)
            payload = encode_payload([write], seq=None, timestamp_ms=lab.now_ms())
            await host.publish(node_topic("simlab", "NCMD", SENSOR), payload, qos=1)
            await publisher.wait_stats(lambda s: s.rejected_commands == 1)
            await client.drop_connection()  # and the network drops: Will, then a new birth
            await bus.count(topic_is(ndeath), 1)
            await bus.count(topic_is(nbirth), 3, timeout=10.0)
    assert not [m for m in bus.messages if m.topic.startswith("acme/")], "sparkplug only"
    birth = decode_payload(birth_message.payload)
    assert birth.seq == 0
    assert birth.metric(BD_SEQ).value == 0  # type: ignore[union-attr]
    aliases = {}
    for metric in birth.metrics:
        if metric.name in names:
            aliases[metric.alias] = names[metric.name]
            assert metric.value == lab.trace[EPOCH_MS][names[metric.name]]
    assert set(aliases.values()) == set(names.values())
    assert [p.seq for p in data] == [1, 2]
    for sample in data:
        assert sample.metrics, "the noisy readings changed"
        assert sample.timestamp_ms is not None
        for metric in sample.metrics:
            assert metric.name is None, "NDATA by alias"
            assert metric.value == lab.trace[sample.timestamp_ms][aliases[metric.alias]]
    will = decode_payload(next(m for m in bus.messages if m.topic == ndeath).payload)
    births = [decode_payload(m.payload) for m in bus.messages if m.topic == nbirth]
    assert will.metric(BD_SEQ).value == 0  # type: ignore[union-attr]
    assert [b.metric(BD_SEQ).value for b in births[:3]] == [0, 0, 1]  # type: ignore[union-attr]
    assert publisher.stats.rebirths == 1
    assert publisher.stats.rejected_commands == 1
    assert publisher.stats.births == 3


# --- configuration and helpers ------------------------------------------------------------


def test_only_mqtt_sensors_can_be_published() -> None:
    scenario = pump_station()

    def reader(name: str) -> DeviceReading:
        raise AssertionError("not called")

    with pytest.raises(LabError, match="'station_plc' is not an MQTT-native sensor.*vib1"):
        SensorPublisher(scenario, reader, "mqtt://127.0.0.1:1", lambda: 0, devices=["station_plc"])
    assert SensorPublisher(scenario, reader, "mqtt://127.0.0.1:1", lambda: 0).devices == (SENSOR,)


def test_units_and_types_follow_the_tag() -> None:
    scenario = pump_station()
    tags = {t.name: t for d in scenario.devices for t in d.tags}
    assert tag_unit(scenario, SENSOR, tags["vibration_rms"]) == "mm/s"
    assert tag_unit(scenario, SENSOR, tags["housing_temperature"]) == "degC"  # from the signal
    assert tag_unit(scenario, "station_plc", tags["motor_running"]) is None
    assert as_tag_type("int", 6.0) == 6 and type(as_tag_type("int", 6.0)) is int
    assert as_tag_type("bool", "true") is True
    assert as_tag_type("float", 3) == 3.0
    assert as_tag_type("string", 12) == "12"
