"""A raw Modbus TCP client, like mbpoll: read a range of a table, write registers and coils.

Where :mod:`devices.endpoints.modbus_client` polls *tags* through a register map, this
client knows only tables and 0-based protocol addresses: what an apprentice's own tool
sends. The terminal UI's Modbus poller and the lineage view read with it, over a real
socket, as an outside tool would.

Errors are plain words:

- an exception reply raises :class:`ModbusRequestError` with its code and a message naming
  the function, the addresses (protocol address and classic reference) and what the code
  means ("illegal data address: holding register 40101 (address 100) is not mapped");
- no connection, or no answer within ``timeout``, raises
  :class:`~devices.endpoints.modbus_client.DeviceUnreachable` with the reason; the next
  request connects again (a fresh connection also discards a late reply);
- a request that breaks a Modbus limit (a count over 125 registers or 2,000 bits, an
  address beyond 65535, a register value outside 0..65535) raises
  :class:`~simlab.errors.ValueOutOfRange` before anything is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from devices.endpoints.modbus_client import (
    EXCEPTION_NAMES,
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    DeviceUnreachable,
)
from devices.registermap import reference
from simlab.errors import LabError, ValueOutOfRange

__all__ = [
    "MAX_WRITE_REGISTERS",
    "TABLES",
    "ModbusRawClient",
    "ModbusRequestError",
    "Table",
    "max_count",
    "table_reference",
]

logging.getLogger("pymodbus").addHandler(logging.NullHandler())

Table = Literal["coils", "discrete_inputs", "holding_registers", "input_registers"]
"""The four Modbus tables, as a client names them."""

TABLES: tuple[Table, ...] = ("coils", "discrete_inputs", "input_registers", "holding_registers")

MAX_WRITE_REGISTERS = 123
"""Most registers one FC 16 request may write (Modbus Application Protocol 6.12)."""

_SINGULAR: Mapping[Table, str] = {
    "coils": "coil",
    "discrete_inputs": "discrete input",
    "input_registers": "input register",
    "holding_registers": "holding register",
}
_MAP_TABLE: Mapping[Table, str] = {
    "coils": "coil",
    "discrete_inputs": "discrete_input",
    "input_registers": "input_register",
    "holding_registers": "holding_register",
}
_READ_FC: Mapping[Table, int] = {
    "coils": 1,
    "discrete_inputs": 2,
    "holding_registers": 3,
    "input_registers": 4,
}
_MEANING: Mapping[int, str] = {
    1: "the device does not support this function",
    3: "the device refused the value or quantity",
    4: "the device failed to serve it (a value with Bad quality: sensor fault?)",
    5: "accepted, still being processed",
    6: "the device is busy, try again",
    10: "the gateway has no path to the target",
    11: "the target behind the gateway did not answer",
}


def max_count(table: Table) -> int:
    """Most addresses one read of ``table`` may cover: 2,000 bits or 125 registers."""
    return MAX_READ_BITS if table in ("coils", "discrete_inputs") else MAX_READ_REGISTERS


def table_reference(table: Table, address: int) -> str:
    """Classic reference of a 0-based ``address`` of ``table``: ``40001`` for holding 0."""
    return reference(_MAP_TABLE[table], address)


def _span(table: Table, address: int, count: int) -> str:
    """``holding register 40101 (address 100)`` or ``holding registers 40001..40016 (0..15)``."""
    first = table_reference(table, address)
    if count == 1:
        return f"{_SINGULAR[table]} {first} (address {address})"
    last = address + count - 1
    return f"{table.replace('_', ' ')} {first}..{table_reference(table, last)} ({address}..{last})"


class ModbusRequestError(LabError):
    """The device answered a request with a Modbus exception.

    ``code`` is the exception code (1 illegal function, 2 illegal data address, 3 illegal
    data value, 4 server device failure...), ``function`` the request's function code.
    """

    def __init__(self, message: str, code: int, function: int) -> None:
        super().__init__(message)
        self.code = code
        self.function = function


class ModbusRawClient:
    """A Modbus TCP client of one device and unit id: ``async with`` it.

    Entering connects (:class:`DeviceUnreachable` if it cannot); a request after a lost
    connection or a timeout connects again. Requests from concurrent tasks are sent one at
    a time. Addresses are 0-based protocol addresses.
    """

    def __init__(self, host: str, port: int, *, unit: int = 1, timeout: float = 2.0) -> None:
        self.host = host
        self.port = port
        self.unit = unit
        self.timeout = timeout
        self._client: AsyncModbusTcpClient | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"ModbusRawClient({self.host}:{self.port}, unit {self.unit})"

    @property
    def connected(self) -> bool:
        """Whether a connection is open now."""
        return self._client is not None and bool(self._client.connected)

    async def __aenter__(self) -> ModbusRawClient:
        async with self._lock:
            await self._connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (the next request opens another)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def _connect(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=self.timeout,
            retries=0,
            reconnect_delay=0,  # no background reconnection: the next request reconnects
            name=f"raw:{self.host}:{self.port}",
        )
        reason = "connection refused or timed out"
        try:
            ok = await client.connect()
        except (ModbusException, OSError) as err:
            ok, reason = False, str(err) or reason
        if not ok:
            client.close()
            raise DeviceUnreachable(
                f"cannot connect to {self.host}:{self.port}: {reason} "
                "(is the lab running, and is this the device's Modbus port?)"
            )
        self._client = client
        return client

    # --- requests -------------------------------------------------------------------------

    async def read(self, table: Table, address: int, count: int) -> list[int]:
        """``count`` values of ``table`` from ``address``: registers 0..65535, bits 0/1."""
        if table not in _READ_FC:
            raise ValueOutOfRange(f"no Modbus table {table!r}; tables: {', '.join(TABLES)}")
        limit = max_count(table)
        if not 1 <= count <= limit:
            raise ValueOutOfRange(
                f"count {count}: one read of {table.replace('_', ' ')} covers 1 to {limit} "
                "addresses (Modbus limit)"
            )
        _check_range(address, count)

        def send(client: AsyncModbusTcpClient) -> Awaitable[Any]:
            read = {
                "coils": client.read_coils,
                "discrete_inputs": client.read_discrete_inputs,
                "input_registers": client.read_input_registers,
                "holding_registers": client.read_holding_registers,
            }[table]
            return read(address, count=count, device_id=self.unit)

        span = _span(table, address, count)
        response = await self._request(send, _READ_FC[table], "read", span, count)
        if table in ("coils", "discrete_inputs"):
            values = [int(bool(bit)) for bit in list(response.bits)[:count]]
        else:
            values = [int(word) for word in response.registers]
        if len(values) != count:
            self.close()
            raise DeviceUnreachable(f"read {span}: the device sent {len(values)} values")
        return values

    async def write_register(self, address: int, value: int) -> None:
        """Write one holding register (FC 6)."""
        _check_range(address, 1)
        _check_word(value)
        await self._request(
            lambda client: client.write_register(address, value, device_id=self.unit),
            6,
            f"write {value} to",
            _span("holding_registers", address, 1),
            1,
        )

    async def write_registers(self, address: int, values: Sequence[int]) -> None:
        """Write consecutive holding registers in one request (FC 16)."""
        words = list(values)
        if not 1 <= len(words) <= MAX_WRITE_REGISTERS:
            raise ValueOutOfRange(
                f"{len(words)} registers: one write covers 1 to {MAX_WRITE_REGISTERS} "
                "registers (Modbus limit)"
            )
        _check_range(address, len(words))
        for word in words:
            _check_word(word)
        await self._request(
            lambda client: client.write_registers(address, words, device_id=self.unit),
            16,
            f"write {' '.join(map(str, words))} to",
            _span("holding_registers", address, len(words)),
            len(words),
        )

    async def write_coil(self, address: int, value: bool) -> None:
        """Write one coil (FC 5)."""
        _check_range(address, 1)
        await self._request(
            lambda client: client.write_coil(address, bool(value), device_id=self.unit),
            5,
            f"write {'ON' if value else 'OFF'} to",
            _span("coils", address, 1),
            1,
        )

    async def _request(
        self,
        send: Callable[[AsyncModbusTcpClient], Awaitable[Any]],
        function: int,
        action: str,
        span: str,
        count: int,
    ) -> Any:
        """Connect if needed and ``send`` one request (``action`` on ``span``: "read",
        "write 7 to"), one at a time; an exception reply raises
        :class:`ModbusRequestError`, a lost connection or timeout :class:`DeviceUnreachable`."""
        async with self._lock:
            client = await self._connect()
            try:
                response = await send(client)
            except (TimeoutError, ModbusException, OSError) as err:
                connected = self.connected
                self.close()  # a late reply must not answer the next request
                if connected:
                    reason = (
                        f"no answer within {self.timeout:g} s from {self.host}:{self.port} "
                        f"(is unit id {self.unit} right?)"
                    )
                else:
                    reason = f"connection to {self.host}:{self.port} lost"
                raise DeviceUnreachable(f"{action} {span}: {reason}") from err
            except asyncio.CancelledError:
                self.close()  # the reply to a cancelled request must not answer the next one
                raise
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            raise ModbusRequestError(_explain(code, function, action, span, count), code, function)
        return response


def _explain(code: int, function: int, action: str, span: str, count: int) -> str:
    """``illegal data address: holding register 40101 (address 100) is not mapped (FC 3)``."""
    name = EXCEPTION_NAMES.get(code, "unknown exception").lower()
    writes = function in (5, 6, 15, 16)
    if code == 2 and writes:
        return f"{name}: {span} is not mapped or not writable (FC {function})"
    if code == 2:
        verb = "is not mapped" if count == 1 else "are not all mapped"
        return f"{name}: {span} {verb} (FC {function})"
    if code == 3 and writes:
        return (
            f"{name}: the device refused to {action} {span} (FC {function}): out of range, "
            "or only part of a multi-register value (write all its registers at once)"
        )
    meaning = _MEANING.get(code, "unknown exception code")
    return f"{name} (code {code}): {action} {span} (FC {function}): {meaning}"


def _check_range(address: int, count: int) -> None:
    if not 0 <= address <= 0xFFFF:
        raise ValueOutOfRange(f"address {address}: protocol addresses run from 0 to 65535")
    if address + count > 0x10000:
        raise ValueOutOfRange(
            f"addresses {address}..{address + count - 1} run past 65535, the last address"
        )


def _check_word(value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueOutOfRange(f"register value {value}: a register holds 0 to 65535")
