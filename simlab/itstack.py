"""The IT half of a lab: MQTT broker, mini platform, edge gateway and MQTT-native sensors.

Started after the OT endpoints (the gateway polls them) in this order: the broker, the
platform (subscribed before anything publishes, so it sees every birth), the gateway, the
smart sensors; stopped in reverse. The lab imports this module only when it runs a bus.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from devices.device import Device
from simlab.addresses import EndpointAddress
from simlab.bus.broker import BrokerSpec, ResolvedBroker, resolve_broker
from simlab.bus.gateway import EdgeGateway, dual_transport_tags
from simlab.bus.publisher import SensorPublisher, device_reader, mqtt_sensors
from simlab.platform.service import PlatformService
from simlab.scenario.model import Scenario

__all__ = ["ItStack"]


class ItStack:
    """Broker, platform, gateway and smart sensors of one lab, as one async context."""

    def __init__(
        self,
        scenario: Scenario,
        devices: Mapping[str, Device],
        endpoints: Sequence[EndpointAddress],
        *,
        broker: str,
        state_dir: Path,
        api_host: str,
        api_port: int,
        now: Callable[[], float],
    ) -> None:
        """``now`` gives simulated seconds since the Unix epoch (timestamps on the bus)."""
        self.scenario = scenario
        self.devices = devices
        self.endpoints = list(endpoints)
        self.broker_spec = BrokerSpec.parse(broker)
        self.state_dir = state_dir
        self.api_host = api_host
        self.api_port = api_port
        self.now = now
        self.broker: ResolvedBroker | None = None
        self.platform: PlatformService | None = None
        self.gateway: EdgeGateway | None = None
        self.sensors: SensorPublisher | None = None
        self._stack = contextlib.AsyncExitStack()

    def _now_ms(self) -> int:
        return round(self.now() * 1000)

    async def __aenter__(self) -> ItStack:
        try:
            self.broker = await self._stack.enter_async_context(
                await resolve_broker(self.broker_spec)
            )
            url = self.broker.url
            runs_gateway = self.scenario.gateway is not None and bool(self.endpoints)
            self.platform = await self._stack.enter_async_context(
                PlatformService(
                    self.scenario,
                    broker_url=url,
                    state_dir=self.state_dir,
                    api_host=self.api_host,
                    api_port=self.api_port,
                    now=self.now,
                    # each reading of the gateway stored once, from its UNS JSON
                    dual_tags=dual_transport_tags(self.scenario) if runs_gateway else (),
                )
            )
            if runs_gateway:
                self.gateway = await self._stack.enter_async_context(
                    EdgeGateway(self.scenario, self.endpoints, url, now_ms=self._now_ms)
                )
            if mqtt_sensors(self.scenario):
                self.sensors = await self._stack.enter_async_context(
                    SensorPublisher(self.scenario, device_reader(self.devices), url, self._now_ms)
                )
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    def describe(self) -> list[tuple[str, str]]:
        """(what, where) lines for the start-up summary."""
        lines: list[tuple[str, str]] = []
        if self.broker is not None:
            lines.append(("broker", self.broker.description))
        if self.platform is not None:
            lines.append(
                (
                    "platform API",
                    f"{self.platform.api_url} (token in {self.state_dir / 'api-token'})",
                )
            )
        if self.gateway is not None:
            conventions = " and ".join(self.gateway.spec.publish)
            lines.append(("edge gateway", f"{self.gateway.name} publishing {conventions}"))
        if self.sensors is not None:
            names = ", ".join(s.name for s in mqtt_sensors(self.scenario))
            lines.append(("MQTT sensors", names))
        return lines
