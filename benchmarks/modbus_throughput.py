"""Modbus throughput: a lab device's endpoint against a bare pymodbus server.

Reads 100 holding registers (FC 3) as fast as the clients can, with 1 and with 10
clients, from a separate process (so the server's event loop is measured, not the
clients'), against:

- **bare**: a pymodbus ``ModbusTcpServer`` with a ``SimDevice`` of 100 registers;
- **lab**: plc1 of the water-tank scenario, with 50 float32 tags mapped on holding
  registers 0..99, served by :class:`devices.endpoints.modbus.ModbusEndpoint` (values
  encoded from the tags at request time, every request audited);
- **lab, re-encode**: the same with the endpoint's per-tag encoding cache disabled, the
  worst case where every tag changes between any two reads.

Goal: lab >= 0.9 x bare. Each figure is the median of ``--rounds`` runs of ``--seconds``;
the rounds interleave the servers so that a change of machine load hits all of them.

Run: ``.venv/bin/python benchmarks/modbus_throughput.py [--seconds 2] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import yaml
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from devices.endpoints.audit import SessionAudit
from devices.endpoints.modbus import ModbusEndpoint
from simlab.lab import Lab
from simlab.scenario import parse_scenario, resolve_scenario

REGISTERS = 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- client side (separate process) -------------------------------------------------------


async def hammer(port: int, clients: int, seconds: float) -> int:
    """Requests completed by ``clients`` concurrent clients in ``seconds``."""
    connections = [
        AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0) for _ in range(clients)
    ]
    await asyncio.gather(*(c.connect() for c in connections))
    end = time.perf_counter() + seconds

    async def loop(client: AsyncModbusTcpClient) -> int:
        done = 0
        while time.perf_counter() < end:
            response = await client.read_holding_registers(0, count=REGISTERS, device_id=1)
            assert not response.isError() and len(response.registers) == REGISTERS
            done += 1
        return done

    counts = await asyncio.gather(*(loop(c) for c in connections))
    for c in connections:
        c.close()
    return sum(counts)


async def measure(port: int, clients: int, seconds: float) -> float:
    """Requests per second, measured by a client process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        str(port),
        str(clients),
        str(seconds),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"client process failed ({process.returncode})")
    return int(output) / seconds


# --- servers ------------------------------------------------------------------------------


@asynccontextmanager
async def bare_server() -> AsyncIterator[int]:
    port = free_port()
    device = SimDevice(
        id=1, simdata=[SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)]
    )
    server = ModbusTcpServer(device, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    try:
        yield port
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


def benchmark_lab() -> Lab:
    """Water tank; plc1 gets 50 float32 tags on holding registers 0..99."""
    data = yaml.safe_load(resolve_scenario("water-tank").read_text())
    plc = next(d for d in data["devices"] if d["name"] == "plc1")
    plc["modbus"] = {"port": 5020, "unit_ids": [1]}
    for tag in plc["tags"]:
        tag.pop("modbus", None)
    plc["tags"] += [
        {
            "name": f"r{i:02d}",
            "initial": i * 1.5,
            "modbus": {"table": "holding_register", "address": 2 * i, "type": "float32"},
        }
        for i in range(REGISTERS // 2)
    ]
    return Lab(parse_scenario(yaml.safe_dump(data), "water-tank+benchmark"))


class _NoCache(dict[str, Any]):
    """A cache that never hits: every read encodes every tag again."""

    def get(self, key: str, default: Any = None) -> Any:
        return default


@asynccontextmanager
async def lab_server(cache: bool) -> AsyncIterator[int]:
    lab = benchmark_lab()
    port = free_port()
    endpoint = ModbusEndpoint(
        lab.devices["plc1"],
        host="127.0.0.1",
        port=port,
        audit=SessionAudit(),
        now=lambda: lab.time,
    )
    if not cache:
        endpoint._cache = _NoCache()
    async with endpoint:
        yield port


# --- main ---------------------------------------------------------------------------------


async def run(seconds: float, rounds: int) -> None:
    servers: dict[str, Callable[[], Any]] = {
        "bare pymodbus": bare_server,
        "lab endpoint": lambda: lab_server(cache=True),
        "lab, re-encode": lambda: lab_server(cache=False),
    }
    print(f"FC3 read of {REGISTERS} registers, requests/s (median of {rounds} x {seconds} s)")
    print(f"{'server':<16}{'1 client':>12}{'10 clients':>12}")
    samples: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):  # interleaved, so a change of machine load hits every server
        for clients in (1, 10):
            for name, factory in servers.items():
                async with factory() as port:
                    rate = await measure(port, clients, seconds)
                samples.setdefault((name, clients), []).append(rate)
    figures = {
        name: [statistics.median(samples[name, clients]) for clients in (1, 10)] for name in servers
    }
    for name, (one, ten) in figures.items():
        print(f"{name:<16}{one:>12,.0f}{ten:>12,.0f}")
    bare = figures["bare pymodbus"]
    for name in ("lab endpoint", "lab, re-encode"):
        ratios = [lab / ref for lab, ref in zip(figures[name], bare, strict=True)]
        print(f"{name} / bare: {ratios[0]:.2f}x (1 client), {ratios[1]:.2f}x (10 clients)")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--client":
        port, clients, seconds = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
        print(asyncio.run(hammer(port, clients, seconds)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.rounds))


if __name__ == "__main__":
    main()
