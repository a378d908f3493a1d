"""Unified Namespace (UNS) conventions: ISA-95 topic paths and the JSON value payload.

Topic: one lowercase segment per ISA-95 level, then the tag::

    <enterprise>/<site>/<area>/<line>/<cell>/<asset>/<tag>
    acme/lyon/packaging/line-1/filler/pump-3/outlet_pressure

Each segment matches ``[a-z0-9_-]+``: no MQTT separators or wildcards, no spaces, no case
ambiguity. Payload: one compact UTF-8 JSON object per message, at most 64 KiB::

    {"value": 2.41, "unit": "bar", "ts": "2026-03-01T08:15:02.250Z", "ts_ms": 1772352902250,
     "quality": "Good", "source": "plc-1"}

``value`` is a JSON scalar (number, string, boolean) or ``null``; ``unit`` a string or
``null``; ``ts`` the ISO-8601 UTC time with milliseconds and ``Z``, always equal to
``ts_ms`` (ms since the Unix epoch); ``quality`` an OPC UA status code name whose severity
prefix is ``Good``, ``Uncertain`` or ``Bad`` (``Good``, ``BadSensorFailure``,
``UncertainLastUsableValue``, ...); ``source`` who measured or computed the value. A value
that is not a finite number (NaN, ±Infinity) is published as ``null`` with quality ``Bad``.
Messages are published retained at QoS 1 (:data:`UNS_RETAIN`, :data:`UNS_QOS`), so a new
subscriber gets every tag's last value at once.

:class:`UnsMessage` is the contract: :meth:`UnsMessage.from_json` validates a payload
strictly. :func:`parse_uns_payload` gives the same fields without building the object, for
the platform's ingest; both accept the common well-formed payload through a fast path (see
:func:`_fast_fields`) and leave everything else, errors included, to the strict parser.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, NamedTuple, TypeAlias

from simlab.errors import SimlabError

__all__ = [
    "ISA95_LEVELS",
    "MAX_PAYLOAD_BYTES",
    "UNS_QOS",
    "UNS_RETAIN",
    "UnsFields",
    "UnsMessage",
    "UnsPath",
    "UnsPayloadError",
    "UnsTopicError",
    "UnsValue",
    "format_ts",
    "parse_ts",
    "parse_uns_payload",
    "parse_uns_topic",
    "quality_severity",
    "uns_topic",
]

UNS_QOS: Final = 1
"""MQTT QoS of every UNS publication."""

UNS_RETAIN: Final = True
"""UNS publications are retained: the broker keeps each tag's last value."""

MAX_PAYLOAD_BYTES: Final = 64 * 1024
"""Largest UNS payload accepted or produced (64 KiB)."""

ISA95_LEVELS: Final = ("enterprise", "site", "area", "line", "cell", "asset")
"""The ISA-95 levels of a UNS path, top down; the tag follows them."""

UnsValue: TypeAlias = bool | int | float | str | None
"""A UNS value: a JSON scalar or null."""

_SEGMENT: Final = re.compile(r"[a-z0-9_-]+")
_QUALITY: Final = re.compile(r"(Good|Uncertain|Bad)[A-Za-z0-9]*")
_TS: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})Z")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TS_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_FIELDS: Final = ("value", "unit", "ts", "ts_ms", "quality", "source")


class UnsTopicError(SimlabError, ValueError):
    """A UNS topic or path segment that breaks the ISA-95 path convention."""


class UnsPayloadError(SimlabError, ValueError):
    """A UNS payload that breaks the JSON contract; ``field`` names the culprit
    (``"payload"`` when the whole message is at fault: not JSON, too large, ...)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"UNS payload: {field}: {message}")


# --- topics -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnsPath:
    """An ISA-95 UNS path down to one tag; ``topic`` is its MQTT topic."""

    enterprise: str
    site: str
    area: str
    line: str
    cell: str
    asset: str
    tag: str

    def __post_init__(self) -> None:
        for level, segment in zip((*ISA95_LEVELS, "tag"), self.segments, strict=True):
            _check_segment(segment, level)

    @property
    def segments(self) -> tuple[str, str, str, str, str, str, str]:
        """The seven segments, top down."""
        return (self.enterprise, self.site, self.area, self.line, self.cell, self.asset, self.tag)

    @property
    def topic(self) -> str:
        """``enterprise/site/area/line/cell/asset/tag``."""
        return "/".join(self.segments)

    def __str__(self) -> str:
        return self.topic


def uns_topic(*segments: str) -> str:
    """The UNS topic of a tag: ``uns_topic(enterprise, site, area, line, cell, asset, tag)``.

    Raises :class:`UnsTopicError` naming the level of a bad segment, or saying how many
    segments are expected.
    """
    expected = len(ISA95_LEVELS) + 1
    if len(segments) != expected:
        raise UnsTopicError(
            f"a UNS topic has {expected} segments ({'/'.join((*ISA95_LEVELS, 'tag'))}),"
            f" got {len(segments)}: {segments!r}"
        )
    return UnsPath(*segments).topic


def parse_uns_topic(topic: str) -> UnsPath:
    """Split and validate a UNS topic; raise :class:`UnsTopicError` saying what is wrong."""
    if not isinstance(topic, str):
        raise UnsTopicError(f"a topic is a string, not {type(topic).__name__}")
    parts = topic.split("/")
    expected = len(ISA95_LEVELS) + 1
    if len(parts) != expected:
        raise UnsTopicError(
            f"{topic!r} has {len(parts)} levels; a UNS topic has {expected}:"
            f" {'/'.join((*ISA95_LEVELS, 'tag'))}"
        )
    return UnsPath(*parts)


def _check_segment(segment: object, level: str) -> None:
    if not isinstance(segment, str):
        raise UnsTopicError(f"{level} must be a string, not {type(segment).__name__}")
    if not _SEGMENT.fullmatch(segment):
        hint = " (use lowercase)" if segment.lower() != segment else ""
        raise UnsTopicError(
            f"{level} segment {segment!r} is invalid: use only a-z, 0-9, '_' and '-'{hint}"
        )


# --- quality and time -----------------------------------------------------------------------


def quality_severity(quality: str) -> Literal["Good", "Uncertain", "Bad"]:
    """The severity of an OPC UA status name: ``Good``, ``Uncertain`` or ``Bad``."""
    match = _QUALITY.fullmatch(quality) if isinstance(quality, str) else None
    if match is None:
        raise UnsPayloadError(
            "quality",
            f"{quality!r} is not an OPC UA status name: it starts with Good, Uncertain or Bad"
            " (e.g. 'Good', 'UncertainLastUsableValue', 'BadSensorFailure')",
        )
    severity = match.group(1)
    if severity == "Good":
        return "Good"
    return "Uncertain" if severity == "Uncertain" else "Bad"


def format_ts(ts_ms: int) -> str:
    """``ts_ms`` (ms since the Unix epoch) as ISO-8601 UTC with milliseconds and ``Z``."""
    _check_ts_ms(ts_ms)
    moment = _EPOCH + timedelta(milliseconds=ts_ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ts_ms % 1000:03d}Z"


def parse_ts(text: str) -> int:
    """Milliseconds since the epoch of ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (exactly that form)."""
    match = _TS.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise UnsPayloadError(
            "ts", f"{text!r} is not ISO-8601 UTC with milliseconds, e.g. 2026-03-01T08:15:02.250Z"
        )
    year, month, day, hour, minute, second, milli = (int(g) for g in match.groups())
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as err:
        raise UnsPayloadError("ts", f"{text!r} is not a valid date/time: {err}") from None
    return (moment - _EPOCH) // timedelta(milliseconds=1) + milli


def _check_ts_ms(ts_ms: object) -> None:
    if isinstance(ts_ms, bool) or not isinstance(ts_ms, int):
        raise UnsPayloadError("ts_ms", f"must be an integer, not {type(ts_ms).__name__}")
    if not 0 <= ts_ms <= _MAX_TS_MS:
        raise UnsPayloadError("ts_ms", f"{ts_ms} is outside 1970-01-01 .. 9999-12-31")


# --- payload --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnsMessage:
    """One UNS value message; validated at construction (raises :class:`UnsPayloadError`).

    A non-finite float value (NaN, ±inf) becomes ``None`` with quality ``Bad`` (a ``Bad…``
    quality already given is kept). A ``None`` value needs a quality that is not Good.
    """

    value: UnsValue
    unit: str | None
    ts_ms: int
    source: str
    quality: str = "Good"

    def __post_init__(self) -> None:
        value = self.value
        if not (value is None or isinstance(value, bool | int | float | str)):
            raise UnsPayloadError(
                "value", f"must be a number, string, boolean or null, not {_json_type(value)}"
            )
        severity = quality_severity(self.quality)
        if isinstance(value, float) and not math.isfinite(value):
            object.__setattr__(self, "value", None)
            if severity != "Bad":
                object.__setattr__(self, "quality", "Bad")
        elif value is None and severity == "Good":
            raise UnsPayloadError(
                "value", "is null but quality is Good: a missing value has quality Bad/Uncertain"
            )
        if self.unit is not None and (not isinstance(self.unit, str) or not self.unit):
            raise UnsPayloadError("unit", f"must be a non-empty string or null, not {self.unit!r}")
        _check_ts_ms(self.ts_ms)
        if not isinstance(self.source, str) or not self.source:
            raise UnsPayloadError("source", f"must be a non-empty string, not {self.source!r}")

    @property
    def ts(self) -> str:
        """The timestamp as ISO-8601 UTC with milliseconds and ``Z``."""
        return format_ts(self.ts_ms)

    @property
    def severity(self) -> Literal["Good", "Uncertain", "Bad"]:
        """``Good``, ``Uncertain`` or ``Bad``."""
        return quality_severity(self.quality)

    def to_json(self) -> bytes:
        """The compact UTF-8 JSON payload (keys in contract order)."""
        document = {
            "value": self.value,
            "unit": self.unit,
            "ts": self.ts,
            "ts_ms": self.ts_ms,
            "quality": self.quality,
            "source": self.source,
        }
        data = json.dumps(
            document, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
        if len(data) > MAX_PAYLOAD_BYTES:
            raise UnsPayloadError(
                "value", f"the payload would be {len(data)} bytes, over {MAX_PAYLOAD_BYTES}"
            )
        return data

    @classmethod
    def from_json(cls, data: bytes | bytearray | memoryview | str) -> UnsMessage:
        """Parse and strictly validate a UNS payload.

        Raises :class:`UnsPayloadError` naming the field: ``payload`` for oversized (>64 KiB),
        non-UTF-8, non-JSON or non-object data; a field's name when it is missing, unknown,
        duplicated, of the wrong type or inconsistent (``ts`` vs ``ts_ms``). A NaN or
        infinite value becomes ``null`` with quality ``Bad``.
        """
        raw = _as_bytes(data)
        fields = _fast_fields(raw)
        if fields is None:
            return _parse_strict(raw)
        value, unit, ts_ms, quality, source = fields
        return cls(value=value, unit=unit, ts_ms=ts_ms, source=source, quality=quality)


class UnsFields(NamedTuple):
    """The fields of a valid UNS payload, as :meth:`UnsMessage.from_json` would give them."""

    value: UnsValue
    unit: str | None
    ts_ms: int
    quality: str
    source: str


def parse_uns_payload(data: bytes | bytearray | memoryview | str) -> UnsFields:
    """Validate a UNS payload like :meth:`UnsMessage.from_json` and return its fields.

    Same contract, same :class:`UnsPayloadError` (field and message) for the same input;
    only cheaper: a well-formed payload costs about a third of ``from_json`` because no
    :class:`UnsMessage` is built and validated a second time. The platform's ingest calls it
    for every message.
    """
    raw = _as_bytes(data)
    fields = _fast_fields(raw)
    if fields is None:
        message = _parse_strict(raw)
        fields = UnsFields(
            message.value, message.unit, message.ts_ms, message.quality, message.source
        )
    return fields


def _as_bytes(data: bytes | bytearray | memoryview | str) -> bytes:
    if type(data) is bytes:
        return data
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def _parse_strict(raw: bytes) -> UnsMessage:
    """The reference parser: every check in order, each failure worded for the user."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise UnsPayloadError(
            "payload", f"{len(raw)} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UnsPayloadError("payload", f"not UTF-8 ({err.reason} at byte {err.start})") from None
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as dup:
        raise UnsPayloadError(dup.key, "appears more than once") from None
    except json.JSONDecodeError as err:
        raise UnsPayloadError(
            "payload", f"not JSON: {err.msg} (line {err.lineno}, column {err.colno})"
        ) from None
    except ValueError as err:  # e.g. an integer of more than 4,300 digits
        raise UnsPayloadError("payload", f"not a usable JSON document: {err}") from None
    except RecursionError:
        raise UnsPayloadError("payload", "not a flat JSON object") from None
    if not isinstance(document, dict):
        raise UnsPayloadError("payload", f"must be a JSON object, not {type(document).__name__}")
    for key in document:
        if key not in _FIELDS:
            raise UnsPayloadError(key, f"unknown field (allowed: {', '.join(_FIELDS)})")
    for key in _FIELDS:
        if key not in document:
            raise UnsPayloadError(key, "missing")
    _expect_string(document, "unit", nullable=True)
    _expect_string(document, "ts")
    _expect_string(document, "quality")
    _expect_string(document, "source")
    ts_ms = document["ts_ms"]
    _check_ts_ms(ts_ms)
    if parse_ts(document["ts"]) != ts_ms:
        raise UnsPayloadError("ts", f"{document['ts']!r} is not the same instant as ts_ms {ts_ms}")
    return UnsMessage(
        value=document["value"],
        unit=document["unit"],
        ts_ms=ts_ms,
        source=document["source"],
        quality=document["quality"],
    )


# --- fast path --------------------------------------------------------------------------------

# json's C scanner without object_pairs_hook (it builds the dict itself) and without the
# whitespace regexes of JSONDecoder.decode (leading or trailing blanks: the strict path).
# JSONDecoder.__init__ sets scan_once; typeshed does not declare it.
_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_FIELD_SET: Final = frozenset(_FIELDS)
_CACHE_LIMIT: Final = 4096
_MILLIS: Final = tuple(f".{milli:03d}Z" for milli in range(1000))
_ts_prefixes: dict[int, str] = {}  # whole second since the epoch -> "YYYY-MM-DDTHH:MM:SS"
_qualities: set[str] = set()  # quality names that passed _QUALITY


def _fast_fields(raw: bytes) -> UnsFields | None:
    """The fields of a well-formed payload with a non-null finite value, else ``None``.

    Why: :func:`_parse_strict` costs ~9 µs a message (a Python ``object_pairs_hook`` per
    object to catch duplicate keys, a regex and ``datetime`` arithmetic for ``ts``, then
    :class:`UnsMessage` validating everything again), a large share of the platform's
    ingest. This path only *accepts*: whatever it is not sure of (any error, a null or
    non-finite value, a backslash escape...) returns ``None`` and the strict parser
    decides, so both accept the same payloads and every error keeps its wording.

    - the plain C decoder, which keeps the last of duplicated keys silently; duplicates
      are ruled out by counting colons instead: without backslash escapes, the raw bytes
      hold one colon per key/value pair (at any depth) plus the colons inside strings. Six
      known keys and as many raw colons as ``6 +`` the colons of the six values' strings
      leave no room for a seventh pair or a nested object;
    - ``ts`` is compared with the canonical text of ``ts_ms`` (the only string the strict
      ``parse_ts`` maps to that instant), built from a per-second cache;
    - quality names already seen skip the regex.
    """
    if len(raw) > MAX_PAYLOAD_BYTES or b"\\" in raw:
        return None
    try:
        text = raw.decode("utf-8")
        document, end = _SCAN(text, 0)
    except (StopIteration, ValueError, RecursionError):  # not UTF-8, not JSON, whitespace...
        return None
    if end != len(text) or type(document) is not dict or document.keys() != _FIELD_SET:
        return None
    value = document["value"]
    unit = document["unit"]
    ts = document["ts"]
    ts_ms = document["ts_ms"]
    quality = document["quality"]
    source = document["source"]
    if type(ts_ms) is not int or not 0 <= ts_ms <= _MAX_TS_MS:
        return None
    if type(source) is not str or not source or type(ts) is not str:
        return None
    if type(quality) is not str or (quality not in _qualities and not _known_quality(quality)):
        return None
    colons = 8 + source.count(":")  # 6 pairs, and HH:MM:SS in ts
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            return None  # becomes null/Bad: the strict path does it
    elif kind is str:
        colons += value.count(":")
    elif kind is not int and kind is not bool:
        return None  # null (its quality must not be Good), arrays, objects
    if unit is not None:
        if type(unit) is not str or not unit:
            return None
        colons += unit.count(":")
    if raw.count(b":") != colons or ts != _canonical_ts(ts_ms):
        return None
    return UnsFields(value, unit, ts_ms, quality, source)


def _known_quality(quality: str) -> bool:
    if _QUALITY.fullmatch(quality) is None:
        return False
    if len(_qualities) < _CACHE_LIMIT:
        _qualities.add(quality)
    return True


def _canonical_ts(ts_ms: int) -> str:
    """:func:`format_ts` of ``ts_ms`` (in range), with the date and time cached per second."""
    second, milli = divmod(ts_ms, 1000)
    prefix = _ts_prefixes.get(second)
    if prefix is None:
        if len(_ts_prefixes) >= _CACHE_LIMIT:
            _ts_prefixes.clear()
        prefix = format_ts(second * 1000)[:-5]
        _ts_prefixes[second] = prefix
    return prefix + _MILLIS[milli]


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _DuplicateKey(key)
        document[key] = value
    return document


def _expect_string(document: dict[str, Any], key: str, *, nullable: bool = False) -> None:
    value = document[key]
    if value is None and nullable:
        return
    if not isinstance(value, str):
        wanted = "string or null" if nullable else "string"
        raise UnsPayloadError(key, f"must be a {wanted}, not {_json_type(value)}")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__
