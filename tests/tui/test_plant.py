"""The Plant screen: live tags, the mimic, and the lineage of a tag over the real protocols."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Static

from devices.registermap import decode
from simlab.bus.uns import UnsMessage
from simlab.scenario import load_scenario
from simlab.tui import SimlabApp
from simlab.tui.screens.plant import PlantScreen
from simlab.tui.widgets.mimic import LevelMark, Palette, PlantState, draw_plant, level_marks
from simlab.tui.widgets.tag_table import TagTable
from tests.tui.conftest import PlanFactory, blank_volatile

LEVEL_TOPIC = "acme/riverside/utilities/water/buffer_tank/tank1/level"
SnapCompare = Callable[..., bool]


async def _plant(app: SimlabApp, pilot: Pilot[int]) -> PlantScreen:
    await app.wait_ready()
    for _ in range(100):
        if isinstance(app.screen, PlantScreen) and app.screen.query(TagTable):
            break
        await pilot.pause(0.05)
    screen = app.screen
    assert isinstance(screen, PlantScreen)
    await pilot.pause(0.3)  # a refresh or two
    return screen


def _cell(table: TagTable, ref: str, column: str) -> str:
    cell = table.get_cell(ref, column)
    return cell.plain if isinstance(cell, Text) else str(cell)


async def _filled(screen: PlantScreen, pilot: Pilot[int]) -> None:
    """Wait (bounded) until every protocol hop of the open lineage has answered."""
    for _ in range(300):
        r = screen.readings
        if r and r.registers and r.opcua and r.opcua.good and r.message and r.platform:
            return
        await pilot.pause(0.05)
    raise AssertionError(f"the lineage hops were not all read: {screen.readings}")


# --- the mimic, pure ----------------------------------------------------------------------


def test_the_water_tank_marks_its_limits_and_setpoint() -> None:
    marks = level_marks(load_scenario("water-tank"))
    assert set(marks) == {
        LevelMark("tank", "S", None, "plc1.level_sp", "m"),
        LevelMark("tank", "L", 0.15),
        LevelMark("tank", "H", 1.85),
    }


def test_the_mimic_draws_every_unit_the_scenario_declares() -> None:
    plant = load_scenario("water-tank").plant
    values = {
        "supply_pump.running": 1.0,
        "supply_pump.speed": 62.0,
        "supply_pump.flow": 12.3,
        "tank.level": 1.0,
        "tank.inflow": 12.3,
        "tank.outflow": 4.0,
        "outlet_valve.position": 50.0,
        "outlet_valve.flow": 4.0,
        "tank_heat.cmd_heater": 100.0,
        "tank_heat.heater_power": 40.0,
        "tank_heat.temperature": 38.5,
    }
    marks = {"tank": [("L", 0.15), ("S", 1.2), ("H", 1.85)]}
    text = draw_plant(plant, PlantState(values, marks=marks), 76, Palette()).plain
    pump, tank, valve, heat = text.split("\n")
    assert pump == "supply_pump  ● RUN   62 %   12.3 m3/h  supply → tank"
    assert tank.startswith("tank         ▕") and tank.endswith(
        "1.00 m  50 %  in 12.3 out  4.0 m3/h"
    )
    bar = tank[tank.index("▕") + 1 : tank.index("▏")]
    assert bar.index("L") < bar.index("S") < bar.index("H")
    assert bar[: len(bar) // 2].replace("L", "█") == "█" * (len(bar) // 2)  # half full
    assert valve == "outlet_valve ▶◀  50 % open    4.0 m3/h  tank → drain"
    assert heat == "tank_heat    ≋ heater 100 %  40.0 kW   38.5 °C"
    stopped = draw_plant(plant, PlantState({"tank.overflowing": 1.0}), 76, Palette()).plain
    assert "○ STOP" in stopped and "OVERFLOW" in stopped


def test_a_motor_shows_speed_current_temperature_and_vibration() -> None:
    plant = load_scenario("pump-station").plant
    values = {
        "motor1.running": 1.0,
        "motor1.speed": 2950.0,
        "motor1.current": 35.2,
        "motor1.winding_temperature": 71.5,
        "motor1.vibration": 2.1,
    }
    lines = draw_plant(plant, PlantState(values), 76, Palette()).plain.split("\n")
    motor = next(line for line in lines if line.startswith("motor1"))
    assert motor == "motor1       ● RUN  2950 rpm   35.2 A   71.5 °C   2.10 mm/s"


def test_a_conveyor_shows_its_items_and_numbered_stations() -> None:
    plant = load_scenario("bottling-line").plant
    values = {"conveyor.running": 1.0, "conveyor.speed": 0.5, "conveyor.items_in": 3.0}
    state = PlantState(values, items={"conveyor": [0.75, 1.5, 3.6]})
    status, belt, legend = draw_plant(plant, state, 70, Palette()).plain.split("\n")
    assert status == "conveyor ● RUN  0.50 m/s  in 3 out 0 rejected 0"
    cells = belt.strip()[1:-1]
    assert len(cells) == 70 - 9 - 2
    assert cells.count("●") == 2  # the third item is at the filler, shown as its number
    assert [c for c in cells if c.isdigit()] == ["1", "2", "3", "4", "5"]
    assert legend.split() == [
        "1",
        "infeed_eye",
        "2",
        "filler",
        "3",
        "capper",
        "4",
        "inspection",
        "5",
        "outfeed_eye",
    ]


# --- the screen ---------------------------------------------------------------------------


async def test_the_table_shows_live_tags_with_unit_and_quality(make_plan: PlanFactory) -> None:
    app = SimlabApp(make_plan())
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _plant(app, pilot)
        lab = app.lab
        assert lab is not None
        table = screen.query_one(TagTable)
        assert table.row_count == len(lab.devices["plc1"].specs)
        assert _cell(table, "plc1.level", "value") == "0.403"
        assert _cell(table, "plc1.level", "unit") == "m"
        assert _cell(table, "plc1.level", "Q") == "Good"
        assert _cell(table, "plc1.level", "lab time") == "00:00:00.0"
        mimic = str(screen.query_one("#mimic", Static).render())
        assert "tank" in mimic and "0.40 m" in mimic
        await lab.run_for(5)
        await pilot.pause(0.3)
        assert _cell(table, "plc1.level", "lab time") == "00:00:05.0"
        assert _cell(table, "plc1.level", "value") == f"{lab.read('plc1.level'):g}"
        assert _cell(table, "plc1.level", "value") != "0.403"
        assert _cell(table, "plc1.level", "trend").strip()  # two samples: a sparkline
        await pilot.press("q")


async def test_the_lineage_of_the_level_reads_every_hop_over_the_protocols(
    make_plan: PlanFactory,
) -> None:
    app = SimlabApp(make_plan())
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _plant(app, pilot)
        lab = app.lab
        assert lab is not None
        await lab.run_for(5)
        await pilot.press("enter")
        assert screen.route is not None and screen.route.ref == "plc1.level"
        assert not screen.query_one("#mimic").display
        await _filled(screen, pilot)
        readings, route = screen.readings, screen.route
        assert readings is not None and route.modbus is not None
        plc = lab.read("plc1.level")
        assert readings.registers is not None
        assert decode(route.modbus, readings.registers) == pytest.approx(plc, rel=1e-7)
        assert readings.node_id == "ns=2;s=plc1.level"
        assert readings.opcua is not None and readings.opcua.value == plc
        for _ in range(100):  # the gateway polls once a (wall-clock) second
            readings = screen.readings
            assert readings is not None and readings.message is not None
            published = UnsMessage.from_json(readings.message.payload).value
            if published == plc and readings.platform and readings.platform.value == plc:
                break
            await pilot.pause(0.05)
        assert published == plc and readings.message.topic == LEVEL_TOPIC
        assert readings.platform is not None and readings.platform.tag == LEVEL_TOPIC
        assert readings.platform.value == plc
        await pilot.pause(0.3)
        shown = str(screen.query_one("#lineage-hops", Static).render())
        for text in ("tank.level", "30001-30002", "float32 ABCD", "ns=2;s=plc1.level"):
            assert text in shown
        assert LEVEL_TOPIC in shown and shown.count(f"{plc:g} m") == 5

        await pilot.press("down")  # the lineage follows the cursor
        assert screen.route.ref == "plc1.level_sp"
        await pilot.resize_terminal(100, 30)  # room for both
        await pilot.pause()
        assert screen.query_one("#mimic").display and screen.query_one("#lineage").display
        await pilot.press("escape")
        assert screen.route is None and screen.query_one("#mimic").display
        await pilot.press("q")


def test_snapshot_lineage_of_the_level(snap_compare: SnapCompare, make_plan: PlanFactory) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, SimlabApp)
        screen = await _plant(app, pilot)
        await pilot.press("enter")
        await _filled(screen, pilot)
        await pilot.pause(0.3)
        blank_volatile(app)

    assert snap_compare(SimlabApp(make_plan()), terminal_size=(80, 24), run_before=run_before)


def test_snapshot_bottling_line_mimic(snap_compare: SnapCompare, make_plan: PlanFactory) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, SimlabApp)
        await _plant(app, pilot)
        blank_volatile(app)

    plan = make_plan("bottling-line")
    assert snap_compare(SimlabApp(plan), terminal_size=(80, 24), run_before=run_before)
