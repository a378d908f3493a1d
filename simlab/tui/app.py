"""The simlab terminal UI: one Textual app, one screen (mode) per tool of the trade.

The app paints at once (a starting screen) and starts the lab in a worker on its own event
loop, so the endpoints, the bus and the platform run beside the UI; screens refresh on
timers at a few hertz (never per message) and do network and grading work in workers.
Quitting stops the lab cleanly (endpoints closed, the gateway's death sent) before exit.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import Worker

if TYPE_CHECKING:
    from simlab.lab import Lab

from simlab.errors import SimlabError
from simlab.tui.plan import LabPlan
from simlab.tui.screens.help import HelpScreen
from simlab.tui.screens.starting import StartingScreen

__all__ = ["SCREENS", "ScreenEntry", "SimlabApp"]


@dataclass(frozen=True)
class ScreenEntry:
    """One tool of the UI: its mode name, key, title and screen class (``module:Class``
    under :mod:`simlab.tui.screens`, imported when first shown: the protocol stacks
    behind the screens would otherwise delay the first paint by seconds)."""

    mode: str
    key: str
    title: str
    screen: str
    instructor_only: bool = False

    def make(self) -> Screen[None]:
        """A new instance of the screen."""
        module, name = self.screen.split(":")
        screen_class = getattr(import_module(f"simlab.tui.screens.{module}"), name)
        return cast("Screen[None]", screen_class())


SCREENS: tuple[ScreenEntry, ...] = (
    ScreenEntry("exercises", "1", "Exercises", "exercises:ExercisesScreen"),
    ScreenEntry("plant", "2", "Plant", "plant:PlantScreen"),
    ScreenEntry("opcua", "3", "OPC UA", "opcua:OpcUaScreen"),
    ScreenEntry("modbus", "4", "Modbus", "modbus:ModbusScreen"),
    ScreenEntry("mqtt", "5", "MQTT", "mqtt:MqttScreen"),
    ScreenEntry("platform", "6", "Platform", "platform:PlatformScreen"),
    ScreenEntry("instructor", "7", "Instructor", "instructor:InstructorScreen", True),
)


class SimlabApp(App[int]):
    """The apprentice's workbench on one lab (see the module docstring)."""

    TITLE = "simlab"
    CSS_PATH = "app.tcss"
    MODES: ClassVar[dict[str, Callable[[], Screen[None]]]] = {  # type: ignore[assignment]
        s.mode: s.make for s in SCREENS
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(s.key, f"open('{s.mode}')", s.title, show=False, priority=False)
            for s in SCREENS
        ),
        Binding("question_mark,f1", "help", "Help"),
        Binding("q", "quit", "Quit"),  # not in a text field: "q" is a letter there
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, plan: LabPlan) -> None:
        super().__init__()
        self.plan = plan
        self.lab: Lab | None = None
        """The running lab (set once :meth:`wait_ready` returns)."""
        self.lab_error: str | None = None
        """Why the lab could not start (the starting screen shows it)."""
        self._lab_ready = asyncio.Event()
        self._lab_stop = asyncio.Event()
        self._lab_runner: Worker[None] | None = None
        self.sub_title = plan.scenario.title

    # --- the lab ------------------------------------------------------------------------

    @property
    def screens(self) -> list[ScreenEntry]:
        """The screens this user sees (the instructor's only in instructor mode)."""
        return [s for s in SCREENS if self.plan.instructor or not s.instructor_only]

    def on_mount(self) -> None:
        self.add_mode("starting", StartingScreen)
        self.switch_mode("starting")
        self._lab_runner = self.run_worker(self._run_lab(), name="lab", exit_on_error=False)

    async def _run_lab(self) -> None:
        try:
            async with self.plan.build() as lab:
                self.lab = lab
                # The UI allocates steadily, so full collections come often, and each one
                # walked the lab's ~550k long-lived objects (OPC UA address space, stacks):
                # a 150-200 ms stall of the PLC scan. Frozen, they are never walked again.
                gc.freeze()
                self._lab_ready.set()
                first = "exercises" if self.plan.workspace is not None else "plant"
                self.switch_mode(first)
                await self._lab_stop.wait()
        except SimlabError as err:
            self.lab_error = str(err)
            self.screen.refresh(recompose=True)
        except OSError as err:
            self.lab_error = f"the lab could not start: {err}"
            self.screen.refresh(recompose=True)
        finally:
            self.lab = None
            gc.unfreeze()  # the stopped lab's objects may be collected again

    def restart(self, plan: LabPlan) -> None:
        """Stop this lab and start ``plan``'s (another exercise): every tool starts afresh.

        Runs in an app worker: a screen that asks for it is removed on the way."""
        self.run_worker(self._restart(plan), name="restart", exclusive=True, group="restart")

    async def _restart(self, plan: LabPlan) -> None:
        self._lab_stop.set()
        if self._lab_runner is not None:
            await self._lab_runner.wait()
        await self.switch_mode("starting")
        for entry in SCREENS:
            await self.remove_mode(entry.mode)
            self.add_mode(entry.mode, entry.make)
        self.plan, self.lab_error = plan, None
        self._lab_ready, self._lab_stop = asyncio.Event(), asyncio.Event()
        self.sub_title = plan.scenario.title
        await self.screen.recompose()
        self._lab_runner = self.run_worker(self._run_lab(), name="lab", exit_on_error=False)

    async def wait_ready(self, timeout: float = 60.0) -> Lab:
        """The running lab, once started (tests and workers wait for it)."""
        await asyncio.wait_for(self._lab_ready.wait(), timeout)
        assert self.lab is not None
        return self.lab

    @property
    def state_dir(self) -> Path | None:
        """Where the running lab keeps its state."""
        return self.lab.state_dir if self.lab is not None else None

    # --- actions ------------------------------------------------------------------------

    def action_open(self, mode: str) -> None:
        """Show one tool's screen (once the lab runs)."""
        if self.lab is None or mode not in {s.mode for s in self.screens}:
            return
        self.switch_mode(mode)

    async def on_exit_app(self) -> None:
        """However the app exits (``q``, :meth:`exit` from a test harness), stop the lab
        first: a lab torn down by cancellation while the loop closes can hang."""
        self._lab_stop.set()
        if self._lab_runner is not None:
            await self._lab_runner.wait()

    def action_help(self) -> None:
        """Show the keys and what each screen does."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """Stop the lab cleanly (:meth:`on_exit_app`), then leave."""
        self.exit(0)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for entry in self.screens:
            yield SystemCommand(
                f"Open {entry.title}",
                f"Go to the {entry.title} screen (key {entry.key})",
                lambda mode=entry.mode: self.action_open(mode),
            )
        tool = next((e.title for e in SCREENS if e.mode == self.current_mode), "")
        for active in screen.active_bindings.values():  # the shown tool's own actions
            binding = active.binding
            if active.node is screen and binding.description and active.enabled:
                yield SystemCommand(
                    binding.description,
                    f"{tool}: key {binding.key_display or binding.key}",
                    partial(screen.run_action, binding.action),
                )
