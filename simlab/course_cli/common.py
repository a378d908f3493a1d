"""What the course commands share: the consoles, the exit status of an interrupted command,
and what the arguments name (the workspace, the course, the course secret, the grader's
signing key)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console

from grading.signing import SIGNING_KEY_ENV
from grading.workspace import SECRET_ENV, Workspace, default_course_root, find_workspace
from simlab.errors import SimlabError

__all__ = [
    "INTERRUPTED",
    "course_root",
    "course_secret",
    "err",
    "out",
    "signing_key",
    "workspace_of",
]

INTERRUPTED = 130  # the shell's status for Ctrl-C

# soft_wrap: a long line (a path, a message) stays one line, for people and for tools
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def workspace_of(args: argparse.Namespace) -> Workspace:
    given: Path | None = getattr(args, "workspace", None)
    if given is not None:
        return Workspace.load(given)
    return find_workspace(Path.cwd())


def course_secret(given: str | None) -> str:
    secret = given or os.environ.get(SECRET_ENV, "")
    if not secret:
        raise SimlabError(
            f"no course secret: pass --secret SECRET or set {SECRET_ENV} "
            "(the one the class's variants and signatures are made with)"
        )
    return secret


def signing_key(given: str | None) -> str | None:
    """The grader's signing key: ``--signing-key``, else ``$SIMLAB_SIGNING_KEY``, else None
    (an empty variable counts as unset; an empty ``--signing-key`` is a mistake)."""
    if given is not None:
        if not given:
            raise SimlabError(
                f"--signing-key is empty: give the grader's signing key (or set {SIGNING_KEY_ENV})"
            )
        return given
    return os.environ.get(SIGNING_KEY_ENV) or None


def course_root(given: Path | None) -> Path:
    root = given or default_course_root()
    if not (root / "manifest.yaml").is_file() and not root.is_file():
        raise SimlabError(f"no course at {root} (no manifest.yaml): give one with --course DIR")
    return root
