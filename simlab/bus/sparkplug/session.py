"""The Sparkplug B 3.0 edge node session, as pure state: no MQTT, no clock, no I/O.

:class:`EdgeNodeSession` decides *what* an edge node publishes and when; the MQTT
adapter only carries it out. Each method takes the time as ``timestamp_ms`` (UTC ms since
the epoch, from simlab's ``Clock``) and returns :class:`MqttMessage` values to publish in
order. The life of a session::

    will = session.new_connection(timestamp_ms=t)   # before EVERY connect, reconnects too
    # register it as the Will of that CONNECT (paho would reuse an old Will on reconnect);
    # with simlab's MqttClient this call is the body of its ``will=`` factory
    ...connect...
    for m in session.on_connect(timestamp_ms=t):     # after CONNACK: NBIRTH, then DBIRTHs
        client.publish(m.topic, m.payload, m.qos, m.retain)
    session.node_data({...}) / session.device_data(dev, {...})   # NDATA / DDATA or None
    session.handle_command(topic, payload, ...)      # NCMD / DCMD → writes, maybe a rebirth
    session.disconnect(timestamp_ms=t)               # NDEATH to publish before DISCONNECT

Values reported while the node is offline (or a device is dead) are remembered and carried
by the next BIRTH, which must hold every metric's current value
(tck-id-operational-behavior-data-publish-nbirth-values, ...-dbirth-values).
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Concatenate, Final, ParamSpec, TypeVar

from simlab.bus.sparkplug.codec import (
    DataType,
    Metric,
    MetricValue,
    apply_datatype,
    coerce_value,
    datatype_for_tag_type,
    decode_payload,
    encode_payload,
)
from simlab.bus.sparkplug.errors import SparkplugError, SparkplugStateError
from simlab.bus.sparkplug.topics import EdgeTopic, MessageType, parse_topic, validate_id

__all__ = [
    "BD_SEQ",
    "REBIRTH",
    "Command",
    "EdgeNodeSession",
    "MetricDef",
    "MqttMessage",
]

BD_SEQ: Final = "bdSeq"
"""Name of the birth/death sequence metric of NBIRTH and NDEATH."""

REBIRTH: Final = "Node Control/Rebirth"
"""Name of the Boolean metric a host writes ``true`` to (NCMD) to ask for a rebirth."""

_SEQ_MODULO: Final = 256


@dataclass(frozen=True, slots=True)
class MqttMessage:
    """One MQTT publication: what to send, at which QoS, retained or not."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True, slots=True)
class MetricDef:
    """A metric an edge node or device will report: name, datatype and initial value."""

    name: str
    datatype: DataType
    value: MetricValue = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SparkplugError(f"a metric name must be a non-empty string, not {self.name!r}")
        checked = Metric(name=self.name, datatype=self.datatype, value=self.value)
        object.__setattr__(self, "datatype", checked.datatype)
        object.__setattr__(self, "value", checked.value)

    @classmethod
    def for_tag(cls, name: str, tag_type: str, value: MetricValue = None) -> MetricDef:
        """The metric of a simlab tag of type ``bool``/``int``/``float``/``string``."""
        return cls(name, datatype_for_tag_type(tag_type), value)


@dataclass(frozen=True, slots=True)
class Command:
    """What an NCMD or DCMD asks of the edge node.

    ``writes`` are ``(metric name, value)`` pairs, each value already checked against the
    metric's datatype, for the caller to apply to its tags; ``rejected`` are
    ``(metric, reason)`` pairs that cannot be applied. ``messages`` is the rebirth sequence
    to publish now when the command was a 'Node Control/Rebirth' request, else empty.
    """

    device_id: str | None
    writes: tuple[tuple[str, MetricValue], ...] = ()
    rejected: tuple[tuple[str, str], ...] = ()
    messages: tuple[MqttMessage, ...] = ()

    @property
    def rebirth(self) -> bool:
        """Whether this command triggered a rebirth (``messages`` holds it)."""
        return bool(self.messages)


class _State(Enum):
    IDLE = "idle"  # no connection prepared (before the first, after an intentional death)
    CONNECTING = "connecting"  # the Will of a new connection is set, NBIRTH not yet sent
    ONLINE = "online"  # NBIRTH sent on the current connection


class _Table:
    """The metrics of the edge node or of one device: definitions, aliases, current values."""

    def __init__(self, owner: str, defs: Iterable[MetricDef], first_alias: int) -> None:
        self.defs: dict[str, MetricDef] = {}
        self.alias: dict[str, int] = {}
        self.by_alias: dict[int, str] = {}
        self.values: dict[str, MetricValue] = {}
        for definition in defs:
            if not isinstance(definition, MetricDef):
                raise SparkplugError(f"{owner}: expected MetricDef, got {definition!r}")
            name = definition.name
            if name in self.defs:
                raise SparkplugError(f"{owner}: metric {name!r} is defined twice")
            alias = first_alias + len(self.defs)
            self.defs[name] = definition
            self.alias[name] = alias
            self.by_alias[alias] = name
            self.values[name] = definition.value

    def birth_metrics(self, timestamp_ms: int) -> list[Metric]:
        """Every metric with name, alias, datatype and current value
        (tck-id-payloads-alias-birth-requirement, tck-id-topics-nbirth-metrics)."""
        return [
            Metric(
                name=name,
                alias=self.alias[name],
                timestamp_ms=timestamp_ms,
                datatype=definition.datatype,
                value=self.values[name],
            )
            for name, definition in self.defs.items()
        ]

    def changes(
        self, owner: str, values: Mapping[str, MetricValue], timestamp_ms: int
    ) -> list[Metric]:
        """Record ``values``; the metrics whose value changed, by alias only."""
        changed: list[Metric] = []
        for name, given in values.items():
            definition = self.defs.get(name)
            if definition is None:
                raise SparkplugError(
                    f"{owner} has no metric {name!r}: a BIRTH must declare every metric ever"
                    " reported (tck-id-topics-nbirth-metric-reqs); add it to the definitions"
                )
            try:
                value = coerce_value(given, definition.datatype)
            except SparkplugError as err:
                raise SparkplugError(f"{owner}: metric {name!r}: {err}") from None
            if _same(self.values[name], value):
                continue
            self.values[name] = value
            # The datatype picks the protobuf value field; encode_payload leaves it off the
            # wire for DATA messages.
            changed.append(
                Metric(
                    alias=self.alias[name],
                    timestamp_ms=timestamp_ms,
                    datatype=definition.datatype,
                    value=value,
                )
            )
        return changed

    def resolve(self, metric: Metric) -> str | None:
        """The name of a command's metric, given by name or by alias; None if unknown."""
        if metric.name is not None:
            return metric.name if metric.name in self.defs else None
        if metric.alias is not None:
            return self.by_alias.get(metric.alias)
        return None


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _locked(
    method: Callable[Concatenate[EdgeNodeSession, _P], _R],
) -> Callable[Concatenate[EdgeNodeSession, _P], _R]:
    """Run ``method`` holding the session's lock (see :class:`EdgeNodeSession`)."""

    @functools.wraps(method)
    def wrapper(self: EdgeNodeSession, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


class EdgeNodeSession:
    """Sparkplug B 3.0 session rules of one edge node and its devices, without I/O.

    ``devices`` maps each device id to the metrics it reports; ``node_metrics`` are the
    edge node's own. Aliases are assigned once, 1, 2, 3, … over the node's metrics and then
    each device's in order, so they are unique across the whole edge node
    (tck-id-payloads-alias-uniqueness). 'bdSeq' and 'Node Control/Rebirth' carry no alias
    (tck-id-operational-behavior-data-commands-rebirth-name-aliases).

    Thread-safe: every state-changing method holds a lock, so :meth:`new_connection` may run
    in the MQTT client's Will factory (called on the connecting thread before each attempt)
    while the event loop publishes data.
    """

    def __init__(
        self,
        group_id: str,
        edge_node_id: str,
        devices: Mapping[str, Iterable[MetricDef]] | None = None,
        *,
        node_metrics: Iterable[MetricDef] = (),
    ) -> None:
        self.group_id: Final = validate_id(group_id, "group_id")
        self.edge_node_id: Final = validate_id(edge_node_id, "edge_node_id")
        owner = f"edge node {group_id}/{edge_node_id}"
        self._node = _Table(owner, node_metrics, first_alias=1)
        for reserved in (BD_SEQ, REBIRTH):
            if reserved in self._node.defs:
                raise SparkplugError(f"{owner}: metric name {reserved!r} is reserved by Sparkplug")
        next_alias = 1 + len(self._node.defs)
        self._devices: dict[str, _Table] = {}
        for device_id, defs in (devices or {}).items():
            validate_id(device_id, "device_id")
            table = _Table(f"device {device_id}", defs, first_alias=next_alias)
            self._devices[device_id] = table
            next_alias += len(table.defs)
        self._alive: dict[str, bool] = dict.fromkeys(self._devices, True)
        self._state = _State.IDLE
        self._bd_seq: int | None = None
        self._will: MqttMessage | None = None
        self._seq = 0
        self._lock = threading.RLock()

    # --- identity and state -------------------------------------------------------------

    @property
    def bd_seq(self) -> int | None:
        """bdSeq of the current connection (``None`` before :meth:`new_connection`)."""
        return self._bd_seq

    @property
    def seq(self) -> int:
        """The sequence number the next sequenced message will carry."""
        return self._seq

    @property
    def online(self) -> bool:
        """Whether the NBIRTH of the current connection has been produced."""
        return self._state is _State.ONLINE

    @property
    def device_ids(self) -> tuple[str, ...]:
        """The devices of this edge node, in definition order."""
        return tuple(self._devices)

    def alias(self, name: str, device_id: str | None = None) -> int:
        """The alias of metric ``name`` of the node (or of ``device_id``)."""
        table = self._table(device_id)
        try:
            return table.alias[name]
        except KeyError:
            raise SparkplugError(f"{self._owner(device_id)} has no metric {name!r}") from None

    def value(self, name: str, device_id: str | None = None) -> MetricValue:
        """The current (last reported) value of a metric."""
        table = self._table(device_id)
        try:
            return table.values[name]
        except KeyError:
            raise SparkplugError(f"{self._owner(device_id)} has no metric {name!r}") from None

    def topic(self, message_type: MessageType, device_id: str | None = None) -> str:
        """This edge node's topic for ``message_type`` (a device id for D* types)."""
        return EdgeTopic(self.group_id, message_type, self.edge_node_id, device_id).topic

    def subscriptions(self) -> list[tuple[str, int]]:
        """(topic, QoS) pairs to subscribe to right after connecting: NCMD, and DCMD per
        device, at QoS 1 (tck-id-message-flow-edge-node-ncmd-subscribe,
        tck-id-message-flow-device-dcmd-subscribe)."""
        topics = [(self.topic(MessageType.NCMD), 1)]
        topics += [(self.topic(MessageType.DCMD, d), 1) for d in self._devices]
        return topics

    # --- connection life ----------------------------------------------------------------

    @_locked
    def new_connection(self, *, timestamp_ms: int) -> MqttMessage:
        """Start a new MQTT connection: advance bdSeq and return the NDEATH Will to set.

        Call it before *every* CONNECT, reconnects included, and pass the result to the
        client's ``will_set``: paho re-sends the Will it already has on reconnect, which
        would repeat the old bdSeq. bdSeq starts at 0 and increases by one per CONNECT,
        255 wrapping to 0 (tck-id-topics-nbirth-bdseq-increment,
        tck-id-message-flow-edge-node-birth-publish-will-message-payload-bdSeq). The Will is
        the NDEATH on ``spBv1.0/<group>/NDEATH/<node>``
        (tck-id-message-flow-edge-node-birth-publish-will-message-topic) with QoS 1
        (tck-id-payloads-ndeath-will-message-qos), retain false
        (tck-id-payloads-ndeath-will-message-retain), no seq (tck-id-payloads-ndeath-seq)
        and the bdSeq metric (Int64) as its only metric (tck-id-topics-ndeath-payload,
        tck-id-payloads-ndeath-bdseq).
        """
        self._bd_seq = 0 if self._bd_seq is None else (self._bd_seq + 1) % _SEQ_MODULO
        self._will = self._death(timestamp_ms)
        self._state = _State.CONNECTING
        return self._will

    @_locked
    def will(self) -> MqttMessage:
        """The NDEATH Will of the current connection (the one to set before connecting)."""
        if self._will is None:
            raise SparkplugStateError(
                "no connection prepared yet: call new_connection() to get the Will first"
            )
        return self._will

    @_locked
    def on_connect(self, *, timestamp_ms: int) -> list[MqttMessage]:
        """The birth sequence to publish once the CONNECT succeeded: NBIRTH, then a DBIRTH
        for every live device (tck-id-payloads-dbirth-order).

        NBIRTH has seq 0 (tck-id-payloads-sequence-num-zero-nbirth), the bdSeq of the Will
        of this connection (tck-id-topics-nbirth-bdseq-matching,
        tck-id-payloads-nbirth-bdseq-repeat), 'Node Control/Rebirth' = false as a Boolean
        (tck-id-payloads-nbirth-rebirth-req), every node metric with name, alias, datatype
        and current value; QoS 0, not retained (tck-id-payloads-nbirth-qos,
        tck-id-payloads-nbirth-retain). Each DBIRTH takes the next seq
        (tck-id-payloads-dbirth-seq-inc).

        Raises :class:`SparkplugStateError` if :meth:`new_connection` was not called since
        the last birth: the broker would hold a Will with a stale bdSeq.
        """
        if self._state is not _State.CONNECTING:
            raise SparkplugStateError(
                f"{self._owner(None)}: on_connect() without new_connection() first: every"
                " CONNECT needs a fresh Will with the next bdSeq (set it before reconnecting)"
            )
        return self._birth_sequence(timestamp_ms)

    @_locked
    def rebirth(self, *, timestamp_ms: int) -> list[MqttMessage]:
        """A complete new birth sequence on the same connection, as a Rebirth request asks:
        data stops, NBIRTH (seq 0 again, same bdSeq as the Will) and the DBIRTHs follow
        (tck-id-operational-behavior-data-commands-rebirth-action-1, -action-2, -action-3).
        """
        self._require_online("rebirth")
        return self._birth_sequence(timestamp_ms)

    @_locked
    def disconnect(self, *, timestamp_ms: int) -> MqttMessage:
        """The NDEATH to publish just before an intentional DISCONNECT
        (tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath,
        tck-id-payloads-ndeath-will-message-publisher-disconnect-mqtt311): same bdSeq as the
        Will. The next connection needs :meth:`new_connection` again."""
        if self._bd_seq is None:
            raise SparkplugStateError("disconnect() before any new_connection()")
        death = self._death(timestamp_ms)
        self._state = _State.IDLE
        return death

    # --- data -----------------------------------------------------------------------------

    @_locked
    def node_data(
        self, values: Mapping[str, MetricValue], *, timestamp_ms: int
    ) -> MqttMessage | None:
        """Record node metric values; the NDATA carrying those that changed, or ``None``.

        Only changed metrics are sent (tck-id-topics-ndata-payload,
        tck-id-operational-behavior-data-publish-nbirth-change), by alias without name
        (tck-id-payloads-alias-data-cmd-requirement) and without datatype
        (tck-id-payloads-metric-datatype-not-req), each time-stamped
        (tck-id-payloads-name-birth-data-requirement), with the next seq
        (tck-id-payloads-ndata-seq-inc); QoS 0, not retained (tck-id-payloads-ndata-qos,
        tck-id-payloads-ndata-retain). ``None`` when nothing changed or the node is not
        online: the next NBIRTH carries the value (tck-id-payloads-ndata-order).
        """
        changed = self._node.changes(self._owner(None), values, timestamp_ms)
        if not changed or self._state is not _State.ONLINE:
            return None
        return self._data(MessageType.NDATA, None, changed, timestamp_ms)

    @_locked
    def device_data(
        self, device_id: str, values: Mapping[str, MetricValue], *, timestamp_ms: int
    ) -> MqttMessage | None:
        """Record device metric values; the DDATA carrying those that changed, or ``None``
        (nothing changed, node offline, or the device is dead: its next DBIRTH carries the
        values). Same rules as :meth:`node_data` (tck-id-topics-ddata-payload,
        tck-id-payloads-ddata-seq-inc, tck-id-payloads-ddata-qos,
        tck-id-payloads-ddata-retain, tck-id-payloads-ddata-order)."""
        table = self._table(device_id)
        changed = table.changes(self._owner(device_id), values, timestamp_ms)
        if not changed or self._state is not _State.ONLINE or not self._alive[device_id]:
            return None
        return self._data(MessageType.DDATA, device_id, changed, timestamp_ms)

    @_locked
    def device_birth(self, device_id: str, *, timestamp_ms: int) -> MqttMessage:
        """A DBIRTH for a device that came (back) to life after :meth:`device_death`."""
        self._table(device_id)
        self._require_online("device_birth")
        self._alive[device_id] = True
        return self._dbirth(device_id, timestamp_ms)

    @_locked
    def device_death(self, device_id: str, *, timestamp_ms: int) -> MqttMessage:
        """The DDEATH for a device the edge node lost (tck-id-operational-behavior-device-ddeath),
        with the next seq (tck-id-payloads-ddeath-seq-inc); QoS 0, not retained."""
        self._table(device_id)
        self._require_online("device_death")
        if not self._alive[device_id]:
            raise SparkplugStateError(f"device {device_id!r} is already dead")
        self._alive[device_id] = False
        payload = encode_payload([], seq=self._next_seq(), timestamp_ms=timestamp_ms)
        return MqttMessage(self.topic(MessageType.DDEATH, device_id), payload, 0, False)

    # --- commands -------------------------------------------------------------------------

    @_locked
    def handle_command(self, topic: str, payload: bytes, *, timestamp_ms: int) -> Command:
        """Interpret an NCMD or DCMD addressed to this edge node.

        An NCMD writing ``true`` to 'Node Control/Rebirth'
        (tck-id-operational-behavior-data-commands-ncmd-rebirth-name, ...-ncmd-rebirth-value)
        yields the rebirth sequence in :attr:`Command.messages`. Other metrics, named or by
        alias, become writes after their value is checked against the datatype of the BIRTH
        (tck-id-operational-behavior-data-commands-ncmd-metric-value,
        ...-dcmd-metric-value); unknown metrics, bdSeq, nulls and values that do not fit
        are returned as rejected. Raises :class:`SparkplugError` if the topic is not a
        command for this edge node or one of its devices, or the payload is malformed.
        """
        parsed = parse_topic(topic)
        if (
            not isinstance(parsed, EdgeTopic)
            or parsed.message_type not in (MessageType.NCMD, MessageType.DCMD)
            or (parsed.group_id, parsed.edge_node_id) != (self.group_id, self.edge_node_id)
        ):
            raise SparkplugError(
                f"{topic!r} is not an NCMD or DCMD topic of edge node"
                f" {self.group_id}/{self.edge_node_id}"
            )
        device_id = parsed.device_id
        table = self._table(device_id)
        decoded = decode_payload(payload)
        writes: list[tuple[str, MetricValue]] = []
        rejected: list[tuple[str, str]] = []
        rebirth = False
        for metric in decoded.metrics:
            label = metric.name if metric.name is not None else f"alias {metric.alias}"
            if device_id is None and metric.name in (REBIRTH, BD_SEQ):
                if metric.name == BD_SEQ:
                    rejected.append((label, "bdSeq is managed by the session, not writable"))
                    continue
                try:
                    rebirth = rebirth or apply_datatype(metric, DataType.Boolean).value is True
                except SparkplugError as err:
                    rejected.append((label, str(err)))
                continue
            name = table.resolve(metric)
            if name is None:
                rejected.append((label, f"{self._owner(device_id)} has no such metric"))
                continue
            if metric.is_null:
                rejected.append((name, "a null value cannot be written"))
                continue
            try:
                value = apply_datatype(metric, table.defs[name].datatype).value
            except SparkplugError as err:
                rejected.append((name, str(err)))
                continue
            writes.append((name, value))
        messages: list[MqttMessage] = []
        if rebirth and self._state is _State.ONLINE:
            messages = self._birth_sequence(timestamp_ms)
        return Command(device_id, tuple(writes), tuple(rejected), tuple(messages))

    # --- internals ------------------------------------------------------------------------

    def _birth_sequence(self, timestamp_ms: int) -> list[MqttMessage]:
        assert self._bd_seq is not None
        self._seq = 0
        ts = timestamp_ms
        metrics = [
            Metric(name=BD_SEQ, timestamp_ms=ts, datatype=DataType.Int64, value=self._bd_seq),
            Metric(name=REBIRTH, timestamp_ms=ts, datatype=DataType.Boolean, value=False),
            *self._node.birth_metrics(ts),
        ]
        payload = encode_payload(metrics, seq=self._next_seq(), timestamp_ms=timestamp_ms)
        messages = [MqttMessage(self.topic(MessageType.NBIRTH), payload, 0, False)]
        self._state = _State.ONLINE
        for device_id, alive in self._alive.items():
            if alive:
                messages.append(self._dbirth(device_id, timestamp_ms))
        return messages

    def _dbirth(self, device_id: str, timestamp_ms: int) -> MqttMessage:
        """DBIRTH: every device metric with name, alias, datatype and current value
        (tck-id-topics-dbirth-metrics, tck-id-payloads-dbirth-seq-inc), QoS 0, not retained
        (tck-id-payloads-dbirth-qos, tck-id-payloads-dbirth-retain)."""
        metrics = self._devices[device_id].birth_metrics(timestamp_ms)
        payload = encode_payload(metrics, seq=self._next_seq(), timestamp_ms=timestamp_ms)
        return MqttMessage(self.topic(MessageType.DBIRTH, device_id), payload, 0, False)

    def _death(self, timestamp_ms: int) -> MqttMessage:
        assert self._bd_seq is not None
        bd_seq = Metric(
            name=BD_SEQ, timestamp_ms=timestamp_ms, datatype=DataType.Int64, value=self._bd_seq
        )
        payload = encode_payload([bd_seq], seq=None, timestamp_ms=timestamp_ms)
        return MqttMessage(self.topic(MessageType.NDEATH), payload, 1, False)

    def _data(
        self,
        message_type: MessageType,
        device_id: str | None,
        metrics: list[Metric],
        timestamp_ms: int,
    ) -> MqttMessage:
        payload = encode_payload(
            metrics, seq=self._next_seq(), timestamp_ms=timestamp_ms, include_datatypes=False
        )
        return MqttMessage(self.topic(message_type, device_id), payload, 0, False)

    def _next_seq(self) -> int:
        """The seq for the next message, 255 wrapping to 0
        (tck-id-payloads-sequence-num-incrementing)."""
        seq = self._seq
        self._seq = (seq + 1) % _SEQ_MODULO
        return seq

    def _table(self, device_id: str | None) -> _Table:
        if device_id is None:
            return self._node
        try:
            return self._devices[device_id]
        except KeyError:
            known = ", ".join(self._devices) or "none"
            raise SparkplugError(
                f"edge node {self.group_id}/{self.edge_node_id} has no device {device_id!r}"
                f" (devices: {known})"
            ) from None

    def _require_online(self, what: str) -> None:
        if self._state is not _State.ONLINE:
            raise SparkplugStateError(
                f"{what}() needs the NBIRTH of the current connection: call on_connect() first"
            )

    def _owner(self, device_id: str | None) -> str:
        if device_id is None:
            return f"edge node {self.group_id}/{self.edge_node_id}"
        return f"device {self.group_id}/{self.edge_node_id}/{device_id}"


def _same(old: MetricValue, new: MetricValue) -> bool:
    """Whether a value is unchanged: same type and equal, NaN equal to NaN."""
    if type(old) is not type(new):
        return False
    if old == new:
        return True
    return isinstance(old, float) and isinstance(new, float) and math.isnan(old) and math.isnan(new)
