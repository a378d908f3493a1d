"""Batch grading: a class with good, wrong, crashing, hanging and hostile submissions is
graded in parallel worker processes, and every one gets a result that says what happened.

The class is graded once, in one test (``simlab grade`` through
:func:`simlab.course_cli.main`, about 20 s on two cores), so that parallel test workers
never grade it twice.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from grading import batch, runner
from grading.batch import (
    BatchError,
    GradeJob,
    describe,
    error_result,
    grade_jobs,
    kill_process_tree,
    lab_failed,
    plan_class,
)
from grading.manifest import load_exercise, load_manifest
from grading.model import ExerciseResult
from grading.reports import RosterEntry, read_result_json, result_json
from grading.runner import exercise_variant, run_exercise
from grading.signing import SIGNING_KEY_ENV
from grading.variants import render_title
from grading.workspace import SECRET_ENV
from simlab import course_cli
from simlab.errors import SimlabError

COURSE = Path(__file__).parent / "fixtures" / "course_cli"
EXERCISE = COURSE / "01-setpoint"
SECRET = "batch-secret"
SIGNING_KEY = "batch-grader-key"

PROGRAMS = {
    "good": (EXERCISE / "solution" / "answer.py").read_text(),
    "wrong": (EXERCISE / "starter" / "answer.py").read_text(),
    "crash": 'raise RuntimeError("boom")\n',
    "hang": "import time\nwhile True:\n    time.sleep(1)\n",
    "hostile": "block = bytearray(2 * 1024**3)  # 2 GB\nprint(len(block))\n",
    "killer": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)  # kills its grader\n",
}


@pytest.fixture(autouse=True)
def no_signing_key_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests choose whether the grader has a signing key, not the environment."""
    monkeypatch.delenv(SIGNING_KEY_ENV, raising=False)


def write_class(root: Path, names: list[str]) -> tuple[Path, Path]:
    submissions = root / "submissions"
    for name in names:
        folder = submissions / name / "01-setpoint"
        folder.mkdir(parents=True)
        (folder / "answer.py").write_text(PROGRAMS[name])
    (submissions / "stranger" / "01-setpoint").mkdir(parents=True)  # not on the roster
    roster = root / "roster.csv"
    rows = "".join(f"{name},{name.title()} Apprentice\n" for name in [*names, "absent"])
    roster.write_text("id,name\n" + rows)
    return submissions, roster


def grade(root: Path, submissions: Path, roster: Path, *extra: str) -> int:
    return course_cli.main(
        [
            "grade",
            "--roster",
            str(roster),
            "--submissions",
            str(submissions),
            "--out",
            str(root / "out"),
            "--secret",
            SECRET,
            "--course",
            str(COURSE),
            "--time-limit",
            "30",  # lab seconds: 3 s of wall time at the fixture's clock speed 10
            *extra,
        ]
    )


# One class, graded once for all its assertions: about 18 s on 2 cores (not marked slow).
def test_a_class_with_crashing_hanging_and_hostile_submissions_is_graded_in_full(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    submissions, roster = write_class(tmp_path, list(PROGRAMS))
    scratch = tmp_path / "scratch"  # where the batch makes each job's private folder
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv(SIGNING_KEY_ENV, SIGNING_KEY)  # the grader's own key signs
    started = time.monotonic()
    assert grade(tmp_path, submissions, roster, "--jobs", "3") == 0
    assert time.monotonic() - started < 60
    assert list(scratch.iterdir()) == []  # also the folder of the worker that was killed
    out = tmp_path / "out"
    printed = capsys.readouterr()
    assert "not on the roster, not graded: stranger" in printed.err
    assert "no signing key" not in printed.err
    assert "left out of the reports" not in printed.err

    # every roster apprentice who handed in has a result signed with the signing key
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(PROGRAMS)
    results = {
        name: read_result_json(
            (out / name / "setpoint.json").read_text(), None, signing_key=SIGNING_KEY
        )
        for name in PROGRAMS
    }
    assert course_cli.main(["verify", str(out), "--signing-key", SIGNING_KEY]) == 0
    capsys.readouterr()
    monkeypatch.delenv(SIGNING_KEY_ENV)
    assert course_cli.main(["verify", str(out / "good"), "--secret", SECRET]) == 1
    assert "signed with a grader's signing key" in capsys.readouterr().err
    exercise = load_exercise(EXERCISE)
    statuses = {name: describe(result, exercise) for name, result in results.items()}
    assert statuses == {
        "good": "passed",
        "wrong": "failed",
        "crash": "crashed (exit 1)",
        "hang": "timed out",
        "hostile": "memory limit",
        "killer": statuses["killer"],
    }
    assert statuses["killer"].startswith("error: the grading worker died")
    assert {n: r.score for n, r in results.items()} == {
        n: 10 if n == "good" else 0 for n in PROGRAMS
    }
    for status in ("passed", "crashed (exit 1)", "timed out", "memory limit"):
        assert status in printed.out  # the summary table

    # the feedback says why
    def feedback(name: str) -> str:
        return (out / name / "feedback.md").read_text()

    assert "**Score: 10 / 10** — passed" in feedback("good")
    assert "0 is not within 0.001 of the expected value" in feedback("wrong")
    assert "Next hint (1 of 3)" in feedback("wrong")
    assert "RuntimeError: boom" in feedback("crash")
    assert "did not finish within its time limit of 30 s" in feedback("hang")
    assert "MemoryError" in feedback("hostile")
    assert "did not run to the end:** the grading worker died" in feedback("killer")

    # the gradebook has every roster row, the absent one with an empty cell
    rows = list(csv.DictReader(io.StringIO((out / "gradebook.csv").read_text())))
    by_id = {row["id"]: row for row in rows}
    assert list(by_id) == [*PROGRAMS, "absent"]
    assert (by_id["good"]["exercise:setpoint"], by_id["good"]["name"]) == (
        "100.0",
        "Good Apprentice",
    )
    assert by_id["crash"]["exercise:setpoint"] == "0.0"
    assert (by_id["absent"]["exercise:setpoint"], by_id["absent"]["total"]) == ("", "0.0")

    # JUnit: failed checks are failures, a submission that killed its grader is an error
    root = ET.fromstring((out / "junit.xml").read_text())
    cases = {
        (case.get("classname", "").rsplit(".", 1)[1], case.get("name")): case
        for case in root.iter("testcase")
    }
    assert len(cases) == 2 * len(PROGRAMS)
    assert list(cases["good", "setpoint"]) == []
    assert cases["wrong", "setpoint"].find("failure") is not None
    gate = cases["hang", "ran"].find("failure")
    assert gate is not None and gate.get("type") == "GateFailed"
    error = cases["killer", "setpoint"].find("error")
    assert error is not None and "grading worker died" in error.get("message", "")


def test_regrading_the_same_submission_gives_the_same_score() -> None:
    job = GradeJob(
        EXERCISE.resolve(), "setpoint", "ann", (EXERCISE / "solution").resolve(), SECRET, 30.0, 512
    )
    first, again = asyncio.run(grade_jobs([job, job], concurrency=2))
    assert first.result.passed and again.result.passed
    assert (first.result.score, first.result.variant_seed) == (10, again.result.variant_seed)
    assert again.result.score == first.result.score


def test_a_job_whose_lab_could_not_start_runs_again(monkeypatch: pytest.MonkeyPatch) -> None:
    job = GradeJob(EXERCISE, "setpoint", "ann", EXERCISE, SECRET)
    exercise = load_exercise(EXERCISE)
    port_taken = error_result(job, "the lab could not run: port 4840 in use", exercise)
    runs: list[ExerciseResult] = [port_taken, port_taken, error_result(job, "crashed", exercise)]
    assert lab_failed(port_taken) and not lab_failed(runs[2])

    async def flaky(_: GradeJob) -> ExerciseResult:
        return runs.pop(0)

    monkeypatch.setattr(batch, "run_job", flaky)
    [outcome] = asyncio.run(grade_jobs([job], isolation="inline", retries=2))
    assert (outcome.attempts, outcome.result.error) == (3, "crashed")
    runs[:] = [port_taken, port_taken]
    [outcome] = asyncio.run(grade_jobs([job], isolation="inline", retries=1))
    assert outcome.attempts == 2 and lab_failed(outcome.result)


def test_verify_names_an_edited_result_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = GradeJob(EXERCISE, "setpoint", "ann", EXERCISE, SECRET)
    results = tmp_path / "out"
    for apprentice in ("ann", "bob"):
        result = replace(error_result(job, "ran"), apprentice=apprentice)
        (results / apprentice).mkdir(parents=True)
        (results / apprentice / "setpoint.json").write_text(result_json(result, SECRET))
    assert course_cli.main(["verify", str(results), "--secret", SECRET]) == 0
    edited = results / "bob" / "setpoint.json"
    data = json.loads(edited.read_text())
    data["checks"] = [{**c, "points": c["max_points"], "passed": True} for c in data["checks"]]
    data["score"] = 10.0
    edited.write_text(json.dumps(data, indent=2))
    capsys.readouterr()
    assert course_cli.main(["verify", str(results), "--secret", SECRET]) == 1
    errors = capsys.readouterr().err
    assert f"{edited}: the signature does not match" in errors
    assert str(results / "ann") not in errors
    assert course_cli.main(["verify", str(results / "ann"), "--secret", "another"]) == 1


def test_verify_with_a_signing_key_rejects_what_the_course_secret_signed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every apprentice holds the course secret: with the grader's signing key given, a
    result signed with the course secret only is named as forgeable, not passed."""
    job = GradeJob(EXERCISE, "setpoint", "ann", EXERCISE, SECRET)
    results = tmp_path / "out"
    keyed, forged = results / "ann" / "setpoint.json", results / "bob" / "setpoint.json"
    for path in (keyed, forged):
        path.parent.mkdir(parents=True)
    ann = error_result(job, "ran", load_exercise(EXERCISE))
    keyed.write_text(result_json(ann, SECRET, signing_key=SIGNING_KEY))
    forged.write_text(result_json(replace(ann, apprentice="bob"), SECRET))

    def verify(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        code = course_cli.main(["verify", *argv])
        return code, capsys.readouterr().err

    monkeypatch.delenv(SECRET_ENV, raising=False)
    assert verify(str(keyed), "--signing-key", SIGNING_KEY) == (0, "")  # no secret needed
    code, errors = verify(str(results), "--signing-key", SIGNING_KEY)
    assert code == 1
    assert (
        f"{forged}: signed with the course secret: anyone with the course secret (every "
        "apprentice) could have made this; grade with --signing-key"
    ) in errors
    assert str(keyed) not in errors and "edited" not in errors
    monkeypatch.setenv(SIGNING_KEY_ENV, SIGNING_KEY)  # the default of --signing-key
    assert verify(str(forged))[0] == 1
    monkeypatch.delenv(SIGNING_KEY_ENV)

    # without the key: the key's file cannot be checked, the course secret's passes (warned)
    code, errors = verify(str(keyed), "--secret", SECRET)
    assert code == 1
    assert f"{keyed}: signed with a grader's signing key: verify it with --signing-key" in errors
    code, errors = verify(str(forged), "--secret", SECRET)
    assert code == 0
    assert "1 file(s) signed with the course secret only" in errors

    # an edit breaks a signing-key signature like any other
    data = json.loads(keyed.read_text())
    data["checks"] = [{**c, "points": c["max_points"], "passed": True} for c in data["checks"]]
    keyed.write_text(json.dumps(data, indent=2))
    code, errors = verify(str(keyed), "--signing-key", SIGNING_KEY)
    assert code == 1
    assert f"{keyed}: the signature does not match: the file was edited after grading" in errors
    assert verify(str(forged), "--signing-key", "")[0] != 0  # an empty key is a mistake


def test_plan_lists_missing_submissions_and_strangers(tmp_path: Path) -> None:
    submissions, _ = write_class(tmp_path, ["good"])
    roster = [RosterEntry("good", "G"), RosterEntry("absent", "A")]
    manifest = load_manifest(COURSE)
    plan = plan_class(manifest, roster, submissions, course_secret=SECRET)
    assert [(j.apprentice, j.exercise_id) for j in plan.jobs] == [("good", "setpoint")]
    job = plan.jobs[0]
    assert (job.time_limit_s, job.memory_mb, job.clock_speed) == (40, 512, 10)  # the manifest's
    assert job.submission.is_absolute() and job.exercise_folder.is_absolute()
    assert ("absent", "setpoint") in plan.missing and ("good", "pump") in plan.missing
    assert plan.strangers == ["stranger"]
    assert list(plan.exercises) == ["setpoint"]  # pump was handed in by nobody
    with pytest.raises(BatchError, match="did you mean 'pump'"):
        plan_class(manifest, roster, submissions, course_secret=SECRET, exercise_ids=["pmup"])
    with pytest.raises(BatchError, match="does not exist"):
        plan_class(manifest, roster, tmp_path / "nowhere", course_secret=SECRET)


def test_a_job_travels_to_the_worker_as_one_json_line(tmp_path: Path) -> None:
    job = GradeJob(EXERCISE, "setpoint", "ann", tmp_path, SECRET, 30.0, 256, 10.0)
    line = job.to_json()
    assert "\n" not in line
    assert GradeJob.from_json(line) == job


def test_a_submission_folder_that_vanished_gets_an_error_result(tmp_path: Path) -> None:
    job = GradeJob(EXERCISE.resolve(), "setpoint", "ann", tmp_path / "gone", SECRET, 30.0)
    [outcome] = asyncio.run(grade_jobs([job], isolation="inline"))
    assert outcome.result.error is not None and "cannot copy the submission" in outcome.result.error
    assert [c.check_id for c in outcome.result.checks] == ["ran", "setpoint"]


def test_error_results_keep_every_check_failed() -> None:
    job = GradeJob(EXERCISE, "setpoint", "ann", EXERCISE, SECRET)
    result = error_result(job, "lab broke", load_exercise(EXERCISE), datetime.now(UTC))
    assert result.max_score == 10 and result.score == 0 and not result.passed
    assert describe(result) == "error: lab broke"
    assert error_result(job, "no exercise").checks == ()


def test_checks_not_run_show_their_titles_with_the_apprentice_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exercise = load_exercise(EXERCISE)
    _, variant = exercise_variant(exercise, "ann", SECRET)
    expected = f"You report the setpoint {render_title('{{ setpoint }}', variant)} m"
    job = GradeJob(EXERCISE, "setpoint", "ann", EXERCISE, SECRET)
    titles = {c.check_id: c.title for c in error_result(job, "lab broke", exercise).checks}
    assert titles == {"ran": "Your program runs to the end", "setpoint": expected}

    async def no_lab(*_: object, **__: object) -> object:
        raise SimlabError("port 4840 in use")

    monkeypatch.setattr(runner, "_run", no_lab)
    result = asyncio.run(
        run_exercise(exercise, EXERCISE, apprentice="ann", course_secret=SECRET, state_dir=tmp_path)
    )
    assert lab_failed(result)
    assert [c.title for c in result.checks] == list(titles.values())


def test_kill_process_tree_reaches_programs_in_their_own_session() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(60)'], start_new_session=True); time.sleep(60)",
        ]
    )
    time.sleep(0.5)
    grandchildren = [
        int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == child.pid
    ]
    assert kill_process_tree(child.pid) >= 2
    for pid in [child.pid, *grandchildren]:
        assert not Path(f"/proc/{pid}").exists() or _state(pid) == "Z"


def _stat(pid: int) -> list[str]:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text[text.rindex(")") + 2 :].split()


def _parent(pid: int) -> int:
    fields = _stat(pid)
    return int(fields[1]) if fields else -1


def _state(pid: int) -> str:
    fields = _stat(pid)
    return fields[0] if fields else ""
