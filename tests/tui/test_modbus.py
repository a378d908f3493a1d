"""The Modbus poller screen: reads, decodes and writes plc1 over real Modbus TCP.

The lab runs on a virtual clock (values only change by writes), serving Modbus only (no
OPC UA server, no IT side: they take seconds to start and the poller needs neither). In
the lab of the decoding test the level is served in CDAB order, as a retrofitted card of
exercise 1 would, so the default ABCD shows a wrong number until the words are swapped.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Select, Static

from grading.workspace import default_course_root, init_workspace
from simlab.scenario import load_scenario
from simlab.scenario.model import Scenario
from simlab.tui import ExerciseContext, LabPlan, SimlabApp
from simlab.tui.screens.modbus import ModbusScreen, mapped_span, parse_int
from simlab.tui.widgets.modbus_table import RegisterTable
from tests.tui.conftest import PlanFactory, blank_volatile, until


def water_tank(level_order: str = "ABCD") -> Scenario:
    """The water tank serving Modbus only, plc1's level in ``level_order``."""
    data = load_scenario("water-tank").model_dump(mode="json", exclude_unset=True)
    for device in data["devices"]:
        device.pop("opcua", None)
    for tag in data["devices"][0]["tags"]:
        if tag["name"] == "level":
            tag["modbus"]["word_order"] = level_order
    return Scenario.model_validate(data)


def poller_app(make_plan: PlanFactory, level_order: str = "ABCD") -> SimlabApp:
    plan = make_plan(broker=None)
    return SimlabApp(dataclasses.replace(plan, scenario=water_tank(level_order)))


async def open_poller(app: SimlabApp, pilot: Pilot[Any]) -> ModbusScreen:
    await app.wait_ready()
    await pilot.press("4")
    screen = app.screen
    assert isinstance(screen, ModbusScreen)
    await until(pilot, lambda: screen.query_one(RegisterTable).row_count > 0, "the first read")
    return screen


def cell(screen: ModbusScreen, address: int, column: str) -> str:
    return str(screen.query_one(RegisterTable).get_cell(str(address), column))


def status(screen: ModbusScreen) -> str:
    return str(screen.query_one("#mb-status", Static).content)


async def choose_table(pilot: Pilot[Any], screen: ModbusScreen, table: str, first: str) -> None:
    screen.query_one("#mb-table", Select).value = table
    await until(pilot, lambda: cell_or_none(screen, 0, "ref") == first, f"a read of {table}")


def cell_or_none(screen: ModbusScreen, address: int, column: str) -> str | None:
    table = screen.query_one(RegisterTable)
    return cell(screen, address, column) if str(address) in table.rows else None


def test_form_helpers() -> None:
    assert parse_int(" 0x10 ", "start") == 16
    with pytest.raises(ValueError, match="start: 'ten' is not a whole number"):
        parse_int("ten", "start")
    assert mapped_span({0: "a", 1: "a", 2: "b", 7: "c"}, 125) == (0, 3)
    assert mapped_span({}, 125) == (0, 10)


async def test_the_level_decodes_only_in_its_word_order(make_plan: PlanFactory) -> None:
    app = poller_app(make_plan, "CDAB")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_poller(app, pilot)
        lab = app.lab
        assert lab is not None
        assert screen.query_one("#mb-start", Input).value == "0"
        assert screen.query_one("#mb-count", Input).value == "4"  # the mapped holding registers
        await choose_table(pilot, screen, "input_registers", "30001")
        assert screen.query_one("#mb-count", Input).value == "8"
        assert cell(screen, 0, "tag") == "level (1/2)"
        level = float(lab.read("plc1.level"))
        wrong = float(cell(screen, 0, "value") or "nan")
        assert wrong != pytest.approx(level, rel=1e-3)
        screen.query_one(RegisterTable).focus()
        await pilot.press("o")  # swap the words: CDAB
        await until(
            pilot, lambda: "CDAB" in str(screen.query_one("#mb-settings", Static).content), "CDAB"
        )
        assert float(cell(screen, 0, "value")) == pytest.approx(level, rel=1e-6)
        assert cell(screen, 1, "value") == ""  # the second register of the float
        raw = [int(cell(screen, a, "raw")) for a in (0, 1)]
        assert cell(screen, 0, "hex") == f"0x{raw[0]:04X}"
        await pilot.press("t")  # int16: one value per register
        await until(pilot, lambda: cell(screen, 1, "value") != "", "int16 values")
        assert int(cell(screen, 6, "value")) == round(float(lab.read("plc1.temperature")) * 10)


async def test_writes_a_float_setpoint_and_a_coil(make_plan: PlanFactory) -> None:
    app = poller_app(make_plan)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_poller(app, pilot)
        lab = app.lab
        assert lab is not None
        table = screen.query_one(RegisterTable)
        table.focus()
        table.move_cursor(row=2)  # valve_cmd, float32 in holding registers 2..3
        await pilot.press("w", *"62.5", "enter")
        await until(pilot, lambda: "Wrote 62.5" in status(screen), "the write")
        assert lab.read("plc1.valve_cmd") == pytest.approx(62.5)
        assert cell(screen, 2, "value") == "62.5"
        # a uint16 into half of the float: the device refuses, the screen says why
        await pilot.press("escape", "t", "t", "w", "ctrl+u", "7", "enter")
        await until(pilot, lambda: "illegal data value" in status(screen), "the refusal")
        assert "write all its registers" in status(screen)
        assert lab.read("plc1.valve_cmd") == pytest.approx(62.5)
        await choose_table(pilot, screen, "coils", "00001")
        assert cell(screen, 1, "tag") == "auto" and cell(screen, 1, "value") == "ON"
        table.focus()
        table.move_cursor(row=1)
        await pilot.press("w", "ctrl+u", *"off", "enter")
        await until(pilot, lambda: "Wrote OFF" in status(screen), "the coil write")
        assert lab.read("plc1.auto") is False
        assert cell(screen, 1, "value") == "OFF"


async def test_errors_are_said_and_the_screen_keeps_reading(make_plan: PlanFactory) -> None:
    app = poller_app(make_plan)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_poller(app, pilot)
        start = screen.query_one("#mb-start", Input)
        count = screen.query_one("#mb-count", Input)
        start.value, count.value = "100", "1"
        start.focus()
        await pilot.press("enter")
        await until(pilot, lambda: "illegal data address" in status(screen), "exception 02")
        assert "holding register 40101 (address 100) is not mapped" in status(screen)
        count.value = "200"
        await pilot.press("enter")
        await until(pilot, lambda: "1 to 125" in status(screen), "the count limit")
        start.value = "ten"
        await pilot.press("enter")
        await until(pilot, lambda: "'ten' is not a whole number" in status(screen), "a bad start")
        start.value, count.value = "2", "2"
        await pilot.press("enter")
        await until(pilot, lambda: status(screen).startswith("Read 2"), "a good read")
        assert cell(screen, 2, "tag") == "valve_cmd (1/2)"
        await pilot.press("escape", "w", *"x1", "enter")
        await until(pilot, lambda: "'x1' is not a number" in status(screen), "a bad value")


async def test_polling_follows_the_device(make_plan: PlanFactory) -> None:
    app = poller_app(make_plan)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_poller(app, pilot)
        lab = app.lab
        assert lab is not None
        await pilot.press("p")
        lab.write("plc1.level_sp", 1.5)
        await until(pilot, lambda: cell(screen, 0, "value") == "1.5", "the polled setpoint")
        assert "poll on" in str(screen.query_one("#mb-settings", Static).content)
        await pilot.press("p")
        assert "Polling stopped" in status(screen)


def test_snapshot_input_registers_as_float32(make_plan: PlanFactory, snap_compare: Any) -> None:
    app = poller_app(make_plan)

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await open_poller(app, pilot)
        await choose_table(pilot, screen, "input_registers", "30001")
        await until(pilot, lambda: status(screen).startswith("Read 8"), "the read")
        screen.refresh_view()
        blank_volatile(app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


async def test_in_an_exercise_lab_the_poller_does_not_name_the_registers(
    tmp_path: Path,
) -> None:
    workspace = init_workspace(
        tmp_path / "ws", course_root=default_course_root(), apprentice="ann", secret="s3cret"
    )
    context = ExerciseContext.of(workspace, workspace.entries[0])
    table, address = context.variant["table"] + "s", context.variant["address"]
    app = SimlabApp(LabPlan.for_exercise(context, virtual=True, broker=None))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.wait_ready()
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, ModbusScreen)
        screen.query_one("#mb-table", Select).value = table
        await pilot.pause(0.2)  # a new table fills in start and count: ours come after
        screen.query_one("#mb-start", Input).value = str(address)
        screen.query_one("#mb-count", Input).value = "2"
        screen.action_read()
        await until(pilot, lambda: cell_or_none(screen, address, "raw") is not None, "the read")
        assert cell(screen, address, "tag") == cell(screen, address + 1, "tag") == ""
        await pilot.press("ctrl+q")
