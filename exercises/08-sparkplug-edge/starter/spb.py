"""Sparkplug B payloads, ready-made: you write the edge node's session, this writes the bytes.

A Sparkplug B payload is a protobuf message. Encoding protobuf by hand is not the lesson of
this exercise (the session rules are), so this module hands you simlab's own codec, the same
one the platform and the grader decode with (simlab is installed in your environment).

    from spb import DataType, metric, payload, decode

    birth = payload([metric("bdSeq", 0, DataType.Int64)], seq=0, timestamp_ms=ts)
    data = payload([metric(alias=3, value=42, datatype=DataType.Int64)], seq=5,
                   timestamp_ms=ts, datatypes=False)
    print(decode(data))

Nothing else: topics, seq, bdSeq, births, deaths and the Will are yours to get right.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from simlab.bus.sparkplug import DataType, Metric, Payload, decode_payload, encode_payload

__all__ = ["DataType", "Metric", "Payload", "decode", "metric", "now_ms", "payload"]


def now_ms() -> int:
    """This computer's time in ms since the Unix epoch."""
    return time.time_ns() // 1_000_000


def metric(
    name: str | None = None,
    value: bool | int | float | str | None = None,
    datatype: DataType | None = None,
    *,
    alias: int | None = None,
    timestamp_ms: int | None = None,
) -> Metric:
    """One metric: a name and/or an alias, a value (None: null) and its Sparkplug datatype.

    Give the datatype in births (BIRTH metrics must carry it) and in data messages too: it
    puts the value in the right protobuf field; ``payload(..., datatypes=False)`` then leaves
    it off the wire, as the spec recommends for NDATA/DDATA.
    """
    return Metric(name=name, alias=alias, timestamp_ms=timestamp_ms, datatype=datatype, value=value)


def payload(
    metrics: Iterable[Metric],
    *,
    seq: int | None,
    timestamp_ms: int | None = None,
    datatypes: bool = True,
) -> bytes:
    """The payload bytes: ``seq`` 0..255 (None only for NDEATH), ``timestamp_ms`` (default
    now) for the payload and for every metric without its own timestamp."""
    stamp = now_ms() if timestamp_ms is None else timestamp_ms
    return encode_payload(list(metrics), seq=seq, timestamp_ms=stamp, include_datatypes=datatypes)


def decode(data: bytes) -> Payload:
    """Decode payload bytes (for commands you receive, or to check what you send)."""
    return decode_payload(data)
