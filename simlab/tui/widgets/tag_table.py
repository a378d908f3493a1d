"""The live tag table: every device tag with value, unit, quality, lab time and a sparkline.

The sparkline of a tag summarises each cell by the *mean* of the samples it covers
(Textual's default, the max, would show noise spikes as the signal). A sample is kept
each time the tag's timestamp moves on, so a lab that stands still draws a still line.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.color import Color
from rich.console import RenderableType
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.renderables.sparkline import Sparkline
from textual.widgets import DataTable

from simlab.tui.lineage import format_value

__all__ = ["TagRow", "TagTable"]

HISTORY = 60
"""Samples kept per tag for its sparkline."""
TREND_WIDTH = 10
TAG_WIDTH = 26
_COLUMNS = (("tag", TAG_WIDTH), ("value", 9), ("unit", 5), ("Q", 4), ("lab time", 10))
_QUALITY = {"Good": "Good", "Uncertain": "Unc.", "Bad": "Bad"}
_GREY = Color.from_rgb(128, 128, 128)


@dataclass(frozen=True)
class TagRow:
    """One tag as the lab holds it now."""

    ref: str
    value: float | bool | str
    unit: str
    quality: str
    """``Good``, ``Uncertain`` or ``Bad``."""
    time: float
    """Lab seconds of the value (the device's last scan)."""
    stamp: str
    """``time`` as shown."""


class TagTable(DataTable[RenderableType]):
    """Tags by row (key: ``device.tag``); :meth:`show` updates the cells that changed."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Lineage"),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "tag-table--spark-min",
        "tag-table--spark-max",
        "tag-table--good",
        "tag-table--uncertain",
        "tag-table--bad",
    }

    def __init__(self, refs: Sequence[str], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.refs = list(refs)
        self._history: dict[str, deque[float]] = {ref: deque(maxlen=HISTORY) for ref in refs}
        self._times: dict[str, float] = {}
        self._shown: dict[tuple[str, str], str] = {}

    def on_mount(self) -> None:
        for label, width in _COLUMNS:
            self.add_column(label, width=width, key=label)
        self.add_column("trend", width=TREND_WIDTH, key="trend")
        for ref in self.refs:
            name = Text(ref, no_wrap=True, overflow="ellipsis")
            self.add_row(name, "", "", "", "", "", key=ref)

    @property
    def selected(self) -> str | None:
        """The ``device.tag`` under the cursor."""
        if not self.row_count:
            return None
        return self.refs[self.cursor_row]

    def show(self, rows: Sequence[TagRow]) -> None:
        """Show the tags' current values (cells are updated only when their text changes)."""
        for row in rows:
            value = format_value(row.value)
            quality = row.quality if row.quality in _QUALITY else "Bad"
            style = self.get_component_rich_style(f"tag-table--{quality.lower()}")
            self._set(row.ref, "value", Text(value, justify="right"), value)
            self._set(row.ref, "unit", "" if row.unit == "bool" else row.unit)
            self._set(row.ref, "Q", Text(_QUALITY[quality], style=style), quality)
            self._set(row.ref, "lab time", row.stamp)
            if self._times.get(row.ref) != row.time and not isinstance(row.value, str):
                self._times[row.ref] = row.time
                history = self._history[row.ref]
                history.append(float(row.value))
                if len(history) > 1:
                    self.update_cell(row.ref, "trend", self._sparkline(history))

    def _set(self, ref: str, column: str, cell: RenderableType, text: str | None = None) -> None:
        key = (ref, column)
        shown = text if text is not None else str(cell)
        if self._shown.get(key) != shown:
            self._shown[key] = shown
            self.update_cell(ref, column, cell)

    def _sparkline(self, data: Sequence[float]) -> Sparkline[float]:
        low = self.get_component_rich_style("tag-table--spark-min").color
        high = self.get_component_rich_style("tag-table--spark-max").color
        return Sparkline(
            list(data),
            width=TREND_WIDTH,
            min_color=low or _GREY,
            max_color=high or _GREY,
            summary_function=statistics.fmean,
        )
