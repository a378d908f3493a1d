"""Modbus TCP endpoint of a device: its tags, served live over a real pymodbus server.

The only module of simlab that imports pymodbus. Apprentices reach it with any Modbus TCP
client (mbpoll, pymodbus, Node-RED); every answer is computed **at request time** from
the device's tag table, so one tag has one truth and nothing goes stale.

How it uses pymodbus 3.16.1, and why
------------------------------------
pymodbus provides the TCP listener and connections (:class:`ModbusTcpServer`), the
decoding of request PDUs (:class:`DecodePDU`: function codes, fields, quantity checks) and
the encoding of responses and exception responses. The endpoint answers each decoded
request itself from the device's tags instead of through a pymodbus datastore, because
the datastore hooks do not fit a lab:

- ``SimData``/``SimDevice`` keep a copy of the registers built when the server starts;
  an ``action`` callback could refresh it per request, but it never learns which
  connection asked, so the per-session audit (the grading evidence) would be impossible;
- the simulator decides 02 for unmapped and read-only addresses *before* the callback
  runs, pads bit blocks to 16 (so unmapped coils read as valid) and knows nothing of
  partial writes of multi-register values or of tag quality;
- FC 43/14 answers from ``ModbusControlBlock``, a process-wide singleton: two devices
  of one lab would share one identity.

So a connection (a ``ServerRequestHandler`` built by the listener's documented factory
``callback_new_connection``) hands each complete MBAP frame to the endpoint, which
decides, audits, and replies with pymodbus' response PDUs. The datastore given to the
server to construct it is a placeholder that is never consulted. Requests are answered
synchronously in the connection's ``data_received``: no task per request (a ``latency``
fault schedules the reply with ``call_later``), several pipelined frames in one segment
are all answered, and nothing outlives ``__aexit__``.

Reads encode the tag values at request time. To stay at least as fast as a bare pymodbus
server, the registers of each tag are kept with the value *object* they were encoded
from and reused only while the tag still holds that very object (every scan or write
stores a new one), so the cache can never serve a value the tag no longer has.

Behaviour (exception codes follow the Modbus Application Protocol v1.1b3)
--------------------------------------------------------------------------
====================================================== ===================================
situation                                              answer
====================================================== ===================================
unit id not served (spec ``unit_ids``, or the one of a  no answer: the device is not a
``wrong_unit_id`` fault)                                gateway, so 0x0A/0x0B (gateway
                                                       path/target) do not apply; the
                                                       client times out, as with most
                                                       devices set to another unit id
function other than 1, 2, 3, 4, 5, 6, 15, 16, 43/14    01 Illegal Function
malformed PDU of a supported function (quantity out    03 Illegal Data Value
of range, byte count mismatch, coil value not
0x0000/0xFF00, truncated)
any address of the request not mapped (a read or write  02 Illegal Data Address
spanning mapped and unmapped addresses included)
write to a mapped address whose tag is read-only        02 Illegal Data Address (the address
                                                       is not writable; the value is not
                                                       the problem)
write covering only part of a multi-register value     03 Illegal Data Value: write all its
                                                       registers in one request
value refused by the device (out of range, not a       03 Illegal Data Value
number)
read touching a tag whose quality is BAD (sensor       04 Server Device Failure: a device
offline, NaN, wire break), or a value that has no      fault shows on Modbus as a failure
representation (NaN in an integer register)
``exception`` fault                                    its code (04 or 06) to every request
invalid MBAP header (protocol id not 0, length not     connection closed: a TCP byte stream
2..254)                                                cannot be resynchronised
====================================================== ===================================

A write request is all or nothing: every tag it covers is checked and written, and if the
device refuses one value the tags already written are restored. Reads of part of a
multi-register value are allowed (a client may read any register range).

Endpoint faults (``apply_fault``): ``comm_loss`` drops every connection, then accepts
new ones but answers nothing until cleared; ``latency`` sends each reply ``delay`` ms
after its request arrived; ``exception`` answers every request with its code;
``frozen`` serves the tag values of the moment it started (writes still reach the
device); ``word_swap`` reverses the words of every multi-register number;
``wrong_unit_id`` answers only that unit id. Faults with ``protocol: opcua`` are ignored.

Audit: each connection is a session (peer ``host:port``, connect and disconnect times);
each request a ``request`` event (target ``"fc3 holding_register 0..9"``, ``ok`` False
with the reason when answered with an exception or not at all); each tag written a
``write`` event (``ok`` False with the reason when refused). Times come from ``now()``,
the lab's simulated clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.pdu.bit_message import (
    ReadCoilsResponse,
    ReadDiscreteInputsResponse,
    WriteMultipleCoilsResponse,
    WriteSingleCoilResponse,
)
from pymodbus.pdu.mei_message import ReadDeviceInformationResponse
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
    WriteMultipleRegistersResponse,
    WriteSingleRegisterResponse,
)
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from devices.device import Device, TagValue
from devices.endpoints.audit import SessionAudit
from devices.registermap import TagCodec
from devices.sensors import Quality
from simlab.errors import FaultError, LabError, TagError, TagNotWritable
from simlab.scenario.devices import PlcSpec, SmartSensorSpec
from simlab.scenario.faults import ENDPOINT_FAULT_KINDS, FaultSpec

__all__ = ["SUPPORTED_FUNCTIONS", "ModbusEndpoint"]

log = logging.getLogger(__name__)
# pymodbus logs undecodable frames as warnings; without this a lab with no logging set up
# would print them on the terminal (Python's last-resort handler).
logging.getLogger("pymodbus").addHandler(logging.NullHandler())

SUPPORTED_FUNCTIONS = frozenset({1, 2, 3, 4, 5, 6, 15, 16, 43})
MEI_DEVICE_IDENTIFICATION = 0x0E
MAX_PDU = 253  # bytes, function code included (Modbus Application Protocol 4.1)
_MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
_ADDRESS_COUNT = struct.Struct(">HH")
_COIL_ON, _COIL_OFF = 0xFF00, 0x0000

ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_FAILURE = 1, 2, 3, 4

_TABLE_OF = {
    1: "coil",
    2: "discrete_input",
    3: "holding_register",
    4: "input_register",
    5: "coil",
    6: "holding_register",
    15: "coil",
    16: "holding_register",
}


@dataclass(slots=True)
class _Call:
    """One request as it arrived: who, when, to which unit, and its PDU bytes."""

    connection: _Connection
    now: float
    unit: int
    fc: int
    body: bytes


class _Refused(Exception):
    """A request answered with a Modbus exception ``code``; ``reason`` goes to the audit."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# --- the map ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Slot:
    """A tag mapped into one table: ``size`` addresses from ``start``."""

    tag: str
    start: int
    size: int
    codec: TagCodec
    writable: bool

    @property
    def swappable(self) -> bool:
        """A ``word_swap`` fault reverses this value's words (numbers of 2+ registers)."""
        return self.size > 1 and not self.codec.is_text


class _Table:
    """One Modbus table: which tag, and which of its words, sits at each address."""

    PLANS = 1024  # remembered (start, count) spans: clients poll the same ranges

    def __init__(self, name: str, slots: Iterable[_Slot]) -> None:
        self.name = name
        self.at: dict[int, tuple[_Slot, int]] = {}
        for slot in slots:
            for word in range(slot.size):
                self.at[slot.start + word] = (slot, word)
        self._plans: dict[tuple[int, int], list[tuple[_Slot, int, int]]] = {}

    def span(self, start: int, count: int) -> list[tuple[_Slot, int, int]]:
        """(slot, first word, words) covering ``count`` addresses from ``start``; 02 on a gap."""
        plan = self._plans.get((start, count))
        if plan is None:
            plan = self._span(start, count)
            if len(self._plans) >= self.PLANS:
                self._plans.clear()
            self._plans[start, count] = plan
        return plan

    def _span(self, start: int, count: int) -> list[tuple[_Slot, int, int]]:
        parts: list[tuple[_Slot, int, int]] = []
        address, end = start, start + count
        while address < end:
            hit = self.at.get(address)
            if hit is None:
                raise _Refused(ILLEGAL_ADDRESS, f"{self.name} {address} is not mapped")
            slot, word = hit
            words = min(slot.size - word, end - address)
            parts.append((slot, word, words))
            address += words
        return parts


def _tables(spec: PlcSpec | SmartSensorSpec) -> dict[str, _Table]:
    slots: dict[str, list[_Slot]] = {name: [] for name in set(_TABLE_OF.values())}
    for tag in spec.tags:
        if tag.modbus is None:
            continue
        m = tag.modbus
        writable = tag.writable and m.table in ("coil", "holding_register")
        slot = _Slot(tag.name, m.address, m.registers(), TagCodec(m, tag.name), writable)
        slots[m.table].append(slot)
    return {name: _Table(name, entries) for name, entries in slots.items()}


def _identity(spec: PlcSpec | SmartSensorSpec) -> dict[int, str]:
    """FC 43/14 objects: 0x00-0x06 standard (basic and regular), 0x80 serial number."""
    ident = spec.identity
    objects = {
        0x00: ident.manufacturer,  # VendorName
        0x01: ident.product_code,  # ProductCode
        0x02: ident.revision,  # MajorMinorRevision
        0x03: ident.vendor_url,  # VendorUrl
        0x04: ident.model,  # ProductName
        0x05: ident.model,  # ModelName
        0x06: spec.name,  # UserApplicationName
        0x80: ident.serial_number,  # private: serial number
    }
    return {oid: text for oid, text in objects.items() if text}


def _target(fc: int, body: bytes) -> str:
    """Audit target of a request: ``"fc3 holding_register 0..9"``."""
    if fc == 43:
        mei = body[1] if len(body) > 1 else -1
        return (
            "fc43/14 device_identification" if mei == MEI_DEVICE_IDENTIFICATION else f"fc43/{mei}"
        )
    table = _TABLE_OF.get(fc)
    if table is None or len(body) < 5:
        return f"fc{fc}"
    address, count = _ADDRESS_COUNT.unpack_from(body, 1)
    if fc in (5, 6):
        count = 1
    return f"fc{fc} {table} {address}..{address + max(count, 1) - 1}"


# --- pymodbus glue ------------------------------------------------------------------------


class _Connection(ServerRequestHandler):
    """One client connection: hands whole MBAP frames to the endpoint."""

    def __init__(self, listener: _Listener, endpoint: ModbusEndpoint) -> None:
        super().__init__(listener, None, None, None)  # type: ignore[no-untyped-call]
        # Frames are consumed as they complete, so the buffer holds less than one frame;
        # a big limit only lets a burst of pipelined requests arrive whole.
        self.max_buffer_size = 1 << 20
        self.endpoint = endpoint
        self.session = 0
        self.dropped = False

    def callback_connected(self) -> None:
        super().callback_connected()
        self.endpoint._opened(self)

    def callback_disconnected(self, exc: Exception | None) -> None:
        super().callback_disconnected(exc)
        self.endpoint._closed(self)

    def callback_data(self, data: bytes, addr: tuple[Any, ...] | None = None) -> int:
        return self.endpoint._received(self, data)

    def send(self, data: bytes, addr: tuple[Any, ...] | None = None) -> None:
        """Write a reply (unlike the base class, keep any request already buffered)."""
        transport = cast(asyncio.Transport | None, self.transport)
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def peer(self) -> str:
        """``host:port`` of the client."""
        name = self.transport.get_extra_info("peername") if self.transport else None
        return f"{name[0]}:{name[1]}" if name else "?"

    def drop(self) -> None:
        """Cut the connection at once (``connection_lost`` then closes the session)."""
        self.dropped = True
        transport = cast(asyncio.Transport | None, self.transport)
        if transport is not None:
            transport.abort()


class _Listener(ModbusTcpServer):
    """The TCP listener; its connections belong to the endpoint."""

    def __init__(self, endpoint: ModbusEndpoint, host: str, port: int) -> None:
        placeholder = SimDevice(id=0, simdata=[SimData(0, datatype=DataType.REGISTERS)])
        super().__init__(placeholder, address=(host, port))
        self.endpoint = endpoint

    def callback_new_connection(self) -> _Connection:
        return _Connection(self, self.endpoint)


# --- the endpoint -------------------------------------------------------------------------


class ModbusEndpoint:
    """A device's Modbus TCP server (``async with``: listening inside the block)."""

    def __init__(
        self,
        device: Device,
        *,
        host: str,
        port: int,
        audit: SessionAudit,
        now: Callable[[], float],
    ) -> None:
        if device.spec.modbus is None:
            raise LabError(
                f"device {device.name!r} has no Modbus server; add 'modbus: {{port: 5020}}' "
                "to it in the scenario"
            )
        self.device = device
        self.host = host
        self.port = port
        self.audit = audit
        self.now = now
        self.unit_ids = frozenset(device.spec.modbus.unit_ids)
        self._tables = _tables(device.spec)
        self._identity = _identity(device.spec)
        self._decoder = DecodePDU(True)
        self._faults: dict[str, list[FaultSpec]] = {}
        self._frozen: tuple[dict[str, TagValue], dict[str, Quality]] | None = None
        self._cache: dict[str, tuple[TagValue, list[int]]] = {}
        self._connections: set[_Connection] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._server: _Listener | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> ModbusEndpoint:
        """Listen on ``host:port``; LabError when the port cannot be bound."""
        server = _Listener(self, self.host, self.port)
        try:
            await server.serve_forever(background=True)
        except (RuntimeError, OSError) as err:
            raise LabError(
                f"Modbus endpoint of {self.device.name!r} cannot listen on "
                f"{self.host}:{self.port} (port in use?): {err}"
            ) from err
        self._server = server
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop listening, close every connection (and its session), drop delayed replies."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        server, self._server = self._server, None
        if server is not None:
            listening = server.transport
            await server.shutdown()  # type: ignore[no-untyped-call]
            if isinstance(listening, asyncio.Server):
                with contextlib.suppress(Exception):
                    await listening.wait_closed()
        for connection in list(self._connections):
            self._closed(connection)

    # --- faults ----------------------------------------------------------------------------

    def apply_fault(self, fault: FaultSpec, on: bool) -> None:
        """Start (``on``) or end an endpoint fault; see the module docstring for each kind."""
        if fault.kind not in ENDPOINT_FAULT_KINDS:
            raise FaultError(f"{fault.kind!r} is not an endpoint fault; it cannot act on Modbus")
        if getattr(fault, "protocol", "modbus") == "opcua":
            return
        active = self._faults.setdefault(fault.kind, [])
        if on:
            active.append(fault)
        elif fault in active:
            active.remove(fault)
        if fault.kind == "comm_loss" and on:
            self._drop_all()
        elif fault.kind == "frozen":
            self._frozen = self._snapshot() if active else None

    def _active(self, kind: str) -> Any:
        """The latest active fault of ``kind``, or None."""
        active = self._faults.get(kind)
        return active[-1] if active else None

    def _snapshot(self) -> tuple[dict[str, TagValue], dict[str, Quality]]:
        if self._frozen is not None:
            return self._frozen
        return dict(self.device.tags), dict(self.device.quality)

    def _drop_all(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for connection in list(self._connections):
            connection.drop()

    @property
    def served_unit_ids(self) -> frozenset[int]:
        """Unit ids answered now (a ``wrong_unit_id`` fault replaces the configured ones)."""
        wrong = self._active("wrong_unit_id")
        return frozenset({wrong.unit_id}) if wrong is not None else self.unit_ids

    # --- sessions --------------------------------------------------------------------------

    def _opened(self, connection: _Connection) -> None:
        connection.session = self.audit.open(
            self.device.name, "modbus", connection.peer(), self.now()
        )
        self._connections.add(connection)

    def _closed(self, connection: _Connection) -> None:
        if connection in self._connections:
            self._connections.discard(connection)
            self.audit.close(connection.session, self.now())

    # --- frames ----------------------------------------------------------------------------

    def _received(self, connection: _Connection, data: bytes) -> int:
        """Handle every complete frame in ``data``; returns the bytes consumed."""
        used = 0
        while not connection.dropped and len(data) - used >= _MBAP.size:
            tid, protocol, length, unit = _MBAP.unpack_from(data, used)
            if protocol != 0 or not 2 <= length <= MAX_PDU + 1:
                self._refuse_stream(connection, protocol, length)
                return len(data)
            end = used + 6 + length
            if end > len(data):
                break
            self._request(connection, unit, tid, data[used + _MBAP.size : end])
            used = end
        return used

    def _refuse_stream(self, connection: _Connection, protocol: int, length: int) -> None:
        reason = (
            f"invalid MBAP header (protocol id {protocol}, length {length}; "
            f"need 0 and 2..{MAX_PDU + 1}): connection closed"
        )
        self.audit.record(
            connection.session, self.now(), "refused", "mbap", ok=False, reason=reason
        )
        connection.drop()

    def _request(self, connection: _Connection, unit: int, tid: int, body: bytes) -> None:
        """One request: audit it, answer it (or not), through the active faults."""
        call = _Call(connection, self.now(), unit, body[0], body)
        if self._active("comm_loss") is not None:
            self._audit_request(call, None, "not answered: comm_loss fault")
            return
        if unit not in self.served_unit_ids:
            served = ", ".join(str(u) for u in sorted(self.served_unit_ids))
            self._audit_request(call, None, f"not answered: unit id {unit} not served ({served})")
            return
        response, code, reason = self._answer(call)
        self._audit_request(call, code, reason)
        response.transaction_id = tid
        response.dev_id = unit
        self._reply(connection, response)

    def _audit_request(self, call: _Call, code: int | None, reason: str) -> None:
        detail: dict[str, object] = {"unit": call.unit, "function_code": call.fc}
        if code is not None:
            detail["exception"] = code
        self.audit.record(
            call.connection.session,
            call.now,
            "request",
            _target(call.fc, call.body),
            ok=not reason,
            reason=reason,
            **detail,
        )

    def _reply(self, connection: _Connection, response: ModbusPDU) -> None:
        latency = self._active("latency")
        if latency is None:
            connection.pdu_send(response)
            return

        def deliver() -> None:
            self._timers.discard(timer)
            connection.pdu_send(response)

        timer = asyncio.get_running_loop().call_later(latency.delay / 1000.0, deliver)
        self._timers.add(timer)

    def _answer(self, call: _Call) -> tuple[ModbusPDU, int | None, str]:
        """(response, exception code or None, audit reason) of one request."""
        fc = call.fc
        try:
            fault = self._active("exception")
            if fault is not None:
                raise _Refused(fault.code, f"exception fault (code {fault.code})")
            if fc not in SUPPORTED_FUNCTIONS:
                raise _Refused(ILLEGAL_FUNCTION, f"function code {fc} is not supported")
            pdu = self._decoder.decode(call.body)
            if pdu is None:
                raise _Refused(ILLEGAL_VALUE, f"malformed function {fc} request")
            return self._execute(call, pdu), None, ""
        except _Refused as refused:
            return ExceptionResponse(fc, refused.code), refused.code, refused.reason
        except Exception:  # one bad request must never take the endpoint down
            log.exception("Modbus endpoint of %s failed on %r", self.device.name, call.body)
            return ExceptionResponse(fc, DEVICE_FAILURE), DEVICE_FAILURE, "internal error"

    def _execute(self, call: _Call, pdu: Any) -> ModbusPDU:
        fc = call.fc
        if fc == 1:
            return ReadCoilsResponse(bits=self._read_bits(fc, pdu))
        if fc == 2:
            return ReadDiscreteInputsResponse(bits=self._read_bits(fc, pdu))
        if fc == 3:
            return ReadHoldingRegistersResponse(registers=self._read(fc, pdu))
        if fc == 4:
            return ReadInputRegistersResponse(registers=self._read(fc, pdu))
        if fc == 43:
            return self._identify(pdu)
        return self._execute_write(call, pdu)

    # --- reads -----------------------------------------------------------------------------

    def _read(self, fc: int, pdu: Any) -> list[int]:
        """The words asked for, encoded from the tags now (or frozen) of the table of ``fc``."""
        values, quality = self._frozen or (self.device.tags, self.device.quality)
        swap = self._active("word_swap") is not None
        words: list[int] = []
        for slot, first, n in self._tables[_TABLE_OF[fc]].span(pdu.address, pdu.count):
            if quality.get(slot.tag) is Quality.BAD:
                raise _Refused(DEVICE_FAILURE, f"{slot.tag} has BAD quality")
            registers = self._encoded(slot, values[slot.tag])
            if swap and slot.swappable:
                registers = registers[::-1]
            words += registers[first : first + n]
        return words

    def _read_bits(self, fc: int, pdu: Any) -> list[bool]:
        return [bool(word) for word in self._read(fc, pdu)]

    def _encoded(self, slot: _Slot, value: TagValue) -> list[int]:
        """Registers of ``value``; reused while the tag holds the same value object."""
        cached = self._cache.get(slot.tag)
        if cached is not None and cached[0] is value:
            return cached[1]
        try:
            registers = slot.codec.encode(value, clamp=True)
        except TagError as err:
            raise _Refused(DEVICE_FAILURE, str(err)) from err
        self._cache[slot.tag] = (value, registers)
        return registers

    # --- writes ----------------------------------------------------------------------------

    def _execute_write(self, call: _Call, pdu: Any) -> ModbusPDU:
        fc, address = call.fc, pdu.address
        if fc == 5:
            raw = _ADDRESS_COUNT.unpack_from(call.body, 1)[1]
            if raw not in (_COIL_ON, _COIL_OFF):
                raise _Refused(ILLEGAL_VALUE, f"coil value {raw:#06x} is not 0xFF00 or 0x0000")
            self._write(call, address, [int(raw == _COIL_ON)])
            return WriteSingleCoilResponse(address=address, bits=[raw == _COIL_ON])
        if fc == 6:
            self._write(call, address, list(pdu.registers))
            return WriteSingleRegisterResponse(address=address, registers=list(pdu.registers))
        if fc == 15:
            if pdu.byte_count != (pdu.count + 7) // 8 or pdu.data_byte_count != pdu.byte_count:
                raise _Refused(ILLEGAL_VALUE, "byte count does not match the coil count")
            self._write(call, address, [int(bit) for bit in pdu.bits])
            return WriteMultipleCoilsResponse(address=address, count=pdu.count)
        if not 1 <= pdu.count <= 123 or pdu.byte_count != 2 * pdu.count:
            raise _Refused(ILLEGAL_VALUE, "register count must be 1..123, with 2 bytes each")
        if len(pdu.registers) != pdu.count:
            raise _Refused(ILLEGAL_VALUE, "fewer register values than the count says")
        self._write(call, address, list(pdu.registers))
        return WriteMultipleRegistersResponse(address=address, count=pdu.count)

    def _write(self, call: _Call, start: int, words: Sequence[int]) -> None:
        """Decode and write every tag covered, all or nothing; audit each tag."""
        table = self._tables[_TABLE_OF[call.fc]]
        targets = [f"{table.name} {start}..{start + len(words) - 1}"]
        session = call.connection.session
        try:
            parts = table.span(start, len(words))
            targets = [slot.tag for slot, _, _ in parts]
            changes = _decode_parts(parts, words)
            self._apply(changes)
        except _Refused as refused:
            for target in targets:
                self.audit.record(
                    session,
                    call.now,
                    "write",
                    target,
                    ok=False,
                    reason=refused.reason,
                    function_code=call.fc,
                )
            raise
        for tag, value in changes:
            self.audit.record(session, call.now, "write", tag, function_code=call.fc, value=value)

    def _apply(self, changes: Sequence[tuple[str, TagValue]]) -> None:
        """Write each change through the device; undo them all if one is refused."""
        done: list[tuple[str, TagValue]] = []
        try:
            for tag, value in changes:
                previous = self.device.tags[tag]
                self.device.write(tag, value)
                done.append((tag, previous))
        except TagError as err:
            for tag, previous in reversed(done):
                self.device.tags[tag] = previous
            code = ILLEGAL_ADDRESS if isinstance(err, TagNotWritable) else ILLEGAL_VALUE
            raise _Refused(code, str(err)) from err

    # --- identification --------------------------------------------------------------------

    def _identify(self, pdu: Any) -> ModbusPDU:
        """FC 43/14 Read Device Identification (basic, regular, extended, one object)."""
        if getattr(pdu, "sub_function_code", None) != MEI_DEVICE_IDENTIFICATION:
            raise _Refused(ILLEGAL_FUNCTION, "only MEI type 14 (device identification)")
        read_code, object_id = pdu.read_code, pdu.object_id
        objects = self._identity
        if read_code == 4:
            if object_id not in objects:
                raise _Refused(ILLEGAL_ADDRESS, f"no identification object {object_id:#04x}")
            return ReadDeviceInformationResponse(
                read_code=4, information={object_id: objects[object_id]}
            )
        streams = {1: range(0x00, 0x03), 2: range(0x00, 0x07), 3: range(0x00, 0x100)}
        if read_code not in streams:
            raise _Refused(ILLEGAL_VALUE, f"read device id code {read_code} is not 1..4")
        ids = [oid for oid in streams[read_code] if oid in objects]
        if object_id not in ids:
            object_id = 0  # the specification: an unknown start object restarts at 0
        information = {oid: objects[oid] for oid in ids if oid >= object_id}
        return ReadDeviceInformationResponse(read_code=read_code, information=information)


def _decode_parts(
    parts: Sequence[tuple[_Slot, int, int]], words: Sequence[int]
) -> list[tuple[str, TagValue]]:
    """(tag, value) for each slot of a write; 02 for read-only, 03 for partial values."""
    for slot, _, _ in parts:
        if not slot.writable:
            raise _Refused(ILLEGAL_ADDRESS, f"{slot.tag} is read-only")
    changes: list[tuple[str, TagValue]] = []
    offset = 0
    for slot, first, n in parts:
        if first != 0 or n != slot.size:
            raise _Refused(
                ILLEGAL_VALUE,
                f"{slot.tag} is a {slot.codec.spec.type} in {slot.size} registers from "
                f"{slot.start}: write all of them in one request",
            )
        try:
            changes.append((slot.tag, slot.codec.decode(words[offset : offset + n])))
        except TagError as err:
            raise _Refused(ILLEGAL_VALUE, str(err)) from err
        offset += n
    return changes
