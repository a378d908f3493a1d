"""The check of exercise 01 (``python:read_check:check``): the level's registers were read.

The Modbus endpoint audits every request with its function code and address range (target
``fc4 input_register 12..13``). The check passes when plc1 answered a read with the function
code of the value's table (FC 3 for holding registers, FC 4 for input registers) covering
every register of the value, ``address`` to ``address + count - 1``. When none did, it says
what was read instead: the other table, an address off by one, half a float.

Params: ``device``; ``table`` (input_register or holding_register); ``address`` (0-based);
``count`` (registers of the value, 2 for a float32).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from grading.evidence import Evidence
from grading.model import CheckResult

READ_FUNCTION = {"holding_register": 3, "input_register": 4}
_TARGET = re.compile(r"^fc(?P<fc>\d+) (?P<table>\w+) (?P<first>\d+)\.\.(?P<last>\d+)$")


@dataclass(frozen=True)
class _Read:
    """One register read request the endpoint audited."""

    time: float
    fc: int
    first: int
    last: int
    ok: bool
    reason: str
    target: str


def _result(passed: bool, message: str, diagnosis: str = "", **facts: Any) -> CheckResult:
    return CheckResult(
        check_id="read_check",
        title="read_check",
        passed=passed,
        points=1.0 if passed else 0.0,
        max_points=1.0,
        message=message,
        diagnosis=diagnosis,
        evidence=facts,
    )


def _register_reads(evidence: Evidence, device: str) -> list[_Read]:
    reads = []
    for event in evidence.audit.events:
        if event.protocol != "modbus" or event.kind != "request" or event.device != device:
            continue
        match = _TARGET.match(event.target)
        if match is None or int(match["fc"]) not in (3, 4):
            continue
        reads.append(
            _Read(
                event.time,
                int(match["fc"]),
                int(match["first"]),
                int(match["last"]),
                event.ok,
                event.reason,
                event.target,
            )
        )
    return reads


def _diagnosis(reads: list[_Read], fc: int, table: str, address: int, last: int) -> str:
    """What the reads that missed got wrong, the likeliest mistake first."""
    refused = [r for r in reads if r.fc == fc and r.first <= address and r.last >= last]
    if refused:  # the right request, not answered
        return f"plc1 did not answer your read of {refused[0].target}: {refused[0].reason}"
    other = 7 - fc  # 3 <-> 4
    if any(r.fc == other and r.first <= address and r.last >= last for r in reads):
        return (
            f"you read the right addresses with FC {other}, which reads the other table: the "
            f"level is in the {table} table, read with FC {fc}"
        )
    if any(r.fc == fc and abs(r.first - address) == 1 for r in reads):
        return (
            f"off by one: the data sheet's address {address} is the 0-based protocol address "
            "that pymodbus expects; the 3xxxx/4xxxx references count from 1"
        )
    if any(r.fc == fc and r.first <= last and r.last >= address for r in reads):
        return (
            f"your read covers only part of registers {address}..{last}: a float32 takes two "
            "16-bit registers, read both in one request (count=2)"
        )
    return f"read {table} {address} and {last} with function code {fc}"


def check(evidence: Evidence, params: Mapping[str, Any], variant: Mapping[str, Any]) -> CheckResult:
    """plc1 answered a read of the value's registers with the right function code."""
    device, table = str(params["device"]), str(params["table"])
    if table not in READ_FUNCTION:
        raise ValueError(
            f"read_check: params.table must be one of {', '.join(READ_FUNCTION)}, got {table!r}"
        )
    address, count = int(params["address"]), int(params.get("count", 2))
    fc, last = READ_FUNCTION[table], address + count - 1
    reads = _register_reads(evidence, device)
    seen = [f"t={r.time:.1f} s {r.target}" + ("" if r.ok else " (not answered)") for r in reads]
    facts: dict[str, Any] = {"expected": f"fc{fc} {table} {address}..{last}", "reads": seen[:8]}
    good = [r for r in reads if r.fc == fc and r.first <= address and r.last >= last and r.ok]
    if good:
        first = good[0]
        return _result(
            True,
            f"you read {first.target} at t={first.time:.1f} s: the level's registers, FC {fc}",
            **facts,
        )
    if not reads:
        return _result(
            False,
            f"no register read reached {device}",
            "your program sent no read request: is it connected to SIMLAB_MODBUS_HOST and "
            "SIMLAB_MODBUS_PORT, with the unit id SIMLAB_MODBUS_UNIT?",
            **facts,
        )
    return _result(
        False,
        f"no read of {table} {address}..{last} with FC {fc}; you read "
        + ", ".join(dict.fromkeys(r.target for r in reads[:5])),
        _diagnosis(reads, fc, table, address, last),
        **facts,
    )
