"""A check's result, check by check, and the hints taken so far (``simlab check``'s words)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.text import Text
from textual.widgets import Static

from grading.model import CheckResult, ExerciseResult
from grading.variants import VariantError, render_brief
from simlab.tui.widgets.exercise_list import points

__all__ = ["CheckReport"]


def _rendered(text: str, variant: Mapping[str, Any]) -> str:
    with contextlib.suppress(VariantError):
        return render_brief(text, variant, "title")
    return text


class CheckReport(Static):
    """The score, each check with ✓/✗, points, message and the first line of its diagnosis,
    the hint ladder as far as the apprentice climbed it (the last rung highlighted), then
    the long diagnoses in full (a program's stderr), so the overview fits a small screen."""

    def show(
        self,
        result: ExerciseResult | None,
        variant: Mapping[str, Any],
        hints: Sequence[str],
        total_hints: int,
    ) -> None:
        """Show ``result`` (None: not checked in this session) and the ``hints`` taken."""
        parts: list[RenderableType] = []
        if result is None:
            parts.append(
                Text(
                    "Not checked in this session. c grades your files in a lab of their own, "
                    "like 'simlab check', and records the result.",
                    style="dim",
                )
            )
        else:
            parts.extend(self._result(result, variant))
        parts.append(Text())
        if hints:
            for rung, text in enumerate(hints, start=1):
                style = "yellow" if rung == len(hints) else "dim"
                parts.append(Text(f"Hint {rung}/{total_hints}: {text}", style=style))
            if len(hints) < total_hints:
                parts.append(Text("Still stuck? h gives the next one.", style="dim"))
        elif total_hints:
            parts.append(
                Text(f"Stuck? h gives a hint ({total_hints} rungs; they are recorded).", "dim")
            )
        if result is not None:
            parts.extend(self._details(result, variant))
        self.update(Group(*parts))

    @staticmethod
    def _result(result: ExerciseResult, variant: Mapping[str, Any]) -> list[RenderableType]:
        verdict = "passed" if result.passed else "not passed yet"
        lines: list[RenderableType] = [
            Text(
                f"Score {points(result.score)}/{points(result.max_score)} — {verdict}",
                style="bold green" if result.passed else "bold",
            )
        ]
        if result.passed:
            lines.append(Text("Passed! On to the next one.", style="bold green"))
        if result.error is not None:
            lines.append(Text(f"The submission did not run to the end: {result.error}", "red"))
        if result.gate_reason is not None:
            lines.append(Text(f"Score 0 because a gate failed: {result.gate_reason}", "red"))
        for check in result.checks:
            mark = Text("✓ ", style="green") if check.passed else Text("✗ ", style="red")
            lines.append(
                Text.assemble(
                    mark,
                    (f"{points(check.points)}/{points(check.max_points)} ", "bold"),
                    _rendered(check.title, variant),
                    (" (gate)" if check.gate else ""),
                )
            )
            if check.message:
                lines.append(Padding(Text(check.message), (0, 0, 0, 4)))
            if _diagnosed(check):
                first, *rest = check.diagnosis.splitlines()
                more = " (in full below)" if rest else ""
                lines.append(Padding(Text(f"diagnosis: {first}{more}", "dim"), (0, 0, 0, 4)))
        return lines

    @staticmethod
    def _details(result: ExerciseResult, variant: Mapping[str, Any]) -> list[Text]:
        lines: list[Text] = []
        for check in result.checks:
            if _diagnosed(check) and "\n" in check.diagnosis.strip():
                lines.append(Text())
                lines.append(Text(f"✗ {_rendered(check.title, variant)}", style="bold"))
                lines.append(Text(f"diagnosis: {check.diagnosis}", style="dim"))
        return lines


def _diagnosed(check: CheckResult) -> bool:
    return bool(check.diagnosis.strip()) and not check.passed
