"""The lab: a running scenario, composed of clock, plant, sensors, devices, faults and truth.

``async with Lab(scenario) as lab`` builds everything; with a :class:`VirtualClock` (the
default) the lab moves only through :meth:`Lab.run_for`, as fast as the CPU allows, and a
run is a pure function of scenario and seed. With a :class:`RealTimeClock` a task owned by
the lab steps it in time with the wall clock until the ``async with`` block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import TypeAdapter, ValidationError

from devices.device import Device, TagValue
from devices.endpoints.audit import SessionAudit
from devices.faults import FaultEngine
from devices.plant.plant import Plant
from devices.sensors import MeasuredTag, Quality, SensorBank
from simlab.addresses import EndpointAddress, plan_ports
from simlab.clock import Clock, RealTimeClock, VirtualClock
from simlab.errors import FaultError, LabError, UnknownTag
from simlab.scenario.checks import did_you_mean
from simlab.scenario.faults import ENDPOINT_FAULT_KINDS, FaultSpec
from simlab.scenario.loader import format_path
from simlab.scenario.model import Scenario
from simlab.truth import TruthRecorder

if TYPE_CHECKING:
    from simlab.endpoints import EndpointSet
    from simlab.itstack import ItStack

__all__ = ["Lab", "default_state_dir"]

YIELD_EVERY = 16  # steps between yields to the event loop on a virtual clock
_FAULT = TypeAdapter[FaultSpec](FaultSpec)


class Lab:
    """A running scenario."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        clock: Clock | None = None,
        seed: int | None = None,
        serve: bool = False,
        host: str = "127.0.0.1",
        port_offset: int = 0,
        auto_ports: bool = False,
        state_dir: Path | None = None,
        broker: str | None = None,
        api_host: str = "127.0.0.1",
        api_port: int = 0,
    ) -> None:
        """``serve`` starts the devices' OPC UA and Modbus endpoints with the lab; ``broker``
        (``auto``, ``embedded`` or a URL) the IT side: the MQTT bus, the platform and its
        API on ``api_host:api_port``, the edge gateway and the MQTT-native sensors."""
        self.scenario = scenario
        self.clock = clock or VirtualClock(scenario.epoch)
        self.seed = scenario.seed if seed is None else seed
        self.dt = scenario.clock.step
        self.steps = 0
        plant_rng, sensor_rng = np.random.default_rng(self.seed).spawn(2)
        self.plant = Plant(scenario.plant, plant_rng)
        self.sensors = SensorBank(self._measured_tags(), sensor_rng)
        self.devices = {d.name: Device(d, self.plant, self.sensors) for d in scenario.devices}
        for name, device in self.devices.items():
            device.on_write = self._write_noter(name)
        self._scan_every = {
            name: max(1, round(d.scan_time / self.dt)) for name, d in self.devices.items()
        }
        self.faults = FaultEngine(list(scenario.faults), self.plant, self.sensors)
        signals = self.plant.signals
        self.truth = TruthRecorder(signals.names, [d.unit for d in signals.definitions])
        interval = scenario.truth.interval
        self._record_every = max(1, round(interval / self.dt)) if interval else 1
        self._runner: asyncio.Task[None] | None = None
        self.audit = SessionAudit()
        self.serve = serve
        self.host = host
        self.state_dir = state_dir or default_state_dir(scenario.name)
        self.ports = (
            plan_ports(scenario, host=host, offset=port_offset, auto=auto_ports) if serve else {}
        )
        self.endpoints: EndpointSet | None = None  # set while serving
        self.broker = broker
        self.api_host = api_host
        self.api_port = api_port
        self.it: ItStack | None = None  # set while the IT side runs
        self.faults.endpoint_hook = self._endpoint_fault
        self.faults.update(0.0)
        self.sensors.step(self.dt, self.plant.values)
        for device in self.devices.values():
            device.scan()
        self.truth.record(0.0, self.plant.values)

    def _measured_tags(self) -> list[MeasuredTag]:
        signals = self.plant.signals
        measured = []
        for device in self.scenario.devices:
            for tag in device.tags:
                if tag.signal:
                    definition = signals.definitions[signals.index[tag.signal]]
                    measured.append(
                        MeasuredTag(
                            name=f"{device.name}.{tag.name}",
                            signal_index=signals.index[tag.signal],
                            signal_unit=definition.unit,
                            tag_unit=tag.unit or definition.unit,
                            is_bool=tag.type == "bool",
                            sensor=tag.sensor,
                        )
                    )
        return measured

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Lab:
        if self.serve:
            # Imported here: a lab that serves nothing never loads the protocol stacks.
            from simlab.endpoints import EndpointSet

            endpoints = EndpointSet(
                self.devices,
                host=self.host,
                ports=self.ports,
                audit=self.audit,
                clock=self.clock,
                now=lambda: self.time,
                state_dir=self.state_dir,
            )
            self.endpoints = await endpoints.__aenter__()
            for fault in self.faults.active.values():  # timeline faults due before the servers
                if fault.spec.kind in ENDPOINT_FAULT_KINDS:
                    endpoints.apply_fault(fault.spec, True)
            endpoints.write_map(self.endpoint_map_path)
        if self.broker is not None:
            from simlab.itstack import ItStack  # likewise the MQTT and platform stacks

            it = ItStack(
                self.scenario,
                self.devices,
                self.addresses(),
                broker=self.broker,
                state_dir=self.state_dir,
                api_host=self.api_host,
                api_port=self.api_port,
                now=self.epoch_seconds,
            )
            try:
                self.it = await it.__aenter__()
            except BaseException:
                await self.__aexit__(None, None, None)
                raise
        if isinstance(self.clock, RealTimeClock):
            self.clock.start()  # endpoints may have taken seconds to start: time begins now
            self._runner = asyncio.create_task(
                self._run_realtime(), name=f"lab:{self.scenario.name}"
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        if self.it is not None:  # before the endpoints: the gateway says goodbye first
            await self.it.__aexit__(exc_type, exc, tb)
            self.it = None
        if self.endpoints is not None:
            await self.endpoints.__aexit__(exc_type, exc, tb)
            self.endpoints = None

    async def _run_realtime(self) -> None:
        while True:
            await self.clock.wait_until((self.steps + 1) * self.dt)
            self.step()

    # --- time ---------------------------------------------------------------------------

    @property
    def time(self) -> float:
        """Simulated seconds since the scenario's epoch."""
        return self.steps * self.dt

    def epoch_seconds(self) -> float:
        """The simulated instant as seconds since the Unix epoch (for timestamps on the wire)."""
        return self.clock.datetime_at(self.time).timestamp()

    def step(self) -> None:
        """Advance the whole lab by one plant step."""
        self.steps += 1
        now = self.time
        if isinstance(self.clock, VirtualClock):
            self.clock.set(now)
        self.faults.update(now)
        self.plant.step(self.dt)
        self.sensors.step(self.dt, self.plant.values)
        for name, device in self.devices.items():
            if self.steps % self._scan_every[name] == 0:
                device.scan()
                if self.endpoints is not None:
                    self.endpoints.after_scan(name)
        if self.steps % self._record_every == 0:
            self.truth.record(now, self.plant.values)
        if self.it is not None and self.it.sensors is not None:
            self.it.sensors.tick()

    async def run_for(self, seconds: float) -> None:
        """Step a virtual-clock lab ``seconds`` of simulated time ahead."""
        await self.run_until(self.time + seconds)

    async def run_until(self, sim_time: float) -> None:
        """Step a virtual-clock lab until simulated ``sim_time``."""
        if not isinstance(self.clock, VirtualClock):
            raise LabError("run_for/run_until need a virtual clock; a real-time lab steps itself")
        target = round(sim_time / self.dt)
        while self.steps < target:
            self.step()
            if self.steps % YIELD_EVERY == 0:
                await asyncio.sleep(0)

    # --- endpoints ------------------------------------------------------------------------

    @property
    def endpoint_map_path(self) -> Path:
        """Where the endpoint map JSON is written while the lab serves."""
        return self.state_dir / "endpoints.json"

    def addresses(self) -> list[EndpointAddress]:
        """Every endpoint of the running lab (empty when it does not serve)."""
        return self.endpoints.addresses() if self.endpoints is not None else []

    def _endpoint_fault(self, fault: FaultSpec, on: bool) -> None:
        if self.endpoints is not None:
            self.endpoints.apply_fault(fault, on)
        elif on and not self.serve:  # a serving lab applies it once its servers are up
            reason = "the lab serves no endpoints"
            self.truth.note(
                self.time, "fault_ignored", fault=fault.kind, target=fault.target, reason=reason
            )

    # --- tags -----------------------------------------------------------------------------

    def device(self, name: str) -> Device:
        if name not in self.devices:
            guess = did_you_mean(name, self.devices)
            raise UnknownTag(f"no device {name!r}. {guess} Devices: {', '.join(self.devices)}")
        return self.devices[name]

    def _split(self, ref: str) -> tuple[Device, str]:
        device, _, tag = ref.partition(".")
        if not tag:
            raise UnknownTag(
                f"{ref!r} is not a tag reference; write 'device.tag', e.g. 'plc1.level'"
            )
        return self.device(device), tag

    def read(self, ref: str) -> TagValue:
        """Value of a tag ``device.tag``."""
        device, tag = self._split(ref)
        return device.read(tag)

    def quality(self, ref: str) -> Quality:
        device, tag = self._split(ref)
        device.read(tag)
        return device.quality[tag]

    def write(self, ref: str, value: TagValue) -> None:
        """A client write to ``device.tag`` (checked: writable, type, range)."""
        device, tag = self._split(ref)
        device.write(tag, value)

    def _write_noter(self, device: str) -> Callable[[str, TagValue], None]:
        """A device's write hook: every accepted write, from any client, goes into the truth."""

        def note(tag: str, value: TagValue) -> None:
            self.truth.note(self.time, "write", tag=f"{device}.{tag}", value=value)

        return note

    # --- faults ---------------------------------------------------------------------------

    def inject_fault(self, fault: FaultSpec | dict[str, Any]) -> int:
        """Start a fault now (a dict is validated like a scenario's ``faults:`` entry)."""
        if isinstance(fault, dict):
            try:
                fault = _FAULT.validate_python(fault)
            except ValidationError as err:
                first = err.errors()[0]
                where = format_path(tuple(first["loc"]))
                raise FaultError(f"invalid fault: {where}: {first['msg']}") from None
        known_targets = {*self.plant.unit_types, *self.sensors.position, *self.devices}
        if fault.target not in known_targets:
            raise FaultError(
                f"fault target {fault.target!r} does not exist. "
                f"{did_you_mean(fault.target, known_targets)}".strip()
            )
        return self.faults.inject(fault, self.time)

    def clear_fault(self, fault_id: int) -> None:
        """End a fault started live or by the timeline (see ``lab.faults.active``)."""
        self.faults.clear(fault_id, self.time)


def default_state_dir(scenario_name: str) -> Path:
    """``$XDG_STATE_HOME/simlab/<scenario>`` (``~/.local/state/simlab/<scenario>``)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "simlab" / scenario_name
