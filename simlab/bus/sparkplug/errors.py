"""Errors of the Sparkplug B layer; all are :class:`ValueError` and :class:`SimlabError`.

Tree::

    SparkplugError            malformed payload bytes, a value that does not fit its datatype
    ├── SparkplugTopicError   a topic or Sparkplug id that breaks the topic namespace rules
    └── SparkplugStateError   a session method called out of order (data before birth, ...)
"""

from __future__ import annotations

from simlab.errors import SimlabError

__all__ = ["SparkplugError", "SparkplugStateError", "SparkplugTopicError"]


class SparkplugError(SimlabError, ValueError):
    """Bytes that are no valid Sparkplug B payload, or a metric value that cannot be encoded.

    Protobuf errors never escape this package: they are translated into this error, whose
    message says what is wrong and where (which metric, which field).
    """


class SparkplugTopicError(SparkplugError):
    """A topic outside the ``spBv1.0`` namespace, or a group/edge node/device/host id that
    contains a character reserved by MQTT topics (``/``, ``+``, ``#``)."""


class SparkplugStateError(SparkplugError):
    """A session operation that the Sparkplug state rules forbid at this point, e.g. data
    published before the NBIRTH of the current connection."""
