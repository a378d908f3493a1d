"""The MQTT explorer's message pane: the selected topic's last message, decoded.

UNS and other JSON payloads are pretty-printed; Sparkplug B payloads are decoded (message
type, seq, bdSeq, timestamp and each metric's name, alias, datatype and value, names of
DATA metrics resolved from the births); text is shown as is and other bytes as a hex dump.
The receive time is wall-clock time, so its line carries the ``volatile`` class.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from rich.console import Group, RenderableType
from rich.json import JSON
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from simlab.bus.client import Message
from simlab.bus.sparkplug import (
    BD_SEQ,
    NAMESPACE,
    EdgeTopic,
    Metric,
    MetricValue,
    SparkplugError,
    decode_payload,
    parse_topic,
)
from simlab.tui.widgets.topic_index import MetricName, Summary, TopicIndex

__all__ = ["TopicPayload", "describe_payload"]

HEX_LIMIT: Final = 256
"""Bytes shown in a hex dump."""

REBIRTH_HINT: Final = "names come with the births: press b to ask the edge node for them"


class TopicPayload(VerticalScroll):
    """Topic, message facts (type, QoS, retained, size), receive time and payload."""

    def __init__(self, index: TopicIndex, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._index = index
        self._shown: tuple[str | None, Message | None, int, int] = (None, None, -1, -1)
        self._when = ""

    def compose(self) -> ComposeResult:
        yield Static(id="payload-topic")
        yield Static(id="payload-meta")
        yield Static(id="payload-time", classes="volatile")
        yield Static("Select a topic in the tree (↑ ↓) to see its last message.", id="payload-body")

    def show(self, topic: str | None, summary: Summary | None) -> None:
        """Show ``topic``'s last message (or the totals of the level, if it has none)."""
        record = None if topic is None else self._index.topics.get(topic)
        message = None if record is None else record.last
        count = 0 if record is None else record.count
        if message is not None:
            when = f"received {_wall_clock(message.received_monotonic)}"
        else:
            when = "" if summary is None else f"{summary.rate:.1f} msg/s"
        if when != self._when:  # only when it changes (snapshot tests blank it)
            self._when = when
            self.query_one("#payload-time", Static).update(when)
        shown = (topic, message, count, self._index.births)
        if shown == self._shown:
            return
        self._shown = shown
        self.query_one("#payload-topic", Static).update(Text(topic or "", style="bold"))
        meta = self.query_one("#payload-meta", Static)
        body = self.query_one("#payload-body", Static)
        if message is None:
            if summary is None:
                meta.update("")
                body.update("No message on this topic yet.")
            else:
                meta.update(f"{summary.topics} topics · {summary.messages} messages below")
                body.update("Select a topic with messages to see its last payload.")
            return
        kind, rendered = describe_payload(message.topic, message.payload, self._index)
        retained = "retained" if message.retain else "not retained"
        meta.update(
            f"{kind} · QoS {message.qos} · {retained} · {len(message.payload)} bytes · "
            f"{count} msg{'s' if count != 1 else ''}"
        )
        body.update(rendered)


def describe_payload(topic: str, payload: bytes, index: TopicIndex) -> tuple[str, RenderableType]:
    """What ``payload`` is (``UNS JSON``, ``Sparkplug B DDATA``, ``text``, ``bytes``...)
    and how to show it."""
    if topic.startswith(NAMESPACE + "/"):
        try:
            parsed = parse_topic(topic)
        except SparkplugError as err:
            _, shown = _other(payload)
            return "not Sparkplug", Group(Text(str(err), style="red"), shown)
        if isinstance(parsed, EdgeTopic):
            return _sparkplug(parsed, payload, index)
    return _other(payload)


def _other(payload: bytes) -> tuple[str, RenderableType]:
    if not payload:
        return "empty", Text("(empty payload: a retained empty message deletes the retained one)")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes", _hex(payload)
    try:
        data = json.loads(text)
    except ValueError:
        return "text", Text(text)
    uns = isinstance(data, dict) and {"value", "ts"} <= data.keys()
    return "UNS JSON" if uns else "JSON", JSON.from_data(data, indent=2)


def _hex(payload: bytes) -> Text:
    lines = []
    for offset in range(0, min(len(payload), HEX_LIMIT), 16):
        chunk = payload[offset : offset + 16]
        codes = " ".join(f"{b:02x}" for b in chunk)
        chars = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:04x}  {codes:<47}  {chars}")
    if len(payload) > HEX_LIMIT:
        lines.append(f"… {len(payload) - HEX_LIMIT} more bytes")
    return Text("\n".join(lines) or "(empty payload)")


def _sparkplug(topic: EdgeTopic, payload: bytes, index: TopicIndex) -> tuple[str, RenderableType]:
    kind = f"Sparkplug B {topic.message_type}"
    where = f"group {topic.group_id} · node {topic.edge_node_id}"
    if topic.device_id is not None:
        where += f" · device {topic.device_id}"
    try:
        decoded = decode_payload(payload)
    except SparkplugError as err:
        return kind, Group(Text(where), Text(str(err), style="red"), _hex(payload))
    facts = [f"seq {'-' if decoded.seq is None else decoded.seq}"]
    bd_seq = decoded.metric(BD_SEQ)
    if bd_seq is not None:
        facts.append(f"bdSeq {_value(bd_seq.value)}")
    if decoded.timestamp_ms is not None:
        facts.append(_iso(decoded.timestamp_ms))
    known = index.aliases(topic.group_id, topic.edge_node_id)
    named = [(metric, *_name(metric, known)) for metric in decoded.metrics]
    folder = _folder([name for _, name, _ in named if name is not None])
    table = Table(box=None, padding=(0, 1, 0, 0), header_style="bold")
    for column in ("metric", "alias", "type", "value"):
        table.add_column(column, justify="right" if column == "alias" else "left")
    for metric, name, datatype in named:
        table.add_row(
            Text("?", style="yellow") if name is None else name.removeprefix(folder),
            "" if metric.alias is None else str(metric.alias),
            datatype or "",
            _value(metric.value),
        )
    parts: list[RenderableType] = [Text(where), Text(" · ".join(facts))]
    if folder:
        parts.append(Text(f"metrics under {folder}", style="dim"))
    parts.append(table)
    if any(name is None for _, name, _ in named):
        parts.append(Text(REBIRTH_HINT, style="yellow"))
    return kind, Group(*parts)


def _folder(names: list[str]) -> str:
    """The ``a/b/`` levels every name starts with (the gateway names metrics by UNS path)."""
    if not names:
        return ""
    common = names[0].split("/")[:-1]
    for name in names[1:]:
        levels = name.split("/")[:-1]
        while common and levels[: len(common)] != common:
            common.pop()
    return "/".join(common) + "/" if common else ""


def _name(metric: Metric, known: Mapping[int, MetricName]) -> tuple[str | None, str | None]:
    """The metric's name and datatype, from itself or else from the birth of its alias."""
    birth = None if metric.alias is None else known.get(metric.alias)
    name = metric.name or (None if birth is None else birth.name)
    datatype = metric.datatype or (None if birth is None else birth.datatype)
    return name, None if datatype is None else datatype.name


def _value(value: MetricValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    return str(value)


def _iso(timestamp_ms: int) -> str:
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _wall_clock(monotonic: float) -> str:
    """A ``time.monotonic()`` instant as local wall-clock time, with milliseconds."""
    moment = datetime.fromtimestamp(time.time() - (time.monotonic() - monotonic))
    return moment.strftime("%H:%M:%S.%f")[:-3]
