"""Batch grading of a class: 30 submissions of the Modbus gateway exercise (goal < 5 min).

Copies the reference solution of ``exercises/07-modbus-gateway`` for 30 apprentices, a few
of them (``--wrong``) with the word order decoded wrongly, then grades the class as
``simlab grade`` does (plan, parallel labs in worker processes, signed results, feedback,
gradebook, JUnit) and prints the wall time, the CPU time, the peak memory of the whole
process tree (sampled every 0.5 s: the grader, its workers and the apprentices' programs)
and whether every submission got the verdict it deserves. Each gateway runs until the
exercise's time limit (90 s of lab time: 30 wall seconds at the lab's clock speed 3), so the
wall time is set by how many labs run at once.

Run: ``.venv/bin/python benchmarks/batch_grading.py [--jobs N] [--count 30] [--wrong 4]
[--isolation process|inline]``
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from grading.batch import (
    default_jobs,
    describe,
    grade_jobs,
    plan_class,
    write_class_reports,
    write_result,
)
from grading.manifest import load_manifest
from grading.reports import read_roster

try:
    psutil: Any = importlib.import_module("psutil")  # comes with amqtt
except ImportError:  # pragma: no cover
    psutil = None

COURSE = Path(__file__).resolve().parents[1] / "exercises"
FOLDER = "07-modbus-gateway"
SECRET = "benchmark-secret"
WRONG = (
    "BYTE_POSITIONS[word_order]",
    'BYTE_POSITIONS["DCBA" if word_order == "ABCD" else "ABCD"]',
)


def make_class(root: Path, count: int, wrong: int) -> tuple[Path, Path, set[str]]:
    """``count`` submissions of the solution; every ``count // wrong``-th decodes wrongly."""
    solution = (COURSE / FOLDER / "solution" / "gateway.py").read_text(encoding="utf-8")
    assert WRONG[0] in solution, "the solution no longer looks up BYTE_POSITIONS[word_order]"
    broken = solution.replace(WRONG[0], WRONG[1])
    step = max(1, count // wrong) if wrong else count + 1
    submissions = root / "submissions"
    lines = ["id,name"]
    wrong_ids: set[str] = set()
    for number in range(1, count + 1):
        apprentice = f"app{number:02d}"
        lines.append(f"{apprentice},Apprentice {number}")
        is_wrong = wrong > 0 and number % step == 0 and len(wrong_ids) < wrong
        folder = submissions / apprentice / FOLDER
        folder.mkdir(parents=True)
        (folder / "gateway.py").write_text(broken if is_wrong else solution, encoding="utf-8")
        if is_wrong:
            wrong_ids.add(apprentice)
    roster = root / "roster.csv"
    roster.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return submissions, roster, wrong_ids


class TreeMemory:
    """Peak of the summed RSS of this process and all its descendants, sampled."""

    def __init__(self, every: float = 0.5) -> None:
        self.every = every
        self.peak = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        if psutil is None:
            return
        me = psutil.Process(os.getpid())
        while not self._stop.wait(self.every):
            total, processes = 0, 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                    processes += 1
                except psutil.Error:
                    continue
            if total > self.peak:
                self.peak, self.peak_processes = total, processes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="labs at once")
    parser.add_argument("--count", type=int, default=30, help="submissions")
    parser.add_argument("--wrong", type=int, default=4, help="of them with a wrong word order")
    parser.add_argument("--isolation", choices=("process", "inline"), default="process")
    args = parser.parse_args()
    if not (COURSE / FOLDER / "exercise.yaml").is_file():
        sys.exit(f"{COURSE / FOLDER} does not exist yet: nothing to benchmark")

    manifest = load_manifest(COURSE)
    with tempfile.TemporaryDirectory(prefix="simlab-bench-") as scratch:
        root = Path(scratch)
        submissions, roster_path, wrong_ids = make_class(root, args.count, args.wrong)
        roster = read_roster(roster_path.read_text(encoding="utf-8"))
        plan = plan_class(
            manifest,
            roster,
            submissions,
            course_secret=SECRET,
            exercise_ids=["modbus-gateway"],
        )
        out = root / "out"
        job = plan.jobs[0]
        print(
            f"grading {len(plan.jobs)} gateway submissions ({len(wrong_ids)} with a wrong word "
            f"order), time limit {job.time_limit_s:g} s of lab time ({job.wall_limit_s:g} s "
            f"at clock speed {job.clock_speed:g}), {args.jobs} labs at once, "
            f"{args.isolation} isolation, {os.cpu_count()} CPU cores",
            flush=True,
        )
        started = time.monotonic()
        cpu_started = os.times()
        with TreeMemory() as memory:
            outcomes = asyncio.run(
                grade_jobs(
                    plan.jobs,
                    concurrency=args.jobs,
                    isolation=args.isolation,
                    on_done=lambda o: write_result(out, o.result, SECRET),
                )
            )
            write_class_reports(out, manifest, SECRET, roster, plan.exercises)
        wall = time.monotonic() - started
        cpu = os.times()
    cpu_s = sum(cpu[:4]) - sum(cpu_started[:4])
    exercise = plan.exercises["modbus-gateway"]
    right = 0
    surprises: list[str] = []
    for outcome in outcomes:
        result = outcome.result
        expected = outcome.job.apprentice not in wrong_ids
        if result.passed == expected:
            right += 1
        else:
            failed = [f"{c.check_id}: {c.message}" for c in result.checks if not c.passed]
            surprises.append(
                f"  {result.apprentice}: {describe(result, exercise)}, "
                f"{result.score:g}/{result.max_score:g} {failed}"
            )
    walls = [o.wall_s for o in outcomes]
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figures: dict[str, Any] = {
        "wall time": f"{wall:.0f} s ({wall / 60:.1f} min; goal < 5 min)",
        "CPU time (grader + workers + programs)": f"{cpu_s:.0f} s",
        "per submission (wall)": f"min {min(walls):.0f} s, median "
        f"{statistics.median(walls):.0f} s, max {max(walls):.0f} s",
        "peak memory, whole process tree": f"{memory.peak / 2**20:.0f} MB "
        f"({memory.peak_processes} processes)"
        if psutil is not None
        else "psutil missing",
        "max RSS: grader / largest child": f"{self_rss:.0f} MB / {child_rss:.0f} MB",
        "verdicts as expected": f"{right} of {len(outcomes)}",
    }
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if surprises:
        print("unexpected verdicts:")
        print("\n".join(surprises))


if __name__ == "__main__":
    main()
