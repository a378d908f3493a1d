"""The Sparkplug B 3.0 topic namespace: build and parse topics, validate ids.

Two shapes (4.1 "Topic Namespace Elements", tck-id-topic-structure)::

    spBv1.0/<group_id>/<message_type>/<edge_node_id>[/<device_id>]
    spBv1.0/STATE/<sparkplug_host_id>                       (3.0 host application state)

The namespace element is the constant ``spBv1.0`` (tck-id-topic-structure-namespace-a). Group,
edge node, device and host ids are non-empty UTF-8 strings without the MQTT-reserved
characters ``+``, ``/`` and ``#`` (tck-id-topic-structure-namespace-valid-group-id,
...-valid-edge-node-id, ...-valid-device-id); we also refuse NUL, which MQTT forbids in topics.
DBIRTH, DDEATH, DDATA and DCMD need a device id, NBIRTH, NDEATH, NDATA and NCMD must not
have one (tck-id-topic-structure-namespace-device-id-associated-message-types and
...-non-associated-message-types).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from simlab.bus.sparkplug.errors import SparkplugTopicError

__all__ = [
    "NAMESPACE",
    "STATE",
    "SUBSCRIBE_ALL",
    "EdgeTopic",
    "MessageType",
    "StateTopic",
    "device_topic",
    "node_topic",
    "parse_topic",
    "state_topic",
    "validate_id",
]

NAMESPACE: Final = "spBv1.0"
"""The namespace element of every Sparkplug B topic."""

STATE: Final = "STATE"
"""The element that marks a host application's STATE topic (``spBv1.0/STATE/<host_id>``)."""

SUBSCRIBE_ALL: Final = f"{NAMESPACE}/#"
"""A subscription to every Sparkplug B message (a host application's or a sniffer's)."""

_RESERVED: Final = ("/", "+", "#", "\x00")


class MessageType(StrEnum):
    """The message_type element of an edge node or device topic."""

    NBIRTH = "NBIRTH"
    NDEATH = "NDEATH"
    DBIRTH = "DBIRTH"
    DDEATH = "DDEATH"
    NDATA = "NDATA"
    DDATA = "DDATA"
    NCMD = "NCMD"
    DCMD = "DCMD"

    @property
    def is_device(self) -> bool:
        """Whether the topic of this message type ends with a device id."""
        return self.value.startswith("D")

    @property
    def has_seq(self) -> bool:
        """Whether the payload carries a sequence number: every message an edge node sends
        except NDEATH (tck-id-payloads-sequence-num-always-included); commands do not
        (tck-id-payloads-ncmd-seq, tck-id-payloads-dcmd-seq)."""
        return self not in (MessageType.NDEATH, MessageType.NCMD, MessageType.DCMD)


def validate_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a valid Sparkplug id, else raise :class:`SparkplugTopicError`.

    ``what`` names the id in the message ("group_id", "edge_node_id", ...).
    """
    if not isinstance(value, str):
        raise SparkplugTopicError(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise SparkplugTopicError(f"{what} must not be empty")
    bad = sorted({c for c in value if c in _RESERVED})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise SparkplugTopicError(
            f"{what} {value!r} contains {shown}: Sparkplug ids cannot contain '/', '+', '#'"
            " (they are MQTT topic separators and wildcards)"
        )
    return value


@dataclass(frozen=True, slots=True)
class EdgeTopic:
    """The topic of a message from or to an edge node (``device_id`` for device messages)."""

    group_id: str
    message_type: MessageType
    edge_node_id: str
    device_id: str | None = None

    def __post_init__(self) -> None:
        validate_id(self.group_id, "group_id")
        validate_id(self.edge_node_id, "edge_node_id")
        try:
            kind = MessageType(self.message_type)
        except ValueError:
            known = ", ".join(m.value for m in MessageType)
            raise SparkplugTopicError(
                f"unknown Sparkplug message type {self.message_type!r}: expected one of {known}"
            ) from None
        object.__setattr__(self, "message_type", kind)
        if kind.is_device:
            if self.device_id is None:
                raise SparkplugTopicError(f"{kind} topics need a device_id")
            validate_id(self.device_id, "device_id")
        elif self.device_id is not None:
            raise SparkplugTopicError(f"{kind} topics have no device_id (got {self.device_id!r})")

    @property
    def topic(self) -> str:
        """The MQTT topic string."""
        parts = [NAMESPACE, self.group_id, self.message_type.value, self.edge_node_id]
        if self.device_id is not None:
            parts.append(self.device_id)
        return "/".join(parts)

    def __str__(self) -> str:
        return self.topic


@dataclass(frozen=True, slots=True)
class StateTopic:
    """The STATE topic of a Sparkplug host application (3.0 form)."""

    host_id: str

    def __post_init__(self) -> None:
        validate_id(self.host_id, "host_id")

    @property
    def topic(self) -> str:
        """The MQTT topic string."""
        return f"{NAMESPACE}/{STATE}/{self.host_id}"

    def __str__(self) -> str:
        return self.topic


def node_topic(group_id: str, message_type: MessageType | str, edge_node_id: str) -> str:
    """``spBv1.0/<group_id>/<message_type>/<edge_node_id>`` for an N* message type."""
    return EdgeTopic(group_id, MessageType(_known(message_type)), edge_node_id).topic


def device_topic(
    group_id: str, message_type: MessageType | str, edge_node_id: str, device_id: str
) -> str:
    """``spBv1.0/<group_id>/<message_type>/<edge_node_id>/<device_id>`` for a D* type."""
    return EdgeTopic(group_id, MessageType(_known(message_type)), edge_node_id, device_id).topic


def state_topic(host_id: str) -> str:
    """``spBv1.0/STATE/<host_id>``."""
    return StateTopic(host_id).topic


def parse_topic(topic: str) -> EdgeTopic | StateTopic:
    """Parse a Sparkplug B topic; raise :class:`SparkplugTopicError` saying what is wrong."""
    if not isinstance(topic, str):
        raise SparkplugTopicError(f"a topic is a string, not {type(topic).__name__}")
    parts = topic.split("/")
    if parts[0] != NAMESPACE:
        raise SparkplugTopicError(
            f"{topic!r} is not a Sparkplug B topic: it must start with {NAMESPACE + '/'!r}"
        )
    if len(parts) == 3 and parts[1] == STATE:
        return StateTopic(parts[2])
    if len(parts) not in (4, 5):
        raise SparkplugTopicError(
            f"{topic!r} has {len(parts)} levels: expected"
            f" {NAMESPACE}/<group_id>/<message_type>/<edge_node_id>[/<device_id>]"
            f" or {NAMESPACE}/{STATE}/<host_id>"
        )
    device_id = parts[4] if len(parts) == 5 else None
    return EdgeTopic(parts[1], MessageType(_known(parts[2])), parts[3], device_id)


def _known(message_type: MessageType | str) -> str:
    if message_type not in MessageType.__members__:
        known = ", ".join(m.value for m in MessageType)
        raise SparkplugTopicError(
            f"unknown Sparkplug message type {message_type!r}: expected one of {known}"
        )
    return str(message_type)
