"""Endpoint addresses: which port each device's protocol endpoint listens on.

A scenario names a port per device and protocol; ``offset`` shifts them all, and ``auto``
picks free ones, so several labs run side by side on one host (batch grading, classrooms).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Literal

from simlab.errors import LabError
from simlab.scenario.devices import ModbusDeviceSpec, OpcUaDeviceSpec
from simlab.scenario.model import Scenario

__all__ = ["EndpointAddress", "Protocol", "plan_ports"]

Protocol = Literal["modbus", "opcua"]


@dataclass(frozen=True)
class EndpointAddress:
    """Where a client reaches one endpoint of one device."""

    device: str
    protocol: Protocol
    host: str
    port: int
    url: str
    unit_ids: tuple[int, ...] = ()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def plan_ports(
    scenario: Scenario, *, host: str, offset: int = 0, auto: bool = False
) -> dict[tuple[str, Protocol], int]:
    """The port of every (device, protocol) endpoint the scenario declares."""
    ports: dict[tuple[str, Protocol], int] = {}
    for device in scenario.devices:
        declared: tuple[tuple[Protocol, ModbusDeviceSpec | OpcUaDeviceSpec | None], ...] = (
            ("modbus", device.modbus),
            ("opcua", device.opcua),
        )
        for protocol, spec in declared:
            if spec is None:
                continue
            port = _free_port(host) if auto else spec.port + offset
            if not 0 < port < 65536:
                raise LabError(
                    f"{device.name} {protocol} port {spec.port} + offset {offset} = {port} "
                    "is not a TCP port (1..65535); choose a smaller --port-offset"
                )
            ports[(device.name, protocol)] = port
    return ports
