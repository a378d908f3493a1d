"""Grading a batch of labs (``lint``, ``grade``) in worker processes, with a progress bar
and a line per finished lab."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from grading.batch import GradeJob, JobOutcome, grade_jobs
from grading.model import format_points
from simlab.course_cli.common import out

__all__ = ["Interrupted", "grade_with_progress"]


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


class Interrupted(Exception):
    """Ctrl-C during a batch: how many jobs had finished."""

    def __init__(self, done: int) -> None:
        super().__init__(done)
        self.done = done


def grade_with_progress(
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
                    f"{format_points(result.score)}/{format_points(result.max_score)} "
                    f"in {outcome.wall_s:.0f} s{retried}",
                )
            )

        try:
            return asyncio.run(grade_jobs(jobs, concurrency=concurrency, on_done=finished))
        except KeyboardInterrupt:
            raise Interrupted(int(progress.tasks[0].completed)) from None
