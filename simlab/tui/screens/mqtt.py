"""The MQTT explorer screen (like MQTT Explorer): the topic tree of the lab's bus.

The screen has a subscriber of its own on ``#`` (every topic, Sparkplug's ``spBv1.0/...``
included) at the lab's broker, started in a worker when the screen is first shown; it
counts each message into a :class:`~simlab.tui.widgets.topic_index.TopicIndex` and the
view (tree labels with counts, rates and subtree totals; the selected topic's last
message) is redrawn from it at the screen's refresh rate, never per message. ``b`` sends
an NCMD Rebirth to the Sparkplug edge nodes seen, so their births name the metrics that
DATA messages carry by alias only.
"""

from __future__ import annotations

import time
import uuid
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Input, Static, Tree

from simlab.bus.client import BusError, ConnectionEvent, MqttClient
from simlab.bus.sparkplug import rebirth_request
from simlab.tui.screens.base import LabScreen
from simlab.tui.widgets.topic_index import Summary, TopicIndex
from simlab.tui.widgets.topic_payload import TopicPayload
from simlab.tui.widgets.topic_tree import TopicTree

__all__ = ["MqttScreen"]

NO_BUS = (
    "This lab runs without an MQTT bus (started with --no-bus), so there is nothing to "
    "explore. Start simlab without --no-bus to have the broker, the gateway and the platform."
)


class MqttScreen(LabScreen):
    """Topic tree with counts and rates, and the selected topic's last message."""

    CSS_PATH = "mqtt.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter"),
        Binding("p", "pause", "Pause"),
        Binding("c", "clear", "Clear"),
        Binding("b", "rebirth", "Rebirth"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.index = TopicIndex()
        self.paused = False
        self.selected: str | None = None
        """The topic (or level) under the tree's cursor."""
        self._filter = ""
        self._connection = "connecting…"
        self._client: MqttClient | None = None
        self._status: dict[str, str] = {}

    def compose_body(self) -> ComposeResult:
        if self.lab.it is None:
            yield Static(NO_BUS, id="no-bus", classes="placeholder")
            return
        with Horizontal(id="mqtt-status"):
            yield Static(id="mqtt-broker", classes="volatile")
            yield Static(id="mqtt-totals", classes="volatile")
        yield Input(placeholder="/ filter topics (part of a topic, e.g. level)", id="mqtt-filter")
        with Horizontal(id="mqtt-main"):
            yield TopicTree(id="topics")
            yield TopicPayload(self.index, id="payload")

    def on_mount(self) -> None:
        if self.lab.it is not None:
            self.query_one(TopicTree).focus()
            self._subscribe()

    # --- the subscriber -------------------------------------------------------------------

    @work(exclusive=True, group="mqtt-explorer", exit_on_error=False)
    async def _subscribe(self) -> None:
        """Count every message of the bus into the index until the screen goes."""
        it = self.lab.it
        assert it is not None and it.broker is not None
        client_id = f"simlab-tui-explorer-{uuid.uuid4().hex[:8]}"
        try:
            async with MqttClient(it.broker.url, client_id=client_id) as client:
                await client.subscribe("#", qos=1)
                self._client = client
                self._connection = "connected"
                client.add_listener(self._connection_changed)
                async for message in client.messages():
                    self.index.add(message)
        except BusError as err:
            self._connection = f"not connected: {err}"
        finally:
            self._client = None

    def _connection_changed(self, event: ConnectionEvent) -> None:
        self._connection = event.reason

    # --- the view -------------------------------------------------------------------------

    def refresh_view(self) -> None:
        if self.lab.it is None:
            return
        now = time.monotonic()
        index = self.index
        broker = self.lab.it.broker
        where = broker.description if broker is not None else "no broker"
        self._put("#mqtt-broker", f"{where} · {self._connection}")
        rate = sum(index.rate(topic, now) for topic in index.topics)
        state = "paused (p resumes) · " if self.paused else ""
        self._put(
            "#mqtt-totals",
            f"{state}{len(index.topics)} topics · {index.messages} msgs · {rate:.1f} msg/s",
        )
        if self.paused:
            return
        shown = [t for t in index.topics if self._filter in t.lower()]
        summaries = index.summaries(shown, now)

        def describe(path: str, text: str) -> Text:
            label = Text(text)
            record = index.topics.get(path)
            if record is not None:
                plural = "s" if record.count != 1 else ""
                topic_rate = index.rate(path, now)
                label.append(f"  {record.count} msg{plural} · {topic_rate:.1f}/s", "green")
            summary = summaries.get(path)
            if summary is not None and summary.topics > (record is not None):
                label.append(f"  {summary.topics} topics · {summary.messages} msgs", "dim")
            return label

        self.query_one(TopicTree).sync(shown, describe)
        self._show_selected(summaries)

    def _put(self, selector: str, text: str) -> None:
        """Update a status line only when its text changes (snapshot tests blank them)."""
        if self._status.get(selector) != text:
            self._status[selector] = text
            self.query_one(selector, Static).update(text)

    def _show_selected(self, summaries: dict[str, Summary] | None = None) -> None:
        if summaries is None:
            summaries = self.index.summaries(self.index.topics, time.monotonic())
        selected = self.selected
        summary = None if selected is None else summaries.get(selected)
        self.query_one(TopicPayload).show(selected, summary)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        self.selected = event.node.data
        if not self.paused:
            self._show_selected()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "mqtt-filter":
            self._filter = event.value.strip().lower()
            self.refresh_view()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "mqtt-filter":
            self.query_one(TopicTree).focus()

    # --- actions --------------------------------------------------------------------------

    def action_filter(self) -> None:
        """Type a part of a topic to show only the topics that contain it."""
        if self.lab.it is not None:
            self.query_one("#mqtt-filter", Input).focus()

    def action_pause(self) -> None:
        """Freeze the view (messages are still counted) or let it run again."""
        self.paused = not self.paused
        self.refresh_view()

    def action_clear(self) -> None:
        """Forget every topic and count: show only what arrives from now on."""
        self.index.clear()
        self.refresh_view()

    def action_rebirth(self) -> None:
        """Ask every Sparkplug edge node seen for its births (NCMD Node Control/Rebirth)."""
        nodes = self.index.edge_nodes()
        if self._client is None:
            self.notify("Not connected to the broker.", severity="warning")
        elif not nodes:
            self.notify(
                "No Sparkplug edge node seen yet (DATA comes when a value changes).",
                severity="warning",
            )
        else:
            self._rebirth(self._client, nodes)

    @work(group="mqtt-rebirth", exit_on_error=False)
    async def _rebirth(self, client: MqttClient, nodes: list[tuple[str, str]]) -> None:
        for group_id, edge_node_id in nodes:
            request = rebirth_request(
                group_id, edge_node_id, timestamp_ms=round(time.time() * 1000)
            )
            try:
                await client.publish(request.topic, request.payload, request.qos, request.retain)
            except BusError as err:
                self.notify(f"Rebirth not sent: {err}", severity="error")
                return
        names = ", ".join(f"{group}/{node}" for group, node in nodes)
        self.notify(f"Rebirth asked of {names}: births follow.")
