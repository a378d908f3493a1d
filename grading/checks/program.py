"""``program_ran``: the apprentice's program exited 0 within its time limit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from grading.checks._common import Params, outcome
from grading.evidence import Evidence
from grading.model import CheckResult

__all__ = ["check_program_ran", "tail"]

CHECK: Final = "program_ran"
PARAMS: Final = ("time_limit_s",)
TAIL_LINES: Final = 15
TAIL_CHARS: Final = 2000


def tail(text: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last ``lines`` lines of ``text``, at most ``chars`` characters."""
    kept = "\n".join(text.rstrip().splitlines()[-lines:])
    return kept if len(kept) <= chars else "…" + kept[-chars:]


def check_program_ran(
    evidence: Evidence, params: Mapping[str, Any], variant: Mapping[str, Any]
) -> CheckResult:
    """The program exited with status 0 within its time limit (mark it a gate).

    Params: ``time_limit_s`` (default: the run's own limit, ``evidence.program.time_limit_s``).
    """
    p = Params(CHECK, params, PARAMS)
    run = evidence.program
    if run is None:
        return outcome(
            CHECK,
            False,
            "the program was not run",
            diagnosis="no program was found or started: hand in the file the exercise names",
        )
    limit = p.optional_number("time_limit_s") or run.time_limit_s
    facts: dict[str, Any] = {
        "exit_status": run.exit_status,
        "timed_out": run.timed_out,
        "duration_s": run.duration_s,
        "time_limit_s": limit,
        "stderr_tail": tail(run.stderr),
    }
    stderr = tail(run.stderr)
    last_words = f"stderr ends with:\n{stderr}" if stderr else "it wrote nothing on stderr"
    if run.timed_out or (
        limit is not None and run.duration_s is not None and run.duration_s > limit
    ):
        return outcome(
            CHECK,
            False,
            f"the program did not finish within its time limit of {limit or 0:g} s",
            diagnosis=f"end your program when its work is done (no endless loop); {last_words}",
            evidence=facts,
        )
    if run.exit_status is None:
        return outcome(
            CHECK,
            False,
            "the program did not exit by itself (killed or not started)",
            diagnosis=last_words,
            evidence=facts,
        )
    if run.exit_status != 0:
        return outcome(
            CHECK,
            False,
            f"the program exited with status {run.exit_status}",
            diagnosis=last_words,
            evidence=facts,
        )
    took = f" in {run.duration_s:.1f} s" if run.duration_s is not None else ""
    return outcome(CHECK, True, f"the program exited with status 0{took}", evidence=facts)
