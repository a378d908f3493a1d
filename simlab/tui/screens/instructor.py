"""The Instructor screen: inject and clear faults live, and see which faults act now.

Shown only in instructor mode (``simlab tui --instructor``). A fault is chosen by kind and
target (the targets that kind accepts: measured tags for sensor faults, plant units of
the right type for plant faults, devices for endpoint faults) plus its parameters typed
as ``name=value`` pairs; the lab validates it like a scenario's ``faults:`` entry, so a
mistake is named in the status line and nothing is injected.
"""

from __future__ import annotations

from typing import Any, ClassVar

import yaml
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from simlab.errors import SimlabError
from simlab.scenario.faults import ENDPOINT_FAULT_KINDS, PLANT_FAULT_UNIT_TYPES, SENSOR_FAULT_KINDS
from simlab.tui.screens.base import LabScreen

__all__ = ["InstructorScreen", "fault_targets", "parse_parameters"]

KINDS = (*SENSOR_FAULT_KINDS, *PLANT_FAULT_UNIT_TYPES, *ENDPOINT_FAULT_KINDS)


def fault_targets(
    kind: str, sensors: list[str], units: dict[str, str], devices: list[str]
) -> list[str]:
    """The targets a fault of ``kind`` accepts in this lab."""
    if kind in SENSOR_FAULT_KINDS:
        return sensors
    if kind in PLANT_FAULT_UNIT_TYPES:
        return [name for name, type_ in units.items() if type_ in PLANT_FAULT_UNIT_TYPES[kind]]
    return devices


def parse_parameters(text: str) -> dict[str, Any]:
    """``rate=0.05 duration=60`` → ``{"rate": 0.05, "duration": 60}`` (values read as YAML
    scalars); :class:`ValueError` naming the pair that is not ``name=value``."""
    parameters: dict[str, Any] = {}
    for pair in text.split():
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{pair!r} is not name=value (e.g. rate=0.05)")
        try:
            parameters[name] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(f"{pair!r}: the value cannot be read") from None
    return parameters


class InstructorScreen(LabScreen):
    """Faults acting now, and a form to start one."""

    CSS_PATH = "instructor.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("i", "inject", "Inject"),
        Binding("x", "clear", "Clear selected"),
    ]

    def compose_body(self) -> ComposeResult:
        lab = self.lab
        yield Label("Active faults", classes="section")
        yield DataTable(id="faults", cursor_type="row", zebra_stripes=True)
        yield Label("Start a fault now", classes="section")
        with Horizontal(id="fault-form"):
            yield Select([(k, k) for k in KINDS], prompt="kind", id="kind", allow_blank=True)
            yield Select[str]([], prompt="target", id="target")
        yield Input(placeholder="parameters: rate=0.05 duration=60 (Enter injects)", id="params")
        with Horizontal(id="fault-buttons"):
            yield Button("Inject (i)", id="inject", variant="warning")
            yield Button("Clear selected (x)", id="clear")
        yield Static(f"{len(lab.scenario.faults)} fault(s) on the scenario's timeline", id="status")

    def on_mount(self) -> None:
        table = self.query_one("#faults", DataTable)
        table.add_columns("id", "kind", "target", "since", "until", "parameters")

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "kind":
            return
        target = self.query_one("#target", Select)
        kind = event.value
        if not isinstance(kind, str):
            target.set_options([])
            return
        lab = self.lab
        names = fault_targets(
            kind, list(lab.sensors.position), dict(lab.plant.unit_types), list(lab.devices)
        )
        target.set_options([(n, n) for n in names])

    def refresh_view(self) -> None:
        table = self.query_one("#faults", DataTable)
        active = self.lab.faults.active
        rows = {str(f.id) for f in active.values()}
        for key in [str(k.value) for k in table.rows if k.value not in rows]:
            table.remove_row(key)
        for fault in active.values():
            key = str(fault.id)
            spec = fault.spec
            extra = spec.model_dump(exclude={"kind", "target", "at", "duration", "note"})
            cells = (
                key,
                spec.kind,
                spec.target,
                f"{fault.started:.1f} s",
                "cleared by hand" if fault.until is None else f"{fault.until:.1f} s",
                " ".join(f"{k}={v}" for k, v in extra.items() if v is not None),
            )
            if key in table.rows:
                for column, value in zip(table.columns, cells, strict=True):
                    table.update_cell(key, column, value)
            else:
                table.add_row(*cells, key=key)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "params":
            self.action_inject()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "inject":
            self.action_inject()
        elif event.button.id == "clear":
            self.action_clear()

    def _say(self, message: str, style: str = "") -> None:
        self.query_one("#status", Static).update(Text(message, style=style))

    def action_inject(self) -> None:
        """Start the fault of the form now."""
        kind = self.query_one("#kind", Select).value
        target = self.query_one("#target", Select).value
        if not isinstance(kind, str) or not isinstance(target, str):
            self._say("Choose a kind and a target first.", "yellow")
            return
        try:
            parameters = parse_parameters(self.query_one("#params", Input).value)
            fault_id = self.lab.inject_fault({**parameters, "kind": kind, "target": target})
        except (ValueError, SimlabError) as err:
            self._say(f"Not injected: {err}", "bold red")
            return
        self._say(f"Fault {fault_id} ({kind} on {target}) started at t={self.lab.time:.1f} s.")
        self.refresh_view()

    def action_clear(self) -> None:
        """End the fault under the cursor."""
        table = self.query_one("#faults", DataTable)
        if not table.row_count:
            self._say("No fault is active.", "yellow")
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        assert key is not None
        self.lab.clear_fault(int(key))
        self._say(f"Fault {key} cleared at t={self.lab.time:.1f} s.")
        self.refresh_view()
