"""A device: a PLC or smart sensor whose tag table is refreshed once per scan.

A scan reads the measured tags from the sensors, runs the logic blocks in declared order,
then writes the driving tags to the plant's inputs (converted to the signal's unit), like
a PLC's input image → program → output image cycle. Client writes (setpoints, commands)
land in the tag table at once and reach the plant at the next scan.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from devices.plant.plant import Plant
from devices.plc.blocks import Block, TagValues, build_block
from devices.sensors import Quality, SensorBank
from simlab.errors import TagNotWritable, UnknownTag, ValueOutOfRange
from simlab.scenario.checks import did_you_mean
from simlab.scenario.devices import PlcSpec, SmartSensorSpec, TagSpec
from simlab.scenario.plant import SignalDef
from simlab.units import convert

__all__ = ["Device", "TagValue"]

TagValue = float | bool | str


@dataclass(frozen=True)
class _Drive:
    tag: str
    plant_index: int
    gain: float  # signal = tag * gain + bias
    bias: float


class Device:
    """One PLC or smart sensor of the lab."""

    def __init__(self, spec: PlcSpec | SmartSensorSpec, plant: Plant, sensors: SensorBank) -> None:
        self.spec = spec
        self.name = spec.name
        self.scan_time = spec.scan_time
        self.plant = plant
        self.sensors = sensors
        self.specs: dict[str, TagSpec] = {t.name: t for t in spec.tags}
        self.tags: TagValues = {}
        self.quality: dict[str, Quality] = {t.name: Quality.GOOD for t in spec.tags}
        self.blocks: list[Block] = (
            [build_block(b) for b in spec.logic] if isinstance(spec, PlcSpec) else []
        )
        self._measured = [
            (t.name, sensors.position[f"{spec.name}.{t.name}"], t.type == "bool")
            for t in spec.tags
            if t.signal
        ]
        self._drives: list[_Drive] = []
        for tag in spec.tags:
            if tag.drives:
                signal = plant.signals.definitions[plant.index(tag.drives)]
                bias = convert(0.0, self.unit_of(tag, signal), signal.unit)
                gain = convert(1.0, self.unit_of(tag, signal), signal.unit) - bias
                self._drives.append(_Drive(tag.name, plant.index(tag.drives), gain, bias))
        self.scans = 0
        self.on_write: Callable[[str, TagValue], None] | None = None
        """Called after every accepted client write, with the tag and the value written."""
        self._initialise()

    @staticmethod
    def unit_of(tag: TagSpec, signal: SignalDef | None) -> str:
        """The tag's unit: declared, else its signal's, else none."""
        if tag.unit is not None:
            return tag.unit
        return signal.unit if signal is not None else ("bool" if tag.type == "bool" else "")

    def unit(self, tag: str) -> str:
        """Engineering unit of ``tag`` ('' for none, 'bool' for bool tags)."""
        spec = self._spec(tag)
        ref = spec.signal or spec.drives
        signal = self.plant.signals.definitions[self.plant.index(ref)] if ref else None
        return self.unit_of(spec, signal)

    def _initialise(self) -> None:
        values = self.plant.values
        drives = {d.tag: d for d in self._drives}
        for tag in self.spec.tags:
            if tag.initial is not None:
                self.tags[tag.name] = _coerce(tag, tag.initial)
            elif tag.name in drives:
                d = drives[tag.name]
                self.tags[tag.name] = _coerce(tag, (values[d.plant_index] - d.bias) / d.gain)
            else:
                self.tags[tag.name] = _coerce(tag, "" if tag.type == "string" else 0.0)
        self._read_inputs()

    def scan(self) -> None:
        """One scan: inputs → logic → outputs."""
        self._read_inputs()
        for block in self.blocks:
            block.scan(self.scan_time, self.tags)
        values = self.plant.values
        for d in self._drives:
            values[d.plant_index] = float(self.tags[d.tag]) * d.gain + d.bias
        self.scans += 1

    def _read_inputs(self) -> None:
        readings, quality = self.sensors.readings, self.sensors.quality
        for name, position, is_bool in self._measured:
            reading = float(readings[position])
            self.tags[name] = bool(reading > 0.5) if is_bool else reading
            self.quality[name] = Quality(int(quality[position]))

    def read(self, tag: str) -> TagValue:
        """Current value of ``tag``."""
        self._spec(tag)
        return self.tags[tag]

    def write(self, tag: str, value: TagValue) -> None:
        """A client's write: refused unless the tag is writable and the value fits."""
        spec = self._spec(tag)
        if not spec.writable:
            writable = [t.name for t in self.spec.tags if t.writable]
            raise TagNotWritable(
                f"{self.name}.{tag} is read-only; writable tags: {', '.join(writable) or 'none'}"
            )
        coerced = _coerce(spec, value)
        if spec.range is not None and isinstance(coerced, float):
            low, high = spec.range
            if not low <= coerced <= high:
                raise ValueOutOfRange(
                    f"{self.name}.{tag} = {coerced} is outside its range [{low}, {high}]"
                )
        self.tags[tag] = coerced
        if self.on_write is not None:
            self.on_write(tag, coerced)

    def _spec(self, tag: str) -> TagSpec:
        if tag not in self.specs:
            guess = did_you_mean(tag, self.specs)
            raise UnknownTag(f"device {self.name!r} has no tag {tag!r}. {guess}".strip())
        return self.specs[tag]


def _coerce(tag: TagSpec, value: object) -> TagValue:
    """``value`` as the tag's type; ValueOutOfRange (a TagError) when it cannot be."""
    try:
        if tag.type == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                return value.lower() in ("true", "1")
            return bool(value)
        if tag.type == "string":
            return str(value)
        number = float(value)  # type: ignore[arg-type]
        if math.isnan(number):
            raise ValueError("NaN")
        return float(round(number)) if tag.type == "int" else number
    except (TypeError, ValueError) as err:
        raise ValueOutOfRange(f"{tag.name}: {value!r} is not a valid {tag.type}") from err
