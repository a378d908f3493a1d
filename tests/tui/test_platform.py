"""The Platform screen: the mini platform seen through its HTTP API, as a client would.

The labs run on a virtual clock and the gateway polls at 1 Hz of wall-clock time, so the
historian holds what the gateway saw when it polled. The water tank serves no OPC UA here
(its server takes seconds to start; the gateway polls Modbus); the bottling line's gateway
polls OPC UA, so that lab keeps its server.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

from simlab.scenario import load_scenario
from simlab.scenario.model import Scenario
from simlab.tui import SimlabApp
from simlab.tui.screens.platform import ApiProblem, PlatformClient, PlatformScreen, _oee
from simlab.tui.widgets.alarm_table import AlarmTable
from simlab.tui.widgets.topic_tree import TopicTree
from tests.tui.conftest import PlanFactory, blank_volatile, until

TANK = "acme/riverside/utilities/water/buffer_tank/tank1"
LEVEL = f"{TANK}/level"
RULES = f"""\
format_version: 1
alarms:
  - {{name: TANK1_LEVEL_HI, tag: {LEVEL}, kind: HI, limit: 1.4, deadband: 0.02,
     severity: 700, message: Buffer tank nearly full}}
"""


def tank_app(make_plan: PlanFactory, **options: Any) -> SimlabApp:
    """The app on the water tank without its OPC UA server."""
    data = load_scenario("water-tank").model_dump(mode="json", exclude_unset=True)
    for device in data["devices"]:
        device.pop("opcua", None)
    plan = dataclasses.replace(make_plan(**options), scenario=Scenario.model_validate(data))
    return SimlabApp(plan)


def text(app: SimlabApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def open_platform(app: SimlabApp, pilot: Pilot[int]) -> PlatformScreen:
    await app.wait_ready()
    await pilot.press("6")
    screen = app.screen
    assert isinstance(screen, PlatformScreen)
    return screen


def alarm_state(screen: PlatformScreen, name: str) -> str | None:
    table = screen.query_one(AlarmTable)
    if name not in table.rows:
        return None
    return str(table.get_row(name)[0])


async def test_the_asset_tree_shows_the_tank_and_charts_the_level(
    make_plan: PlanFactory,
) -> None:
    app = tank_app(make_plan)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_platform(app, pilot)
        tree = screen.query_one(TopicTree)
        await until(pilot, lambda: tree.node_of(LEVEL) is not None)
        tank = tree.node_of(TANK)  # enterprise … cell in one node, down to the asset
        assert tank is not None and "online" in str(tank.label)
        names = {str(child.label).split()[0] for child in tank.children}
        assert {"level", "level_sp", "inflow", "outflow", "temperature"} <= names
        level = tree.node_of(LEVEL)
        assert level is not None and str(level.label).endswith(" m")
        assert tree.cursor_path == LEVEL and screen.chart_tag == LEVEL  # the first watched
        await until(pilot, lambda: "level (m) · last 15 min" in text(app, "#history-title"))
        assert "none configured" in text(app, "#oee")
        await pilot.press("down")  # the next tag is charted
        await until(pilot, lambda: text(app, "#history-title").startswith("level_hh"))
        await pilot.press("w")
        await until(pilot, lambda: "last 60 min · 1 min averages" in text(app, "#history-title"))


async def test_an_alarm_over_hi_is_listed_and_acknowledged_from_the_screen(
    make_plan: PlanFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "rules.yaml").write_text(RULES)
    monkeypatch.setenv("SIMLAB_USER", "apprentice")
    app = tank_app(make_plan)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_platform(app, pilot)
        lab = app.lab
        assert lab is not None
        await until(pilot, lambda: screen.query_one(TopicTree).node_of(LEVEL) is not None)
        lab.write("plc1.level_sp", 1.7)  # the PID fills the tank past the HI limit (1.4 m)
        await lab.run_for(120.0)
        assert lab.read("plc1.level") > 1.45
        await until(pilot, lambda: alarm_state(screen, "TANK1_LEVEL_HI") == "ACTIVE_UNACK")
        assert "1 to acknowledge" in str(screen.query_one("#alarms-title", Static).render())
        await pilot.click("#ack-comment")
        await pilot.press(*"seen, lowering", "enter")  # Enter acknowledges, as a does
        await until(pilot, lambda: alarm_state(screen, "TANK1_LEVEL_HI") == "ACTIVE_ACK")
        assert "acknowledged by apprentice" in text(app, "#platform-message")
        assert screen.query_one("#ack-comment", Input).value == ""
        assert lab.it is not None and lab.it.platform is not None
        platform = lab.it.platform
        headers = {"Authorization": f"Bearer {platform.token}"}
        async with httpx.AsyncClient(base_url=platform.api_url, headers=headers) as api:
            [alarm] = (await api.get("/api/alarms")).json()
            assert alarm["state"] == "ACTIVE_ACK"
            [ack] = (await api.get("/api/alarms/journal", params={"kind": "acknowledged"})).json()
            assert (ack["user"], ack["comment"]) == ("apprentice", "seen, lowering")
        await pilot.press("tab", "a")  # again: nothing waits for an acknowledgement
        await until(pilot, lambda: "not acknowledged" in text(app, "#platform-message"))


async def test_api_errors_are_said_in_plain_words(make_plan: PlanFactory) -> None:
    app = tank_app(make_plan)
    async with app.run_test(size=(80, 24)):
        lab = await app.wait_ready()
        assert lab.it is not None and lab.it.platform is not None
        url = lab.it.platform.api_url
        headers = {"Authorization": "Bearer wrong"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as http:
            with pytest.raises(ApiProblem, match=r"refused the API token \(401\)"):
                await PlatformClient(http).get("/api/assets")
        headers = {"Authorization": f"Bearer {lab.it.platform.token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as http:
            with pytest.raises(ApiProblem, match=r"no tag at 'acme/nothing'.*\(404 Not Found\)"):
                await PlatformClient(http).get("/api/tags/acme/nothing/history")
        async with httpx.AsyncClient(base_url="http://127.0.0.1:1") as http:
            with pytest.raises(ApiProblem, match="cannot reach the platform API"):
                await PlatformClient(http).get("/api/health")


async def test_the_bottling_line_shows_its_oee(make_plan: PlanFactory) -> None:
    app = SimlabApp(make_plan("bottling-line"))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_platform(app, pilot)
        lab = app.lab
        assert lab is not None
        await until(pilot, lambda: text(app, "#oee").startswith("OEE"))
        await lab.run_for(120.0)  # bottles run: states and counters reach the historian
        await until(pilot, lambda: "availability" in text(app, "#oee"))
        assert "performance" in text(app, "#oee") and "quality" in text(app, "#oee")


async def test_an_oee_figure_the_platform_cannot_give_shows_a_dash_and_why() -> None:
    answer = {
        "availability": 1.0,
        "performance": 0.0,
        "quality": None,
        "oee": 0.0,
        "reasons": {"quality": "nothing produced in the counted span"},
    }
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    async with httpx.AsyncClient(transport=transport, base_url="http://simlab") as http:
        shown = (await _oee(PlatformClient(http))).plain
        assert shown.startswith("OEE 0.0% = availability 100.0% × performance 0.0% × quality —")
        assert shown.endswith("· quality: nothing produced in the counted span")
        answer.update(performance=None, oee=None)
        answer["reasons"] = {"performance": "no reading", "quality": "no reading", "oee": "both"}
        shown = (await _oee(PlatformClient(http))).plain
        assert shown.startswith("OEE — = availability 100.0% × performance — × quality —")
        assert "· performance: no reading · quality: no reading" in shown
        assert "both" not in shown  # the OEE's reason is theirs: said once


async def test_a_lab_without_the_it_side_says_so(make_plan: PlanFactory) -> None:
    app = tank_app(make_plan, broker=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_platform(app, pilot)
        assert "without its IT side" in text(app, "#no-platform")
        await pilot.press("a", "w")  # nothing to do, and no harm done


def test_the_platform_looks_right(make_plan: PlanFactory, snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def stage(pilot) -> None:  # type: ignore[no-untyped-def]
        screen = await open_platform(pilot.app, pilot)
        app = pilot.app
        await until(pilot, lambda: "level (m)" in text(app, "#history-title"))
        await until(pilot, lambda: "none configured" in text(app, "#oee"))
        await until(pilot, lambda: screen.query_one(TopicTree).cursor_path == LEVEL)
        await pilot.pause(0.3)
        blank_volatile(app)

    assert snap_compare(tank_app(make_plan), terminal_size=(80, 24), run_before=stage)
