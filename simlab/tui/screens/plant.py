"""The Plant screen: live tags, a mimic of the process and a tag's lineage.

The tag table and the mimic are the lab's own view of itself (read in-process at the
screen's refresh rate). ``Enter`` on a tag opens its lineage, which then follows the
cursor: the true plant signal, the PLC tag, and the same value read over Modbus, OPC UA,
MQTT and from the platform's historian by a probe in a worker, once a second, for that
tag only. ``Esc`` closes it. In a short terminal (80×24) the lineage takes the mimic's
place while it is open.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable
from textual.worker import Worker, WorkerState

from simlab.bus.client import parse_broker_url
from simlab.tui.lineage import Hop, LabSide, LineageProbe, Readings, TagRoute, hops, route_of
from simlab.tui.screens.base import LabScreen
from simlab.tui.widgets.lineage import LineageView
from simlab.tui.widgets.mimic import LevelMark, Mimic, PlantState, level_marks
from simlab.tui.widgets.tag_table import TagRow, TagTable

__all__ = ["PROBE_INTERVAL", "PlantScreen"]

PROBE_INTERVAL = 1.0
"""Seconds between two reads of the lineage's protocol hops."""


class PlantScreen(LabScreen):
    """Live tags with sparklines, a text mimic, and the lineage of the selected tag."""

    CSS_PATH = "plant.tcss"
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]
    """A short terminal (under 30 lines) shows the lineage in place of the mimic."""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close_lineage", "Close lineage"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.route: TagRoute | None = None
        """The tag whose lineage is open, if one is."""
        self.readings: Readings | None = None
        """The latest protocol readings of :attr:`route` (None until the first probe)."""
        self._probe_error = ""
        self._marks: list[LevelMark] = []

    def compose_body(self) -> ComposeResult:
        lab = self.lab
        self._marks = level_marks(lab.scenario)
        mimic = Mimic(lab.scenario.plant, id="mimic")
        mimic.border_title = "Process"
        yield mimic
        refs = [f"{name}.{tag}" for name, device in lab.devices.items() for tag in device.specs]
        yield TagTable(refs, id="tags")
        yield LineageView(id="lineage")

    # --- refresh --------------------------------------------------------------------------

    def refresh_view(self) -> None:
        lab = self.lab
        rows = []
        for name, device in lab.devices.items():
            every = max(1, round(device.scan_time / lab.dt))
            scanned = (lab.steps // every) * every * lab.dt
            stamp = lab.clock.datetime_at(scanned).strftime("%H:%M:%S.%f")[:10]
            for tag in device.specs:
                ref = f"{name}.{tag}"
                quality = lab.quality(ref).name.capitalize()
                rows.append(
                    TagRow(ref, device.read(tag), device.unit(tag), quality, scanned, stamp)
                )
        self.query_one(TagTable).show(rows)
        mimic = self.query_one(Mimic)
        if mimic.display:
            mimic.show(PlantState.of(lab, self._marks))
        if self.route is not None:
            self._show_lineage(self.route)

    def _show_lineage(self, route: TagRoute) -> None:
        lab = self.lab
        device = lab.devices[route.device]
        truth, truth_unit = None, ""
        if route.signal is not None:
            truth = float(lab.plant.values[lab.plant.index(route.signal)])
            truth_unit = lab.plant.signals.unit_of(route.signal)
        side = LabSide(
            truth=truth,
            truth_unit=truth_unit,
            value=device.read(route.tag.name),
            quality=lab.quality(route.ref).name.capitalize(),
            unit=device.unit(route.tag.name),
            has_bus=lab.it is not None,
        )
        lines = hops(route, side, self.readings)
        if self._probe_error:
            lines.append(Hop("probe", "", "✗", self._probe_error, "error"))
        self.query_one(LineageView).show(route.ref, lines, self._endpoints(route))

    def _endpoints(self, route: TagRoute) -> str:
        """Where the probe reads, for the apprentice's own tools."""
        parts = []
        if route.modbus_at is not None:
            address = route.modbus_at
            parts.append(f"modbus {address.host}:{address.port} unit {route.unit_id}")
        if route.opcua_at is not None:
            parts.append(route.opcua_at.url)
        it = self.lab.it
        if it is not None and it.broker is not None:
            parts.append(parse_broker_url(it.broker.url).safe_url)
        return "via " + " · ".join(parts) if parts else "in-process only: no endpoints"

    # --- lineage --------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.open_lineage()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if self.route is not None:
            self.open_lineage()

    def open_lineage(self) -> None:
        """Show the lineage of the tag under the cursor (and probe its protocol hops)."""
        ref = self.query_one(TagTable).selected
        if ref is None or (self.route is not None and self.route.ref == ref):
            return
        lab = self.lab
        self.route = route_of(lab.scenario, lab.addresses(), ref)
        self.readings, self._probe_error = None, ""
        self.add_class("-lineage")
        self.run_worker(
            self._probe(self.route), group="lineage", exclusive=True, exit_on_error=False
        )
        self.refresh_bindings()
        self._show_lineage(self.route)

    async def _probe(self, route: TagRoute) -> None:
        it = self.lab.it
        broker = it.broker.url if it is not None and it.broker is not None else None
        historian = it.platform.historian if it is not None and it.platform is not None else None
        async with LineageProbe(route, broker_url=broker, historian=historian) as probe:
            while True:
                if self.is_current:
                    readings = await probe.read()
                    if self.route is route:
                        self.readings = readings
                await asyncio.sleep(PROBE_INTERVAL)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "lineage" and event.state is WorkerState.ERROR:
            self._probe_error = f"the probe stopped: {event.worker.error}"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "close_lineage":
            return self.route is not None
        return True

    def action_close_lineage(self) -> None:
        """Close the lineage (its probe stops); the mimic comes back."""
        self.route, self.readings = None, None
        self.workers.cancel_group(self, "lineage")
        self.remove_class("-lineage")
        self.refresh_bindings()
