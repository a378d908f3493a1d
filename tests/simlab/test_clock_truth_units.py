"""Kernel pieces: clocks, the truth recorder, units."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from simlab.clock import RealTimeClock, VirtualClock
from simlab.truth import CHUNK_ROWS, TruthRecorder
from simlab.units import UNITS, convert, same_dimension


async def test_virtual_clock_moves_only_when_set() -> None:
    clock = VirtualClock()
    assert clock.now() == 0.0
    await clock.wait_until(1000.0)  # never waits for the wall clock
    assert clock.now() == 0.0
    clock.set(2.5)
    assert clock.now() == 2.5
    assert clock.datetime_at(2.5) == datetime(2026, 1, 1, 0, 0, 2, 500000, tzinfo=UTC)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(1.0)


async def test_real_time_clock_scales_wall_time() -> None:
    clock = RealTimeClock(speed=50.0)
    await clock.wait_until(5.0)  # 5 simulated s = 0.1 wall s at 50×
    assert 5.0 <= clock.now() < 25.0
    with pytest.raises(ValueError):
        RealTimeClock(speed=0)


def test_truth_window_value_at_and_digest_across_chunks() -> None:
    truth = TruthRecorder(["a.x", "a.y"], ["m", "%"])
    rows = CHUNK_ROWS * 2 + 10
    for i in range(rows):
        truth.record(i * 0.1, np.array([i, -i], dtype=float))
    assert len(truth) == rows
    times, values = truth.window("a.y", 409.5, 410.0)
    assert list(np.round(times, 6)) == [409.5, 409.6, 409.7, 409.8, 409.9, 410.0]
    assert list(values) == [-4095, -4096, -4097, -4098, -4099, -4100]
    assert truth.value_at("a.x", 0.05) == 0
    assert np.isnan(truth.value_at("a.x", -1))
    other = TruthRecorder(["a.x", "a.y"], ["m", "%"])
    for i in range(rows):
        other.record(i * 0.1, np.array([i, -i], dtype=float))
    assert other.digest() == truth.digest()
    other.record(9999, np.array([0.0, 0.0]))
    assert other.digest() != truth.digest()
    with pytest.raises(KeyError, match="no plant signal 'a.z'"):
        truth.window("a.z")


def test_units_convert_within_a_dimension_only() -> None:
    assert convert(1.0, "m3/h", "L/min") == pytest.approx(1000 / 60)
    assert convert(100.0, "degC", "K") == pytest.approx(373.15)
    assert convert(1.0, "bar", "kPa") == pytest.approx(100.0)
    assert same_dimension("mm", "m") and not same_dimension("m", "degC")
    with pytest.raises(ValueError, match="cannot convert"):
        convert(1.0, "m", "s")
    assert all(len(unit.unece) in (2, 3) for unit in UNITS.values())
