"""What the MQTT explorer knows of the bus: per-topic counts, rates and last messages.

Pure bookkeeping, fed one :class:`~simlab.bus.client.Message` at a time by the explorer's
subscriber and read by its view at a few hertz. Rates are messages per second over a
sliding window of :data:`RATE_WINDOW_S` seconds of wall-clock (monotonic) time. Sparkplug
births are decoded as they arrive, because DATA messages name their metrics by alias only:
the aliases a birth declares let the explorer show names.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from simlab.bus.client import Message
from simlab.bus.sparkplug import (
    NAMESPACE,
    DataType,
    EdgeTopic,
    MessageType,
    SparkplugError,
    decode_payload,
    parse_topic,
)

__all__ = ["RATE_WINDOW_S", "MetricName", "Summary", "TopicIndex", "TopicRecord"]

RATE_WINDOW_S: Final = 10.0
"""Length of the sliding window of the message rates, in seconds."""

_BIRTHS: Final = (MessageType.NBIRTH, MessageType.DBIRTH)


@dataclass
class TopicRecord:
    """One topic: how many messages, when they came (within the window), the last one."""

    count: int = 0
    last: Message | None = None
    arrivals: deque[float] = field(default_factory=deque)


@dataclass(frozen=True)
class Summary:
    """A topic or subtree: topics with messages, messages and rate (msg/s) in it."""

    topics: int
    messages: int
    rate: float


@dataclass(frozen=True)
class MetricName:
    """What a Sparkplug birth declared for one alias."""

    name: str
    datatype: DataType | None


class TopicIndex:
    """Counts, rates and last messages of every topic seen, and Sparkplug aliases."""

    def __init__(self, window: float = RATE_WINDOW_S) -> None:
        self.window = window
        self._topics: dict[str, TopicRecord] = {}
        self._aliases: dict[tuple[str, str], dict[int, MetricName]] = {}
        self.messages = 0
        """Messages seen since the start or the last :meth:`clear`."""
        self.births = 0
        """Sparkplug births whose aliases were learned (names of DATA metrics may change)."""

    @property
    def topics(self) -> Mapping[str, TopicRecord]:
        """Every topic seen, by name."""
        return self._topics

    def add(self, message: Message) -> None:
        """Count ``message`` and keep it as its topic's last.

        A retained message delivered again is not counted twice: amqtt sends the retained
        messages both when a client connects (at QoS 0) and when it subscribes (at the
        granted QoS); the delivery at the higher QoS is kept."""
        record = self._topics.get(message.topic)
        if record is None:
            record = self._topics[message.topic] = TopicRecord()
        elif message.retain and _same_retained(record.last, message):
            if record.last is not None and message.qos > record.last.qos:
                record.last = message
            return
        record.count += 1
        record.last = message
        arrivals = record.arrivals
        arrivals.append(message.received_monotonic)
        while arrivals[0] <= message.received_monotonic - self.window:
            arrivals.popleft()
        self.messages += 1
        if message.topic.startswith(NAMESPACE + "/"):
            self._learn_aliases(message)

    def clear(self) -> None:
        """Forget every topic and count (the aliases learned from births stay true)."""
        self._topics.clear()
        self.messages = 0

    def rate(self, topic: str, now: float) -> float:
        """Messages per second on ``topic`` over the window ending ``now``."""
        record = self._topics.get(topic)
        if record is None:
            return 0.0
        arrivals = record.arrivals
        while arrivals and arrivals[0] <= now - self.window:
            arrivals.popleft()
        return len(arrivals) / self.window

    def summaries(self, topics: Iterable[str], now: float) -> dict[str, Summary]:
        """The summary of each of ``topics`` and of every level above them."""
        totals: dict[str, tuple[int, int, float]] = {}
        for topic in topics:
            record = self._topics.get(topic)
            if record is None:
                continue
            rate = self.rate(topic, now)
            levels = topic.split("/")
            for depth in range(1, len(levels) + 1):
                prefix = "/".join(levels[:depth])
                count, messages, total = totals.get(prefix, (0, 0, 0.0))
                totals[prefix] = (count + 1, messages + record.count, total + rate)
        return {path: Summary(*values) for path, values in totals.items()}

    def edge_nodes(self) -> list[tuple[str, str]]:
        """Every Sparkplug ``(group_id, edge_node_id)`` seen on the bus."""
        nodes: set[tuple[str, str]] = set()
        for topic in self._topics:
            if topic.startswith(NAMESPACE + "/"):
                try:
                    parsed = parse_topic(topic)
                except SparkplugError:
                    continue
                if isinstance(parsed, EdgeTopic):
                    nodes.add((parsed.group_id, parsed.edge_node_id))
        return sorted(nodes)

    def aliases(self, group_id: str, edge_node_id: str) -> Mapping[int, MetricName]:
        """The metric aliases the births of an edge node (and its devices) declared."""
        return self._aliases.get((group_id, edge_node_id), {})

    def _learn_aliases(self, message: Message) -> None:
        try:
            parsed = parse_topic(message.topic)
            if not isinstance(parsed, EdgeTopic) or parsed.message_type not in _BIRTHS:
                return
            payload = decode_payload(message.payload)
        except SparkplugError:
            return  # shown as an error when the topic is selected
        key = (parsed.group_id, parsed.edge_node_id)
        if parsed.message_type is MessageType.NBIRTH:
            self._aliases[key] = {}  # a new session: aliases start afresh
        known = self._aliases.setdefault(key, {})
        for metric in payload.metrics:
            if metric.alias is not None and metric.name is not None:
                known[metric.alias] = MetricName(metric.name, metric.datatype)
        self.births += 1


def _same_retained(last: Message | None, message: Message) -> bool:
    return last is not None and last.retain and last.payload == message.payload
