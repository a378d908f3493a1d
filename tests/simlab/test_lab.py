"""The lab runtime on the bundled scenarios: control, interlocks, faults, determinism."""

from __future__ import annotations

import asyncio

import pytest

from devices.sensors import Quality
from simlab.clock import RealTimeClock
from simlab.errors import FaultError, LabError, TagNotWritable, UnknownTag, ValueOutOfRange
from simlab.lab import Lab
from simlab.scenario import load_scenario

WATER_TANK = load_scenario("water-tank")


async def test_pid_settles_level_at_setpoint() -> None:
    async with Lab(WATER_TANK) as lab:
        await lab.run_for(400)
        assert lab.read("plc1.level") == pytest.approx(1.2, abs=0.02)
        _, levels = lab.truth.window("tank.level", 300, 400)
        assert abs(levels - 1.2).max() < 0.02
        lab.write("plc1.level_sp", 0.8)
        await lab.run_for(400)
        assert lab.truth.value_at("tank.level", lab.time) == pytest.approx(0.8, abs=0.02)


async def test_same_seed_same_trace_bit_for_bit() -> None:
    async def digest(seed: int) -> str:
        async with Lab(WATER_TANK, seed=seed) as lab:
            await lab.run_for(120)
            return lab.truth.digest()

    assert await digest(1) == await digest(1)
    assert await digest(1) != await digest(2)


async def test_high_high_interlock_latches_until_reset() -> None:
    async with Lab(WATER_TANK) as lab:
        await lab.run_for(60)
        lab.inject_fault({"kind": "spike", "target": "plc1.level", "magnitude": 2.0})
        await lab.run_for(1)
        assert lab.read("plc1.level_hh") is True
        assert lab.read("plc1.pump_run") is False
        await lab.run_for(10)
        assert lab.truth.value_at("supply_pump.running", lab.time) == 0.0
        lab.write("plc1.hh_reset", True)
        await lab.run_for(5)
        assert lab.read("plc1.level_hh") is False
        assert lab.read("plc1.hh_reset") is False  # command bit consumed
        lab.write("plc1.pump_run", True)
        await lab.run_for(5)
        assert lab.truth.value_at("supply_pump.running", lab.time) == 1.0


async def test_low_low_interlock_stops_the_heater() -> None:
    async with Lab(WATER_TANK) as lab:
        await lab.run_for(200)
        assert lab.read("plc1.heater_cmd") == 100.0  # water is cold: heating
        lab.write("plc1.auto", False)
        lab.write("plc1.pump_run", False)
        lab.inject_fault({"kind": "leak", "target": "tank", "flow": 30.0})
        await lab.run_for(200)
        assert lab.read("plc1.level_ll") is True
        assert lab.read("plc1.heater_cmd") == 0.0
        assert lab.truth.value_at("tank_heat.heater_power", lab.time) == 0.0


async def test_client_writes_are_checked() -> None:
    async with Lab(WATER_TANK) as lab:
        with pytest.raises(TagNotWritable, match="read-only"):
            lab.write("plc1.level", 1.0)
        with pytest.raises(ValueOutOfRange, match=r"outside its range \[0.2, 1.8\]"):
            lab.write("plc1.level_sp", 5.0)
        with pytest.raises(ValueOutOfRange, match="not a valid float"):
            lab.write("plc1.level_sp", "high")
        with pytest.raises(UnknownTag, match="did you mean 'level_sp'"):
            lab.read("plc1.level_sq")
        with pytest.raises(UnknownTag, match="'device.tag'"):
            lab.read("level")


async def test_sensor_faults_change_readings_not_the_plant() -> None:
    async with Lab(WATER_TANK) as lab:
        await lab.run_for(300)
        fault = lab.inject_fault({"kind": "offline", "target": "plc1.temperature"})
        await lab.run_for(1)
        assert lab.quality("plc1.temperature") == Quality.BAD
        lab.clear_fault(fault)
        await lab.run_for(1)
        assert lab.quality("plc1.temperature") == Quality.GOOD
        lab.inject_fault({"kind": "drift", "target": "plc1.level", "rate": 0.002})
        await lab.run_for(200)
        # The PID holds the *reading* at 1.2 m, so the true level sinks by the drift.
        assert lab.read("plc1.level") == pytest.approx(1.2, abs=0.03)
        assert lab.truth.value_at("tank.level", lab.time) == pytest.approx(0.8, abs=0.05)


async def test_bad_faults_are_refused_clearly() -> None:
    async with Lab(WATER_TANK) as lab:
        with pytest.raises(FaultError, match="does not exist"):
            lab.inject_fault({"kind": "stuck", "target": "plc1.levle"})
        with pytest.raises(FaultError, match="invalid fault"):
            lab.inject_fault({"kind": "melt", "target": "tank"})
        with pytest.raises(FaultError, match="no active fault with id 99"):
            lab.clear_fault(99)


async def test_bottling_line_runs_holds_on_jam_and_counts() -> None:
    async with Lab(load_scenario("bottling-line")) as lab:
        await lab.run_for(590)
        assert lab.read("line_plc.state") == 6.0  # Execute
        good, rejected = lab.read("line_plc.bottles_good"), lab.read("line_plc.bottles_rejected")
        assert isinstance(good, float) and good > 400
        assert lab.read("line_plc.bottles_in") >= good + rejected
        counted = lab.read("line_plc.produced_count")
        assert counted == pytest.approx(good, abs=2)
        await lab.run_for(15)  # the jam starts at 600 s; held after 2 s of jam
        assert lab.read("line_plc.state") == 11.0  # Held
        await lab.run_for(40)  # jam cleared at 645 s
        lab.write("line_plc.cmd_unhold", True)
        await lab.run_for(5)
        assert lab.read("line_plc.state") == 6.0
        events = [(e.action, e.kind) for e in lab.faults.events]
        assert events == [("start", "jam"), ("end", "jam")]


async def test_bearing_wear_raises_vibration_and_alarm() -> None:
    async with Lab(load_scenario("pump-station")) as lab:
        await lab.run_for(290)
        assert lab.read("station_plc.vibration_alarm") is False
        healthy = lab.truth.window("motor1.vibration", 0, 290)[1].max()
        await lab.run_for(2400)  # wear grows 3/h while the motor runs (on/off on level)
        assert lab.truth.value_at("motor1.bearing_wear", lab.time) > 0.6
        assert lab.truth.window("motor1.vibration", 290, lab.time)[1].max() > healthy + 4
        _, alarm = lab.truth.window("motor1.vibration", 290, lab.time)
        assert (alarm > 7.1).any()


async def test_real_time_lab_steps_itself_with_speed() -> None:
    async with Lab(WATER_TANK, clock=RealTimeClock(speed=100.0)) as lab:
        while lab.time < 10.0:
            await asyncio.sleep(0.01)
        with pytest.raises(LabError, match="virtual clock"):
            await lab.run_for(1)
    stopped_at = lab.time
    await asyncio.sleep(0.05)
    assert lab.time == stopped_at  # the runner task is gone
