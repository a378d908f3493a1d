"""The OPC UA browser screen, against the lab's real OPC UA server (a virtual-clock lab).

The screen connects on its own when first shown; these tests expand the tree to plc1's
tags, read, write and subscribe through it, and check each result against the lab and its
session audit (what the server saw arrive over the socket).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static
from textual.widgets.tree import TreeNode

from devices.endpoints.opcua_browser import BrowseNode
from simlab.tui import SimlabApp
from simlab.tui.screens.opcua import OpcUaScreen
from simlab.tui.widgets.opcua_attributes import format_value
from simlab.tui.widgets.opcua_tree import AddressSpaceTree
from tests.tui.conftest import PlanFactory, blank_volatile, until


def find(tree: AddressSpaceTree, name: str) -> TreeNode[BrowseNode] | None:
    """The first node of the tree called ``name`` (depth first)."""
    stack = [tree.root]
    while stack:
        node = stack.pop(0)
        if node.data is not None and node.data.display_name == name:
            return node
        stack[:0] = list(node.children)
    return None


def shown(screen: OpcUaScreen, row: str) -> str:
    """The text of one row of the attributes panel (``value``, ``data-type``...)."""
    return str(screen.query_one(f"#attribute-{row}", Static).content)


def status(screen: OpcUaScreen) -> str:
    return str(screen.query_one("#opcua-status", Static).content)


async def open_tag(pilot: Pilot[Any], *path: str) -> OpcUaScreen:
    """Show the OPC UA screen and walk the tree as a user would: expand each folder of
    ``path`` with space, then put the cursor on the last node and wait for its attributes."""
    app = pilot.app
    assert isinstance(app, SimlabApp)
    if app.current_mode != "opcua":
        await app.wait_ready()
        await pilot.press("3")
    screen = app.screen
    assert isinstance(screen, OpcUaScreen)
    tree = screen.query_one(AddressSpaceTree)
    *folders, tag = path
    for name in [*folders, tag]:
        await until(pilot, partial(find, tree, name), f"{name} in the tree")
        node = find(tree, name)
        tree.move_cursor(node)
        if name != tag and node is not None and not node.is_expanded:
            await pilot.press("space")
    await until(pilot, lambda: shown(screen, "display-name") == tag, f"{tag}'s attributes")
    return screen


async def test_browses_to_the_level_tag_and_subscribes_to_it(make_plan: PlanFactory) -> None:
    app = SimlabApp(make_plan(broker=None))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_tag(pilot, "plc1", "Inputs", "level")
        lab = app.lab
        assert lab is not None
        assert shown(screen, "node-id") == "ns=2;s=plc1.level"
        assert shown(screen, "data-type") == "Double"
        assert shown(screen, "value") == format_value(lab.read("plc1.level"))
        assert shown(screen, "access") == "read"
        assert shown(screen, "status") == "Good"
        assert "Connected to plc1: None, anonymous" in status(screen)
        reads = [e for e in lab.audit.events if e.kind == "read" and e.target == "level"]
        assert reads, "the attributes were read over the socket"

        await pilot.press("s")
        table = screen.query_one("#opcua-watch", DataTable)
        await until(pilot, lambda: table.row_count == 1, "the subscription row")
        before = lab.read("plc1.level")
        await lab.run_for(10.0)
        after = format_value(lab.read("plc1.level"))
        assert after != format_value(before)
        await until(pilot, lambda: table.get_row_at(0)[1] == after, "the new value in the table")
        await until(pilot, lambda: shown(screen, "value") == after, "the new value shown")
        assert table.get_row_at(0)[0] == "level"
        assert shown(screen, "source-time") == "2026-01-01 00:00:10.000 UTC"
        assert any(e.kind == "subscribe" and e.target == "level" for e in lab.audit.events)

        await pilot.press("s")
        await until(pilot, lambda: table.row_count == 0, "the row to go")
        assert "Unsubscribed from ns=2;s=plc1.level" in status(screen)
        await pilot.press("q")


async def test_writes_a_setpoint_and_shows_the_servers_refusals(make_plan: PlanFactory) -> None:
    app = SimlabApp(make_plan(broker=None))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_tag(pilot, "plc1", "Parameters", "level_sp")
        lab = app.lab
        assert lab is not None
        assert shown(screen, "access") == "read, write"
        await pilot.press("w")
        write = screen.query_one("#opcua-write", Input)
        assert write.has_focus and write.value == format_value(lab.read("plc1.level_sp"))
        await pilot.press(*"1.5", "enter")
        await until(pilot, lambda: lab.read("plc1.level_sp") == 1.5, "the setpoint to change")
        await until(pilot, lambda: shown(screen, "value") == "1.5", "the value read back")
        assert "Wrote 1.5 to ns=2;s=plc1.level_sp" in status(screen)

        await pilot.press("w", *"abc", "enter")
        await until(pilot, lambda: "not a number" in status(screen), "the bad value named")
        assert screen.query_one("#opcua-status", Static).has_class("error")
        await pilot.press("home", "ctrl+k", "9", "enter")  # the refused text stays: replace it
        await until(pilot, lambda: "BadOutOfRange" in status(screen), "the range refusal")
        assert lab.read("plc1.level_sp") == 1.5

        await pilot.press("escape")
        screen = await open_tag(pilot, "Inputs", "level")
        await pilot.press("w", *"1", "enter")
        await until(pilot, lambda: "read-only" in status(screen), "the server's refusal")
        assert "it is read-only (BadNotWritable)" in status(screen)
        refused = [e for e in lab.audit.events if e.kind == "write" and e.target == "level"]
        assert refused and not refused[-1].ok  # the server itself refused it
        await pilot.press("q")


async def test_connects_with_sign_and_encrypt_and_names_what_the_server_refuses(
    make_plan: PlanFactory,
) -> None:
    app = SimlabApp(make_plan(broker=None))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.wait_ready()
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, OpcUaScreen)
        lab = app.lab
        assert lab is not None
        await until(pilot, lambda: "Connected" in status(screen), "the first connection")
        screen.query_one("#opcua-security", Select).value = "SignAndEncrypt"
        await pilot.press("c")
        secured = "Connected to plc1: SignAndEncrypt (Basic256Sha256), anonymous."
        await until(pilot, lambda: status(screen) == secured, "the secure session")
        session = list(lab.audit.sessions.values())[-1]
        assert (session.security_mode, session.security_policy) == (
            "SignAndEncrypt",
            "Basic256Sha256",
        )
        await open_tag(pilot, "plc1", "Inputs", "level")
        assert shown(screen, "value") == format_value(lab.read("plc1.level"))

        await pilot.press("x")
        await until(pilot, lambda: "Disconnected from plc1" in status(screen), "the close")
        assert shown(screen, "node-id") == ""
        await pilot.press("r")
        assert status(screen) == "Not connected: press c to connect."

        screen.query_one("#opcua-user", Input).value = "operator"
        await pilot.press("c")
        await until(pilot, lambda: "does not accept" in status(screen), "the refusal")
        assert "does not accept user name access; it accepts: anonymous" in status(screen)
        assert screen.query_one("#opcua-status", Static).has_class("error")
        await pilot.press("q")


def test_snapshot_of_the_level_tag_and_its_attributes(
    make_plan: PlanFactory, snap_compare: Callable[..., bool]
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await open_tag(pilot, "plc1", "Inputs", "level")
        assert isinstance(pilot.app, SimlabApp)
        blank_volatile(pilot.app)

    assert snap_compare(
        SimlabApp(make_plan(broker=None)), terminal_size=(80, 24), run_before=run_before
    )
