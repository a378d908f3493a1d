"""``check [EXERCISE] [--watch]``: grade the workspace's copy of an exercise in a lab of its
own, in this process, and show the verdict; with ``--watch``, again after every change."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from rich.text import Text

from grading.batch import kill_process_tree, time_limit_of
from grading.manifest import Exercise, ManifestEntry
from grading.model import ExerciseResult, format_points
from grading.runner import clock_speed, run_exercise
from grading.workspace import Workspace
from simlab.course_cli.common import INTERRUPTED, err, out, workspace_of
from simlab.errors import SimlabError

__all__ = ["POLL_S", "check_once", "print_result", "run_check", "watch_folder"]

POLL_S = 0.5


def run_check(args: argparse.Namespace) -> int:
    workspace = workspace_of(args)
    entry = workspace.choose(args.exercise, Path.cwd())
    if entry is None:
        out.print("Every exercise is passed. Well done! (simlab check EXERCISE checks one again)")
        return 0
    exercise = workspace.exercise(entry)
    if not args.watch:
        try:
            return check_once(workspace, entry, exercise)
        except KeyboardInterrupt:
            err.print("check interrupted: nothing recorded", markup=False)
            return INTERRUPTED
    folder = workspace.folder(entry)
    try:
        watch_folder(folder, lambda: check_once(workspace, entry, exercise))
    except KeyboardInterrupt:
        out.print("\nStopped watching.")
    return 0


def check_once(workspace: Workspace, entry: ManifestEntry, exercise: Exercise) -> int:
    """Grade the workspace's copy of an exercise, print the verdict, record the progress;
    0 when passed, else 1."""
    folder = workspace.folder(entry)
    if not folder.is_dir():
        raise SimlabError(
            f"{folder} is missing: put the starter back with 'simlab reset {entry.id}'"
        )
    limit = time_limit_of(exercise, entry)
    speed = 1.0
    with contextlib.suppress(SimlabError):  # a scenario that cannot build: the run says so
        speed = clock_speed(exercise, workspace.variant(exercise))
    out.print(
        Text(
            f"Checking {entry.id} — {entry.title} (a lab for up to {limit:g} s of lab time"
            + (f", {limit / speed:.0f} s at {speed:g}× speed) ..." if speed != 1 else ") ...")
        )
    )
    result = _run_in_lab(workspace, entry, exercise, limit)
    workspace.record_check(entry, result)
    print_result(result)
    if result.passed:
        out.print(Text("Passed! On to the next one: simlab list", style="bold green"))
        return 0
    hint = workspace.current_hint(entry)
    out.print(Text(f"Hint {hint.rung}/{hint.total}: {hint.text}", style="yellow"))
    if hint.rung < hint.total:
        out.print(Text("Still stuck? simlab hint gives the next one.", style="dim"))
    return 1


def _run_in_lab(
    workspace: Workspace, entry: ManifestEntry, exercise: Exercise, limit: float
) -> ExerciseResult:
    try:
        return asyncio.run(
            run_exercise(
                exercise,
                workspace.folder(entry),
                apprentice=workspace.apprentice,
                course_secret=workspace.course_secret,
                state_dir=workspace.state_dir(entry),
                time_limit_s=limit,
                hold=True,  # the lab stays up for the whole limit: the apprentice may look at it
            )
        )
    except BaseException:  # Ctrl-C: the program must not outlive the check
        kill_process_tree(os.getpid(), include_root=False)
        raise


def print_result(result: ExerciseResult) -> None:
    """Each check with ✓/✗, points, message and diagnosis, then the score (titles come
    rendered with the apprentice's variant from the grader)."""
    if result.error is not None:
        out.print(Text(f"The submission did not run to the end: {result.error}", style="red"))
    for check in result.checks:
        mark = Text("✓ ", style="green") if check.passed else Text("✗ ", style="red")
        line = Text.assemble(
            "  ",
            mark,
            (f"{format_points(check.points)}/{format_points(check.max_points)} ", "bold"),
            check.title,
            (" (gate)" if check.gate else ""),
        )
        out.print(line)
        if check.message:
            out.print(Text(f"      {check.message}"))
        if check.diagnosis and not check.passed:
            out.print(Text(f"      diagnosis: {check.diagnosis}", style="dim"))
    if result.gate_reason is not None:
        out.print(Text(f"Score 0 because a gate failed: {result.gate_reason}", style="red"))
    verdict = "passed" if result.passed else "not passed yet"
    out.print(
        Text(
            f"Score {format_points(result.score)}/{format_points(result.max_score)} — {verdict}",
            style="bold",
        )
    )


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Path → (mtime, size) of the files under ``folder`` (no caches, no hidden files)."""
    found: dict[str, tuple[int, int]] = {}
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            continue
        with contextlib.suppress(OSError):
            if path.is_file():
                stat = path.stat()
                found[relative.as_posix()] = (stat.st_mtime_ns, stat.st_size)
    return found


def watch_folder(
    folder: Path,
    run: Callable[[], object],
    *,
    poll_s: float = POLL_S,
    sleep: Callable[[float], None] | None = None,
) -> None:
    """Call ``run``, then again each time a file under ``folder`` changes (polling mtimes
    every ``poll_s``); returns only by an exception (KeyboardInterrupt for Ctrl-C). Files
    the run itself writes do not trigger the next run: the snapshot is taken after it."""
    pause = sleep or time.sleep
    while True:
        run()
        out.print(Text(f"Watching {folder} for changes — Ctrl-C to stop", style="dim"))
        before = _snapshot(folder)
        while _snapshot(folder) == before:
            pause(poll_s)
