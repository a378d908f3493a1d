"""The course commands of ``simlab``: the apprentice's workspace, the curriculum lint and
batch grading.

=======================================  ===============================================
``init [DIR]``                           a workspace with every exercise's starter files
                                         and brief (DIR default ``simlab-exercises``)
``list``                                 the exercises with status, score and hints used
``hint [EXERCISE]``                      the next rung of the hint ladder
``reset EXERCISE``                       the starter files back
``check [EXERCISE] [--watch]``           grade the exercise in a lab; exit 0 when passed
``lint [--variants N] [--exercise ID]``  the course's files, then starter fails and
                                         solution passes for N random apprentices
``grade --roster --submissions --out``   grade a class in parallel; signed results,
                                         feedback, gradebook.csv, junit.xml
``verify FILE...``                       check the signatures of result files
=======================================  ===============================================

``lint`` grades the starter and the solution of every exercise for N random apprentices
(ids ``lint-xxxxxx``, repeatable with ``--seed``); YAML and JSON files of a solution are
templates rendered with the apprentice's variant (reference answers depend on it). ``grade``
and ``lint`` run each lab in a worker process (see :mod:`grading.batch`), ``check`` runs its
lab in this process, on the workspace's folder itself.

EXERCISE is an id (``modbus-float``), a folder (``01-modbus-float``) or a number (``1``);
without it, ``check`` takes the exercise whose folder you are in, else (like ``hint``) the
first one not passed yet. Workspace commands find the workspace from the current folder
upwards (or ``--workspace DIR``).

:func:`add_course_commands` adds the sub-commands to ``simlab``'s parser and
:func:`run_course_command` runs them (None for a command that is not one of these), so
``simlab.cli`` hooks them in with two lines. Every user mistake is a
:class:`~simlab.errors.SimlabError`; :func:`main` runs the commands alone
(``python -m simlab.course_cli``) and prints errors like ``simlab`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from grading.batch import (
    DEFAULT_MEMORY_MB,
    LABS_PER_CORE,
    MB_PER_LAB,
    GradeJob,
    JobOutcome,
    default_jobs,
    describe,
    grade_jobs,
    kill_process_tree,
    plan_class,
    resolve_entries,
    time_limit_of,
    write_class_reports,
    write_result,
)
from grading.checks import REGISTRY
from grading.manifest import Exercise, ManifestEntry, ManifestError, check_manifest, load_exercise
from grading.manifest import load_manifest as _load_manifest
from grading.model import ExerciseResult, GradingError, ResultFormatError
from grading.reports import read_roster
from grading.runner import run_exercise
from grading.signing import verify_result
from grading.variants import VariantError, render_brief
from grading.workspace import (
    SECRET_ENV,
    Workspace,
    default_course_root,
    find_workspace,
    init_workspace,
    place_files,
)
from simlab.errors import FileProblems, SimlabError

__all__ = ["COMMANDS", "add_course_commands", "main", "run_course_command", "watch_folder"]

COMMANDS = ("init", "list", "hint", "reset", "check", "lint", "grade", "verify")
DEFAULT_DIR = "simlab-exercises"
POLL_S = 0.5
LINT_SECRET = "simlab-lint"
INTERRUPTED = 130  # the shell's status for Ctrl-C

# soft_wrap: a long line (a path, a message) stays one line, for people and for tools
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


# --- the parser ------------------------------------------------------------------------


def _workspace_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-w",
        "--workspace",
        type=Path,
        help="the workspace folder (default: found from the current folder upwards)",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value:g}")
    return value


def add_course_commands(subparsers: Any) -> None:
    """Add init, list, hint, reset, check, lint, grade and verify to ``simlab``'s
    sub-parsers (the object ``add_subparsers`` returned)."""
    init = subparsers.add_parser("init", help="make a workspace with the course's exercises")
    init.add_argument(
        "dir", nargs="?", default=DEFAULT_DIR, type=Path, help=f"where (default {DEFAULT_DIR})"
    )
    init.add_argument("--apprentice", help="your apprentice id (default: $USER)")
    init.add_argument(
        "--secret",
        help=f"the course secret from your instructor (default: ${SECRET_ENV}; "
        "without either, a secret of your own for self-study)",
    )
    init.add_argument("--course", type=Path, help="the course folder (default: the bundled one)")
    init.add_argument(
        "--force", action="store_true", help="write into a non-empty folder (overwrites starters)"
    )

    listing = subparsers.add_parser("list", help="the exercises with your progress")
    _workspace_option(listing)

    hint = subparsers.add_parser("hint", help="the next hint for an exercise")
    hint.add_argument("exercise", nargs="?", help="id, folder or number (default: first open)")
    _workspace_option(hint)

    reset = subparsers.add_parser("reset", help="put an exercise's starter files back")
    reset.add_argument("exercise", help="id, folder or number")
    _workspace_option(reset)

    check = subparsers.add_parser("check", help="grade an exercise of your workspace in a lab")
    check.add_argument(
        "exercise", nargs="?", help="id, folder or number (default: where you are, or first open)"
    )
    check.add_argument(
        "--watch", action="store_true", help="check again whenever a file of the exercise changes"
    )
    _workspace_option(check)

    lint = subparsers.add_parser(
        "lint", help="lint the course: files, then starters fail and solutions pass"
    )
    lint.add_argument(
        "--variants",
        type=_positive_int,
        default=3,
        metavar="N",
        help="random apprentices per exercise (default 3)",
    )
    lint.add_argument(
        "--exercise", action="extend", nargs="+", metavar="ID", help="only these exercises"
    )
    lint.add_argument("--jobs", type=_positive_int, default=2, help="labs at once (default 2)")
    lint.add_argument("--seed", type=int, help="seed of the random apprentice ids (to repeat)")
    lint.add_argument("--course", type=Path, help="the course folder (default: the bundled one)")

    grade = subparsers.add_parser("grade", help="grade a class's submissions in parallel")
    grade.add_argument("--roster", type=Path, required=True, help="roster CSV (id,name)")
    grade.add_argument(
        "--submissions",
        type=Path,
        required=True,
        help="folder of <apprentice id>/<exercise folder>/ submissions",
    )
    grade.add_argument("--out", type=Path, required=True, help="where the reports go")
    grade.add_argument(
        "--jobs",
        type=_positive_int,
        default=default_jobs(),
        help=f"labs at once (default here {default_jobs()}: {LABS_PER_CORE} per CPU core, as "
        f"memory allows {MB_PER_LAB} MB each)",
    )
    grade.add_argument("--secret", help=f"the course secret (default: ${SECRET_ENV})")
    grade.add_argument(
        "--exercise", action="extend", nargs="+", metavar="ID", help="only these exercises"
    )
    grade.add_argument(
        "--memory-mb",
        type=_positive_int,
        default=DEFAULT_MEMORY_MB,
        help=f"memory limit of each program (default {DEFAULT_MEMORY_MB})",
    )
    grade.add_argument(
        "--time-limit", type=_positive_float, metavar="S", help="override the exercises' limits"
    )
    grade.add_argument("--course", type=Path, help="the course folder (default: the bundled one)")

    verify = subparsers.add_parser("verify", help="check the signatures of result files")
    verify.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files or folders")
    verify.add_argument("--secret", help=f"the course secret (default: ${SECRET_ENV})")


def run_course_command(args: argparse.Namespace) -> int | None:
    """Run the command in ``args``; None when ``args.command`` is not a course command."""
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "init": _init,
        "list": _list,
        "hint": _hint,
        "reset": _reset,
        "check": _check,
        "lint": _lint,
        "grade": _grade,
        "verify": _verify,
    }
    handler = handlers.get(getattr(args, "command", None) or "")
    return None if handler is None else handler(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a course command alone, printing errors like ``simlab`` does."""
    parser = argparse.ArgumentParser(prog="simlab", description="simlab course commands")
    add_course_commands(parser.add_subparsers(dest="command", metavar="COMMAND"))
    args = parser.parse_args(argv)
    try:
        code = run_course_command(args)
    except FileProblems as error:
        err.print(str(error), markup=False, soft_wrap=True)
        return 1
    except SimlabError as error:
        err.print(f"error: {error}", markup=False, soft_wrap=True)
        return 1
    if code is None:
        parser.print_help()
        return 0
    return code


# --- shared helpers --------------------------------------------------------------------


def _workspace(args: argparse.Namespace) -> Workspace:
    given: Path | None = getattr(args, "workspace", None)
    if given is not None:
        return Workspace.load(given)
    return find_workspace(Path.cwd())


def _secret(given: str | None) -> str:
    secret = given or os.environ.get(SECRET_ENV, "")
    if not secret:
        raise SimlabError(
            f"no course secret: pass --secret SECRET or set {SECRET_ENV} "
            "(the one the class's variants and signatures are made with)"
        )
    return secret


def _course(given: Path | None) -> Path:
    root = given or default_course_root()
    if not (root / "manifest.yaml").is_file() and not root.is_file():
        raise SimlabError(f"no course at {root} (no manifest.yaml): give one with --course DIR")
    return root


def _points(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _rendered(text: str, variant: dict[str, Any]) -> str:
    with contextlib.suppress(VariantError):
        return render_brief(text, variant, "title")
    return text


# --- init, list, hint, reset -----------------------------------------------------------


def _init(args: argparse.Namespace) -> int:
    apprentice = args.apprentice or os.environ.get("USER") or _login()
    if not apprentice:
        raise SimlabError("who are you? give your apprentice id with --apprentice ID")
    workspace = init_workspace(
        args.dir,
        course_root=_course(args.course),
        apprentice=apprentice,
        secret=args.secret,
        force=args.force,
    )
    count = len(workspace.entries)
    out.print(
        Text(
            f"Workspace of {workspace.apprentice} in {workspace.root}: {count} exercises of "
            f"'{workspace.manifest.course.title}'."
        )
    )
    source = {
        "flag": "the course secret you gave (--secret)",
        "env": f"the course secret from ${SECRET_ENV}",
        "generated": "a secret of this workspace alone (self-study: no course secret given)",
    }[workspace.secret_source]
    out.print(Text(f"Your variants come from {source}."))
    out.print(Text(f"Next: cd {args.dir} && simlab list, then simlab check"))
    return 0


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


_STATUS_STYLE = {"todo": "dim", "failed": "red", "passed": "green"}


def _list(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    progress = workspace.progress()
    passed = sum(1 for p in progress.values() if p.status == "passed")
    table = Table(
        title=f"{workspace.manifest.course.title} — {workspace.apprentice}: "
        f"{passed} of {len(progress)} passed",
        title_justify="left",
    )
    for column in ("#", "id", "title", "status", "score", "hints"):
        table.add_column(column, justify="right" if column in ("#", "score") else "left")
    for number, entry in enumerate(workspace.entries, start=1):
        mine = progress[entry.id]
        score = (
            f"{_points(mine.best_score)}/{_points(mine.max_score)}"
            if mine.best_score is not None and mine.max_score is not None
            else "–"
        )
        table.add_row(
            str(number),
            entry.id,
            Text(entry.title),
            Text(mine.status, style=_STATUS_STYLE[mine.status]),
            score,
            f"{mine.hints_used}/3",
        )
    out.print(table)
    return 0


def _hint(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    entry = workspace.choose(args.exercise)
    if entry is None:
        out.print("Every exercise is passed: name one to see its hints (simlab hint 3).")
        return 0
    hint = workspace.take_hint(entry)
    head = f"Hint {hint.rung}/{hint.total} for {entry.id} — {entry.title}"
    if not hint.new:
        head += " (all hints are shown; this is the last one again)"
    out.print(Text(head, style="bold"))
    out.print(Text(hint.text))
    return 0


def _reset(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    entry = workspace.entry(args.exercise)
    restored = workspace.reset(entry)
    out.print(Text(f"Restored {entry.id} ({workspace.folder(entry).name}):"))
    for path in restored:
        out.print(Text(f"  {path.relative_to(workspace.root)}"))
    return 0


# --- check -----------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
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
    out.print(Text(f"Checking {entry.id} — {entry.title} (a lab for up to {limit:g} s) ..."))
    result = _run_in_lab(workspace, entry, exercise, limit)
    workspace.record_check(entry, result)
    print_result(result, workspace.variant(exercise))
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
            )
        )
    except BaseException:  # Ctrl-C: the program must not outlive the check
        kill_process_tree(os.getpid(), include_root=False)
        raise


def print_result(result: ExerciseResult, variant: dict[str, Any]) -> None:
    """Each check with ✓/✗, points, message and diagnosis, then the score."""
    if result.error is not None:
        out.print(Text(f"The submission did not run to the end: {result.error}", style="red"))
    for check in result.checks:
        mark = Text("✓ ", style="green") if check.passed else Text("✗ ", style="red")
        line = Text.assemble(
            "  ",
            mark,
            (f"{_points(check.points)}/{_points(check.max_points)} ", "bold"),
            _rendered(check.title, variant),
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
            f"Score {_points(result.score)}/{_points(result.max_score)} — {verdict}",
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


# --- lint ------------------------------------------------------------------------------


def _lint(args: argparse.Namespace) -> int:
    root = _course(args.course)
    problems = check_manifest(root, known_checks=set(REGISTRY))
    for problem in problems:
        err.print(str(problem), markup=False, soft_wrap=True)
    try:
        manifest = _load_manifest(root)
    except ManifestError:
        return 1
    entries = resolve_entries(manifest, args.exercise)
    seed = args.seed if args.seed is not None else random.randrange(10**6)
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
                for kind in ("starter", "solution"):
                    jobs.append(_lint_job(exercise, entry, apprentice, kind, Path(scratch)))
        out.print(
            Text(
                f"Running {len(jobs)} labs ({args.variants} apprentice(s) × starter and "
                f"solution for {len(loaded)} exercise(s), {args.jobs} at a time; "
                f"--seed {seed} draws these apprentices again) ..."
            )
        )
        try:
            outcomes = _with_progress(jobs, args.jobs, "lint")
        except _Interrupted as stop:
            err.print(f"lint interrupted after {stop.done} of {len(jobs)} labs", markup=False)
            return INTERRUPTED
    bad = _lint_table(outcomes, loaded)
    total = bad + len(problems)
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
    return GradeJob(
        exercise_folder=exercise.folder.resolve(),
        exercise_id=entry.id,
        apprentice=apprentice,
        submission=folder,
        course_secret=LINT_SECRET,
        time_limit_s=time_limit_of(exercise, entry),
    )


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
        starter_ok = not starter.result.passed
        solution_ok = solution.result.passed
        bad += (not starter_ok) + (not solution_ok)
        table.add_row(
            exercise_id,
            apprentice,
            Text(values),
            Text("fails ✓", style="green")
            if starter_ok
            else Text("PASSES ✗ (nothing to do)", style="red"),
            Text("passes ✓", style="green")
            if solution_ok
            else Text(f"FAILS ✗ {_first_failure(solution.result)}", style="red"),
            f"{starter.wall_s + solution.wall_s:.0f} s",
        )
    out.print(table)
    return bad


def _variant_of(exercise: Exercise, apprentice: str) -> dict[str, Any]:
    from grading.runner import exercise_variant

    return exercise_variant(exercise, apprentice, LINT_SECRET)[1]


# --- grade and verify ------------------------------------------------------------------


@contextlib.contextmanager
def _progress(total: int, what: str) -> Iterator[Progress]:
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=out) as progress:
        progress.add_task(what, total=total)
        yield progress


class _Interrupted(Exception):
    """Ctrl-C during a batch: how many jobs had finished."""

    def __init__(self, done: int) -> None:
        super().__init__(done)
        self.done = done


def _with_progress(
    jobs: list[GradeJob],
    concurrency: int,
    what: str,
    done: Callable[[JobOutcome], object] | None = None,
) -> list[JobOutcome]:
    with _progress(len(jobs), what) as progress:
        task = progress.task_ids[0]

        def finished(outcome: JobOutcome) -> None:
            if done is not None:
                done(outcome)
            progress.advance(task)
            result = outcome.result
            mark = Text("✓ ", style="green") if result.passed else Text("✗ ", style="red")
            retried = f", {outcome.attempts} runs: the lab failed" if outcome.attempts > 1 else ""
            progress.console.print(
                Text.assemble(
                    mark,
                    f"{result.apprentice} {result.exercise} ({outcome.job.submission.name}) "
                    f"{_points(result.score)}/{_points(result.max_score)} "
                    f"in {outcome.wall_s:.0f} s{retried}",
                )
            )

        try:
            return asyncio.run(grade_jobs(jobs, concurrency=concurrency, on_done=finished))
        except KeyboardInterrupt:
            raise _Interrupted(int(progress.tasks[0].completed)) from None


def _grade(args: argparse.Namespace) -> int:
    secret = _secret(args.secret)
    manifest = _load_manifest(_course(args.course))
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
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        outcomes = _with_progress(
            plan.jobs, args.jobs, "grading", lambda o: write_result(args.out, o.result, secret)
        )
    except _Interrupted as stop:
        err.print(
            f"grading interrupted: {stop.done} of {len(plan.jobs)} results are in {args.out}; "
            "run grade again for the reports (it grades every submission again)",
            markup=False,
        )
        return INTERRUPTED
    files = write_class_reports(args.out, manifest, secret, roster, plan.exercises)
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
            f"{_points(result.score)}/{_points(result.max_score)}",
            Text(status, style="green" if result.passed else "red"),
        )
    out.print(table)


def _result_files(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.rglob("*.json")))
        else:
            files.append(path)
    return files


def _verify(args: argparse.Namespace) -> int:
    secret = _secret(args.secret)
    bad = 0
    files = _result_files(args.files)
    if not files:
        raise SimlabError("no result files (*.json) found in the folders given")
    for path in files:
        problem = _verify_one(path, secret)
        if problem is None:
            continue
        bad += 1
        err.print(Text(f"{path}: {problem}", style="red"))
    if bad:
        err.print(f"verify: {bad} of {len(files)} file(s) failed", markup=False)
        return 1
    out.print(f"verify: {len(files)} file(s) ok", markup=False)
    return 0


def _verify_one(path: Path, secret: str) -> str | None:
    """None when ``path`` is a genuine result (printed), else what is wrong with it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no such file"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"not a result file: {error}"
    if not isinstance(data, dict) or not verify_result(data, secret):
        return (
            "the signature does not match: the file was edited after grading "
            "(or signed with another course secret)"
        )
    try:
        result = ExerciseResult.from_dict(data, str(path))
    except ResultFormatError as error:
        return str(error)
    out.print(
        Text(
            f"{path}: ok — {result.apprentice}, {result.exercise}, "
            f"{_points(result.score)}/{_points(result.max_score)}"
        )
    )
    return None


if __name__ == "__main__":
    sys.exit(main())
