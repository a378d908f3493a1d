"""``grade``: a class's submissions, each in a lab of its own, in parallel; signed results,
feedback, ``gradebook.csv`` and ``junit.xml``."""

from __future__ import annotations

import argparse
import time

from rich.table import Table
from rich.text import Text

from grading.batch import (
    JobOutcome,
    describe,
    plan_class,
    write_class_reports,
    write_result,
)
from grading.manifest import Exercise
from grading.manifest import load_manifest as _load_manifest
from grading.model import format_points
from grading.reports import read_roster
from grading.signing import SIGNING_KEY_ENV
from simlab.course_cli.batch_progress import Interrupted, grade_with_progress
from simlab.course_cli.common import (
    INTERRUPTED,
    course_root,
    course_secret,
    err,
    out,
    signing_key,
)
from simlab.errors import SimlabError

__all__ = ["run_grade"]


def run_grade(args: argparse.Namespace) -> int:
    secret = course_secret(args.secret)
    key = signing_key(args.signing_key)
    manifest = _load_manifest(course_root(args.course))
    try:
        roster_text = args.roster.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SimlabError(f"{args.roster}: cannot read the roster: {error}") from None
    roster = read_roster(roster_text, str(args.roster))
    plan = plan_class(
        manifest,
        roster,
        args.submissions,
        course_secret=secret,
        exercise_ids=args.exercise,
        memory_mb=args.memory_mb,
        time_limit_s=args.time_limit,
    )
    if plan.strangers:
        err.print(
            Text(
                f"warning: not on the roster, not graded: {', '.join(plan.strangers)} "
                f"(add them to {args.roster} to grade them)",
                style="yellow",
            )
        )
    out.print(
        Text(
            f"Grading {len(plan.jobs)} submissions ({len(plan.missing)} not handed in) "
            f"of {len(roster)} apprentices, {args.jobs} labs at a time ..."
        )
    )
    if key is None:
        err.print(
            Text(
                "warning: no signing key: results are signed with the course secret only, "
                f"which every apprentice holds (give --signing-key or set {SIGNING_KEY_ENV})",
                style="yellow",
            )
        )
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        outcomes = grade_with_progress(
            plan.jobs,
            args.jobs,
            "grading",
            lambda o: write_result(args.out, o.result, secret, signing_key=key),
        )
    except Interrupted as stop:
        err.print(
            f"grading interrupted: {stop.done} of {len(plan.jobs)} results are in {args.out}; "
            "run grade again for the reports (it grades every submission again)",
            markup=False,
        )
        return INTERRUPTED
    files = write_class_reports(args.out, manifest, secret, roster, plan.exercises, signing_key=key)
    _grade_summary(outcomes, plan.exercises)
    for rejected in files.rejected:
        err.print(Text(f"warning: left out of the reports: {rejected}", style="yellow"))
    out.print(
        Text(
            f"{len(outcomes)} graded in {time.monotonic() - started:.0f} s. Reports: "
            f"{files.gradebook}, {files.junit}, {len(files.feedback)} feedback files, "
            f"results in {args.out}/<apprentice>/<exercise>.json"
        )
    )
    return 0


def _grade_summary(outcomes: list[JobOutcome], exercises: dict[str, Exercise]) -> None:
    table = Table(title="graded", title_justify="left")
    for column in ("apprentice", "exercise", "score", "status"):
        table.add_column(column, justify="right" if column == "score" else "left")
    for outcome in outcomes:
        result = outcome.result
        status = describe(result, exercises.get(result.exercise))
        table.add_row(
            result.apprentice,
            result.exercise,
            f"{format_points(result.score)}/{format_points(result.max_score)}",
            Text(status, style="green" if result.passed else "red"),
        )
    out.print(table)
