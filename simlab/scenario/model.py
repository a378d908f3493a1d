"""The scenario: the root of the file format (``format_version: 1``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, Field, PositiveFloat

from simlab.clock import DEFAULT_EPOCH
from simlab.scenario.base import Name, Spec
from simlab.scenario.devices import DeviceSpec
from simlab.scenario.faults import FaultSpec
from simlab.scenario.integration import GatewaySpec, PlatformSpec, UnsSpec
from simlab.scenario.plant import PlantSpec

__all__ = ["FORMAT_VERSION", "ClockSpec", "Scenario", "TruthSpec"]

FORMAT_VERSION = 1


class ClockSpec(Spec):
    """How simulated time advances."""

    step: PositiveFloat = Field(0.1, le=1.0, description="plant integration step, s")
    speed: PositiveFloat = Field(1.0, description="real-time factor of live labs")
    epoch: AwareDatetime = Field(DEFAULT_EPOCH, description="UTC instant of t=0")


class TruthSpec(Spec):
    """What the truth recorder keeps."""

    interval: PositiveFloat | None = Field(
        None, description="s between samples (default: every step)"
    )


class Scenario(Spec):
    """A plant, its devices and endpoints, and a timeline of faults."""

    format_version: Literal[1] = Field(description="version of this file format; this is 1")
    name: Name
    title: str = ""
    description: str = ""
    seed: int = Field(0, ge=0, description="seed of every random draw in the lab")
    clock: ClockSpec = Field(default_factory=ClockSpec)
    truth: TruthSpec = Field(default_factory=TruthSpec)
    plant: PlantSpec = Field(default_factory=PlantSpec)
    devices: list[DeviceSpec] = Field(default_factory=list)
    faults: list[FaultSpec] = Field(default_factory=list)
    uns: UnsSpec = Field(default_factory=UnsSpec)
    gateway: GatewaySpec | None = None
    platform: PlatformSpec = Field(default_factory=PlatformSpec)
    watch: list[str] = Field(
        default_factory=list, description="'device.tag' values the heartbeat shows"
    )

    @property
    def epoch(self) -> datetime:
        return self.clock.epoch

    def uns_path(self, device: str, tag: str) -> str:
        """The UNS topic of ``device.tag``: enterprise/site/area/line/cell/asset/tag."""
        spec = next(d for d in self.devices if d.name == device)
        line = spec.uns.line or self.name.replace("_", "-")
        cell = spec.uns.cell or device
        asset = spec.uns.asset or device
        top = self.uns
        return "/".join((top.enterprise, top.site, top.area, line, cell, asset, tag))
