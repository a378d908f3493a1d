"""Sensors: range, noise, resolution, lag, unit conversion and every sensor fault."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import TypeAdapter

from devices.sensors import MeasuredTag, Quality, SensorBank
from simlab.scenario.devices import SensorSpec
from simlab.scenario.faults import FaultSpec

FAULT = TypeAdapter[FaultSpec](FaultSpec)


def bank(
    sensor: dict[str, object] | None = None,
    unit: str = "m",
    tag_unit: str = "m",
    is_bool: bool = False,
) -> SensorBank:
    spec = SensorSpec.model_validate(sensor) if sensor is not None else None
    tag = MeasuredTag("plc.x", 0, unit, tag_unit, is_bool, spec)
    return SensorBank([tag], np.random.default_rng(1))


def sample(b: SensorBank, true: float, steps: int = 1, dt: float = 0.1) -> float:
    for _ in range(steps):
        b.step(dt, np.array([true]))
    return float(b.readings[0])


def fault(kind: str, **fields: object) -> FaultSpec:
    return FAULT.validate_python({"kind": kind, "target": "plc.x", **fields})


def test_ideal_sensor_reads_the_truth() -> None:
    assert sample(bank(), 1.234) == 1.234


def test_unit_conversion_affine() -> None:
    assert sample(bank(unit="m", tag_unit="mm"), 1.5) == pytest.approx(1500.0)
    assert sample(bank(unit="degC", tag_unit="K"), 20.0) == pytest.approx(293.15)


def test_range_clamps_and_marks_uncertain() -> None:
    b = bank({"range": [0, 2]})
    assert sample(b, 2.5) == 2.0
    assert b.quality[0] == Quality.UNCERTAIN
    assert sample(b, 1.0) == 1.0
    assert b.quality[0] == Quality.GOOD


def test_resolution_quantises() -> None:
    assert sample(bank({"resolution": 0.05}), 1.2345) == pytest.approx(1.25)


def test_noise_has_declared_standard_deviation() -> None:
    b = bank({"noise": 0.1})
    readings = [sample(b, 5.0) for _ in range(5000)]
    assert np.mean(readings) == pytest.approx(5.0, abs=0.01)
    assert np.std(readings) == pytest.approx(0.1, rel=0.05)


def test_lag_is_first_order() -> None:
    b = bank({"lag": 2.0})
    sample(b, 0.0)
    value = sample(b, 1.0, steps=20)  # 2 s = one time constant
    assert value == pytest.approx(1 - math.exp(-1), rel=1e-3)


def test_bool_sensor_reads_bool() -> None:
    b = bank(unit="bool", tag_unit="bool", is_bool=True)
    assert sample(b, 1.0) == 1.0
    assert sample(b, 0.0) == 0.0


def test_stuck_freezes_reading_then_recovers() -> None:
    b = bank()
    sample(b, 1.0)
    b.apply("plc.x", fault("stuck"))
    assert sample(b, 3.0) == 1.0
    b.apply("plc.x", fault("stuck", value=7.0))
    assert sample(b, 3.0) == 7.0
    b.clear("plc.x", "stuck")
    assert sample(b, 3.0) == 3.0


def test_drift_grows_at_rate_and_clears() -> None:
    b = bank()
    b.apply("plc.x", fault("drift", rate=0.01))
    assert sample(b, 1.0, steps=100) == pytest.approx(1.1)
    assert b.quality[0] == Quality.GOOD  # a drift is not flagged: finding it is the job
    b.clear("plc.x", "drift")
    assert sample(b, 1.0) == 1.0


def test_noise_burst_and_spike() -> None:
    b = bank()
    b.apply("plc.x", fault("noise_burst", std=0.5))
    assert np.std([sample(b, 1.0) for _ in range(2000)]) == pytest.approx(0.5, rel=0.1)
    b.clear("plc.x", "noise_burst")
    b.apply("plc.x", fault("spike", magnitude=4.0))
    assert sample(b, 1.0) == 5.0
    assert sample(b, 1.0) == 1.0  # one scan only


def test_offline_holds_last_value_with_bad_quality() -> None:
    b = bank()
    sample(b, 1.0)
    b.apply("plc.x", fault("offline"))
    assert sample(b, 2.0) == 1.0
    assert b.quality[0] == Quality.BAD
    b.clear("plc.x", "offline")
    assert sample(b, 2.0) == 2.0
    assert b.quality[0] == Quality.GOOD


def test_out_of_range_pins_beyond_the_span() -> None:
    b = bank({"range": [0, 10]})
    b.apply("plc.x", fault("out_of_range", side="low"))
    assert sample(b, 5.0) == -1.0
    assert b.quality[0] == Quality.BAD


def test_out_of_range_needs_a_range() -> None:
    with pytest.raises(ValueError, match="no sensor range"):
        bank().apply("plc.x", fault("out_of_range"))


def test_nan_reading_is_bad() -> None:
    b = bank()
    b.apply("plc.x", fault("nan"))
    assert math.isnan(sample(b, 1.0))
    assert b.quality[0] == Quality.BAD
