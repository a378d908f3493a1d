"""``verify FILE...``: check the signatures of result files (an edited one is named, and so
is one signed with the course secret only when the grader's signing key is given)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from rich.text import Text

from grading.model import ExerciseResult, ResultFormatError, format_points
from grading.signing import SIGNING_KEY_ENV, signed_with, verify_result
from simlab.course_cli.common import course_secret, err, out, signing_key
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
    key = signing_key(args.signing_key)
    secret = course_secret(args.secret) if key is None else None  # a key needs no secret
    bad = 0
    forgeable = 0
    files = _result_files(args.files)
    if not files:
        raise SimlabError("no result files (*.json) found in the folders given")
    for path in files:
        problem, kind = _verify_one(path, secret, key)
        if problem is None:
            forgeable += kind == "course-secret"
            continue
        bad += 1
        err.print(Text(f"{path}: {problem}", style="red"))
    if forgeable:
        err.print(
            Text(
                f"warning: {forgeable} file(s) signed with the course secret only: anyone with "
                f"the course secret (every apprentice) could have made them; grade with "
                f"--signing-key (or {SIGNING_KEY_ENV})",
                style="yellow",
            )
        )
    if bad:
        err.print(f"verify: {bad} of {len(files)} file(s) failed", markup=False)
        return 1
    out.print(f"verify: {len(files)} file(s) ok", markup=False)
    return 0


def _mismatch(kind: str | None, key: str | None) -> str:
    """Why a signature does not verify, from the kind of key it claims."""
    if key is not None and kind == "course-secret":
        return (
            "signed with the course secret: anyone with the course secret (every apprentice) "
            "could have made this; grade with --signing-key"
        )
    if key is None and kind == "signing-key":
        return (
            "signed with a grader's signing key: verify it with --signing-key KEY "
            f"(or {SIGNING_KEY_ENV})"
        )
    other = "signing key" if key is not None else "course secret"
    return (
        "the signature does not match: the file was edited after grading "
        f"(or signed with another {other})"
    )


def _verify_one(path: Path, secret: str | None, key: str | None) -> tuple[str | None, str | None]:
    """(None, the kind of key) when ``path`` is a genuine result (printed), else (what is
    wrong with it, None)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no such file", None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"not a result file: {error}", None
    if not isinstance(data, dict):
        return "not a result file: not a JSON object", None
    kind = signed_with(data)
    if not verify_result(data, secret, signing_key=key):
        return _mismatch(kind, key), None
    try:
        result = ExerciseResult.from_dict(data, str(path))
    except ResultFormatError as error:
        return str(error), None
    out.print(
        Text(
            f"{path}: ok — {result.apprentice}, {result.exercise}, "
            f"{format_points(result.score)}/{format_points(result.max_score)}"
        )
    )
    return None, kind
