"""UNS conventions: ISA-95 topic paths and the strict JSON value payload."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from simlab.bus import uns as uns_module
from simlab.bus.uns import (
    ISA95_LEVELS,
    MAX_PAYLOAD_BYTES,
    UNS_QOS,
    UNS_RETAIN,
    UnsFields,
    UnsMessage,
    UnsPath,
    UnsPayloadError,
    UnsTopicError,
    _fast_fields,
    _parse_strict,
    format_ts,
    parse_ts,
    parse_uns_payload,
    parse_uns_topic,
    quality_severity,
    uns_topic,
)
from simlab.errors import SimlabError

TS = 1_772_352_902_250
PATH = ("acme", "lyon", "packaging", "line-1", "filler", "pump_3", "outlet_pressure")


def _doc(**changes: object) -> dict[str, object]:
    document: dict[str, object] = {
        "value": 2.41,
        "unit": "bar",
        "ts": "2026-03-01T08:15:02.250Z",
        "ts_ms": TS,
        "quality": "Good",
        "source": "plc-1",
    }
    document.update(changes)
    return document


def _raw(document: dict[str, object]) -> bytes:
    return json.dumps(document).encode()


# --- publication constants -------------------------------------------------------------


def test_uns_is_published_retained_at_qos_1() -> None:
    assert UNS_QOS == 1
    assert UNS_RETAIN is True
    assert MAX_PAYLOAD_BYTES == 65536


# --- topics ------------------------------------------------------------------------------


def test_uns_topic_builds_and_parses_the_isa95_path() -> None:
    topic = uns_topic(*PATH)
    assert topic == "acme/lyon/packaging/line-1/filler/pump_3/outlet_pressure"
    path = parse_uns_topic(topic)
    assert path == UnsPath(*PATH)
    assert path.segments == PATH
    assert str(path) == topic
    assert ISA95_LEVELS == ("enterprise", "site", "area", "line", "cell", "asset")
    assert (path.enterprise, path.cell, path.tag) == ("acme", "filler", "outlet_pressure")


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        (PATH[:-1], "has 7 segments.*got 6"),
        ((*PATH, "extra"), "got 8"),
        (("Acme", *PATH[1:]), "enterprise segment 'Acme' is invalid.*use lowercase"),
        ((*PATH[:2], "pack aging", *PATH[3:]), "area segment 'pack aging'"),
        ((*PATH[:5], "pump+3", PATH[6]), "asset segment 'pump\\+3'"),
        ((*PATH[:6], "pressure#"), "tag segment"),
        ((*PATH[:3], "", *PATH[4:]), "line segment ''"),
        ((*PATH[:6], "débit"), "tag segment 'débit'"),
    ],
)
def test_uns_topic_refuses_bad_segments_naming_the_level(
    segments: tuple[str, ...], message: str
) -> None:
    with pytest.raises(UnsTopicError, match=message):
        uns_topic(*segments)


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("acme/lyon/packaging/line-1/filler/pump_3", "has 6 levels"),
        ("acme/lyon/packaging/line-1/filler/pump_3/x/", "has 8 levels"),
        ("acme/lyon/packaging/Line-1/filler/pump_3/x", "line segment"),
        ("/lyon/packaging/line-1/filler/pump_3/x", "enterprise segment ''"),
    ],
)
def test_parse_uns_topic_errors(topic: str, message: str) -> None:
    with pytest.raises(UnsTopicError, match=message):
        parse_uns_topic(topic)


def test_topic_error_is_a_value_error_of_simlab() -> None:
    with pytest.raises(ValueError):
        uns_topic("x")
    with pytest.raises(SimlabError):
        uns_topic("x")


# --- time and quality ----------------------------------------------------------------------


@pytest.mark.parametrize("ts_ms", [0, 999, 1_000, TS, 4_102_444_799_999])
def test_timestamps_are_iso8601_utc_with_milliseconds_and_z(ts_ms: int) -> None:
    text = format_ts(ts_ms)
    independent = datetime.fromtimestamp(ts_ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert text == f"{independent}.{ts_ms % 1000:03d}Z"
    assert parse_ts(text) == ts_ms


def test_known_timestamp() -> None:
    assert format_ts(TS) == "2026-03-01T08:15:02.250Z"
    assert format_ts(0) == "1970-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    ("quality", "severity"),
    [
        ("Good", "Good"),
        ("GoodLocalOverride", "Good"),
        ("Uncertain", "Uncertain"),
        ("UncertainLastUsableValue", "Uncertain"),
        ("Bad", "Bad"),
        ("BadSensorFailure", "Bad"),
    ],
)
def test_quality_is_an_opc_ua_status_name(quality: str, severity: str) -> None:
    assert quality_severity(quality) == severity
    assert UnsMessage(1, None, TS, "x", quality).severity == severity


# --- payload -------------------------------------------------------------------------------


def test_to_json_is_the_contract() -> None:
    message = UnsMessage(value=2.41, unit="bar", ts_ms=TS, source="plc-1")
    assert message.quality == "Good"
    assert message.ts == "2026-03-01T08:15:02.250Z"
    assert message.to_json() == (
        b'{"value":2.41,"unit":"bar","ts":"2026-03-01T08:15:02.250Z","ts_ms":1772352902250,'
        b'"quality":"Good","source":"plc-1"}'
    )
    assert UnsMessage.from_json(message.to_json()) == message


@pytest.mark.parametrize("value", [True, False, 0, -17, 2**70, 0.0, -1.5e-300, "RUNNING", "é"])
def test_scalar_values_roundtrip(value: bool | int | float | str) -> None:
    message = UnsMessage(value, None, TS, "sensor-7", "Uncertain")
    decoded = UnsMessage.from_json(message.to_json())
    assert decoded == message
    assert type(decoded.value) is type(value)


def test_from_json_accepts_str_and_null_unit_and_bad_null_value() -> None:
    text = json.dumps(_doc(value=None, unit=None, quality="BadSensorFailure"))
    message = UnsMessage.from_json(text)
    assert (message.value, message.unit, message.quality) == (None, None, "BadSensorFailure")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_value_becomes_null_with_quality_bad(value: float) -> None:
    message = UnsMessage(value, "bar", TS, "plc-1")
    assert message.value is None and message.quality == "Bad"
    assert json.loads(message.to_json())["value"] is None
    assert UnsMessage(value, "bar", TS, "plc-1", "BadOutOfRange").quality == "BadOutOfRange"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_json_value_becomes_null_with_quality_bad(token: str) -> None:
    raw = _raw(_doc()).replace(b"2.41", token.encode())
    message = UnsMessage.from_json(raw)
    assert message.value is None and message.quality == "Bad"


def _field_error(data: bytes | str) -> UnsPayloadError:
    with pytest.raises(UnsPayloadError) as caught:
        UnsMessage.from_json(data)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, SimlabError)
    assert caught.value.field in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (b"{not json", "payload", "not JSON"),
        (b"", "payload", "not JSON"),
        (b"[1, 2]", "payload", "must be a JSON object, not list"),
        (b'"text"', "payload", "must be a JSON object"),
        (b'{"value": "\xff"}', "payload", "not UTF-8"),
        (_raw(_doc(value=[1, 2])), "value", "not array"),
        (_raw(_doc(value={"v": 1})), "value", "not object"),
        (_raw(_doc(value=None)), "value", "null but quality is Good"),
        (_raw(_doc(unit=3)), "unit", "must be a string or null, not number"),
        (_raw(_doc(unit="")), "unit", "non-empty"),
        (_raw(_doc(ts_ms="1772352902250")), "ts_ms", "must be an integer, not str"),
        (_raw(_doc(ts_ms=True)), "ts_ms", "must be an integer, not bool"),
        (_raw(_doc(ts_ms=1.5e12)), "ts_ms", "must be an integer"),
        (_raw(_doc(ts_ms=-1)), "ts_ms", "outside"),
        (_raw(_doc(ts=TS)), "ts", "must be a string, not number"),
        (_raw(_doc(ts="2026-03-01T08:15:02Z")), "ts", "with milliseconds"),
        (_raw(_doc(ts="2026-03-01T08:15:02.250+00:00")), "ts", "ISO-8601 UTC"),
        (_raw(_doc(ts="2026-03-01 08:15:02.250Z")), "ts", "ISO-8601"),
        (_raw(_doc(ts="2026-02-30T08:15:02.250Z")), "ts", "not a valid date"),
        (_raw(_doc(ts="2026-03-01T08:15:02.251Z")), "ts", "not the same instant as ts_ms"),
        (_raw(_doc(quality="OK")), "quality", "not an OPC UA status name"),
        (_raw(_doc(quality="good")), "quality", "not an OPC UA status name"),
        (_raw(_doc(quality=None)), "quality", "must be a string, not null"),
        (_raw(_doc(source="")), "source", "non-empty"),
        (_raw(_doc(source=7)), "source", "must be a string, not number"),
        (_raw(_doc(extra=1)), "extra", "unknown field"),
        (b'{"value": 1, "value": 2}', "value", "more than once"),
    ],
)
def test_invalid_payloads_name_the_field(data: bytes, field: str, message: str) -> None:
    error = _field_error(data)
    assert error.field == field
    assert message in str(error)


@pytest.mark.parametrize("missing", ["value", "unit", "ts", "ts_ms", "quality", "source"])
def test_every_field_is_required(missing: str) -> None:
    document = _doc()
    del document[missing]
    error = _field_error(_raw(document))
    assert error.field == missing
    assert "missing" in str(error)


def test_oversized_payloads_are_refused() -> None:
    big = _raw(_doc(value="x" * MAX_PAYLOAD_BYTES))
    assert _field_error(big).field == "payload"
    assert "65536" in str(_field_error(big))
    with pytest.raises(UnsPayloadError) as caught:
        UnsMessage("x" * MAX_PAYLOAD_BYTES, None, TS, "plc-1").to_json()
    assert caught.value.field == "value"


def test_just_under_the_limit_is_fine() -> None:
    overhead = len(UnsMessage("", None, TS, "plc-1").to_json())
    message = UnsMessage("x" * (MAX_PAYLOAD_BYTES - overhead), None, TS, "plc-1")
    assert len(message.to_json()) == MAX_PAYLOAD_BYTES
    assert UnsMessage.from_json(message.to_json()) == message


def test_constructor_validates_too() -> None:
    with pytest.raises(UnsPayloadError, match="quality") as caught:
        UnsMessage(1, None, TS, "plc-1", "Fine")
    assert caught.value.field == "quality"
    with pytest.raises(UnsPayloadError) as caught:
        UnsMessage([1], None, TS, "plc-1")  # type: ignore[arg-type]
    assert caught.value.field == "value"
    with pytest.raises(UnsPayloadError) as caught:
        UnsMessage(1, None, TS, "")
    assert caught.value.field == "source"


# --- the fast path agrees with the strict parser ------------------------------------------

_VALID = b'{"value":2.41,"unit":"bar","ts":"2026-03-01T08:15:02.250Z","ts_ms":1772352902250,'
_TAIL = b'"quality":"Good","source":"plc-1"}'

# Payloads the fast path must accept exactly as the strict parser does, or leave to it.
_CORPUS: list[bytes] = [
    _VALID + _TAIL,
    _raw(_doc()),  # json.dumps' ", " and ": " separators
    b"  " + _VALID + _TAIL + b"\n",  # surrounding blanks
    _raw(_doc(value="a:b:c", unit="m:s", source="opc.tcp://plc:4840", quality="GoodClamped")),
    _raw(_doc(value="é ünïcode", unit=None)),
    _raw(_doc(value=True)),
    _raw(_doc(value=0)),
    _raw(_doc(value=2**80)),
    _raw(_doc(value=None, quality="BadSensorFailure")),
    _raw(_doc(value="x\u003ay")),  # json.dumps writes ':' plainly; see the escapes below
    _raw(_doc(ts="2026-03-01T08:15:02.250Z", ts_ms=TS)),
    _raw(_doc(ts="1970-01-01T00:00:00.000Z", ts_ms=0)),
    _raw(_doc(ts="9999-12-31T23:59:59.999Z", ts_ms=253_402_300_799_999)),
    # duplicates the plain C decoder would silently collapse
    b'{"value":1,"value":2,"unit":null,"ts":"2026-03-01T08:15:02.250Z","ts_ms":1772352902250,'
    + _TAIL,
    _VALID + b'"quality":"Good","source":"plc-1","source":"plc-2"}',
    _VALID + b'"quality":"Good","source":"a","source":"b:c"}',
    b'{"ts":"2026-03-01T08:15:02.251Z",' + _VALID[1:] + _TAIL,  # same ts twice
    b'{"value":{"a":1},"value":2,"unit":"bar","ts":"2026-03-01T08:15:02.250Z",'
    b'"ts_ms":1772352902250,' + _TAIL,
    b'{"valu\\u0065":1,' + _VALID[1:] + _TAIL,  # an escaped duplicate key
    b'{"value":"x\\u003ay",' + _VALID[15:] + _TAIL,  # an escaped colon in a string
    _VALID + b'"quality":"Good","source":"plc-1" , "value" : 3}',
    # wrong or missing in many ways
    _VALID + b'"quality":"Good"}',
    _VALID + b'"quality":"Good","source":"plc-1","extra":1}',
    _VALID + b'"quality":"good","source":"plc-1"}',
    _VALID + b'"quality":"Good","source":""}',
    _VALID.replace(b"250Z", b"251Z") + _TAIL,
    _VALID.replace(b"250Z", b"250+00:00") + _TAIL,
    _VALID.replace(b"1772352902250", b"1772352902250.0") + _TAIL,
    _VALID.replace(b"1772352902250", b"true") + _TAIL,
    _VALID.replace(b"2.41", b"NaN") + _TAIL,
    _VALID.replace(b"2.41", b"1e999") + _TAIL,
    _VALID.replace(b"2.41", b"[1, 2]") + _TAIL,
    _VALID.replace(b"2.41", b"9" * 5000) + _TAIL,  # over Python's int digits limit
    _VALID.replace(b'"bar"', b'""') + _TAIL,
    _VALID + _TAIL + b"x",
    b"\xef\xbb\xbf" + _VALID + _TAIL,  # a UTF-8 BOM
    (_VALID + _TAIL).decode().encode("utf-16"),
    b"[" + _VALID + _TAIL + b"]",
    b"",
    b"null",
]


def _outcome(parse: Callable[[bytes], object], data: bytes) -> object:
    try:
        return parse(data)
    except UnsPayloadError as err:
        return ("error", err.field, str(err))


def _strict_fields(data: bytes) -> UnsFields:
    message = _parse_strict(data)
    return UnsFields(message.value, message.unit, message.ts_ms, message.quality, message.source)


@pytest.mark.parametrize("data", _CORPUS)
def test_parse_uns_payload_gives_what_the_strict_parser_gives(data: bytes) -> None:
    fast = _outcome(parse_uns_payload, data)
    assert fast == _outcome(_strict_fields, data)
    message = _outcome(UnsMessage.from_json, data)
    if isinstance(fast, UnsFields):
        assert isinstance(message, UnsMessage)
        assert (message.value, message.unit, message.ts_ms, message.quality, message.source) == (
            fast
        )
        assert type(message.value) is type(fast.value)
    else:
        assert message == fast  # the same error, field and words


def test_the_fast_path_takes_the_common_payloads_and_leaves_the_rest() -> None:
    assert _fast_fields(_VALID + _TAIL) == UnsFields(2.41, "bar", TS, "Good", "plc-1")
    assert _fast_fields(_raw(_doc(value="a:b", source="x:y"))) is not None
    for left in (
        _VALID.replace(b"2.41", b"null") + _TAIL.replace(b"Good", b"Bad"),  # a null value
        b'{"value":1,"value":2,"unit":null,"ts":"2026-03-01T08:15:02.250Z",'
        b'"ts_ms":1772352902250,' + _TAIL,
        b'{"value":"x\\u003ay",' + _VALID[15:] + _TAIL,
        b" " + _VALID + _TAIL,
    ):
        assert _fast_fields(left) is None


def test_many_seconds_and_qualities_keep_the_caches_bounded() -> None:
    for k in range(5000):
        payload = UnsMessage(float(k), None, TS + 1000 * k, "s", f"GoodQ{k}").to_json()
        assert parse_uns_payload(payload).ts_ms == TS + 1000 * k
    assert len(uns_module._ts_prefixes) <= uns_module._CACHE_LIMIT
    assert len(uns_module._qualities) <= uns_module._CACHE_LIMIT


def test_str_bytearray_and_memoryview_payloads_are_accepted() -> None:
    data = _VALID + _TAIL
    expected = parse_uns_payload(data)
    assert parse_uns_payload(data.decode()) == expected
    assert parse_uns_payload(bytearray(data)) == expected
    assert parse_uns_payload(memoryview(data)) == expected
