"""Exercises 07-13 of the course: they lint clean, every reference solution passes and every
starter fails, for two apprentices, in real labs graded by the runner.

Each graded run is a real lab (free ports, embedded broker, platform) on a real-time clock,
so these tests are slow: a run takes from a few seconds (a starter that stops at its first
TODO) to the exercise's time limit in lab time (a service stopped at the limit). The rules
exercise's lab runs until its alarms' deadlines after the fault (less once both alarms are
raised), and the answers exercise, whose checks compare with the variant, runs on a virtual
clock: a second.

Reference solutions are graded from a copy of the solution folder in which YAML/JSON files
are rendered with the apprentice's variant (``{{ name }}``, like the brief): the answers of
an answers exercise depend on the variant, so its reference answers are a template. The
gateway solutions of 07 and 08 stop by themselves after ``GATEWAY_RUN_S`` seconds when that
variable is set, so that their runs do not last the whole time limit.

The virtual-clock tests check, for the corners of the variant space, the plant behaviour the
solutions rely on (a level that crosses the alarm limits in time, a bearing that reaches
4.5 mm/s within the run), since real-time runs cover only two variants.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from grading.checks import BROKEN, REGISTRY
from grading.manifest import Exercise, build_scenario, check_manifest, load_exercise
from grading.model import ExerciseResult
from grading.runner import exercise_variant, run_exercise
from grading.variants import render_brief
from simlab.lab import Lab

ROOT = Path(__file__).resolve().parents[2]
EXERCISES = ROOT / "exercises"
FOLDERS = (
    "07-modbus-gateway",
    "08-sparkplug-edge",
    "09-platform-alarm",
    "10-drift-diagnosis",
    "11-opcua-security",
    "12-oee",
    "13-bearing-fault",
)
APPRENTICES = ("ada", "ken")  # their variants differ in word order, tags, limits and timings
SECRET = "simlab-test-course"
GATEWAY_RUN_S = "20"  # wall seconds a reference gateway runs before it stops by itself
WALL_BUDGET_S = 40.0  # a run that stops early must stay within this


def _exercise(folder: str) -> Exercise:
    return load_exercise(EXERCISES / folder)


def _submission(exercise: Exercise, kind: str, apprentice: str, into: Path) -> Path:
    """A copy of the starter or solution folder, flat, its YAML/JSON rendered for a solution."""
    _, variant = exercise_variant(exercise, apprentice, SECRET)
    target = into / kind
    target.mkdir(parents=True)
    for name in getattr(exercise, kind):
        source = exercise.folder / name
        copy = target / Path(name).name
        if kind == "solution" and source.suffix in (".yaml", ".yml", ".json"):
            copy.write_text(render_brief(source.read_text("utf-8"), variant, str(source)), "utf-8")
        else:
            shutil.copyfile(source, copy)
    return target


async def _grade(
    exercise: Exercise, submission: Path, apprentice: str, state: Path
) -> tuple[ExerciseResult, float]:
    started = time.monotonic()
    result = await run_exercise(
        exercise, submission, apprentice=apprentice, course_secret=SECRET, state_dir=state
    )
    return result, time.monotonic() - started


def _report(result: ExerciseResult) -> str:
    lines = [f"{result.exercise} for {result.apprentice}: error={result.error}"]
    for check in result.checks:
        mark = "PASS" if check.passed else "FAIL"
        lines.append(f"  {mark} {check.check_id}: {check.message}")
        if check.diagnosis:
            lines.append(f"       {check.diagnosis[:400]}")
    return "\n".join(lines)


# --- the lint ----------------------------------------------------------------------------


def test_the_course_lint_finds_no_problem_in_exercises_07_to_13() -> None:
    problems = check_manifest(EXERCISES, known_checks=REGISTRY)
    manifest = (EXERCISES / "manifest.yaml").read_text("utf-8")
    entries = [line for line in manifest.splitlines() if "folder:" in line]
    mine = {i for i, line in enumerate(entries) if any(f in line for f in FOLDERS)}
    assert len(mine) == len(FOLDERS)
    ours = [
        p
        for p in problems
        if any(f"/{folder}/" in p.file or p.file.endswith(folder) for folder in FOLDERS)
        or any(p.path.startswith(f"exercises[{i}]") for i in mine)
    ]
    assert ours == [], "\n".join(str(p) for p in ours)


@pytest.mark.parametrize("folder", FOLDERS)
def test_each_exercise_has_its_brief_starter_and_solution(folder: str) -> None:
    exercise = _exercise(folder)
    assert exercise.brief_path.is_file()
    assert exercise.starter and exercise.solution
    assert len(exercise.hints) == 3
    assert exercise.starter[0].endswith((".py", ".yaml"))


# --- real runs: solutions pass, starters fail ----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("apprentice", APPRENTICES)
@pytest.mark.parametrize("folder", FOLDERS)
async def test_the_reference_solution_passes(
    folder: str, apprentice: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_RUN_S", GATEWAY_RUN_S)
    exercise = _exercise(folder)
    submission = _submission(exercise, "solution", apprentice, tmp_path)
    result, wall = await _grade(exercise, submission, apprentice, tmp_path / "state")
    assert result.passed, _report(result)
    assert result.score == result.max_score == sum(c.points for c in exercise.checks)
    assert wall < WALL_BUDGET_S, f"{folder}: {wall:.1f} s"  # no run sleeps out its limit


@pytest.mark.slow
@pytest.mark.parametrize("apprentice", APPRENTICES)
@pytest.mark.parametrize("folder", FOLDERS)
async def test_the_starter_fails(folder: str, apprentice: str, tmp_path: Path) -> None:
    exercise = _exercise(folder)
    submission = _submission(exercise, "starter", apprentice, tmp_path)
    result, wall = await _grade(exercise, submission, apprentice, tmp_path / "state")
    assert not result.passed, _report(result)
    assert result.score < result.max_score
    broken = [c for c in result.checks if c.message.startswith(BROKEN)]
    assert broken == [], _report(result)  # it fails on its merits, not because a check broke
    assert wall < WALL_BUDGET_S, f"{folder}: {wall:.1f} s"  # starters stop at their first TODO


@pytest.mark.slow
async def test_a_gateway_decoding_the_wrong_word_order_is_told_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_RUN_S", GATEWAY_RUN_S)
    exercise = _exercise("07-modbus-gateway")
    apprentice = APPRENTICES[0]
    _, variant = exercise_variant(exercise, apprentice, SECRET)
    submission = _submission(exercise, "solution", apprentice, tmp_path)
    program = submission / "gateway.py"
    right = "BYTE_POSITIONS[word_order]"
    text = program.read_text("utf-8")
    assert right in text
    swapped = '{"ABCD": "CDAB", "CDAB": "ABCD", "BADC": "DCBA", "DCBA": "BADC"}[word_order]'
    program.write_text(text.replace(right, f"BYTE_POSITIONS[{swapped}]"), "utf-8")

    result, _ = await _grade(exercise, submission, apprentice, tmp_path / "state")

    checks = {c.check_id: c for c in result.checks}
    tracking = checks["level-tracks-truth"]
    assert not tracking.passed, _report(result)
    assert tracking.evidence.get("hypothesis") == "word_order", _report(result)
    assert "word order" in tracking.message
    assert "swaps the two 16-bit words" in tracking.message
    assert f"the device serves {variant['word_order']}" in tracking.diagnosis
    assert checks["uns-contract"].passed  # the payloads themselves were fine


# --- the variant corners, on a virtual clock ---------------------------------------------


async def _trace(exercise: Exercise, variant: dict[str, Any], signal: str, until: float) -> list:
    scenario = build_scenario(exercise, variant)
    async with Lab(scenario) as lab:
        await lab.run_until(until)
        times, values = lab.truth.window(signal, 0.0, until)
    return list(zip(times.tolist(), values.tolist(), strict=True))


def _first(trace: list, above: float, after: float = 0.0) -> float | None:
    return next((t for t, v in trace if t >= after and v > above), None)


@pytest.mark.parametrize("setpoint", [1.1, 1.3])
@pytest.mark.parametrize("fault_at", [10, 25])
async def test_09_the_true_level_crosses_the_reference_limits_in_time(
    setpoint: float, fault_at: int
) -> None:
    exercise = _exercise("09-platform-alarm")
    trace = await _trace(exercise, {"setpoint": setpoint, "fault_at": fault_at}, "tank.level", 120)
    assert max(v for t, v in trace if t < fault_at) < 1.45 - 0.1  # no HI in normal operation
    hi, hihi = _first(trace, 1.45, fault_at), _first(trace, 1.75, fault_at)
    assert hi is not None and hi - fault_at < 60 - 10  # margin: gateway polls, ingest
    assert hihi is not None and hihi - fault_at < 90 - 10
    assert hihi < 120 - 10  # within the run, even if the time limit is lab time


@pytest.mark.parametrize("onset", [20, 40])
@pytest.mark.parametrize("rate", [30, 45])
async def test_13_the_bearing_reaches_4_5_mm_s_within_the_run(onset: int, rate: int) -> None:
    exercise = _exercise("13-bearing-fault")
    variant = {"wear_onset": onset, "wear_rate": rate}
    trace = await _trace(exercise, variant, "motor1.vibration", 120)
    assert max(v for t, v in trace if t < onset) < 1.5  # a quiet baseline before the wear
    crossing = _first(trace, 4.5, onset)
    assert crossing is not None and crossing < 120 - 10


@pytest.mark.parametrize("drift_tag", ["plc1.level", "plc1.level_b", "plc1.level_c"])
def test_10_every_drift_target_is_a_tag_of_the_lab(drift_tag: str) -> None:
    exercise = _exercise("10-drift-diagnosis")
    scenario = build_scenario(
        exercise, {"drift_tag": drift_tag, "drift_rate": 0.002, "drift_start": 20}
    )
    fault = scenario.faults[0]
    assert fault.target == drift_tag
    device, tag = drift_tag.split(".")
    spec = next(d for d in scenario.devices if d.name == device)
    assert any(t.name == tag and t.sensor is not None for t in spec.tags)


def test_10_the_reference_answers_are_a_template_of_the_variant() -> None:
    exercise = _exercise("10-drift-diagnosis")
    _, variant = exercise_variant(exercise, APPRENTICES[0], SECRET)
    text = (exercise.folder / "solution" / "answers.yaml").read_text("utf-8")
    rendered = render_brief(text, variant)
    answers = yaml.safe_load(rendered)
    assert answers == {
        "drifting_tag": variant["drift_tag"],
        "drift_rate": str(variant["drift_rate"]),
        "drift_start": str(variant["drift_start"]),
    }
