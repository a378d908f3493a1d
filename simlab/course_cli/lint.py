"""``lint``: the course's files, then, for N random apprentices (ids ``lint-xxxxxx``,
repeatable with ``--seed``), every exercise's starter must fail (on its merits: not because
a check broke) and its solution pass.

YAML and JSON files of a solution are templates rendered with the apprentice's variant
(reference answers depend on it). A check whose evidence runs past the exercise's time
limit (a truth window, a deadline after a fault) is a problem too: the run would have to
last longer than its limit.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import tempfile
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from grading.batch import GradeJob, JobOutcome, resolve_entries, time_limit_of
from grading.checks import BROKEN, REGISTRY
from grading.horizon import plan_run
from grading.manifest import (
    EXERCISE_FILE,
    Exercise,
    ManifestEntry,
    ManifestError,
    build_scenario,
    check_manifest,
    load_exercise,
)
from grading.manifest import load_manifest as _load_manifest
from grading.model import ExerciseResult, GradingError
from grading.runner import clock_speed, exercise_variant
from grading.workspace import place_files
from simlab.course_cli.batch_progress import Interrupted, grade_with_progress
from simlab.course_cli.common import INTERRUPTED, course_root, err, out

__all__ = ["LINT_SECRET", "run_lint"]

LINT_SECRET = "simlab-lint"


def run_lint(args: argparse.Namespace) -> int:
    root = course_root(args.course)
    problems = check_manifest(root, known_checks=set(REGISTRY))
    for problem in problems:
        err.print(str(problem), markup=False, soft_wrap=True)
    try:
        manifest = _load_manifest(root)
    except ManifestError:
        return 1
    entries = resolve_entries(manifest, args.exercise)
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    late: list[str] = []
    with tempfile.TemporaryDirectory(prefix="simlab-lint-") as scratch:
        jobs: list[GradeJob] = []
        loaded: dict[str, Exercise] = {}
        for entry in entries:
            try:
                exercise = load_exercise(manifest.root / entry.folder)
            except ManifestError:
                continue  # check_manifest reported it
            loaded[entry.id] = exercise
            rng = random.Random(f"{seed}/{entry.id}")  # the same ids whatever is selected
            for _ in range(args.variants):
                apprentice = f"lint-{rng.randrange(16**6):06x}"
                late.extend(_late_evidence(exercise, entry, apprentice))
                for kind in ("starter", "solution"):
                    jobs.append(_lint_job(exercise, entry, apprentice, kind, Path(scratch)))
        for message in late:
            err.print(message, markup=False, soft_wrap=True)
        # Solutions first: they run for a while, starters mostly stop at their first TODO,
        # so the batch does not end waiting on a few long labs.
        jobs.sort(key=lambda job: job.submission.name != "solution")
        out.print(
            Text(
                f"Running {len(jobs)} labs ({args.variants} apprentice(s) × starter and "
                f"solution for {len(loaded)} exercise(s), {args.jobs} at a time; "
                f"--seed {seed} draws these apprentices again) ..."
            )
        )
        try:
            outcomes = grade_with_progress(jobs, args.jobs, "lint")
        except Interrupted as stop:
            err.print(f"lint interrupted after {stop.done} of {len(jobs)} labs", markup=False)
            return INTERRUPTED
    bad = _lint_table(outcomes, loaded)
    total = bad + len(problems) + len(late)
    if total:
        err.print(f"lint: {total} problem{'s' if total != 1 else ''}", markup=False)
        return 1
    out.print("lint: the course is fine")
    return 0


def _lint_job(
    exercise: Exercise,
    entry: ManifestEntry,
    apprentice: str,
    kind: str,
    scratch: Path,
) -> GradeJob:
    folder = scratch / entry.id / apprentice / kind
    folder.mkdir(parents=True)
    variant = _variant_of(exercise, apprentice) if kind == "solution" else None
    with contextlib.suppress(OSError, GradingError):  # a missing file is a lint problem already
        place_files(exercise.folder, getattr(exercise, kind), folder, variant)
    speed = 1.0
    with contextlib.suppress(ManifestError):  # a scenario that cannot build: reported already
        speed = clock_speed(exercise, _variant_of(exercise, apprentice))
    return GradeJob(
        exercise_folder=exercise.folder.resolve(),
        exercise_id=entry.id,
        apprentice=apprentice,
        submission=folder,
        course_secret=LINT_SECRET,
        time_limit_s=time_limit_of(exercise, entry),
        clock_speed=speed,
    )


def _late_evidence(exercise: Exercise, entry: ManifestEntry, apprentice: str) -> list[str]:
    """A problem per check whose evidence ends after the time limit (the run would have to
    last longer than the limit) for this apprentice's variant."""
    variant = _variant_of(exercise, apprentice)
    try:
        scenario = build_scenario(exercise, variant)
    except ManifestError:
        return []  # check_manifest reported it
    limit = time_limit_of(exercise, entry)
    plan = plan_run(exercise, scenario, variant, limit)
    return [
        f"{exercise.folder / EXERCISE_FILE}: error: check {need.check_id!r} of {entry.id!r} "
        f"needs the lab until t={max(need.until_s or 0.0, need.reach_s):g} s ({need.what}) "
        f"for apprentice {apprentice}, "
        f"after the time limit of {limit:g} s of lab time; raise time_limit_s in the manifest"
        for need in plan.beyond_limit()
    ]


def _broken(result: ExerciseResult) -> str | None:
    """The first check of ``result`` that broke (the course's fault, not the submission's)."""
    broken = next((c for c in result.checks if c.message.startswith(BROKEN)), None)
    return None if broken is None else f"{broken.check_id}: {broken.message}"


def _first_failure(result: ExerciseResult) -> str:
    if result.error is not None:
        return result.error
    failed = next((c for c in result.checks if not c.passed), None)
    return f"{failed.check_id}: {failed.message}" if failed is not None else "no checks"


def _lint_table(outcomes: list[JobOutcome], exercises: dict[str, Exercise]) -> int:
    """Print one row per exercise and apprentice; returns the number of bad rows."""
    table = Table(title="starter must fail, solution must pass", title_justify="left")
    for column in ("exercise", "apprentice", "variant", "starter", "solution", "lab time"):
        table.add_column(column)
    rows: dict[tuple[str, str], dict[str, JobOutcome]] = {}
    for outcome in outcomes:
        kind = outcome.job.submission.name
        rows.setdefault((outcome.job.exercise_id, outcome.job.apprentice), {})[kind] = outcome
    bad = 0
    for (exercise_id, apprentice), pair in rows.items():
        starter, solution = pair["starter"], pair["solution"]
        variant = exercises[exercise_id].variant
        values = ", ".join(
            f"{k}={v}"
            for k, v in _variant_of(exercises[exercise_id], apprentice).items()
            if k in variant.parameters
        )
        broke = _broken(starter.result)  # a starter must fail on its merits
        starter_ok = not starter.result.passed and broke is None
        solution_ok = solution.result.passed
        bad += (not starter_ok) + (not solution_ok)
        if starter_ok:
            starter_cell = Text("fails ✓", style="green")
        elif broke is not None:
            starter_cell = Text(f"FAILS ✗ because a check broke: {broke}", style="red")
        else:
            starter_cell = Text("PASSES ✗ (nothing to do)", style="red")
        table.add_row(
            exercise_id,
            apprentice,
            Text(values),
            starter_cell,
            Text("passes ✓", style="green")
            if solution_ok
            else Text(f"FAILS ✗ {_first_failure(solution.result)}", style="red"),
            f"{starter.wall_s + solution.wall_s:.0f} s",
        )
    out.print(table)
    return bad


def _variant_of(exercise: Exercise, apprentice: str) -> dict[str, Any]:
    return exercise_variant(exercise, apprentice, LINT_SECRET)[1]
