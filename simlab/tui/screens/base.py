"""What every tool screen shares: the navigation bar, the footer and a refresh timer."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from simlab.lab import Lab
from simlab.tui.widgets.nav import NavBar

if TYPE_CHECKING:
    from simlab.tui.app import SimlabApp

__all__ = ["LabScreen"]


class LabScreen(Screen[None]):
    """A screen of the running lab.

    Subclasses compose their body in :meth:`compose_body` and update it in
    :meth:`refresh_view`, which runs ``REFRESH_HZ`` times a second while the screen is
    shown (a batched refresh: never per message). Widgets whose text changes between runs
    for reasons other than the lab (ports, wall-clock times, rates) carry the CSS class
    ``volatile`` so snapshot tests can blank them.
    """

    REFRESH_HZ: ClassVar[float] = 5.0

    @property
    def simlab(self) -> SimlabApp:
        """The app (typed)."""
        return cast("SimlabApp", self.app)

    @property
    def lab(self) -> Lab:
        """The running lab (screens are shown only once it runs)."""
        lab = self.simlab.lab
        assert lab is not None, "a lab screen is shown before the lab runs"
        return lab

    def compose(self) -> ComposeResult:
        yield NavBar()
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        """The screen's own widgets."""
        yield from ()

    def on_mount(self) -> None:
        self.set_interval(1 / self.REFRESH_HZ, self._tick, name="refresh")

    def on_screen_resume(self) -> None:
        self._tick()

    def _tick(self) -> None:
        if self.is_current and self.simlab.lab is not None:
            self.refresh_view()

    def refresh_view(self) -> None:
        """Update the widgets from the lab (called at ``REFRESH_HZ`` while shown)."""
