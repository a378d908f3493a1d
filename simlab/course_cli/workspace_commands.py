"""The apprentice's workspace: ``init``, ``list``, ``hint`` and ``reset``."""

from __future__ import annotations

import argparse
import getpass
import os

from rich.table import Table
from rich.text import Text

from grading.model import format_points
from grading.workspace import SECRET_ENV, init_workspace
from simlab.course_cli.common import course_root, out, workspace_of
from simlab.errors import SimlabError

__all__ = ["run_hint", "run_init", "run_list", "run_reset"]


def run_init(args: argparse.Namespace) -> int:
    apprentice = args.apprentice or os.environ.get("USER") or _login()
    if not apprentice:
        raise SimlabError("who are you? give your apprentice id with --apprentice ID")
    workspace = init_workspace(
        args.dir,
        course_root=course_root(args.course),
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


def run_list(args: argparse.Namespace) -> int:
    workspace = workspace_of(args)
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
            f"{format_points(mine.best_score)}/{format_points(mine.max_score)}"
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


def run_hint(args: argparse.Namespace) -> int:
    workspace = workspace_of(args)
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


def run_reset(args: argparse.Namespace) -> int:
    workspace = workspace_of(args)
    entry = workspace.entry(args.exercise)
    restored = workspace.reset(entry)
    out.print(Text(f"Restored {entry.id} ({workspace.folder(entry).name}):"))
    for path in restored:
        out.print(Text(f"  {path.relative_to(workspace.root)}"))
    return 0
