"""IT side of a scenario: where tags live in the Unified Namespace, the edge gateway, the
MQTT-native sensors and the platform's KPIs.

UNS paths follow ISA-95: ``enterprise/site/area/line/cell/asset/tag``. The scenario names
the enterprise, site and area once (``uns:``); each device names its line, cell and asset
(``devices[i].uns:``), and each tag appears under its device's asset by its own name.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveFloat, StringConstraints

from simlab.scenario.base import Name, Spec

__all__ = [
    "DeviceUnsSpec",
    "GatewaySource",
    "GatewaySpec",
    "MqttPublishSpec",
    "OeeSpec",
    "PlatformSpec",
    "UnsSpec",
]

Segment = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64),
    Field(description="lowercase UNS path segment: letters, digits, '_' or '-'"),
]


Convention = Literal["uns", "sparkplug"]


class UnsSpec(Spec):
    """The top of the lab's Unified Namespace."""

    enterprise: Segment = "simlab"
    site: Segment = "training_base"
    area: Segment = "lab"


class DeviceUnsSpec(Spec):
    """Where a device's tags sit in the UNS (defaults: the scenario name and the device name)."""

    line: Segment | None = None
    cell: Segment | None = None
    asset: Segment | None = None


class MqttPublishSpec(Spec):
    """An MQTT-native smart sensor: it publishes its own tags to the broker."""

    interval: PositiveFloat = Field(1.0, description="s between publications (simulated)")
    convention: Convention = "uns"


class GatewaySource(Spec):
    """A device the edge gateway polls, and over which protocol."""

    device: Name
    protocol: Literal["modbus", "opcua"]
    tags: list[Name] | None = Field(None, description="default: every tag the protocol maps")


def _both_conventions() -> list[Convention]:
    return ["uns", "sparkplug"]


class GatewaySpec(Spec):
    """The built-in edge gateway: polls devices over real Modbus/OPC UA clients, publishes."""

    name: Name = "edge1"
    poll_interval: PositiveFloat = Field(1.0, description="s between polls (wall time)")
    publish: list[Convention] = Field(default_factory=_both_conventions, min_length=1)
    sparkplug_group: Name = Field("simlab", description="Sparkplug group id")
    sources: list[GatewaySource] = Field(min_length=1)


class OeeSpec(Spec):
    """Which tags give the line's states and counts for OEE (ISO 22400-2)."""

    state: str = Field(description="'device.tag' holding the PackML state code")
    good: str = Field(description="'device.tag' counting good items")
    rejected: str = Field(description="'device.tag' counting rejected items")
    ideal_rate_per_min: PositiveFloat = Field(description="ideal output, items per minute")


class PlatformSpec(Spec):
    """The mini IIoT platform of the lab."""

    oee: OeeSpec | None = None
