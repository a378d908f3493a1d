"""The Instructor screen: faults injected and cleared live act on the running lab."""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static

from simlab.tui import SimlabApp
from simlab.tui.screens.instructor import InstructorScreen, fault_targets, parse_parameters
from tests.tui.conftest import PlanFactory, blank_volatile


def test_parameters_are_name_value_pairs_read_as_yaml() -> None:
    assert parse_parameters("rate=0.05 duration=60 side=low") == {
        "rate": 0.05,
        "duration": 60,
        "side": "low",
    }
    with pytest.raises(ValueError, match="'rate' is not name=value"):
        parse_parameters("rate")


def test_each_kind_offers_the_targets_it_accepts() -> None:
    units = {"tank1": "tank", "pump1": "pump", "belt": "conveyor"}
    assert fault_targets("drift", ["plc1.level"], units, ["plc1"]) == ["plc1.level"]
    assert fault_targets("leak", [], units, []) == ["tank1"]
    assert fault_targets("trip", [], units, []) == ["pump1"]
    assert fault_targets("comm_loss", [], units, ["plc1"]) == ["plc1"]


async def _open(app: SimlabApp, pilot: Pilot[int]) -> InstructorScreen:
    await app.wait_ready()
    await pilot.press("7")
    screen = app.screen
    assert isinstance(screen, InstructorScreen)
    return screen


async def test_a_fault_injected_from_the_form_acts_and_can_be_cleared(
    make_plan: PlanFactory,
) -> None:
    app = SimlabApp(make_plan(instructor=True))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot)
        lab = app.lab
        assert lab is not None
        sensor = next(iter(lab.sensors.position))
        screen.query_one("#kind", Select).value = "stuck"
        await pilot.pause()
        screen.query_one("#target", Select).value = sensor
        screen.query_one("#params", Input).value = "value=42"
        await pilot.press("i")
        await pilot.pause()
        [fault] = lab.faults.active.values()
        assert (fault.spec.kind, fault.spec.target) == ("stuck", sensor)
        await lab.run_for(1.0)
        assert lab.read(sensor) == pytest.approx(42)
        table = screen.query_one("#faults", DataTable)
        assert table.row_count == 1
        table.focus()
        await pilot.press("x")
        await pilot.pause()
        assert not lab.faults.active and table.row_count == 0


async def test_a_wrong_parameter_is_named_and_nothing_is_injected(make_plan: PlanFactory) -> None:
    app = SimlabApp(make_plan(instructor=True))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot)
        lab = app.lab
        assert lab is not None
        screen.query_one("#kind", Select).value = "drift"
        await pilot.pause()
        screen.query_one("#target", Select).value = next(iter(lab.sensors.position))
        screen.query_one("#params", Input).value = "rate=fast"
        await pilot.press("i")
        await pilot.pause()
        status = str(screen.query_one("#status", Static).render())
        assert "Not injected" in status and "rate" in status
        assert not lab.faults.active


def test_the_instructor_screen_looks_right(make_plan: PlanFactory, snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def stage(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.app.wait_ready()
        await pilot.press("7")
        lab = pilot.app.lab
        lab.inject_fault({"kind": "drift", "target": next(iter(lab.sensors.position)), "rate": 0.1})
        await pilot.pause(0.3)
        blank_volatile(pilot.app)

    assert snap_compare(
        SimlabApp(make_plan(instructor=True)), terminal_size=(80, 24), run_before=stage
    )


async def test_q_in_a_text_field_is_a_letter_not_quit(make_plan: PlanFactory) -> None:
    app = SimlabApp(make_plan(instructor=True))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot)
        screen.query_one("#params", Input).focus()
        await pilot.press("q", "=", "1")
        assert screen.query_one("#params", Input).value == "q=1"
        assert app.is_running
        await pilot.press("ctrl+q")
    assert app.return_value == 0
