"""A tag's history as a line chart (plotext): bucket averages over the last minutes.

The x axis is minutes of lab time before now (``-15 … 0``), so the chart reads the same
whatever the date of the scenario; the y axis is in the tag's unit.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual_plotext import PlotextPlot

__all__ = ["HistoryChart"]


class HistoryChart(PlotextPlot):
    """Points ``(minutes before now, value)`` joined by a line; empty without points."""

    def show(self, points: Sequence[tuple[float, float]], span_minutes: float) -> None:
        """Draw ``points`` on an x axis from ``-span_minutes`` to 0."""
        plt = self.plt
        plt.clear_data()
        plt.xlim(-span_minutes, 0)
        ticks = [-span_minutes * k / 3 for k in (3, 2, 1, 0)]
        plt.xticks(ticks, [f"{t:g} min" if t else "now" for t in ticks])
        if points:
            plt.plot([x for x, _ in points], [y for _, y in points], marker="braille")
            if len(points) == 1:  # one point draws no line: mark it
                plt.scatter([points[0][0]], [points[0][1]], marker="●")
        self.refresh()
