"""The Modbus poller's result table: one row per address, raw and decoded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import DataTable

from devices.endpoints.modbus_raw import Table, table_reference
from devices.wordorder import NumberType, WordOrder, decode_range, format_number

__all__ = ["Reading", "RegisterTable"]


@dataclass(frozen=True)
class Reading:
    """The answer to one read: ``values`` of ``table`` from address ``start``."""

    table: Table
    start: int
    values: tuple[int, ...]

    @property
    def bits(self) -> bool:
        """Whether these are coils or discrete inputs (0/1 values)."""
        return self.table in ("coils", "discrete_inputs")


class RegisterTable(DataTable[str | Text]):
    """Address, classic reference, tag name from the register map, raw decimal, hex and the
    value decoded as the chosen type and order (32-bit values on their first register).

    Rows are keyed by address: a new reading of the same range updates cells in place, so
    the cursor stays where the user left it while polling.
    """

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for name in ("addr", "ref", "tag", "raw", "hex"):
            self.add_column(name, key=name)
        self.add_column("value", key="value", width=15)

    def show(
        self,
        reading: Reading,
        type_: NumberType,
        order: WordOrder,
        names: Mapping[int, str],
    ) -> None:
        """Show ``reading`` decoded as ``type_`` in ``order``; ``names`` labels addresses."""
        if reading.bits:
            decoded = [Text("ON", style="bold green") if v else Text("OFF") for v in reading.values]
        else:
            numbers = decode_range(reading.values, type_, order)
            decoded = [Text(format_number(n), justify="right") for n in numbers]
        rows = {
            str(address): self._cells(reading, address, value, names.get(address, ""))
            for address, value in enumerate(decoded, start=reading.start)
        }
        if [row.value for row in self.rows] != list(rows):
            self.clear()
            for key, cells in rows.items():
                self.add_row(*cells, key=key)
            return
        for key, cells in rows.items():
            for column, cell in zip(self.columns, cells, strict=True):
                self.update_cell(key, column, cell)

    @staticmethod
    def _cells(reading: Reading, address: int, value: Text, name: str) -> list[str | Text]:
        raw = reading.values[address - reading.start]
        return [
            Text(str(address), justify="right"),
            table_reference(reading.table, address),
            Text(name, style="cyan"),
            Text(str(raw), justify="right"),
            "" if reading.bits else f"0x{raw:04X}",
            value,
        ]

    def address_at_cursor(self) -> int | None:
        """The address of the highlighted row (``None`` when the table is empty)."""
        if not self.row_count:
            return None
        key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return int(key.value) if key.value is not None else None
