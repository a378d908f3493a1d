"""OPC UA subscription figures: is every change delivered, and what does the endpoint cost?

One device with 2,000 float tags that all change once per second; one asyncua client
subscribed to all of them at a 100 ms publishing interval. Two servers, each in its own
process, are measured the same way:

- ``endpoint``: simlab's :class:`OpcUaEndpoint`; the driver changes the device's tags once
  per second and calls ``publish()`` every 100 ms, as the lab does after each scan;
- ``bare``: a plain asyncua ``Server`` whose driver writes the same values once per second
  with ``server.write_attribute_value`` (the cheap path of LIBRARY_NOTES).

Printed: changes made and delivered (every change must reach the client), the server
process's CPU seconds over the run, and the endpoint's efficiency = bare CPU / endpoint
CPU (goal: >= 0.9).

Run: ``.venv/bin/python benchmarks/opcua_subscription.py`` (options: --tags, --seconds, --repeats)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncua.ua
from asyncua.client.client import Client
from asyncua.server.server import Server

from devices.endpoints.audit import SessionAudit
from devices.endpoints.opcua import OpcUaEndpoint
from simlab.lab import Lab
from simlab.scenario import parse_scenario

ua: Any = asyncua.ua  # asyncua's NewType annotations (Int16, Double, ...) are noise here

FOLDER_SIZE = 250  # tags per folder: adding nodes slows down with the parent's child count
TICK = 0.1  # s between publish() calls (the device's scan time)
ROUND = 10_000.0  # value = round * ROUND + tag index: each change is recognisable


def tag_name(index: int) -> str:
    return f"t{index:05d}"


def value_of(round_: int, index: int) -> float:
    return round_ * ROUND + index


# --- server processes ----------------------------------------------------------------------


def scenario_yaml(tags: int) -> str:
    lines = [
        "format_version: 1",
        "name: opcua_bench",
        "devices:",
        "  - name: plc1",
        "    type: plc",
        "    scan_time: 0.1",
        "    opcua: {security: ['None']}",
        "    tags:",
    ]
    for i in range(tags):
        folder = f"Group{i // FOLDER_SIZE:02d}"
        lines.append(f"      - {{name: {tag_name(i)}, initial: 0, opcua: {{folder: {folder}}}}}")
    return "\n".join(lines) + "\n"


class Driver:
    """Changes every tag once per second for ``seconds``, ticking every 100 ms."""

    def __init__(self, tags: int, seconds: float) -> None:
        self.tags = tags
        self.seconds = seconds
        self.rounds = 0

    async def run(self, tick: Any, change: Any) -> float:
        """CPU seconds of this process while driving."""
        cpu, start = time.process_time(), time.monotonic()
        ticks = round(self.seconds / TICK)
        for n in range(ticks):
            if n % round(1 / TICK) == 0:
                self.rounds += 1
                await change(self.rounds)
            tick()
            await asyncio.sleep(max(0.0, start + (n + 1) * TICK - time.monotonic()))
        return time.process_time() - cpu


async def serve_endpoint(port: int, tags: int, seconds: float) -> None:
    lab = Lab(parse_scenario(scenario_yaml(tags)))
    device = lab.devices["plc1"]
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as state:
        endpoint = OpcUaEndpoint(
            device,
            host="127.0.0.1",
            port=port,
            audit=SessionAudit(),
            clock=lab.clock,
            now=lambda: time.monotonic() - start,
            state_dir=Path(state),
        )
        async with endpoint:
            driver = Driver(tags, seconds)

            async def change(round_: int) -> None:
                for i in range(tags):
                    device.tags[tag_name(i)] = value_of(round_, i)

            await handshake(driver, lambda: driver.run(endpoint.publish, change))


async def serve_bare(port: int, tags: int, seconds: float) -> None:
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bare")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace("urn:simlab")
    device = await server.nodes.objects.add_object(
        ua.NodeId("plc1", ns), ua.QualifiedName("plc1", ns)
    )
    folders: dict[int, Any] = {}
    for i in range(tags):
        group = i // FOLDER_SIZE
        if group not in folders:
            folders[group] = await device.add_folder(
                ua.NodeId(f"plc1/Group{group:02d}", ns), ua.QualifiedName(f"Group{group:02d}", ns)
            )
        await folders[group].add_variable(
            ua.NodeId(f"plc1.{tag_name(i)}", ns),
            ua.QualifiedName(tag_name(i), ns),
            ua.Variant(0.0, ua.VariantType.Double),
        )
    node_ids = [ua.NodeId(f"plc1.{tag_name(i)}", ns) for i in range(tags)]
    async with server:
        driver = Driver(tags, seconds)

        async def change(round_: int) -> None:
            stamp = datetime.now(UTC)
            for i, node_id in enumerate(node_ids):
                data = ua.DataValue(
                    ua.Variant(value_of(round_, i), ua.VariantType.Double),
                    SourceTimestamp=stamp,
                    ServerTimestamp=stamp,
                )
                await server.write_attribute_value(node_id, data)

        await handshake(driver, lambda: driver.run(lambda: None, change))


async def handshake(driver: Driver, run: Any) -> None:
    """Tell the parent we listen, wait for its go, drive, report, and serve until its stop."""
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    cpu: float = await run()
    print("RESULT " + json.dumps({"cpu": cpu, "rounds": driver.rounds}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)


def serve(kind: str, port: int, tags: int, seconds: float) -> None:
    logging.basicConfig(level=logging.ERROR)
    serve_fn = serve_endpoint if kind == "endpoint" else serve_bare
    asyncio.run(serve_fn(port, tags, seconds))


# --- the measuring client -------------------------------------------------------------------


class Counter:
    """Every (tag, round) a notification brought."""

    def __init__(self) -> None:
        self.seen: dict[str, set[int]] = defaultdict(set)
        self.notifications = 0

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.notifications += 1
        round_ = int(float(val) // ROUND)
        if round_ > 0:
            self.seen[str(node.nodeid.Identifier)].add(round_)

    @property
    def delivered(self) -> int:
        return sum(len(rounds) for rounds in self.seen.values())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def measure(kind: str, tags: int, seconds: float) -> dict[str, float]:
    port = free_port()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve",
        kind,
        "--port",
        str(port),
        "--tags",
        str(tags),
        "--seconds",
        str(seconds),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stdin is not None
    while (await child.stdout.readline()).strip() != b"READY":
        pass
    counter = Counter()
    path = "/simlab/plc1" if kind == "endpoint" else "/bare"
    async with Client(f"opc.tcp://127.0.0.1:{port}{path}", timeout=30) as client:
        ns = await client.get_namespace_index("urn:simlab")
        nodes = [client.get_node(f"ns={ns};s=plc1.{tag_name(i)}") for i in range(tags)]
        subscription = await client.create_subscription(100, counter, queue_maxsize=100_000)
        await subscription.subscribe_data_change(nodes)
        child.stdin.write(b"GO\n")
        await child.stdin.drain()
        line = b""
        while not line.startswith(b"RESULT"):
            line = (await child.stdout.readline()).strip()
        await asyncio.sleep(1.0)  # the last round's notifications
        result: dict[str, float] = json.loads(line.removeprefix(b"RESULT "))
        result["delivered"] = counter.delivered
        result["expected"] = result["rounds"] * tags
    child.stdin.write(b"STOP\n")
    await child.stdin.drain()
    await child.wait()
    return result


async def main(tags: int, seconds: float, repeats: int) -> None:
    print(
        f"{tags} float tags changing at 1 Hz, one client subscribed at 100 ms; "
        f"{repeats} x {seconds:.0f} s per server, alternating"
    )
    runs: dict[str, list[dict[str, float]]] = {"endpoint": [], "bare": []}
    for repeat in range(repeats):
        order = ("endpoint", "bare") if repeat % 2 == 0 else ("bare", "endpoint")
        for kind in order:
            runs[kind].append(await measure(kind, tags, seconds))
    cpu = {}
    for kind, results in runs.items():
        expected = sum(r["expected"] for r in results)
        delivered = sum(r["delivered"] for r in results)
        complete = "every change delivered" if delivered == expected else "CHANGES LOST"
        cpu[kind] = statistics.median(r["cpu"] for r in results)
        each = ", ".join(f"{r['cpu']:.2f}" for r in results)
        print(
            f"  {kind:8s}: {int(expected):7d} changes, {int(delivered):7d} delivered ({complete}); "
            f"server CPU per run {each} s, median {100 * cpu[kind] / seconds:.1f}% of a core"
        )
    efficiency = cpu["bare"] / cpu["endpoint"]
    verdict = "meets" if efficiency >= 0.9 else "misses"
    print(
        f"  efficiency (median bare CPU / endpoint CPU): {efficiency:.2f}x "
        f"({verdict} the 0.9x goal)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0, help="per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per server")
    parser.add_argument("--serve", choices=["endpoint", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.tags, args.seconds)
    else:
        logging.basicConfig(level=logging.ERROR)
        asyncio.run(main(args.tags, args.seconds, args.repeats))
