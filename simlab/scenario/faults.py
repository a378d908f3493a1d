"""Faults section of a scenario: a timeline of things going wrong.

Sensor faults target a measured tag (``device.tag``) and change what the device sees, not
the plant. Plant faults target a unit and change the physics. Endpoint faults target a
device and change what its servers answer.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveFloat

from simlab.scenario.base import Spec

__all__ = [
    "ENDPOINT_FAULT_KINDS",
    "PLANT_FAULT_UNIT_TYPES",
    "SENSOR_FAULT_KINDS",
    "BearingWearFault",
    "CommLossFault",
    "DriftFault",
    "ExceptionFault",
    "FaultSpec",
    "FrozenFault",
    "JamFault",
    "LatencyFault",
    "LeakFault",
    "NanFault",
    "NoiseBurstFault",
    "OfflineFault",
    "OutOfRangeFault",
    "SpikeFault",
    "StuckFault",
    "TripFault",
    "WordSwapFault",
    "WrongUnitIdFault",
]


class _Fault(Spec):
    at: float = Field(0.0, ge=0, description="start, simulated seconds")
    duration: PositiveFloat | None = Field(None, description="s; none: until cleared")
    target: str = Field(description="'device.tag' for sensor faults, 'unit' for plant faults")
    note: str = ""


class StuckFault(_Fault):
    """The sensor reading freezes (at ``value``, or at the reading when the fault starts)."""

    kind: Literal["stuck"]
    value: float | None = None


class DriftFault(_Fault):
    """The reading drifts away from the truth at ``rate`` tag units per second."""

    kind: Literal["drift"]
    rate: float


class NoiseBurstFault(_Fault):
    """The noise grows to ``std`` tag units for a while."""

    kind: Literal["noise_burst"]
    std: PositiveFloat


class SpikeFault(_Fault):
    """One scan's reading jumps by ``magnitude`` tag units."""

    kind: Literal["spike"]
    magnitude: float


class OfflineFault(_Fault):
    """The sensor stops answering: the reading keeps its last value with Bad quality."""

    kind: Literal["offline"]


class OutOfRangeFault(_Fault):
    """The reading pins beyond its range (a broken wire or a shorted loop)."""

    kind: Literal["out_of_range"]
    side: Literal["high", "low"] = "high"


class NanFault(_Fault):
    """The reading becomes NaN."""

    kind: Literal["nan"]


class JamFault(_Fault):
    """A conveyor jams: the motor may run but items do not move."""

    kind: Literal["jam"]


class BearingWearFault(_Fault):
    """A motor bearing wears at ``rate`` (0..1 per simulated hour): vibration and heat rise."""

    kind: Literal["bearing_wear"]
    rate: PositiveFloat = 0.5


class LeakFault(_Fault):
    """A tank leaks ``flow`` m3/h (while it holds liquid)."""

    kind: Literal["leak"]
    flow: PositiveFloat


class TripFault(_Fault):
    """A pump or motor trips: it stops whatever its command says."""

    kind: Literal["trip"]


class CommLossFault(_Fault):
    """The device's endpoints stop answering and drop their connections."""

    kind: Literal["comm_loss"]
    protocol: Literal["modbus", "opcua", "both"] = "both"


class LatencyFault(_Fault):
    """Every reply of the device's endpoints is delayed by ``delay`` milliseconds."""

    kind: Literal["latency"]
    protocol: Literal["modbus", "opcua", "both"] = "both"
    delay: PositiveFloat = Field(description="ms")


class ExceptionFault(_Fault):
    """The Modbus server answers every request with exception ``code`` (4 failure, 6 busy)."""

    kind: Literal["exception"]
    code: Literal[4, 6] = 4


class FrozenFault(_Fault):
    """The device's endpoints keep serving the values of the moment the fault started."""

    kind: Literal["frozen"]
    protocol: Literal["modbus", "opcua", "both"] = "both"


class WordSwapFault(_Fault):
    """The Modbus server swaps the words of multi-register values (a misconfigured device)."""

    kind: Literal["word_swap"]


class WrongUnitIdFault(_Fault):
    """The Modbus server answers only unit id ``unit_id`` instead of the configured ones."""

    kind: Literal["wrong_unit_id"]
    unit_id: int = Field(ge=0, le=247)


SENSOR_FAULT_KINDS = ("stuck", "drift", "noise_burst", "spike", "offline", "out_of_range", "nan")
PLANT_FAULT_UNIT_TYPES: dict[str, tuple[str, ...]] = {
    "jam": ("conveyor",),
    "bearing_wear": ("motor",),
    "leak": ("tank",),
    "trip": ("pump", "motor"),
}
ENDPOINT_FAULT_KINDS = ("comm_loss", "latency", "exception", "frozen", "word_swap", "wrong_unit_id")

FaultSpec = Annotated[
    StuckFault
    | DriftFault
    | NoiseBurstFault
    | SpikeFault
    | OfflineFault
    | OutOfRangeFault
    | NanFault
    | JamFault
    | BearingWearFault
    | LeakFault
    | TripFault
    | CommLossFault
    | LatencyFault
    | ExceptionFault
    | FrozenFault
    | WordSwapFault
    | WrongUnitIdFault,
    Field(discriminator="kind"),
]
