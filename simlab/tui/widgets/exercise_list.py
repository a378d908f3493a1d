"""The course's exercises in order, each with the apprentice's progress."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from grading.manifest import ManifestEntry
from grading.model import format_points
from grading.workspace import ExerciseProgress

__all__ = ["ExerciseList", "score"]

MARKS = {"todo": ("·", "dim"), "failed": ("✗", "red"), "passed": ("✓", "green")}
ID_WIDTH = 18


def score(progress: ExerciseProgress) -> str:
    """``7/10`` (the best score so far), ``–`` before the first check."""
    if progress.best_score is None or progress.max_score is None:
        return "–"
    return f"{format_points(progress.best_score)}/{format_points(progress.max_score)}"


class ExerciseList(OptionList):
    """``▶✓  1 modbus-float  10/10 h1``: the lab's exercise (▶), passed ✓ / tried ✗ / not
    yet ·, the number, the id, the best score and the hints used; option ids are exercise
    ids. Without progress (no workspace) only numbers and ids.

    Enter or a double click selects an exercise (its lab starts); a click only highlights
    it, so reading another brief never restarts the lab by accident."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select", "Start its lab")]

    async def _on_click(self, event: events.Click) -> None:
        event.prevent_default()  # not OptionList's: a single click would select
        clicked: int | None = event.style.meta.get("option")
        if clicked is None:
            return
        self.highlighted = clicked
        if event.chain >= 2:
            self.action_select()

    def show(
        self,
        entries: Sequence[ManifestEntry],
        progress: Mapping[str, ExerciseProgress] | None,
        current: str | None,
    ) -> None:
        """Show ``entries`` (the highlight stays where it is)."""
        prompts = [
            self._prompt(number, entry, progress, current)
            for number, entry in enumerate(entries, start=1)
        ]
        if self.option_count == len(entries):
            for entry, prompt in zip(entries, prompts, strict=True):
                self.replace_option_prompt(entry.id, prompt)
        else:
            self.clear_options()
            self.add_options(
                Option(prompt, id=entry.id) for prompt, entry in zip(prompts, entries, strict=True)
            )
        self.border_title = "Exercises"
        if progress is not None:
            passed = sum(1 for p in progress.values() if p.status == "passed")
            self.border_title = f"Exercises · {passed}/{len(entries)} passed"

    @staticmethod
    def _prompt(
        number: int,
        entry: ManifestEntry,
        progress: Mapping[str, ExerciseProgress] | None,
        current: str | None,
    ) -> Text:
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append("▶" if entry.id == current else " ", style="bold")
        mine = progress.get(entry.id) if progress is not None else None
        mark, style = MARKS[mine.status] if mine is not None else (" ", "")
        line.append(mark, style=style)
        line.append(f"{number:>3} {entry.id:<{ID_WIDTH}}")
        if mine is not None:
            line.append(f" {score(mine):>5}")
            line.append(f" h{mine.hints_used}" if mine.hints_used else "   ", style="yellow")
        return line
