"""Plant section of a scenario: process units and the signals each one has.

The signal catalogue lives here, beside the declarations, so that ``simlab validate``
can check every ``signal:`` and ``drives:`` reference before any model is built, and the
physics models in ``devices.plant`` register exactly these signals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, PositiveFloat

from simlab.scenario.base import Name, Spec

__all__ = [
    "ConveyorSpec",
    "MotorSpec",
    "PlantSpec",
    "PumpSpec",
    "SignalDef",
    "StationSpec",
    "TankSpec",
    "ThermalSpec",
    "UnitSpec",
    "ValveSpec",
]


@dataclass(frozen=True)
class SignalDef:
    """One plant signal: ``input`` signals are driven by devices, ``state`` ones by physics."""

    name: str
    unit: str
    kind: Literal["input", "state"]
    description: str


def _sig(
    name: str, unit: str, description: str, kind: Literal["input", "state"] = "state"
) -> SignalDef:
    return SignalDef(name, unit, kind, description)


class TankSpec(Spec):
    """An open vertical tank; level follows the mass balance of what flows in and out."""

    type: Literal["tank"]
    name: Name
    area: PositiveFloat = Field(description="cross-section, m2")
    height: PositiveFloat = Field(description="height of the overflow, m")
    initial_level: float = Field(0.0, ge=0, description="level at t=0, m")

    def signals(self) -> list[SignalDef]:
        return [
            _sig("level", "m", "liquid level above the bottom"),
            _sig("volume", "m3", "liquid volume"),
            _sig("inflow", "m3/h", "sum of flows into the tank"),
            _sig("outflow", "m3/h", "sum of flows out of the tank, overflow included"),
            _sig("overflowing", "bool", "true while liquid spills over the top"),
        ]


class PumpSpec(Spec):
    """A centrifugal pump: flow from its curve against the static head, speed ramps."""

    type: Literal["pump"]
    name: Name
    max_flow: PositiveFloat = Field(description="flow at full speed and zero head, m3/h")
    shutoff_head: PositiveFloat = Field(description="head at full speed and zero flow, m")
    static_head: float = Field(0.0, ge=0, description="fixed lift from suction to discharge, m")
    spin_time: float = Field(2.0, ge=0, description="time from stop to full speed, s")
    source: Name | None = Field(None, description="tank it draws from (none: an endless supply)")
    to: Name | None = Field(None, description="tank it fills (none: a drain)")
    initial_run: bool = Field(False, description="run command at t=0 when no device drives it")
    initial_speed: float = Field(100.0, ge=0, le=100, description="speed command at t=0, %")

    def signals(self) -> list[SignalDef]:
        return [
            _sig("cmd_run", "bool", "run command", "input"),
            _sig("cmd_speed", "%", "speed command", "input"),
            _sig("running", "bool", "true while the pump turns"),
            _sig("speed", "%", "actual speed"),
            _sig("flow", "m3/h", "delivered flow"),
            _sig("run_hours", "h", "accumulated running time"),
        ]


class ValveSpec(Spec):
    """A control valve draining a tank; flow ∝ opening × √level, opening moves at a finite rate."""

    type: Literal["valve"]
    name: Name
    tank: Name = Field(description="tank it drains")
    to: Name | None = Field(None, description="tank it fills (none: a drain)")
    cv: PositiveFloat = Field(description="flow at full opening and 1 m level, m3/h")
    travel_time: float = Field(5.0, ge=0, description="time from closed to fully open, s")
    initial_position: float = Field(0.0, ge=0, le=100, description="opening at t=0, %")

    def signals(self) -> list[SignalDef]:
        return [
            _sig("cmd_position", "%", "position command", "input"),
            _sig("position", "%", "actual opening"),
            _sig("flow", "m3/h", "flow through the valve"),
        ]


class ThermalSpec(Spec):
    """A thermal mass with a heater, losses to ambient and (with a tank) mixing of inflow."""

    type: Literal["thermal"]
    name: Name
    tank: Name | None = Field(None, description="tank whose water is the mass (else `mass`)")
    mass: PositiveFloat = Field(1000.0, description="mass when no tank is named, kg")
    specific_heat: PositiveFloat = Field(4186.0, description="J/(kg·K)")
    heater_power: float = Field(10.0, ge=0, description="heater power at 100 %, kW")
    loss_coefficient: float = Field(50.0, ge=0, description="heat loss to ambient, W/K")
    ambient: float = Field(20.0, description="ambient temperature, degC")
    inlet_temperature: float = Field(15.0, description="temperature of liquid flowing in, degC")
    initial_temperature: float = Field(20.0, description="temperature at t=0, degC")

    def signals(self) -> list[SignalDef]:
        return [
            _sig("cmd_heater", "%", "heater power command", "input"),
            _sig("temperature", "degC", "temperature of the mass"),
            _sig("heater_power", "kW", "power delivered by the heater"),
        ]


class StationSpec(Spec):
    """A place along a conveyor: a presence sensor, a filler, a capper or an inspection."""

    name: Name
    position: float = Field(ge=0, description="distance from the infeed, m")
    kind: Literal["sensor", "fill", "cap", "inspect"] = "sensor"
    target: float = Field(500.0, gt=0, description="fill: target volume, mL")
    spread: float = Field(2.0, ge=0, description="fill: standard deviation of the volume, mL")
    failure_rate: float = Field(0.0, ge=0, le=1, description="cap: share of caps not seated")
    tolerance: float = Field(5.0, gt=0, description="inspect: allowed fill error, mL")


class ConveyorSpec(Spec):
    """A belt carrying discrete items past stations; items enter at a rate while it runs."""

    type: Literal["conveyor"]
    name: Name
    length: PositiveFloat = Field(description="m")
    speed: PositiveFloat = Field(description="belt speed when running, m/s")
    item_length: PositiveFloat = Field(0.08, description="length of one item, m")
    infeed_rate: PositiveFloat = Field(60.0, description="items per minute offered at the infeed")
    capacity: int = Field(256, ge=1, le=4096, description="most items on the belt at once")
    stations: list[StationSpec] = Field(default_factory=list)
    initial_run: bool = False

    def signals(self) -> list[SignalDef]:
        signals = [
            _sig("cmd_run", "bool", "run command", "input"),
            _sig("running", "bool", "true while the belt moves"),
            _sig("jammed", "bool", "true while a jam blocks the belt"),
            _sig("speed", "m/s", "actual belt speed"),
            _sig("items_in", "count", "items that entered at the infeed"),
            _sig("items_out", "count", "good items that left at the end"),
            _sig("rejected", "count", "items rejected by an inspection"),
            _sig("items_on_belt", "count", "items currently on the belt"),
        ]
        for station in self.stations:
            signals.append(_sig(f"{station.name}_present", "bool", f"item at {station.name}"))
            if station.kind == "fill":
                signals.append(_sig(f"{station.name}_volume", "mL", "volume of the last fill"))
        return signals


class MotorSpec(Spec):
    """An induction motor: speed ramp, current, winding temperature, vibration, bearing wear."""

    type: Literal["motor"]
    name: Name
    rated_speed: PositiveFloat = Field(1480.0, description="rpm")
    rated_current: PositiveFloat = Field(30.0, description="A")
    no_load_current: float = Field(
        0.35, gt=0, lt=1, description="share of rated current at no load"
    )
    load: float = Field(70.0, ge=0, le=150, description="mechanical load, % of rated")
    accel_time: float = Field(3.0, ge=0, description="time from stop to rated speed, s")
    thermal_time_constant: PositiveFloat = Field(600.0, description="winding heating, s")
    rated_temperature_rise: PositiveFloat = Field(60.0, description="winding rise at rated load, K")
    ambient: float = Field(25.0, description="degC")
    base_vibration: float = Field(
        1.2, ge=0, description="vibration of a healthy machine at rated speed, mm/s"
    )
    wear_vibration: float = Field(
        8.0, ge=0, description="added vibration at full bearing wear, mm/s"
    )
    initial_wear: float = Field(0.0, ge=0, le=1, description="bearing wear at t=0, 0..1")
    initial_run: bool = False
    initial_speed: float = Field(100.0, ge=0, le=100)
    pump: Name | None = Field(
        None, description="pump on this motor's shaft: it turns with the motor"
    )

    def signals(self) -> list[SignalDef]:
        return [
            _sig("cmd_run", "bool", "run command", "input"),
            _sig("cmd_speed", "%", "speed command", "input"),
            _sig("running", "bool", "true while the shaft turns"),
            _sig("speed", "rpm", "shaft speed"),
            _sig("current", "A", "stator current"),
            _sig("winding_temperature", "degC", "stator winding temperature"),
            _sig("vibration", "mm/s", "bearing housing vibration velocity, RMS"),
            _sig("bearing_wear", "", "bearing wear, 0 new .. 1 failed (hidden truth)"),
            _sig("run_hours", "h", "accumulated running time"),
        ]


UnitSpec = Annotated[
    TankSpec | PumpSpec | ValveSpec | ThermalSpec | ConveyorSpec | MotorSpec,
    Field(discriminator="type"),
]


class PlantSpec(Spec):
    """The process: its units, connected by name."""

    units: list[UnitSpec] = Field(default_factory=list)

    def signal_catalogue(self) -> dict[str, SignalDef]:
        """Every plant signal by full name ``unit.signal``."""
        return {
            f"{unit.name}.{signal.name}": signal for unit in self.units for signal in unit.signals()
        }
