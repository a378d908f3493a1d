"""Sensors: what a device measures of a true plant signal, with range, noise, resolution, lag.

All measured tags of all devices form one bank stepped with vector operations each plant
step. Sensor faults (stuck, drift, noise burst, spike, offline, out of range, NaN) act
here: they change what devices see, never the plant itself. Each reading carries a
quality (Good, Uncertain, Bad) in OPC UA's terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from devices.plant.signals import FloatArray
from simlab.scenario.devices import SensorSpec
from simlab.scenario.faults import (
    DriftFault,
    FaultSpec,
    NanFault,
    NoiseBurstFault,
    OfflineFault,
    OutOfRangeFault,
    SpikeFault,
    StuckFault,
)
from simlab.units import convert

__all__ = ["MeasuredTag", "Quality", "SensorBank"]

OUT_OF_RANGE_MARGIN = 0.1  # share of the span beyond the range where a broken loop pins


class Quality(IntEnum):
    """Reading quality, named as OPC UA status codes' severities."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2


@dataclass(frozen=True)
class MeasuredTag:
    """A tag that reads a plant signal: where from, in which units, through which sensor."""

    name: str  # device.tag
    signal_index: int
    signal_unit: str
    tag_unit: str
    is_bool: bool
    sensor: SensorSpec | None


class SensorBank:
    """Every sensor of the lab; ``readings`` and ``quality`` are aligned with ``tags``."""

    def __init__(self, tags: list[MeasuredTag], rng: np.random.Generator) -> None:
        self.tags = tags
        self.position = {t.name: i for i, t in enumerate(tags)}
        self.rng = rng
        n = len(tags)
        specs = [t.sensor or SensorSpec() for t in tags]
        self.source = np.array([t.signal_index for t in tags], dtype=np.intp)
        # Affine unit conversion, signal unit → tag unit: tag = signal * gain + bias.
        self.bias = np.array([convert(0.0, t.signal_unit, t.tag_unit) for t in tags])
        self.gain = np.array([convert(1.0, t.signal_unit, t.tag_unit) for t in tags]) - self.bias
        self.is_bool = np.array([t.is_bool for t in tags], dtype=bool)
        self.low = np.array([s.range[0] if s.range else -np.inf for s in specs])
        self.high = np.array([s.range[1] if s.range else np.inf for s in specs])
        self.noise = np.array([s.noise for s in specs])
        self.resolution = np.array([s.resolution for s in specs])
        self.tau = np.array([s.lag for s in specs])
        self.lagged = np.zeros(n)
        self.readings = np.zeros(n)
        self.quality: npt.NDArray[np.int8] = np.zeros(n, dtype=np.int8)
        # Fault state, one slot per kind and sensor.
        self.stuck = np.zeros(n, dtype=bool)
        self.stuck_value = np.full(n, np.nan)
        self.drift_rate = np.zeros(n)
        self.drift = np.zeros(n)
        self.burst = np.zeros(n)
        self.spike = np.zeros(n)
        self.offline = np.zeros(n, dtype=bool)
        self.pinned = np.zeros(n, dtype=np.int8)  # +1 high, -1 low
        self.nan = np.zeros(n, dtype=bool)
        self._started = False

    def step(self, dt: float, plant_values: FloatArray) -> None:
        """Sample the plant: new readings and qualities for every sensor."""
        true = plant_values[self.source] * self.gain + self.bias
        if not self._started:
            self.lagged = true.copy()
            self._started = True
        alpha = np.where(self.tau > 0, 1.0 - np.exp(-dt / np.maximum(self.tau, 1e-9)), 1.0)
        self.lagged += (true - self.lagged) * alpha
        self.drift += self.drift_rate * dt
        noise = self.rng.standard_normal(len(self.tags)) * np.hypot(self.noise, self.burst)
        value = self.lagged + self.drift + noise + self.spike
        self.spike[:] = 0.0
        clipped = np.clip(value, self.low, self.high)
        # Uncertain (EU exceeded) when the process itself leaves the range, not when noise does.
        exceeded = (self.lagged < self.low) | (self.lagged > self.high)
        quality = np.where(exceeded, Quality.UNCERTAIN, Quality.GOOD).astype(np.int8)
        value = np.where(
            self.resolution > 0,
            np.round(clipped / np.where(self.resolution > 0, self.resolution, 1.0))
            * self.resolution,
            clipped,
        )
        value = np.where(self.is_bool, (true > 0.5).astype(np.float64), value)
        value = np.where(self.stuck, self.stuck_value, value)
        span = self.high - self.low
        value = np.where(self.pinned > 0, self.high + OUT_OF_RANGE_MARGIN * span, value)
        value = np.where(self.pinned < 0, self.low - OUT_OF_RANGE_MARGIN * span, value)
        value = np.where(self.nan, np.nan, value)
        value = np.where(self.offline, self.readings, value)
        bad = self.offline | self.nan | (self.pinned != 0)
        self.quality = np.where(bad, Quality.BAD, quality).astype(np.int8)
        self.readings = value

    def apply(self, tag: str, fault: FaultSpec) -> None:
        """Start a sensor fault on ``tag`` (``device.tag``)."""
        i = self.position[tag]
        match fault:
            case StuckFault():
                self.stuck[i] = True
                self.stuck_value[i] = self.readings[i] if fault.value is None else fault.value
            case DriftFault():
                self.drift_rate[i] = fault.rate
            case NoiseBurstFault():
                self.burst[i] = fault.std
            case SpikeFault():
                self.spike[i] = fault.magnitude
            case OfflineFault():
                self.offline[i] = True
            case OutOfRangeFault():
                if not np.isfinite(self.high[i] - self.low[i]):
                    raise ValueError(f"{tag} has no sensor range to go out of")
                self.pinned[i] = 1 if fault.side == "high" else -1
            case NanFault():
                self.nan[i] = True
            case _:
                raise ValueError(f"{fault.kind!r} is not a sensor fault")

    def clear(self, tag: str, kind: str) -> None:
        """End a sensor fault of ``kind`` on ``tag``; a drift's offset goes with it."""
        i = self.position[tag]
        match kind:
            case "stuck":
                self.stuck[i] = False
            case "drift":
                self.drift_rate[i] = 0.0
                self.drift[i] = 0.0
            case "noise_burst":
                self.burst[i] = 0.0
            case "spike":
                self.spike[i] = 0.0
            case "offline":
                self.offline[i] = False
            case "out_of_range":
                self.pinned[i] = 0
            case "nan":
                self.nan[i] = False
