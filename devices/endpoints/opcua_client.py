"""An OPC UA *client* for the edge gateway: poll a device's tags, write a tag.

With :mod:`devices.endpoints.opcua` (the server) and its security helpers, the only
modules of simlab that import asyncua. The gateway gives a device name, its namespace URI
and tag names, and gets :class:`~devices.endpoints.modbus_client.PolledValue` objects back:
the same shape whatever the protocol.

Node ids follow the simlab server's convention, ``ns=<index of the namespace URI>;
s=<device>.<tag>``; the namespace index is looked up by URI at each connection (an index
is only valid for one server, the URI is what identifies the namespace).

Two ways to poll (``mode``):

- ``"read"`` (default): each :meth:`OpcUaPoller.poll` reads every Value in one Read
  service call. What a poll returns is the server's state at that moment.
- ``"subscribe"``: one subscription with a monitored item per tag (``sampling_ms``,
  100 ms by default, is both the sampling and the publishing interval); a poll returns
  the latest value notified for each tag, without a request. Cheaper for many tags that
  rarely change; a value is up to one publishing interval old.

Quality follows the StatusCode's severity: ``Good``, ``Uncertain`` or ``Bad``, with the
status name kept in :attr:`PolledValue.status` (``BadSensorFailure``,
``BadCommunicationError``...) and the server's SourceTimestamp in ``source_ms``. When the
connection is refused or lost, every tag is Bad (``BadNotConnected`` /
``BadCommunicationError``) and the next poll connects again with a new session (and
subscription).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

import asyncua.ua
from asyncua.client.client import Client

from devices.endpoints.modbus_client import DeviceUnreachable, PolledValue, PollStats, Quality
from devices.registermap import Value
from simlab.errors import TagError, TagNotWritable, UnknownTag, ValueOutOfRange

__all__ = ["OpcUaPoller", "close_quietly", "quality_of_status"]

log = logging.getLogger(__name__)
# asyncua warns on every lost connection ("close_session was called but connection is
# closed"...); without this, a program with no logging set up would print them on the
# terminal (Python's last-resort handler). Configured handlers still receive them.
logging.getLogger("asyncua").addHandler(logging.NullHandler())

ua: Any = asyncua.ua
"""asyncua's types, untyped here (as in :mod:`devices.endpoints.opcua`)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NOT_WRITABLE = frozenset({"BadNotWritable", "BadUserAccessDenied", "BadWriteNotSupported"})
_OUT_OF_RANGE = frozenset({"BadOutOfRange", "BadTypeMismatch", "BadIndexRangeInvalid"})


def quality_of_status(status: Any) -> Quality:
    """``Good``, ``Uncertain`` or ``Bad``: the severity of an asyncua ``StatusCode``."""
    if status is None or status.is_good():
        return "Good"
    return "Uncertain" if status.is_uncertain() else "Bad"


def _ms(stamp: datetime | None) -> int | None:
    if stamp is None:
        return None
    if stamp.tzinfo is None:  # asyncua decodes DateTime as naive UTC
        stamp = stamp.replace(tzinfo=UTC)
    return round((stamp - _EPOCH).total_seconds() * 1000)


def _polled(data: Any) -> PolledValue:
    """A DataValue as a PolledValue: a Bad value is None, whatever the server sent."""
    status = data.StatusCode
    quality = quality_of_status(status)
    name = "Good" if status is None else str(status.name)
    value: Value | None = None
    variant = data.Value
    if quality != "Bad" and variant is not None and variant.Value is not None:
        raw = variant.Value
        value = raw if isinstance(raw, bool | int | float | str) else str(raw)
    source = _ms(data.SourceTimestamp)
    if source is None:
        source = _ms(data.ServerTimestamp)
    error = "" if quality == "Good" else f"the server reports {name}"
    return PolledValue(value, quality, name, error, source_ms=source)


class _Handler:
    """Subscription callbacks (on asyncua's task): keep the latest DataValue per node."""

    def __init__(self, poller: OpcUaPoller) -> None:
        self.poller = poller

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.poller._latest[node.nodeid] = data.monitored_item.Value

    def status_change_notification(self, status: Any) -> None:
        self.poller._lost = True


class OpcUaPoller:
    """Polls tags of one device's OPC UA server; ``async with`` it.

    Args:
        url: the endpoint URL (``opc.tcp://host:port/...``), security mode None.
        namespace_uri: the device's namespace (``spec.opcua.namespace``).
        device: the device name, first part of every node id.
        tags: the tag names to poll.
        mode: ``"read"`` (one Read per poll) or ``"subscribe"`` (see the module doc).
        sampling_ms: sampling and publishing interval of the subscription.
        timeout: seconds allowed for the connection and for each request.

    Entering does not fail when the server is unreachable: every :meth:`poll` tries again
    and reports Bad values meanwhile.
    """

    def __init__(
        self,
        url: str,
        namespace_uri: str,
        device: str,
        tags: Iterable[str],
        *,
        mode: Literal["read", "subscribe"] = "read",
        sampling_ms: float = 100.0,
        timeout: float = 2.0,
    ) -> None:
        self.url = url
        self.namespace_uri = namespace_uri
        self.device = device
        self.tags: tuple[str, ...] = tuple(tags)
        self.mode = mode
        self.sampling_ms = sampling_ms
        self.timeout = timeout
        self.stats = PollStats()
        self._client: Any = None
        self._nodes: dict[str, Any] = {}  # tag -> asyncua Node
        self._variant_types: dict[str, Any] = {}
        self._latest: dict[Any, Any] = {}  # NodeId -> DataValue (subscribe mode)
        self._lost = False
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def connected(self) -> bool:
        """Whether a session is open now (the last poll or write did not lose it)."""
        return self._client is not None and not self._lost

    def node_id(self, tag: str) -> str:
        """The node id of ``tag`` as a string (``ns=2;s=plc1.level``); needs a connection."""
        node = self._nodes.get(tag)
        if node is None:
            raise DeviceUnreachable(f"{self.url}: not connected, node ids are not known yet")
        return str(node.nodeid.to_string())

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> OpcUaPoller:
        """Try a first connection (a failure is only logged: :meth:`poll` retries)."""
        async with self._lock:
            with contextlib.suppress(DeviceUnreachable):
                await self._connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the session (and its subscription)."""
        self._closed = True
        async with self._lock:
            await self._disconnect()

    async def _connect(self) -> Any:
        if self._client is not None and not self._lost:
            return self._client
        await self._disconnect()
        if self._closed:
            raise DeviceUnreachable(f"the poller of {self.url} is closed")
        client: Any = Client(self.url, timeout=self.timeout)
        try:
            async with asyncio.timeout(self.timeout * 2):
                await client.connect()
        except Exception as err:  # any failure to open a session: refused, reset, timeout
            await close_quietly(client, self.timeout)
            self.stats.connection_failures += 1
            self.stats.last_error = f"cannot connect to {self.url}: {_describe(err)}"
            raise DeviceUnreachable(self.stats.last_error) from err
        try:
            index = await client.get_namespace_index(self.namespace_uri)
        except Exception as err:
            await close_quietly(client, self.timeout)
            self.stats.last_error = (
                f"{self.url} has no namespace {self.namespace_uri!r} ({_describe(err)}): "
                "check the device's opcua.namespace"
            )
            raise DeviceUnreachable(self.stats.last_error) from err
        self._nodes = {
            tag: client.get_node(ua.NodeId(f"{self.device}.{tag}", index)) for tag in self.tags
        }
        self._latest.clear()
        self._lost = False
        self._client = client
        if self.mode == "subscribe":
            try:
                subscription = await client.create_subscription(self.sampling_ms, _Handler(self))
                await subscription.subscribe_data_change(
                    list(self._nodes.values()), sampling_interval=self.sampling_ms
                )
            except Exception as err:
                await self._disconnect()
                self.stats.last_error = f"cannot subscribe on {self.url}: {_describe(err)}"
                raise DeviceUnreachable(self.stats.last_error) from err
        self.stats.connects += 1
        return client

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        self._lost = False
        if client is not None:
            await close_quietly(client, self.timeout)

    # --- polling --------------------------------------------------------------------------

    async def poll(self) -> dict[str, PolledValue]:
        """Every tag's value, quality and source timestamp (see the module doc).

        Never raises for a server problem: each tag's :class:`PolledValue` tells it.
        """
        async with self._lock:
            self.stats.polls += 1
            try:
                client = await self._connect()
            except DeviceUnreachable as err:
                return self._all_bad("BadNotConnected", str(err))
            if self.mode == "subscribe":
                return await self._from_subscription(client)
            self.stats.requests += 1
            try:
                async with asyncio.timeout(self.timeout):
                    values = await client.read_attributes(list(self._nodes.values()))
            except Exception as err:  # connection lost or request timed out
                await self._disconnect()
                reason = f"{self.url}: read failed: {_describe(err)}"
                self.stats.last_error = reason
                status = "BadTimeout" if isinstance(err, TimeoutError) else "BadCommunicationError"
                return self._all_bad(status, reason)
            return {tag: _polled(data) for tag, data in zip(self.tags, values, strict=True)}

    async def _from_subscription(self, client: Any) -> dict[str, PolledValue]:
        try:
            await client.check_connection()
        except Exception as err:
            self._lost = True
            reason = f"{self.url}: connection lost: {_describe(err)}"
            self.stats.last_error = reason
            await self._disconnect()
            return self._all_bad("BadCommunicationError", reason)
        if self._lost:
            await self._disconnect()
            return self._all_bad("BadCommunicationError", f"{self.url}: subscription lost")
        results: dict[str, PolledValue] = {}
        for tag, node in self._nodes.items():
            data = self._latest.get(node.nodeid)
            if data is None:
                results[tag] = PolledValue(
                    None, "Bad", "BadWaitingForInitialData", "no notification received yet"
                )
            else:
                results[tag] = _polled(data)
        return results

    def _all_bad(self, status: str, reason: str) -> dict[str, PolledValue]:
        bad = PolledValue(None, "Bad", status, reason)
        return dict.fromkeys(self.tags, bad)

    # --- writing --------------------------------------------------------------------------

    async def write(self, tag: str, value: Value) -> None:
        """Write ``value`` to ``tag``'s Value attribute, as the node's own DataType.

        The DataType is read once per tag (an int sent as Int64 to an Int32 variable would
        be refused with BadTypeMismatch).

        Raises:
            UnknownTag: ``tag`` is not polled by this poller.
            TagNotWritable: the server answers BadNotWritable or BadUserAccessDenied.
            ValueOutOfRange: BadOutOfRange or BadTypeMismatch, or a value that cannot be
                converted to the DataType.
            DeviceUnreachable: no connection, or no answer within ``timeout``.
            TagError: any other Bad status.
        """
        if tag not in self.tags:
            known = ", ".join(self.tags) or "none"
            raise UnknownTag(f"{self.url} polls no tag {tag!r} (tags: {known})")
        async with self._lock:
            client = await self._connect()
            node = self._nodes[tag]
            try:
                async with asyncio.timeout(self.timeout):
                    vtype = self._variant_types.get(tag)
                    if vtype is None:
                        vtype = await node.read_data_type_as_variant_type()
                        self._variant_types[tag] = vtype
                    variant = ua.Variant(_convert(tag, value, vtype), vtype)
                    self.stats.requests += 1
                    statuses = await client.write_values(
                        [node], [ua.DataValue(variant)], raise_on_partial_error=False
                    )
            except (TagError, DeviceUnreachable):
                raise
            except Exception as err:
                await self._disconnect()
                raise DeviceUnreachable(
                    f"cannot write {tag} on {self.url}: {_describe(err)}"
                ) from err
        _check_write(tag, value, statuses[0])
        self.stats.writes += 1


def _convert(tag: str, value: Value, vtype: Any) -> object:
    """``value`` as the Python type of ``vtype``; ValueOutOfRange if it cannot be."""
    name = vtype.name
    try:
        if name == "Boolean":
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "on")
            return bool(value)
        if name in ("Float", "Double"):
            return float(value)
        if name == "String":
            return str(value)
        if name in ("SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64"):
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(value)
            return round(number)
    except (TypeError, ValueError) as err:
        raise ValueOutOfRange(f"{tag}: {value!r} is not a valid {name}") from err
    raise ValueOutOfRange(f"{tag}: writing a {name} is not supported")


def _check_write(tag: str, value: Value, status: Any) -> None:
    if status is None or status.is_good():
        return
    name = str(status.name)
    message = f"the server refused {tag} = {value!r}: {name}"
    if name in _NOT_WRITABLE:
        raise TagNotWritable(message)
    if name in _OUT_OF_RANGE:
        raise ValueOutOfRange(message)
    raise TagError(message)


def _describe(err: BaseException) -> str:
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


async def close_quietly(client: Any, timeout: float) -> None:
    """Disconnect a client that may already be dead; never raises, never hangs."""
    try:
        async with asyncio.timeout(timeout):
            await client.disconnect()
    except Exception:  # the connection is gone: nothing to close cleanly
        with contextlib.suppress(Exception):
            client.disconnect_socket()
