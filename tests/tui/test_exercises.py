"""The Exercises screen on an apprentice's workspace: the list, the brief with their variant,
hints, Check (real graded labs in a worker process), the watch, and Enter switching labs;
and the bundled course without a workspace."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Markdown, Static

from grading.workspace import Workspace, default_course_root, init_workspace, place_files
from simlab.tui import LabPlan, SimlabApp
from simlab.tui.plan import ExerciseContext
from simlab.tui.screens.exercises import ExercisesScreen
from simlab.tui.widgets.check_report import CheckReport
from simlab.tui.widgets.exercise_list import ExerciseList
from tests.tui.conftest import PlanFactory, blank_volatile


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A fresh workspace of the bundled course for apprentice ann."""
    return init_workspace(
        tmp_path / "ws", course_root=default_course_root(), apprentice="ann", secret="s3cret"
    )


def exercise_app(workspace: Workspace, number: int = 1) -> SimlabApp:
    """The app on exercise ``number``'s lab (virtual clock, free ports)."""
    context = ExerciseContext.of(workspace, workspace.entries[number - 1])
    return SimlabApp(LabPlan.for_exercise(context, virtual=True, broker="embedded", api_port=0))


async def shown(pilot: Pilot[int]) -> ExercisesScreen:
    """The Exercises screen once the lab runs and the highlighted exercise is shown."""
    app = pilot.app
    await app.wait_ready()  # type: ignore[attr-defined]
    for _ in range(200):
        screen = app.screen
        if (
            isinstance(screen, ExercisesScreen)
            and screen.shown is not None
            and screen.query_one("#brief", Markdown).source
        ):
            return screen
        await pilot.pause(0.05)
    raise AssertionError("the Exercises screen did not show an exercise")


async def checked(pilot: Pilot[int], screen: ExercisesScreen, exercise: str, n: int) -> None:
    """Wait (bounded) until ``exercise`` has been checked ``n`` times."""
    for _ in range(1200):
        await pilot.pause(0.05)
        workspace = screen.workspace
        assert workspace is not None
        if screen.checking is None and workspace.progress()[exercise].attempts >= n:
            return
    raise AssertionError(f"the check of {exercise} did not finish")


def text_of(widget: Static) -> str:
    """The plain text a Static shows (wide: no wrapping)."""
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


async def test_the_list_the_brief_with_my_values_and_the_hint_ladder(
    workspace: Workspace,
) -> None:
    app = exercise_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await shown(pilot)
        exercises = screen.query_one(ExerciseList)
        ids = [exercises.get_option_at_index(i).id for i in range(exercises.option_count)]
        assert ids == [e.id for e in workspace.entries] and len(ids) == 13
        assert screen.shown is not None and screen.shown.id == "modbus-float"
        entry = workspace.entries[0]
        variant = workspace.variant(workspace.exercise(entry))
        brief = screen.query_one("#brief", Markdown).source
        assert "{{" not in brief and "}}" not in brief
        assert f"**{variant['address']}**" in brief and f"**{variant['word_order']}**" in brief

        await pilot.press("h")
        report = text_of(screen.query_one(CheckReport))
        assert "Hint 1/3: Two questions before any code" in report
        assert workspace.progress()["modbus-float"].hints_used == 1
        assert "h1" in exercises.get_option_at_index(0).prompt.plain  # type: ignore[union-attr]

        workspace.take_hint(entry)  # 'simlab hint' in a terminal: the screen follows
        for _ in range(40):
            await pilot.pause(0.05)
            if "h2" in exercises.get_option_at_index(0).prompt.plain:  # type: ignore[union-attr]
                break
        assert "Hint 2/3:" in text_of(screen.query_one(CheckReport))

        await pilot.press("down", "down")  # another exercise: its own brief, no hints yet
        assert screen.shown is not None and screen.shown.id == "opcua-browse"
        assert "‹" not in screen.query_one("#brief", Markdown).source
        assert "Stuck? h gives a hint" in text_of(screen.query_one(CheckReport))

        workspace.progress_path.write_text("{damaged", encoding="utf-8")
        await pilot.pause(0.4)  # a damaged progress file is named, not a traceback
        status = str(screen.query_one("#status", Static).render())
        assert "progress file cannot be read" in status
        await pilot.press("q")


async def test_check_fails_the_starter_passes_the_solution_and_watch_checks_on_save(
    workspace: Workspace,
) -> None:
    app = exercise_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await shown(pilot)
        await pilot.press("c")
        assert screen.checking is not None and screen.query_one(CheckReport).loading
        await checked(pilot, screen, "modbus-float", 1)
        mine = workspace.progress()["modbus-float"]
        assert (mine.status, mine.attempts, mine.hints_used) == ("failed", 1, 1)
        report = text_of(screen.query_one(CheckReport))
        assert "✗ 0/3 You read the level's two registers" in report
        assert "diagnosis: your program sent no read request" in report
        assert "Score 0/10 — not passed yet" in report and "Hint 1/3:" in report

        entry = workspace.entries[0]
        exercise = workspace.exercise(entry)
        place_files(
            exercise.folder, exercise.solution, workspace.folder(entry), workspace.variant(exercise)
        )
        await pilot.press("c")
        await checked(pilot, screen, "modbus-float", 2)
        mine = workspace.progress()["modbus-float"]
        assert (mine.status, mine.best_score, mine.attempts) == ("passed", 10.0, 2)
        report = text_of(screen.query_one(CheckReport))
        assert "Score 10/10 — passed" in report and "✗" not in report
        assert "passed" in str(screen.query_one("#status", Static).render())

        await pilot.press("w")  # watch: saving a file of the exercise checks it again
        assert screen.watcher is not None and screen.checking is None
        program = workspace.folder(entry) / "read_level.py"
        program.write_text(program.read_text() + "\n# saved\n")
        for _ in range(100):  # the folder stays quiet a second, then the check starts
            await pilot.pause(0.05)
            if screen.checking is not None:
                break
        assert screen.checking is not None and screen.checking.id == "modbus-float"
        await pilot.press("w")
        assert screen.watcher is None
        await pilot.press("q")  # quitting stops the running check's grading process too


async def test_enter_starts_the_lab_of_another_exercise(workspace: Workspace) -> None:
    app = exercise_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await shown(pilot)
        first = app.lab
        assert first is not None
        await pilot.press("down", "down", "enter")
        for _ in range(200):
            await pilot.pause(0.05)
            if app.lab is not None and app.lab is not first and app.current_mode == "exercises":
                break
        lab = await app.wait_ready()
        assert lab is not first and app.plan.exercise is not None
        assert app.plan.exercise.entry.id == "opcua-browse"
        level = next(t for t in lab.scenario.devices[0].tags if t.name == "level")
        variant = app.plan.exercise.variant
        assert level.opcua is not None and level.opcua.browse_name == variant["browse_name"]
        screen = await shown(pilot)
        assert screen.shown is not None and screen.shown.id == "opcua-browse"
        assert "▶" in screen.query_one(ExerciseList).get_option_at_index(2).prompt.plain  # type: ignore[union-attr]
        await pilot.press("q")


async def test_without_a_workspace_the_course_is_shown_and_check_says_how(
    make_plan: PlanFactory,
) -> None:
    app = SimlabApp(make_plan())
    async with app.run_test(size=(80, 24)) as pilot:
        await app.wait_ready()
        await pilot.press("1")
        screen = await shown(pilot)
        assert screen.query_one(ExerciseList).option_count == 13
        assert "‹word_order›" in screen.query_one("#brief", Markdown).source
        await pilot.press("c")
        status = str(screen.query_one("#status", Static).render())
        assert "No workspace to check" in status and "simlab init DIR" in status
        await pilot.press("q")


def test_the_exercises_screen_looks_right(workspace: Workspace, snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def stage(pilot: Pilot[int]) -> None:
        await shown(pilot)
        await pilot.pause(0.2)
        blank_volatile(pilot.app)  # type: ignore[arg-type]

    assert snap_compare(exercise_app(workspace), terminal_size=(80, 24), run_before=stage)
