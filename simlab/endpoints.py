"""The lab's protocol endpoints: start-up, fault routing and the endpoint map.

The endpoint map (device → OPC UA URL, Modbus host:port and units) is written as JSON into
the lab's state directory for the UI, the grader and apprentices' programs. The lab imports
this module only when it serves, so labs without endpoints never load the protocol stacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Any

from devices.device import Device
from devices.endpoints.audit import SessionAudit
from devices.endpoints.modbus import ModbusEndpoint
from devices.endpoints.opcua import OpcUaEndpoint
from simlab.addresses import EndpointAddress, Protocol
from simlab.clock import Clock
from simlab.errors import LabError
from simlab.scenario.faults import FaultSpec

__all__ = ["EndpointSet"]


class EndpointSet:
    """Every endpoint of a lab, started together and stopped together."""

    def __init__(
        self,
        devices: dict[str, Device],
        *,
        host: str,
        ports: dict[tuple[str, Protocol], int],
        audit: SessionAudit,
        clock: Clock,
        now: Callable[[], float],
        state_dir: Path,
    ) -> None:
        self.host = host
        self.modbus: dict[str, ModbusEndpoint] = {}
        self.opcua: dict[str, OpcUaEndpoint] = {}
        for (name, protocol), port in ports.items():
            device = devices[name]
            if protocol == "modbus":
                self.modbus[name] = ModbusEndpoint(
                    device, host=host, port=port, audit=audit, now=now
                )
            else:
                self.opcua[name] = OpcUaEndpoint(
                    device,
                    host=host,
                    port=port,
                    audit=audit,
                    clock=clock,
                    now=now,
                    state_dir=state_dir / "opcua" / name,
                )
        self.ports = ports
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> EndpointSet:
        endpoints: list[contextlib.AbstractAsyncContextManager[Any]] = [
            *self.modbus.values(),
            *self.opcua.values(),
        ]
        # OPC UA servers take a second or two to initialise: start all at once, and if one
        # fails, stop those that started before reporting it.
        results = await asyncio.gather(
            *(self._stack.enter_async_context(e) for e in endpoints), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self._stack.aclose()
            if isinstance(errors[0], OSError):
                raise LabError(
                    f"cannot open an endpoint: {errors[0]}. Another lab may use these ports: "
                    "try --port-offset 100 or --ports auto"
                ) from errors[0]
            raise errors[0]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    def after_scan(self, device: str) -> None:
        """Push the device's fresh tag values to the endpoints that hold copies (OPC UA)."""
        endpoint = self.opcua.get(device)
        if endpoint is not None:
            endpoint.publish()

    def apply_fault(self, fault: FaultSpec, on: bool) -> None:
        """Route an endpoint fault to the device's endpoints of the protocol it names."""
        protocol = getattr(fault, "protocol", "modbus")
        targets: list[ModbusEndpoint | OpcUaEndpoint] = []
        if protocol in ("modbus", "both") and fault.target in self.modbus:
            targets.append(self.modbus[fault.target])
        if protocol in ("opcua", "both") and fault.target in self.opcua:
            targets.append(self.opcua[fault.target])
        if not targets:
            raise ValueError(f"device {fault.target!r} serves no {protocol} endpoint")
        for endpoint in targets:
            endpoint.apply_fault(fault, on)

    def addresses(self) -> list[EndpointAddress]:
        """The endpoint map, one entry per endpoint."""
        found = []
        for (name, protocol), port in self.ports.items():
            if protocol == "modbus":
                units = tuple(self.modbus[name].device.spec.modbus.unit_ids)  # type: ignore[union-attr]
                url = f"modbus+tcp://{self.host}:{port}"
                found.append(EndpointAddress(name, protocol, self.host, port, url, units))
            else:
                found.append(EndpointAddress(name, protocol, self.host, port, self.opcua[name].url))
        return found

    def write_map(self, path: Path) -> None:
        """Write the endpoint map as JSON: ``{device: {protocol: {...}}}``."""
        entries: dict[str, dict[str, object]] = {}
        for address in self.addresses():
            entry = asdict(address)
            del entry["device"], entry["protocol"]
            entries.setdefault(address.device, {})[address.protocol] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
