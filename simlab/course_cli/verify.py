"""``verify FILE...``: check the signatures of result files (an edited one is named)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from rich.text import Text

from grading.model import ExerciseResult, ResultFormatError
from grading.signing import verify_result
from simlab.course_cli.common import course_secret, err, out, points
from simlab.errors import SimlabError

__all__ = ["run_verify"]


def _result_files(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.rglob("*.json")))
        else:
            files.append(path)
    return files


def run_verify(args: argparse.Namespace) -> int:
    secret = course_secret(args.secret)
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
            f"{points(result.score)}/{points(result.max_score)}"
        )
    )
    return None
