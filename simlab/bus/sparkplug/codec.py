"""Sparkplug B 3.0 payload codec: our frozen dataclasses to wire bytes and back.

The wire format is the protobuf schema of :mod:`simlab.bus.sparkplug.schema`; no protobuf
object ever leaves this module, and no protobuf exception either: every malformed input
raises :class:`~simlab.bus.sparkplug.errors.SparkplugError` naming what is wrong and where.

Value encoding (Sparkplug 3.0, 6.4.16 "Data Types" and 6.4.17 "Datatype Details"):

=================================  ===============  ==========================================
datatype                            protobuf field   notes
=================================  ===============  ==========================================
Int8, Int16, Int32                  ``int_value``    two's complement, sign-extended to 32 bits
UInt8, UInt16, UInt32               ``int_value``    UInt32 is also *accepted* in ``long_value``
Int64                               ``long_value``   two's complement in 64 bits
UInt64, DateTime                    ``long_value``   DateTime = ms since the Unix epoch, UTC
Float / Double                      ``float_value`` / ``double_value``
Boolean                             ``boolean_value``
String, Text, UUID                  ``string_value``
Bytes, File                         ``bytes_value``
Int8Array … DoubleArray,            ``bytes_value``  little-endian packed elements
DateTimeArray, StringArray                           (strings NUL-terminated)
=================================  ===============  ==========================================

Signed integers are decoded by masking to the datatype's width first, so both the usual
32-bit sign extension (``-1`` as Int16 sent as ``0xFFFFFFFF``) and the narrower form some
devices send (``0xFFFF``) decode to ``-1``. UInt32 in ``long_value`` is accepted because
the reference implementation historically sent it there; we encode it in ``int_value`` as
the specification says.

Not supported (decoding raises :class:`SparkplugError` naming the metric): DataSet,
Template, PropertySet, PropertySetList, BooleanArray and extension values. Metric
properties and metadata are not carried by :class:`Metric` and are ignored when decoding.

A metric may arrive without a datatype: the spec says DATA and CMD messages SHOULD NOT carry
it (tck-id-payloads-metric-datatype-not-req). Such a metric decodes with ``datatype=None``
and the *raw* value of its protobuf field; :func:`apply_datatype` then gives it the datatype
recorded from the BIRTH (reinterpreting e.g. ``0xFFFFFFFF`` as Int32 ``-1``).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any, Final, TypeAlias, cast

from simlab.bus.sparkplug.errors import SparkplugError
from simlab.bus.sparkplug.schema import DECODE_ERRORS, PAYLOAD_CLASS, unknown_field_numbers

__all__ = [
    "ArrayValue",
    "DataType",
    "Metric",
    "MetricValue",
    "Payload",
    "ScalarValue",
    "apply_datatype",
    "coerce_value",
    "datatype_for_tag_type",
    "decode_payload",
    "encode_payload",
    "infer_datatype",
]


class DataType(IntEnum):
    """Sparkplug B datatypes with the specification's names and enum values (6.4.16)."""

    Unknown = 0
    Int8 = 1
    Int16 = 2
    Int32 = 3
    Int64 = 4
    UInt8 = 5
    UInt16 = 6
    UInt32 = 7
    UInt64 = 8
    Float = 9
    Double = 10
    Boolean = 11
    String = 12
    DateTime = 13
    Text = 14
    UUID = 15
    DataSet = 16
    Bytes = 17
    File = 18
    Template = 19
    PropertySet = 20
    PropertySetList = 21
    Int8Array = 22
    Int16Array = 23
    Int32Array = 24
    Int64Array = 25
    UInt8Array = 26
    UInt16Array = 27
    UInt32Array = 28
    UInt64Array = 29
    FloatArray = 30
    DoubleArray = 31
    BooleanArray = 32
    StringArray = 33
    DateTimeArray = 34


ScalarValue: TypeAlias = bool | int | float | str | bytes
"""A single value: bool, int, float, str (String/Text/UUID) or bytes (Bytes/File)."""

ArrayValue: TypeAlias = tuple[int, ...] | tuple[float, ...] | tuple[str, ...]
"""The value of an array datatype, always a tuple (lists are converted)."""

MetricValue: TypeAlias = ScalarValue | ArrayValue | None
"""Any metric value; ``None`` is a null value (``is_null`` on the wire)."""

_MASK32: Final = 0xFFFF_FFFF
_MASK64: Final = 0xFFFF_FFFF_FFFF_FFFF
_FLOAT32_MAX: Final = 3.4028234663852886e38

_SIGNED_BITS: Final = {DataType.Int8: 8, DataType.Int16: 16, DataType.Int32: 32, DataType.Int64: 64}
_UNSIGNED_BITS: Final = {
    DataType.UInt8: 8,
    DataType.UInt16: 16,
    DataType.UInt32: 32,
    DataType.UInt64: 64,
    DataType.DateTime: 64,
}
_STRING_TYPES: Final = frozenset({DataType.String, DataType.Text, DataType.UUID})
_BYTES_TYPES: Final = frozenset({DataType.Bytes, DataType.File})
_FLOAT_TYPES: Final = frozenset({DataType.Float, DataType.Double})

# Packed little-endian arrays: element struct format.
_ARRAY_FORMAT: Final = {
    DataType.Int8Array: "b",
    DataType.Int16Array: "h",
    DataType.Int32Array: "i",
    DataType.Int64Array: "q",
    DataType.UInt8Array: "B",
    DataType.UInt16Array: "H",
    DataType.UInt32Array: "I",
    DataType.UInt64Array: "Q",
    DataType.FloatArray: "f",
    DataType.DoubleArray: "d",
    DataType.DateTimeArray: "Q",
}
_ARRAY_ELEMENT: Final = {
    DataType.Int8Array: DataType.Int8,
    DataType.Int16Array: DataType.Int16,
    DataType.Int32Array: DataType.Int32,
    DataType.Int64Array: DataType.Int64,
    DataType.UInt8Array: DataType.UInt8,
    DataType.UInt16Array: DataType.UInt16,
    DataType.UInt32Array: DataType.UInt32,
    DataType.UInt64Array: DataType.UInt64,
    DataType.FloatArray: DataType.Float,
    DataType.DoubleArray: DataType.Double,
    DataType.DateTimeArray: DataType.DateTime,
    DataType.StringArray: DataType.String,
}

_UNSUPPORTED: Final = frozenset(
    {
        DataType.Unknown,
        DataType.DataSet,
        DataType.Template,
        DataType.PropertySet,
        DataType.PropertySetList,
        DataType.BooleanArray,
    }
)

# The protobuf value field(s) each supported datatype may arrive in; the first is the one
# we encode into.
_FIELDS: Final[dict[DataType, tuple[str, ...]]] = {
    **{dt: ("int_value",) for dt in (DataType.Int8, DataType.Int16, DataType.Int32)},
    **{dt: ("int_value",) for dt in (DataType.UInt8, DataType.UInt16)},
    DataType.UInt32: ("int_value", "long_value"),
    **{dt: ("long_value",) for dt in (DataType.Int64, DataType.UInt64, DataType.DateTime)},
    DataType.Float: ("float_value",),
    DataType.Double: ("double_value",),
    DataType.Boolean: ("boolean_value",),
    **{dt: ("string_value",) for dt in _STRING_TYPES},
    **{dt: ("bytes_value",) for dt in _BYTES_TYPES},
    **{dt: ("bytes_value",) for dt in _ARRAY_ELEMENT},
}

_TAG_TYPES: Final = {
    "bool": DataType.Boolean,
    "int": DataType.Int64,
    "float": DataType.Double,
    "string": DataType.String,
    "str": DataType.String,
}


@dataclass(frozen=True, slots=True)
class Metric:
    """One Sparkplug metric as simlab sees it.

    ``name`` and/or ``alias`` identify it (BIRTHs carry both, DATA and CMD messages only the
    alias). ``datatype=None`` means "not on the wire" (a DATA/CMD metric) or "infer it" when
    encoding. ``value=None`` is a null value and sets ``is_null``. With a datatype, the value
    is checked and normalised at construction: an int for a Double becomes a float, a list
    for an array datatype becomes a tuple; a value that does not fit raises
    :class:`SparkplugError`.
    """

    name: str | None = None
    alias: int | None = None
    timestamp_ms: int | None = None
    datatype: DataType | None = None
    value: MetricValue = None
    is_null: bool = False

    def __post_init__(self) -> None:
        where = _where(self.name, self.alias)
        if self.is_null and self.value is not None:
            raise SparkplugError(f"{where}: is_null is set but the value is {self.value!r}")
        if self.value is None and not self.is_null:
            object.__setattr__(self, "is_null", True)
        if self.alias is not None and not _is_uint(self.alias, 64):
            raise SparkplugError(f"{where}: alias must be an integer 0..2^64-1, not {self.alias!r}")
        if self.timestamp_ms is not None and not _is_uint(self.timestamp_ms, 64):
            raise SparkplugError(
                f"{where}: timestamp_ms must be an integer 0..2^64-1, not {self.timestamp_ms!r}"
            )
        if self.datatype is not None:
            datatype = _as_datatype(self.datatype, where)
            object.__setattr__(self, "datatype", datatype)
            if self.value is not None:
                value = _coerce(self.value, datatype, raw=False, where=where)
                object.__setattr__(self, "value", value)
        elif isinstance(self.value, list):
            object.__setattr__(self, "value", tuple(self.value))
        elif isinstance(self.value, bytearray | memoryview):
            object.__setattr__(self, "value", bytes(self.value))


@dataclass(frozen=True, slots=True)
class Payload:
    """A decoded Sparkplug B payload.

    ``timestamp_ms`` and ``seq`` are ``None`` when absent on the wire (an NDEATH has no
    ``seq``). ``uuid`` and ``body`` are rarely used optional fields, kept for completeness.
    """

    timestamp_ms: int | None
    seq: int | None
    metrics: tuple[Metric, ...] = ()
    uuid: str | None = None
    body: bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.metrics, tuple):
            object.__setattr__(self, "metrics", tuple(self.metrics))

    def metric(self, name: str) -> Metric | None:
        """The first metric called ``name``, or ``None`` (metrics sent by alias only have no
        name: resolve them against the BIRTH first)."""
        return next((m for m in self.metrics if m.name == name), None)


def infer_datatype(value: MetricValue) -> DataType:
    """The datatype simlab uses for a Python value: bool→Boolean, int→Int64, float→Double,
    str→String, bytes→Bytes; tuples/lists of int/float/str → Int64Array/DoubleArray/StringArray.

    Raises :class:`SparkplugError` for ``None`` (a null has no type) and anything else.
    """
    if isinstance(value, bool):
        return DataType.Boolean
    if isinstance(value, int):
        return DataType.Int64
    if isinstance(value, float):
        return DataType.Double
    if isinstance(value, str):
        return DataType.String
    if isinstance(value, bytes | bytearray):
        return DataType.Bytes
    if isinstance(value, tuple | list) and value:
        items: Sequence[object] = value
        if all(isinstance(v, str) for v in items):
            return DataType.StringArray
        if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            return DataType.Int64Array
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
            return DataType.DoubleArray
    raise SparkplugError(
        f"cannot infer a Sparkplug datatype for {value!r}: give the metric an explicit datatype"
    )


def datatype_for_tag_type(tag_type: str) -> DataType:
    """The Sparkplug datatype of a simlab tag type: bool→Boolean, int→Int64, float→Double,
    string (or str)→String."""
    try:
        return _TAG_TYPES[tag_type]
    except KeyError:
        known = ", ".join(sorted(_TAG_TYPES))
        raise SparkplugError(f"unknown tag type {tag_type!r}: expected one of {known}") from None


def coerce_value(value: MetricValue, datatype: DataType) -> MetricValue:
    """Check that ``value`` fits ``datatype`` and return it normalised (int→float for
    Float/Double, list→tuple for arrays). ``None`` (null) fits every datatype.

    Raises :class:`SparkplugError` when it does not fit (wrong type, out of range).
    """
    if value is None:
        return None
    return _coerce(value, _as_datatype(datatype, "value"), raw=False, where="value")


def apply_datatype(metric: Metric, datatype: DataType) -> Metric:
    """``metric`` with ``datatype``, its value reinterpreted for it.

    This is how a host (or an edge node receiving a command) reads a DATA/CMD metric that
    came without a datatype: the datatype recorded from the BIRTH for that alias or name is
    applied to the raw protobuf value. Raises :class:`SparkplugError` if the value is not
    compatible with ``datatype`` (tck-id-operational-behavior-data-commands-ncmd-metric-value,
    ...-dcmd-metric-value).
    """
    datatype = _as_datatype(datatype, _where(metric.name, metric.alias))
    if metric.datatype == datatype:
        return metric
    if metric.is_null:
        return replace(metric, datatype=datatype)
    where = _where(metric.name, metric.alias)
    value = _coerce(metric.value, datatype, raw=metric.datatype is None, where=where)
    return replace(metric, datatype=datatype, value=value)


def encode_payload(
    metrics: Iterable[Metric],
    *,
    seq: int | None,
    timestamp_ms: int,
    include_datatypes: bool = True,
) -> bytes:
    """Encode a Sparkplug B payload.

    ``seq`` is ``None`` only for messages without a sequence number (NDEATH, NCMD, DCMD);
    otherwise 0..255. A metric without ``timestamp_ms`` gets the payload's, since births
    and data must time-stamp every metric (tck-id-payloads-name-birth-data-requirement). A
    metric without datatype is encoded with :func:`infer_datatype`'s. With
    ``include_datatypes=False`` (for NDATA/DDATA/NCMD/DCMD,
    tck-id-payloads-metric-datatype-not-req) no metric carries its datatype on the wire.
    """
    if not _is_uint(timestamp_ms, 64):
        raise SparkplugError(f"timestamp_ms must be an integer 0..2^64-1, not {timestamp_ms!r}")
    if seq is not None and not (_is_uint(seq, 64) and seq <= 255):
        raise SparkplugError(f"seq must be an integer 0..255, not {seq!r}")
    message = PAYLOAD_CLASS()
    message.timestamp = timestamp_ms
    if seq is not None:
        message.seq = seq
    for metric in metrics:
        if not isinstance(metric, Metric):
            raise SparkplugError(f"expected a Metric, got {type(metric).__name__}")
        _encode_metric(message.metrics.add(), metric, timestamp_ms, include_datatypes)
    return bytes(message.SerializeToString())


def decode_payload(data: bytes) -> Payload:
    """Decode Sparkplug B payload bytes.

    Strict: bytes that are not a protobuf message, fields that are not in the Sparkplug B
    schema, text that is not UTF-8, unknown or unsupported datatypes, a value in the wrong
    field for its datatype, a metric with neither name nor alias, or one with neither value
    nor ``is_null`` all raise :class:`SparkplugError` (never a protobuf exception).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SparkplugError(f"a Sparkplug payload is bytes, not {type(data).__name__}")
    try:
        message = PAYLOAD_CLASS.FromString(bytes(data))
    except DECODE_ERRORS as err:
        raise SparkplugError(
            f"not a Sparkplug B payload ({len(data)} bytes): the protobuf message is malformed"
        ) from err
    _reject_unknown_fields(message, "payload")
    metrics = tuple(_decode_metric(m, i) for i, m in enumerate(message.metrics))
    uuid = _text(message, "uuid", "payload") if message.HasField("uuid") else None
    return Payload(
        timestamp_ms=int(message.timestamp) if message.HasField("timestamp") else None,
        seq=int(message.seq) if message.HasField("seq") else None,
        metrics=metrics,
        uuid=uuid,
        body=bytes(message.body) if message.HasField("body") else None,
    )


# --- encoding helpers ---------------------------------------------------------------------


def _encode_metric(pb: Any, metric: Metric, payload_ts: int, include_datatypes: bool) -> None:
    where = _where(metric.name, metric.alias)
    if metric.name is None and metric.alias is None:
        raise SparkplugError("a metric needs a name or an alias (tck-id-payloads-name-requirement)")
    if metric.name is not None:
        pb.name = metric.name
    if metric.alias is not None:
        pb.alias = metric.alias
    pb.timestamp = metric.timestamp_ms if metric.timestamp_ms is not None else payload_ts
    datatype = metric.datatype
    if datatype is None and not metric.is_null:
        datatype = infer_datatype(metric.value)
    if datatype is not None and datatype in _UNSUPPORTED:
        raise SparkplugError(f"{where}: datatype {datatype.name} is not supported by simlab")
    if include_datatypes and datatype is not None:
        pb.datatype = int(datatype)
    if metric.is_null:
        pb.is_null = True
        return
    assert datatype is not None  # a non-null value always has an (inferred) datatype
    value = _coerce(metric.value, datatype, raw=False, where=where)
    field = _FIELDS[datatype][0]
    if datatype in _SIGNED_BITS:
        assert isinstance(value, int)
        setattr(pb, field, value & (_MASK64 if datatype is DataType.Int64 else _MASK32))
    elif datatype in _ARRAY_ELEMENT:
        assert isinstance(value, tuple)
        pb.bytes_value = _pack_array(datatype, value)
    else:
        setattr(pb, field, value)


def _pack_array(datatype: DataType, values: tuple[Any, ...]) -> bytes:
    if datatype is DataType.StringArray:
        return b"".join(v.encode("utf-8") + b"\x00" for v in values)
    return struct.pack(f"<{len(values)}{_ARRAY_FORMAT[datatype]}", *values)


# --- decoding helpers ---------------------------------------------------------------------


def _decode_metric(pb: Any, index: int) -> Metric:
    label = f"metric #{index}"
    _reject_unknown_fields(pb, label)
    name = _text(pb, "name", label) if pb.HasField("name") else None
    alias = int(pb.alias) if pb.HasField("alias") else None
    if name is None and alias is None:
        raise SparkplugError(
            f"{label} has neither name nor alias (tck-id-payloads-name-requirement)"
        )
    where = _where(name, alias)
    datatype: DataType | None = None
    if pb.HasField("datatype"):
        datatype = _as_datatype(int(pb.datatype), where)
        if datatype in _UNSUPPORTED:
            raise SparkplugError(f"{where}: datatype {datatype.name} is not supported by simlab")
    field = pb.WhichOneof("value")
    value: MetricValue = None
    if not (pb.HasField("is_null") and pb.is_null):
        if field is None:
            raise SparkplugError(f"{where} has no value and is_null is not set")
        value = _raw_value(pb, field, where)
        if datatype is not None:
            if field not in _FIELDS[datatype]:
                raise SparkplugError(
                    f"{where}: datatype {datatype.name} expects {_FIELDS[datatype][0]},"
                    f" but the value is in {field}"
                )
            value = _coerce(value, datatype, raw=True, where=where)
    try:
        return Metric(
            name=name,
            alias=alias,
            timestamp_ms=int(pb.timestamp) if pb.HasField("timestamp") else None,
            datatype=datatype,
            value=value,
        )
    except SparkplugError as err:
        raise SparkplugError(f"{label}: {err}") from None


def _raw_value(pb: Any, field: str, where: str) -> MetricValue:
    """The value of protobuf ``field`` as a Python value, before any datatype is applied."""
    if field in ("int_value", "long_value"):
        return int(getattr(pb, field))
    if field in ("float_value", "double_value"):
        return float(getattr(pb, field))
    if field == "boolean_value":
        return bool(pb.boolean_value)
    if field == "string_value":
        return _text(pb, "string_value", where)
    if field == "bytes_value":
        return bytes(pb.bytes_value)
    raise SparkplugError(f"{where}: {field} values are not supported by simlab")


def _unpack_array(datatype: DataType, data: bytes, where: str) -> ArrayValue:
    if datatype is DataType.StringArray:
        if not data:
            return ()
        if not data.endswith(b"\x00"):
            raise SparkplugError(f"{where}: a StringArray must end with a NUL byte")
        try:
            return tuple(part.decode("utf-8") for part in data[:-1].split(b"\x00"))
        except UnicodeDecodeError:
            raise SparkplugError(f"{where}: StringArray element is not UTF-8") from None
    size = struct.calcsize(_ARRAY_FORMAT[datatype])
    if len(data) % size:
        raise SparkplugError(
            f"{where}: {datatype.name} needs a multiple of {size} bytes, got {len(data)}"
        )
    return tuple(struct.unpack(f"<{len(data) // size}{_ARRAY_FORMAT[datatype]}", data))


def _reject_unknown_fields(message: Any, where: str) -> None:
    unknown = unknown_field_numbers(message)
    if unknown:
        numbers = ", ".join(str(n) for n in unknown)
        raise SparkplugError(f"{where}: field number(s) {numbers} are not in Sparkplug B")


def _text(message: Any, field: str, where: str) -> str:
    value = getattr(message, field)
    if not isinstance(value, str):  # proto2 hands back bytes for text that is not UTF-8
        raise SparkplugError(f"{where}: {field} is not valid UTF-8")
    return value


# --- values -------------------------------------------------------------------------------


def _coerce(value: object, datatype: DataType, *, raw: bool, where: str) -> MetricValue:
    """``value`` checked and normalised for ``datatype``.

    ``raw=True`` means the value comes straight from a protobuf field: signed integers are
    then reinterpreted from their unsigned wire form and arrays unpacked from bytes.
    """
    if datatype in _UNSUPPORTED:
        raise SparkplugError(f"{where}: datatype {datatype.name} is not supported by simlab")
    if datatype in _SIGNED_BITS or datatype in _UNSIGNED_BITS:
        return _coerce_int(value, datatype, raw=raw, where=where)
    if datatype in _FLOAT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _mismatch(value, datatype, where)
        number = float(value)
        if datatype is DataType.Float and math.isfinite(number) and abs(number) > _FLOAT32_MAX:
            raise SparkplugError(f"{where}: {number!r} does not fit a 32-bit Float")
        return number
    if datatype is DataType.Boolean:
        if not isinstance(value, bool):
            raise _mismatch(value, datatype, where)
        return value
    if datatype in _STRING_TYPES:
        if not isinstance(value, str):
            raise _mismatch(value, datatype, where)
        return value
    if datatype in _BYTES_TYPES:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise _mismatch(value, datatype, where)
        return bytes(value)
    # array datatypes
    if isinstance(value, bytes | bytearray | memoryview):
        if not raw:
            raise SparkplugError(
                f"{where}: give a {datatype.name} as a tuple of elements, not packed bytes"
            )
        return _unpack_array(datatype, bytes(value), where)
    if not isinstance(value, tuple | list):
        raise _mismatch(value, datatype, where)
    element = _ARRAY_ELEMENT[datatype]
    items = tuple(
        _coerce(v, element, raw=False, where=f"{where}[{i}]") for i, v in enumerate(value)
    )
    if datatype is DataType.StringArray and any("\x00" in str(s) for s in items):
        raise SparkplugError(f"{where}: StringArray elements cannot contain NUL characters")
    return cast(ArrayValue, items)  # homogeneous: every element has the element datatype


def _coerce_int(value: object, datatype: DataType, *, raw: bool, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _mismatch(value, datatype, where)
    if datatype in _SIGNED_BITS:
        bits = _SIGNED_BITS[datatype]
        if raw:  # wire form: unsigned, possibly sign-extended beyond the datatype's width
            value &= (1 << bits) - 1
            return value - (1 << bits) if value >= 1 << (bits - 1) else value
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        low, high = 0, (1 << _UNSIGNED_BITS[datatype]) - 1
    if not low <= value <= high:
        raise SparkplugError(
            f"{where}: {value} is out of range for {datatype.name} ({low}..{high})"
        )
    return value


def _mismatch(value: object, datatype: DataType, where: str) -> SparkplugError:
    return SparkplugError(
        f"{where}: a {type(value).__name__} value ({value!r:.40}) does not fit datatype"
        f" {datatype.name}"
    )


def _as_datatype(datatype: object, where: str) -> DataType:
    if isinstance(datatype, bool) or not isinstance(datatype, int):
        raise SparkplugError(f"{where}: datatype must be a DataType, not {datatype!r}")
    try:
        return DataType(datatype)
    except ValueError:
        raise SparkplugError(f"{where}: {datatype} is not a Sparkplug B datatype") from None


def _is_uint(value: object, bits: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << bits


def _where(name: str | None, alias: int | None) -> str:
    if name is not None:
        return f"metric {name!r}"
    return f"metric alias {alias}" if alias is not None else "metric"
