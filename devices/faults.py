"""The fault engine: starts and ends faults from the scenario timeline or injected live."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from devices.plant.plant import Plant
from devices.sensors import SensorBank
from simlab.errors import FaultError
from simlab.scenario.faults import (
    ENDPOINT_FAULT_KINDS,
    SENSOR_FAULT_KINDS,
    BearingWearFault,
    FaultSpec,
    JamFault,
    LeakFault,
    TripFault,
)

__all__ = ["ActiveFault", "EndpointFaultHook", "FaultEngine", "FaultEvent"]

EndpointFaultHook = Callable[[FaultSpec, bool], None]
"""Called with (fault, True) to start an endpoint fault and (fault, False) to end it."""


@dataclass(frozen=True)
class ActiveFault:
    """A fault acting now; ``until`` is None while it lasts until cleared."""

    id: int
    spec: FaultSpec
    started: float
    until: float | None


@dataclass(frozen=True)
class FaultEvent:
    """A fault starting or ending, for the truth record."""

    time: float
    action: str  # "start" | "end"
    fault_id: int
    kind: str
    target: str


class FaultEngine:
    """Applies faults to the plant and the sensors at the right simulated instants."""

    def __init__(self, timeline: list[FaultSpec], plant: Plant, sensors: SensorBank) -> None:
        self.plant = plant
        self.sensors = sensors
        self.pending = sorted(enumerate(timeline), key=lambda item: item[1].at)
        self.active: dict[int, ActiveFault] = {}
        self.events: list[FaultEvent] = []
        self.endpoint_hook: EndpointFaultHook | None = None
        self._next_id = len(timeline)

    def update(self, now: float) -> None:
        """Start due faults of the timeline and end expired ones."""
        while self.pending and self.pending[0][1].at <= now:
            fault_id, spec = self.pending.pop(0)
            self._start(fault_id, spec, now)
        for fault in [f for f in self.active.values() if f.until is not None and f.until <= now]:
            self.clear(fault.id, now)

    def inject(self, spec: FaultSpec, now: float) -> int:
        """Start ``spec`` now (its ``at`` is ignored); returns the id to clear it with."""
        fault_id = self._next_id
        self._next_id += 1
        self._start(fault_id, spec, now)
        return fault_id

    def clear(self, fault_id: int, now: float) -> None:
        """End an active fault."""
        fault = self.active.pop(fault_id, None)
        if fault is None:
            active = ", ".join(str(i) for i in self.active) or "none"
            raise FaultError(f"no active fault with id {fault_id} (active: {active})")
        spec = fault.spec
        self._act(spec, on=False)
        self.events.append(FaultEvent(now, "end", fault_id, spec.kind, spec.target))

    def _start(self, fault_id: int, spec: FaultSpec, now: float) -> None:
        try:
            self._act(spec, on=True)
        except (KeyError, ValueError) as err:
            raise FaultError(f"cannot start {spec.kind} fault on {spec.target!r}: {err}") from err
        until = now + spec.duration if spec.duration is not None else None
        self.active[fault_id] = ActiveFault(fault_id, spec, now, until)
        self.events.append(FaultEvent(now, "start", fault_id, spec.kind, spec.target))

    def _act(self, spec: FaultSpec, on: bool) -> None:
        if spec.kind in SENSOR_FAULT_KINDS:
            if on:
                self.sensors.apply(spec.target, spec)
            else:
                self.sensors.clear(spec.target, spec.kind)
        elif spec.kind in ENDPOINT_FAULT_KINDS:
            if self.endpoint_hook is None:
                raise ValueError("the lab runs no endpoints to act on")
            self.endpoint_hook(spec, on)
        else:
            self._plant_fault(spec, on)

    def _plant_fault(self, spec: FaultSpec, on: bool) -> None:
        match spec:
            case JamFault():
                self.plant.set_jam(spec.target, on)
            case LeakFault():
                self.plant.set_leak(spec.target, spec.flow if on else 0.0)
            case BearingWearFault():
                self.plant.set_bearing_wear(spec.target, spec.rate if on else 0.0)
            case TripFault():
                self.plant.set_trip(spec.target, on)
            case _:
                raise ValueError(f"{spec.kind!r} is not a plant fault")
