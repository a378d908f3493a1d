"""Time from `simlab up` to every endpoint accepting, for each bundled scenario (goal < 3 s).

Starts ``simlab up SCENARIO --headless --ports auto`` as a user would, waits for the
endpoint map, then for a real client of each protocol to connect. "cold" runs in a fresh
state directory (the OPC UA server certificate is generated), "warm" reuses it.

Run: ``.venv/bin/python benchmarks/startup.py``
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from asyncua import Client
from pymodbus.client import AsyncModbusTcpClient

from simlab.scenario import bundled_scenarios


async def accepting(endpoint_map: dict[str, dict[str, dict[str, object]]]) -> None:
    for protocols in endpoint_map.values():
        if "modbus" in protocols:
            client = AsyncModbusTcpClient("127.0.0.1", port=int(str(protocols["modbus"]["port"])))
            assert await client.connect()
            client.close()
        if "opcua" in protocols:
            async with Client(str(protocols["opcua"]["url"])):
                pass


def startup_seconds(scenario: str, state_dir: Path) -> float:
    map_path = state_dir / "endpoints.json"
    map_path.unlink(missing_ok=True)
    start = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simlab",
            "up",
            scenario,
            "--headless",
            "--ports",
            "auto",
            "--state-dir",
            str(state_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not map_path.exists():
            if process.poll() is not None:
                raise RuntimeError(f"simlab up {scenario} exited with {process.returncode}")
            time.sleep(0.01)
        asyncio.run(accepting(json.loads(map_path.read_text())))
        return time.perf_counter() - start
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)


def main() -> None:
    print(f"{'scenario':16} {'cold s':>7} {'warm s':>7}")
    for name in bundled_scenarios():
        with tempfile.TemporaryDirectory() as folder:
            cold = startup_seconds(name, Path(folder))
            warm = startup_seconds(name, Path(folder))
        verdict = "ok" if max(cold, warm) < 3 else "TOO SLOW"
        print(f"{name:16} {cold:7.2f} {warm:7.2f}   (goal < 3 s: {verdict})")


if __name__ == "__main__":
    main()
