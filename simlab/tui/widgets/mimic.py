"""A text mimic of the process: one line per plant unit, drawn from the scenario's plant.

Tanks are level bars with the marks the PLC logic watches (``L``/``H``: the limits of
interlocks, comparisons and on/off control on the tank's level; ``S``: a PID setpoint);
pumps and motors run or stand, valves show their opening, heaters their power, and
conveyors their belt with the items on it and numbered stations (shown reversed while an
item is there). :func:`draw_plant` is
pure (a plant spec and values in, Rich text out); :class:`Mimic` shows it for a lab.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from simlab.scenario.devices import (
    CompareSpec,
    HysteresisSpec,
    InterlockSpec,
    PidSpec,
    PlcSpec,
    TagSpec,
)
from simlab.scenario.model import Scenario
from simlab.scenario.plant import (
    ConveyorSpec,
    PlantSpec,
    PumpSpec,
    TankSpec,
    ThermalSpec,
    UnitSpec,
    ValveSpec,
)
from simlab.units import convert

if TYPE_CHECKING:
    from simlab.lab import Lab

__all__ = ["LevelMark", "Mimic", "Palette", "PlantState", "draw_plant", "level_marks"]

NAME_WIDTH = 14
STATIONS = "123456789abcdefghijklmnopqrstuvwxyz"

_Reader = Callable[[str], float]
"""A unit's signal by its short name: ``value("level")``."""


@dataclass(frozen=True)
class LevelMark:
    """A level of interest on a tank: a fixed limit, or a setpoint read from a tag."""

    tank: str
    label: str
    level: float | None = None
    """Fixed level in m; ``None``: the value of ``ref`` (in ``unit``)."""
    ref: str = ""
    unit: str = "m"


def level_marks(scenario: Scenario) -> list[LevelMark]:
    """The limits (``L``, ``H``) and setpoints (``S``) the PLCs' logic puts on tank levels."""
    tanks = {u.name for u in scenario.plant.units if isinstance(u, TankSpec)}
    marks: list[LevelMark] = []
    for device in scenario.devices:
        if not isinstance(device, PlcSpec):
            continue
        tags = {t.name: t for t in device.tags}

        def tank_of(name: str, tags: Mapping[str, TagSpec] = tags) -> tuple[str, str] | None:
            """(tank, tag unit) when tag ``name`` measures a tank's level."""
            tag = tags.get(name)
            if tag is None or tag.signal is None:
                return None
            unit, _, signal = tag.signal.partition(".")
            return (unit, tag.unit or "m") if unit in tanks and signal == "level" else None

        for block in device.logic:
            if isinstance(block, InterlockSpec | CompareSpec):
                found = tank_of(block.when.tag)
                if found is not None:
                    label = "L" if block.when.op in ("<", "<=") else "H"
                    level = _metres(block.when.value, found[1])
                    if block.when.op in ("<", "<=", ">", ">=") and level is not None:
                        marks.append(LevelMark(found[0], label, level))
            elif isinstance(block, HysteresisSpec):
                found = tank_of(block.pv)
                if found is not None:
                    for label, limit in (("L", block.low), ("H", block.high)):
                        level = _metres(limit, found[1])
                        if level is not None:
                            marks.append(LevelMark(found[0], label, level))
            elif isinstance(block, PidSpec):
                found = tank_of(block.pv)
                sp = tags.get(block.sp)
                if found is not None and sp is not None:
                    ref = f"{device.name}.{sp.name}"
                    marks.append(LevelMark(found[0], "S", None, ref, sp.unit or found[1]))
    return marks


def _metres(value: float, unit: str) -> float | None:
    try:
        return convert(value, unit, "m")
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class PlantState:
    """What the mimic draws: signal values, conveyor items and resolved level marks."""

    values: Mapping[str, float]
    """Plant signals by full name ``unit.signal``."""
    items: Mapping[str, Sequence[float]] = field(default_factory=dict)
    """Positions (m from the infeed) of the items on each conveyor."""
    marks: Mapping[str, Sequence[tuple[str, float]]] = field(default_factory=dict)
    """(label, level in m) marks by tank."""

    @classmethod
    def of(cls, lab: Lab, marks: Sequence[LevelMark]) -> PlantState:
        """The state of ``lab``'s plant now (setpoint marks read from their tags)."""
        signals = lab.plant.signals
        values = dict(zip(signals.names, signals.values.tolist(), strict=True))
        items = {
            name: conveyor.position[conveyor.active].tolist()
            for name, conveyor in lab.plant.conveyors.items()
        }
        resolved: dict[str, list[tuple[str, float]]] = {}
        for mark in marks:
            level = mark.level
            if level is None:
                setpoint = lab.read(mark.ref)
                if isinstance(setpoint, float):
                    level = _metres(setpoint, mark.unit)
            if level is not None:
                resolved.setdefault(mark.tank, []).append((mark.label, level))
        return cls(values, items, resolved)


@dataclass(frozen=True)
class Palette:
    """The styles of the mimic (plain by default; the widget takes them from its CSS)."""

    name: Style = field(default_factory=Style)
    on: Style = field(default_factory=Style)
    off: Style = field(default_factory=Style)
    fill: Style = field(default_factory=Style)
    empty: Style = field(default_factory=Style)
    mark: Style = field(default_factory=Style)
    alarm: Style = field(default_factory=Style)


def draw_plant(spec: PlantSpec, state: PlantState, width: int, palette: Palette) -> Text:
    """The mimic of ``spec``'s units in ``state``, lines at most ``width`` cells wide."""
    if not spec.units:
        return Text("This scenario declares no plant units.")
    name_width = min(max(len(u.name) for u in spec.units), NAME_WIDTH) + 1
    drawing = _Drawing(state, width, name_width, palette)
    lines = [line for unit in spec.units for line in drawing.unit(unit)]
    text = Text("\n").join(lines)
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


@dataclass(frozen=True)
class _Drawing:
    """Draws the units of one plant state."""

    state: PlantState
    width: int
    name_width: int
    palette: Palette

    def unit(self, unit: UnitSpec) -> list[Text]:
        """The lines of one unit: its name, then its picture."""

        def value(signal: str) -> float:
            return self.state.values.get(f"{unit.name}.{signal}", 0.0)

        palette = self.palette
        head = Text(f"{unit.name[: self.name_width - 1]:<{self.name_width}}", style=palette.name)
        if isinstance(unit, TankSpec):
            return [self._tank(unit, value, head)]
        if isinstance(unit, ConveyorSpec):
            return self._conveyor(unit, value, head)
        if isinstance(unit, PumpSpec):
            head.append_text(self._run(value("running") > 0.5))
            head.append(f" {value('speed'):3.0f} %  {value('flow'):5.1f} m3/h  ")
            head.append(f"{unit.source or 'supply'} → {unit.to or 'drain'}")
        elif isinstance(unit, ValveSpec):
            position = value("position")
            head.append("▶◀", style=palette.on if position > 0.5 else palette.off)
            head.append(f" {position:3.0f} % open  {value('flow'):5.1f} m3/h  ")
            head.append(f"{unit.tank} → {unit.to or 'drain'}")
        elif isinstance(unit, ThermalSpec):
            power = value("heater_power")
            head.append("≋ heater", style=palette.on if power > 0 else palette.off)
            head.append(f" {value('cmd_heater'):3.0f} %  {power:4.1f} kW  ")
            head.append(f"{value('temperature'):5.1f} °C")
        else:  # a motor
            head.append_text(self._run(value("running") > 0.5))
            head.append(f" {value('speed'):4.0f} rpm  {value('current'):5.1f} A  ")
            head.append(f"{value('winding_temperature'):5.1f} °C  {value('vibration'):5.2f} mm/s")
        return [head]

    def _run(self, running: bool) -> Text:
        palette = self.palette
        return Text("● RUN " if running else "○ STOP", style=palette.on if running else palette.off)

    def _tank(self, unit: TankSpec, value: _Reader, head: Text) -> Text:
        """A level bar with the tank's marks, the level and the flows."""
        palette = self.palette
        level = value("level")
        tail = Text(f" {level:5.2f} m {level / unit.height * 100:3.0f} %")
        if value("overflowing") > 0.5:
            tail.append(" OVERFLOW", style=palette.alarm)
        else:
            tail.append(f"  in {value('inflow'):4.1f} out {value('outflow'):4.1f} m3/h")
        bar_width = max(8, min(40, self.width - len(head) - 2 - len(tail)))
        filled = round(min(max(level / unit.height, 0.0), 1.0) * bar_width)
        cells = [("█", palette.fill)] * filled + [("░", palette.empty)] * (bar_width - filled)
        for label, mark in self.state.marks.get(unit.name, ()):
            at = min(max(int(mark / unit.height * bar_width), 0), bar_width - 1)
            cells[at] = (label[0], palette.mark)
        return Text.assemble(head, _cells(cells), tail)

    def _conveyor(self, unit: ConveyorSpec, value: _Reader, head: Text) -> list[Text]:
        """Status and counts; the belt with its items and numbered stations; their names."""
        palette = self.palette
        head.append_text(self._run(value("running") > 0.5))
        head.append(f" {value('speed'):4.2f} m/s  in {value('items_in'):.0f}")
        head.append(f" out {value('items_out'):.0f} rejected {value('rejected'):.0f}")
        if value("jammed") > 0.5:
            head.append(" JAMMED", style=palette.alarm)
        belt_width = max(10, self.width - self.name_width - 2)
        cells = [("─", palette.empty)] * belt_width
        stations = sorted(unit.stations, key=lambda s: s.position)
        for index, station in enumerate(stations):
            at = min(int(station.position / unit.length * belt_width), belt_width - 1)
            cells[at] = (STATIONS[index % len(STATIONS)], palette.mark)
        for position in self.state.items.get(unit.name, ()):
            at = min(max(int(position / unit.length * belt_width), 0), belt_width - 1)
            char, style = cells[at]
            at_station = char in STATIONS
            cells[at] = (char, style + Style(reverse=True)) if at_station else ("●", palette.fill)
        indent = " " * self.name_width
        legend = Text(indent)
        for index, station in enumerate(stations):
            legend.append(f" {STATIONS[index % len(STATIONS)]}", style=palette.mark)
            legend.append(f" {station.name}")
        return [head, Text(indent) + _cells(cells), legend]


def _cells(cells: Sequence[tuple[str, Style]]) -> Text:
    """Styled characters between the ends of a bar: ``▕...▏``."""
    text = Text("▕")
    for char, style in cells:
        text.append(char, style=style)
    text.append("▏")
    return text


class Mimic(Static):
    """The process at a glance; :meth:`show` redraws it (the screen calls it at its pace)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "mimic--name",
        "mimic--on",
        "mimic--off",
        "mimic--fill",
        "mimic--empty",
        "mimic--mark",
        "mimic--alarm",
    }

    def __init__(self, plant: PlantSpec, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.plant = plant

    def palette(self) -> Palette:
        """The styles of the component classes (set in the screen's .tcss)."""
        style = self.get_component_rich_style
        return Palette(
            name=style("mimic--name"),
            on=style("mimic--on"),
            off=style("mimic--off"),
            fill=style("mimic--fill"),
            empty=style("mimic--empty"),
            mark=style("mimic--mark"),
            alarm=style("mimic--alarm"),
        )

    def show(self, state: PlantState) -> None:
        """Redraw the mimic for ``state``."""
        width = self.content_size.width or 76
        self.update(draw_plant(self.plant, state, width, self.palette()))
