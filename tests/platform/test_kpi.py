"""OEE per ISO 22400-2 from PackML states and counters, against hand-computed figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simlab.platform.kpi import KpiError, OeeResult, counter_increase, oee, state_durations

EXECUTE, STOPPED, HELD, ABORTED, IDLE = 6, 2, 11, 9, 4

# One hour: Execute 0–600, Held 600–900, Execute 900–3000, Stopped 3000–3300 (not planned),
# Execute 3300–3600.
STATES = [(0.0, EXECUTE), (600.0, HELD), (900.0, EXECUTE), (3000.0, STOPPED), (3300.0, EXECUTE)]
# 100 → 1500, reset, 50 → 900: produced = 1400 + 50 + 850 = 2300
PRODUCED = [(0.0, 100.0), (1800.0, 1500.0), (2000.0, 50.0), (3600.0, 900.0)]
GOOD = [(0.0, 15.0), (3600.0, 2200.0)]  # 2185 good


def test_oee_hand_computed() -> None:
    result = oee(STATES, PRODUCED, GOOD, 0.0, 3600.0, 60.0)  # ideal: 1 item per second
    # PBT = 3600 - 300 (Stopped) = 3300 s; APT = 600 + 2100 + 300 = 3000 s
    # A = 3000/3300 = 10/11; P = 2300 × 1 s / 3000 s = 23/30; Q = 2185/2300 = 19/20
    assert result == OeeResult(
        availability=pytest.approx(10 / 11),  # type: ignore[arg-type]
        performance=pytest.approx(23 / 30),  # type: ignore[arg-type]
        quality=pytest.approx(19 / 20),  # type: ignore[arg-type]
        oee=pytest.approx(4370 / 6600),  # type: ignore[arg-type]
        apt=3000.0,
        pbt=3300.0,
        produced=2300.0,
        good=2185.0,
    )


def test_rejected_counter_instead_of_good() -> None:
    rejected = [(0.0, 7.0), (3600.0, 122.0)]  # 115 rejected → 2185 good
    result = oee(STATES, PRODUCED, None, 0.0, 3600.0, 60.0, rejected=rejected)
    assert result.good == 2185.0
    assert result.quality == pytest.approx(0.95)


def test_stopped_can_count_as_planned_down_time() -> None:
    result = oee(STATES, PRODUCED, GOOD, 0.0, 3600.0, 60.0, not_planned=())
    assert result.pbt == 3600.0
    assert result.availability == pytest.approx(3000 / 3600)


def test_window_clips_states_and_counters() -> None:
    # 500–1000: Execute 500–600 and 900–1000 (200 s), Held 600–900 (300 s).
    # Counter: baseline 40 (last sample at or before 500), 90 at 950 (last before 1000).
    counter = [(0.0, 0.0), (400.0, 40.0), (700.0, 60.0), (950.0, 90.0), (1200.0, 500.0)]
    result = oee(STATES, counter, counter, 500.0, 1000.0, 30.0)  # ideal: 2 s per item
    assert (result.apt, result.pbt) == (200.0, 500.0)
    assert result.produced == 50.0  # 40 at/before 500, 90 at 950
    assert result.performance == pytest.approx(50 * 2 / 200)
    assert result.quality == 1.0


def test_state_durations_with_unknown_time() -> None:
    states = [(100.0, EXECUTE), (150.0, ABORTED), (170.0, None), (180.0, 11.0)]
    assert state_durations(states, 0.0, 200.0) == {
        None: 100.0 + 10.0,  # before the first sample, and the sample without a value
        EXECUTE: 50.0,
        ABORTED: 20.0,
        HELD: 20.0,
    }
    assert state_durations(list(reversed(states)), 0.0, 200.0) == state_durations(
        states, 0.0, 200.0
    )


def test_unknown_time_is_not_planned() -> None:
    # Line state first known at 1800: only 1800–3600 counts (Execute 1800–3000, 3300–3600).
    states = [(1800.0, EXECUTE), (3000.0, IDLE), (3300.0, EXECUTE)]
    result = oee(states, PRODUCED, GOOD, 0.0, 3600.0, 60.0)
    assert (result.apt, result.pbt, result.availability) == (1500.0, 1500.0, 1.0)


def test_counter_increase_across_resets() -> None:
    samples = [(0.0, 10.0), (10.0, 20.0), (20.0, 3.0), (30.0, 8.0), (40.0, 1.0), (50.0, 4.0)]
    # 10 + 3 (reset) + 5 + 1 (reset) + 3 = 22
    assert counter_increase(samples, 0.0, 50.0) == 22.0
    assert counter_increase(samples, 15.0, 35.0) == 3.0 + 5.0  # baseline 20 at ts 10
    assert counter_increase(samples, -5.0, 10.0) == 10.0  # no baseline: first sample
    assert counter_increase([(5.0, 7.0), (6.0, None)], 0.0, 10.0) == 0.0


def test_no_production_time_gives_zero_not_a_crash() -> None:
    states = [(0.0, HELD)]
    result = oee(states, [(0.0, 5.0)], [(0.0, 5.0)], 0.0, 60.0, 60.0)
    assert (result.availability, result.performance, result.quality, result.oee) == (
        0.0,
        0.0,
        0.0,
        0.0,
    )


def test_datetimes_are_accepted() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    states = [(start, EXECUTE)]
    counter = [(start, 0.0), (start + timedelta(minutes=1), 30.0)]
    result = oee(states, counter, counter, start, start + timedelta(minutes=1), 60.0)
    assert (result.pbt, result.performance) == (60.0, 0.5)


def test_errors_are_clear() -> None:
    with pytest.raises(KpiError, match="the window is empty"):
        oee(STATES, PRODUCED, GOOD, 10.0, 10.0, 60.0)
    with pytest.raises(KpiError, match="ideal_rate_per_min must be > 0"):
        oee(STATES, PRODUCED, GOOD, 0.0, 10.0, 0.0)
    with pytest.raises(KpiError, match="exactly one of good"):
        oee(STATES, PRODUCED, GOOD, 0.0, 10.0, 60.0, rejected=GOOD)
    with pytest.raises(KpiError, match="exactly one of good"):
        oee(STATES, PRODUCED, None, 0.0, 10.0, 60.0)
    with pytest.raises(KpiError, match=r"no planned busy time .*states seen: 2, 4"):
        oee([(0.0, STOPPED), (5.0, IDLE)], PRODUCED, GOOD, 0.0, 10.0, 60.0)
    with pytest.raises(KpiError, match=r"states seen: none"):
        oee([], PRODUCED, GOOD, 0.0, 10.0, 60.0)
    with pytest.raises(KpiError, match="counter has no sample up to the window end"):
        oee(STATES, [(20.0, 1.0)], GOOD, 0.0, 10.0, 60.0)
