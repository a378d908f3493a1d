"""Logic blocks of the simulated PLC: PID, hysteresis, interlock, compare, timers, counters."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from devices.plc.blocks import Block, TagValues, build_block, evaluate
from simlab.scenario.devices import (
    CompareSpec,
    Condition,
    CounterSpec,
    HysteresisSpec,
    InterlockSpec,
    PidSpec,
    TimerSpec,
)

DT = 0.1


def pid(**fields: Any) -> Block:
    return build_block(
        PidSpec.model_validate(
            {"type": "pid", "name": "pid", "pv": "pv", "sp": "sp", "out": "out"} | fields
        )
    )


def first_order(tags: TagValues, disturbance: float = 0.0, tau: float = 10.0) -> None:
    """One DT of a process of unit gain and time constant ``tau``: pv follows out - disturbance."""
    pv = float(tags["pv"])
    tags["pv"] = pv + DT / tau * (float(tags["out"]) - disturbance - pv)


def scan_values(
    block: Block, tags: TagValues, tag: str, inputs: Sequence[float | bool], name: str
) -> list[float | bool | str]:
    """Scan once per value of ``inputs`` written to tag ``name``; return ``tag`` after each."""
    seen: list[float | bool | str] = []
    for value in inputs:
        tags[name] = value
        block.scan(DT, tags)
        seen.append(tags[tag])
    return seen


# --- conditions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "expected"),
    [("<", False), ("<=", True), (">", False), (">=", True), ("==", True), ("!=", False)],
)
def test_evaluate_compares_the_tag_with_the_value(op: str, expected: bool) -> None:
    condition = Condition.model_validate({"tag": "level", "op": op, "value": 2.0})
    assert evaluate(condition, {"level": 2.0}) is expected


def test_evaluate_reads_a_bool_tag_as_one_or_zero() -> None:
    condition = Condition.model_validate({"tag": "running", "op": "==", "value": 1})
    assert evaluate(condition, {"running": True}) is True
    assert evaluate(condition, {"running": False}) is False


# --- PID ----------------------------------------------------------------------------------


def test_pid_settles_a_first_order_process_on_setpoint() -> None:
    block = pid(kp=2.0, ti=10.0)
    tags: TagValues = {"pv": 0.0, "sp": 50.0, "out": 0.0}
    for _ in range(1200):
        block.scan(DT, tags)
        first_order(tags)
    assert float(tags["pv"]) == pytest.approx(50.0, abs=0.05)
    assert float(tags["out"]) == pytest.approx(50.0, abs=0.1)


def _after_long_saturation(scan: Callable[[float, TagValues], None]) -> tuple[float, int, float]:
    """300 s with a disturbance the output cannot beat, then 200 s without it.

    Returns, for the time after the disturbance, the peak pv, the number of scans with the
    output saturated, and the final pv.
    """
    tags: TagValues = {"pv": 0.0, "sp": 50.0, "out": 0.0}
    peak, saturated = 0.0, 0
    for k in range(5000):
        scan(DT, tags)
        released = k >= 3000
        first_order(tags, disturbance=0.0 if released else 80.0)
        if released:
            peak = max(peak, float(tags["pv"]))
            saturated += tags["out"] == 100.0
    return peak, saturated, float(tags["pv"])


def test_pid_anti_windup_recovers_quickly_where_a_plain_integral_overshoots() -> None:
    integral = 0.0

    def windup_prone(dt: float, tags: TagValues) -> None:
        """The same PI with a plain integral: only the output is clamped."""
        nonlocal integral
        error = float(tags["sp"]) - float(tags["pv"])
        integral += error * dt / 10.0
        tags["out"] = min(max(2.0 * (error + integral), 0.0), 100.0)

    peak, saturated, final = _after_long_saturation(pid(kp=2.0, ti=10.0).scan)
    plain_peak, plain_saturated, _ = _after_long_saturation(windup_prone)
    assert final == pytest.approx(50.0, abs=0.01)
    assert peak < 52.0
    assert saturated <= 1
    assert plain_peak > 95.0
    assert plain_saturated > 1500


def test_pid_manual_leaves_out_to_the_operator_and_returns_to_auto_bumplessly() -> None:
    block = pid(kp=2.0, ti=10.0, enable="auto")
    tags: TagValues = {"pv": 45.0, "sp": 50.0, "out": 0.0, "auto": False}
    for _ in range(20):
        tags["out"] = 40.0  # the operator drives the output
        block.scan(DT, tags)
        assert tags["out"] == 40.0
    tags["auto"] = True
    block.scan(DT, tags)
    # kp * e alone would be 10: the tracked integral carries 30, plus one scan of integration.
    assert float(tags["out"]) == pytest.approx(40.0 + 2.0 * 5.0 * DT / 10.0)


def test_pid_p_only_tracks_manual_output_as_a_bias() -> None:
    block = pid(kp=1.0, enable="auto")
    tags: TagValues = {"pv": 50.0, "sp": 50.0, "out": 30.0, "auto": False}
    block.scan(DT, tags)
    tags["auto"] = True
    for _ in range(10):
        block.scan(DT, tags)
    assert tags["out"] == 30.0
    tags["pv"] = 48.0
    block.scan(DT, tags)
    assert tags["out"] == 32.0


@pytest.mark.parametrize(("direction", "expected"), [("reverse", -10.0), ("direct", 10.0)])
def test_pid_direction_sets_the_sign_of_the_error(direction: str, expected: float) -> None:
    block = pid(kp=1.0, out_range=(-100.0, 100.0), direction=direction)
    tags: TagValues = {"pv": 60.0, "sp": 50.0, "out": 0.0}
    block.scan(DT, tags)
    assert tags["out"] == pytest.approx(expected)


def test_pid_direct_action_cools_a_process_to_setpoint() -> None:
    block = pid(kp=2.0, ti=10.0, direction="direct")
    tags: TagValues = {"pv": 80.0, "sp": 50.0, "out": 0.0}
    for _ in range(1500):
        block.scan(DT, tags)
        pv = float(tags["pv"])  # heat load of 100, the output removes heat
        tags["pv"] = pv + DT / 10.0 * (100.0 - float(tags["out"]) - pv)
    assert float(tags["pv"]) == pytest.approx(50.0, abs=0.05)
    assert float(tags["out"]) == pytest.approx(50.0, abs=0.1)


def test_pid_derivative_acts_on_measurement_only() -> None:
    block = pid(kp=1.0, td=1.0, out_range=(-100.0, 100.0))
    tags: TagValues = {"pv": 50.0, "sp": 50.0, "out": 0.0}
    block.scan(DT, tags)
    tags["sp"] = 60.0
    block.scan(DT, tags)
    assert tags["out"] == pytest.approx(10.0)  # no derivative kick from the setpoint step
    tags["pv"] = 51.0
    block.scan(DT, tags)
    assert tags["out"] == pytest.approx(9.0 - 1.0 * 1.0 / DT)


def test_pid_holds_the_output_on_nan_pv() -> None:
    block = pid(kp=1.0, ti=1.0)
    tags: TagValues = {"pv": 40.0, "sp": 50.0, "out": 0.0}
    block.scan(DT, tags)
    held = tags["out"]
    assert held == pytest.approx(11.0)
    tags["pv"] = math.nan
    for _ in range(5):
        block.scan(DT, tags)
    assert tags["out"] == held
    tags["pv"] = 40.0
    block.scan(DT, tags)
    assert tags["out"] == pytest.approx(12.0)  # the integral did not move during the NaN


# --- hysteresis ---------------------------------------------------------------------------


def hysteresis(on_when: str) -> Block:
    return build_block(
        HysteresisSpec.model_validate(
            {"type": "hysteresis", "name": "h", "pv": "pv", "out": "out"}
            | {"low": 2.0, "high": 8.0, "on_when": on_when, "on_value": 75.0}
        )
    )


def test_hysteresis_below_switches_on_under_low_and_off_over_high() -> None:
    block = hysteresis("below")
    tags: TagValues = {"pv": 5.0, "out": False}
    pvs = [5.0, 2.0, 1.9, 5.0, 8.0, 8.1, 5.0, 1.0]
    assert scan_values(block, tags, "out", pvs, "pv") == [
        False,
        False,
        True,
        True,
        True,
        False,
        False,
        True,
    ]


def test_hysteresis_above_switches_on_over_high_and_off_under_low_with_numeric_out() -> None:
    block = hysteresis("above")
    tags: TagValues = {"pv": 5.0, "out": 0.0}
    pvs = [5.0, 8.0, 8.1, 5.0, 2.0, 1.9, 5.0, 9.0]
    assert scan_values(block, tags, "out", pvs, "pv") == [
        0.0,
        0.0,
        75.0,
        75.0,
        75.0,
        0.0,
        0.0,
        75.0,
    ]


# --- interlock ----------------------------------------------------------------------------


def interlock(**fields: Any) -> Block:
    return build_block(
        InterlockSpec.model_validate(
            {"type": "interlock", "name": "lo_level", "trips": ["pump", "speed"]}
            | {"when": {"tag": "level", "op": "<", "value": 0.2}, "active": "tripped"}
            | fields
        )
    )


def test_interlock_forces_trips_off_while_the_condition_holds() -> None:
    block = interlock()
    tags: TagValues = {"level": 0.1, "pump": True, "speed": 80.0, "tripped": False}
    block.scan(DT, tags)
    assert (tags["pump"], tags["speed"], tags["tripped"]) == (False, 0.0, True)
    tags["pump"], tags["speed"] = True, 50.0  # forced again on every scan
    block.scan(DT, tags)
    assert (tags["pump"], tags["speed"], tags["tripped"]) == (False, 0.0, True)
    tags["level"] = 0.5
    tags["pump"], tags["speed"] = True, 50.0
    block.scan(DT, tags)
    assert (tags["pump"], tags["speed"], tags["tripped"]) == (True, 50.0, False)


def test_latched_interlock_waits_for_reset_after_the_condition_clears() -> None:
    block = interlock(latch=True, reset="ack")
    tags: TagValues = {"level": 0.1, "pump": True, "speed": 80.0, "tripped": False, "ack": False}
    block.scan(DT, tags)
    assert tags["tripped"] is True
    tags["ack"] = True  # a reset while the condition still holds is consumed and ignored
    block.scan(DT, tags)
    assert (tags["tripped"], tags["ack"]) == (True, False)
    tags["level"] = 0.5
    tags["pump"] = True
    for _ in range(3):
        block.scan(DT, tags)
        assert (tags["tripped"], tags["pump"]) == (True, False)
    tags["ack"] = True
    block.scan(DT, tags)
    assert (tags["tripped"], tags["ack"]) == (False, False)
    tags["pump"] = True
    block.scan(DT, tags)
    assert (tags["tripped"], tags["pump"]) == (False, True)


def test_compare_writes_whether_the_condition_holds() -> None:
    block = build_block(
        CompareSpec.model_validate(
            {"type": "compare", "name": "hi", "out": "alarm"}
            | {"when": {"tag": "temp", "op": ">=", "value": 90.0}}
        )
    )
    tags: TagValues = {"alarm": False}
    assert scan_values(block, tags, "alarm", [80.0, 90.0, 89.9], "temp") == [False, True, False]


# --- timers -------------------------------------------------------------------------------


def timer(kind: str) -> Block:
    return build_block(
        TimerSpec.model_validate(
            {"type": "timer", "name": "t", "kind": kind, "input": "in", "output": "q"}
            | {"preset": 0.5, "elapsed": "et"}
        )
    )


def test_ton_turns_on_preset_after_the_rising_edge() -> None:
    block = timer("ton")
    tags: TagValues = {"in": False, "q": False, "et": 0.0}
    inputs = [False] + [True] * 7 + [False, True, True, False]
    assert scan_values(block, tags, "q", inputs, "in") == ([False] * 6 + [True, True] + [False] * 4)
    tags["in"] = True
    block.scan(DT, tags)
    block.scan(DT, tags)
    assert tags["et"] == pytest.approx(0.1)


def test_ton_elapsed_stops_at_preset() -> None:
    block = timer("ton")
    tags: TagValues = {"in": True, "q": False, "et": 0.0}
    assert scan_values(block, tags, "et", [True] * 8, "in") == pytest.approx(
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5]
    )


def test_tof_stays_on_preset_after_the_falling_edge() -> None:
    block = timer("tof")
    tags: TagValues = {"in": False, "q": False, "et": 0.0}
    inputs = [False, True, True] + [False] * 7 + [True, False, True]
    assert scan_values(block, tags, "q", inputs, "in") == (
        [False, True, True] + [True] * 5 + [False, False] + [True] * 3
    )
    assert tags["et"] == 0.0


def test_tp_pulses_preset_and_ignores_edges_during_the_pulse() -> None:
    block = timer("tp")
    tags: TagValues = {"in": False, "q": False, "et": 0.0}
    inputs = [True, False, True, False, False, False, True, True, False, True]
    assert scan_values(block, tags, "q", inputs, "in") == (
        [True] * 5 + [False, True, True, True, True]
    )


def test_tp_elapsed_holds_at_preset_while_input_stays_on() -> None:
    block = timer("tp")
    tags: TagValues = {"in": False, "q": False, "et": 0.0}
    assert scan_values(block, tags, "et", [True] * 7 + [False], "in") == pytest.approx(
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.0]
    )


# --- counters -----------------------------------------------------------------------------


def counter(kind: str) -> Block:
    return build_block(
        CounterSpec.model_validate(
            {"type": "counter", "name": "c", "kind": kind, "input": "in", "count": "n"}
            | {"preset": 3, "reset": "rst", "done": "done"}
        )
    )


def test_ctu_counts_rising_edges_and_is_done_at_preset() -> None:
    block = counter("ctu")
    tags: TagValues = {"in": False, "n": 0.0, "rst": False, "done": False}
    inputs = [True, True, False, True, False, False, True, True]
    assert scan_values(block, tags, "n", inputs, "in") == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0]
    assert tags["done"] is True
    tags["rst"] = True
    assert scan_values(block, tags, "n", [False, True], "in") == [0.0, 0.0]
    assert tags["done"] is False
    tags["rst"] = False
    assert scan_values(block, tags, "n", [True, False, True], "in") == [0.0, 0.0, 1.0]


def test_ctd_counts_down_from_preset_and_is_done_at_zero() -> None:
    block = counter("ctd")
    tags: TagValues = {"in": False, "n": 0.0, "rst": False, "done": False}
    block.scan(DT, tags)
    assert (tags["n"], tags["done"]) == (3.0, False)
    assert scan_values(block, tags, "n", [True, False, True, False], "in") == [2.0, 2.0, 1.0, 1.0]
    assert tags["done"] is False
    assert scan_values(block, tags, "n", [True], "in") == [0.0]
    assert tags["done"] is True
    tags["rst"] = True
    block.scan(DT, tags)
    assert (tags["n"], tags["done"]) == (3.0, False)
