"""EdgeGateway end to end: a serving lab, real Modbus/OPC UA clients, a real broker, and an
independent subscriber (MqttClient, and ``mosquitto_sub`` once) checking what arrives.

The lab's clock is virtual: it moves only through ``lab.run_for``, so the values on the bus
are compared with the device tags at the same instant. Most tests call ``poll_once()``
themselves and give the gateway an hour-long poll interval, so no cycle happens behind
their back; one test runs the wall-clock loop. The water tank's gateway polls plc1 over
Modbus only, so most tests leave its OPC UA server out (it takes a second to start); the
first test runs the bundled scenario with it (only the poll interval is stretched).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

from simlab.addresses import EndpointAddress
from simlab.bus.broker import EmbeddedBroker
from simlab.bus.client import Message, MqttClient, parse_broker_url
from simlab.bus.gateway import EdgeGateway, dual_transport_tags
from simlab.bus.sparkplug import (
    BD_SEQ,
    REBIRTH,
    DataType,
    Metric,
    Payload,
    decode_payload,
    device_topic,
    encode_payload,
    rebirth_request,
)
from simlab.bus.uns import UnsMessage
from simlab.errors import LabError
from simlab.lab import Lab
from simlab.scenario import load_scenario, resolve_scenario
from simlab.scenario.devices import ModbusTagSpec
from simlab.scenario.integration import GatewaySpec
from simlab.scenario.model import Scenario

GROUP = "simlab"
EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, the scenarios' epoch


# --- helpers -------------------------------------------------------------------------------


def scenario(
    name: str,
    *,
    opcua: bool = False,
    gateway: dict[str, Any] | None = None,
    uns: dict[str, Any] | None = None,
) -> Scenario:
    """A bundled scenario; OPC UA servers left out unless ``opcua``; gateway/uns fields set.

    The poll interval defaults to an hour: tests drive the cycles with ``poll_once()``.
    """
    loaded = load_scenario(resolve_scenario(name))
    devices = (
        loaded.devices if opcua else [d.model_copy(update={"opcua": None}) for d in loaded.devices]
    )
    assert loaded.gateway is not None
    fields = {**loaded.gateway.model_dump(), "poll_interval": 3600.0, **(gateway or {})}
    spec = GatewaySpec.model_validate(fields)
    update: dict[str, Any] = {"devices": devices, "gateway": spec}
    if uns:
        update["uns"] = loaded.uns.model_copy(update=uns)
    return loaded.model_copy(update=update)


def lab_now_ms(lab: Lab) -> Callable[[], int]:
    """The lab's simulated time in ms since the Unix epoch: what the lab gives the gateway."""
    return lambda: round(lab.clock.datetime_at(lab.time).timestamp() * 1000)


def gateway(lab: Lab, url: str, **options: Any) -> EdgeGateway:
    return EdgeGateway(lab.scenario, lab.addresses(), url, now_ms=lab_now_ms(lab), **options)


def tolerance(spec: ModbusTagSpec | None) -> float:
    """Resolution of a value read through its register map."""
    if spec is None or spec.type in ("float32", "float64"):
        return 1e-6
    return 0.0 if spec.type == "bool" else 0.5 / abs(spec.gain) + 1e-9


def assert_close(lab: Lab, device: str, tag: str, value: object) -> None:
    expected = lab.devices[device].tags[tag]
    spec = lab.devices[device].specs[tag]
    if spec.type == "bool":
        assert value is expected, tag
    elif spec.type == "int":
        assert type(value) is int, f"{tag}: an int tag is published as an integer"
        assert value == expected, tag
    else:
        assert isinstance(value, float), tag
        assert value == pytest.approx(expected, abs=tolerance(spec.modbus), rel=1e-6), tag


class Recorder:
    """Everything an independent subscriber receives, with bounded waits for it."""

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

    def mark(self) -> int:
        """Index of the next message: ``after=`` for "arrived from now on"."""
        return len(self.messages)

    async def next(
        self, predicate: Callable[[Message], bool], *, after: int = 0, timeout: float = 5.0
    ) -> Message:
        """The first message from ``after`` on that matches, waiting for it if need be."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                while True:
                    for message in self.messages[after:]:
                        if predicate(message):
                            return message
                    await self._changed.wait()
        except TimeoutError:
            seen = [m.topic for m in self.messages[after:]][-5:]
            pytest.fail(f"no matching message within {timeout} s (last topics: {seen})")

    async def count(
        self, predicate: Callable[[Message], bool], n: int, *, after: int = 0, timeout: float = 5.0
    ) -> list[Message]:
        """Wait for ``n`` matching messages from ``after`` on; return them."""
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


async def recorder(url: str, *filters: str) -> tuple[MqttClient, Recorder]:
    client = MqttClient(url)
    await client.start()
    for topic_filter in filters:
        await client.subscribe(topic_filter, 1)
    return client, await Recorder(client).__aenter__()


async def started(bus: Recorder, lab: Lab) -> Payload:
    """Wait for the gateway's start on the bus: the DBIRTH of plc1 and every UNS tag.

    Returns the DBIRTH payload.
    """
    dbirth = await bus.next(lambda m: m.topic == spb("DBIRTH", "plc1"))
    await bus.count(under("acme/"), len(modbus_tags(lab, "plc1")))
    return decode_payload(dbirth.payload)


def under(prefix: str) -> Callable[[Message], bool]:
    return lambda m: m.topic.startswith(prefix)


def spb(message_type: str, device: str | None = None, node: str = "edge1") -> str:
    return f"spBv1.0/{GROUP}/{message_type}/{node}" + (f"/{device}" if device else "")


def uns_values(messages: Iterable[Message]) -> dict[str, UnsMessage]:
    """The last UNS message of each topic (each payload strictly validated)."""
    return {m.topic: UnsMessage.from_json(m.payload) for m in messages}


def metric_value(payload: Payload, name: str) -> Any:
    metric = payload.metric(name)
    assert metric is not None, name
    return metric.value


@pytest.fixture
async def broker() -> AsyncIterator[str]:
    async with EmbeddedBroker() as embedded:
        yield embedded.url


@pytest.fixture
async def water_tank(tmp_path: Path) -> AsyncIterator[Lab]:
    """The water tank served over Modbus (no OPC UA: the gateway does not use it)."""
    async with Lab(scenario("water-tank"), serve=True, auto_ports=True, state_dir=tmp_path) as lab:
        yield lab


def modbus_tags(lab: Lab, device: str) -> list[str]:
    return [t.name for t in lab.devices[device].spec.tags if t.modbus is not None]


# --- UNS -----------------------------------------------------------------------------------


async def test_uns_topics_are_retained_with_the_json_contract_and_the_device_values(
    broker: str, tmp_path: Path
) -> None:
    bundled = scenario("water-tank", opcua=True)
    lab = Lab(bundled, serve=True, auto_ports=True, state_dir=tmp_path)
    async with lab, gateway(lab, broker) as gw:
        await lab.run_for(20.0)
        await gw.poll_once()
        polled_at = lab_now_ms(lab)()
        tags = modbus_tags(lab, "plc1")
        client, late = await recorder(broker, "acme/#")  # subscribes after the fact
        try:
            got = await late.count(under("acme/"), len(tags))
        finally:
            await client.close()
    topics = {bundled.uns_path("plc1", tag): tag for tag in tags}
    assert {m.topic for m in got} == set(topics)
    assert "heater_cmd" not in tags, "a tag without a Modbus address is not polled"
    assert all(m.retain and m.qos == 1 for m in got)
    for topic, message in uns_values(got).items():
        tag = topics[topic]
        assert message.source == "gateway:edge1"
        assert message.quality == "Good"
        # Modbus has no timestamps: the lab time of the poll that last published the tag
        assert message.ts_ms in (EPOCH_MS, polled_at), tag
        assert_close(lab, "plc1", tag, message.value)
    stamps = {topics[m.topic]: UnsMessage.from_json(m.payload).ts_ms for m in got}
    assert stamps["level"] == polled_at, "the level changed: published by the last poll"
    assert stamps["auto"] == EPOCH_MS, "auto never changed: reported once, at start"
    units = {topics[m.topic]: UnsMessage.from_json(m.payload).unit for m in got}
    assert units["level"] == units["level_sp"] == "m"
    assert units["pump_speed"] == units["valve_cmd"] == "%"
    assert units["inflow"] == "m3/h", "inherited from the plant signal"
    assert units["pump_run"] is None, "booleans have no unit"
    assert float(lab.devices["plc1"].tags["inflow"]) > 1.0, "the values are live ones"


async def test_mosquitto_sub_reads_the_gateway_uns(
    mosquitto_url: str, mosquitto_sub: str, tmp_path: Path
) -> None:
    site = f"t{uuid.uuid4().hex[:10]}"  # the shared Mosquitto: topics of our own
    isolated = scenario("water-tank", gateway={"publish": ["uns"]}, uns={"site": site})
    address = parse_broker_url(mosquitto_url)
    async with Lab(isolated, serve=True, auto_ports=True, state_dir=tmp_path) as lab:
        tags = modbus_tags(lab, "plc1")
        try:
            async with gateway(lab, mosquitto_url) as gw:
                await lab.run_for(10.0)
                await gw.poll_once()
                process = await asyncio.create_subprocess_exec(
                    mosquitto_sub,
                    *("-h", address.host, "-p", str(address.port), "-t", f"acme/{site}/#"),
                    *("-v", "-C", str(len(tags)), "-W", "10"),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
                out, err = await asyncio.wait_for(process.communicate(), timeout=15)
                assert gw.stats.sparkplug_published == 0, "publish: [uns] only"
        finally:
            async with MqttClient(mosquitto_url) as cleaner:
                for tag in tags:
                    await cleaner.publish(isolated.uns_path("plc1", tag), b"", qos=1, retain=True)
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert len(lines) == len(tags)
    received = dict(line.split(" ", 1) for line in lines)
    assert set(received) == {isolated.uns_path("plc1", tag) for tag in tags}
    for tag in tags:
        message = UnsMessage.from_json(received[isolated.uns_path("plc1", tag)])
        assert_close(lab, "plc1", tag, message.value)


async def test_report_by_exception_with_a_heartbeat(broker: str, water_tank: Lab) -> None:
    lab, tags = water_tank, modbus_tags(water_tank, "plc1")
    client, bus = await recorder(broker, "acme/#")
    try:
        async with gateway(lab, broker) as gw:
            await bus.count(under("acme/"), len(tags))  # the first cycle: every tag
            assert gw.stats.uns_published == len(tags)
            await gw.poll_once()  # nothing changed in the lab: nothing is sent
            assert gw.stats.uns_published == len(tags)
            assert gw.stats.uns_unchanged == len(tags)
            mark = bus.mark()
            await lab.run_for(5.0)
            await gw.poll_once()
            changed = gw.stats.uns_published - len(tags)
            assert 0 < changed < len(tags), "only what changed (the level moves, auto does not)"
            got = await bus.count(under("acme/"), changed, after=mark)
            assert {UnsMessage.from_json(m.payload).ts_ms for m in got} == {EPOCH_MS + 5000}
            assert "auto" not in {m.topic.rsplit("/", 1)[1] for m in got}
            gw.heartbeat = 0.0  # every value is now older than the heartbeat: all again
            mark = bus.mark()
            await gw.poll_once()
            await bus.count(under("acme/"), len(tags), after=mark)
    finally:
        await client.close()


async def test_the_poll_loop_follows_the_wall_clock(broker: str, tmp_path: Path) -> None:
    fast = scenario("water-tank", gateway={"poll_interval": 0.05})
    async with Lab(fast, serve=True, auto_ports=True, state_dir=tmp_path) as lab:
        client, bus = await recorder(broker, "acme/#")
        level = fast.uns_path("plc1", "level")
        try:
            async with gateway(lab, broker) as gw:
                await gw.wait_stats(lambda s: s.polls >= 4, timeout=5.0)
                await lab.run_for(10.0)
                target = lab.devices["plc1"].tags["level"]
                polls = gw.stats.polls  # the next cycle but one started after run_for
                await gw.wait_stats(lambda s: s.polls >= polls + 2, timeout=5.0)
                assert gw.last_values["plc1"]["level"].value == pytest.approx(target, abs=1e-6)
                await bus.next(
                    lambda m: (
                        m.topic == level
                        and UnsMessage.from_json(m.payload).value == pytest.approx(target, abs=1e-6)
                    )
                )
            polls = gw.stats.polls
            await asyncio.sleep(0.2)
            assert gw.stats.polls == polls, "no cycle after the gateway stopped"
        finally:
            await client.close()


async def test_cdab_uint32_counters_of_the_bottling_line_arrive_right_over_modbus(
    broker: str, tmp_path: Path
) -> None:
    over_modbus = scenario(
        "bottling-line", gateway={"sources": [{"device": "line_plc", "protocol": "modbus"}]}
    )
    counters = ["bottles_in", "bottles_good", "bottles_rejected", "produced_count"]
    async with Lab(over_modbus, serve=True, auto_ports=True, state_dir=tmp_path) as lab:
        plc = lab.devices["line_plc"]
        assert {plc.specs[c].modbus.word_order for c in counters} == {"CDAB"}  # type: ignore[union-attr]
        async with gateway(lab, broker) as gw:
            await lab.run_for(40.0)
            await gw.poll_once()
            client, late = await recorder(broker, "acme/#")
            try:
                got = uns_values(
                    await late.count(under("acme/"), len(modbus_tags(lab, "line_plc")))
                )
            finally:
                await client.close()
    assert float(plc.tags["bottles_in"]) > 20, "the line has been running"
    for tag in [*counters, "state"]:
        message = got[over_modbus.uns_path("line_plc", tag)]
        assert message.value == int(plc.tags[tag]), tag  # a word swap would give x * 65536
        assert type(message.value) is int, tag
    assert got[over_modbus.uns_path("line_plc", "fill_volume")].value == pytest.approx(
        plc.tags["fill_volume"], abs=1e-4
    )


async def test_the_bottling_line_over_opc_ua_with_source_timestamps(
    broker: str, tmp_path: Path
) -> None:
    bundled = scenario("bottling-line", opcua=True)
    lab = Lab(bundled, serve=True, auto_ports=True, state_dir=tmp_path)
    async with lab, gateway(lab, broker) as gw:
        await lab.run_for(10.0)
        await gw.poll_once()
        now = lab_now_ms(lab)()
        plc = lab.devices["line_plc"]
        client, late = await recorder(broker, "acme/#")
        try:
            got = uns_values(await late.count(under("acme/"), len(plc.spec.tags)))
        finally:
            await client.close()
    assert gw.pollers.keys() == {("line_plc", "opcua")}
    for tag in plc.spec.tags:
        message = got[bundled.uns_path("line_plc", tag.name)]
        assert message.source == "gateway:edge2"
        assert message.quality == "Good"
        assert_close(lab, "line_plc", tag.name, message.value)
        assert EPOCH_MS <= message.ts_ms <= now, "the server's SourceTimestamp (lab time)"
    assert got[bundled.uns_path("line_plc", "state")].value == 6  # Execute
    assert got[bundled.uns_path("line_plc", "cmd_hold")].ts_ms == EPOCH_MS, "never changed"
    assert got[bundled.uns_path("line_plc", "fill_volume")].unit == "mL"


# --- Sparkplug B ---------------------------------------------------------------------------


async def test_sparkplug_births_then_ddata_by_alias(broker: str, water_tank: Lab) -> None:
    lab = water_tank
    client, bus = await recorder(broker, "spBv1.0/#")
    try:
        async with gateway(lab, broker) as gw:
            nbirth = await bus.next(lambda m: m.topic == spb("NBIRTH"))
            dbirth = await bus.next(lambda m: m.topic == spb("DBIRTH", "plc1"))
            await lab.run_for(10.0)
            await gw.poll_once()
            ddata = await bus.next(lambda m: m.topic == spb("DDATA", "plc1"))
    finally:
        await client.close()
    node = decode_payload(nbirth.payload)
    assert node.seq == 0
    assert metric_value(node, BD_SEQ) == 0
    assert metric_value(node, REBIRTH) is False
    birth = decode_payload(dbirth.payload)
    assert birth.seq == 1
    names = {m.name: m for m in birth.metrics}
    topics = {lab.scenario.uns_path("plc1", tag): tag for tag in modbus_tags(lab, "plc1")}
    assert set(names) == set(topics), "metric names are the tags' UNS paths"
    assert names[lab.scenario.uns_path("plc1", "level")].datatype is DataType.Double
    assert names[lab.scenario.uns_path("plc1", "auto")].datatype is DataType.Boolean
    by_alias = {m.alias: topics[m.name] for m in birth.metrics if m.name is not None}
    assert len(by_alias) == len(topics) and None not in by_alias
    data = decode_payload(ddata.payload)
    assert data.seq == 2
    assert data.metrics, "the level and the flows changed"
    assert all(m.name is None and m.alias in by_alias for m in data.metrics), "by alias only"
    for metric in data.metrics:
        assert_close(lab, "plc1", by_alias[metric.alias], metric.value)
    assert "auto" not in {by_alias[m.alias] for m in data.metrics}, "unchanged: not sent"
    assert gw.stats.births == 1


async def test_bdseq_of_the_will_matches_the_nbirth_and_increments_after_a_reconnect(
    broker: str, water_tank: Lab
) -> None:
    client, bus = await recorder(broker, "spBv1.0/#")
    try:
        async with gateway(water_tank, broker) as gw:
            first = await bus.next(lambda m: m.topic == spb("NBIRTH"))
            mark = bus.mark()
            await gw.client.drop_connection()  # the network cut: the broker sends the Will
            will = await bus.next(lambda m: m.topic == spb("NDEATH"), after=mark)
            second = await bus.next(lambda m: m.topic == spb("NBIRTH"), after=mark, timeout=10)
            rebirth = await bus.next(lambda m: m.topic == spb("DBIRTH", "plc1"), after=mark)
            mark = bus.mark()
        clean = await bus.next(lambda m: m.topic == spb("NDEATH"), after=mark)
    finally:
        await client.close()
    assert metric_value(decode_payload(first.payload), BD_SEQ) == 0
    death = decode_payload(will.payload)
    assert metric_value(death, BD_SEQ) == 0, "the Will carries the bdSeq of its NBIRTH"
    assert death.seq is None
    again = decode_payload(second.payload)
    assert metric_value(again, BD_SEQ) == 1, "a new connection, a new bdSeq"
    assert again.seq == 0
    assert decode_payload(rebirth.payload).seq == 1
    assert metric_value(decode_payload(clean.payload), BD_SEQ) == 1, "clean exit: NDEATH"
    assert gw.stats.births == 2


async def test_ncmd_rebirth_reemits_the_births(broker: str, water_tank: Lab) -> None:
    client, bus = await recorder(broker, "spBv1.0/#")
    try:
        async with gateway(water_tank, broker) as gw:
            await bus.next(lambda m: m.topic == spb("DBIRTH", "plc1"))
            mark = bus.mark()
            request = rebirth_request(GROUP, "edge1", timestamp_ms=lab_now_ms(water_tank)())
            await client.publish(request.topic, request.payload, qos=1)
            nbirth = await bus.next(lambda m: m.topic == spb("NBIRTH"), after=mark)
            dbirth = await bus.next(lambda m: m.topic == spb("DBIRTH", "plc1"), after=mark)
            await gw.wait_stats(lambda s: s.rebirths == 1)
    finally:
        await client.close()
    node = decode_payload(nbirth.payload)
    assert (node.seq, metric_value(node, BD_SEQ)) == (0, 0), "same connection, same bdSeq"
    assert decode_payload(dbirth.payload).seq == 1
    assert gw.stats.births == 2


async def test_dcmd_writes_level_sp_to_the_plc_and_a_read_only_tag_is_rejected(
    broker: str, water_tank: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    lab = water_tank
    plc = lab.devices["plc1"]
    level_sp = lab.scenario.uns_path("plc1", "level_sp")
    client, bus = await recorder(broker, "spBv1.0/#", "acme/#")
    topic = device_topic(GROUP, "DCMD", "edge1", "plc1")
    try:
        async with gateway(lab, broker) as gw:
            dbirth = await started(bus, lab)
            alias = next(m.alias for m in dbirth.metrics if m.name == level_sp)
            mark = bus.mark()
            now = lab_now_ms(lab)()
            write = Metric(alias=alias, timestamp_ms=now, datatype=DataType.Double, value=1.5)
            await client.publish(topic, encode_payload([write], seq=None, timestamp_ms=now), 1)
            await gw.wait_stats(lambda s: s.writes_applied == 1)
            assert plc.tags["level_sp"] == pytest.approx(1.5)
            # the write woke the poll loop: the new setpoint is on the bus at once
            await bus.next(
                lambda m: m.topic == level_sp and UnsMessage.from_json(m.payload).value == 1.5,
                after=mark,
            )
            level = lab.scenario.uns_path("plc1", "level")
            with caplog.at_level(logging.WARNING, logger="simlab.bus.gateway"):
                refused = Metric(name=level, timestamp_ms=now, datatype=DataType.Double, value=1.9)
                payload = encode_payload([refused], seq=None, timestamp_ms=now)
                await client.publish(topic, payload, 1)
                await gw.wait_stats(lambda s: s.writes_rejected == 1)
    finally:
        await client.close()
    writes = [(e.target, e.ok) for e in lab.audit.events if e.kind == "write"]
    assert writes == [("level_sp", True)], "the read-only tag never reached the PLC"
    assert "plc1.level rejected: the tag is read-only" in caplog.text
    assert gw.stats.writes_applied == 1


async def test_a_sensor_offline_fault_turns_the_uns_quality_bad(
    broker: str, water_tank: Lab
) -> None:
    lab = water_tank
    level = lab.scenario.uns_path("plc1", "level")
    client, bus = await recorder(broker, "acme/#", "spBv1.0/#")
    try:
        async with gateway(lab, broker) as gw:
            dbirth = await started(bus, lab)
            alias = next(m.alias for m in dbirth.metrics if m.name == level)
            mark = bus.mark()
            fault = lab.inject_fault({"kind": "offline", "target": "plc1.level"})
            await lab.run_for(0.5)
            await gw.poll_once()
            bad = UnsMessage.from_json(
                (await bus.next(lambda m: m.topic == level, after=mark)).payload
            )
            ddata = decode_payload(
                (await bus.next(lambda m: m.topic == spb("DDATA", "plc1"), after=mark)).payload
            )
            others = [
                UnsMessage.from_json(m.payload)
                for m in bus.messages[mark:]
                if m.topic.startswith("acme/") and m.topic != level
            ]
            lab.clear_fault(fault)
            mark = bus.mark()
            await lab.run_for(0.5)
            await gw.poll_once()
            good = UnsMessage.from_json(
                (await bus.next(lambda m: m.topic == level, after=mark)).payload
            )
    finally:
        await client.close()
    assert (bad.value, bad.quality, bad.severity) == (None, "BadDeviceFailure", "Bad")
    assert all(m.quality == "Good" for m in others), "only the failed sensor is Bad"
    [null] = [m for m in ddata.metrics if m.alias == alias]
    assert null.is_null
    assert good.quality == "Good"
    assert_close(lab, "plc1", "level", good.value)


async def test_an_unreachable_device_gets_bad_uns_and_a_ddeath_then_a_dbirth(
    broker: str, water_tank: Lab
) -> None:
    lab, tags = water_tank, modbus_tags(water_tank, "plc1")
    client, bus = await recorder(broker, "acme/#", "spBv1.0/#")
    try:
        async with gateway(lab, broker, timeout=0.3) as gw:
            await started(bus, lab)
            mark = bus.mark()
            fault = lab.inject_fault({"kind": "comm_loss", "target": "plc1", "protocol": "modbus"})
            await gw.poll_once()
            await bus.next(lambda m: m.topic == spb("DDEATH", "plc1"), after=mark)
            lost = uns_values(await bus.count(under("acme/"), len(tags), after=mark))
            lab.clear_fault(fault)
            mark = bus.mark()
            await gw.poll_once()
            reborn = await bus.next(lambda m: m.topic == spb("DBIRTH", "plc1"), after=mark)
            back = uns_values(await bus.count(under("acme/"), len(tags), after=mark))
    finally:
        await client.close()
    assert {m.severity for m in lost.values()} == {"Bad"}
    assert {m.value for m in lost.values()} == {None}
    assert {m.quality for m in back.values()} == {"Good"}
    assert all(m.value is not None for m in decode_payload(reborn.payload).metrics)


# --- configuration -------------------------------------------------------------------------


def test_configuration_errors_name_the_source_and_the_fix() -> None:
    tank = scenario("water-tank")
    modbus = EndpointAddress("plc1", "modbus", "127.0.0.1", 5020, "modbus+tcp://x", (1,))

    def make(sc: Scenario, endpoints: list[EndpointAddress]) -> EdgeGateway:
        return EdgeGateway(sc, endpoints, "mqtt://127.0.0.1:1", now_ms=lambda: EPOCH_MS)

    with pytest.raises(LabError, match="no 'gateway:' section"):
        make(tank.model_copy(update={"gateway": None}), [modbus])
    with pytest.raises(LabError, match=r"sources\[0\]: the lab serves no modbus endpoint"):
        make(tank, [])
    heater = scenario(
        "water-tank",
        gateway={
            "sources": [{"device": "plc1", "protocol": "modbus", "tags": ["level", "heater_cmd"]}]
        },
    )
    with pytest.raises(LabError, match="heater_cmd has no Modbus address"):
        make(heater, [modbus])
    twice = scenario(
        "water-tank",
        gateway={
            "sources": [
                {"device": "plc1", "protocol": "modbus", "tags": ["level"]},
                {"device": "plc1", "protocol": "modbus", "tags": ["level_sp", "level"]},
            ]
        },
    )
    with pytest.raises(LabError, match=r"sources\[1\]: plc1.level is already polled"):
        make(twice, [modbus])
    chosen = scenario(
        "water-tank",
        gateway={
            "sources": [{"device": "plc1", "protocol": "modbus", "tags": ["level", "level_sp"]}]
        },
    )
    assert set(make(chosen, [modbus]).topics()) == {"plc1.level", "plc1.level_sp"}


# --- the platform stores each reading once -------------------------------------------------


def test_dual_transport_tags_are_the_polled_tags_when_the_gateway_publishes_both() -> None:
    both = scenario("water-tank")
    assert set(dual_transport_tags(both)) == {
        both.uns_path("plc1", t.name)
        for d in both.devices
        if d.name == "plc1"
        for t in d.tags
        if t.modbus is not None
    }
    assert dual_transport_tags(scenario("water-tank", gateway={"publish": ["uns"]})) == []
    assert dual_transport_tags(scenario("water-tank", gateway={"publish": ["sparkplug"]})) == []


async def test_the_lab_platform_stores_each_gateway_reading_once(tmp_path: Path) -> None:
    fast = scenario("water-tank", gateway={"poll_interval": 0.1})  # publishes uns and sparkplug
    lab = Lab(fast, serve=True, auto_ports=True, state_dir=tmp_path, broker="embedded")
    async with lab:
        assert lab.it is not None and lab.it.platform is not None and lab.it.gateway is not None
        platform, gw = lab.it.platform, lab.it.gateway
        tags = modbus_tags(lab, "plc1")
        for _ in range(3):
            await lab.run_for(5.0)  # the level moves: UNS messages and DDATA metrics
            await gw.poll_once()
        sent = gw.stats.uns_published + gw.stats.sparkplug_published
        stats = await platform.ingest.wait_until(
            lambda s: s.received >= sent and s.committed == s.stored, timeout=10
        )
        assert gw.stats.births >= 1 and gw.stats.uns_published > len(tags)
        # every UNS-named metric of the births, and the DDATA ones, left to UNS
        assert stats.other_transport > len(tags)
        assert stats.bad == {}

        historian = platform.historian
        for tag in tags:
            path = fast.uns_path("plc1", tag)
            rows = historian.history(path, 0, 1e12)
            assert rows, path
            assert {r.source for r in rows} == {"gateway:edge1"}, path  # UNS only
            assert len({r.ts for r in rows}) == len(rows), f"{path}: a reading stored twice"
        assert not any(t.tag.startswith("simlab/") for t in historian.tags())
        level = fast.uns_path("plc1", "level")
        assert len(historian.history(level, 0, 1e12)) >= 4  # the start and three cycles
        asset = level.rsplit("/", 1)[0]
        assert platform.registry.status(asset).state == "online"

        headers = {"Authorization": f"Bearer {platform.token}"}
        async with httpx.AsyncClient(base_url=platform.api_url, headers=headers) as api:
            latest = (await api.get(f"/api/tags/{level}/latest")).json()
            assert latest["value"] == pytest.approx(lab.devices["plc1"].tags["level"], abs=1e-6)
            history = (await api.get(f"/api/tags/{level}/history?start=0&end=4000000000")).json()
            samples = history["samples"]
            assert len(samples) == len({s["ts"] for s in samples}) >= 4
            assert samples[-1]["value"] == latest["value"]
            assert {s["source"] for s in samples} == {"gateway:edge1"}
