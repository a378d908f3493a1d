"""The MQTT explorer screen: topic tree, payloads, Sparkplug decoded."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from simlab.tui.screens.base import LabScreen

__all__ = ["MqttScreen"]


class MqttScreen(LabScreen):
    """topic tree, payloads, Sparkplug decoded (being built)."""

    def compose_body(self) -> ComposeResult:
        yield Static(
            "MQTT explorer: topic tree, payloads, Sparkplug decoded", classes="placeholder"
        )
