"""The Modbus endpoint with mbpoll, the command-line master apprentices use.

mbpoll counts references from 1 (``-r 1`` is protocol address 0; ``-0`` switches to
0-based) and reads 32-bit values in little-endian word order (CDAB) unless given ``-B``
(big-endian, ABCD). Skipped when mbpoll is not installed, unless SIMLAB_REQUIRE_TOOLS=1.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable

import pytest
import yaml

from devices.endpoints.audit import SessionAudit
from devices.endpoints.modbus import ModbusEndpoint
from simlab.lab import Lab
from simlab.scenario import parse_scenario, resolve_scenario

MBPOLL = shutil.which("mbpoll")


@pytest.fixture(autouse=True)
def _needs_mbpoll() -> None:
    if MBPOLL is None:
        if os.environ.get("SIMLAB_REQUIRE_TOOLS") == "1":
            pytest.fail("mbpoll is required (SIMLAB_REQUIRE_TOOLS=1): apt-get install mbpoll")
        pytest.skip(
            "mbpoll is not installed (apt-get install mbpoll); "
            "set SIMLAB_REQUIRE_TOOLS=1 to make this a failure"
        )


def lab_with_map() -> Lab:
    data = yaml.safe_load(resolve_scenario("water-tank").read_text())
    plc = next(d for d in data["devices"] if d["name"] == "plc1")
    plc["modbus"] = {"port": 5020, "unit_ids": [1]}
    mapping = {
        "level_sp": {"table": "holding_register", "address": 0, "type": "float32"},
        "valve_cmd": {
            "table": "holding_register",
            "address": 2,
            "type": "float32",
            "word_order": "CDAB",
        },
        "level": {"table": "input_register", "address": 0, "type": "float32"},
    }
    for tag in plc["tags"]:
        tag.pop("modbus", None)
        if tag["name"] in mapping:
            tag["modbus"] = mapping[tag["name"]]
    return Lab(parse_scenario(yaml.safe_dump(data), "water-tank+mbpoll"))


class Plc:
    def __init__(self, lab: Lab, port: int, audit: SessionAudit) -> None:
        self.lab = lab
        self.port = port
        self.audit = audit
        self.tags = lab.devices["plc1"].tags

    async def mbpoll(self, *args: str, write: str | None = None) -> tuple[int, str]:
        """Run mbpoll once against the endpoint; returns (exit code, stdout + stderr)."""
        assert MBPOLL is not None
        command = [MBPOLL, "-m", "tcp", "-a", "1", "-1", "-o", "1", "-p", str(self.port)]
        command += [*args, "127.0.0.1", *([write] if write is not None else [])]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await asyncio.wait_for(process.communicate(), 15.0)
        return int(process.returncode or 0), output.decode()


def values(output: str) -> list[float]:
    """The values mbpoll printed, in reference order (``[1]: \t1.5``)."""
    return [float(v) for v in re.findall(r"^\[\d+\]:\s+(\S+)", output, re.MULTILINE)]


@pytest.fixture
async def plc(free_port: Callable[[], int]) -> AsyncIterator[Plc]:
    lab = lab_with_map()
    await lab.run_for(10.0)
    audit = SessionAudit()
    port = free_port()
    device = lab.devices["plc1"]
    async with ModbusEndpoint(
        device, host="127.0.0.1", port=port, audit=audit, now=lambda: lab.time
    ):
        yield Plc(lab, port, audit)


async def test_mbpoll_reads_float32_with_big_endian_flag(plc: Plc) -> None:
    code, output = await plc.mbpoll("-r", "1", "-t", "3:float", "-B", "-c", "1")
    assert code == 0, output
    [level] = values(output)
    assert level == pytest.approx(plc.tags["level"], rel=1e-5)  # mbpoll prints 6 digits
    code, output = await plc.mbpoll("-r", "1", "-t", "4:float", "-B", "-c", "1")
    assert (code, values(output)) == (0, [1.2])


async def test_mbpoll_default_word_order_is_cdab(plc: Plc) -> None:
    code, output = await plc.mbpoll("-r", "3", "-t", "4:float", "-c", "1")  # no -B
    assert (code, values(output)) == (0, [50.0])
    code, output = await plc.mbpoll("-r", "1", "-t", "4:float", "-c", "1")  # ABCD without -B
    assert code == 0 and values(output) != [1.2]


async def test_mbpoll_writes_setpoint(plc: Plc) -> None:
    code, output = await plc.mbpoll("-r", "1", "-t", "4:float", "-B", write="1.5")
    assert code == 0, output
    assert plc.tags["level_sp"] == 1.5
    [write] = plc.audit.query(kind="write")
    assert (write.target, write.ok, write.detail["function_code"]) == ("level_sp", True, 16)


async def test_mbpoll_sees_refused_write(plc: Plc) -> None:
    code, output = await plc.mbpoll("-r", "1", "-t", "4:float", "-B", write="5")
    assert code != 0 and "Illegal data value" in output
    assert plc.tags["level_sp"] == 1.2
    code, output = await plc.mbpoll("-r", "101", "-t", "4", "-c", "1")
    assert code != 0 and "Illegal data address" in output
