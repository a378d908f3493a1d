"""Batch grading: a class with good, wrong, crashing, hanging and hostile submissions is
graded in parallel worker processes, and every one gets a result that says what happened.

The class is graded once (``simlab grade`` through :func:`simlab.course_cli.main`, about
15 s on two cores) and the tests read its reports.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from grading.batch import (
    BatchError,
    GradeJob,
    describe,
    error_result,
    grade_jobs,
    kill_process_tree,
    plan_class,
)
from grading.manifest import load_exercise, load_manifest
from grading.model import ExerciseResult
from grading.reports import RosterEntry, read_result_json
from simlab import course_cli

COURSE = Path(__file__).parent / "fixtures" / "course_cli"
EXERCISE = COURSE / "01-setpoint"
SECRET = "batch-secret"

PROGRAMS = {
    "good": (EXERCISE / "solution" / "answer.py").read_text(),
    "wrong": (EXERCISE / "starter" / "answer.py").read_text(),
    "crash": 'raise RuntimeError("boom")\n',
    "hang": "import time\nwhile True:\n    time.sleep(1)\n",
    "hostile": "block = bytearray(2 * 1024**3)  # 2 GB\nprint(len(block))\n",
    "killer": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)  # kills its grader\n",
}


@dataclass(frozen=True)
class GradedClass:
    out: Path
    submissions: Path
    roster: Path
    code: int
    seconds: float


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
            "3",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> GradedClass:
    root = tmp_path_factory.mktemp("class")
    submissions, roster = write_class(root, list(PROGRAMS))
    started = time.monotonic()
    code = grade(root, submissions, roster, "--jobs", str(len(PROGRAMS)))
    return GradedClass(root / "out", submissions, roster, code, time.monotonic() - started)


def read(graded: GradedClass, apprentice: str) -> ExerciseResult:
    path = graded.out / apprentice / "setpoint.json"
    return read_result_json(path.read_text(), SECRET, str(path))


@pytest.mark.slow
def test_the_whole_class_is_graded_whatever_the_submissions_do(graded: GradedClass) -> None:
    assert graded.code == 0
    assert graded.seconds < 45
    graded_ids = sorted(p.name for p in graded.out.iterdir() if p.is_dir())
    assert graded_ids == sorted(PROGRAMS)  # not the stranger, not the absent one
    for name in PROGRAMS:
        assert (graded.out / name / "feedback.md").is_file()


def test_each_submission_gets_the_result_it_deserves(graded: GradedClass) -> None:
    exercise = load_exercise(EXERCISE)
    statuses = {name: describe(read(graded, name), exercise) for name in PROGRAMS}
    assert statuses["good"] == "passed"
    assert statuses["wrong"] == "failed"
    assert statuses["crash"] == "crashed (exit 1)"
    assert statuses["hang"] == "timed out"
    assert statuses["hostile"] == "memory limit"
    assert statuses["killer"].startswith("error: the grading worker died")
    assert read(graded, "good").score == 10
    for name in ("wrong", "crash", "hang", "hostile", "killer"):
        assert read(graded, name).score == 0


def test_the_results_say_why_in_the_apprentice_feedback(graded: GradedClass) -> None:
    def feedback(name: str) -> str:
        return (graded.out / name / "feedback.md").read_text()

    assert "**Score: 10 / 10** — passed" in feedback("good")
    assert "0 is not within 0.001 of the expected value" in feedback("wrong")
    assert "Next hint (1 of 3)" in feedback("wrong")
    assert "RuntimeError: boom" in feedback("crash")
    assert "did not finish within its time limit of 3 s" in feedback("hang")
    assert "MemoryError" in feedback("hostile")
    assert "The submission did not run to the end:** the grading worker died" in feedback("killer")


def test_the_gradebook_has_every_roster_row(graded: GradedClass) -> None:
    rows = list(csv.DictReader(io.StringIO((graded.out / "gradebook.csv").read_text())))
    by_id = {row["id"]: row for row in rows}
    assert list(by_id) == [*PROGRAMS, "absent"]
    assert by_id["good"]["exercise:setpoint"] == "100.0"
    assert by_id["good"]["name"] == "Good Apprentice"
    assert by_id["crash"]["exercise:setpoint"] == "0.0"
    assert by_id["absent"]["exercise:setpoint"] == ""
    assert by_id["absent"]["total"] == "0.0"


def test_junit_tells_failures_from_errors(graded: GradedClass) -> None:
    root = ET.fromstring((graded.out / "junit.xml").read_text())
    cases = {
        (case.get("classname", "").rsplit(".", 1)[1], case.get("name")): case
        for case in root.iter("testcase")
    }
    assert len(cases) == 2 * len(PROGRAMS)
    assert list(cases["good", "setpoint"]) == []
    assert cases["wrong", "setpoint"].find("failure") is not None
    ran = cases["hang", "ran"].find("failure")
    assert ran is not None and ran.get("type") == "GateFailed"
    error = cases["killer", "setpoint"].find("error")
    assert error is not None and "grading worker died" in error.get("message", "")


def test_results_are_signed_and_verify_names_an_edited_file(
    graded: GradedClass, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copies = tmp_path / "results"
    for name in ("good", "wrong"):
        (copies / name).mkdir(parents=True)
        (copies / name / "setpoint.json").write_text(
            (graded.out / name / "setpoint.json").read_text()
        )
    assert course_cli.main(["verify", str(copies), "--secret", SECRET]) == 0
    edited = copies / "wrong" / "setpoint.json"
    data = json.loads(edited.read_text())
    data["checks"][1]["points"] = 10.0
    data["checks"][1]["passed"] = True
    data["score"] = 10.0
    edited.write_text(json.dumps(data, indent=2))
    capsys.readouterr()
    assert course_cli.main(["verify", str(copies), "--secret", SECRET]) == 1
    errors = capsys.readouterr().err
    assert str(edited) in errors and "signature does not match" in errors
    assert str(copies / "good" / "setpoint.json") not in errors
    assert course_cli.main(["verify", str(copies / "good"), "--secret", "another"]) == 1


def test_regrading_the_same_submission_gives_the_same_score(
    graded: GradedClass, tmp_path: Path
) -> None:
    first = read(graded, "good")
    roster = tmp_path / "roster.csv"
    roster.write_text("id,name\ngood,Good Apprentice\n")
    assert grade(tmp_path, graded.submissions, roster, "--exercise", "setpoint") == 0
    again = read_result_json((tmp_path / "out" / "good" / "setpoint.json").read_text(), SECRET)
    assert (again.score, again.variant_seed) == (first.score, first.variant_seed)
    assert again.passed


def test_plan_lists_missing_submissions_and_strangers(tmp_path: Path) -> None:
    submissions, _ = write_class(tmp_path, ["good"])
    roster = [RosterEntry("good", "G"), RosterEntry("absent", "A")]
    manifest = load_manifest(COURSE)
    plan = plan_class(manifest, roster, submissions, course_secret=SECRET)
    assert [(j.apprentice, j.exercise_id) for j in plan.jobs] == [("good", "setpoint")]
    job = plan.jobs[0]
    assert (job.time_limit_s, job.memory_mb) == (4, 512)  # the manifest's limit
    assert job.submission.is_absolute() and job.exercise_folder.is_absolute()
    assert ("absent", "setpoint") in plan.missing and ("good", "pump") in plan.missing
    assert plan.strangers == ["stranger"]
    assert list(plan.exercises) == ["setpoint"]  # pump was handed in by nobody
    with pytest.raises(BatchError, match="did you mean 'pump'"):
        plan_class(manifest, roster, submissions, course_secret=SECRET, exercise_ids=["pmup"])
    with pytest.raises(BatchError, match="does not exist"):
        plan_class(manifest, roster, tmp_path / "nowhere", course_secret=SECRET)


def test_a_job_travels_to_the_worker_as_one_json_line(tmp_path: Path) -> None:
    job = GradeJob(EXERCISE, "setpoint", "ann", tmp_path, SECRET, 3.0, 256)
    line = job.to_json()
    assert "\n" not in line
    assert GradeJob.from_json(line) == job


def test_a_submission_folder_that_vanished_gets_an_error_result(tmp_path: Path) -> None:
    job = GradeJob(EXERCISE.resolve(), "setpoint", "ann", tmp_path / "gone", SECRET, 3.0)
    [outcome] = asyncio.run(grade_jobs([job], isolation="inline"))
    assert outcome.result.error is not None and "cannot copy the submission" in outcome.result.error
    assert [c.check_id for c in outcome.result.checks] == ["ran", "setpoint"]


def test_error_results_keep_every_check_failed() -> None:
    job = GradeJob(EXERCISE, "setpoint", "ann", EXERCISE, SECRET)
    result = error_result(job, "lab broke", load_exercise(EXERCISE), datetime.now(UTC))
    assert result.max_score == 10 and result.score == 0 and not result.passed
    assert describe(result) == "error: lab broke"
    assert error_result(job, "no exercise").checks == ()


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
