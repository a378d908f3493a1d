"""The command line of the course commands: :func:`add_course_commands` adds init, list,
hint, reset, check, lint, grade and verify to ``simlab``'s sub-parsers."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from grading.batch import DEFAULT_MEMORY_MB, LABS_PER_CORE, MB_PER_LAB, default_jobs
from grading.signing import SIGNING_KEY_ENV
from grading.workspace import SECRET_ENV

__all__ = ["DEFAULT_DIR", "add_course_commands"]

DEFAULT_DIR = "simlab-exercises"


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
        "--signing-key",
        metavar="KEY",
        help=f"the grader's own key that signs the results, never handed to apprentices "
        f"(default: ${SIGNING_KEY_ENV}; without one, the course secret signs and every "
        "apprentice could forge a result)",
    )
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
        "--time-limit",
        type=_positive_float,
        metavar="S",
        help="override the exercises' limits (seconds of lab time)",
    )
    grade.add_argument("--course", type=Path, help="the course folder (default: the bundled one)")

    verify = subparsers.add_parser("verify", help="check the signatures of result files")
    verify.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files or folders")
    verify.add_argument(
        "--secret",
        help=f"the course secret (default: ${SECRET_ENV}; not needed with a signing key)",
    )
    verify.add_argument(
        "--signing-key",
        metavar="KEY",
        help=f"the grader's signing key the results were graded with (default: "
        f"${SIGNING_KEY_ENV}); with it, only results signed with it pass",
    )
