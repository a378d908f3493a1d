"""The platform's alarm list as a table: state, severity, alarm, tag, value, since."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from rich.text import Text
from textual.widgets import DataTable

__all__ = ["AlarmTable"]

STATE_STYLES: Final = {
    "ACTIVE_UNACK": "bold red",
    "ACTIVE_ACK": "red",
    "CLEARED_UNACK": "yellow",
    "CLEARED_ACK": "dim",
}
"""How each ISA-18.2 state is shown: unacknowledged alarms stand out."""


class AlarmTable(DataTable[str | Text]):
    """Rows keyed by alarm name, updated in place from the API's ``/api/alarms`` answer."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.add_columns("state", "sev", "alarm", "tag", "value", "since")

    @property
    def selected(self) -> str | None:
        """The name of the alarm under the cursor."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def show(self, alarms: Sequence[dict[str, Any]]) -> None:
        """Show ``alarms`` (dicts of the API's AlarmOut), the cursor staying on its alarm."""
        names = {alarm["name"] for alarm in alarms}
        for key in [k for k in self.rows if k.value not in names]:
            self.remove_row(key)
        for alarm in alarms:
            value = alarm["value"]
            since = alarm["since"]
            cells = (
                Text(alarm["state"], STATE_STYLES.get(alarm["state"], "")),
                str(alarm["severity"]),
                alarm["name"],
                alarm["tag"].rsplit("/", 1)[-1],
                "" if value is None else f"{value:.4g}",
                "" if since is None else datetime.fromtimestamp(since, UTC).strftime("%H:%M:%S"),
            )
            if alarm["name"] in self.rows:
                for column, cell in zip(self.columns, cells, strict=True):
                    self.update_cell(alarm["name"], column, cell)
            else:
                self.add_row(*cells, key=alarm["name"])
