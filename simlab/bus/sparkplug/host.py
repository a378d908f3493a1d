"""Host-application side of Sparkplug B 3.0 sessions: sequence and bdSeq tracking.

:class:`SequenceTracker` is what the platform ingest runs over every decoded message: it
checks each edge node's ``seq`` stream and matches NDEATHs to NBIRTHs by bdSeq, and says
what it saw in a :class:`SeqReport`. It is pure (no MQTT, no clock): the Reorder Timeout
the spec suggests before asking for a rebirth (tck-id-operational-behavior-host-reordering-param,
...-reordering-start, ...-reordering-rebirth) is the caller's, which sends
:func:`rebirth_request` when it gives up waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from simlab.bus.sparkplug.codec import DataType, Metric, Payload, encode_payload
from simlab.bus.sparkplug.errors import SparkplugTopicError
from simlab.bus.sparkplug.session import BD_SEQ, REBIRTH, MqttMessage
from simlab.bus.sparkplug.topics import EdgeTopic, MessageType, StateTopic, parse_topic

__all__ = ["SeqReport", "SeqStatus", "SequenceTracker", "rebirth_request"]

_SEQ_MODULO: Final = 256


class SeqStatus(StrEnum):
    """What a message means for its edge node's session."""

    BIRTH = "birth"
    """A valid NBIRTH: the node is online with this bdSeq, seq restarts at 0."""
    IN_ORDER = "in_order"
    """A sequenced message with the expected seq."""
    GAP = "gap"
    """A sequenced message whose seq is not the expected one: messages were lost or arrive
    out of order. The data itself is still valid."""
    NO_SESSION = "no_session"
    """A sequenced message from an edge node with no current NBIRTH (the host joined late,
    or the node died): its aliases cannot be resolved; ask for a rebirth."""
    DEATH = "death"
    """An NDEATH whose bdSeq matches the current NBIRTH: the node and its devices are offline."""
    STALE_DEATH = "stale_death"
    """An NDEATH whose bdSeq does not match the current NBIRTH (e.g. the Will of an old
    connection delivered after the node reconnected): ignored."""
    NOT_SEQUENCED = "not_sequenced"
    """NCMD/DCMD: commands carry no seq (tck-id-payloads-ncmd-seq, tck-id-payloads-dcmd-seq)."""
    INVALID = "invalid"
    """A message breaking a rule the tracker checks (NBIRTH with seq ≠ 0 or without bdSeq,
    a data message without seq, a seq above 255): ignored."""


@dataclass(frozen=True, slots=True)
class SeqReport:
    """The verdict of :meth:`SequenceTracker.observe` on one message."""

    status: SeqStatus
    group_id: str
    edge_node_id: str
    message_type: MessageType
    expected: int | None = None
    received: int | None = None
    detail: str = ""

    @property
    def missing(self) -> int:
        """How many seq numbers were skipped (0 unless the status is GAP)."""
        if self.status is not SeqStatus.GAP or self.expected is None or self.received is None:
            return 0
        return (self.received - self.expected) % _SEQ_MODULO

    @property
    def accepted(self) -> bool:
        """Whether the message's content should be applied (not stale, not invalid, and its
        aliases are resolvable)."""
        return self.status not in (
            SeqStatus.STALE_DEATH,
            SeqStatus.NO_SESSION,
            SeqStatus.INVALID,
        )

    @property
    def rebirth_advised(self) -> bool:
        """Whether the host should ask this node for a rebirth (after its Reorder Timeout,
        for a GAP)."""
        return self.status in (SeqStatus.GAP, SeqStatus.NO_SESSION, SeqStatus.INVALID)


@dataclass
class _Node:
    bd_seq: int | None = None
    online: bool = False
    last_seq: int | None = None
    devices: set[str] = field(default_factory=set)
    gaps: int = 0


class SequenceTracker:
    """Validate the seq stream and bdSeq pairing of every edge node a host hears from.

    Rules checked: NBIRTH has seq 0 (tck-id-payloads-sequence-num-zero-nbirth) and a bdSeq
    metric (tck-id-payloads-nbirth-bdseq); every later message of the session has the
    previous seq + 1, 255 wrapping to 0 (tck-id-payloads-sequence-num-incrementing); every
    message but NDEATH and commands carries a seq
    (tck-id-payloads-sequence-num-always-included). An NDEATH counts only if its bdSeq
    equals the bdSeq of the node's current NBIRTH (the pairing tck-id-topics-ndeath-payload
    and tck-id-payloads-ndeath-bdseq exist for); any other NDEATH is stale and ignored.
    """

    def __init__(self) -> None:
        self._nodes: dict[tuple[str, str], _Node] = {}

    def observe(self, topic: str | EdgeTopic | StateTopic, payload: Payload) -> SeqReport:
        """Account for one decoded message and report what it means."""
        parsed = parse_topic(topic) if isinstance(topic, str) else topic
        if isinstance(parsed, StateTopic):
            raise SparkplugTopicError(
                f"{parsed.topic!r} is a host STATE topic: its JSON payload has no seq to track"
            )
        kind = parsed.message_type
        node = self._nodes.setdefault((parsed.group_id, parsed.edge_node_id), _Node())
        if kind is MessageType.NBIRTH:
            return self._birth(parsed, node, payload)
        if kind is MessageType.NDEATH:
            return self._death(parsed, node, payload)
        if not kind.has_seq:
            return _report(parsed, SeqStatus.NOT_SEQUENCED)
        seq = payload.seq
        if seq is None or seq >= _SEQ_MODULO:
            return _report(
                parsed, SeqStatus.INVALID, received=seq, detail=f"{kind} needs a seq 0..255"
            )
        if not node.online or node.last_seq is None:
            return _report(
                parsed,
                SeqStatus.NO_SESSION,
                received=seq,
                detail="no NBIRTH of the current session seen: request a rebirth",
            )
        expected = (node.last_seq + 1) % _SEQ_MODULO
        node.last_seq = seq
        if parsed.device_id is not None:
            if kind is MessageType.DBIRTH:
                node.devices.add(parsed.device_id)
            elif kind is MessageType.DDEATH:
                node.devices.discard(parsed.device_id)
        if seq != expected:
            node.gaps += 1
            return _report(
                parsed,
                SeqStatus.GAP,
                expected=expected,
                received=seq,
                detail=f"expected seq {expected}, got {seq}",
            )
        return _report(parsed, SeqStatus.IN_ORDER, expected=expected, received=seq)

    # --- queries --------------------------------------------------------------------------

    def is_online(self, group_id: str, edge_node_id: str) -> bool:
        """Whether the edge node has a current NBIRTH not ended by a matching NDEATH."""
        node = self._nodes.get((group_id, edge_node_id))
        return node is not None and node.online

    def bd_seq(self, group_id: str, edge_node_id: str) -> int | None:
        """bdSeq of the edge node's last accepted NBIRTH (``None`` if never born)."""
        node = self._nodes.get((group_id, edge_node_id))
        return node.bd_seq if node is not None else None

    def online_devices(self, group_id: str, edge_node_id: str) -> frozenset[str]:
        """Devices born (DBIRTH) and not dead (DDEATH) in the node's current session."""
        node = self._nodes.get((group_id, edge_node_id))
        return frozenset(node.devices) if node is not None and node.online else frozenset()

    def gaps(self, group_id: str, edge_node_id: str) -> int:
        """How many seq gaps this edge node has shown since the tracker started."""
        node = self._nodes.get((group_id, edge_node_id))
        return node.gaps if node is not None else 0

    # --- internals ------------------------------------------------------------------------

    @staticmethod
    def _birth(parsed: EdgeTopic, node: _Node, payload: Payload) -> SeqReport:
        bd_seq = _bd_seq(payload)
        if bd_seq is None:
            return _report(
                parsed, SeqStatus.INVALID, received=payload.seq, detail="NBIRTH without bdSeq"
            )
        if payload.seq != 0:
            return _report(
                parsed,
                SeqStatus.INVALID,
                expected=0,
                received=payload.seq,
                detail=f"NBIRTH must have seq 0, got {payload.seq}",
            )
        node.bd_seq, node.online, node.last_seq = bd_seq, True, 0
        node.devices.clear()
        return _report(parsed, SeqStatus.BIRTH, expected=0, received=0, detail=f"bdSeq {bd_seq}")

    @staticmethod
    def _death(parsed: EdgeTopic, node: _Node, payload: Payload) -> SeqReport:
        bd_seq = _bd_seq(payload)
        if bd_seq is None:
            return _report(parsed, SeqStatus.INVALID, detail="NDEATH without bdSeq")
        if not node.online or bd_seq != node.bd_seq:
            current = f"bdSeq {node.bd_seq}" if node.online else "no live session"
            return _report(
                parsed,
                SeqStatus.STALE_DEATH,
                detail=f"NDEATH with bdSeq {bd_seq} does not match the current NBIRTH"
                f" ({current}): ignored",
            )
        node.online, node.last_seq = False, None
        node.devices.clear()
        return _report(parsed, SeqStatus.DEATH, detail=f"bdSeq {bd_seq}")


def _report(
    parsed: EdgeTopic,
    status: SeqStatus,
    *,
    expected: int | None = None,
    received: int | None = None,
    detail: str = "",
) -> SeqReport:
    return SeqReport(
        status,
        parsed.group_id,
        parsed.edge_node_id,
        parsed.message_type,
        expected=expected,
        received=received,
        detail=detail,
    )


def _bd_seq(payload: Payload) -> int | None:
    metric = payload.metric(BD_SEQ)
    if metric is None or metric.is_null:
        return None
    value = metric.value
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def rebirth_request(group_id: str, edge_node_id: str, *, timestamp_ms: int) -> MqttMessage:
    """The NCMD a host sends to ask an edge node for a rebirth: metric 'Node Control/Rebirth'
    = true (tck-id-operational-behavior-data-commands-ncmd-rebirth-verb, ...-ncmd-rebirth-name,
    ...-ncmd-rebirth-value), no seq (tck-id-payloads-ncmd-seq), QoS 0, not retained
    (tck-id-payloads-ncmd-qos, tck-id-payloads-ncmd-retain)."""
    topic = EdgeTopic(group_id, MessageType.NCMD, edge_node_id).topic
    metric = Metric(name=REBIRTH, timestamp_ms=timestamp_ms, datatype=DataType.Boolean, value=True)
    payload = encode_payload([metric], seq=None, timestamp_ms=timestamp_ms, include_datatypes=True)
    return MqttMessage(topic, payload, 0, False)
