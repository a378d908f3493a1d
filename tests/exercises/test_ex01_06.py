"""Exercises 01-06 of the course: they lint clean, every reference solution passes and every
starter fails, for two apprentices, in real labs graded by the runner.

Each graded run is a real lab (free ports, embedded broker, platform) on a real-time clock. The
programs of 01-03 read once and exit (a run takes about 5 s); those of 04-06 watch or publish
for a minute of lab time (15-20 s of wall time), so their runs are marked slow.

The two apprentices were picked so that their variants differ where it matters: Modbus table
and word order (01), gains (02), browse name and folder (03), the slowest and the fastest
setpoint (05), the UNS site (06). The rest of the variant space is covered without a network:
the solutions' decoding against the lab's own register codec (01, 02), the plant behaviour the
checks rely on at the corners of the variants, on a virtual clock (04, 05), and the scenario's
UNS paths against the graded topics (06).
"""

from __future__ import annotations

import importlib.util
import itertools
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from devices.registermap import encode
from grading.checks import BROKEN, REGISTRY, run_check
from grading.evidence import Evidence
from grading.manifest import Exercise, build_scenario, check_manifest, load_exercise, load_manifest
from grading.model import CheckResult, ExerciseResult
from grading.runner import exercise_variant, run_exercise
from grading.variants import render_value
from simlab.lab import Lab
from simlab.scenario.devices import ModbusTagSpec

ROOT = Path(__file__).resolve().parents[2]
EXERCISES = ROOT / "exercises"
FOLDERS = (
    "01-modbus-float",
    "02-modbus-scaling",
    "03-opcua-browse",
    "04-opcua-subscribe",
    "05-setpoint-interlock",
    "06-uns-publish",
)
SLOW = ("04-opcua-subscribe", "05-setpoint-interlock", "06-uns-publish")  # 15-25 s a run
APPRENTICES = ("leo", "una")
SECRET = "simlab-test-course"
WALL_BUDGET_S = 30.0  # every run, solution or starter, ends by itself within this

RUNS = [pytest.param(f, marks=pytest.mark.slow) if f in SLOW else f for f in FOLDERS]


def _exercise(folder: str) -> Exercise:
    return load_exercise(EXERCISES / folder)


def _variant(exercise: Exercise, apprentice: str) -> dict[str, Any]:
    return exercise_variant(exercise, apprentice, SECRET)[1]


def _submission(exercise: Exercise, kind: str, into: Path) -> Path:
    """A flat copy of the starter or solution folder, as an apprentice hands it in."""
    target = into / kind
    target.mkdir(parents=True)
    for name in getattr(exercise, kind):
        shutil.copyfile(exercise.folder / name, target / Path(name).name)
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


def _load_program(folder: str, kind: str, name: str) -> ModuleType:
    """Import an exercise's program as a module (its main only runs as a script)."""
    path = EXERCISES / folder / kind / name
    spec = importlib.util.spec_from_file_location(f"ex_{folder[:2]}_{kind}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the lint ----------------------------------------------------------------------------


def test_the_course_lint_finds_no_problem_in_exercises_01_to_06() -> None:
    problems = check_manifest(EXERCISES, known_checks=REGISTRY)
    entries = load_manifest(EXERCISES).exercises
    mine = {i for i, entry in enumerate(entries) if entry.folder in FOLDERS}
    assert len(mine) == len(FOLDERS)
    ours = [
        p
        for p in problems
        if any(f"/{folder}/" in p.file for folder in FOLDERS)
        or any(p.path.startswith(f"exercises[{i}]") for i in mine)
    ]
    assert ours == [], "\n".join(str(p) for p in ours)


@pytest.mark.parametrize("folder", FOLDERS)
def test_each_exercise_has_its_brief_starter_solution_and_two_distinct_variants(
    folder: str,
) -> None:
    exercise = _exercise(folder)
    assert exercise.brief_path.is_file()
    assert exercise.mode == "program"
    assert [Path(s).name for s in exercise.starter] == [Path(s).name for s in exercise.solution]
    assert len(exercise.hints) == 3
    first, second = (_variant(exercise, a) for a in APPRENTICES)
    assert first != second  # the two real runs grade two different variants


# --- real runs: solutions pass, starters fail ----------------------------------------------


@pytest.mark.parametrize("apprentice", APPRENTICES)
@pytest.mark.parametrize("folder", RUNS)
async def test_the_reference_solution_passes(folder: str, apprentice: str, tmp_path: Path) -> None:
    exercise = _exercise(folder)
    submission = _submission(exercise, "solution", tmp_path)
    result, wall = await _grade(exercise, submission, apprentice, tmp_path / "state")
    assert result.passed, _report(result)
    assert result.score == result.max_score == sum(c.points for c in exercise.checks)
    assert wall < WALL_BUDGET_S, f"{folder}: {wall:.1f} s"


@pytest.mark.parametrize("apprentice", APPRENTICES)
@pytest.mark.parametrize("folder", RUNS)
async def test_the_starter_fails(folder: str, apprentice: str, tmp_path: Path) -> None:
    exercise = _exercise(folder)
    submission = _submission(exercise, "starter", tmp_path)
    result, wall = await _grade(exercise, submission, apprentice, tmp_path / "state")
    assert not result.passed, _report(result)
    assert result.score < result.max_score
    broken = [c for c in result.checks if c.message.startswith(BROKEN)]
    assert broken == [], _report(result)  # it fails on its merits, not because a check broke
    assert wall < WALL_BUDGET_S, f"{folder}: {wall:.1f} s"


# --- 01: the solution against the lab's codec, and the read check ------------------------


@pytest.mark.parametrize("word_order", ["ABCD", "CDAB", "BADC", "DCBA"])
def test_01_the_solution_decodes_what_the_lab_encodes_in_every_word_order(
    word_order: str,
) -> None:
    program = _load_program("01-modbus-float", "solution", "read_level.py")
    spec = ModbusTagSpec(table="input_register", address=0, type="float32", word_order=word_order)
    registers = encode(spec, 1.2345)
    assert program.decode_float32(registers, word_order) == pytest.approx(1.2345, abs=1e-6)


@pytest.mark.parametrize(
    ("table", "address"), list(itertools.product(["input_register", "holding_register"], [10, 99]))
)
def test_01_the_level_can_sit_at_every_address_of_both_tables(table: str, address: int) -> None:
    exercise = _exercise("01-modbus-float")
    variant = {"table": table, "address": address, "word_order": "DCBA", "level": 0.6}
    scenario = build_scenario(exercise, variant)
    plc1 = next(d for d in scenario.devices if d.name == "plc1")
    level = next(t for t in plc1.tags if t.name == "level")
    assert level.modbus is not None
    assert (level.modbus.table, level.modbus.address) == (table, address)


@pytest.fixture
def exercise_01_on_path() -> Iterator[Exercise]:
    """Exercise 01, with its folder importable (as the runner does for python: checks)."""
    exercise = _exercise("01-modbus-float")
    sys.path.insert(0, str(exercise.folder))
    yield exercise
    sys.path.remove(str(exercise.folder))
    sys.modules.pop("read_check", None)


async def _read_check(exercise: Exercise, requests: list[tuple[str, bool]]) -> CheckResult:
    """The right-registers check of 01 (holding register 40) after these Modbus requests."""
    variant = {"table": "holding_register", "address": 40, "word_order": "ABCD", "level": 1.0}
    async with Lab(build_scenario(exercise, variant)) as lab:
        await lab.run_for(1.0)
        session = lab.audit.open("plc1", "modbus", "127.0.0.1:50000", lab.time)
        for target, ok in requests:
            reason = "" if ok else "not answered: unit id 7 not served (1)"
            lab.audit.record(session, lab.time, "request", target, ok=ok, reason=reason)
        evidence = Evidence.from_lab(lab)
    spec = next(c for c in exercise.checks if c.id == "right-registers")
    return run_check(spec, evidence, variant)


@pytest.mark.parametrize(
    ("requests", "passed", "told"),
    [
        ([("fc3 holding_register 40..41", True)], True, ""),
        ([("fc3 holding_register 30..49", True)], True, ""),
        ([("fc4 input_register 40..41", True)], False, "the other table"),
        ([("fc3 holding_register 41..42", True)], False, "off by one"),
        ([("fc3 holding_register 39..40", True)], False, "off by one"),
        ([("fc3 holding_register 40..40", True)], False, "only part"),
        ([("fc3 holding_register 38..39", True)], False, "read holding_register 40 and 41"),
        ([("fc3 holding_register 40..41", False)], False, "unit id 7"),
        ([("fc43/14 device_identification", True)], False, "sent no read"),
        ([], False, "sent no read"),
    ],
)
async def test_01_the_read_check_names_the_mistake(
    exercise_01_on_path: Exercise, requests: list[tuple[str, bool]], passed: bool, told: str
) -> None:
    result = await _read_check(exercise_01_on_path, requests)
    assert not result.message.startswith(BROKEN), result.message
    assert result.passed is passed, result.message
    assert told in result.diagnosis


# --- 02: the solution against the lab's codec --------------------------------------------


@pytest.mark.parametrize("gain", [10, 100])
@pytest.mark.parametrize(
    ("kind", "value"), [("int16", 61.7), ("int16", -12.3), ("uint16", 63.5), ("uint16", 95.0)]
)
def test_02_the_solution_undoes_the_cards_scaling(kind: str, value: float, gain: int) -> None:
    program = _load_program("02-modbus-scaling", "solution", "read_scaled.py")
    spec = ModbusTagSpec(table="input_register", address=0, type=kind, gain=gain)
    (raw,) = encode(spec, value)
    engineering = program.to_engineering(raw, gain, signed=kind == "int16")
    assert engineering == pytest.approx(value, abs=0.5 / gain)


# --- 04 and 05: the plant behaviour the checks rely on, at the corners -----------------------


async def _trace(
    exercise: Exercise, variant: dict[str, Any], until: float, actions: dict[float, Any]
) -> Evidence:
    """Evidence of a virtual-clock run of the exercise's lab; ``actions[t](lab)`` at t."""
    async with Lab(build_scenario(exercise, variant)) as lab:
        for at, action in sorted(actions.items()):
            await lab.run_until(at)
            action(lab)
        await lab.run_until(until)
        return Evidence.from_lab(lab)


@pytest.mark.parametrize(
    ("level", "leak_at", "leak_flow"), list(itertools.product([0.9, 1.5], [15, 25], [12, 30]))
)
async def test_04_the_dip_happens_inside_the_watched_minute(
    level: float, leak_at: int, leak_flow: int
) -> None:
    exercise = _exercise("04-opcua-subscribe")
    variant = {"level": level, "leak_at": leak_at, "leak_flow": leak_flow}
    evidence = await _trace(exercise, variant, 80.0, {})
    times, values = evidence.signal_series("tank.level", 0.0, 60.0)
    low, high = float(values.min()), float(values.max())
    assert high == pytest.approx(level, abs=1e-3)  # the steady start: seen by any watcher
    assert leak_at <= float(times[values.argmin()]) <= leak_at + 16  # the bottom of the dip
    assert high - low > 0.08  # far more than the answers' tolerance of 2 cm each
    assert float(evidence.signal_series("tank.level", 60.0, 80.0)[1].max()) < level


def _restart(setpoint: float) -> Any:
    def act(lab: Lab) -> None:  # what the solution does over OPC UA
        assert lab.read("plc1.level_hh") is True  # the welder's spike has tripped HH
        lab.write("plc1.hh_reset", True)  # AcknowledgeFault pulses this bit
        lab.write("plc1.level_sp", setpoint)

    return act


@pytest.mark.parametrize("acted_at", [10.0, 40.0])
@pytest.mark.parametrize("sp_digit", [1, 2, 3, 4])
async def test_05_every_setpoint_settles_in_time_and_passes_the_checks(
    sp_digit: int, acted_at: float
) -> None:
    exercise = _exercise("05-setpoint-interlock")
    variant = {"sp_digit": sp_digit}
    setpoint = float(f"1.{sp_digit}5")
    # a program acting at t=40 s of lab time and then waiting for the level runs ~20 s wall
    evidence = await _trace(exercise, variant, acted_at + 150.0, {acted_at: _restart(setpoint)})
    results = [run_check(spec, evidence, variant) for spec in exercise.checks]
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


async def test_05_without_the_reset_the_setpoint_alone_gets_nowhere() -> None:
    exercise = _exercise("05-setpoint-interlock")
    variant = {"sp_digit": 1}

    def write_only(lab: Lab) -> None:
        lab.write("plc1.level_sp", 1.15)

    evidence = await _trace(exercise, variant, 200.0, {10.0: write_only})
    results = {spec.id: run_check(spec, evidence, variant) for spec in exercise.checks}
    assert results["setpoint"].passed
    assert not results["trip-reset"].passed
    assert not results["settled"].passed  # the latched trip holds the pump at 0 %


# --- 06: the graded topics are the lab's UNS paths -----------------------------------------


@pytest.mark.parametrize(
    ("site", "asset"),
    list(
        itertools.product(
            ["riverside", "lakeside", "northgate", "harbour", "millbrook"],
            ["tank1", "tk101", "buffer1"],
        )
    ),
)
def test_06_the_graded_topics_are_the_scenarios_uns_paths(site: str, asset: str) -> None:
    exercise = _exercise("06-uns-publish")
    variant = {"site": site, "asset": asset}
    scenario = build_scenario(exercise, variant)
    params = {c.id: render_value(c.params, variant) for c in exercise.checks}
    level = scenario.uns_path("plc1", "level")
    temperature = scenario.uns_path("plc1", "temperature")
    assert params["level-tracks-truth"]["topic"] == level
    assert params["temperature-tracks-truth"]["topic"] == temperature
    assert params["uns-contract"]["topics"] == [level, temperature]
    assert scenario.gateway is None  # the apprentice's program is the only publisher
