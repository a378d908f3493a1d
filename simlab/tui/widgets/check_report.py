"""A check's result, check by check, and the hints taken so far (``simlab check``'s words)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.text import Text
from textual.widgets import Static

from grading.model import CheckResult, ExerciseResult, format_points

__all__ = ["CheckReport"]


class CheckReport(Static):
    """The score, each check with ✓/✗, points, message and the first line of its diagnosis,
    the hint ladder as far as the apprentice climbed it (the last rung highlighted), then
    the long diagnoses in full (a program's stderr), so the overview fits a small screen."""

    def show(
        self,
        result: ExerciseResult | None,
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
            parts.extend(self._result(result))
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
            parts.extend(self._details(result))
        self.update(Group(*parts))

    @staticmethod
    def _result(result: ExerciseResult) -> list[RenderableType]:
        verdict = "passed" if result.passed else "not passed yet"
        lines: list[RenderableType] = [
            Text(
                f"Score {format_points(result.score)}/{format_points(result.max_score)} "
                f"— {verdict}",
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
                    (f"{format_points(check.points)}/{format_points(check.max_points)} ", "bold"),
                    check.title,  # rendered with the variant by the grader
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
    def _details(result: ExerciseResult) -> list[Text]:
        lines: list[Text] = []
        for check in result.checks:
            if _diagnosed(check) and "\n" in check.diagnosis.strip():
                lines.append(Text())
                lines.append(Text(f"✗ {check.title}", style="bold"))
                lines.append(Text(f"diagnosis: {check.diagnosis}", style="dim"))
        return lines


def _diagnosed(check: CheckResult) -> bool:
    return bool(check.diagnosis.strip()) and not check.passed
