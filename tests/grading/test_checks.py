"""The check library on real labs: evidence from a Lab on a virtual clock, real MQTT messages
recorded by BusRecorder from an embedded broker, real OPC UA sessions in the audit.

Submissions are simulated by publishing what a gateway would publish: the right value, and
values that are wrong in the ways apprentices get them wrong (word order, scale, stale, off
by one register, late, offset, wrong topic). Each check must pass on the right evidence and
fail on the wrong one with a diagnosis naming the cause.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import cert_gen, security_policies
from asyncua.ua.uaerrors import UaStatusCodeError
from cryptography.x509.oid import ExtendedKeyUsageOID

from devices.registermap import TagCodec
from grading.checks import BROKEN, REGISTRY, run_check
from grading.evidence import Evidence, PlatformEvidence, ProgramRun, read_answers
from grading.manifest import CheckSpec
from grading.model import CheckResult
from simlab.bus.broker import EmbeddedBroker
from simlab.bus.client import MqttClient, Will
from simlab.bus.recorder import BusRecorder
from simlab.bus.sparkplug import (
    EdgeNodeSession,
    Metric,
    MetricDef,
    MqttMessage,
    encode_payload,
)
from simlab.bus.uns import UnsMessage
from simlab.lab import Lab
from simlab.platform.alarms import AlarmDefinition, AlarmEngine
from simlab.platform.historian import Sample, SqliteHistorian
from simlab.scenario import load_scenario

WATER_TANK = load_scenario("water-tank")
LEVEL_TOPIC = "acme/riverside/utilities/water/buffer_tank/tank1/level"
PLC = WATER_TANK.devices[0]
INPUT_REGISTERS = [t for t in PLC.tags if t.modbus and t.modbus.table == "input_register"]
LEVEL_SPEC = next(t.modbus for t in PLC.tags if t.name == "level" and t.modbus)


def spec(type_: str, points: int = 10, *, gate: bool = False, **params: Any) -> CheckSpec:
    """A CheckSpec as an exercise.yaml would hold it."""
    return CheckSpec(
        id=type_.replace("_", "-"),
        type=type_,
        title=f"{type_} check",
        points=points,
        competencies=["mqtt"],
        gate=gate,
        params=params,
    )


def grade(
    evidence: Evidence, type_: str, variant: dict[str, Any] | None = None, **params: Any
) -> CheckResult:
    """Run one check through run_check, as the runner does."""
    return run_check(spec(type_, **params), evidence, variant or {})


def text_of(result: CheckResult) -> str:
    return f"{result.message}\n{result.diagnosis}"


# --- simulated gateways ----------------------------------------------------------------------


def modbus_read(lab: Lab, address: int, word_order: str = "ABCD") -> float:
    """What a Modbus client reading two input registers at ``address`` as float32 decodes,
    from the registers PLC1 serves now (its register map applied to its tag values)."""
    served: dict[int, int] = {}
    for tag in INPUT_REGISTERS:
        assert tag.modbus is not None
        registers = TagCodec(tag.modbus).encode(lab.read(f"plc1.{tag.name}"), clamp=True)
        for offset, register in enumerate(registers):
            served[tag.modbus.address + offset] = register
    reader = TagCodec(LEVEL_SPEC.model_copy(update={"word_order": word_order}))
    value = reader.decode([served[address], served[address + 1]])
    assert isinstance(value, float)
    return value


def uns_payload(lab: Lab, value: float) -> bytes:
    ts_ms = round(lab.clock.datetime_at(lab.time).timestamp() * 1000)
    return UnsMessage(value, "m", ts_ms, "edge1").to_json()


@dataclass
class Gateway:
    """What a simulated apprentice gateway publishes once per simulated second."""

    value: Callable[[Lab, int], float | None]
    topic: str = LEVEL_TOPIC
    payload: Callable[[Lab, float], bytes] = uns_payload
    retain: bool = True


async def run_gateway(gateway: Gateway, seconds: int = 90) -> Evidence:
    """Run the water tank with the gateway publishing; the evidence the grader gets."""
    lab = Lab(WATER_TANK)
    async with (
        EmbeddedBroker() as broker,
        lab,
        BusRecorder(broker.url, now=lambda: lab.time) as recorder,
        MqttClient(broker.url) as client,
    ):
        sent = 0
        for second in range(1, seconds + 1):
            await lab.run_for(1.0)
            value = gateway.value(lab, second)
            if value is None:
                continue
            await client.publish(
                gateway.topic, gateway.payload(lab, value), qos=1, retain=gateway.retain
            )
            sent += 1
            await recorder.wait_for(gateway.topic, sent)  # arrival time is this lab instant
        await recorder.retained("#", quiet_s=0.1)
    return Evidence.from_lab(lab, bus=recorder)


def level(lab: Lab, second: int) -> float:
    value = lab.read("plc1.level")
    assert isinstance(value, float)
    return value


def stale_level() -> Callable[[Lab, int], float]:
    first: list[float] = []

    def read(lab: Lab, second: int) -> float:
        if not first:
            first.append(level(lab, second))
        return first[0]

    return read


def late_level(by_s: int) -> Callable[[Lab, int], float]:
    queue: list[float] = []

    def read(lab: Lab, second: int) -> float:
        queue.append(level(lab, second))
        return queue[max(0, len(queue) - 1 - by_s)]

    return read


TRACK: dict[str, Any] = {
    "topic": LEVEL_TOPIC,
    "signal": "tank.level",
    "tolerance": 0.01,
    "max_latency_s": 2.0,
}


# --- value_tracks_truth ------------------------------------------------------------------------


async def test_the_right_value_tracks_the_truth() -> None:
    evidence = await run_gateway(Gateway(level))
    result = grade(evidence, "value_tracks_truth", **TRACK)
    assert result.passed, text_of(result)
    assert (result.check_id, result.points, result.max_points) == ("value-tracks-truth", 10, 10)
    assert result.competencies == ("mqtt",)
    assert result.evidence["coverage"] >= 0.95
    assert result.evidence["first"][0]["ok"] is True


async def test_word_order_cdab_is_diagnosed() -> None:
    evidence = await run_gateway(Gateway(lambda lab, s: modbus_read(lab, 0, "CDAB")))
    result = grade(evidence, "value_tracks_truth", **TRACK)
    assert not result.passed
    assert result.points == 0
    assert "values match the truth decoded with word order CDAB" in result.message
    assert "swaps the two 16-bit words" in result.message
    assert "the device serves ABCD" in result.diagnosis
    assert result.evidence["hypothesis"] == "word_order"
    assert result.evidence["hypotheses"]["word_order:CDAB"] >= 0.95
    assert result.evidence["hypotheses"]["word_order:DCBA"] < 0.5


async def test_a_value_1000_times_too_large_is_diagnosed_as_mm() -> None:
    evidence = await run_gateway(Gateway(lambda lab, s: level(lab, s) * 1000))
    result = grade(evidence, "value_tracks_truth", **TRACK)
    assert not result.passed
    assert "values are in mm, not m (×1000)" in result.message
    assert result.evidence["hypothesis"] == "unit"
    assert result.evidence["hypotheses"]["scale:1000"] >= 0.95  # the scale explains it too


async def test_a_scale_without_unit_is_named_as_a_scale() -> None:
    evidence = await run_gateway(Gateway(lambda lab, s: level(lab, s) * 10000), seconds=45)
    result = grade(evidence, "value_tracks_truth", **TRACK)
    assert not result.passed
    assert "10000 × the truth: wrong scale" in result.message
    assert "gain" in result.diagnosis


async def test_a_stale_value_is_diagnosed() -> None:
    evidence = await run_gateway(Gateway(stale_level()))
    result = grade(evidence, "value_tracks_truth", **TRACK)
    assert not result.passed
    assert "the value is stale: it stays at 0.4" in result.message
    assert "repeat the previous one" in result.diagnosis


async def test_a_missing_topic_names_the_topic_that_came_instead() -> None:
    typo = LEVEL_TOPIC.replace("/level", "/levle")
    evidence = await run_gateway(Gateway(level, topic=typo), seconds=5)
    result = grade(evidence, "value_tracks_truth", **TRACK)
    assert not result.passed
    assert result.message == f"no message on {LEVEL_TOPIC}"
    assert f"did you mean {typo!r}" in result.diagnosis
    assert result.evidence["topics_seen"] == [typo]


async def test_an_off_by_one_register_read_is_diagnosed() -> None:
    evidence = await run_gateway(Gateway(lambda lab, s: modbus_read(lab, 1)))
    result = grade(evidence, "value_tracks_truth", **TRACK, tag="plc1.level")
    assert not result.passed
    assert "instead of 0..1: the read is off by one register" in result.message
    assert "starts one register too late" in result.diagnosis
    assert result.evidence["hypothesis"] == "off_by_one"


async def test_late_values_are_diagnosed_with_their_lag() -> None:
    evidence = await run_gateway(Gateway(late_level(15)))
    result = grade(evidence, "value_tracks_truth", **TRACK)
    assert not result.passed
    assert "values are late" in result.message
    assert result.evidence["hypothesis"] == "late"
    assert "about 15 s" in result.diagnosis or "about 14" in result.diagnosis


async def test_an_offset_is_diagnosed() -> None:
    evidence = await run_gateway(Gateway(lambda lab, s: level(lab, s) + 0.25), seconds=60)
    result = grade(evidence, "value_tracks_truth", **TRACK)
    assert not result.passed
    assert "values are offset by about +0.25 m" in result.message
    assert result.evidence["hypothesis"] == "offset"


async def test_plain_text_payloads_and_a_larger_latency_allowance() -> None:
    evidence = await run_gateway(
        Gateway(late_level(3), payload=lambda lab, value: f"{value:.4f}".encode()), seconds=60
    )
    assert not grade(evidence, "value_tracks_truth", **TRACK).passed
    relaxed = grade(evidence, "value_tracks_truth", **{**TRACK, "max_latency_s": 5.0})
    assert relaxed.passed, text_of(relaxed)


async def test_values_stored_by_the_platform_historian(tmp_path: Path) -> None:
    async with Lab(WATER_TANK) as lab:
        epoch = lab.clock.epoch.timestamp()
        with SqliteHistorian(tmp_path / "history.db") as historian:
            for _ in range(60):
                await lab.run_for(1.0)
                value = lab.read("plc1.level")
                assert isinstance(value, float)
                historian.write_many([Sample("acme/level", epoch + lab.time, value)])
                historian.write_many([Sample("acme/stuck", epoch + lab.time, 0.4)])
            evidence = Evidence.from_lab(lab, platform=PlatformEvidence(historian=historian))
            params = {k: v for k, v in TRACK.items() if k != "topic"}
            good = grade(evidence, "value_tracks_truth", platform_tag="acme/level", **params)
            stuck = grade(evidence, "value_tracks_truth", platform_tag="acme/stuck", **params)
    assert good.passed, text_of(good)
    assert not stuck.passed
    assert "stale" in stuck.message


async def test_a_counter_in_the_historian_matches_at_its_changes(tmp_path: Path) -> None:
    """The platform stamps in whole ms: a count stamped at the very instant it stepped may
    lie a fraction of a ms before the truth sample; it is the new count, not one too many."""
    tag = "acme/line/bottles_good"
    async with Lab(load_scenario("bottling-line")) as lab:
        epoch = lab.clock.epoch.timestamp()
        lab.write("line_plc.cmd_start", True)
        with SqliteHistorian(tmp_path / "history.db") as historian:
            last = None
            for _ in range(600):  # report by exception, as a Sparkplug edge node does
                await lab.run_for(0.1)
                count = lab.truth.value_at("conveyor.items_out", lab.time)
                if count != last:
                    ts_ms = round((epoch + lab.time) * 1000)
                    historian.write_many([Sample(tag, ts_ms / 1000, count)])
                    last = count
            evidence = Evidence.from_lab(lab, platform=PlatformEvidence(historian=historian))
            result = grade(
                evidence,
                "value_tracks_truth",
                platform_tag=tag,
                signal="conveyor.items_out",
                tolerance=0,
                max_latency_s=3,
                max_gap_s=30,
            )
            early = grade(  # a count one too many is still wrong
                evidence,
                "value_tracks_truth",
                platform_tag=tag,
                signal="conveyor.items_in",
                tolerance=0,
                max_latency_s=0,
                max_gap_s=30,
            )
    assert result.passed, text_of(result)
    assert result.evidence["values"] > 10
    assert result.evidence["matching"] == result.evidence["values"]
    assert all(row["truth"] == row["value"] for row in result.evidence["first"])
    assert not early.passed


# --- uns_contract ------------------------------------------------------------------------------

UNS_PREFIX = "acme/riverside"


async def test_uns_contract_holds_for_a_retained_json_publisher() -> None:
    evidence = await run_gateway(Gateway(level), seconds=20)
    result = grade(
        evidence, "uns_contract", prefix=UNS_PREFIX, topics=[LEVEL_TOPIC], min_hz=0.5, max_hz=2
    )
    assert result.passed, text_of(result)
    (row,) = result.evidence["per_topic"]
    assert row["retained"] is True
    assert row["rate_hz"] == pytest.approx(1.0)


async def test_uns_contract_names_each_broken_rule() -> None:
    bad_topic = "acme/riverside/Utilities/tank1/level"

    def no_timestamp(lab: Lab, value: float) -> bytes:
        return f'{{"value": {value}, "unit": "m", "quality": "Good", "source": "x"}}'.encode()

    evidence = await run_gateway(
        Gateway(level, topic=bad_topic, payload=no_timestamp, retain=False), seconds=10
    )
    result = grade(evidence, "uns_contract", prefix=UNS_PREFIX, min_hz=2)
    assert not result.passed
    diagnosis = result.diagnosis
    assert "has 5 levels; a UNS topic has 7" in diagnosis
    assert "ts: missing" in diagnosis
    assert "not retained" in diagnosis
    assert "at least 2 Hz needed" in diagnosis
    nothing = grade(evidence, "uns_contract", prefix="other/site")
    assert not nothing.passed
    assert bad_topic in nothing.diagnosis


# --- sparkplug_rules ---------------------------------------------------------------------------

GROUP, NODE = "simlab", "edge1"
NDEATH_TOPIC = f"spBv1.0/{GROUP}/NDEATH/{NODE}"
DDATA_TOPIC = f"spBv1.0/{GROUP}/DDATA/{NODE}/plc1"


async def run_edge_node(fault: str = "") -> Evidence:
    """An edge node publishing PLC1's level over Sparkplug B, then losing its connection.

    ``fault``: ``gap`` skips a DDATA, ``early`` sends a DDATA before the NBIRTH, ``bdseq``
    births with a bdSeq other than its Will's, ``alias`` sends an undeclared alias.
    """
    lab = Lab(WATER_TANK)
    metrics = [MetricDef.for_tag("level", "float", 0.4), MetricDef.for_tag("uptime", "int", 0)]
    session = EdgeNodeSession(GROUP, NODE, {"plc1": metrics})

    def now_ms() -> int:
        return round(lab.clock.datetime_at(lab.time).timestamp() * 1000)

    def will() -> Will:
        death = session.new_connection(timestamp_ms=now_ms())
        return Will(death.topic, death.payload, death.qos, death.retain)

    async with (
        EmbeddedBroker() as broker,
        lab,
        BusRecorder(broker.url, now=lambda: lab.time) as recorder,
        MqttClient(broker.url, will=will, keepalive=5) as edge,
    ):
        sent = 0

        async def publish(message: MqttMessage) -> None:
            nonlocal sent
            await edge.publish(message.topic, message.payload, qos=1)
            sent += 1
            await recorder.wait_for("spBv1.0/#", sent)

        if fault == "early":
            early = encode_payload(
                [Metric(alias=1, value=0.4, timestamp_ms=now_ms())],
                seq=3,
                timestamp_ms=now_ms(),
            )
            await publish(MqttMessage(DDATA_TOPIC, early, 0, False))
        if fault == "bdseq":
            session.new_connection(timestamp_ms=now_ms())  # the NBIRTH will not match the Will
        for message in session.on_connect(timestamp_ms=now_ms()):
            await publish(message)
        for second in range(1, 11):
            await lab.run_for(1.0)
            data = session.device_data(
                "plc1",
                {"level": lab.read("plc1.level"), "uptime": second},
                timestamp_ms=now_ms(),
            )
            if data is not None and not (fault == "gap" and second == 4):
                await publish(data)
        if fault == "alias":
            rogue = encode_payload(
                [Metric(alias=99, value=1.0, timestamp_ms=now_ms())],
                seq=session.seq,
                timestamp_ms=now_ms(),
            )
            await publish(MqttMessage(DDATA_TOPIC, rogue, 0, False))
        await lab.run_for(1.0)
        if fault in ("", "bdseq"):  # only these need the Will (a clean close sends none)
            await edge.drop_connection()  # the broker publishes the Will: the NDEATH
            await recorder.wait_for(NDEATH_TOPIC)
    return Evidence.from_lab(lab, bus=recorder)


async def test_a_correct_edge_node_follows_the_sparkplug_rules() -> None:
    evidence = await run_edge_node()
    result = grade(evidence, "sparkplug_rules", require_death=True)  # group/node: the gateway's
    assert result.passed, text_of(result)
    assert result.evidence["deaths_matched"] == 1
    assert result.evidence["messages"]["DDATA"] == 10
    assert result.evidence["bd_seqs"] == [0]


@pytest.mark.parametrize(
    ("fault", "rule", "says"),
    [
        ("gap", "tck-id-payloads-sequence-num-incrementing", "expected 5"),
        ("early", "tck-id-payloads-ddata-order", "DDATA of device plc1 before the NBIRTH"),
        ("bdseq", "tck-id-payloads-ndeath-bdseq", "carries bdSeq 0, but the NBIRTH"),
        ("alias", "tck-id-payloads-alias-birth-requirement", "uses alias 99"),
    ],
)
async def test_sparkplug_violations_cite_the_spec_rule(fault: str, rule: str, says: str) -> None:
    evidence = await run_edge_node(fault)
    result = grade(evidence, "sparkplug_rules", group_id=GROUP, edge_node_id=NODE)
    assert not result.passed
    assert f"[{rule}]" in result.diagnosis
    assert says in result.diagnosis
    assert result.message.startswith("1 Sparkplug rule violation")


async def test_no_sparkplug_traffic_at_all() -> None:
    evidence = await run_gateway(Gateway(level), seconds=2)
    result = grade(evidence, "sparkplug_rules", group_id=GROUP, edge_node_id=NODE)
    assert not result.passed
    assert result.message == f"no Sparkplug message from edge node {GROUP}/{NODE}"


# --- state_held, timed_sequence ------------------------------------------------------------------


async def test_state_held_after_a_setpoint_write() -> None:
    async with Lab(WATER_TANK) as lab:
        await lab.run_for(5)
        lab.write("plc1.level_sp", 0.8)
        await lab.run_for(300)
        evidence = Evidence.from_lab(lab)
    after = {"write": "plc1.level_sp", "value": 0.8}
    held = grade(
        evidence,
        "state_held",
        signal="tank.level",
        low=0.75,
        high=0.85,
        after=after,
        settle_s=200,
        duration_s=95,
    )
    assert held.passed, text_of(held)
    assert held.evidence["interval"] == [205.0, 300.0]
    unsettled = grade(
        evidence, "state_held", tag="plc1.level", low=0.75, high=0.85, after=after, duration_s=60
    )
    assert not unsettled.passed
    assert "plc1.level left [0.75, 0.85] m at t=5.0 s" in unsettled.message
    too_long = grade(
        evidence,
        "state_held",
        signal="tank.level",
        high=0.85,
        after=after,
        settle_s=200,
        duration_s=200,
    )
    assert "the run ended" in too_long.message
    never = grade(
        evidence,
        "state_held",
        signal="tank.level",
        low=0,
        after={"write": "plc1.valve_cmd"},
        duration_s=5,
    )
    assert never.message.startswith("a write to plc1.valve_cmd never happened")
    stretch = grade(evidence, "state_held", signal="tank.level", low=0.78, high=0.82, duration_s=60)
    assert stretch.passed, text_of(stretch)
    whole = grade(evidence, "state_held", signal="tank.level", low=0.78, high=0.82)
    assert not whole.passed
    assert "the true value went down to" in whole.diagnosis
    held_params = {"signal": "tank.level", "after": after, "settle_s": 200, "duration_s": 95}
    variant = {"setpoint": 0.8}
    for centre in (0.8, "{{ setpoint }}", {"variant": "setpoint"}):
        centred = grade(
            evidence, "state_held", variant, centre=centre, tolerance=0.05, **held_params
        )
        assert centred.passed, text_of(centred)
        assert centred.message.startswith("tank.level stayed in 0.8 ± 0.05 m from t=205.0")
        assert (centred.evidence["centre"], centred.evidence["tolerance"]) == (0.8, 0.05)
        assert centred.evidence["band"] == pytest.approx([0.75, 0.85])
    narrow = grade(evidence, "state_held", centre=0.9, tolerance=0.02, **held_params)
    assert not narrow.passed
    assert "tank.level left 0.9 ± 0.02 m at t=205.0 s" in narrow.message


async def test_timed_sequence_low_low_trips_the_heater() -> None:
    async with Lab(WATER_TANK) as lab:
        await lab.run_for(30)
        lab.write("plc1.auto", False)
        lab.write("plc1.pump_run", False)
        lab.inject_fault({"kind": "leak", "target": "tank", "flow": 30.0})
        await lab.run_for(60)
        evidence = Evidence.from_lab(lab)
    low_low = {"signal": "tank.level", "op": "<", "value": 0.15}
    heater_off = {"signal": "tank_heat.cmd_heater", "op": "==", "value": 0}
    result = grade(evidence, "timed_sequence", a=low_low, b=heater_off, within_s=2)
    assert result.passed, text_of(result)
    assert 0 <= result.evidence["delays_s"][0] <= 2
    power_gone = {"signal": "tank_heat.heater_power", "op": "<", "value": 1}
    from_fault = grade(evidence, "timed_sequence", a={"fault": "leak"}, b=power_gone, within_s=5)
    assert not from_fault.passed
    assert "too late" in from_fault.diagnosis
    never = grade(
        evidence,
        "timed_sequence",
        a={"signal": "tank.level", "op": ">", "value": 1.9},
        b=heater_off,
        within_s=2,
    )
    assert never.message == "tank.level > 1.9 never happened: there is no sequence to time"


# --- platform_alarm ------------------------------------------------------------------------------

ALARM_TAG = "acme/riverside/utilities/water/buffer_tank/tank1/level"


async def run_with_alarms(*, acknowledge: bool, glitch: bool = False) -> Evidence:
    """A leak drains the tank; the platform's alarm engine is fed PLC1's level every second.

    ``glitch``: the level reads 0 for t=10..14 s, long before the leak (a nuisance alarm)."""
    engine = AlarmEngine(
        [AlarmDefinition(name="level_lo", tag=ALARM_TAG, kind="LO", limit=0.3, on_delay=2.0)]
    )
    async with Lab(WATER_TANK) as lab:
        epoch = lab.clock.epoch.timestamp()
        for second in range(1, 91):
            if second == 40:
                lab.write("plc1.auto", False)
                lab.write("plc1.pump_run", False)
                lab.inject_fault({"kind": "leak", "target": "tank", "flow": 30.0})
            await lab.run_for(1.0)
            value = lab.read("plc1.level")
            assert isinstance(value, float)
            if glitch and 10 <= second < 15:
                value = 0.0
            raised = engine.evaluate(ALARM_TAG, value, epoch + lab.time)
            if raised and acknowledge and engine.state("level_lo").value == "ACTIVE_UNACK":
                engine.acknowledge("level_lo", "alice", "seen", epoch + lab.time)
        return Evidence.from_lab(lab, platform=PlatformEvidence(alarms=engine))


async def test_platform_alarm_raised_and_acknowledged_after_the_leak() -> None:
    evidence = await run_with_alarms(acknowledge=True)
    result = grade(
        evidence, "platform_alarm", alarm="level_lo", within_s=60, acknowledged=True, by="alice"
    )
    assert result.passed, text_of(result)
    assert 0 < result.evidence["raised_after_s"] < 60
    slow = grade(evidence, "platform_alarm", alarm="level_lo", within_s=3)
    assert not slow.passed
    assert "3 s allowed" in slow.message
    wrong_user = grade(
        evidence, "platform_alarm", tag=ALARM_TAG, within_s=60, acknowledged=True, by="bob"
    )
    assert "acknowledged by alice, not by bob" in wrong_user.message
    unknown = grade(evidence, "platform_alarm", alarm="level_low", within_s=60)
    assert "did you mean 'level_lo'" in unknown.diagnosis


async def test_platform_alarm_not_acknowledged() -> None:
    evidence = await run_with_alarms(acknowledge=False)
    result = grade(
        evidence, "platform_alarm", alarm="level_lo", within_s=60, acknowledged=True, cleared=True
    )
    assert not result.passed
    assert "it never cleared" in result.diagnosis
    assert "nobody acknowledged it" in result.diagnosis


async def test_platform_alarm_raised_before_the_fault_is_a_nuisance() -> None:
    evidence = await run_with_alarms(acknowledge=False, glitch=True)
    result = grade(evidence, "platform_alarm", alarm="level_lo", within_s=60)
    assert not result.passed  # raised again after the leak, but it sounded without a fault
    assert result.message == (
        "alarm level_lo was already raised at t=12.0 s, before the start of a fault "
        "(t=39.0 s), with no fault acting: a nuisance alarm"
    )
    assert "it was raised again 3" in result.diagnosis
    assert "only an alarm raised by the fault counts" in result.diagnosis
    assert "(its limit LO 0.3, on_delay 2 s)" in result.diagnosis
    assert result.evidence["raised_before"] == [12.0]
    clean = grade(
        await run_with_alarms(acknowledge=False), "platform_alarm", alarm="level_lo", within_s=60
    )
    assert clean.passed, text_of(clean)
    assert "raised_before" not in clean.evidence


# --- answer_equals, program_ran ------------------------------------------------------------------


async def test_answer_equals_variant_truth_and_text(tmp_path: Path) -> None:
    async with Lab(WATER_TANK) as lab:
        await lab.run_for(60)
        at_60 = lab.truth.value_at("tank.level", 60)
        answers_file = tmp_path / "answers.yaml"
        answers_file.write_text(
            f"setpoint: 1.2 m\nlevel: {at_60:.3f}\nlevel_mm: {at_60 * 1000:.0f}\norder: abcd \n"
            "unit:\nnote: '  '\n"  # left empty: not answers
        )
        evidence = Evidence.from_lab(lab, answers=read_answers(answers_file))
        bare = Evidence.from_lab(lab)
    variant = {"setpoint": 1.2}
    assert grade(
        evidence, "answer_equals", variant, key="setpoint", expected="{{ setpoint }}"
    ).passed
    truth = {"truth": "tank.level", "at": 60}
    assert grade(evidence, "answer_equals", key="level", expected=truth, tolerance=0.01).passed
    in_mm = grade(evidence, "answer_equals", key="level_mm", expected=truth, tolerance=0.01)
    assert not in_mm.passed
    assert "about 1000 × the expected value" in in_mm.diagnosis
    assert grade(evidence, "answer_equals", key="order", expected="ABCD").passed
    empty = grade(evidence, "answer_equals", key="unit", expected="m")
    assert empty.message == (
        "no answer for 'unit' in answers.yaml: the key is there but its value is empty"
    )
    assert "answers given: level, level_mm, order, setpoint;" in empty.diagnosis
    assert "left empty: note" in empty.diagnosis
    assert "answer" not in empty.evidence
    assert empty.evidence["answers_given"] == ["level", "level_mm", "order", "setpoint"]
    assert empty.evidence["answers_empty"] == ["note", "unit"]
    missing = grade(evidence, "answer_equals", key="frequency", expected=50)
    assert missing.message == "no answer for 'frequency' in answers.yaml"
    assert "left empty: note, unit" in missing.diagnosis
    by_id = run_check(spec("answer_equals", expected=1.2, tolerance=0.01), evidence, {})
    assert not by_id.passed and "answer-equals" in by_id.message  # key defaults to the check id
    assert grade(bare, "answer_equals", key="level", expected=1).message == (
        "no answers file was handed in"
    )


async def test_program_ran() -> None:
    async with Lab(WATER_TANK) as lab:
        base = Evidence.from_lab(lab)
    traceback = "Traceback (most recent call last):\n  File read.py\nConnectionRefusedError: 5020"
    cases = [
        (ProgramRun(0, "1.2\n", "", duration_s=3.0, time_limit_s=120), True, "status 0"),
        (ProgramRun(1, "", traceback, duration_s=1.0), False, "exited with status 1"),
        (ProgramRun(None, "", "", timed_out=True, time_limit_s=120), False, "time limit of 120"),
        (None, False, "was not run"),
    ]
    for run, passed, says in cases:
        evidence = dataclasses.replace(base, program=run)
        result = run_check(spec("program_ran", gate=True, points=0), evidence, {})
        assert result.passed is passed, text_of(result)
        assert says in result.message
        assert result.gate
    failed = run_check(spec("program_ran"), dataclasses.replace(base, program=cases[1][0]), {})
    assert "ConnectionRefusedError: 5020" in failed.diagnosis


# --- audit checks on real OPC UA sessions -------------------------------------------------


async def test_audit_checks_on_real_opcua_sessions(tmp_path: Path) -> None:
    key, certificate = tmp_path / "client-key.pem", tmp_path / "client-cert.der"
    uri = "urn:simlab:test:apprentice"
    await cert_gen.setup_self_signed_certificate(
        key, certificate, uri, "localhost", [ExtendedKeyUsageOID.CLIENT_AUTH], {}
    )
    lab = Lab(WATER_TANK, serve=True, auto_ports=True, state_dir=tmp_path / "state")
    async with lab:
        url = next(a.url for a in lab.addresses() if a.protocol == "opcua")
        async with Client(url) as plain:  # polling, and a refused write
            ns = await plain.get_namespace_index("urn:simlab:water-tank")
            node = plain.get_node(f"ns={ns};s=plc1.level_sp")
            for _ in range(3):
                await node.read_value()
                await lab.run_for(1.0)
            level = plain.get_node(f"ns={ns};s=plc1.level")
            with pytest.raises(UaStatusCodeError):
                await level.write_value(ua.DataValue(ua.Variant(1.0, ua.VariantType.Double)))
        plain_only = Evidence.from_lab(lab)
        insecure = grade(plain_only, "audit_security")
        assert not insecure.passed
        assert "sessions used None/None ×1" in insecure.message
        secure = Client(url)
        secure.application_uri = uri
        await secure.set_security(
            security_policies.SecurityPolicyBasic256Sha256,
            str(certificate),
            str(key),
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )
        async with secure:
            subscription = await secure.create_subscription(100, None)
            await subscription.subscribe_data_change(secure.get_node(f"ns={ns};s=plc1.level"))
            await lab.run_for(1.0)
        evidence = Evidence.from_lab(lab)
    assert grade(evidence, "audit_security", policy="Basic256Sha256").passed
    named = grade(evidence, "audit_security", authenticated=True)
    assert not named.passed and "a named user" in named.message
    subscribed = grade(evidence, "audit_subscribed", target="plc1.level")
    assert subscribed.passed, text_of(subscribed)
    polled = grade(evidence, "audit_subscribed", target="plc1.level_sp")
    assert polled.message == "plc1.level_sp was polled with 3 reads, never subscribed to"
    assert "subscribe_data_change" in polled.diagnosis
    touched = grade(evidence, "audit_no_write", tags=["plc1.level", "plc1.valve_cmd"])
    assert not touched.passed
    assert "opcua write to plc1.level (refused" in touched.message
    assert grade(evidence, "audit_no_write", tags=["plc1.valve_cmd"]).passed


async def test_audit_no_write_sees_accepted_writes_from_the_truth() -> None:
    async with Lab(WATER_TANK) as lab:
        lab.write("plc1.valve_cmd", 80.0)
        await lab.run_for(1)
        evidence = Evidence.from_lab(lab)
    result = grade(evidence, "audit_no_write", gate=True, tags=["plc1.valve_cmd"])
    assert not result.passed and result.gate
    assert "write to plc1.valve_cmd = 80.0 (accepted)" in result.message


async def test_audit_no_write_tells_a_method_call_from_a_write(tmp_path: Path) -> None:
    """AcknowledgeFault pulses plc1.hh_reset: the device sees a write, the audit a call."""
    lab = Lab(WATER_TANK, serve=True, auto_ports=True, state_dir=tmp_path / "state")
    async with lab:
        url = next(a.url for a in lab.addresses() if a.protocol == "opcua")
        async with Client(url) as client:
            ns = await client.get_namespace_index("urn:simlab:water-tank")
            await lab.run_for(1.0)
            await client.get_node(f"ns={ns};s=plc1").call_method(f"{ns}:AcknowledgeFault")
            await lab.run_for(1.0)
            called = Evidence.from_lab(lab)  # the truth and audit are live: grade it now
            protect: dict[str, Any] = {"tags": ["plc1.hh_reset"]}
            forbidden = grade(called, "audit_no_write", **protect)
            allowed = grade(called, "audit_no_write", **protect, allow_calls=True)
            by_name = grade(
                called, "audit_no_write", tags=["hh_reset"], allow_calls=["AcknowledgeFault"]
            )
            other = grade(called, "audit_no_write", **protect, allow_calls=["Reset"])
            bad = grade(called, "audit_no_write", **protect, allow_calls="yes")
            start = {"at": 0}
            acked = grade(
                called, "timed_sequence", a=start, b={"call": "AcknowledgeFault"}, within_s=5
            )
            no_reset = grade(
                called, "timed_sequence", a=start, b={"call": "plc1.Reset"}, within_s=5
            )
            pulsed = grade(
                called, "timed_sequence", a=start, b={"write": "plc1.hh_reset"}, within_s=5
            )
            assert [e.detail["tag"] for e in called.audit.events if e.kind == "call"] == [
                "hh_reset"
            ]
            assert [e.detail["tag"] for e in called.events("write")] == ["plc1.hh_reset"]
            reset = client.get_node(f"ns={ns};s=plc1.hh_reset")
            await reset.write_value(ua.DataValue(ua.Variant(True, ua.VariantType.Boolean)))
            await lab.run_for(1.0)
            forced = grade(Evidence.from_lab(lab), "audit_no_write", **protect, allow_calls=True)
    assert not forbidden.passed  # by default, a command sent through a method is forbidden
    assert forbidden.message == (
        "1 method call(s) setting a protected tag; first: t=1.0 s opcua call of method "
        "AcknowledgeFault on plc1, which sets plc1.hh_reset (accepted)"
    )
    assert forbidden.evidence["writes"] == []
    assert "a method call that sets one of them" in forbidden.diagnosis
    assert allowed.passed, text_of(allowed)
    assert allowed.message == "no write to plc1.hh_reset (1 allowed method call(s))"
    assert by_name.passed, text_of(by_name)
    assert not other.passed
    assert bad.message.startswith(BROKEN) and "params.allow_calls must be" in bad.message
    assert not forced.passed  # a write is a write, whatever the method calls allowed
    assert forced.message == (
        "1 write(s) to a protected tag; first: t=2.0 s opcua write to plc1.hh_reset (accepted)"
    )
    assert forced.evidence["calls"] == [] and len(forced.evidence["calls_allowed"]) == 1
    assert acked.passed, text_of(acked)
    assert not no_reset.passed
    assert no_reset.message.startswith("a call of method plc1.Reset did not follow t=0s")
    assert pulsed.passed, text_of(pulsed)  # the call's effect still counts as a write of it


# --- run_check never raises ----------------------------------------------------------------


@pytest.fixture
async def quiet_evidence() -> Evidence:
    async with Lab(WATER_TANK) as lab:
        await lab.run_for(10)
        return Evidence.from_lab(lab)


def test_a_check_that_raises_becomes_a_failed_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet_evidence: Evidence
) -> None:
    (tmp_path / "instructor_checks.py").write_text(
        textwrap.dedent(
            """
            def explode(evidence, params, variant):
                return 1 / 0

            def not_a_result(evidence, params, variant):
                return "passed"
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "instructor_checks", raising=False)
    boom = CheckSpec(
        id="boom", type="python:instructor_checks:explode", title="t", points=5, gate=True
    )
    result = run_check(boom, quiet_evidence, {})
    assert not result.passed
    assert result.message.startswith(f"{BROKEN} (ZeroDivisionError: division by zero)")
    assert (result.points, result.max_points, result.gate) == (0, 5, True)
    assert result.evidence["error"] == "ZeroDivisionError"
    assert "instructor_checks.py" in result.diagnosis
    odd = CheckSpec(id="odd", type="python:instructor_checks:not_a_result", title="t", points=1)
    assert BROKEN in run_check(odd, quiet_evidence, {}).message


def test_titles_are_rendered_with_the_variant(quiet_evidence: Evidence) -> None:
    held = CheckSpec(
        id="held",
        type="state_held",
        title="Level held at {{ setpoint }} m ± {{ band }}",
        points=5,
        params={"signal": "tank.level", "centre": "{{ setpoint }}", "tolerance": "{{ band }}"},
    )
    variant = {"setpoint": 0.4, "band": 0.5}
    result = run_check(held, quiet_evidence, variant)
    assert result.passed, text_of(result)
    assert result.title == "Level held at 0.4 m ± 0.5"
    broken = run_check(held, quiet_evidence, {"setpoint": "high", "band": 0.5})
    assert broken.message.startswith(BROKEN)
    assert broken.title == "Level held at high m ± 0.5"
    typo = held.model_copy(update={"title": "Level held at {{ setpont }} m"})
    assert run_check(typo, quiet_evidence, variant).title == "Level held at {{ setpont }} m"


@pytest.mark.parametrize(
    ("type_", "params", "says"),
    [
        ("no_such_check", {}, "unknown check type 'no_such_check'"),
        ("value_tracks_truth", {**TRACK, "tolerence": 1}, "did you mean 'tolerance'"),
        ("value_tracks_truth", {**TRACK, "signal": "tank.levl"}, "did you mean 'tank.level'"),
        ("value_tracks_truth", {**TRACK, "tolerance": "small"}, "params.tolerance must be"),
        ("state_held", {"signal": "tank.level", "low": "{{ nope }}"}, "nope"),
        ("state_held", {"signal": "tank.level", "centre": 1}, "params.centre needs params.tol"),
        ("state_held", {"signal": "tank.level", "tolerance": 1}, "params.tolerance needs params"),
        (
            "state_held",
            {"signal": "tank.level", "low": 0, "centre": 1, "tolerance": 0.1},
            "either as params.low/params.high or as params.centre with params.tolerance",
        ),
        (
            "state_held",
            {"signal": "tank.level", "centre": 1, "tolerance": -0.1},
            "params.tolerance must be a number >= 0",
        ),
        (
            "state_held",
            {"signal": "tank.level", "centre": {"variant": "sp"}, "tolerance": 0.1},
            "no variant parameter 'sp'",
        ),
        ("state_held", {"signal": "tank.level", "low": 2, "high": 1}, "is above params.high"),
        ("platform_alarm", {"alarm": "x", "within_s": 1}, "no platform alarm engine"),
    ],
)
def test_misconfigured_checks_say_the_check_broke(
    quiet_evidence: Evidence, type_: str, params: dict[str, Any], says: str
) -> None:
    result = run_check(spec(type_, **params), quiet_evidence, {})
    assert not result.passed
    assert result.message.startswith(BROKEN)
    assert says in result.message
    assert result.max_points == 10


@pytest.mark.parametrize("type_", sorted(REGISTRY))
def test_every_check_survives_empty_params(quiet_evidence: Evidence, type_: str) -> None:
    result = run_check(spec(type_), quiet_evidence, {})
    assert isinstance(result, CheckResult)
    assert not result.passed
    assert math.isfinite(result.points)
    assert result.to_dict()["check_id"] == type_.replace("_", "-")
