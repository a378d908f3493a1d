"""The Modbus poller screen: read a range, decode, write."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from simlab.tui.screens.base import LabScreen

__all__ = ["ModbusScreen"]


class ModbusScreen(LabScreen):
    """read a range, decode, write (being built)."""

    def compose_body(self) -> ComposeResult:
        yield Static("Modbus poller: read a range, decode, write", classes="placeholder")
