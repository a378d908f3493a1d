"""The Modbus poller (like mbpoll or ModScan): read a range of a table, decode it, write.

A real Modbus TCP client (:class:`~devices.endpoints.modbus_raw.ModbusRawClient`) talks to
the chosen device at the address the lab lists, as the apprentice's own tool would. The
result shows one row per address: protocol address, classic reference (40001...), the
tag the device's register map puts there, raw decimal and hex, and the value decoded as
the chosen type (int16, uint16, int32, uint32, float32) in the chosen word and byte
order, so a wrong order shows as a wrong number. Reads, polls and writes run in workers;
the table is redrawn by the screen's batched refresh. Every problem (an exception reply,
no connection, a count over the Modbus limit, a value that does not parse) is said in the
status line, and the screen keeps working.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Input, Label, Select, Static
from textual.worker import Worker

from devices.endpoints.modbus_raw import ModbusRawClient, Table, table_reference
from devices.registermap import RegisterRow, register_map
from devices.wordorder import (
    NUMBER_TYPES,
    NumberType,
    WordOrder,
    encode_number,
    width,
    word_order,
)
from simlab.addresses import EndpointAddress
from simlab.errors import SimlabError
from simlab.tui.screens.base import LabScreen
from simlab.tui.widgets.modbus_table import Reading, RegisterTable

__all__ = ["ModbusScreen", "Target", "map_names", "mapped_span", "modbus_targets", "parse_int"]

POLL_INTERVAL = 1.0
"""Seconds between two reads while polling (mbpoll's default loop)."""

TABLE_CHOICES: tuple[tuple[str, Table], ...] = (
    ("Coils (FC 1)", "coils"),
    ("Discrete inputs (FC 2)", "discrete_inputs"),
    ("Input registers (FC 4)", "input_registers"),
    ("Holding registers (FC 3)", "holding_registers"),
)
_PLURAL: Mapping[str, Table] = {
    "coil": "coils",
    "discrete_input": "discrete_inputs",
    "input_register": "input_registers",
    "holding_register": "holding_registers",
}


@dataclass(frozen=True)
class Target:
    """One unit id of one device's Modbus endpoint."""

    device: str
    host: str
    port: int
    unit: int


def modbus_targets(addresses: Iterable[EndpointAddress]) -> list[Target]:
    """Every (device, unit id) a Modbus client can reach, in the lab's order."""
    return [
        Target(a.device, a.host, a.port, unit)
        for a in addresses
        if a.protocol == "modbus"
        for unit in a.unit_ids or (1,)
    ]


def map_names(rows: Iterable[RegisterRow]) -> dict[Table, dict[int, str]]:
    """Tag names by table and address; a value over several registers labels each one
    ``level (1/2)``, ``level (2/2)``."""
    names: dict[Table, dict[int, str]] = {table: {} for _, table in TABLE_CHOICES}
    for row in rows:
        for k in range(row.registers):
            label = row.tag if row.registers == 1 else f"{row.tag} ({k + 1}/{row.registers})"
            names[_PLURAL[row.table]][row.address + k] = label
    return names


def mapped_span(names: Mapping[int, str], limit: int) -> tuple[int, int]:
    """Start and count of the first run of mapped addresses (at most ``limit``);
    ``(0, 10)`` when nothing is mapped."""
    if not names:
        return 0, 10
    start = min(names)
    count = 1
    while start + count in names and count < limit:
        count += 1
    return start, count


def parse_int(text: str, what: str) -> int:
    """A whole number typed in decimal or ``0x`` hex; :class:`ValueError` saying why not."""
    cleaned = text.strip().lower()
    if not cleaned:
        raise ValueError(f"{what}: type a number (e.g. 0 or 0x10)")
    try:
        return int(cleaned, 16) if cleaned.startswith("0x") else int(cleaned)
    except ValueError:
        raise ValueError(
            f"{what}: {text.strip()!r} is not a whole number (e.g. 0 or 0x10)"
        ) from None


def parse_bit(text: str) -> bool:
    """A coil value: 1/0, on/off, true/false; :class:`ValueError` otherwise."""
    cleaned = text.strip().lower()
    if cleaned in ("1", "on", "true"):
        return True
    if cleaned in ("0", "off", "false"):
        return False
    raise ValueError(f"a coil is 1 or 0 (on/off), not {text.strip()!r}")


class ModbusScreen(LabScreen):
    """Read a range of a device's table, decode it, write a register or a coil."""

    CSS_PATH = "modbus.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "read", "Read"),
        Binding("p", "poll", "Poll"),
        Binding("w", "write", "Write"),
        Binding("t", "cycle_type", "Type"),
        Binding("o", "swap_words", "Words"),
        Binding("b", "swap_bytes", "Bytes"),
        Binding("escape", "focus_table", "Table", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._targets: list[Target] = []
        self._target: Target | None = None
        self._table: Table = "holding_registers"
        self._names: dict[Table, dict[int, str]] = {}
        self._client: ModbusRawClient | None = None
        self._type: NumberType = "float32"
        self._swap_words = False
        self._swap_bytes = False
        self._reading: Reading | None = None
        self._generation = 0
        self._shown: tuple[int, NumberType, str] | None = None
        self._status = Text("")
        self._poller: Worker[None] | None = None

    # --- layout ---------------------------------------------------------------------------

    def compose_body(self) -> ComposeResult:
        self._targets = modbus_targets(self.lab.addresses())
        if not self._targets:
            yield Static("This lab serves no Modbus device.", classes="placeholder")
            return
        self._select(self._targets[0])
        start, count = self._span()
        with Horizontal(id="mb-form"):
            yield Select(
                [(f"{t.device} · unit {t.unit}", i) for i, t in enumerate(self._targets)],
                value=0,
                allow_blank=False,
                compact=True,
                id="mb-device",
            )
            yield Select(
                TABLE_CHOICES, value=self._table, allow_blank=False, compact=True, id="mb-table"
            )
            yield Label("start", classes="mb-label")
            yield Input(str(start), compact=True, id="mb-start")
            yield Label("count", classes="mb-label")
            yield Input(str(count), compact=True, id="mb-count")
        with Horizontal(id="mb-decode"):
            yield Static(id="mb-settings")
            yield Static(id="mb-endpoint", classes="volatile")
        yield RegisterTable(id="mb-registers")
        with Horizontal(id="mb-write"):
            yield Label("write", classes="mb-label")
            yield Input(placeholder="value", compact=True, id="mb-value")
            yield Label("at", classes="mb-label")
            yield Input(placeholder="addr", compact=True, id="mb-address")
            yield Static(id="mb-write-hint")
        yield Static(id="mb-status")

    def on_mount(self) -> None:
        if not self._targets:
            return
        self._show_endpoint()
        self.query_one(RegisterTable).focus()
        self.action_read()

    def on_unmount(self) -> None:
        if self._client is not None:
            self._client.close()

    def _select(self, target: Target) -> None:
        """Talk to ``target`` from now on (a new client; the old one is closed)."""
        if self._client is not None:
            self._client.close()
        self._target = target
        self._client = ModbusRawClient(target.host, target.port, unit=target.unit)
        # In an exercise's lab the poller knows no more than mbpoll: finding the registers
        # is the exercise. Elsewhere the register map names them, the handout in the tool.
        exercise_lab = self.simlab.plan.exercise is not None
        rows = [] if exercise_lab else register_map(self.lab.devices[target.device].spec)
        self._names = map_names(rows)
        self._reading = None

    def _span(self) -> tuple[int, int]:
        limit = 2000 if self._table in ("coils", "discrete_inputs") else 125
        return mapped_span(self._names[self._table], limit)

    def _show_endpoint(self) -> None:
        if self._target is not None:
            endpoint = f"{self._target.host}:{self._target.port}"
            self.query_one("#mb-endpoint", Static).update(endpoint)

    def _fill_span(self) -> None:
        start, count = self._span()
        self.query_one("#mb-start", Input).value = str(start)
        self.query_one("#mb-count", Input).value = str(count)

    # --- refresh (batched) ----------------------------------------------------------------

    @property
    def order(self) -> WordOrder:
        """The word and byte order chosen: ABCD, CDAB, BADC or DCBA."""
        return word_order(swap_words=self._swap_words, swap_bytes=self._swap_bytes)

    def refresh_view(self) -> None:
        if not self._targets:
            return
        self._update("#mb-settings", self._settings_text())
        self._update("#mb-write-hint", self._write_hint())
        self._update("#mb-status", self._status)
        shown = (self._generation, self._type, self.order)
        if self._reading is not None and shown != self._shown:
            names = self._names[self._reading.table]
            self.query_one(RegisterTable).show(self._reading, self._type, self.order, names)
            self._shown = shown

    def _update(self, selector: str, content: Text) -> None:
        widget = self.query_one(selector, Static)
        if widget.content != content:
            widget.update(content)

    def _settings_text(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("t ", "bold")
        text.append(f"{self._type:<8}")
        text.append("o ", "bold")
        text.append("words " + ("swapped " if self._swap_words else "hi-lo   "))
        text.append("b ", "bold")
        text.append("bytes " + ("swapped " if self._swap_bytes else "hi-lo   "))
        text.append(f"= {self.order}  ", "bold cyan")
        text.append("p ", "bold")
        polling = self._poller is not None and self._poller.is_running
        text.append(f"poll {'on' if polling else 'off'}", "bold green" if polling else "")
        return text

    def _write_hint(self) -> Text:
        if self._table == "coils":
            return Text("Enter: 1/0 or on/off → coil (FC 5)")
        if self._table != "holding_registers":
            return Text("read-only: write coils or holding registers", style="dim")
        size = width(self._type)
        registers = "1 register (FC 6)" if size == 1 else f"{size} registers (FC 16)"
        return Text(f"Enter: {self._type} {self.order} → {registers}")

    def _say(self, message: str, *, error: bool = False) -> None:
        self._status = Text(f"✗ {message}" if error else message, "bold red" if error else "")

    # --- reading --------------------------------------------------------------------------

    def _request(self) -> tuple[Table, int, int]:
        """Table, start and count of the form; :class:`ValueError` naming a bad field."""
        start = parse_int(self.query_one("#mb-start", Input).value, "start")
        count = parse_int(self.query_one("#mb-count", Input).value, "count")
        return self._table, start, count

    def action_read(self) -> None:
        """Read the range of the form once."""
        try:
            request = self._request()
        except ValueError as err:
            self._say(str(err), error=True)
            return
        self.run_worker(self._read(*request), group="modbus-read")

    async def _read(self, table: Table, start: int, count: int) -> None:
        client, target = self._client, self._target
        if client is None or target is None:
            return
        try:
            values = await client.read(table, start, count)
        except SimlabError as err:
            if client is self._client:
                self._say(str(err), error=True)
            return
        if client is not self._client or table != self._table:
            return  # the user chose another device or table meanwhile
        self._reading = Reading(table, start, tuple(values))
        self._generation += 1
        last = start + count - 1
        span = f"{table_reference(table, start)}..{table_reference(table, last)}"
        self._say(
            f"Read {count} {table.replace('_', ' ')} {span} ({start}..{last}) "
            f"of {target.device}, unit {target.unit}."
        )

    def action_poll(self) -> None:
        """Start or stop reading the range every second."""
        if self._poller is not None and self._poller.is_running:
            self._poller.cancel()
            self._poller = None
            self._say("Polling stopped.")
        elif self._targets:
            self._poller = self.run_worker(self._poll(), group="modbus-poll", exclusive=True)
        self.refresh_view()

    async def _poll(self) -> None:
        while True:
            try:
                request = self._request()
            except ValueError as err:
                self._say(str(err), error=True)
            else:
                await self._read(*request)
            await asyncio.sleep(POLL_INTERVAL)

    # --- decoding -------------------------------------------------------------------------

    def action_cycle_type(self) -> None:
        """Decode as the next type: int16, uint16, int32, uint32, float32."""
        self._type = NUMBER_TYPES[(NUMBER_TYPES.index(self._type) + 1) % len(NUMBER_TYPES)]
        self.refresh_view()

    def action_swap_words(self) -> None:
        """Swap the two words of a 32-bit value (ABCD ↔ CDAB)."""
        self._swap_words = not self._swap_words
        self.refresh_view()

    def action_swap_bytes(self) -> None:
        """Swap the two bytes of each word (ABCD ↔ BADC)."""
        self._swap_bytes = not self._swap_bytes
        self.refresh_view()

    # --- writing --------------------------------------------------------------------------

    def action_write(self) -> None:
        """Write the value field at the highlighted address (``w`` fills the address)."""
        if not self._targets:
            return
        address = self.query_one(RegisterTable).address_at_cursor()
        if address is not None:
            self.query_one("#mb-address", Input).value = str(address)
        self.query_one("#mb-value", Input).focus()

    def action_focus_table(self) -> None:
        """Leave a text field: back to the table (and the screen's keys)."""
        if self._targets:
            self.query_one(RegisterTable).focus()

    def _submit_write(self) -> None:
        table = self._table
        if table not in ("coils", "holding_registers"):
            self._say(
                f"{table.replace('_', ' ')} are read-only for clients: choose holding "
                "registers or coils to write",
                error=True,
            )
            return
        text = self.query_one("#mb-value", Input).value
        try:
            address = parse_int(self.query_one("#mb-address", Input).value, "write address")
            if table == "coils":
                bit = parse_bit(text)
                self.run_worker(self._write(address, None, bit, text), group="modbus-write")
                return
            words = encode_number(text, self._type, self.order)
        except (ValueError, SimlabError) as err:
            self._say(str(err), error=True)
            return
        self.run_worker(self._write(address, words, False, text), group="modbus-write")

    async def _write(self, address: int, words: list[int] | None, bit: bool, text: str) -> None:
        client, target = self._client, self._target
        if client is None or target is None:
            return
        try:
            if words is None:
                await client.write_coil(address, bit)
                done = f"Wrote {'ON' if bit else 'OFF'} to coil {table_reference('coils', address)}"
            elif len(words) == 1:
                await client.write_register(address, words[0])
                ref = table_reference("holding_registers", address)
                done = f"Wrote {text.strip()} as {self._type} = {words[0]} to {ref} (FC 6)"
            else:
                await client.write_registers(address, words)
                ref = table_reference("holding_registers", address)
                shown = " ".join(str(w) for w in words)
                done = (
                    f"Wrote {text.strip()} as {self._type} {self.order} = [{shown}] "
                    f"to {ref}.. (FC 16)"
                )
        except SimlabError as err:
            self._say(str(err), error=True)
            return
        with contextlib.suppress(ValueError):  # a bad read range: the write still happened
            await self._read(*self._request())
        self._say(f"{done} of {target.device}, unit {target.unit}.")

    # --- events ---------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id in ("mb-start", "mb-count"):
            self.action_read()
        elif event.input.id in ("mb-value", "mb-address"):
            self._submit_write()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "mb-device" and isinstance(event.value, int):
            target = self._targets[event.value]
            if target == self._target:
                return
            self._select(target)
            self._show_endpoint()
        elif event.select.id == "mb-table" and isinstance(event.value, str):
            if event.value == self._table:
                return
            self._table = event.value  # type: ignore[assignment]
        else:
            return
        self._reading, self._shown = None, None
        self.query_one(RegisterTable).clear()
        self._fill_span()
        self.action_read()
