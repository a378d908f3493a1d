"""The attributes of one OPC UA node, one per row, as UaExpert's Attributes view shows them."""

from __future__ import annotations

from datetime import datetime

from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import Label, Static

from devices.endpoints.opcua_browser import DataChange, NodeAttributes, Scalar

__all__ = ["NodeAttributesPanel", "format_time", "format_value"]

ROWS = (
    ("NodeId", "node-id"),
    ("BrowseName", "browse-name"),
    ("DisplayName", "display-name"),
    ("NodeClass", "node-class"),
    ("DataType", "data-type"),
    ("Value", "value"),
    ("StatusCode", "status"),
    ("SourceTime", "source-time"),
    ("ServerTime", "server-time"),
    ("AccessLevel", "access"),
    ("Description", "description"),
)
"""(label, id suffix) of every row."""


def format_value(value: Scalar | None) -> str:
    """A value as typed back into the write box: ``true``, ``0.403``, ``12``, text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".10g")
    return str(value)


def format_time(stamp: datetime | None, *, date: bool = True) -> str:
    """``2026-01-01 00:00:00.100 UTC`` (or without the date), to the millisecond."""
    if stamp is None:
        return ""
    text = stamp.strftime("%Y-%m-%d %H:%M:%S.%f" if date else "%H:%M:%S.%f")[:-3]
    return f"{text} UTC" if date else text


class NodeAttributesPanel(Grid):
    """Label and value per attribute; :meth:`show` a node, :meth:`show_live` a notification."""

    def compose(self) -> ComposeResult:
        for label, key in ROWS:
            yield Label(label, classes="attribute-name")
            yield Static("", id=f"attribute-{key}", classes="attribute-value")

    def _set(self, key: str, text: str) -> None:
        self.query_one(f"#attribute-{key}", Static).update(text)

    def show(self, node: NodeAttributes | None) -> None:
        """Every attribute of ``node``; blank rows for None."""
        if node is None:
            for _, key in ROWS:
                self._set(key, "")
            return
        access = ", ".join(
            name for name, allowed in (("read", node.readable), ("write", node.writable)) if allowed
        )
        texts = {
            "node-id": node.node_id,
            "browse-name": node.browse_name,
            "display-name": node.display_name,
            "node-class": node.node_class,
            "data-type": node.data_type or "",
            "access": access if node.is_variable else "",
            "description": node.description,
            "server-time": format_time(node.server_timestamp),
        }
        for key, text in texts.items():
            self._set(key, text)
        self.show_live(
            DataChange(node.node_id, node.value, node.status or "", node.source_timestamp)
        )

    def show_live(self, change: DataChange) -> None:
        """The value, status and source timestamp of a notification (or a read)."""
        self._set("value", format_value(change.value))
        self._set("status", change.status)
        self._set("source-time", format_time(change.source_timestamp))
