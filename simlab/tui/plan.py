"""What lab the terminal UI runs, and for whom: a :class:`LabPlan`.

The UI paints first and starts the lab afterwards (in :class:`~simlab.tui.app.SimlabApp`),
so the plan is the cheap, validated description of that lab: the scenario (for an
exercise, its scenario with the apprentice's variant), the clock and where the endpoints
listen. Tests plan a virtual-clock lab on free ports; apprentices a real-time one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simlab.clock import RealTimeClock, VirtualClock

if TYPE_CHECKING:  # imported when used: the UI paints before numpy and the graders load
    from grading.manifest import Exercise, ManifestEntry
    from grading.workspace import Workspace
    from simlab.lab import Lab
    from simlab.scenario.model import Scenario

__all__ = ["ExerciseContext", "LabPlan"]


@dataclass(frozen=True)
class ExerciseContext:
    """The apprentice's exercise the lab was built for."""

    workspace: Workspace
    entry: ManifestEntry
    exercise: Exercise
    variant: dict[str, Any]

    @classmethod
    def of(cls, workspace: Workspace, entry: ManifestEntry) -> ExerciseContext:
        """Load ``entry`` of ``workspace`` with the apprentice's variant."""
        exercise = workspace.exercise(entry)
        return cls(workspace, entry, exercise, workspace.variant(exercise))


@dataclass(frozen=True)
class LabPlan:
    """A lab to start: scenario, clock and endpoints (see :class:`~simlab.lab.Lab`)."""

    scenario: Scenario
    seed: int | None = None
    speed: float | None = None
    """Simulated seconds per wall second; ``None``: the scenario's."""
    virtual: bool = False
    """A virtual clock: the lab stands still unless stepped (deterministic snapshots)."""
    serve: bool = True
    host: str = "127.0.0.1"
    port_offset: int = 0
    auto_ports: bool = False
    state_dir: Path | None = None
    broker: str | None = "auto"
    """``auto``, ``embedded``, a URL, or ``None`` for no IT side."""
    api_host: str = "127.0.0.1"
    api_port: int = 0
    workspace: Workspace | None = None
    exercise: ExerciseContext | None = None
    instructor: bool = False
    """Show the instructor's screen (faults)."""

    @classmethod
    def for_exercise(cls, context: ExerciseContext, **options: Any) -> LabPlan:
        """The lab of an exercise with the apprentice's variant, on free ports."""
        from grading.manifest import build_scenario

        scenario = build_scenario(context.exercise, context.variant)
        options.setdefault("auto_ports", True)
        options.setdefault("state_dir", context.workspace.state_dir(context.entry) / "tui")
        return cls(scenario, workspace=context.workspace, exercise=context, **options)

    def with_exercise(self, context: ExerciseContext) -> LabPlan:
        """This plan's clock, ports, broker and mode for another exercise: its scenario with
        the apprentice's variant, its own state folder (as :meth:`for_exercise` chooses)."""
        from grading.manifest import build_scenario

        return replace(
            self,
            scenario=build_scenario(context.exercise, context.variant),
            workspace=context.workspace,
            exercise=context,
            state_dir=context.workspace.state_dir(context.entry) / "tui",
        )

    def build(self) -> Lab:
        """The lab, not yet started (``async with`` starts it)."""
        from simlab.lab import Lab

        scenario = self.scenario
        if self.virtual:
            clock: VirtualClock | RealTimeClock = VirtualClock(scenario.epoch)
        else:
            clock = RealTimeClock(self.speed or scenario.clock.speed, scenario.epoch)
        return Lab(
            scenario,
            clock=clock,
            seed=self.seed,
            serve=self.serve,
            host=self.host,
            port_offset=self.port_offset,
            auto_ports=self.auto_ports,
            state_dir=self.state_dir,
            broker=self.broker,
            api_host=self.api_host,
            api_port=self.api_port,
        )
