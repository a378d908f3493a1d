"""Sparkplug B 3.0 for simlab: payload codec, topic namespace, edge node and host sessions.

Everything here is pure (no MQTT client, no clock): the MQTT adapter publishes what these
modules produce. Modules:

- :mod:`~simlab.bus.sparkplug.codec`: :func:`encode_payload`, :func:`decode_payload`, the
  :class:`Metric`/:class:`Payload` dataclasses and :class:`DataType`.
- :mod:`~simlab.bus.sparkplug.topics`: build, parse and validate ``spBv1.0/...`` topics.
- :mod:`~simlab.bus.sparkplug.session`: :class:`EdgeNodeSession`, the edge node's rules.
- :mod:`~simlab.bus.sparkplug.host`: :class:`SequenceTracker` for the platform ingest.
- :mod:`~simlab.bus.sparkplug.schema`: the protobuf schema, built at run time (private).
"""

from simlab.bus.sparkplug.codec import (
    ArrayValue,
    DataType,
    Metric,
    MetricValue,
    Payload,
    ScalarValue,
    apply_datatype,
    coerce_value,
    datatype_for_tag_type,
    decode_payload,
    encode_payload,
    infer_datatype,
)
from simlab.bus.sparkplug.errors import SparkplugError, SparkplugStateError, SparkplugTopicError
from simlab.bus.sparkplug.host import SeqReport, SeqStatus, SequenceTracker, rebirth_request
from simlab.bus.sparkplug.session import (
    BD_SEQ,
    REBIRTH,
    Command,
    EdgeNodeSession,
    MetricDef,
    MqttMessage,
)
from simlab.bus.sparkplug.topics import (
    NAMESPACE,
    SUBSCRIBE_ALL,
    EdgeTopic,
    MessageType,
    StateTopic,
    device_topic,
    node_topic,
    parse_topic,
    state_topic,
    validate_id,
)

__all__ = [
    "BD_SEQ",
    "NAMESPACE",
    "REBIRTH",
    "SUBSCRIBE_ALL",
    "ArrayValue",
    "Command",
    "DataType",
    "EdgeNodeSession",
    "EdgeTopic",
    "MessageType",
    "Metric",
    "MetricDef",
    "MetricValue",
    "MqttMessage",
    "Payload",
    "ScalarValue",
    "SeqReport",
    "SeqStatus",
    "SequenceTracker",
    "SparkplugError",
    "SparkplugStateError",
    "SparkplugTopicError",
    "StateTopic",
    "apply_datatype",
    "coerce_value",
    "datatype_for_tag_type",
    "decode_payload",
    "device_topic",
    "encode_payload",
    "infer_datatype",
    "node_topic",
    "parse_topic",
    "rebirth_request",
    "state_topic",
    "validate_id",
]
