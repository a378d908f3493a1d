"""A Modbus TCP *client* for the edge gateway: poll a device's tags, write a tag.

With :mod:`devices.endpoints.modbus` (the server), one of the two modules of simlab that
import pymodbus. The gateway never sees a register: it gives a tag map
(:class:`~simlab.scenario.devices.ModbusTagSpec` by tag name) and gets tag values back,
decoded by :mod:`devices.registermap`, the same code that encodes them on the server side,
so word order, scaling and the 0-based addressing cannot disagree between the two.

Polling plan
------------
Tags are grouped by table and sorted by address; tags whose registers touch or overlap
are merged into one read request, up to 125 registers (FC 3/4) or 2,000 bits (FC 1/2),
the Modbus Application Protocol's limits. Gaps are never bridged: the server answers 02
(Illegal Data Address) to a read that covers an unmapped address. The water tank's map
(4 tables) is read with 4 requests.

What a poll returns
-------------------
A :class:`PolledValue` per tag: the decoded value and a quality (``Good``/``Bad``) with
an OPC UA status name saying why (Modbus has no quality of its own):

- answered: ``Good``;
- an exception reply: ``BadDeviceFailure`` for 04 (Server Device Failure),
  ``BadNotSupported`` for 01, ``BadNodeIdUnknown`` for 02, ``BadOutOfRange`` for 03,
  ``BadResourceUnavailable`` for 05/06, ``BadNoCommunication`` for 10/11; only the tags
  whose read is refused (see below), with :attr:`PolledValue.exception_code`;
- no answer within ``timeout``: ``BadTimeout``; connection refused: ``BadNotConnected``;
  connection lost: ``BadCommunicationError``; every tag.

A float32 value (without scaling) is returned as the shortest decimal that is the same
float32 (``0.403``, not ``0.40299999713897705``).

An exception reply to a merged read is retried tag by tag, so a single failing tag (a
sensor with Bad quality makes the simlab server answer 04 to any read that touches it)
does not blank its neighbours; each tag whose own read fails is Bad with
:attr:`PolledValue.exception_code` set. A timeout or a lost connection marks every tag
Bad and closes the client; the next :meth:`ModbusPoller.poll` connects again (a fresh
connection also discards any late reply to the request that timed out).

Errors of :meth:`ModbusPoller.write` follow the error tree: :class:`TagNotWritable`
(read-only table, or exception 02), :class:`ValueOutOfRange` (the value does not fit the
register map, or exception 03), :class:`DeviceUnreachable` (no connection, no answer),
:class:`TagError` (any other exception reply).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import numpy as np
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from devices.registermap import TABLE_ORDER, Table, TagCodec, Value
from simlab.errors import LabError, TagError, TagNotWritable, UnknownTag, ValueOutOfRange
from simlab.scenario.devices import ModbusTagSpec

__all__ = [
    "EXCEPTION_NAMES",
    "MAX_READ_BITS",
    "MAX_READ_REGISTERS",
    "DeviceUnreachable",
    "ModbusPoller",
    "PollStats",
    "PolledValue",
    "Quality",
    "ReadBlock",
    "plan_reads",
    "status_of_exception",
]

log = logging.getLogger(__name__)
logging.getLogger("pymodbus").addHandler(logging.NullHandler())

MAX_READ_REGISTERS = 125
"""Most registers one FC 3/4 request may read (Modbus Application Protocol 6.3, 6.4)."""
MAX_READ_BITS = 2000
"""Most bits one FC 1/2 request may read (Modbus Application Protocol 6.1, 6.2)."""

Quality = Literal["Good", "Uncertain", "Bad"]
"""Severity of a polled value, as OPC UA names it."""

EXCEPTION_NAMES: Mapping[int, str] = {
    1: "Illegal Function",
    2: "Illegal Data Address",
    3: "Illegal Data Value",
    4: "Server Device Failure",
    5: "Acknowledge",
    6: "Server Device Busy",
    8: "Memory Parity Error",
    10: "Gateway Path Unavailable",
    11: "Gateway Target Device Failed to Respond",
}
"""Names of the Modbus exception codes (Modbus Application Protocol 7)."""

_EXCEPTION_STATUS: Mapping[int, str] = {
    1: "BadNotSupported",
    2: "BadNodeIdUnknown",
    3: "BadOutOfRange",
    4: "BadDeviceFailure",
    5: "BadResourceUnavailable",
    6: "BadResourceUnavailable",
    10: "BadNoCommunication",
    11: "BadNoCommunication",
}


def status_of_exception(code: int) -> str:
    """The OPC UA status name a Modbus exception code maps to (``BadDeviceFailure`` for 04)."""
    return _EXCEPTION_STATUS.get(code, "BadDeviceFailure")


class DeviceUnreachable(LabError):
    """A device's endpoint cannot be reached: refused, no answer, connection lost."""


@dataclass(frozen=True, slots=True)
class PolledValue:
    """One tag as a poll saw it.

    ``value`` is ``None`` when the quality is Bad (there is no value to trust).
    ``status`` is an OPC UA status name whose prefix is the quality (``Good``,
    ``BadDeviceFailure``, ``BadTimeout``, ``UncertainEngineeringUnitsExceeded``...);
    ``error`` says in words why a value is not Good; ``exception_code`` is the Modbus
    exception code that made it Bad, if one did; ``source_ms`` the source timestamp (ms
    since the Unix epoch) when the protocol carries one (OPC UA), else ``None``.
    """

    value: Value | None
    quality: Quality = "Good"
    status: str = "Good"
    error: str = ""
    exception_code: int | None = None
    source_ms: int | None = None

    @property
    def good(self) -> bool:
        """Whether the quality is Good."""
        return self.quality == "Good"


@dataclass
class PollStats:
    """Counters of one poller."""

    polls: int = 0
    """Calls of ``poll()``."""
    requests: int = 0
    """Read and write requests sent (answered or not)."""
    exceptions: int = 0
    """Exception replies received."""
    timeouts: int = 0
    """Requests left without an answer."""
    connects: int = 0
    """Successful connections, the first included."""
    connection_failures: int = 0
    """Connection attempts that failed."""
    writes: int = 0
    """Writes the device accepted."""
    last_error: str = ""
    """The last problem met, in words ('' when none yet)."""


@dataclass(frozen=True, slots=True)
class _Slot:
    """A tag inside a read block: ``size`` words from ``offset``."""

    tag: str
    offset: int
    size: int
    codec: TagCodec


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request of a poll: ``count`` addresses of ``table`` from ``start``."""

    table: Table
    start: int
    count: int
    tags: tuple[str, ...]


def plan_reads(tags: Mapping[str, ModbusTagSpec]) -> list[ReadBlock]:
    """The fewest read requests covering ``tags``: contiguous ranges merged per table.

    Ranges that touch or overlap are merged while the request stays within 125 registers
    (2,000 bits for coils and discrete inputs); a gap always starts a new request. Blocks
    come in table order (coils, discrete inputs, input registers, holding registers), then
    by address.
    """
    return [block for block, _ in _plan(tags)]


def _plan(tags: Mapping[str, ModbusTagSpec]) -> list[tuple[ReadBlock, list[_Slot]]]:
    blocks: list[tuple[ReadBlock, list[_Slot]]] = []
    for table in TABLE_ORDER:
        entries = sorted(
            (
                (spec.address, spec.registers(), name, spec)
                for name, spec in tags.items()
                if spec.table == table
            ),
            key=lambda entry: (entry[0], entry[2]),
        )
        limit = MAX_READ_BITS if table in ("coil", "discrete_input") else MAX_READ_REGISTERS
        start = end = -1
        members: list[tuple[int, int, str, ModbusTagSpec]] = []
        for address, size, name, spec in entries:
            if members and address <= end and max(end, address + size) - start <= limit:
                members.append((address, size, name, spec))
                end = max(end, address + size)
                continue
            if members:
                blocks.append(_block(table, start, end, members))
            start, end, members = address, address + size, [(address, size, name, spec)]
        if members:
            blocks.append(_block(table, start, end, members))
    return blocks


def _block(
    table: Table, start: int, end: int, members: list[tuple[int, int, str, ModbusTagSpec]]
) -> tuple[ReadBlock, list[_Slot]]:
    slots = [
        _Slot(name, address - start, size, TagCodec(spec, name))
        for address, size, name, spec in members
    ]
    block = ReadBlock(table, start, end - start, tuple(slot.tag for slot in slots))
    return block, slots


class _Refused(Exception):
    """An exception reply with Modbus exception ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(f"exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})")
        self.code = code


class _Lost(Exception):
    """The connection failed: ``status`` says how (``BadTimeout``, ``BadCommunicationError``)."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ModbusPoller:
    """Polls a map of tags from one Modbus TCP device; ``async with`` it.

    Args:
        host, port: the device's Modbus TCP server.
        unit_id: the unit (device) id put in every request.
        tags: the Modbus map of each tag to poll, by tag name.
        timeout: seconds to wait for a connection or an answer.
        name: a label for logs (default ``host:port``).

    Entering does not fail when the device is unreachable: the poller keeps trying at
    each :meth:`poll`, whose values say Bad meanwhile.
    """

    def __init__(
        self,
        host: str,
        port: int,
        unit_id: int,
        tags: Mapping[str, ModbusTagSpec],
        *,
        timeout: float = 1.0,
        name: str = "",
    ) -> None:
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.tags: dict[str, ModbusTagSpec] = dict(tags)
        self.timeout = timeout
        self.name = name or f"{host}:{port}"
        self.stats = PollStats()
        self._plan = _plan(self.tags)
        self._client: AsyncModbusTcpClient | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def blocks(self) -> list[ReadBlock]:
        """The read requests of one poll, in order."""
        return [block for block, _ in self._plan]

    @property
    def connected(self) -> bool:
        """Whether a connection is open now (the last poll or write did not lose it)."""
        return self._client is not None and bool(self._client.connected)

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> ModbusPoller:
        """Try a first connection (a failure is only logged: :meth:`poll` retries)."""
        async with self._lock:
            with contextlib.suppress(_Lost):
                await self._connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the connection."""
        self._closed = True
        self._disconnect()

    async def _connect(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        self._disconnect()
        if self._closed:
            raise _Lost("BadNotConnected", f"the poller of {self.name} is closed")
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=self.timeout,
            retries=0,
            reconnect_delay=0,  # no background reconnection: the next poll reconnects
            name=f"gateway:{self.name}",
        )
        try:
            ok = await client.connect()
        except (ModbusException, OSError) as err:
            ok, reason = False, str(err)
        else:
            reason = "connection refused or timed out"
        if not ok:
            client.close()
            self.stats.connection_failures += 1
            self.stats.last_error = f"cannot connect to {self.host}:{self.port}: {reason}"
            raise _Lost("BadNotConnected", self.stats.last_error)
        self.stats.connects += 1
        self._client = client
        return client

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # --- polling --------------------------------------------------------------------------

    async def poll(self) -> dict[str, PolledValue]:
        """Read every tag (the fewest requests, see :func:`plan_reads`) and decode it.

        Never raises for a device problem: each tag's :class:`PolledValue` tells it.
        """
        async with self._lock:
            self.stats.polls += 1
            results: dict[str, PolledValue] = {}
            try:
                client = await self._connect()
                for block, slots in self._plan:
                    results.update(await self._read_block(client, block, slots))
            except _Lost as lost:
                self._disconnect()
                log.debug("Modbus poll of %s failed: %s", self.name, lost.reason)
                bad = PolledValue(None, "Bad", lost.status, lost.reason)
                return dict.fromkeys(self.tags, bad)
            return results

    async def _read_block(
        self, client: AsyncModbusTcpClient, block: ReadBlock, slots: Sequence[_Slot]
    ) -> dict[str, PolledValue]:
        try:
            words = await self._read(client, block.table, block.start, block.count)
        except _Refused as refused:
            if len(slots) == 1:
                return {slots[0].tag: _refused_value(refused)}
            # isolate the tag(s) the device refuses: one request per tag
            isolated: dict[str, PolledValue] = {}
            for slot in slots:
                address = block.start + slot.offset
                try:
                    own = await self._read(client, block.table, address, slot.size)
                except _Refused as single:
                    isolated[slot.tag] = _refused_value(single)
                else:
                    isolated[slot.tag] = _decoded(slot, own)
            return isolated
        return {
            slot.tag: _decoded(slot, words[slot.offset : slot.offset + slot.size]) for slot in slots
        }

    async def _read(
        self, client: AsyncModbusTcpClient, table: Table, start: int, count: int
    ) -> list[int]:
        """Words (0/1 for bits) of one read; _Refused on an exception reply, _Lost else."""
        unit = self.unit_id
        if table == "coil":
            call = client.read_coils(start, count=count, device_id=unit)
        elif table == "discrete_input":
            call = client.read_discrete_inputs(start, count=count, device_id=unit)
        elif table == "input_register":
            call = client.read_input_registers(start, count=count, device_id=unit)
        else:
            call = client.read_holding_registers(start, count=count, device_id=unit)
        response = await self._execute(call, f"read {table} {start}..{start + count - 1}")
        if table in ("coil", "discrete_input"):
            return [int(bool(bit)) for bit in list(response.bits)[:count]]
        registers = list(response.registers)
        if len(registers) != count:
            raise _Lost(
                "BadCommunicationError",
                f"{self.name}: asked {count} registers from {table} {start}, got {len(registers)}",
            )
        return registers

    async def _execute(self, call: Any, what: str) -> Any:
        """Await one request; translate pymodbus' outcomes into _Refused or _Lost."""
        self.stats.requests += 1
        try:
            response = await call
        except (TimeoutError, ModbusException, OSError) as err:
            connected = self._client is not None and self._client.connected
            if connected:
                self.stats.timeouts += 1
                status, reason = "BadTimeout", f"no answer within {self.timeout:g} s"
            else:
                status, reason = "BadCommunicationError", "connection lost"
            self.stats.last_error = f"{self.name}: {what}: {reason} ({err})"
            raise _Lost(status, self.stats.last_error) from err
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            self.stats.exceptions += 1
            self.stats.last_error = f"{self.name}: {what}: {_Refused(code)}"
            raise _Refused(code)
        return response

    # --- writing --------------------------------------------------------------------------

    async def write(self, tag: str, value: Value) -> None:
        """Write ``value`` to ``tag``: FC 5 for a coil, FC 16 (all its registers) otherwise.

        Raises:
            UnknownTag: ``tag`` is not in the poller's map.
            TagNotWritable: the tag lives in a read-only table, or the device answered 02.
            ValueOutOfRange: the value does not fit the map, or the device answered 03.
            DeviceUnreachable: no connection, or no answer within ``timeout``.
            TagError: any other exception reply.
        """
        spec = self.tags.get(tag)
        if spec is None:
            known = ", ".join(sorted(self.tags)) or "none"
            raise UnknownTag(f"{self.name} polls no tag {tag!r} (tags: {known})")
        if spec.table not in ("coil", "holding_register"):
            raise TagNotWritable(
                f"{self.name}: {tag} lives in the {spec.table.replace('_', ' ')}s, which Modbus "
                "clients cannot write (only coils and holding registers)"
            )
        words = TagCodec(spec, tag).encode(value)  # ValueOutOfRange if it does not fit
        async with self._lock:
            try:
                client = await self._connect()
                if spec.table == "coil":
                    call = client.write_coil(spec.address, bool(words[0]), device_id=self.unit_id)
                else:
                    call = client.write_registers(spec.address, words, device_id=self.unit_id)
                await self._execute(call, f"write {tag}")
            except _Lost as lost:
                self._disconnect()
                raise DeviceUnreachable(f"cannot write {tag}: {lost.reason}") from None
            except _Refused as refused:
                message = f"{self.name} refused the write of {tag} = {value!r}: {refused}"
                if refused.code == 2:
                    raise TagNotWritable(message) from None
                if refused.code == 3:
                    raise ValueOutOfRange(message) from None
                raise TagError(message) from None
        self.stats.writes += 1


def _refused_value(refused: _Refused) -> PolledValue:
    return PolledValue(
        None, "Bad", status_of_exception(refused.code), str(refused), exception_code=refused.code
    )


def _decoded(slot: _Slot, words: Sequence[int]) -> PolledValue:
    try:
        value = slot.codec.decode(words)
    except TagError as err:
        return PolledValue(None, "Bad", "BadDecodingError", str(err))
    spec = slot.codec.spec
    if spec.type == "float32" and spec.gain == 1 and spec.offset == 0:
        value = _shortest_float32(float(value))
    return PolledValue(value)


def _shortest_float32(value: float) -> float:
    """The shortest decimal that is the same float32: 0.403, not 0.40299999713897705.

    A float32 register holds about 7 significant digits; its exact binary value printed
    as a double only adds noise to what the device meant (and to every JSON payload).
    """
    return float(str(np.float32(value)))
