"""The navigation bar: the tools of the UI, their keys, the current one highlighted."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.widgets import Static

if TYPE_CHECKING:
    from simlab.tui.app import SimlabApp

__all__ = ["NavBar"]


class NavBar(Static):
    """``1 Exercises  2 Plant  3 OPC UA ...`` with the shown screen highlighted."""

    def on_mount(self) -> None:
        self.update(self.render_bar())

    def render_bar(self) -> Text:
        app = cast("SimlabApp", self.app)
        current = app.current_mode
        bar = Text(no_wrap=True, overflow="ellipsis")
        for entry in app.screens:
            style = "bold reverse" if entry.mode == current else ""
            bar.append(f" {entry.key} ", style="bold")
            bar.append(entry.title, style=style)
            bar.append(" ")
        return bar
