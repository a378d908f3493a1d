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

One module per job: :mod:`~simlab.course_cli.parser` (the command line),
:mod:`~simlab.course_cli.workspace_commands` (init, list, hint, reset),
:mod:`~simlab.course_cli.check`, :mod:`~simlab.course_cli.lint`,
:mod:`~simlab.course_cli.grade`, :mod:`~simlab.course_cli.verify`;
:mod:`~simlab.course_cli.batch_progress` runs a batch of labs with a progress bar and
:mod:`~simlab.course_cli.common` holds the consoles and what the arguments name.

``lint`` grades the starter and the solution of every exercise for N random apprentices
(ids ``lint-xxxxxx``, repeatable with ``--seed``); YAML and JSON files of a solution are
templates rendered with the apprentice's variant (reference answers depend on it). ``grade``
and ``lint`` run each lab in a worker process (see :mod:`grading.batch`), ``check`` runs its
lab in this process, on the workspace's folder itself, and keeps it up for the exercise's
whole time limit (the apprentice may look at it with their own tools). Time limits are lab
time (:mod:`grading.horizon`).

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
from collections.abc import Callable, Sequence

from simlab.course_cli.check import check_once, print_result, run_check, watch_folder
from simlab.course_cli.common import err
from simlab.course_cli.grade import run_grade
from simlab.course_cli.lint import run_lint
from simlab.course_cli.parser import add_course_commands
from simlab.course_cli.verify import run_verify
from simlab.course_cli.workspace_commands import run_hint, run_init, run_list, run_reset
from simlab.errors import FileProblems, SimlabError

__all__ = [
    "COMMANDS",
    "add_course_commands",
    "check_once",
    "main",
    "print_result",
    "run_course_command",
    "watch_folder",
]

COMMANDS = ("init", "list", "hint", "reset", "check", "lint", "grade", "verify")

_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "init": run_init,
    "list": run_list,
    "hint": run_hint,
    "reset": run_reset,
    "check": run_check,
    "lint": run_lint,
    "grade": run_grade,
    "verify": run_verify,
}


def run_course_command(args: argparse.Namespace) -> int | None:
    """Run the command in ``args``; None when ``args.command`` is not a course command."""
    handler = _HANDLERS.get(getattr(args, "command", None) or "")
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
