"""The course commands as an apprentice and an instructor type them: init, list, hint,
reset, check (and --watch), lint and verify, on the fixture course of the grading tests."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from grading.batch import GradeJob, default_jobs, error_result
from grading.model import ExerciseResult
from grading.reports import result_json
from grading.signing import SIGNING_KEY_ENV
from grading.workspace import SECRET_ENV, WORKSPACE_FILE
from simlab import course_cli
from simlab.course_cli import check as check_command

COURSE = Path(__file__).parents[1] / "grading" / "fixtures" / "course_cli"
SECRET = "cli-secret"
LATE_CHECK = """\
  - id: late
    type: state_held
    title: The tank holds water from t=40 to t=45 s
    points: 0
    params: {signal: tank.level, low: 0, after: {at: 40}, duration_s: 5}
"""


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as wide as their content, whatever the test runner's terminal."""
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture(autouse=True)
def no_signing_key_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SIGNING_KEY_ENV, raising=False)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ws"
    code = course_cli.main(
        ["init", str(root), "--course", str(COURSE), "--apprentice", "ann", "--secret", SECRET]
    )
    assert code == 0
    monkeypatch.chdir(root)
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = course_cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_commands_hook_into_a_parser_and_ignore_other_commands() -> None:
    parser = argparse.ArgumentParser(prog="simlab")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("up")
    course_cli.add_course_commands(commands)
    assert course_cli.run_course_command(parser.parse_args(["up"])) is None
    args = parser.parse_args(["grade", "--roster", "r", "--submissions", "s", "--out", "o"])
    assert (args.jobs, args.memory_mb, args.exercise) == (default_jobs(), 512, None)
    assert args.signing_key is None
    args = parser.parse_args(["verify", "out", "--signing-key", "k"])
    assert (args.files, args.signing_key) == ([Path("out")], "k")
    args = parser.parse_args(["lint", "--exercise", "a", "--exercise", "b", "c"])
    assert (args.variants, args.jobs, args.exercise) == (3, 2, ["a", "b", "c"])


def test_init_tells_where_the_variants_come_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "from-the-instructor")
    monkeypatch.setenv("USER", "bob")
    target = tmp_path / "mine"
    code, out, _ = run(capsys, "init", str(target), "--course", str(COURSE))
    assert code == 0
    assert "Workspace of bob" in out and "2 exercises" in out
    assert f"${SECRET_ENV}" in out
    data = json.loads((target / WORKSPACE_FILE).read_text())
    assert data["secret"] == {"source": "env", "value": "from-the-instructor"}
    code, _, err = run(capsys, "init", str(target), "--course", str(COURSE))
    assert code == 1
    assert "is not empty" in err and "--force" in err and "Traceback" not in err


def test_commands_outside_a_workspace_say_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "list")
    assert code == 1 and "error: no simlab workspace" in err and "simlab init" in err


def test_list_hint_and_reset(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert "ann: 0 of 2 passed" in out
    assert "│ 1 │ setpoint │ Report your level setpoint │ todo" in out
    assert "0/3" in out
    code, out, _ = run(capsys, "hint")
    assert code == 0 and "Hint 1/3 for setpoint" in out and "$SIMLAB_ANSWERS" in out
    code, out, _ = run(capsys, "hint", "2")
    assert "Hint 1/3 for pump" in out
    _, out, _ = run(capsys, "hint", "setpoint")
    assert "Hint 2/3 for setpoint" in out
    _, out, _ = run(capsys, "list")
    assert "1/3" in out and "2/3" in out
    (workspace / "02-pump" / "answer.py").write_text("broken")
    code, out, _ = run(capsys, "reset", "02-pump")
    assert code == 0
    assert "Restored pump (02-pump):" in out and "02-pump/answer.py" in out
    assert "speed" in (workspace / "02-pump" / "answer.py").read_text()
    code, _, err = run(capsys, "reset", "nope")
    assert code == 1 and "no exercise 'nope'" in err


def test_check_fails_the_starter_and_shows_the_hint(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "check", "setpoint")
    assert code == 1
    assert "✓ 0/0 Your program runs to the end (gate)" in out
    assert "✗ 0/10 You report the setpoint" in out
    assert "is not within 0.001 of the expected value" in out
    assert "diagnosis:" in out
    assert "Score 0/10 — not passed yet" in out
    assert "Hint 1/3: Your program writes its answers" in out
    _, out, _ = run(capsys, "list")
    assert "failed" in out and "0/10" in out and "1/3" in out


def test_check_passes_the_solution_from_inside_its_folder(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(COURSE / "02-pump" / "solution" / "answer.py", workspace / "02-pump")
    monkeypatch.chdir(workspace / "02-pump")
    code, out, _ = run(capsys, "check")
    assert code == 0
    assert "Checking pump" in out
    assert "✓ 5/5 You report the pump speed" in out
    assert "Score 5/5 — passed" in out and "Hint" not in out
    progress = json.loads((workspace / ".simlab" / "progress.json").read_text())
    assert progress["exercises"]["pump"]["status"] == "passed"
    assert progress["exercises"]["pump"]["best_score"] == 5


def test_check_keeps_the_lab_up_for_the_whole_limit(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    async def fake_run(*args: Any, **kwargs: Any) -> ExerciseResult:
        seen.update(kwargs)
        now = datetime.now(UTC)
        return ExerciseResult("pump", "ann", 1, [], now, now, error="not run")

    monkeypatch.setattr(check_command, "run_exercise", fake_run)
    code, out, _ = run(capsys, "check", "pump")
    assert code == 1
    assert (seen["hold"], seen["time_limit_s"]) == (True, 40)  # the apprentice may look at it
    assert "a lab for up to 40 s of lab time, 4 s at 10× speed" in out


def test_watch_checks_again_when_a_file_changes(tmp_path: Path) -> None:
    (tmp_path / "answer.py").write_text("v1")
    runs: list[int] = []
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:  # the apprentice saves a file
            (tmp_path / "answer.py").write_text("version 2")
        if len(naps) == 3:  # nothing changes: the loop keeps polling
            (tmp_path / "__pycache__").mkdir()
            (tmp_path / "__pycache__" / "x.pyc").write_text("ignored")
        if len(naps) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        course_cli.watch_folder(tmp_path, lambda: runs.append(1), poll_s=0.5, sleep=nap)
    assert len(runs) == 2
    assert naps == [0.5] * 5


def test_check_watch_stops_cleanly_on_ctrl_c(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []

    def fake_check(ws: object, entry: object, exercise: object) -> int:
        checked.append(getattr(entry, "id", ""))
        return 1

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    watch: Callable[..., None] = course_cli.watch_folder
    monkeypatch.setattr(check_command, "check_once", fake_check)
    monkeypatch.setattr(
        check_command, "watch_folder", lambda folder, run: watch(folder, run, sleep=interrupt)
    )
    code, out, _ = run(capsys, "check", "--watch", "pump")
    assert code == 0
    assert checked == ["pump"]
    assert "Watching" in out and "Stopped watching." in out


def test_lint_runs_starters_and_solutions_and_flags_a_starter_that_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    course = tmp_path / "course"
    shutil.copytree(COURSE, course)
    shutil.copy(course / "02-pump" / "solution" / "answer.py", course / "02-pump" / "starter")
    exercise = course / "01-setpoint" / "exercise.yaml"  # a check of the truth until t=45 s
    exercise.write_text(exercise.read_text() + LATE_CHECK)
    code, out, err = run(
        capsys, "lint", "--course", str(course), "--variants", "1", "--jobs", "4", "--seed", "7"
    )
    assert code == 1
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if "│ lint-" in line}
    assert "fails ✓" in rows["setpoint"] and "passes ✓" in rows["setpoint"]  # the run lasted
    assert "PASSES ✗" in rows["pump"] and "passes ✓" in rows["pump"]
    assert "setpoint=" in rows["setpoint"] and "speed=" in rows["pump"]
    assert "--seed 7 draws these apprentices again" in out
    assert f"{exercise}: error: check 'late' of 'setpoint' needs the lab until t=45 s" in err
    assert "after the time limit of 40 s of lab time" in err
    assert "lint: 2 problems" in err


def test_lint_reports_file_problems_with_their_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    course = tmp_path / "course"
    shutil.copytree(COURSE, course)
    manifest = course / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("points: 10", "points: 11"))
    (course / "02-pump" / "exercise.yaml").write_text("id: pump\ntitle: [unclosed\n")
    code, _, err = run(capsys, "lint", "--course", str(course), "--exercise", "nothing")
    assert code == 1
    assert re.search(rf"{re.escape(str(manifest))}:\d+:\d+: error: .*11", err)
    assert re.search(
        rf"{re.escape(str(course / '02-pump' / 'exercise.yaml'))}:\d+:\d+: error:", err
    )
    assert "error: no exercise 'nothing'" in err
    code, _, err = run(capsys, "lint", "--course", str(tmp_path / "none"))
    assert code == 1 and "no course at" in err


def test_lint_flags_a_starter_that_fails_only_because_a_check_broke(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from rich.console import Console

    from grading.batch import GradeJob, JobOutcome
    from grading.checks import BROKEN
    from grading.manifest import load_exercise
    from grading.model import CheckResult
    from simlab.course_cli import lint

    exercise = load_exercise(COURSE / "02-pump")
    now = datetime.now(UTC)

    def outcome(kind: str, passed: bool, message: str) -> JobOutcome:
        job = GradeJob(COURSE / "02-pump", "pump", "lint-1", Path(kind), lint.LINT_SECRET)
        check = CheckResult("speed", "t", passed, 5.0 * passed, 5.0, message)
        return JobOutcome(job, ExerciseResult("pump", "lint-1", 1, [check], now, now), 1.0)

    printed = io.StringIO()
    monkeypatch.setattr(lint, "out", Console(file=printed, width=300))
    broken = outcome("starter", False, f"{BROKEN} (it is misconfigured: a window)")
    bad = lint._lint_table([broken, outcome("solution", True, "ok")], {"pump": exercise})
    assert bad == 1
    assert "FAILS ✗ because a check broke: speed: the check itself broke" in printed.getvalue()


def test_grade_warns_once_without_a_signing_key_and_never_hands_it_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody handed in (no lab starts); an earlier result signed with the course secret
    only is left out of the reports once the grader signs with a key of its own."""
    roster, submissions, results = tmp_path / "roster.csv", tmp_path / "class", tmp_path / "out"
    roster.write_text("id,name\nann,Ann\n")
    submissions.mkdir()
    job = GradeJob(COURSE / "01-setpoint", "setpoint", "ann", submissions, SECRET)
    (results / "ann").mkdir(parents=True)
    (results / "ann" / "setpoint.json").write_text(result_json(error_result(job, "old"), SECRET))
    argv = ["grade", "--roster", str(roster), "--submissions", str(submissions)]
    argv += ["--out", str(results), "--secret", SECRET, "--course", str(COURSE)]

    code, _, errors = run(capsys, *argv)
    assert code == 0
    warning = "no signing key: results are signed with the course secret only"
    assert errors.count(warning) == 1 and "left out of the reports" not in errors
    code, _, errors = run(capsys, *argv, "--signing-key", "grader-key")
    assert code == 0 and warning not in errors
    assert "left out of the reports" in errors and "signed with the course secret" in errors
    monkeypatch.setenv(SIGNING_KEY_ENV, "grader-key")  # the default of --signing-key
    code, _, errors = run(capsys, *argv)
    assert code == 0 and warning not in errors


def test_the_workspace_commands_take_no_signing_key() -> None:
    parser = argparse.ArgumentParser(prog="simlab")
    course_cli.add_course_commands(parser.add_subparsers(dest="command"))
    for command in (["init"], ["check"]):
        with pytest.raises(SystemExit):
            parser.parse_args([*command, "--signing-key", "k"])
