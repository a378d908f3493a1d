"""The alarm engine: ISA-18.2 states, deadband, delays, quality, acknowledgement, hot reload."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from simlab.platform.alarms import (
    AlarmDefinition,
    AlarmEngine,
    AlarmError,
    AlarmEvent,
    AlarmState,
    EventKind,
    UnknownAlarm,
)

TAG = "acme/plant1/water/tank1/level"
OTHER = "acme/plant1/water/pump1/flow"
S = AlarmState


def hi(limit: float = 80.0, **extra: object) -> AlarmDefinition:
    fields: dict[str, object] = {"name": "LEVEL_HI", "tag": TAG, "kind": "HI", "limit": limit}
    return AlarmDefinition.model_validate(fields | extra)


def lo(limit: float = 10.0, **extra: object) -> AlarmDefinition:
    fields: dict[str, object] = {"name": "LEVEL_LO", "tag": TAG, "kind": "LO", "limit": limit}
    return AlarmDefinition.model_validate(fields | extra)


def kinds(events: list[AlarmEvent]) -> list[tuple[str, str, float]]:
    return [(e.kind.value, e.state.value, e.ts) for e in events]


def test_hi_raises_above_the_limit_and_clears_past_the_deadband() -> None:
    engine = AlarmEngine([hi(80.0, deadband=5.0)])
    assert engine.evaluate(TAG, 80.0, 1.0) == []  # at the limit: not beyond it
    assert kinds(engine.evaluate(TAG, 81.0, 2.0)) == [("raised", "ACTIVE_UNACK", 2.0)]
    assert engine.evaluate(TAG, 76.0, 3.0) == []  # inside the deadband: still active
    assert engine.state("LEVEL_HI") is S.ACTIVE_UNACK
    assert kinds(engine.evaluate(TAG, 75.0, 4.0)) == [("cleared", "CLEARED_UNACK", 4.0)]
    event = engine.acknowledge("LEVEL_HI", "alice", "seen", 5.0)
    assert (event.kind, event.state, event.user, event.comment) == (
        EventKind.ACKNOWLEDGED,
        S.CLEARED_ACK,
        "alice",
        "seen",
    )


def test_lo_is_the_mirror_image() -> None:
    engine = AlarmEngine([lo(10.0, deadband=2.0)])
    assert engine.evaluate(TAG, 10.0, 1.0) == []
    assert kinds(engine.evaluate(TAG, 9.9, 2.0)) == [("raised", "ACTIVE_UNACK", 2.0)]
    assert engine.evaluate(TAG, 11.9, 3.0) == []
    assert kinds(engine.evaluate(TAG, 12.0, 4.0)) == [("cleared", "CLEARED_UNACK", 4.0)]


def test_acknowledged_alarm_clears_to_normal() -> None:
    engine = AlarmEngine([hi()])
    engine.evaluate(TAG, 90.0, 1.0)
    assert engine.acknowledge("LEVEL_HI", "bob", "", 2.0).state is S.ACTIVE_ACK
    assert kinds(engine.evaluate(TAG, 70.0, 3.0)) == [("cleared", "CLEARED_ACK", 3.0)]
    assert engine.state("LEVEL_HI").normal


def test_cleared_unacked_alarm_can_come_back() -> None:
    engine = AlarmEngine([hi()])
    engine.evaluate(TAG, 90.0, 1.0)
    engine.evaluate(TAG, 70.0, 2.0)
    assert kinds(engine.evaluate(TAG, 91.0, 3.0)) == [("raised", "ACTIVE_UNACK", 3.0)]


def test_acknowledging_what_waits_for_nothing_is_an_error() -> None:
    engine = AlarmEngine([hi()])
    with pytest.raises(AlarmError, match=r"'LEVEL_HI': it is in normal state \(CLEARED_ACK\)"):
        engine.acknowledge("LEVEL_HI", "alice", "", 1.0)
    engine.evaluate(TAG, 90.0, 1.0)
    engine.acknowledge("LEVEL_HI", "alice", "", 2.0)
    with pytest.raises(AlarmError, match="already acknowledged"):
        engine.acknowledge("LEVEL_HI", "alice", "", 3.0)


def test_acknowledge_needs_a_known_alarm_and_a_user() -> None:
    engine = AlarmEngine([hi()])
    with pytest.raises(UnknownAlarm, match="no alarm named 'LEVEL_HII'. did you mean 'LEVEL_HI'"):
        engine.acknowledge("LEVEL_HII", "alice", "", 1.0)
    engine.evaluate(TAG, 90.0, 1.0)
    with pytest.raises(AlarmError, match="needs a user name"):
        engine.acknowledge("LEVEL_HI", "  ", "", 2.0)
    assert engine.state("LEVEL_HI") is S.ACTIVE_UNACK


def test_on_delay_counts_sample_time() -> None:
    engine = AlarmEngine([hi(on_delay=5.0)])
    assert engine.evaluate(TAG, 90.0, 0.0) == []
    assert engine.evaluate(TAG, 90.0, 3.0) == []
    assert engine.evaluate(TAG, 70.0, 4.0) == []  # condition gone: the delay restarts
    assert engine.evaluate(TAG, 90.0, 6.0) == []
    assert engine.evaluate(TAG, 90.0, 10.9) == []
    assert kinds(engine.evaluate(TAG, 90.0, 11.0)) == [("raised", "ACTIVE_UNACK", 11.0)]


def test_off_delay_counts_sample_time() -> None:
    engine = AlarmEngine([hi(off_delay=3.0)])
    engine.evaluate(TAG, 90.0, 0.0)
    assert engine.evaluate(TAG, 70.0, 1.0) == []
    assert engine.evaluate(TAG, 90.0, 2.0) == []  # back in alarm: the off delay restarts
    assert engine.evaluate(TAG, 70.0, 3.0) == []
    assert engine.evaluate(TAG, 70.0, 5.5) == []
    assert kinds(engine.evaluate(TAG, 70.0, 6.0)) == [("cleared", "CLEARED_UNACK", 6.0)]


def test_delay_forgives_float_rounding() -> None:
    engine = AlarmEngine([hi(on_delay=2.0)])
    engine.evaluate(TAG, 90.0, 0.3)
    assert 2.3 - 0.3 < 2.0  # the rounding the engine must forgive
    assert kinds(engine.evaluate(TAG, 90.0, 2.3)) == [("raised", "ACTIVE_UNACK", 2.3)]


def test_advance_runs_out_a_delay_without_new_samples() -> None:
    engine = AlarmEngine([hi(on_delay=5.0)])
    engine.evaluate(TAG, 90.0, 100.0)  # a tag that reports on change only
    assert engine.advance(104.0) == []
    assert kinds(engine.advance(105.0)) == [("raised", "ACTIVE_UNACK", 105.0)]
    assert engine.advance(200.0) == []  # nothing pending any more


def test_bad_quality_neither_raises_nor_clears() -> None:
    engine = AlarmEngine([hi()])
    assert engine.evaluate(TAG, 90.0, 1.0, "BadCommunicationError") == []
    assert engine.evaluate(TAG, 90.0, 2.0, "UncertainLastUsableValue") == []
    assert engine.evaluate(TAG, None, 3.0) == []
    assert engine.state("LEVEL_HI") is S.CLEARED_ACK
    engine.evaluate(TAG, 90.0, 4.0)
    assert engine.evaluate(TAG, 10.0, 5.0, "Bad") == []
    assert engine.state("LEVEL_HI") is S.ACTIVE_UNACK
    assert kinds(engine.evaluate(TAG, 10.0, 6.0, "GoodClamped")) == [
        ("cleared", "CLEARED_UNACK", 6.0)
    ]


def test_bad_quality_restarts_a_running_delay() -> None:
    engine = AlarmEngine([hi(on_delay=5.0)])
    engine.evaluate(TAG, 90.0, 0.0)
    engine.evaluate(TAG, 90.0, 3.0, "Bad")
    assert engine.evaluate(TAG, 90.0, 5.0) == []  # would have fired without the Bad sample
    assert engine.advance(9.9) == []
    assert kinds(engine.advance(10.0)) == [("raised", "ACTIVE_UNACK", 10.0)]


def test_late_samples_are_ignored() -> None:
    engine = AlarmEngine([hi()])
    engine.evaluate(TAG, 70.0, 10.0)
    assert engine.evaluate(TAG, 90.0, 9.0) == []
    assert engine.state("LEVEL_HI") is S.CLEARED_ACK


def test_several_alarms_on_one_tag_and_other_tags() -> None:
    hihi = hi(95.0).model_copy(update={"name": "LEVEL_HIHI", "kind": "HIHI", "severity": 900})
    flow = AlarmDefinition(name="FLOW_LO", tag=OTHER, kind="LO", limit=1.0)
    engine = AlarmEngine([hi(80.0), hihi, flow])
    assert [e.alarm for e in engine.evaluate(TAG, 96.0, 1.0)] == ["LEVEL_HI", "LEVEL_HIHI"]
    assert engine.state("FLOW_LO") is S.CLEARED_ACK
    assert engine.evaluate("acme/unknown", 1e9, 1.0) == []


def test_journal_records_and_filters() -> None:
    engine = AlarmEngine([hi(message="Tank 1 nearly full"), lo()])
    engine.evaluate(TAG, 90.0, 1.0)
    engine.acknowledge("LEVEL_HI", "alice", "valve closed", 2.0)
    engine.evaluate(TAG, 5.0, 3.0)
    entries = engine.journal()
    assert [(e.seq, e.alarm, e.kind.value, e.ts, e.value) for e in entries] == [
        (1, "LEVEL_HI", "raised", 1.0, 90.0),
        (2, "LEVEL_HI", "acknowledged", 2.0, 90.0),
        (3, "LEVEL_HI", "cleared", 3.0, 5.0),
        (4, "LEVEL_LO", "raised", 3.0, 5.0),
    ]
    assert entries[0].message == "Tank 1 nearly full"
    assert entries[3].message == f"{TAG} below LO limit 10"
    assert entries[1].user == "alice"
    assert entries[1].comment == "valve closed"
    assert [e.seq for e in engine.journal(alarm="LEVEL_HI", kind="raised")] == [1]
    assert [e.seq for e in engine.journal(start=2.0, end=3.0)] == [2]
    assert [e.seq for e in engine.journal(kind=EventKind.CLEARED, tag=TAG)] == [3]


def test_journal_is_bounded() -> None:
    engine = AlarmEngine([hi()], journal_size=3)
    for second in range(4):
        engine.evaluate(TAG, 90.0 if second % 2 == 0 else 10.0, float(second))
    assert [e.seq for e in engine.journal()] == [2, 3, 4]


def test_active_is_the_operator_alarm_list() -> None:
    low = lo(severity=200)
    high = hi(severity=800)
    flow = AlarmDefinition(name="FLOW_LO", tag=OTHER, kind="LO", limit=1.0, severity=200)
    engine = AlarmEngine([low, high, flow])
    engine.evaluate(OTHER, 0.0, 1.0)
    engine.evaluate(TAG, 90.0, 2.0)
    engine.evaluate(OTHER, 5.0, 3.0)  # FLOW_LO cleared but not acknowledged
    listed = engine.active()
    assert [(a.name, a.state, a.since) for a in listed] == [
        ("LEVEL_HI", S.ACTIVE_UNACK, 2.0),
        ("FLOW_LO", S.CLEARED_UNACK, 3.0),
    ]
    engine.acknowledge("FLOW_LO", "alice", "", 4.0)
    assert [a.name for a in engine.active()] == ["LEVEL_HI"]
    assert engine.status("LEVEL_LO").state is S.CLEARED_ACK
    assert len(engine.statuses()) == 3


def test_replace_definitions_keeps_unchanged_state() -> None:
    engine = AlarmEngine([hi(60.0), lo(10.0), hi(85.0).model_copy(update={"name": "GONE"})])
    engine.evaluate(TAG, 70.0, 1.0)  # LEVEL_HI raised
    assert engine.state("LEVEL_HI") is S.ACTIVE_UNACK
    engine.evaluate(OTHER, 3.0, 4.0)  # the engine's time moves on with any tag
    events = engine.replace_definitions([hi(60.0), lo(75.0)])  # LO changed: 70 < 75
    assert kinds(events) == [("raised", "ACTIVE_UNACK", 4.0)]
    assert events[0].alarm == "LEVEL_LO"
    assert engine.state("LEVEL_HI") is S.ACTIVE_UNACK
    assert [e.alarm for e in engine.journal()] == ["LEVEL_HI", "LEVEL_LO"]
    with pytest.raises(UnknownAlarm):
        engine.state("GONE")


def test_replace_definitions_resets_a_changed_alarm() -> None:
    engine = AlarmEngine([hi(60.0)])
    engine.evaluate(TAG, 70.0, 1.0)
    engine.acknowledge("LEVEL_HI", "alice", "", 2.0)
    events = engine.replace_definitions([hi(60.0, severity=900)])
    # The new definition starts NORMAL and is raised at once from the last sample (70 at
    # ts 1), at the engine's time: the newest ts it has seen, the acknowledgement's.
    assert [(e.kind, e.severity, e.ts, e.value) for e in events] == [
        (EventKind.RAISED, 900, 2.0, 70.0)
    ]
    assert engine.state("LEVEL_HI") is S.ACTIVE_UNACK  # the old acknowledgement is gone
    assert [(e.kind, e.severity) for e in engine.journal()] == [
        (EventKind.RAISED, 500),
        (EventKind.ACKNOWLEDGED, 500),
        (EventKind.RAISED, 900),
    ]


def test_replace_definitions_rejects_duplicates_and_keeps_the_old_ones() -> None:
    engine = AlarmEngine([hi()])
    with pytest.raises(AlarmError, match="two alarms are named 'LEVEL_HI'"):
        engine.replace_definitions([hi(), hi(90.0)])
    assert engine.definitions == [hi()]


def test_definition_validation() -> None:
    assert hi(kind="hihi").kind == "HIHI"
    for bad in ({"deadband": -1.0}, {"severity": 0}, {"severity": 1001}, {"on_delay": -1}):
        with pytest.raises(ValidationError):
            hi(**bad)
    with pytest.raises(ValidationError, match="Extra inputs"):
        hi(limt=3)
    with pytest.raises(ValidationError, match="is not a valid tag path"):
        AlarmDefinition(name="X", tag="acme/+/level", kind="HI", limit=1.0)


def test_datetime_timestamps() -> None:
    engine = AlarmEngine([hi()])
    moment = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    [event] = engine.evaluate(TAG, 90.0, moment)
    assert event.ts == moment.timestamp()
