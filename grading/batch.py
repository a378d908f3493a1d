"""Batch grading: many submissions, each in a lab of its own, in parallel worker processes.

:func:`grade_jobs` runs :class:`GradeJob` s concurrently, at most ``concurrency`` at a time.
Each job runs in a **worker process** (``python -m grading.batch``) that grades one
submission at a time with :func:`grading.runner.run_exercise` on a private copy of the
submission, then reports the :class:`~grading.model.ExerciseResult` as one JSON line.
Workers are reused from job to job (importing the lab stack costs about a second).

Why processes, not one event loop (measured on a 2-core machine, see the report of
``benchmarks/batch_grading.py``): starting a lab costs about 2 s of CPU (OPC UA address
space, keys, MQTT broker, platform), so eight labs sharing one event loop held it up to
2.4 s at a time, stalling every other lab's servers and clock; and a hostile program that
kills its parent, a lab that never stops or a check that corrupts ``sys.modules`` must
take down one job, never the batch. A worker that dies or overruns its watchdog is
killed with its whole process tree, the job gets a result that says so, and a fresh
worker takes the next job.

:func:`plan_class` turns a roster and a submissions folder into jobs;
:func:`write_class_reports` writes the signed results, feedback, gradebook and JUnit XML.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from grading.manifest import Exercise, Manifest, ManifestEntry, ManifestError, load_exercise
from grading.model import CheckResult, ClassResult, ExerciseResult, GradingError
from grading.reports import (
    RosterEntry,
    feedback_markdown,
    gradebook_csv,
    junit_xml,
    read_result_json,
    result_json,
)
from grading.runner import clock_speed, exercise_variant, run_exercise
from grading.variants import VariantError, render_title, variant_seed
from simlab.scenario.checks import did_you_mean

__all__ = [
    "DEFAULT_MEMORY_MB",
    "BatchError",
    "ClassPlan",
    "GradeJob",
    "JobOutcome",
    "default_jobs",
    "describe",
    "error_result",
    "grade_jobs",
    "kill_process_tree",
    "lab_failed",
    "plan_class",
    "resolve_entries",
    "time_limit_of",
    "write_class_reports",
]

DEFAULT_MEMORY_MB = 512
LABS_PER_CORE = 8
"""A lab grading a service mostly waits on its clock: 30 gateway labs on 2 cores used a
third of the CPU (``benchmarks/batch_grading.py``)."""
MB_PER_LAB = 250
"""Memory of one lab at work: its worker (about 160 MB) and the apprentice's program."""
WATCHDOG_MARGIN_S = 90.0
"""Wall seconds a job may run past twice its time limit (lab start, settle, stop) before the
worker is killed: generous, since a loaded machine starts labs slowly."""
UNKNOWN_LIMIT_S = 600.0
"""The time limit the watchdog assumes for a job that does not say (the worker looks the
exercise's limit up in its course manifest)."""
LAB_RETRIES = 2
"""Extra runs for a job whose lab could not start (16 labs starting at once on 2 cores
lost one start in 26 to a free port taken in between)."""
LAB_FAILURE = "the lab could not run"
"""How :func:`grading.runner.run_exercise` starts each check's message when the lab failed."""
STDERR_TAIL = 4000
_LINE_LIMIT = 64 * 1024 * 1024  # one result line (evidence, program output) fits

Isolation = Literal["process", "inline"]


class BatchError(GradingError):
    """A batch that cannot start: unknown exercise, unreadable folder, broken exercise."""


# --- jobs and outcomes -----------------------------------------------------------------


@dataclass(frozen=True)
class GradeJob:
    """One submission to grade: ``submission`` is a folder with the apprentice's files for
    the exercise in ``exercise_folder`` (both absolute). The submission is copied before
    it runs, so grading never changes it. ``time_limit_s`` is lab time (None: the
    exercise's own); ``clock_speed`` the speed of its lab's clock, which turns the limit
    into wall time for the watchdog."""

    exercise_folder: Path
    exercise_id: str
    apprentice: str
    submission: Path
    course_secret: str
    time_limit_s: float | None = None
    memory_mb: int | None = None
    clock_speed: float = 1.0

    def to_json(self) -> str:
        """One line of JSON."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the worker protocol)."""
        return {
            "exercise_folder": str(self.exercise_folder),
            "exercise_id": self.exercise_id,
            "apprentice": self.apprentice,
            "submission": str(self.submission),
            "course_secret": self.course_secret,
            "time_limit_s": self.time_limit_s,
            "memory_mb": self.memory_mb,
            "clock_speed": self.clock_speed,
        }

    @classmethod
    def from_json(cls, text: str) -> GradeJob:
        """Read :meth:`to_json` back."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GradeJob:
        """Read :meth:`to_dict` back."""
        return cls(
            exercise_folder=Path(data["exercise_folder"]),
            exercise_id=str(data["exercise_id"]),
            apprentice=str(data["apprentice"]),
            submission=Path(data["submission"]),
            course_secret=str(data["course_secret"]),
            time_limit_s=data.get("time_limit_s"),
            memory_mb=data.get("memory_mb"),
            clock_speed=float(data.get("clock_speed") or 1.0),
        )

    @property
    def wall_limit_s(self) -> float:
        """The time limit in wall seconds (:data:`UNKNOWN_LIMIT_S` lab seconds when unset)."""
        return (self.time_limit_s or UNKNOWN_LIMIT_S) / self.clock_speed

    @property
    def watchdog_s(self) -> float:
        """Wall seconds after which the job's worker is killed."""
        return 2 * self.wall_limit_s + WATCHDOG_MARGIN_S


@dataclass(frozen=True)
class JobOutcome:
    """A finished job: its result, the wall time, why its worker was lost (if it was), and
    how many times it ran (more than once when its lab could not start)."""

    job: GradeJob
    result: ExerciseResult
    wall_s: float
    lost: str | None = None
    attempts: int = 1


def lab_failed(result: ExerciseResult) -> bool:
    """The lab itself could not run, so no check saw the submission (the runner then fails
    every check with :data:`LAB_FAILURE`): worth another try."""
    return (
        result.error is not None
        and bool(result.checks)
        and all(c.message.startswith(LAB_FAILURE) for c in result.checks)
    )


def default_jobs() -> int:
    """Labs graded at once by default: :data:`LABS_PER_CORE` per CPU core, as far as the
    available memory allows :data:`MB_PER_LAB` each (at least 2)."""
    by_cpu = LABS_PER_CORE * (os.cpu_count() or 1)
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return by_cpu
    return max(2, min(by_cpu, available // (MB_PER_LAB * 2**20)))


def time_limit_of(exercise: Exercise, entry: ManifestEntry) -> float:
    """The time limit a submission runs with, in lab seconds: the exercise's, else its
    manifest entry's."""
    return exercise.time_limit_s or entry.time_limit_s


def error_result(
    job: GradeJob, reason: str, exercise: Exercise | None = None, started: datetime | None = None
) -> ExerciseResult:
    """A result for a submission the grader could not grade normally: every check of
    ``exercise`` failed with ``reason`` (no checks when the exercise is unknown), their
    titles rendered with the apprentice's variant."""
    started = started or datetime.now(UTC)
    variant: dict[str, Any] = {}
    if exercise is not None:
        with contextlib.suppress(VariantError):  # never fail the job on the titles
            variant = exercise_variant(exercise, job.apprentice, job.course_secret)[1]
    checks = [
        CheckResult(
            check_id=spec.id,
            title=render_title(spec.title, variant),
            passed=False,
            points=0.0,
            max_points=spec.points,
            message=reason,
            competencies=tuple(spec.competencies),
            gate=spec.gate,
        )
        for spec in (exercise.checks if exercise is not None else [])
    ]
    return ExerciseResult(
        exercise=job.exercise_id,
        apprentice=job.apprentice,
        variant_seed=variant_seed(job.course_secret, job.apprentice, job.exercise_id),
        checks=checks,
        started=started,
        finished=max(datetime.now(UTC), started),
        error=reason,
    )


def describe(result: ExerciseResult, exercise: Exercise | None = None) -> str:
    """A few words on how a submission fared: ``passed``, ``failed``, ``crashed (exit 1)``,
    ``timed out``, ``memory limit``, ``error: ...``. The program's fate comes from the
    evidence of a ``program_ran`` check, when ``exercise`` has one."""
    if result.error is not None:
        return f"error: {result.error}"
    if result.passed:
        return "passed"
    types = {spec.id: spec.type for spec in exercise.checks} if exercise is not None else {}
    for check in result.checks:
        if types.get(check.check_id) != "program_ran" or check.passed:
            continue
        evidence = check.evidence
        stderr = str(evidence.get("stderr_tail", ""))
        if "MemoryError" in stderr or "Cannot allocate memory" in stderr:
            return "memory limit"
        if evidence.get("timed_out"):
            return "timed out"
        status = evidence.get("exit_status")
        if isinstance(status, int) and status < 0:
            return f"killed by signal {-status}"
        if isinstance(status, int) and status != 0:
            return f"crashed (exit {status})"
    return "failed"


# --- running one job -------------------------------------------------------------------


def _copy_submission(source: Path, target: Path) -> None:
    """Copy the submission (symlinks stay links: a link to a secret file is not followed)."""
    if not source.is_dir():
        raise GradingError(f"the submission folder {source} does not exist")
    shutil.copytree(
        source,
        target,
        symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__", ".simlab"),
    )


async def run_job(job: GradeJob, scratch: Path | None = None) -> ExerciseResult:
    """Grade one job in this process, on a private copy in ``scratch`` (an empty folder the
    caller removes afterwards; by default a temporary one); never raises for the submission."""
    if scratch is None:
        with tempfile.TemporaryDirectory(
            prefix="simlab-grade-", ignore_cleanup_errors=True
        ) as temporary:
            return await run_job(job, Path(temporary))
    started = datetime.now(UTC)
    try:
        exercise = load_exercise(job.exercise_folder)
    except ManifestError as err:
        return error_result(job, f"the exercise cannot be loaded: {err}", None, started)
    submission = scratch / "submission"
    try:
        _copy_submission(job.submission, submission)
    except (OSError, shutil.Error, GradingError) as err:
        return error_result(job, f"cannot copy the submission: {err}", exercise, started)
    try:
        return await run_exercise(
            exercise,
            submission,
            apprentice=job.apprentice,
            course_secret=job.course_secret,
            state_dir=scratch / "state",
            time_limit_s=job.time_limit_s,
            memory_mb=job.memory_mb,
        )
    except Exception as err:  # the grader itself broke: this job fails, the batch goes on
        reason = f"the grader failed: {type(err).__name__}: {err}"
        return error_result(job, reason, exercise, started)


def kill_process_tree(pid: int, *, include_root: bool = True) -> int:
    """Kill every descendant of ``pid`` (and ``pid`` itself with ``include_root``), also
    programs in sessions of their own; returns how many processes were signalled. Uses
    psutil (an amqtt dependency); without it only the root is killed."""
    try:
        psutil: Any = importlib.import_module("psutil")
    except ImportError:
        if include_root:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
            return 1
        return 0
    try:
        root = psutil.Process(pid)
        victims = list(root.children(recursive=True))
    except psutil.Error:
        return 0
    if include_root:
        victims.append(root)
    for process in victims:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(victims, timeout=3)
    return len(victims)


# --- the worker process ----------------------------------------------------------------


def _worker_main() -> int:
    """``python -m grading.batch``: read jobs on stdin, one JSON line each
    (``{"job": {...}, "scratch": "/tmp/..."}``: the scratch folder belongs to the batch,
    which removes it even when the worker dies), answer each with a result line
    (``{"result": {...}}``) on the original stdout. Anything else printed goes to stderr."""
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # stray prints of libraries cannot corrupt the protocol
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        job = GradeJob.from_dict(message["job"])
        try:
            result = asyncio.run(run_job(job, Path(message["scratch"])))
        finally:
            kill_process_tree(os.getpid(), include_root=False)  # a program left behind
        channel.write(json.dumps({"result": result.to_dict()}, allow_nan=False) + "\n")
        channel.flush()
    return 0


class _WorkerLost(Exception):
    """The worker died, spoke nonsense, or overran the job's watchdog."""


@dataclass(eq=False)
class _Worker:
    """A worker process and the tail of its stderr."""

    process: asyncio.subprocess.Process
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=40))
    drain: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "grading.batch",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches the batch, which stops its workers
            limit=_LINE_LIMIT,
        )
        worker = cls(process)
        worker.drain = asyncio.create_task(worker._drain(), name=f"worker-{process.pid}-stderr")
        return worker

    async def _drain(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.stderr.append(line.decode("utf-8", "replace").rstrip())

    def stderr_tail(self) -> str:
        return "\n".join(self.stderr)[-STDERR_TAIL:]

    async def grade(self, job: GradeJob, scratch: Path) -> ExerciseResult:
        assert self.process.stdin is not None and self.process.stdout is not None
        message = json.dumps({"job": job.to_dict(), "scratch": str(scratch)}, ensure_ascii=False)
        try:
            self.process.stdin.write(message.encode("utf-8") + b"\n")
            await self.process.stdin.drain()
            line = await asyncio.wait_for(self.process.stdout.readline(), job.watchdog_s)
        except TimeoutError:
            raise _WorkerLost(
                f"the grader stopped this submission after {job.watchdog_s:g} s: its lab did "
                f"not finish (time limit {job.wall_limit_s:g} s of wall time)"
            ) from None
        except (ConnectionError, ValueError, asyncio.LimitOverrunError) as err:
            raise _WorkerLost(f"the grading worker broke down: {err}") from None
        if not line:
            status = await self._exit_status()
            raise _WorkerLost(
                f"the grading worker died while grading this submission ({status}); "
                f"a program that kills its grader is treated as a failed submission"
            )
        try:
            return ExerciseResult.from_dict(json.loads(line)["result"])
        except (ValueError, KeyError, TypeError, GradingError) as err:
            raise _WorkerLost(f"the grading worker answered nonsense: {err}") from None

    async def _exit_status(self) -> str:
        try:
            code = await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            return "no answer"
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

    async def kill(self) -> None:
        """Kill the worker and everything it started (its programs first: the worker itself
        is reaped by asyncio, which would otherwise warn about an unknown child)."""
        if self.process.returncode is None:
            await asyncio.to_thread(kill_process_tree, self.process.pid, include_root=False)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()
        if self.drain is not None:
            await self.drain

    async def close(self) -> None:
        """Ask the worker to stop (end of its input); kill it if it does not."""
        if self.process.stdin is not None:
            with contextlib.suppress(ConnectionError):
                self.process.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), 10)
        await self.kill()


# --- many jobs -------------------------------------------------------------------------


async def grade_jobs(
    jobs: Sequence[GradeJob],
    *,
    concurrency: int = 2,
    isolation: Isolation = "process",
    on_start: Callable[[GradeJob], object] | None = None,
    on_done: Callable[[JobOutcome], object] | None = None,
    retries: int = LAB_RETRIES,
) -> list[JobOutcome]:
    """Grade ``jobs``, at most ``concurrency`` at once; outcomes in the order of ``jobs``.

    ``isolation="process"`` (the default) grades in worker processes; ``"inline"`` runs the
    labs in this event loop (for measurements; one misbehaving job can hurt the others).
    ``on_start`` and ``on_done`` are called as jobs start and finish (a progress bar).
    A job whose lab could not start (:func:`lab_failed`: a free port taken by a neighbouring
    lab in the meantime, a broker that did not answer in time) runs again, up to
    ``retries`` times: that is the grader's trouble, not the apprentice's.
    """
    if concurrency < 1:
        raise BatchError(f"concurrency must be at least 1, got {concurrency}")
    gate = asyncio.Semaphore(concurrency)
    idle: list[_Worker] = []
    busy: set[_Worker] = set()

    async def one(job: GradeJob) -> JobOutcome:
        async with gate:
            if on_start is not None:
                on_start(job)
            started = time.monotonic()
            attempts = 0
            while True:
                attempts += 1
                lost: str | None = None
                if isolation == "inline":
                    result = await run_job(job)
                else:
                    result, lost = await _in_worker(job, idle, busy)
                if attempts > retries or not lab_failed(result):
                    break
            outcome = JobOutcome(job, result, time.monotonic() - started, lost, attempts)
            if on_done is not None:
                on_done(outcome)
            return outcome

    try:
        return list(await asyncio.gather(*(one(job) for job in jobs)))
    finally:
        await asyncio.gather(*(w.kill() for w in busy), return_exceptions=True)
        await asyncio.gather(*(w.close() for w in idle), return_exceptions=True)


async def _in_worker(
    job: GradeJob, idle: list[_Worker], busy: set[_Worker]
) -> tuple[ExerciseResult, str | None]:
    started = datetime.now(UTC)
    worker = idle.pop() if idle else await _Worker.start()
    busy.add(worker)
    scratch = Path(tempfile.mkdtemp(prefix="simlab-grade-"))
    try:
        result = await worker.grade(job, scratch)
    except _WorkerLost as lost:
        busy.discard(worker)
        tail = worker.stderr_tail()
        await worker.kill()
        exercise = _try_load(job.exercise_folder)
        reason = str(lost)
        return error_result(job, reason, exercise, started), f"{reason}\n{tail}".strip()
    except BaseException:  # cancelled (Ctrl-C): stop the worker before its folder goes
        busy.discard(worker)
        await worker.kill()
        raise
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, ignore_errors=True)
    busy.discard(worker)
    idle.append(worker)
    return result, None


def _try_load(folder: Path) -> Exercise | None:
    try:
        return load_exercise(folder)
    except ManifestError:
        return None


# --- a class ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassPlan:
    """What :func:`plan_class` found: the jobs, the exercises they need, and notes for the
    grader (missing submissions, folders of apprentices not on the roster)."""

    jobs: list[GradeJob]
    exercises: dict[str, Exercise]
    missing: list[tuple[str, str]]
    strangers: list[str]


def resolve_entries(manifest: Manifest, wanted: Iterable[str] | None) -> list[ManifestEntry]:
    """The manifest entries named by id, folder or number (1-based); all when ``wanted`` is
    None. :class:`BatchError` with a did-you-mean for a name that is no exercise."""
    entries = list(manifest.exercises)
    if wanted is None:
        return entries
    chosen: list[ManifestEntry] = []
    for name in wanted:
        entry = find_entry(manifest, name)
        if entry not in chosen:
            chosen.append(entry)
    return chosen


def find_entry(manifest: Manifest, name: str) -> ManifestEntry:
    """The entry whose id or folder is ``name``, or the ``name``-th (1-based) exercise."""
    entries = list(manifest.exercises)
    for entry in entries:
        if name in (entry.id, entry.folder, Path(entry.folder).name):
            return entry
    if name.isdigit() and 1 <= int(name) <= len(entries):
        return entries[int(name) - 1]
    guess = did_you_mean(name, [e.id for e in entries])
    raise BatchError(
        f"no exercise {name!r} in course {manifest.course.id!r}. "
        f"{guess + ' ' if guess else ''}Exercises: {', '.join(e.id for e in entries)}"
    )


def plan_class(
    manifest: Manifest,
    roster: Sequence[RosterEntry],
    submissions: Path,
    *,
    course_secret: str,
    exercise_ids: Iterable[str] | None = None,
    memory_mb: int | None = DEFAULT_MEMORY_MB,
    time_limit_s: float | None = None,
) -> ClassPlan:
    """Jobs for ``submissions/<apprentice id>/<exercise folder>/`` of every roster apprentice
    and every exercise (or ``exercise_ids``). Exercises are loaded only when someone handed
    them in; one that cannot be loaded is a :class:`BatchError`. ``time_limit_s`` (lab
    seconds) overrides the exercises' limits."""
    if not submissions.is_dir():
        raise BatchError(f"the submissions folder {submissions} does not exist")
    entries = resolve_entries(manifest, exercise_ids)
    on_roster = {entry.id for entry in roster}
    strangers = sorted(
        p.name
        for p in submissions.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name not in on_roster
    )
    jobs: list[GradeJob] = []
    exercises: dict[str, Exercise] = {}
    speeds: dict[str, float] = {}
    missing: list[tuple[str, str]] = []
    for apprentice in roster:
        for entry in entries:
            folder = submissions / apprentice.id / entry.folder
            if not folder.is_dir():
                missing.append((apprentice.id, entry.id))
                continue
            exercise = exercises.get(entry.id) or _load_for_batch(manifest, entry)
            exercises[entry.id] = exercise
            if entry.id not in speeds:
                speeds[entry.id] = _clock_speed(exercise)
            jobs.append(
                GradeJob(
                    exercise_folder=exercise.folder.resolve(),
                    exercise_id=entry.id,
                    apprentice=apprentice.id,
                    submission=folder.resolve(),
                    course_secret=course_secret,
                    time_limit_s=time_limit_s or time_limit_of(exercise, entry),
                    memory_mb=memory_mb,
                    clock_speed=speeds[entry.id],
                )
            )
    return ClassPlan(jobs, exercises, missing, strangers)


def _clock_speed(exercise: Exercise) -> float:
    try:
        return clock_speed(exercise)
    except ManifestError as err:
        raise BatchError(
            f"the scenario of exercise {exercise.id!r} cannot be built, so its submissions "
            f"cannot be graded (run 'simlab lint'):\n{err}"
        ) from None


def _load_for_batch(manifest: Manifest, entry: ManifestEntry) -> Exercise:
    try:
        return load_exercise(manifest.root / entry.folder)
    except ManifestError as err:
        raise BatchError(
            f"exercise {entry.id!r} cannot be loaded, so its submissions cannot be graded "
            f"(run 'simlab lint'):\n{err}"
        ) from None


# --- reports ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_class_reports` wrote, and the result files it could not use."""

    results: list[ExerciseResult]
    gradebook: Path
    junit: Path
    feedback: list[Path]
    rejected: list[str]


def _write(path: Path, text: str) -> None:
    """Write ``text`` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def write_result(
    out: Path, result: ExerciseResult, course_secret: str, *, signing_key: str | None = None
) -> Path:
    """``out/<apprentice>/<exercise>.json``, signed with the grader's ``signing_key`` when
    given, else with the course secret (which every apprentice holds: forgeable)."""
    path = out / result.apprentice / f"{result.exercise}.json"
    _write(path, result_json(result, course_secret, signing_key=signing_key))
    return path


def write_class_reports(
    out: Path,
    manifest: Manifest,
    course_secret: str,
    roster: Sequence[RosterEntry],
    exercises: Mapping[str, Exercise],
    *,
    signing_key: str | None = None,
) -> ReportFiles:
    """From every signed result under ``out/`` (this run's and earlier ones'): each
    apprentice's ``feedback.md``, ``gradebook.csv`` and ``junit.xml``. Files that do not
    verify with ``signing_key`` (when given; else ``course_secret``) are left out and
    listed in ``rejected``."""
    results: list[ExerciseResult] = []
    rejected: list[str] = []
    for path in sorted(out.glob("*/*.json")):
        try:
            result = read_result_json(
                path.read_text(encoding="utf-8"),
                course_secret,
                str(path),
                signing_key=signing_key,
            )
        except (OSError, UnicodeDecodeError, GradingError) as err:
            rejected.append(f"{path}: {err}")
            continue
        results.append(result)
    order = [e.id for e in manifest.exercises]
    results.sort(key=lambda r: (r.apprentice, _rank(order, r.exercise)))
    known = dict(exercises)
    for result in results:
        if result.exercise not in known:
            with contextlib.suppress(KeyError, ManifestError):
                known[result.exercise] = load_exercise(manifest.folder_of(result.exercise))
    graded = [e for e in order if any(r.exercise == e for r in results)]
    klass = ClassResult(manifest.course.id, results, tuple(graded))
    feedback: list[Path] = []
    for apprentice in klass.apprentice_ids():
        own = [r for r in results if r.apprentice == apprentice]
        parts = [feedback_markdown(r, known.get(r.exercise)) for r in own]
        path = out / apprentice / "feedback.md"
        _write(path, "\n---\n\n".join(parts))
        feedback.append(path)
    gradebook = out / "gradebook.csv"
    junit = out / "junit.xml"
    in_book = [known[e] for e in graded if e in known]
    _write(gradebook, gradebook_csv(klass, roster, in_book))
    _write(junit, junit_xml(klass))
    return ReportFiles(results, gradebook, junit, feedback, rejected)


def _rank(order: list[str], exercise: str) -> int:
    return order.index(exercise) if exercise in order else len(order)


if __name__ == "__main__":
    sys.exit(_worker_main())
