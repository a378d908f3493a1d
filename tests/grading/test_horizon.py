"""How long a graded run lasts: lab-time limits, the evidence each check needs, the plan of a
run; and the runner using it (a virtual answers run, a limit from the manifest)."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from grading.horizon import Need, RunPlan, check_needs, plan_run, timeline_instant
from grading.manifest import Exercise, build_scenario, load_exercise, load_manifest
from grading.model import GradingError
from grading.runner import clock_speed, exercise_time_limit, exercise_variant, run_exercise
from grading.variants import render_brief
from simlab.lab import Lab
from simlab.platform.alarms import AlarmDefinition, AlarmEngine

ROOT = Path(__file__).resolve().parents[2]
EXERCISES = ROOT / "exercises"
SECRET = "horizon-secret"
TAG = "acme/riverside/utilities/water/buffer_tank/tank1/level"


def _exercise(folder: str) -> Exercise:
    return load_exercise(EXERCISES / folder)


def _plan(folder: str, apprentice: str = "ada", *, hold: bool = False) -> RunPlan:
    exercise = _exercise(folder)
    _, variant = exercise_variant(exercise, apprentice, SECRET)
    scenario = build_scenario(exercise, variant)
    return plan_run(exercise, scenario, variant, exercise_time_limit(exercise), hold=hold)


def test_every_exercise_takes_its_limit_from_the_manifest_in_lab_seconds() -> None:
    manifest = load_manifest(EXERCISES)
    for entry in manifest.exercises:
        exercise = load_exercise(manifest.root / entry.folder)
        assert exercise.time_limit_s is None  # one place: the manifest
        assert exercise_time_limit(exercise) == entry.time_limit_s
        plan = _plan(entry.folder)
        assert plan.wall_limit_s == entry.time_limit_s / clock_speed(exercise)
        assert plan.beyond_limit() == [], entry.id  # every check's evidence fits the run


def test_an_exercise_without_a_manifest_or_limit_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "09-platform-alarm"
    shutil.copytree(EXERCISES / "09-platform-alarm", folder)
    with pytest.raises(GradingError, match="no time limit"):
        exercise_time_limit(load_exercise(folder))
    text = (folder / "exercise.yaml").read_text("utf-8")
    (folder / "exercise.yaml").write_text(text + "time_limit_s: 77\n", "utf-8")
    assert exercise_time_limit(load_exercise(folder)) == 77


def test_a_rules_run_ends_at_the_last_deadline_after_the_fault() -> None:
    exercise = _exercise("09-platform-alarm")
    _, variant = exercise_variant(exercise, "ada", SECRET)
    plan = _plan("09-platform-alarm")
    fault_at = variant["fault_at"]
    assert plan.speed == 4 and plan.limit_s == 120 and not plan.virtual
    assert plan.end_s == pytest.approx(fault_at + 90 + 0.1)  # one plant step after the deadline
    assert [(n.check_id, n.alarm, n.after_s) for n in plan.needs] == [
        ("hi-alarm", "LT101_HI", fault_at),
        ("hihi-alarm", "LT101_HIHI", fault_at),
    ]
    held = _plan("09-platform-alarm", hold=True)  # simlab check: the apprentice looks at it
    assert held.end_s == 120


def test_an_alarm_need_is_complete_once_raised_or_when_no_rule_defines_it() -> None:
    plan = RunPlan("rules", 120, 4, (Need("hi", 79.0, alarm="HI", after_s=20.0), Need("x", 30.0)))
    engine = AlarmEngine()
    assert plan.complete(30.0, engine)  # no rule defines HI: nothing can raise it
    engine.replace_definitions(
        [AlarmDefinition(name="HI", tag=TAG, kind="HI", limit=1.0, severity=600)]
    )
    assert not plan.complete(30.0, engine)
    engine.evaluate(TAG, 2.0, 10.0)  # raised before the fault: does not complete it
    assert not plan.complete(30.0, engine)
    engine.evaluate(TAG, 0.0, 11.0)
    engine.evaluate(TAG, 2.0, 25.0)
    assert plan.complete(30.0, engine)
    assert not plan.complete(29.0, engine)  # the other need's window is still open
    assert plan.complete(79.0, None)  # every deadline has passed


def test_windows_and_timeline_deadlines() -> None:
    plan = _plan("04-opcua-subscribe")  # min and max over the first minute of lab time
    assert plan.reach_s == 60 and plan.evidence_until_s is None
    plan = _plan("06-uns-publish")  # the published values are graded from t=10 s on
    assert plan.reach_s == 10 and plan.evidence_until_s is None
    plan = _plan("05-setpoint-interlock")
    assert plan.reach_s == 0  # a program's run need not wait for deadlines
    needs = {n.check_id: n.until_s for n in plan.needs}
    assert needs == {"hands-off": None, "trip-reset": 122.1, "setpoint": 120.1, "settled": None}
    scenario = build_scenario(_exercise("05-setpoint-interlock"), {"sp_digit": 2})
    assert timeline_instant({"fault": "spike"}, scenario) == 2
    assert timeline_instant({"fault": "spike", "action": "end"}, scenario) is None  # no duration
    assert timeline_instant({"fault": "leak"}, scenario) is None
    assert timeline_instant({"at": 7}, scenario) == 7
    assert timeline_instant({"write": "plc1.level_sp"}, scenario) is None


def test_needs_of_answer_and_state_checks() -> None:
    exercise = _exercise("10-drift-diagnosis")
    scenario = build_scenario(exercise, exercise_variant(exercise, "ada", SECRET)[1])
    checks: list[dict[str, Any]] = [
        {"type": "answer_equals", "params": {"expected": {"truth": "tank.level", "at": 42}}},
        {"type": "answer_equals", "params": {"expected": {"truth": "tank.level"}}},
        {
            "type": "answer_equals",
            "params": {"expected": {"truth": "t", "stat": "min", "window": [0, 30]}},
        },
        {"type": "answer_equals", "params": {"expected": 3}},
        {"type": "state_held", "params": {"window": [5, "{{ drift_start }}"]}},
        {"type": "state_held", "params": {"after": {"at": 10}, "duration_s": 5, "settle_s": 1}},
        {"type": "state_held", "params": {"window": [5, None]}},
        {"type": "timed_sequence", "params": {"a": {"at": 3}, "within_s": 4, "every": True}},
        {"type": "timed_sequence", "params": {"a": {"at": 3}, "within_s": 4}},
        {"type": "value_tracks_truth", "params": {}},
        {"type": "value_tracks_truth", "params": {"window": [10, None]}},
        {"type": "uns_contract", "params": {"window": [0, 50]}},
    ]
    data = {
        "checks": [
            {"id": f"c{i}", "title": "t", "points": 1, **check} for i, check in enumerate(checks)
        ]
    }
    changed = type(exercise).model_validate({**exercise.model_dump(), **data})
    variant = {"drift_start": 33, "drift_tag": "plc1.level", "drift_rate": 0.002}
    found = [(n.until_s, n.reach_s) for n in check_needs(changed, scenario, variant)]
    assert found == [
        (42, 42),  # the truth at t=42 s
        (None, 0),  # the truth at the end of the run
        (30, 30),
        (0, 0),  # a value: nothing from the lab
        (33, 33),
        (16, 16),
        (None, 5),  # an open window: the run must reach its start
        (None, 0),
        (7.1, 0),  # a deadline: complete then, but a program's run need not wait for it
        (None, 0),
        (None, 10),
        (None, 50),  # reached, but not complete then: it is not the truth alone
    ]


def test_an_answers_exercise_on_truth_alone_runs_virtually_unless_held() -> None:
    plan = _plan("10-drift-diagnosis")
    assert plan.virtual and plan.end_s == 0  # its checks compare with the variant only
    held = _plan("10-drift-diagnosis", hold=True)
    assert not held.virtual and held.end_s == 480  # two minutes at 4x to investigate


@pytest.mark.parametrize(("kind", "passes"), [("solution", True), ("starter", False)])
def test_the_drift_diagnosis_grades_in_a_second(tmp_path: Path, kind: str, passes: bool) -> None:
    exercise = _exercise("10-drift-diagnosis")
    _, variant = exercise_variant(exercise, "ada", SECRET)
    submission = tmp_path / kind
    submission.mkdir()
    source = exercise.folder / kind / "answers.yaml"
    (submission / "answers.yaml").write_text(
        render_brief(source.read_text("utf-8"), variant), "utf-8"
    )
    started = time.monotonic()
    result = asyncio.run(
        run_exercise(
            exercise, submission, apprentice="ada", course_secret=SECRET, state_dir=tmp_path / "s"
        )
    )
    assert result.passed is passes, [c.message for c in result.checks]
    assert time.monotonic() - started < 5
    assert not (tmp_path / "s").exists()  # no endpoints, no platform: nothing to keep


def test_a_virtual_lab_records_the_same_truth_as_a_real_time_one() -> None:
    exercise = _exercise("10-drift-diagnosis")
    variant = {"drift_tag": "plc1.level_b", "drift_rate": 0.004, "drift_start": 1}
    scenario = build_scenario(exercise, variant)

    async def real_time() -> Lab:
        from simlab.clock import RealTimeClock

        lab = Lab(scenario, clock=RealTimeClock(20.0, scenario.epoch))
        async with lab:
            while lab.time < 12:
                await asyncio.sleep(0.05)
        return lab

    async def virtual() -> Lab:
        async with Lab(scenario) as lab:
            await lab.run_until(12)
        return lab

    live, replay = asyncio.run(real_time()), asyncio.run(virtual())
    for signal in ("tank.level", "tank_heat.temperature"):
        times, values = live.truth.window(signal, 0.0, 12.0)
        again_times, again = replay.truth.window(signal, 0.0, 12.0)
        assert times.tolist() == again_times.tolist()[: len(times)]
        assert values.tolist() == again.tolist()[: len(values)]
    events = [(e.time, e.action, e.kind, e.target) for e in live.faults.events]
    assert events == [(1.0, "start", "drift", "plc1.level_b")]
    assert events == [(e.time, e.action, e.kind, e.target) for e in replay.faults.events]
