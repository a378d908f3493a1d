"""The lineage panel: one tag's value at every hop from plant to platform, and how it changes.

Each hop takes two lines: the stage, where the value sits there (signal, tag, Modbus
reference, NodeId, topic, historian row) and the value; under it, how the value was made
(sensor, register decoding, status and timestamps) or why the hop does not exist. The
endpoints the probe talks to sit on a line of their own (ports change between runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from simlab.tui.lineage import Hop

__all__ = ["LineageView"]

STAGE_WIDTH = 8


class LineageView(Vertical):
    """The lineage of the tag :meth:`show` was last given."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "lineage--stage",
        "lineage--value",
        "lineage--note",
        "lineage--absent",
        "lineage--waiting",
        "lineage--error",
    }

    _endpoints: str = ""
    """The endpoints line as last set (it changes with the tag only)."""

    def compose(self) -> ComposeResult:
        yield Static(id="lineage-hops")
        yield Static(id="lineage-endpoints", classes="volatile")

    def show(self, ref: str, lines: Sequence[Hop], endpoints: str) -> None:
        """Show ``lines``, the lineage of ``ref``, read through ``endpoints``."""
        self.border_title = f"Lineage of {ref}"
        hops = self.query_one("#lineage-hops", Static)
        width = hops.content_size.width or 76
        hops.update(self.render_hops(lines, width))
        if endpoints != self._endpoints:  # set once per tag: tests blank it for snapshots
            self._endpoints = endpoints
            self.query_one("#lineage-endpoints", Static).update(endpoints)

    def render_hops(self, lines: Sequence[Hop], width: int) -> Text:
        """The hops, ``width`` cells wide: stage, where and value; under them how or why."""
        style = self.get_component_rich_style
        indent = STAGE_WIDTH + 1
        text = Text(no_wrap=True, overflow="ellipsis")
        for hop in lines:
            text.append(f"{hop.stage:<{indent}}", style=style("lineage--stage"))
            if hop.state == "absent":
                text.append(_fit(f"— {hop.note}", width - indent), style=style("lineage--absent"))
                text.append("\n")
                continue
            value_style = style("lineage--value")
            if hop.state != "ok":
                value_style += style(f"lineage--{hop.state}")
            room = max(width - indent - len(hop.value) - 1, 1)
            text.append(f"{_fit(hop.where, room):<{room}} ")
            text.append(hop.value, style=value_style)
            text.append("\n" + " " * indent)
            text.append(_fit(hop.note, width - indent), style=style("lineage--note"))
            text.append("\n")
        text.rstrip()
        return text


def _fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells with an ellipsis."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"
