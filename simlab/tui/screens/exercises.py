"""The Exercises screen: the course in order with the apprentice's progress, the brief with
their own variant values, Check, the hint ladder and a watch that checks again on save.

Check grades the workspace's copy of the highlighted exercise like ``simlab check`` and
records the result in the progress file. Its lab runs in a worker process
(:func:`grading.batch.grade_jobs` with process isolation): starting a graded lab costs about
two seconds of CPU (servers, keys, broker), which on this event loop would stall the UI's
own lab (its PLC scan and endpoints), and a program that hangs or kills its parent takes
down the worker, not the UI. Enter restarts the UI's lab on the highlighted exercise's
scenario with the apprentice's variant. Without a workspace the bundled course is shown
with its variant parameters as ``‹name›`` and Check, Hint and Enter say how to make one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Markdown, OptionList, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from grading.batch import GradeJob, grade_jobs, time_limit_of
from grading.manifest import Exercise, Manifest, ManifestEntry, load_exercise, load_manifest
from grading.model import ExerciseResult, format_points
from grading.runner import lab_environment
from grading.variants import VariantError, render_brief
from grading.workspace import ExerciseProgress, Workspace, default_course_root, render_hint
from simlab.errors import SimlabError
from simlab.tui.plan import ExerciseContext
from simlab.tui.screens.base import LabScreen
from simlab.tui.widgets.check_report import CheckReport
from simlab.tui.widgets.exercise_files import ExerciseFiles, export_lines
from simlab.tui.widgets.exercise_list import ExerciseList, score

__all__ = ["ExercisesScreen", "folder_state"]

WATCH_POLL_S = 0.5
WATCH_QUIET_S = 1.0
"""A change is checked once the folder has been quiet this long (an editor saves in steps)."""
ENV_FILE = "env.sh"
TABS = ("brief-tab", "check-tab", "files-tab")
HOW = "make one with 'simlab init DIR', then run 'simlab' inside it"
"""How an apprentice gets a workspace (told wherever one is missing)."""


def folder_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Relative path → (mtime, size) of the files under ``folder``, without hidden files
    and folders and ``__pycache__`` (empty when the folder is missing)."""
    found: dict[str, tuple[int, int]] = {}
    for top, folders, files in os.walk(folder):
        folders[:] = sorted(f for f in folders if not f.startswith(".") and f != "__pycache__")
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(top, name)
            try:
                stat = path.stat()
            except OSError:
                continue
            found[path.relative_to(folder).as_posix()] = (stat.st_mtime_ns, stat.st_size)
    return found


@dataclass
class _Watch:
    """The exercise folder watched, its files as last seen, and when they last changed."""

    entry: ManifestEntry
    folder: Path
    seen: dict[str, tuple[int, int]]
    changed_at: float | None = None


class ExercisesScreen(LabScreen):
    """The list, and the highlighted exercise's brief, check result and files."""

    CSS_PATH = "exercises.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "check", "Check"),
        Binding("h", "hint", "Hint"),
        Binding("w", "watch", "Watch"),
        Binding("t", "next_tab", "Tabs"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.manifest: Manifest | None = None
        self.entries: list[ManifestEntry] = []
        self.shown: ManifestEntry | None = None
        """The highlighted exercise (the one the panes show and the keys act on)."""
        self.checking: ManifestEntry | None = None
        self.results: dict[str, ExerciseResult] = {}
        """This session's check results by exercise id."""
        self.watcher: _Watch | None = None
        self.environment: dict[str, str] = {}
        """What a program of the lab's exercise gets (``SIMLAB_*``) for this lab."""
        self._loaded: dict[str, Exercise] = {}
        self._check_worker: Worker[None] | None = None
        self._progress_stamp: int | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="exercises-body"):
            yield ExerciseList(id="exercise-list")
            with Vertical(id="exercise-pane"):
                yield Static(id="exercise-head")
                with TabbedContent(id="exercise-tabs"):
                    with TabPane("Brief", id="brief-tab"), VerticalScroll(id="brief-scroll"):
                        yield Markdown(id="brief")
                    with TabPane("Check", id="check-tab"), VerticalScroll():
                        yield CheckReport(id="report")
                    with TabPane("Files", id="files-tab"), VerticalScroll():
                        yield ExerciseFiles(id="files", classes="volatile")
                yield Static(id="status")

    def on_mount(self) -> None:
        self.set_interval(WATCH_POLL_S, self._poll_watch, name="watch")
        try:
            self.manifest = (
                self.workspace.manifest
                if self.workspace is not None
                else load_manifest(default_course_root())
            )
        except SimlabError as err:
            self._say(f"The course cannot be read: {err}", "bold red")
            return
        self.entries = list(self.manifest.exercises)
        self._write_program_files()
        self._show_list()
        context = self.simlab.plan.exercise
        first = context.entry if context is not None else None
        if first is None and self.workspace is not None:
            first = self.workspace.first_open()
        index = self.entries.index(first) if first in self.entries else 0
        exercises = self.query_one(ExerciseList)
        exercises.highlighted = index
        exercises.focus()
        self._show(self.entries[index])
        if self.workspace is None:
            self._say(f"No workspace: to work the exercises, {HOW}.")

    # --- showing an exercise -------------------------------------------------------------

    def _exercise(self, entry: ManifestEntry) -> Exercise:
        if entry.id not in self._loaded:
            if self.workspace is not None:
                self._loaded[entry.id] = self.workspace.exercise(entry)
            else:
                assert self.manifest is not None
                self._loaded[entry.id] = load_exercise(self.manifest.root / entry.folder)
        return self._loaded[entry.id]

    def _variant(self, exercise: Exercise) -> dict[str, Any]:
        """The apprentice's values; without a workspace ``‹name›`` for each parameter."""
        if self.workspace is not None:
            return self.workspace.variant(exercise)
        return {name: f"‹{name}›" for name in exercise.variant.parameters}

    @property
    def env_file(self) -> Path:
        """The shell file that points a program at this lab."""
        return self.lab.state_dir / ENV_FILE

    @property
    def workspace(self) -> Workspace | None:
        """The apprentice's workspace (None: the bundled course, read only)."""
        return self.simlab.plan.workspace

    @property
    def lab_exercise(self) -> str | None:
        """The id of the exercise the UI's lab runs."""
        context = self.simlab.plan.exercise
        return context.entry.id if context is not None else None

    def _write_program_files(self) -> None:
        """In the lab's state folder: ``variant.json``, as the grader gives it to programs
        (``SIMLAB_VARIANT``), and ``env.sh`` with every variable pointing at this lab, so
        the apprentice can run their program against it."""
        context = self.simlab.plan.exercise
        if context is None:
            return
        state = self.lab.state_dir
        self.environment = lab_environment(self.lab, state / "variant.json", state / "answers.json")
        try:
            state.mkdir(parents=True, exist_ok=True)
            (state / "variant.json").write_text(
                json.dumps(context.variant, default=str), encoding="utf-8"
            )
            (state / ENV_FILE).write_text(export_lines(self.environment), encoding="utf-8")
        except OSError as err:
            self._say(f"Cannot write the program's files in {state}: {err}", "red")

    def _progress(self) -> dict[str, ExerciseProgress] | None:
        """The apprentice's progress (None without a workspace or when it is unreadable:
        the status line says why)."""
        if self.workspace is None:
            return None
        self._progress_stamp = self._progress_mtime()
        try:
            return self.workspace.progress()
        except SimlabError as err:
            self._say(str(err), "bold red")
            return None

    def _show_list(self) -> None:
        progress = self._progress()
        self.query_one(ExerciseList).show(self.entries, progress, self.lab_exercise)

    def _progress_mtime(self) -> int | None:
        if self.workspace is None:
            return None
        try:
            return self.workspace.progress_path.stat().st_mtime_ns
        except OSError:
            return None

    def refresh_view(self) -> None:
        """Show progress recorded elsewhere (``simlab check`` or ``hint`` in a terminal)."""
        if self.workspace is None or self._progress_mtime() == self._progress_stamp:
            return
        self._show_list()
        if self.shown is not None:
            self._show_progress(self.shown)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        entry = self._entry(event.option_id)
        if entry is not None and entry != self.shown:
            self._show(entry)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        entry = self._entry(event.option_id)
        if entry is not None:
            self._open(entry)

    def _entry(self, exercise_id: str | None) -> ManifestEntry | None:
        return next((e for e in self.entries if e.id == exercise_id), None)

    def _show(self, entry: ManifestEntry) -> None:
        """Fill the head, brief, check and files panes with ``entry``."""
        self.shown = entry
        brief = self.query_one("#brief", Markdown)
        try:
            exercise = self._exercise(entry)
        except SimlabError as err:
            self.query_one("#exercise-head", Static).update(Text(entry.title, style="bold"))
            brief.update(f"**This exercise cannot be loaded.**\n\n```\n{err}\n```")
            return
        brief.update(self._brief(exercise, self._variant(exercise)))
        self.query_one("#brief-scroll", VerticalScroll).scroll_home(animate=False)
        self._show_progress(entry)
        files = self.query_one(ExerciseFiles)
        if self.workspace is None:
            files.update(f"No workspace: your files and the lab's variables show here; {HOW}.")
            return
        folder = self.workspace.folder(entry)
        if entry.id == self.lab_exercise:
            env_file = Path(os.path.relpath(self.env_file, folder))  # from the folder
            files.show(folder, list(folder_state(folder)), self.environment, env_file)
        else:
            files.show(folder, list(folder_state(folder)), None, None)

    def _show_progress(self, entry: ManifestEntry) -> None:
        """The head and the check pane of ``entry`` (the brief stays where it is)."""
        try:
            exercise = self._exercise(entry)
        except SimlabError:
            return  # _show said so
        variant = self._variant(exercise)
        self.query_one("#exercise-head", Static).update(self._head(entry, exercise))
        report = self.query_one(CheckReport)
        report.loading = self.checking is not None and self.checking.id == entry.id
        if self.workspace is None:
            report.update(f"No workspace: Check and Hint work on your own copy; {HOW}.")
            return
        progress = self._progress()
        if progress is None:
            report.update("Your progress cannot be read: the line below says why.")
            return
        used = min(progress[entry.id].hints_used, len(exercise.hints))
        hints = [render_hint(exercise, index, variant) for index in range(used)]
        report.show(self.results.get(entry.id), hints, len(exercise.hints))

    def _head(self, entry: ManifestEntry, exercise: Exercise) -> Text:
        number = self.entries.index(entry) + 1
        head = Text(f"{number}. {entry.title}\n", style="bold")
        limit = time_limit_of(exercise, entry)
        head.append(
            f"{entry.id} · {format_points(entry.points)} points · {limit:g} s",
            style="dim",
        )
        if self.workspace is None:
            head.append(" · ‹values› are each apprentice's own", style="dim")
            return head
        progress = self._progress()
        if progress is None:
            return head
        mine = progress[entry.id]
        state = {"todo": "not tried yet", "failed": "tried", "passed": "passed"}[mine.status]
        head.append(f"\n{state}", style={"passed": "green", "failed": "red"}.get(mine.status, ""))
        if mine.status != "todo":
            checks = "check" if mine.attempts == 1 else "checks"
            head.append(f" · best {score(mine)} in {mine.attempts} {checks}")
        head.append(f" · hints {mine.hints_used}/{len(exercise.hints)}")
        if entry.id == self.lab_exercise:
            head.append(" · ▶ in the lab", style="bold")
        else:
            head.append(" · Enter: its lab", style="dim")
        return head

    @staticmethod
    def _brief(exercise: Exercise, variant: dict[str, Any]) -> str:
        path = exercise.brief_path
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            return f"**The brief cannot be read:** `{path}`: {err}"
        title, _, rest = text.partition("\n")
        if title.startswith("# "):  # the head above shows the title
            text = rest.lstrip("\n")
        try:
            return render_brief(text, variant, str(path))
        except VariantError as err:
            return f"> The brief's values cannot be filled in: {err}\n\n{text}"

    def _say(self, message: str, style: str = "") -> None:
        watching = self.watcher
        line = Text(message, style=style)
        if watching is not None:
            line.append(f"  [watching {watching.folder.name}]", style="bold cyan")
        self.query_one("#status", Static).update(line)

    # --- keys ----------------------------------------------------------------------------

    def action_next_tab(self) -> None:
        """Show the next pane: brief, check, files."""
        tabs = self.query_one(TabbedContent)
        tabs.active = TABS[(TABS.index(tabs.active) + 1) % len(TABS)] if tabs.active else TABS[0]

    def action_hint(self) -> None:
        """The next rung of the hint ladder for the highlighted exercise (recorded)."""
        entry = self.shown
        if entry is None:
            return
        if self.workspace is None:
            self._say(f"No workspace to record hints in: {HOW}.", "yellow")
            return
        try:
            hint = self.workspace.take_hint(entry)
        except SimlabError as err:
            self._say(f"No hint: {err}", "bold red")
            return
        head = f"Hint {hint.rung}/{hint.total} for {entry.id}"
        if not hint.new:
            head += " (all hints are shown; this is the last one again)"
        self._show_list()
        self._show_progress(entry)
        self.query_one(TabbedContent).active = "check-tab"
        self._say(head, "yellow")

    def action_check(self) -> None:
        """Grade the highlighted exercise of the workspace in a lab of its own."""
        if self.shown is not None:
            self._start_check(self.shown)

    def action_watch(self) -> None:
        """Check the highlighted exercise again whenever one of its files changes."""
        if self.watcher is not None:
            name = self.watcher.folder.name
            self.watcher = None
            self._say(f"Stopped watching {name}.")
            return
        entry = self.shown
        if entry is None:
            return
        if self.workspace is None:
            self._say(f"No workspace to watch: {HOW}.", "yellow")
            return
        folder = self.workspace.folder(entry)
        self.watcher = _Watch(entry, folder, folder_state(folder))
        self._say(f"Watching {folder.name}: saving a file there checks it again (w stops).")

    def _open(self, entry: ManifestEntry) -> None:
        """Restart the UI's lab on ``entry``'s scenario with the apprentice's variant."""
        if self.workspace is None:
            self._say(f"No workspace: an exercise's lab needs your own variant; {HOW}.", "yellow")
            return
        if entry.id == self.lab_exercise:
            self._say(f"The lab runs {entry.id} already: 2–6 are its tools.")
            return
        if self.checking is not None:
            self._say(f"A check of {self.checking.id} is running: its result first.", "yellow")
            return
        try:
            plan = self.simlab.plan.with_exercise(ExerciseContext.of(self.workspace, entry))
        except SimlabError as err:
            self._say(f"The lab of {entry.id} cannot start: {err}", "bold red")
            return
        self.simlab.restart(plan)

    # --- checking ------------------------------------------------------------------------

    def _start_check(self, entry: ManifestEntry) -> None:
        if self.workspace is None:
            self._say(f"No workspace to check: {HOW}.", "yellow")
            return
        if self.checking is not None:
            self._say(f"A check of {self.checking.id} is running: its result first.", "yellow")
            return
        folder = self.workspace.folder(entry)
        if not folder.is_dir():
            self._say(
                f"{folder} is missing: put the starter back with 'simlab reset {entry.id}'",
                "bold red",
            )
            return
        try:
            exercise = self._exercise(entry)
        except SimlabError as err:
            self._say(f"{entry.id} cannot be checked: {err}", "bold red")
            return
        limit = time_limit_of(exercise, entry)
        self.checking = entry
        if self.shown == entry:
            self.query_one(CheckReport).loading = True
            self.query_one(TabbedContent).active = "check-tab"
        self._say(f"Checking {entry.id} — {entry.title} (a lab for up to {limit:g} s) ...")
        self._check_worker = self.run_worker(
            self._check(self.workspace, entry, exercise, limit),
            name=f"check {entry.id}",
            group="check",
            exit_on_error=False,
        )

    async def on_unmount(self) -> None:
        """Stop a running check and wait until its grading process is gone (Textual only
        cancels a leaving screen's workers, it does not wait for them)."""
        worker = self._check_worker
        if worker is not None and not worker.is_finished:
            worker.cancel()
            with contextlib.suppress(WorkerCancelled, WorkerFailed):
                await worker.wait()

    async def _check(
        self, workspace: Workspace, entry: ManifestEntry, exercise: Exercise, limit: float
    ) -> None:
        job = GradeJob(
            exercise_folder=exercise.folder.resolve(),
            exercise_id=entry.id,
            apprentice=workspace.apprentice,
            submission=workspace.folder(entry),
            course_secret=workspace.course_secret,
            time_limit_s=limit,
        )
        try:
            [outcome] = await grade_jobs([job], concurrency=1)
            result = outcome.result
            workspace.record_check(entry, result)
            hint = None if result.passed else workspace.current_hint(entry)
        except (SimlabError, OSError) as err:
            result, hint = None, None
            self._say(f"The check of {entry.id} could not run: {err}", "bold red")
        finally:  # also when cancelled: a restart removes this screen
            self.checking = None
        self.query_one(CheckReport).loading = False
        if result is None:
            return
        self.results[entry.id] = result
        self._show_list()
        if self.shown == entry:
            self._show_progress(entry)
        verdict = f"{entry.id}: {format_points(result.score)}/{format_points(result.max_score)} — "
        if hint is None:
            self._say(verdict + "passed! On to the next one.", "bold green")
        else:
            self._say(verdict + "not passed yet.", "bold")
        if not self.is_current:
            self.notify(verdict + ("passed" if hint is None else "not passed yet"), title="Check")

    async def _poll_watch(self) -> None:
        """Check the watched exercise once its folder changed and then stayed quiet."""
        watch = self.watcher
        if watch is None:
            return
        seen = await asyncio.to_thread(folder_state, watch.folder)
        if watch is not self.watcher:
            return
        now = time.monotonic()
        if seen != watch.seen:
            watch.seen, watch.changed_at = seen, now
        elif (
            watch.changed_at is not None
            and now - watch.changed_at >= WATCH_QUIET_S
            and self.checking is None
        ):
            watch.changed_at = None
            self._start_check(watch.entry)
