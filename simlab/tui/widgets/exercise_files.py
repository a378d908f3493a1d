"""An exercise's files in the workspace and the variables its program gets from a lab."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

__all__ = ["ExerciseFiles", "export_lines"]


class ExerciseFiles(Static):
    """``Your files in <folder>``, then the variables that point a program at the lab this
    UI runs, with the file that sets them (or how to get them: start the exercise's lab)."""

    def show(
        self,
        folder: Path,
        files: Sequence[str],
        environment: Mapping[str, str] | None,
        env_file: Path | None,
    ) -> None:
        """Show ``files`` of ``folder`` and ``environment`` (None: not this lab's exercise)
        with ``env_file``, the shell file that exports it."""
        parts: list[RenderableType] = [Text(f"Your files in {folder}:", style="bold")]
        if folder.is_dir():
            parts.extend(Text(f"  {name}") for name in files)
        else:
            parts.append(
                Text(
                    f"  the folder is missing: put the starter back with "
                    f"'simlab reset {folder.name}'",
                    style="red",
                )
            )
        parts.append(Text())
        if environment is None:
            parts.append(
                Text(
                    "Enter starts this exercise's lab; the variables that point your program "
                    "at it show here then.",
                    style="dim",
                )
            )
        else:
            parts.append(
                Text(
                    "Check runs your program in a lab of its own, on other ports. To run it "
                    "yourself against this lab (and watch it with the tools 2–6), in your "
                    "folder:",
                    style="bold",
                )
            )
            if env_file is not None:
                parts.append(Text(f"source {shlex.quote(str(env_file))}", style="cyan"))
            table = Table.grid(padding=(0, 1))
            table.add_column(no_wrap=True)
            table.add_column(overflow="fold")
            for name, value in environment.items():
                table.add_row(name, value)
            parts.append(table)
        self.update(Group(*parts))


def export_lines(environment: Mapping[str, str]) -> str:
    """A shell file that exports ``environment`` (``source`` it)."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in environment.items())
