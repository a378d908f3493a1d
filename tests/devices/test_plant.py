"""Plant physics: each unit model against the law it claims to follow."""

from __future__ import annotations

import numpy as np
import pytest

from devices.plant.plant import Plant
from simlab.scenario.plant import PlantSpec


def plant(*units: dict[str, object], seed: int = 0) -> Plant:
    return Plant(PlantSpec.model_validate({"units": list(units)}), np.random.default_rng(seed))


def run(p: Plant, seconds: float, dt: float = 0.1) -> None:
    for _ in range(round(seconds / dt)):
        p.step(dt)


TANK = {"type": "tank", "name": "tank", "area": 2.0, "height": 3.0, "initial_level": 1.0}


def test_tank_mass_balance_matches_integrated_flows() -> None:
    p = plant(
        TANK,
        {
            "type": "pump",
            "name": "pump",
            "max_flow": 20.0,
            "shutoff_head": 10.0,
            "to": "tank",
            "spin_time": 0.0,
            "initial_run": True,
        },
        {
            "type": "valve",
            "name": "valve",
            "tank": "tank",
            "cv": 5.0,
            "travel_time": 0.0,
            "initial_position": 40.0,
        },
    )
    v = p.values
    net_volume = 0.0
    for _ in range(1200):
        p.step(0.1)
        net_volume += (v[p.index("tank.inflow")] - v[p.index("tank.outflow")]) * 0.1 / 3600
    assert v[p.index("tank.volume")] == pytest.approx(2.0 + net_volume, rel=1e-9)
    assert v[p.index("tank.volume")] == pytest.approx(v[p.index("tank.level")] * 2.0)


def test_valve_flow_follows_square_root_of_level() -> None:
    p = plant(
        TANK,
        {
            "type": "valve",
            "name": "valve",
            "tank": "tank",
            "cv": 6.0,
            "travel_time": 0.0,
            "initial_position": 50.0,
        },
    )
    p.step(0.1)
    level = p.values[p.index("tank.level")]
    assert p.values[p.index("valve.flow")] == pytest.approx(6.0 * 0.5 * np.sqrt(level), rel=1e-3)


def test_valve_moves_at_its_travel_rate() -> None:
    p = plant(
        TANK,
        {
            "type": "valve",
            "name": "valve",
            "tank": "tank",
            "cv": 1.0,
            "travel_time": 10.0,
            "initial_position": 0.0,
        },
    )
    p.values[p.index("valve.cmd_position")] = 100.0
    run(p, 5.0)
    assert p.values[p.index("valve.position")] == pytest.approx(50.0)
    run(p, 6.0)
    assert p.values[p.index("valve.position")] == pytest.approx(100.0)


def test_tank_drains_to_empty_and_never_below() -> None:
    p = plant(
        {**TANK, "initial_level": 0.05},
        {
            "type": "valve",
            "name": "valve",
            "tank": "tank",
            "cv": 50.0,
            "travel_time": 0.0,
            "initial_position": 100.0,
        },
    )
    run(p, 120)
    assert p.values[p.index("tank.level")] == 0.0
    assert p.values[p.index("valve.flow")] == 0.0


def test_tank_overflows_at_its_height() -> None:
    p = plant(
        {**TANK, "initial_level": 2.99},
        {
            "type": "pump",
            "name": "pump",
            "max_flow": 100.0,
            "shutoff_head": 50.0,
            "to": "tank",
            "spin_time": 0.0,
            "initial_run": True,
        },
    )
    run(p, 60)
    assert p.values[p.index("tank.level")] == pytest.approx(3.0)
    assert p.values[p.index("tank.overflowing")] == 1.0


def test_pump_curve_and_affinity_law() -> None:
    p = plant(
        TANK,
        {
            "type": "pump",
            "name": "pump",
            "max_flow": 20.0,
            "shutoff_head": 10.0,
            "static_head": 2.0,
            "to": "tank",
            "spin_time": 0.0,
            "initial_run": True,
        },
    )
    p.step(0.1)
    head = 2.0 + p.values[p.index("tank.level")]
    flow = p.values[p.index("pump.flow")]
    assert flow == pytest.approx(20.0 * np.sqrt(1 - head / 10.0), rel=1e-3)
    p.values[p.index("pump.cmd_speed")] = 40.0  # n² = 0.16 < head/H0: cannot lift
    p.step(0.1)
    assert p.values[p.index("pump.flow")] == 0.0


def test_pump_ramps_counts_run_hours_and_stops_dry() -> None:
    p = plant(
        {**TANK, "initial_level": 0.01},
        {"type": "tank", "name": "upper", "area": 1.0, "height": 5.0},
        {
            "type": "pump",
            "name": "pump",
            "max_flow": 30.0,
            "shutoff_head": 20.0,
            "source": "tank",
            "to": "upper",
            "spin_time": 4.0,
            "initial_run": True,
        },
    )
    run(p, 2.0)
    assert p.values[p.index("pump.speed")] == pytest.approx(50.0)
    run(p, 1800.0, dt=1.0)
    assert p.values[p.index("pump.run_hours")] == pytest.approx(1802 / 3600, rel=1e-3)
    assert p.values[p.index("tank.level")] == 0.0
    assert p.values[p.index("pump.flow")] == 0.0  # dry: no suction


def test_heater_reaches_steady_state_of_heat_balance() -> None:
    p = plant(
        {
            "type": "thermal",
            "name": "heat",
            "mass": 20.0,
            "heater_power": 1.0,
            "loss_coefficient": 50.0,
            "ambient": 20.0,
            "initial_temperature": 20.0,
        }
    )
    p.values[p.index("heat.cmd_heater")] = 100.0
    run(p, 20_000, dt=1.0)  # time constant m·cp/UA ≈ 1,674 s
    # P = UA·ΔT ⇒ ΔT = 1000 W / 50 W/K = 20 K
    assert p.values[p.index("heat.temperature")] == pytest.approx(40.0, abs=0.05)


def test_inflow_mixing_cools_the_tank() -> None:
    p = plant(
        TANK,
        {
            "type": "pump",
            "name": "pump",
            "max_flow": 20.0,
            "shutoff_head": 10.0,
            "to": "tank",
            "spin_time": 0.0,
            "initial_run": True,
        },
        {
            "type": "thermal",
            "name": "heat",
            "tank": "tank",
            "loss_coefficient": 0.0,
            "inlet_temperature": 10.0,
            "initial_temperature": 50.0,
        },
    )
    run(p, 600)
    temperature = p.values[p.index("heat.temperature")]
    volume = p.values[p.index("tank.volume")]
    # Energy balance of mixing: 2 m3 at 50 °C + (volume - 2) m3 at 10 °C
    assert temperature == pytest.approx((2.0 * 50 + (volume - 2.0) * 10) / volume, rel=2e-3)


def test_motor_accelerates_heats_and_vibrates_more_when_worn() -> None:
    healthy = plant({"type": "motor", "name": "m", "accel_time": 2.0, "initial_run": True})
    worn = plant(
        {"type": "motor", "name": "m", "accel_time": 2.0, "initial_run": True, "initial_wear": 0.8}
    )
    run(healthy, 1.0)
    assert healthy.values[healthy.index("m.speed")] == pytest.approx(740.0)
    assert healthy.values[healthy.index("m.current")] == pytest.approx(75.0)  # inrush 2.5×
    for p in (healthy, worn):
        run(p, 3000, dt=1.0)
    hv, wv = healthy.values, worn.values
    assert hv[healthy.index("m.vibration")] == pytest.approx(1.2)
    assert wv[worn.index("m.vibration")] == pytest.approx(1.2 + 8.0 * 0.64)
    assert wv[worn.index("m.winding_temperature")] > hv[healthy.index("m.winding_temperature")] + 5
    assert wv[worn.index("m.current")] > hv[healthy.index("m.current")]


def test_motor_turns_the_pump_on_its_shaft() -> None:
    p = plant(
        TANK,
        {
            "type": "pump",
            "name": "pump",
            "max_flow": 20.0,
            "shutoff_head": 10.0,
            "to": "tank",
            "spin_time": 0.0,
        },
        {
            "type": "motor",
            "name": "m",
            "pump": "pump",
            "accel_time": 0.0,
            "initial_run": True,
            "initial_speed": 80.0,
        },
    )
    run(p, 1.0)
    assert p.values[p.index("pump.speed")] == pytest.approx(80.0)
    assert p.values[p.index("pump.flow")] > 0


BELT = {
    "type": "conveyor",
    "name": "belt",
    "length": 3.0,
    "speed": 0.5,
    "infeed_rate": 30,
    "initial_run": True,
    "stations": [
        {"name": "eye", "position": 0.5},
        {"name": "fill", "position": 1.0, "kind": "fill", "target": 500, "spread": 3.0},
        {"name": "cap", "position": 1.5, "kind": "cap", "failure_rate": 0.1},
        {"name": "check", "position": 2.0, "kind": "inspect", "tolerance": 5.0},
    ],
}


def test_conveyor_conserves_items() -> None:
    p = plant(BELT, seed=3)
    run(p, 600)
    v = p.values
    items_in, out = v[p.index("belt.items_in")], v[p.index("belt.items_out")]
    rejected, on_belt = v[p.index("belt.rejected")], v[p.index("belt.items_on_belt")]
    assert items_in == pytest.approx(300, abs=1)  # 30 per minute for 10 minutes
    assert items_in == out + rejected + on_belt
    assert 0.1 * 290 * 0.4 < rejected < 0.1 * 290 * 2.5  # caps fail 10 %, fills off by > 5 mL


def test_conveyor_presence_sensor_sees_each_item() -> None:
    p = plant(BELT)
    edges, before = 0, 0.0
    for _ in range(600):
        p.step(0.1)
        now = p.values[p.index("belt.eye_present")]
        edges += int(now > before)
        before = now
    assert edges == pytest.approx(p.values[p.index("belt.items_in")], abs=1)


def test_jam_stops_items_while_motor_runs() -> None:
    p = plant(BELT)
    run(p, 10)
    p.set_jam("belt", True)
    out_before = p.values[p.index("belt.items_out")]
    run(p, 60)
    assert p.values[p.index("belt.items_out")] == out_before
    assert p.values[p.index("belt.running")] == 1.0
    assert p.values[p.index("belt.speed")] == 0.0
    p.set_jam("belt", False)
    run(p, 60)
    assert p.values[p.index("belt.items_out")] > out_before


def test_leak_drains_a_tank() -> None:
    p = plant(TANK)
    p.set_leak("tank", 3.6)  # 1 L/s
    run(p, 100)
    assert p.values[p.index("tank.volume")] == pytest.approx(2.0 - 0.1)


def test_same_seed_same_trace_other_seed_other_trace() -> None:
    def trace(seed: int) -> bytes:
        p = plant(BELT, seed=seed)
        rows = []
        for _ in range(3000):
            p.step(0.1)
            rows.append(p.values.copy())
        return np.array(rows).tobytes()

    assert trace(5) == trace(5)
    assert trace(5) != trace(6)
