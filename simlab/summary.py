"""Human-readable views of a lab for the terminal: the start-up summary and the heartbeat."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Sequence

from rich.console import Group
from rich.table import Table

from devices.registermap import RegisterRow
from devices.sensors import Quality
from simlab.lab import Lab
from simlab.scenario.devices import DeviceSpec, PlcSpec, TagSpec

__all__ = ["endpoint_table", "heartbeat", "register_csv", "register_table", "summary"]


def _binding(tag: TagSpec) -> str:
    if tag.signal:
        return f"← {tag.signal}"
    if tag.drives:
        return f"→ {tag.drives}"
    return "internal"


def summary(lab: Lab) -> Group:
    """Devices, tags (type, unit, binding, access) and control loops of a lab."""
    scenario = lab.scenario
    devices = Table(title="Devices", title_justify="left")
    for column in ("device", "type", "scan", "tags", "identity"):
        devices.add_column(column)
    tags = Table(title="Tags", title_justify="left")
    for column in ("tag", "type", "unit", "binding", "access", "range"):
        tags.add_column(column)
    loops = Table(title="Control logic", title_justify="left")
    for column in ("device", "block", "type", "acts on"):
        loops.add_column(column)
    for spec in scenario.devices:
        device = lab.devices[spec.name]
        identity = (
            f"{spec.identity.manufacturer} {spec.identity.model} #{spec.identity.serial_number}"
        )
        devices.add_row(
            spec.name, spec.type, f"{spec.scan_time:g} s", str(len(spec.tags)), identity
        )
        for tag in spec.tags:
            unit = device.unit(tag.name)
            access = "read/write" if tag.writable else "read"
            span = f"[{tag.range[0]:g}, {tag.range[1]:g}]" if tag.range else ""
            tags.add_row(
                f"{spec.name}.{tag.name}",
                tag.type,
                unit if unit != "bool" else "",
                _binding(tag),
                access,
                span,
            )
        if isinstance(spec, PlcSpec):
            for block in spec.logic:
                loops.add_row(spec.name, block.name, block.type, _acts_on(block))
    header = f"[bold]{scenario.title or scenario.name}[/] (seed {lab.seed}, step {lab.dt:g} s)"
    return Group(header, devices, tags, loops)


def _acts_on(block: object) -> str:
    fields = ("pv", "sp", "out", "when", "trips", "input", "output", "count", "state")
    parts = []
    for field in fields:
        value = getattr(block, field, None)
        if value is None:
            continue
        if field == "when":
            value = f"{value.tag} {value.op} {value.value:g}"
        elif isinstance(value, list):
            value = ", ".join(value)
        parts.append(f"{field}={value}")
    return " ".join(parts)


def heartbeat(lab: Lab, refs: list[str]) -> str:
    """One line: simulated time and the current value of each watched tag."""
    parts = [f"t={lab.time:8.1f} s"]
    for ref in refs:
        device_name, _, tag = ref.partition(".")
        device = lab.devices[device_name]
        value = device.tags[tag]
        unit = device.unit(tag) if isinstance(value, float) else ""
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        mark = (
            "" if device.quality[tag] == Quality.GOOD else f" ({device.quality[tag].name.lower()})"
        )
        parts.append(f"{ref}={text}{(' ' + unit) if unit else ''}{mark}")
    return "  ".join(parts)


def endpoint_table(lab: Lab) -> Table:
    """Where each endpoint of a serving lab listens."""
    table = Table(title="Endpoints", title_justify="left")
    for column in ("device", "protocol", "address", "unit ids"):
        table.add_column(column)
    for address in lab.addresses():
        units = ", ".join(str(u) for u in address.unit_ids)
        table.add_row(address.device, address.protocol, address.url, units)
    if lab.it is not None:
        for what, where in lab.it.describe():
            table.add_row("", what, where, "")
    return table


def register_table(device: DeviceSpec, rows: Sequence[RegisterRow]) -> Table:
    """A device's Modbus register map as a handout: the 0-based address beside 4xxxx/3xxxx."""
    modbus = device.modbus
    units = ", ".join(str(u) for u in modbus.unit_ids) if modbus else ""
    title = f"{device.name} — Modbus TCP port {modbus.port if modbus else '?'}, unit id {units}"
    table = Table(
        title=title,
        title_justify="left",
        caption="address = 0-based protocol address; ref = the classic 1-based notation",
        caption_justify="left",
    )
    for column in ("tag", "ref", "address", "table", "type", "order", "scale", "unit", "access"):
        table.add_column(column, no_wrap=True)
    table.add_column("description")
    for row in rows:
        scale = _scaling(row.gain, row.offset)
        table.add_row(
            row.tag,
            row.reference,
            str(row.address),
            row.table.replace("_", " "),
            row.type,
            row.word_order if row.registers > 1 else "",
            scale,
            row.unit,
            row.access,
            row.description,
        )
    return table


def _scaling(gain: float, offset: float) -> str:
    """How the raw register value is made from the engineering value ``v``."""
    if (gain, offset) == (1.0, 0.0):
        return ""
    return f"raw = v × {gain:g}" if offset == 0 else f"raw = (v - {offset:g}) × {gain:g}"


def register_csv(rows: Sequence[RegisterRow]) -> str:
    """A device's Modbus register map as CSV (one row per tag)."""
    records = [dataclasses.asdict(row) for row in rows]
    buffer = io.StringIO()
    if records:
        writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return buffer.getvalue()
