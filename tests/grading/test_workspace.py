"""The apprentice workspace: init, discovery, progress, the hint ladder, reset — on the small
fixture course ``fixtures/course_cli`` (no lab runs here)."""

from __future__ import annotations

import json
import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from grading.model import CheckResult, ExerciseResult
from grading.runner import exercise_variant
from grading.workspace import (
    PROGRESS_FILE,
    SECRET_ENV,
    WORKSPACE_FILE,
    Workspace,
    WorkspaceError,
    find_workspace,
    init_workspace,
    place_files,
    resolve_secret,
)

COURSE = Path(__file__).parent / "fixtures" / "course_cli"
SECRET = "class-secret"
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def make(tmp_path: Path, **kwargs: object) -> Workspace:
    options: dict[str, object] = {"course_root": COURSE, "apprentice": "ann", "secret": SECRET}
    options.update(kwargs)
    return init_workspace(tmp_path / "ws", **options)  # type: ignore[arg-type]


def result(exercise: str, score: float, max_score: float = 10) -> ExerciseResult:
    check = CheckResult("answer", "Answer", score == max_score, score, max_score, "msg")
    return ExerciseResult(exercise, "ann", 1, [check], T0, T0 + timedelta(seconds=5))


def test_init_copies_starters_and_renders_the_brief_with_the_apprentice_variant(
    tmp_path: Path,
) -> None:
    ws = make(tmp_path)
    root = tmp_path / "ws"
    assert sorted(p.name for p in root.iterdir()) == [
        ".simlab",
        "01-setpoint",
        "02-pump",
        WORKSPACE_FILE,
    ]
    starter = (COURSE / "01-setpoint" / "starter" / "answer.py").read_text()
    assert (root / "01-setpoint" / "answer.py").read_text() == starter  # flat: no starter/
    exercise = ws.exercise(ws.entry("setpoint"))
    _, variant = exercise_variant(exercise, "ann", SECRET)
    brief = (root / "01-setpoint" / "README.md").read_text()
    assert f"**{variant['setpoint']} m**" in brief
    assert "{{" not in brief


def test_the_workspace_file_holds_apprentice_course_and_secret_privately(tmp_path: Path) -> None:
    make(tmp_path)
    path = tmp_path / "ws" / WORKSPACE_FILE
    data = json.loads(path.read_text())
    assert data["kind"] == "simlab.workspace" and data["format_version"] == 1
    assert data["apprentice"] == "ann"
    assert data["course"] == {"id": "course-cli", "root": str(COURSE.resolve())}
    assert data["secret"] == {"source": "flag", "value": SECRET}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    progress = json.loads((tmp_path / "ws" / PROGRESS_FILE).read_text())
    assert progress["exercises"]["setpoint"]["status"] == "todo"


def test_secret_comes_from_the_flag_then_the_environment_then_is_generated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_ENV, "from-env")
    assert resolve_secret("given") == ("given", "flag")
    assert resolve_secret(None) == ("from-env", "env")
    monkeypatch.delenv(SECRET_ENV)
    first, source = resolve_secret(None)
    assert source == "generated" and len(first) >= 32
    assert resolve_secret(None)[0] != first


def test_a_self_study_workspace_keeps_its_generated_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    ws = make(tmp_path, secret=None)
    again = Workspace.load(tmp_path / "ws")
    assert again.secret_source == "generated"
    assert again.course_secret == ws.course_secret


def test_init_refuses_a_non_empty_folder_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "ws"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(WorkspaceError, match=r"not empty \(notes.txt\).*--force"):
        init_workspace(target, course_root=COURSE, apprentice="ann", secret=SECRET)
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]
    init_workspace(target, course_root=COURSE, apprentice="ann", secret=SECRET, force=True)
    assert (target / "notes.txt").read_text() == "mine"
    assert (target / "01-setpoint" / "answer.py").is_file()


def test_init_refuses_bad_apprentice_ids_and_broken_courses(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="apprentice id '../x'"):
        init_workspace(tmp_path / "a", course_root=COURSE, apprentice="../x", secret=SECRET)
    broken = tmp_path / "course"
    shutil.copytree(COURSE, broken)
    (broken / "02-pump" / "exercise.yaml").write_text("id: pump\n")
    with pytest.raises(WorkspaceError, match="pump"):
        init_workspace(tmp_path / "b", course_root=broken, apprentice="ann", secret=SECRET)
    assert not (tmp_path / "b").exists()


def test_the_workspace_is_found_from_any_folder_below_it(tmp_path: Path) -> None:
    make(tmp_path)
    deep = tmp_path / "ws" / "02-pump" / "notes"
    deep.mkdir()
    assert find_workspace(deep).root == (tmp_path / "ws").resolve()
    with pytest.raises(WorkspaceError, match="simlab init"):
        find_workspace(tmp_path)


def test_a_damaged_workspace_file_is_a_clear_error(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "ws" / WORKSPACE_FILE).write_text('{"kind": "simlab.workspace"}')
    with pytest.raises(WorkspaceError, match="damaged"):
        Workspace.load(tmp_path / "ws")


def test_exercises_are_named_by_id_folder_or_number(tmp_path: Path) -> None:
    ws = make(tmp_path)
    assert ws.entry("pump").id == ws.entry("02-pump").id == ws.entry("2").id == "pump"
    with pytest.raises(WorkspaceError, match="did you mean 'pump'"):
        ws.entry("pmup")


def test_the_default_exercise_is_the_one_you_are_in_else_the_first_not_passed(
    tmp_path: Path,
) -> None:
    ws = make(tmp_path)
    assert ws.choose(None) is not None and ws.choose(None).id == "setpoint"  # type: ignore[union-attr]
    inside = ws.choose(None, tmp_path / "ws" / "02-pump")
    assert inside is not None and inside.id == "pump"
    ws.record_check(ws.entry("setpoint"), result("setpoint", 10))
    first = ws.first_open()
    assert first is not None and first.id == "pump"
    ws.record_check(ws.entry("pump"), result("pump", 5, 5))
    assert ws.first_open() is None


def test_progress_keeps_the_best_score_and_a_pass(tmp_path: Path) -> None:
    ws = make(tmp_path)
    entry = ws.entry("setpoint")
    ws.record_check(entry, result("setpoint", 4))
    mine = ws.progress()["setpoint"]
    assert (mine.status, mine.best_score, mine.max_score, mine.attempts) == ("failed", 4, 10, 1)
    assert mine.last_check is not None
    ws.record_check(entry, result("setpoint", 10))
    ws.record_check(entry, result("setpoint", 0))  # broken again later
    mine = Workspace.load(tmp_path / "ws").progress()["setpoint"]
    assert (mine.status, mine.best_score, mine.last_score, mine.attempts) == ("passed", 10, 0, 3)
    assert ws.progress()["pump"].status == "todo"


def test_the_hint_ladder_goes_one_rung_at_a_time_rendered_with_the_variant(
    tmp_path: Path,
) -> None:
    ws = make(tmp_path)
    entry = ws.entry("setpoint")
    _, variant = exercise_variant(ws.exercise(entry), "ann", SECRET)
    rungs = [ws.take_hint(entry) for _ in range(4)]
    assert [(h.rung, h.new) for h in rungs] == [(1, True), (2, True), (3, True), (3, False)]
    assert f'{{"setpoint": {variant["setpoint"]}}}' in rungs[2].text
    assert ws.progress()["setpoint"].hints_used == 3


def test_a_failed_check_shows_the_rung_reached_and_counts_the_first(tmp_path: Path) -> None:
    ws = make(tmp_path)
    entry = ws.entry("pump")
    first = ws.current_hint(entry)
    assert (first.rung, first.new) == (1, True)
    assert ws.progress()["pump"].hints_used == 1
    assert ws.current_hint(entry).rung == 1  # seeing it again costs nothing
    ws.take_hint(entry)
    assert ws.current_hint(entry).rung == 2


def test_reset_restores_the_starter_files_and_keeps_other_files(tmp_path: Path) -> None:
    ws = make(tmp_path)
    folder = tmp_path / "ws" / "01-setpoint"
    (folder / "answer.py").write_text("print('my attempt')")
    (folder / "README.md").unlink()
    (folder / "notes.txt").write_text("mine")
    ws.record_check(ws.entry("setpoint"), result("setpoint", 10))
    restored = ws.reset(ws.entry("setpoint"))
    assert sorted(p.name for p in restored) == ["README.md", "answer.py"]
    starter = (COURSE / "01-setpoint" / "starter" / "answer.py").read_text()
    assert (folder / "answer.py").read_text() == starter
    assert (folder / "notes.txt").read_text() == "mine"
    assert ws.progress()["setpoint"].status == "passed"


def test_files_with_the_same_name_cannot_be_placed_flat(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.py").write_text("")
    (tmp_path / "b" / "x.py").write_text("")
    with pytest.raises(WorkspaceError, match="would both become 'x.py'"):
        place_files(tmp_path, ["a/x.py", "b/x.py"], tmp_path / "out")


def test_reference_answers_can_be_templates_of_the_variant(tmp_path: Path) -> None:
    (tmp_path / "solution").mkdir()
    (tmp_path / "solution" / "answers.yaml").write_text('tag: "{{ tag }}"\n')
    (tmp_path / "solution" / "flow.py").write_text("print('{{ tag }}')\n")
    place_files(
        tmp_path, ["solution/answers.yaml", "solution/flow.py"], tmp_path / "out", {"tag": "lt101"}
    )
    assert (tmp_path / "out" / "answers.yaml").read_text() == 'tag: "lt101"\n'
    assert (tmp_path / "out" / "flow.py").read_text() == "print('{{ tag }}')\n"  # code is not
    with pytest.raises(WorkspaceError, match="unknown variant parameter 'tag'"):
        place_files(tmp_path, ["solution/answers.yaml"], tmp_path / "again", {})
