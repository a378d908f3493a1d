"""The OPC UA browser screen, like UaExpert: connect, browse, read, write, subscribe.

It talks to the lab's OPC UA servers as an outside client would, over a real socket to an
address of ``lab.addresses()``, through :class:`~devices.endpoints.opcua_browser.OpcUaBrowser`.
The connect bar picks the server, the security mode (Basic256Sha256 for Sign and
SignAndEncrypt, with a client certificate the screen makes once in the lab's state folder)
and the user; the screen connects with its settings when first shown. The session lives
in a worker (``c`` connects again, ``x`` closes it); the tree is browsed lazily, one node's
children when it is first expanded; the highlighted node's attributes are read at once.
Subscribed values arrive on the protocol's task and are painted at ``REFRESH_HZ``.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Input, Label, Select, Static, Tree
from textual.widgets.tree import TreeNode

from devices.endpoints.modbus_client import DeviceUnreachable
from devices.endpoints.opcua_browser import (
    OBJECTS,
    POLICY,
    SECURITY_MODES,
    BrowseNode,
    DataChange,
    Monitor,
    NodeAttributes,
    OpcUaBrowser,
    SecurityMode,
    make_client_certificate,
)
from simlab.addresses import EndpointAddress
from simlab.errors import SimlabError
from simlab.tui.screens.base import LabScreen
from simlab.tui.widgets.opcua_attributes import NodeAttributesPanel, format_time, format_value
from simlab.tui.widgets.opcua_tree import AddressSpaceTree

__all__ = ["OpcUaScreen"]

SUBSCRIPTION_MS = 250.0
"""Sampling and publishing interval of the subscriptions."""
_MODES: dict[str, SecurityMode] = {mode: mode for mode in SECURITY_MODES}


class OpcUaScreen(LabScreen):
    """Connect bar, address space tree, attributes, write box and subscriptions."""

    CSS_PATH = "opcua.tcss"
    AUTO_FOCUS = "#opcua-tree"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "connect", "Connect"),
        Binding("x", "disconnect", "Close"),
        Binding("r", "read", "Read"),
        Binding("w", "write", "Write"),
        Binding("s", "subscribe", "Subscribe"),
        Binding("escape", "focus_tree", "Tree", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._browser: OpcUaBrowser | None = None
        """The open session."""
        self._current: OpcUaBrowser | None = None
        """The latest session asked for (opening, open or failed)."""
        self._selected: NodeAttributes | None = None
        self._watching: dict[str, str] = {}  # node id -> display name, while subscribed
        self._monitors: dict[str, Monitor] = {}
        self._latest: dict[str, DataChange] = {}
        self._changed = False

    @property
    def servers(self) -> list[EndpointAddress]:
        """The lab's OPC UA endpoints."""
        return [a for a in self.lab.addresses() if a.protocol == "opcua"]

    def compose_body(self) -> ComposeResult:
        servers = self.servers
        with Horizontal(classes="opcua-bar"):
            yield Label("Server", classes="opcua-bar-label")
            yield Select(
                [(a.device, a.url) for a in servers],
                id="opcua-server",
                allow_blank=not servers,
                prompt="no OPC UA server",
                compact=True,
            )
            yield Label("Security", classes="opcua-bar-label")
            yield Select(
                [(mode, mode) for mode in SECURITY_MODES],
                id="opcua-security",
                allow_blank=False,
                value="None",
                compact=True,
                tooltip=f"Sign and SignAndEncrypt use {POLICY} and a client certificate",
            )
            yield Button("Connect", id="opcua-connect", compact=True)
        with Horizontal(classes="opcua-bar"):
            yield Label("User", classes="opcua-bar-label")
            yield Input(placeholder="(anonymous)", id="opcua-user", compact=True)
            yield Label("Password", classes="opcua-bar-label")
            yield Input(id="opcua-password", password=True, compact=True)
            yield Static("", id="opcua-url", classes="volatile")
        with Horizontal(id="opcua-main"):
            yield AddressSpaceTree(id="opcua-tree")
            with Vertical(id="opcua-side"):
                yield NodeAttributesPanel(id="opcua-attributes")
                with Horizontal(id="opcua-write-row"):
                    yield Label("Write", classes="attribute-name")
                    yield Input(
                        placeholder="new value, Enter writes", id="opcua-write", compact=True
                    )
                yield Label("Subscriptions (s on a variable)", id="opcua-watch-title")
                yield DataTable(id="opcua-watch", cursor_type="row", show_cursor=False)
        yield Static("", id="opcua-status")

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#opcua-watch", DataTable)
        table.add_columns("Node", "Value", "Status", "Source time")
        if self.servers:
            self.action_connect()
        else:
            self._status("This lab has no OPC UA server: no device declares opcua.", error=True)

    # --- the session ----------------------------------------------------------------------

    def action_connect(self) -> None:
        """Open a session with the connect bar's settings (closing the one open)."""
        url = self.query_one("#opcua-server", Select).value
        if not isinstance(url, str):
            self._status("Choose a server first.", error=True)
            return
        security = _MODES.get(str(self.query_one("#opcua-security", Select).value), "None")
        user = self.query_one("#opcua-user", Input).value.strip()
        password = self.query_one("#opcua-password", Input).value
        browser = OpcUaBrowser(url, security=security, user=user or None, password=password)
        self.run_worker(
            self._session(browser), name="opcua-session", group="session", exclusive=True
        )

    @on(Button.Pressed, "#opcua-connect")
    def _connect_pressed(self) -> None:
        self.action_connect()

    @on(Input.Submitted, "#opcua-user, #opcua-password")
    def _login_submitted(self) -> None:
        self.action_connect()

    def action_disconnect(self) -> None:
        """Close the session."""
        self.workers.cancel_group(self, "session")

    async def _session(self, browser: OpcUaBrowser) -> None:
        """Hold one session open until it is cancelled (disconnect, connect again, leave)."""
        self._current = browser
        tree = self.query_one(AddressSpaceTree)
        name = self._server_name(browser.url)
        self._forget_session()
        tree.start(None, "connecting…")
        self.query_one("#opcua-url", Static).update(browser.url)
        self._status(f"Connecting to {name} ({browser.describe()})…")
        try:
            if browser.security != "None":
                browser.certificate = await make_client_certificate(
                    self.lab.state_dir / "opcua-browser" / "pki"
                )
            async with browser:
                self._browser = browser
                tree.start(BrowseNode(OBJECTS, "Objects", "Objects", "Object", True))
                tree.root.expand()
                self._status(f"Connected to {name}: {browser.describe()}.")
                await asyncio.Event().wait()
        except SimlabError as err:
            self._end(browser, str(err))
        except OSError as err:  # the client certificate cannot be written
            self._end(browser, f"The client certificate cannot be made: {err}")
        except asyncio.CancelledError:
            self._end(browser, f"Disconnected from {name}.", error=False)
            raise

    def _end(self, browser: OpcUaBrowser, message: str, error: bool = True) -> None:
        """Show why ``browser``'s session ended, unless a newer one owns the screen."""
        if self._current is not browser or not self.is_attached:
            return
        self._forget_session()
        self.query_one(AddressSpaceTree).start(None, "not connected")
        self._status(message, error=error)

    def _forget_session(self) -> None:
        """Drop what belonged to the session (its subscriptions die with it)."""
        self._browser, self._selected = None, None
        self._watching.clear()
        self._monitors.clear()
        self._latest.clear()
        self._changed = True
        self.query_one(NodeAttributesPanel).show(None)

    def _server_name(self, url: str) -> str:
        return next((a.device for a in self.servers if a.url == url), url)

    def _connected(self) -> OpcUaBrowser | None:
        if self._browser is None:
            self._status("Not connected: press c to connect.", error=True)
        return self._browser

    # --- browsing and reading -------------------------------------------------------------

    @on(Tree.NodeExpanded, "#opcua-tree")
    def _expanded(self, event: Tree.NodeExpanded[BrowseNode]) -> None:
        tree = self.query_one(AddressSpaceTree)
        if tree.needs_children(event.node):
            self.run_worker(self._browse(event.node), group="browse")

    async def _browse(self, node: TreeNode[BrowseNode]) -> None:
        browser, tree = self._browser, self.query_one(AddressSpaceTree)
        if browser is None or node.data is None:
            return
        try:
            children = await browser.browse(node.data.node_id)
        except SimlabError as err:
            self._failed(err)
            return
        if browser is self._browser:
            tree.fill(node, children)

    @on(Tree.NodeHighlighted, "#opcua-tree")
    def _highlighted(self, event: Tree.NodeHighlighted[BrowseNode]) -> None:
        if event.node.data is not None:
            self._read(event.node.data.node_id)

    def action_read(self) -> None:
        """Read the highlighted node's attributes again."""
        if self._connected() is None:
            return
        node = self.query_one(AddressSpaceTree).cursor_node
        if node is not None and node.data is not None:
            self._read(node.data.node_id, announce=True)

    def _read(self, node_id: str, announce: bool = False) -> None:
        self.run_worker(self._read_node(node_id, announce), group="read")

    async def _read_node(self, node_id: str, announce: bool) -> None:
        browser = self._browser
        if browser is None:
            return
        try:
            node = await browser.read(node_id)
        except SimlabError as err:
            self._failed(err)
            return
        cursor = self.query_one(AddressSpaceTree).cursor_node
        if browser is not self._browser or cursor is None or cursor.data is None:
            return
        if cursor.data.node_id != node_id:  # the cursor moved on meanwhile
            return
        write = self.query_one("#opcua-write", Input)
        if self._selected is None or self._selected.node_id != node_id:
            write.value = ""  # a value typed for another node
        self._selected = node
        self.query_one(NodeAttributesPanel).show(node)
        write.placeholder = (
            f"new {node.data_type} value, Enter writes"
            if node.writable
            else "read-only (AccessLevel)"
            if node.is_variable
            else "no value to write"
        )
        if announce:
            value = format_value(node.value) if node.is_variable else node.node_class
            self._status(f"Read {node.node_id}: {value} {node.status or ''}".rstrip())

    # --- writing --------------------------------------------------------------------------

    def action_write(self) -> None:
        """Type a new value for the highlighted variable (Enter writes it)."""
        if self._connected() is None:
            return
        if self._selected is None or not self._selected.is_variable:
            self._status("Highlight a variable in the tree to write it.", error=True)
            return
        write = self.query_one("#opcua-write", Input)
        if not write.value:
            write.value = format_value(self._selected.value)
        write.focus()

    @on(Input.Submitted, "#opcua-write")
    def _write_submitted(self, event: Input.Submitted) -> None:
        node, text = self._selected, event.value.strip()
        if self._connected() is None:
            return
        if node is None or not node.is_variable:
            self._status("Highlight a variable in the tree to write it.", error=True)
            return
        if not text:
            self._status(f"Type a value for {node.display_name} first.", error=True)
            return
        self.run_worker(self._write(node.node_id, text), group="write")

    async def _write(self, node_id: str, text: str) -> None:
        browser = self._browser
        if browser is None:
            return
        try:
            sent = await browser.write(node_id, text)
        except SimlabError as err:
            self._failed(err)
            return
        self._status(f"Wrote {format_value(sent)} to {node_id}: the server accepted it.")
        self.query_one("#opcua-write", Input).value = ""
        self.action_focus_tree()
        await self._read_node(node_id, announce=False)

    def action_focus_tree(self) -> None:
        """Back to the tree (from the write box or the connect bar)."""
        self.query_one(AddressSpaceTree).focus()

    # --- subscriptions --------------------------------------------------------------------

    def action_subscribe(self) -> None:
        """Subscribe to the highlighted variable, or unsubscribe it."""
        if self._connected() is None:
            return
        cursor = self.query_one(AddressSpaceTree).cursor_node
        node = cursor.data if cursor is not None else None
        if node is None or node.node_class != "Variable":
            self._status("Highlight a variable in the tree to subscribe to it.", error=True)
            return
        self.run_worker(self._toggle_subscription(node), group="subscribe")

    async def _toggle_subscription(self, node: BrowseNode) -> None:
        browser, node_id = self._browser, node.node_id
        if browser is None:
            return
        if node_id in self._watching:
            del self._watching[node_id]
            self._latest.pop(node_id, None)
            self._changed = True
            monitor = self._monitors.pop(node_id, None)
            if monitor is not None:
                await monitor.stop()
            self._status(f"Unsubscribed from {node_id}.")
            return
        self._watching[node_id] = node.display_name
        try:
            monitor = await browser.subscribe(node_id, self._notified, SUBSCRIPTION_MS)
        except SimlabError as err:
            self._watching.pop(node_id, None)
            self._failed(err)
            return
        if browser is not self._browser or node_id not in self._watching:
            await monitor.stop()  # closed or unsubscribed meanwhile
            return
        self._monitors[node_id] = monitor
        self._status(f"Subscribed to {node_id} (every {SUBSCRIPTION_MS:g} ms).")

    def _notified(self, change: DataChange) -> None:
        """A notification (on the protocol's task): kept for the next refresh."""
        if change.node_id in self._watching:
            self._latest[change.node_id] = change
            self._changed = True

    def refresh_view(self) -> None:
        if not self._changed:
            return
        self._changed = False
        table = self.query_one("#opcua-watch", DataTable)
        table.clear()
        for node_id, change in self._latest.items():
            table.add_row(
                self._watching.get(node_id, node_id),
                format_value(change.value),
                change.status,
                format_time(change.source_timestamp, date=False),
                key=node_id,
            )
        selected = self._selected
        if selected is not None and selected.node_id in self._latest:
            self.query_one(NodeAttributesPanel).show_live(self._latest[selected.node_id])

    # --- the status line ------------------------------------------------------------------

    def _failed(self, err: SimlabError) -> None:
        """An operation's error in the status line (with the way out of a lost connection)."""
        again = " Press c to connect again." if isinstance(err, DeviceUnreachable) else ""
        self._status(f"{err}{again}", error=True)

    def _status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#opcua-status", Static)
        status.update(text)
        status.set_class(error, "error")
