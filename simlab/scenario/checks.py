"""Cross-reference checks: what the schema alone cannot see (names, references, units).

Each finding is a :class:`Finding` with the path of the offending field, so the loader can
point at its line in the file.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from simlab.scenario.devices import (
    CompareSpec,
    CounterSpec,
    InterlockSpec,
    PackMLSpec,
    PidSpec,
    PlcSpec,
    TagSpec,
    TimerSpec,
)
from simlab.scenario.faults import (
    ENDPOINT_FAULT_KINDS,
    PLANT_FAULT_UNIT_TYPES,
    SENSOR_FAULT_KINDS,
)
from simlab.scenario.model import Scenario
from simlab.scenario.plant import SignalDef
from simlab.units import UNITS, same_dimension

__all__ = ["Finding", "Loc", "cross_check", "did_you_mean"]

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Finding:
    """A cross-reference problem at ``loc``."""

    loc: Loc
    message: str
    hint: str = ""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" Did you mean 'x'?"`` when a choice is close to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def _unknown(kind: str, word: str, choices: Iterable[str]) -> str:
    choices = sorted(choices)
    guess = did_you_mean(word, choices)
    listing = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
    return f"{guess} Known {kind}: {listing or '(none)'}".strip()


def _duplicates(names: list[str], loc: Loc, what: str) -> Iterator[Finding]:
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            yield Finding(
                (*loc, index, "name"),
                f"duplicate {what} name {name!r} (first at {loc[-1]}[{seen[name]}])",
                f"give each {what} its own name",
            )
        else:
            seen[name] = index


def cross_check(scenario: Scenario) -> list[Finding]:
    """Every cross-reference problem in ``scenario``; empty when it is consistent."""
    return [
        *_check_plant(scenario),
        *_check_devices(scenario),
        *_check_faults(scenario),
        *_check_watch(scenario),
        *_check_gateway(scenario),
        *_check_oee(scenario),
    ]


def _check_plant(scenario: Scenario) -> Iterator[Finding]:
    units = scenario.plant.units
    yield from _duplicates([u.name for u in units], ("plant", "units"), "unit")
    types = {u.name: u.type for u in units}
    for index, unit in enumerate(units):
        loc: Loc = ("plant", "units", index)
        for field in ("source", "to", "tank"):
            ref = getattr(unit, field, None)
            if ref is None:
                continue
            if ref not in types:
                tanks = [n for n, t in types.items() if t == "tank"]
                yield Finding(
                    (*loc, field), f"unit {ref!r} does not exist", _unknown("tanks", ref, tanks)
                )
            elif types[ref] != "tank":
                yield Finding(
                    (*loc, field),
                    f"{field} must name a tank, but {ref!r} is a {types[ref]}",
                    "connect flows to units of type 'tank'",
                )
        if unit.type == "motor" and unit.pump is not None and types.get(unit.pump) != "pump":
            pumps = [n for n, t in types.items() if t == "pump"]
            yield Finding(
                (*loc, "pump"),
                f"{unit.pump!r} is not a pump of this plant",
                _unknown("pumps", unit.pump, pumps),
            )
        if unit.type == "conveyor":
            yield from _duplicates([s.name for s in unit.stations], (*loc, "stations"), "station")
            for s_index, station in enumerate(unit.stations):
                if station.position > unit.length:
                    yield Finding(
                        (*loc, "stations", s_index, "position"),
                        f"station at {station.position} m lies beyond the belt's end "
                        f"({unit.length} m)",
                        "place stations between 0 and the conveyor's length",
                    )
        if unit.type == "tank" and unit.initial_level > unit.height:
            yield Finding(
                (*loc, "initial_level"),
                f"initial level {unit.initial_level} m is above the tank's height {unit.height} m",
                "lower initial_level or raise height",
            )


def _signal_ref(
    ref: str, loc: Loc, catalogue: dict[str, SignalDef], want_input: bool
) -> Iterator[Finding]:
    if ref not in catalogue:
        unit_name = ref.split(".", 1)[0]
        in_unit = [s for s in catalogue if s.startswith(unit_name + ".")]
        yield Finding(
            loc,
            f"plant signal {ref!r} does not exist",
            _unknown("signals", ref, in_unit or catalogue),
        )
    elif want_input and catalogue[ref].kind != "input":
        inputs = [n for n, s in catalogue.items() if s.kind == "input"]
        yield Finding(
            loc,
            f"{ref!r} is a state of the plant, not an input a device can drive",
            _unknown("inputs", ref, inputs),
        )


def _check_tag(tag: TagSpec, loc: Loc, catalogue: dict[str, SignalDef]) -> Iterator[Finding]:
    ref = tag.signal or tag.drives
    if ref is None:
        if tag.unit and tag.type == "bool" and UNITS[tag.unit].dimension != "boolean":
            yield Finding(
                (*loc, "unit"), "a bool tag cannot carry a unit", "remove 'unit' or use unit 'bool'"
            )
        return
    field = "signal" if tag.signal else "drives"
    found = list(_signal_ref(ref, (*loc, field), catalogue, want_input=bool(tag.drives)))
    yield from found
    if found:
        return
    signal = catalogue[ref]
    is_bool_signal = signal.unit == "bool"
    if tag.type == "string" or is_bool_signal != (tag.type == "bool"):
        want = "bool" if is_bool_signal else "float or int"
        yield Finding(
            (*loc, "type"),
            f"tag type {tag.type!r} does not fit signal {ref!r} ({signal.unit or 'no unit'})",
            f"use type {want}",
        )
    if tag.unit is not None and not same_dimension(tag.unit, signal.unit):
        same = [u for u in UNITS if same_dimension(u, signal.unit)]
        yield Finding(
            (*loc, "unit"),
            f"unit {tag.unit!r} ({UNITS[tag.unit].dimension}) does not fit signal {ref!r} "
            f"in {signal.unit!r} ({UNITS[signal.unit].dimension})",
            f"use one of {', '.join(repr(u) for u in same)} or leave 'unit' out",
        )


_TAG_FIELDS = (
    "pv",
    "sp",
    "out",
    "enable",
    "trips",
    "reset",
    "active",
    "input",
    "output",
    "elapsed",
    "count",
    "done",
    "state",
    "start",
    "stop",
    "hold",
    "unhold",
    "abort",
    "clear",
    "execute_output",
)
_OUTPUT_FIELDS = {
    "out",
    "trips",
    "active",
    "output",
    "elapsed",
    "count",
    "done",
    "state",
    "execute_output",
}


def _check_logic(device: PlcSpec, loc: Loc) -> Iterator[Finding]:
    tags = {t.name: t for t in device.tags}
    yield from _duplicates([b.name for b in device.logic], (*loc, "logic"), "logic block")
    for index, block in enumerate(device.logic):
        b_loc: Loc = (*loc, "logic", index)
        refs: list[tuple[Loc, str, str]] = []
        for field in _TAG_FIELDS:
            value = getattr(block, field, None)
            if isinstance(value, str):
                refs.append(((*b_loc, field), value, field))
            elif isinstance(value, list):
                refs.extend(((*b_loc, field, i), v, field) for i, v in enumerate(value))
        if isinstance(block, InterlockSpec | CompareSpec):
            refs.append(((*b_loc, "when", "tag"), block.when.tag, "when"))
        if isinstance(block, PackMLSpec):
            for field in ("hold_when", "abort_when"):
                cond = getattr(block, field)
                if cond is not None:
                    refs.append(((*b_loc, field, "tag"), cond.tag, field))
        for ref_loc, name, field in refs:
            if name not in tags:
                yield Finding(
                    ref_loc,
                    f"tag {name!r} does not exist in device {device.name!r}",
                    _unknown("tags", name, tags),
                )
            elif field in _OUTPUT_FIELDS and tags[name].signal:
                yield Finding(
                    ref_loc,
                    f"logic cannot write {name!r}: it measures a plant signal",
                    "write to an internal tag or a tag with 'drives'",
                )
        yield from _check_block_types(block, b_loc, tags)


def _check_block_types(block: object, loc: Loc, tags: dict[str, TagSpec]) -> Iterator[Finding]:
    wants_bool: tuple[str, ...] = ()
    if isinstance(block, TimerSpec):
        wants_bool = ("input", "output")
    elif isinstance(block, CounterSpec):
        wants_bool = ("input", "reset", "done")
    elif isinstance(block, CompareSpec):
        wants_bool = ("out",)
    elif isinstance(block, PidSpec):
        wants_bool = ("enable",)
    elif isinstance(block, PackMLSpec):
        wants_bool = (
            "start",
            "stop",
            "reset",
            "hold",
            "unhold",
            "abort",
            "clear",
            "execute_output",
        )
    for field in wants_bool:
        name = getattr(block, field)
        if name in tags and tags[name].type != "bool":
            yield Finding(
                (*loc, field),
                f"{field} tag {name!r} must be of type bool, not {tags[name].type}",
                f"declare {name!r} with 'type: bool'",
            )


def _check_scan_time(scan_time: float, step: float, loc: Loc) -> Iterator[Finding]:
    """A device scans every n-th plant step, so its scan time is a multiple of the step."""
    steps = scan_time / step
    if steps < 1 - 1e-9 or abs(steps - round(steps)) > 1e-6:
        fitting = f"{max(1, round(steps)) * step:g}"
        yield Finding(
            loc,
            f"scan time {scan_time:g} s is not a whole multiple of the clock step {step:g} s",
            f"use e.g. {fitting} s, or change clock.step",
        )


def _check_devices(scenario: Scenario) -> Iterator[Finding]:
    catalogue = scenario.plant.signal_catalogue()
    yield from _duplicates([d.name for d in scenario.devices], ("devices",), "device")
    drivers: dict[str, str] = {}  # plant input -> 'device.tag' driving it
    coupled = {
        f"{u.pump}.{s}"
        for u in scenario.plant.units
        if u.type == "motor" and u.pump
        for s in ("cmd_run", "cmd_speed")
    }
    for d_index, device in enumerate(scenario.devices):
        loc: Loc = ("devices", d_index)
        yield from _duplicates([t.name for t in device.tags], (*loc, "tags"), "tag")
        yield from _check_scan_time(device.scan_time, scenario.clock.step, (*loc, "scan_time"))
        for t_index, tag in enumerate(device.tags):
            t_loc: Loc = (*loc, "tags", t_index)
            yield from _check_tag(tag, t_loc, catalogue)
            if tag.drives:
                if tag.drives in coupled:
                    yield Finding(
                        (*t_loc, "drives"),
                        f"{tag.drives!r} follows the motor on the pump's shaft",
                        "drive the motor's cmd_run/cmd_speed instead",
                    )
                if tag.drives in drivers:
                    yield Finding(
                        (*t_loc, "drives"),
                        f"plant input {tag.drives!r} is driven by two tags "
                        f"(also by {drivers[tag.drives]!r})",
                        "let one tag drive each plant input",
                    )
                drivers.setdefault(tag.drives, f"{device.name}.{tag.name}")
            if tag.modbus and not device.modbus:
                yield Finding(
                    (*t_loc, "modbus"),
                    f"tag has a Modbus address but device {device.name!r} has no 'modbus:' server",
                    "add 'modbus: {port: 5020}' to the device",
                )
            if tag.opcua and not device.opcua:
                yield Finding(
                    (*t_loc, "opcua"),
                    f"tag has OPC UA settings but device {device.name!r} has no 'opcua:' server",
                    "add 'opcua: {port: 4840}' to the device",
                )
        yield from _check_modbus_overlaps(device.tags, loc)
        if device.opcua is not None:
            yield from _check_methods(device.opcua.methods, device.tags, (*loc, "opcua", "methods"))
        if isinstance(device, PlcSpec):
            yield from _check_logic(device, loc)


def _check_methods(methods: dict[str, str], tags: list[TagSpec], loc: Loc) -> Iterator[Finding]:
    """Each OPC UA method pulses a writable bool command tag of its device."""
    by_name = {t.name: t for t in tags}
    commands = [t.name for t in tags if t.type == "bool" and t.writable]
    for method, tag_name in methods.items():
        tag = by_name.get(tag_name)
        if tag is None:
            yield Finding(
                (*loc, method),
                f"method {method} pulses tag {tag_name!r}, which does not exist",
                _unknown("command tags", tag_name, commands),
            )
        elif tag.type != "bool" or not tag.writable:
            yield Finding(
                (*loc, method),
                f"method {method} pulses {tag_name!r}, which is not a writable bool tag",
                "point it at a command bit: type bool, writable",
            )


def _check_modbus_overlaps(tags: list[TagSpec], loc: Loc) -> Iterator[Finding]:
    taken: dict[tuple[str, int], str] = {}
    for index, tag in enumerate(tags):
        if tag.modbus is None:
            continue
        m = tag.modbus
        for address in range(m.address, m.address + m.registers()):
            if address > 65535:
                yield Finding(
                    (*loc, "tags", index, "modbus", "address"),
                    f"{tag.name!r} runs past the last address 65535",
                    "lower the address",
                )
                break
            other = taken.get((m.table, address))
            if other:
                yield Finding(
                    (*loc, "tags", index, "modbus", "address"),
                    f"{m.table} {address} is already used by tag {other!r}",
                    f"a {m.type} takes {m.registers()} register(s): move one of the tags",
                )
                break
            taken[(m.table, address)] = tag.name


def _check_faults(scenario: Scenario) -> Iterator[Finding]:
    units = {u.name: u.type for u in scenario.plant.units}
    sensor_tags = {f"{d.name}.{t.name}" for d in scenario.devices for t in d.tags if t.signal}
    for index, fault in enumerate(scenario.faults):
        loc: Loc = ("faults", index, "target")
        if fault.kind in SENSOR_FAULT_KINDS:
            if fault.target not in sensor_tags:
                yield Finding(
                    loc,
                    f"{fault.kind} fault needs a measured tag 'device.tag'; "
                    f"{fault.target!r} is not one",
                    _unknown("measured tags", fault.target, sensor_tags),
                )
            continue
        if fault.kind in ENDPOINT_FAULT_KINDS:
            devices = {d.name: d for d in scenario.devices}
            if fault.target not in devices:
                yield Finding(
                    loc,
                    f"{fault.kind} fault needs a device name; {fault.target!r} is not one",
                    _unknown("devices", fault.target, devices),
                )
            elif not (devices[fault.target].modbus or devices[fault.target].opcua):
                yield Finding(
                    loc,
                    f"device {fault.target!r} has no endpoint for a {fault.kind} fault",
                    "give the device a 'modbus:' or 'opcua:' server",
                )
            continue
        allowed = PLANT_FAULT_UNIT_TYPES.get(fault.kind)
        if allowed is None:
            continue  # a kind this check does not know (yet): nothing to cross-check
        fitting = [n for n, t in units.items() if t in allowed]
        if fault.target not in units:
            yield Finding(
                loc,
                f"unit {fault.target!r} does not exist",
                _unknown("units", fault.target, fitting),
            )
        elif units[fault.target] not in allowed:
            yield Finding(
                loc,
                f"a {fault.kind} fault acts on a {' or '.join(allowed)}, "
                f"but {fault.target!r} is a {units[fault.target]}",
                f"target a {' or '.join(allowed)}: {', '.join(fitting) or 'this plant has none'}",
            )


def _check_watch(scenario: Scenario) -> Iterator[Finding]:
    tags = {f"{d.name}.{t.name}" for d in scenario.devices for t in d.tags}
    for index, ref in enumerate(scenario.watch):
        if ref not in tags:
            yield Finding(
                ("watch", index), f"tag {ref!r} does not exist", _unknown("tags", ref, tags)
            )


def _check_gateway(scenario: Scenario) -> Iterator[Finding]:
    """The gateway polls devices that exist, over a server they have, for tags it maps."""
    if scenario.gateway is None:
        return
    devices = {d.name: d for d in scenario.devices}
    for index, source in enumerate(scenario.gateway.sources):
        loc: Loc = ("gateway", "sources", index)
        device = devices.get(source.device)
        if device is None:
            yield Finding(
                (*loc, "device"),
                f"device {source.device!r} does not exist",
                _unknown("devices", source.device, devices),
            )
            continue
        if getattr(device, source.protocol) is None:
            yield Finding(
                (*loc, "protocol"),
                f"device {source.device!r} has no {source.protocol} server to poll",
                f"add '{source.protocol}:' to it",
            )
            continue
        mapped = {t.name for t in device.tags if source.protocol == "opcua" or t.modbus}
        for t_index, tag in enumerate(source.tags or []):
            if tag not in mapped:
                yield Finding(
                    (*loc, "tags", t_index),
                    f"{source.device}.{tag} is not served over {source.protocol}",
                    _unknown("tags", tag, mapped),
                )


def _check_oee(scenario: Scenario) -> Iterator[Finding]:
    """The OEE tags exist."""
    oee = scenario.platform.oee
    if oee is None:
        return
    tags = {f"{d.name}.{t.name}" for d in scenario.devices for t in d.tags}
    for field in ("state", "good", "rejected"):
        ref = getattr(oee, field)
        if ref not in tags:
            yield Finding(
                ("platform", "oee", field),
                f"tag {ref!r} does not exist",
                _unknown("tags", ref, tags),
            )
