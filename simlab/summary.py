"""Human-readable views of a lab for the terminal: the start-up summary and the heartbeat."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from devices.sensors import Quality
from simlab.lab import Lab
from simlab.scenario.devices import PlcSpec, TagSpec

__all__ = ["heartbeat", "summary"]


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
