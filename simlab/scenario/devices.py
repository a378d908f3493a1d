"""Devices section of a scenario: PLCs and smart sensors, their tags, logic and protocol maps."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveFloat, model_validator

from simlab.scenario.base import Name, Range, Spec, UnitSymbol
from simlab.scenario.integration import DeviceUnsSpec, MqttPublishSpec

__all__ = [
    "CompareSpec",
    "Condition",
    "CounterSpec",
    "DeviceSpec",
    "HysteresisSpec",
    "IdentitySpec",
    "InterlockSpec",
    "LogicSpec",
    "ModbusDeviceSpec",
    "ModbusTagSpec",
    "OpcUaDeviceSpec",
    "OpcUaTagSpec",
    "PackMLSpec",
    "PidSpec",
    "PlcSpec",
    "SensorSpec",
    "SmartSensorSpec",
    "TagSpec",
    "TimerSpec",
    "register_count",
]

ModbusType = Literal["bool", "int16", "uint16", "int32", "uint32", "float32", "float64", "string"]

_REGISTERS = {
    "bool": 1,
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "float64": 4,
}


def register_count(data_type: str, length: int) -> int:
    """16-bit registers a Modbus value occupies (a string: two characters per register)."""
    return (length + 1) // 2 if data_type == "string" else _REGISTERS[data_type]


class SensorSpec(Spec):
    """How a tag measures its signal: range, noise, resolution and lag, in the tag's unit."""

    range: Range | None = Field(None, description="measuring range; values outside clamp")
    noise: float = Field(0.0, ge=0, description="standard deviation of white noise")
    resolution: float = Field(0.0, ge=0, description="quantisation step (0: none)")
    lag: float = Field(0.0, ge=0, description="first-order time constant, s")


class ModbusTagSpec(Spec):
    """Where and how a tag appears in the device's Modbus map (addresses are 0-based)."""

    table: Literal["coil", "discrete_input", "input_register", "holding_register"]
    address: int = Field(ge=0, le=65535, description="0-based protocol address")
    type: ModbusType = "float32"
    word_order: Literal["ABCD", "CDAB", "BADC", "DCBA"] = "ABCD"
    gain: float = Field(1.0, description="raw = (value - offset) * gain")
    offset: float = 0.0
    length: int = Field(16, ge=1, le=250, description="string length in characters")

    @model_validator(mode="after")
    def _bits_are_bool(self) -> ModbusTagSpec:
        bit_table = self.table in ("coil", "discrete_input")
        if bit_table != (self.type == "bool"):
            raise ValueError(
                "coils and discrete inputs hold type 'bool', and only they do; "
                f"got table {self.table!r} with type {self.type!r}"
            )
        if self.gain == 0:
            raise ValueError("gain must not be 0")
        return self

    def registers(self) -> int:
        return register_count(self.type, self.length)


class OpcUaTagSpec(Spec):
    """Where a tag appears in the device's OPC UA address space."""

    folder: str | None = Field(
        None, description="folder path under the device, e.g. 'Level/Sensors'"
    )
    browse_name: str | None = Field(None, description="default: the tag name")


class TagSpec(Spec):
    """A device tag: a measured signal, a drive to a plant input, or an internal value."""

    name: Name
    type: Literal["bool", "int", "float", "string"] = "float"
    unit: UnitSymbol | None = Field(None, description="default: the bound signal's unit")
    description: str = ""
    signal: str | None = Field(None, description="plant signal this tag measures, 'unit.signal'")
    drives: str | None = Field(None, description="plant input this tag writes, 'unit.signal'")
    sensor: SensorSpec | None = None
    initial: float | bool | str | None = None
    writable: bool = Field(False, description="clients may write it (setpoints, commands)")
    range: Range | None = Field(None, description="allowed values; writes outside are refused")
    modbus: ModbusTagSpec | None = None
    opcua: OpcUaTagSpec | None = None

    @model_validator(mode="after")
    def _one_binding(self) -> TagSpec:
        if self.signal and self.drives:
            raise ValueError("a tag either measures a 'signal' or 'drives' a plant input, not both")
        if self.sensor and not self.signal:
            raise ValueError("'sensor' needs 'signal': only a measured tag has a sensor")
        if self.signal and self.writable:
            raise ValueError("a measured tag (with 'signal') cannot be writable")
        return self


class IdentitySpec(Spec):
    """Device identification (OPC UA DI names; Modbus FC 43/14 objects)."""

    manufacturer: str = "simlab"
    model: str = "SIM-PLC"
    serial_number: str = "0001"
    revision: str = "1.0"
    product_code: str = "SIM"
    vendor_url: str = "https://example.invalid/simlab"


class ModbusDeviceSpec(Spec):
    """The device's Modbus TCP server."""

    port: int = Field(5020, ge=1, le=65535)
    unit_ids: list[int] = Field(default_factory=lambda: [1], min_length=1)


class UserSpec(Spec):
    """An OPC UA user (username/password identity token)."""

    name: str = Field(min_length=1)
    password: str


class OpcUaDeviceSpec(Spec):
    """The device's OPC UA server."""

    port: int = Field(4840, ge=1, le=65535)
    namespace: str = Field("urn:simlab", description="namespace URI of the device's nodes")
    security: list[Literal["None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt"]] = Field(
        ["None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt"],
        min_length=1,
        description="endpoints offered; Basic256Sha256 ones use a certificate made on first run",
    )
    anonymous: bool = True
    users: list[UserSpec] = Field(default_factory=list)
    auto_trust: bool = Field(True, description="accept every client certificate")
    methods: dict[Annotated[str, Field(pattern=r"^[A-Z][A-Za-z0-9_]*$", max_length=48)], Name] = (
        Field(
            default_factory=dict,
            description="OPC UA methods on the device object, e.g. {Start: cmd_start}: "
            "calling one pulses its bool command tag (the PLC consumes it at its next scan)",
        )
    )

    @model_validator(mode="after")
    def _someone_can_log_in(self) -> OpcUaDeviceSpec:
        if not self.anonymous and not self.users:
            raise ValueError(
                "with 'anonymous: false' nobody can log in: add 'users:' or allow anonymous"
            )
        names = [user.name for user in self.users]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"user names must be unique; repeated: {', '.join(duplicates)}")
        return self


class Condition(Spec):
    """A comparison of a tag with a constant, e.g. ``{tag: level, op: '<', value: 0.2}``."""

    tag: Name
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    value: float


class PidSpec(Spec):
    """PID controller (ISA form) with output clamping and anti-windup."""

    type: Literal["pid"]
    name: Name
    pv: Name = Field(description="process value tag")
    sp: Name = Field(description="setpoint tag")
    out: Name = Field(description="output tag")
    kp: float = 1.0
    ti: float = Field(0.0, ge=0, description="integral time, s (0: no integral action)")
    td: float = Field(0.0, ge=0, description="derivative time, s")
    out_range: Range = (0.0, 100.0)
    direction: Literal["reverse", "direct"] = Field(
        "reverse", description="reverse: output rises when pv is below sp"
    )
    enable: Name | None = Field(
        None,
        description="bool tag: false = manual, the output is left to the operator and the "
        "PID tracks it for a bumpless return to automatic",
    )


class HysteresisSpec(Spec):
    """On/off control with a dead band between ``low`` and ``high``."""

    type: Literal["hysteresis"]
    name: Name
    pv: Name
    out: Name
    low: float
    high: float
    on_when: Literal["below", "above"] = Field(
        "below", description="below: on under low, off over high; above: the reverse"
    )
    on_value: float = Field(100.0, description="value written to a numeric 'out' when on")

    @model_validator(mode="after")
    def _band(self) -> HysteresisSpec:
        if not self.low < self.high:
            raise ValueError(f"need low < high, got low={self.low} high={self.high}")
        return self


class InterlockSpec(Spec):
    """Forces tags off while a condition holds; a latched one waits for a reset."""

    type: Literal["interlock"]
    name: Name
    when: Condition
    trips: list[Name] = Field(min_length=1, description="tags forced to 0/false while active")
    latch: bool = False
    reset: Name | None = Field(None, description="bool tag that clears a latched trip")
    active: Name | None = Field(None, description="bool tag set while the interlock acts")


class CompareSpec(Spec):
    """Sets a bool tag while a condition holds (a limit switch in logic, e.g. an alarm bit)."""

    type: Literal["compare"]
    name: Name
    when: Condition
    out: Name


class TimerSpec(Spec):
    """IEC 61131-3 timers: TON (on delay), TOF (off delay), TP (pulse)."""

    type: Literal["timer"]
    name: Name
    kind: Literal["ton", "tof", "tp"] = "ton"
    input: Name
    preset: PositiveFloat = Field(description="s")
    output: Name
    elapsed: Name | None = None


class CounterSpec(Spec):
    """IEC 61131-3 counters: CTU counts rising edges up, CTD down."""

    type: Literal["counter"]
    name: Name
    kind: Literal["ctu", "ctd"] = "ctu"
    input: Name
    count: Name = Field(description="tag holding the count")
    preset: int = Field(0, ge=0)
    reset: Name | None = None
    done: Name | None = Field(None, description="bool tag: count reached preset")


class PackMLSpec(Spec):
    """A PackML-style state machine (ISA-TR88.00.02) for a discrete line."""

    type: Literal["packml"]
    name: Name
    state: Name = Field(description="int tag holding the state code")
    start: Name
    stop: Name
    reset: Name
    hold: Name | None = None
    unhold: Name | None = None
    abort: Name | None = None
    clear: Name | None = None
    execute_output: Name = Field(description="bool tag true while the line should produce")
    hold_when: Condition | None = None
    abort_when: Condition | None = None
    starting_time: float = Field(2.0, ge=0)
    stopping_time: float = Field(2.0, ge=0)
    resetting_time: float = Field(1.0, ge=0)
    initial_state: Literal["stopped", "idle"] = "stopped"


LogicSpec = Annotated[
    PidSpec | HysteresisSpec | InterlockSpec | CompareSpec | TimerSpec | CounterSpec | PackMLSpec,
    Field(discriminator="type"),
]


class _DeviceBase(Spec):
    name: Name
    description: str = ""
    identity: IdentitySpec = Field(default_factory=IdentitySpec)
    tags: list[TagSpec] = Field(default_factory=list)
    modbus: ModbusDeviceSpec | None = None
    opcua: OpcUaDeviceSpec | None = None
    uns: DeviceUnsSpec = Field(default_factory=DeviceUnsSpec)


class PlcSpec(_DeviceBase):
    """A PLC: a scan cycle that reads inputs, runs its logic in order, writes outputs."""

    type: Literal["plc"]
    scan_time: PositiveFloat = Field(0.1, description="s")
    logic: list[LogicSpec] = Field(default_factory=list)


class SmartSensorSpec(_DeviceBase):
    """A smart sensor: measured tags with their own endpoints, no logic."""

    type: Literal["sensor"]
    scan_time: PositiveFloat = Field(0.1, description="s")
    mqtt: MqttPublishSpec | None = Field(None, description="publish the tags to the broker")


DeviceSpec = Annotated[PlcSpec | SmartSensorSpec, Field(discriminator="type")]
