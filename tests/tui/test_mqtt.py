"""The MQTT explorer screen: the lab's bus seen by a subscriber of its own, over real MQTT.

The lab runs on a virtual clock: the gateway publishes the retained UNS values of the
standing plant once (then every 10 s of wall-clock time as a heartbeat), and Sparkplug
DDATA only once a test steps the plant so that values change. The water tank serves no
OPC UA here (its server takes seconds to start; the gateway polls Modbus).
"""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static

from simlab.scenario import load_scenario
from simlab.scenario.model import Scenario
from simlab.tui import SimlabApp
from simlab.tui.screens.mqtt import MqttScreen
from simlab.tui.widgets.topic_tree import TopicTree, shorten
from tests.tui.conftest import PlanFactory, blank_volatile, until

LEVEL = "acme/riverside/utilities/water/buffer_tank/tank1/level"
SPARKPLUG = "spBv1.0/simlab"
DDATA = f"{SPARKPLUG}/DDATA/edge1/plc1"
NBIRTH = f"{SPARKPLUG}/NBIRTH/edge1"


def explorer_app(make_plan: PlanFactory, **options: Any) -> SimlabApp:
    """The app on the water tank without its OPC UA server."""
    data = load_scenario("water-tank").model_dump(mode="json", exclude_unset=True)
    for device in data["devices"]:
        device.pop("opcua", None)
    plan = dataclasses.replace(make_plan(**options), scenario=Scenario.model_validate(data))
    return SimlabApp(plan)


def plain(static: Static) -> str:
    """The text a Static shows (Rich renderables included)."""
    console = Console(width=100, file=io.StringIO(), record=True)
    console.print(static.content)
    return console.export_text()


async def open_explorer(app: SimlabApp, pilot: Pilot[int]) -> MqttScreen:
    await app.wait_ready()
    await pilot.press("5")
    screen = app.screen
    assert isinstance(screen, MqttScreen)
    return screen


async def select(pilot: Pilot[int], screen: MqttScreen, topic: str, typed: str = "") -> None:
    """Filter the tree on ``typed`` (default: the whole topic), move the cursor onto ``topic``."""
    await pilot.press("slash", "end", "ctrl+u", *(typed or topic), "enter")
    await until(pilot, lambda: screen.query_one(TopicTree).node_of(topic) is not None)
    for _ in range(10):
        if screen.selected == topic:
            return
        await pilot.press("down")
    raise AssertionError(f"{topic} could not be selected")


def test_long_chains_of_levels_keep_their_last_levels() -> None:
    assert shorten("acme/riverside/utilities/water/buffer_tank/tank1") == "…/buffer_tank/tank1"
    assert shorten("spBv1.0/simlab/NBIRTH/edge1") == "…/NBIRTH/edge1"
    assert shorten("spBv1.0/simlab") == "spBv1.0/simlab"


async def test_the_tank_level_arrives_with_its_count_and_its_json_value(
    make_plan: PlanFactory,
) -> None:
    app = explorer_app(make_plan)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_explorer(app, pilot)
        lab = app.lab
        assert lab is not None
        tree = screen.query_one(TopicTree)
        await until(pilot, lambda: tree.node_of(LEVEL) is not None)
        node = tree.node_of(LEVEL)
        assert node is not None
        count = int(str(node.label).split()[1])
        assert count >= 1 and "msg" in str(node.label) and "/s" in str(node.label)
        await select(pilot, screen, LEVEL, typed="tank1/level")  # a part of the topic
        assert tree.node_of(LEVEL.replace("level", "inflow")) is None  # filtered out
        meta = plain(screen.query_one("#payload-meta", Static))
        assert "UNS JSON · QoS 1 · retained" in meta
        payload = json.loads(plain(screen.query_one("#payload-body", Static)))
        assert payload["value"] == pytest.approx(lab.read("plc1.level"), abs=1e-3)
        assert payload["unit"] == "m" and payload["quality"] == "Good"
        await pilot.press("p")  # paused: the view stands still, messages are still counted
        assert screen.paused and "paused" in plain(screen.query_one("#mqtt-totals", Static))
        await pilot.press("p", "c")  # resumed, then cleared
        assert not screen.paused and not screen.index.topics
        await pilot.pause(0.3)
        assert tree.node_of(LEVEL) is None


async def test_sparkplug_data_is_decoded_with_the_names_of_the_births(
    make_plan: PlanFactory,
) -> None:
    app = explorer_app(make_plan)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_explorer(app, pilot)
        lab = app.lab
        assert lab is not None
        await lab.run_for(5.0)  # the plant moves: the gateway's next poll publishes DDATA
        await select(pilot, screen, DDATA, typed="DDATA")
        body = screen.query_one("#payload-body", Static)
        meta = plain(screen.query_one("#payload-meta", Static))
        assert "Sparkplug B DDATA" in meta and "not retained" in meta
        assert "device plc1" in plain(body) and "press b" in plain(body)  # births missed
        await pilot.press("b")  # ask for them: the aliases get their names
        await until(pilot, lambda: "metrics under acme/riverside" in plain(body))
        shown = plain(body).split("metric")[-1]
        assert "level " in shown and "Double" in shown and "?" not in shown
        await select(pilot, screen, NBIRTH, typed="NBIRTH")
        assert "Sparkplug B NBIRTH" in plain(screen.query_one("#payload-meta", Static))
        assert "bdSeq" in plain(body) and "Node Control/Rebirth" in plain(body)


async def test_a_lab_without_a_bus_says_so(make_plan: PlanFactory) -> None:
    app = explorer_app(make_plan, broker=None)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_explorer(app, pilot)
        assert "without an MQTT bus" in plain(screen.query_one("#no-bus", Static))
        await pilot.press("b", "p", "c")  # nothing to do, and no harm done


def test_the_explorer_looks_right(make_plan: PlanFactory, snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def stage(pilot) -> None:  # type: ignore[no-untyped-def]
        screen = await open_explorer(pilot.app, pilot)
        tree = screen.query_one(TopicTree)
        await until(pilot, lambda: len(screen.index.topics) == 13 and tree.node_of(LEVEL))
        await pilot.press(*["down"] * 5)  # the chain, auto, hh_reset, inflow, level
        await until(pilot, lambda: screen.selected == LEVEL)
        await pilot.pause(0.3)
        blank_volatile(pilot.app)

    assert snap_compare(explorer_app(make_plan), terminal_size=(80, 24), run_before=stage)
