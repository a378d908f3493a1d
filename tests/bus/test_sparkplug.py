"""Sparkplug B 3.0: payload codec, topics, edge node session rules, host sequence tracking."""

from __future__ import annotations

import random
import struct
from concurrent.futures import ThreadPoolExecutor

import pytest

from simlab.bus.sparkplug import (
    BD_SEQ,
    REBIRTH,
    DataType,
    EdgeNodeSession,
    EdgeTopic,
    MessageType,
    Metric,
    MetricDef,
    MetricValue,
    MqttMessage,
    Payload,
    SeqStatus,
    SequenceTracker,
    SparkplugError,
    SparkplugStateError,
    SparkplugTopicError,
    StateTopic,
    apply_datatype,
    datatype_for_tag_type,
    decode_payload,
    device_topic,
    encode_payload,
    infer_datatype,
    node_topic,
    parse_topic,
    rebirth_request,
    state_topic,
)
from simlab.errors import SimlabError

TS = 1_772_352_902_250  # 2026-03-01T08:15:02.250Z

# --- hand-made protobuf wire bytes (independent of our encoder and of the protobuf library) --


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _vfield(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(value)


def _lfield(field: int, data: bytes) -> bytes:
    return _key(field, 2) + _varint(len(data)) + data


def _double(field: int, value: float) -> bytes:
    return _key(field, 1) + struct.pack("<d", value)


# --- codec -------------------------------------------------------------------------------

EXAMPLES: list[tuple[DataType, MetricValue]] = [
    (DataType.Int8, -128),
    (DataType.Int8, 127),
    (DataType.Int16, -32768),
    (DataType.Int16, -87),
    (DataType.Int32, -(2**31)),
    (DataType.Int32, 2**31 - 1),
    (DataType.Int64, -(2**63)),
    (DataType.Int64, 2**63 - 1),
    (DataType.UInt8, 255),
    (DataType.UInt16, 65535),
    (DataType.UInt32, 2**32 - 1),
    (DataType.UInt64, 2**64 - 1),
    (DataType.Float, 1.5),
    (DataType.Float, -(2.0**100)),
    (DataType.Double, 0.1),
    (DataType.Double, -1e300),
    (DataType.Boolean, True),
    (DataType.Boolean, False),
    (DataType.String, "héllo wörld"),
    (DataType.String, ""),
    (DataType.DateTime, TS),
    (DataType.Text, "a longer text\nwith lines"),
    (DataType.UUID, "0f8fad5b-d9cb-469f-a165-70867728950e"),
    (DataType.Bytes, b"\x00\x01\xfe\xff"),
    (DataType.File, b"%PDF-1.7 ..."),
    (DataType.Int8Array, (-128, 0, 127)),
    (DataType.Int16Array, (-32768, 1, 32767)),
    (DataType.Int32Array, (-(2**31), 2**31 - 1)),
    (DataType.Int64Array, (-(2**63), 0, 2**63 - 1)),
    (DataType.UInt8Array, (0, 255)),
    (DataType.UInt16Array, (0, 65535)),
    (DataType.UInt32Array, (0, 2**32 - 1)),
    (DataType.UInt64Array, (0, 2**64 - 1)),
    (DataType.FloatArray, (1.5, -2.25)),
    (DataType.DoubleArray, (0.1, 1e300)),
    (DataType.StringArray, ("a", "", "ü")),
    (DataType.DateTimeArray, (0, TS)),
    (DataType.Int32Array, ()),
]
SUPPORTED = sorted({dt for dt, _ in EXAMPLES})


def _roundtrip(metric: Metric, **kwargs: bool) -> Metric:
    payload = decode_payload(encode_payload([metric], seq=5, timestamp_ms=TS, **kwargs))
    assert payload.seq == 5
    assert payload.timestamp_ms == TS
    assert len(payload.metrics) == 1
    return payload.metrics[0]


@pytest.mark.parametrize(("datatype", "value"), EXAMPLES, ids=lambda x: repr(x)[:20])
def test_every_datatype_roundtrips(datatype: DataType, value: MetricValue) -> None:
    metric = Metric(name="m", alias=7, timestamp_ms=TS - 5, datatype=datatype, value=value)
    assert _roundtrip(metric) == metric


@pytest.mark.parametrize("datatype", SUPPORTED, ids=lambda d: d.name)
def test_every_datatype_roundtrips_null(datatype: DataType) -> None:
    metric = Metric(name="m", alias=1, timestamp_ms=TS, datatype=datatype, is_null=True)
    decoded = _roundtrip(metric)
    assert decoded == metric
    assert decoded.value is None and decoded.is_null


@pytest.mark.parametrize(("datatype", "value"), EXAMPLES, ids=lambda x: repr(x)[:20])
def test_data_messages_drop_datatype_and_birth_datatype_restores_value(
    datatype: DataType, value: MetricValue
) -> None:
    metric = Metric(alias=3, timestamp_ms=TS, datatype=datatype, value=value)
    raw = _roundtrip(metric, include_datatypes=False)
    assert raw.datatype is None and raw.name is None and raw.alias == 3
    assert apply_datatype(raw, datatype) == metric


def test_payload_without_seq_and_metric_timestamp_defaults_to_payload() -> None:
    payload = decode_payload(encode_payload([Metric(name="x", value=1)], seq=None, timestamp_ms=9))
    assert payload == Payload(
        timestamp_ms=9,
        seq=None,
        metrics=(Metric(name="x", timestamp_ms=9, datatype=DataType.Int64, value=1),),
    )
    assert payload.metric("x") is payload.metrics[0]
    assert payload.metric("y") is None


def test_empty_bytes_are_an_empty_payload() -> None:
    assert decode_payload(b"") == Payload(timestamp_ms=None, seq=None)


@pytest.mark.parametrize(
    ("value", "datatype"),
    [
        (True, DataType.Boolean),
        (3, DataType.Int64),
        (2.5, DataType.Double),
        ("s", DataType.String),
        (b"b", DataType.Bytes),
        ((1, 2), DataType.Int64Array),
        ((1, 2.5), DataType.DoubleArray),
        (("a",), DataType.StringArray),
    ],
)
def test_infer_datatype(value: object, datatype: DataType) -> None:
    assert infer_datatype(value) is datatype  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [None, (), (True,), {"a": 1}, object()])
def test_infer_datatype_refuses_what_has_no_obvious_type(value: object) -> None:
    with pytest.raises(SparkplugError, match="explicit datatype"):
        infer_datatype(value)  # type: ignore[arg-type]


def test_tag_types_map_to_datatypes() -> None:
    assert datatype_for_tag_type("bool") is DataType.Boolean
    assert datatype_for_tag_type("int") is DataType.Int64
    assert datatype_for_tag_type("float") is DataType.Double
    assert datatype_for_tag_type("string") is DataType.String
    assert datatype_for_tag_type("str") is DataType.String
    with pytest.raises(SparkplugError, match="unknown tag type 'double'"):
        datatype_for_tag_type("double")


def test_int_for_double_is_normalised_and_list_becomes_tuple() -> None:
    assert Metric(name="d", datatype=DataType.Double, value=3).value == 3.0
    assert isinstance(Metric(name="d", datatype=DataType.Double, value=3).value, float)
    assert Metric(name="a", datatype=DataType.Int8Array, value=[1, 2]).value == (1, 2)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("datatype", "value", "message"),
    [
        (DataType.Int8, 128, "out of range for Int8"),
        (DataType.UInt8, -1, "out of range for UInt8"),
        (DataType.UInt64, 2**64, "out of range"),
        (DataType.Int64, True, "does not fit datatype Int64"),
        (DataType.Int32, 1.0, "does not fit datatype Int32"),
        (DataType.Double, "1", "does not fit datatype Double"),
        (DataType.Float, 1e39, "32-bit Float"),
        (DataType.Boolean, 1, "does not fit datatype Boolean"),
        (DataType.String, b"x", "does not fit datatype String"),
        (DataType.Bytes, "x", "does not fit datatype Bytes"),
        (DataType.Int8Array, (1, 300), r"\[1\].*out of range"),
        (DataType.Int8Array, b"\x01", "tuple of elements"),
        (DataType.StringArray, ("a\x00b",), "NUL"),
        (DataType.DataSet, 1, "not supported"),
    ],
)
def test_values_that_do_not_fit_their_datatype_are_refused(
    datatype: DataType, value: object, message: str
) -> None:
    with pytest.raises(SparkplugError, match=message):
        Metric(name="m", datatype=datatype, value=value)  # type: ignore[arg-type]


def test_metric_consistency_checks() -> None:
    with pytest.raises(SparkplugError, match="is_null is set"):
        Metric(name="m", value=1, is_null=True)
    with pytest.raises(SparkplugError, match="alias"):
        Metric(name="m", alias=-1, value=1)
    with pytest.raises(SparkplugError, match="not a Sparkplug B datatype"):
        Metric(name="m", datatype=99, value=1)  # type: ignore[arg-type]
    assert Metric(name="m").is_null


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seq": 256, "timestamp_ms": 1}, "seq must be an integer 0..255"),
        ({"seq": -1, "timestamp_ms": 1}, "seq must be"),
        ({"seq": 0, "timestamp_ms": -1}, "timestamp_ms must be"),
    ],
)
def test_encode_checks_the_header(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(SparkplugError, match=message):
        encode_payload([], **kwargs)  # type: ignore[arg-type]


def test_encode_needs_a_name_or_alias() -> None:
    with pytest.raises(SparkplugError, match="name or an alias"):
        encode_payload([Metric(value=1)], seq=0, timestamp_ms=1)


def _metric_bytes(*fields: bytes) -> bytes:
    return _vfield(1, TS) + _lfield(2, b"".join(fields)) + _vfield(3, 0)


MALFORMED = {
    "garbage": b"\xff\xff\xff",
    "text": b"hello, world",
    "truncated": encode_payload([Metric(name="x", value="abc")], seq=1, timestamp_ms=TS)[:-3],
    "random": random.Random(7).randbytes(64),
    "unknown payload field": _vfield(1, TS) + _vfield(9, 1),
    "unknown metric field": _metric_bytes(_lfield(1, b"x"), _vfield(21, 1), _vfield(14, 1)),
    "name not utf-8": _metric_bytes(_lfield(1, b"\xff\xfe"), _vfield(14, 1)),
    "unknown datatype": _metric_bytes(_lfield(1, b"x"), _vfield(4, 99), _vfield(14, 1)),
    "unsupported datatype": _metric_bytes(_lfield(1, b"x"), _vfield(4, 16), _lfield(17, b"")),
    "wrong value field": _metric_bytes(_lfield(1, b"x"), _vfield(4, 10), _vfield(14, 1)),
    "no name nor alias": _metric_bytes(_vfield(4, 11), _vfield(14, 1)),
    "no value": _metric_bytes(_lfield(1, b"x"), _vfield(4, 11)),
    "uint8 too large": _metric_bytes(_lfield(1, b"x"), _vfield(4, 5), _vfield(10, 256)),
    "bad array length": _metric_bytes(_lfield(1, b"x"), _vfield(4, 23), _lfield(16, b"\x01")),
    "string array without nul": _metric_bytes(_lfield(1, b"x"), _vfield(4, 33), _lfield(16, b"a")),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_bytes_raise_sparkplug_error(data: bytes) -> None:
    with pytest.raises(SparkplugError) as caught:
        decode_payload(data)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, SimlabError)
    assert "protobuf" not in type(caught.value).__module__
    assert str(caught.value)


def test_decode_refuses_non_bytes() -> None:
    with pytest.raises(SparkplugError, match="bytes, not str"):
        decode_payload("not bytes")  # type: ignore[arg-type]


def test_decodes_hand_assembled_wire_bytes() -> None:
    """Wire compatibility: bytes assembled by hand from the spec's field numbers, as any
    other Sparkplug implementation would send them, decode to what they say."""
    temperature = b"".join(
        [
            _lfield(1, b"temperature"),  # name
            _vfield(2, 5),  # alias
            _vfield(3, TS),  # timestamp
            _vfield(4, 10),  # datatype Double
            _double(13, 21.5),  # double_value
        ]
    )
    data = _vfield(1, TS) + _lfield(2, temperature) + _vfield(3, 7)
    payload = decode_payload(data)
    assert payload == Payload(
        timestamp_ms=TS,
        seq=7,
        metrics=(
            Metric(
                name="temperature",
                alias=5,
                timestamp_ms=TS,
                datatype=DataType.Double,
                value=21.5,
            ),
        ),
    )
    # and our encoder produces exactly those bytes
    assert encode_payload(payload.metrics, seq=7, timestamp_ms=TS) == data


def test_decodes_other_implementations_integer_conventions() -> None:
    """Int16 -87 sign-extended to 32 bits (Tahu) or to 16 bits only, UInt32 in long_value
    (historical reference implementation), a DATA metric with alias only and no datatype."""
    wide = _lfield(1, b"a") + _vfield(4, 2) + _vfield(10, 0xFFFF_FFA9)
    narrow = _lfield(1, b"b") + _vfield(4, 2) + _vfield(10, 0xFFA9)
    uint32 = _lfield(1, b"c") + _vfield(4, 7) + _vfield(11, 4_000_000_000)
    negative_int64 = _lfield(1, b"d") + _vfield(4, 4) + _vfield(11, 2**64 - 2)
    by_alias = _vfield(2, 9) + _vfield(10, 0xFFFF_FFFF)
    data = _vfield(1, TS) + b"".join(
        _lfield(2, m) for m in (wide, narrow, uint32, negative_int64, by_alias)
    )
    a, b, c, d, alias9 = decode_payload(data).metrics
    assert (a.value, b.value, c.value, d.value) == (-87, -87, 4_000_000_000, -2)
    assert alias9.name is None and alias9.datatype is None and alias9.value == 0xFFFF_FFFF
    assert apply_datatype(alias9, DataType.Int32).value == -1
    assert apply_datatype(alias9, DataType.UInt32).value == 0xFFFF_FFFF
    with pytest.raises(SparkplugError, match="does not fit datatype Boolean"):
        apply_datatype(alias9, DataType.Boolean)


def test_data_metrics_use_the_birth_datatypes_value_field() -> None:
    """Int32 goes in int_value even when the datatype is left off the wire, so a decoder
    that picks the field from the BIRTH's datatype finds it."""
    metric = Metric(alias=1, timestamp_ms=TS, datatype=DataType.Int32, value=-1)
    data = encode_payload([metric], seq=1, timestamp_ms=TS, include_datatypes=False)
    expected_metric = _vfield(2, 1) + _vfield(3, TS) + _vfield(10, 0xFFFF_FFFF)
    assert data == _vfield(1, TS) + _lfield(2, expected_metric) + _vfield(3, 1)


# --- topics ------------------------------------------------------------------------------


def test_topics_build_and_parse() -> None:
    assert node_topic("plant", "NBIRTH", "gw1") == "spBv1.0/plant/NBIRTH/gw1"
    assert device_topic("plant", MessageType.DDATA, "gw1", "pump-1") == (
        "spBv1.0/plant/DDATA/gw1/pump-1"
    )
    assert state_topic("scada") == "spBv1.0/STATE/scada"
    assert parse_topic("spBv1.0/plant/DCMD/gw1/pump-1") == EdgeTopic(
        "plant", MessageType.DCMD, "gw1", "pump-1"
    )
    assert parse_topic("spBv1.0/STATE/scada") == StateTopic("scada")
    for kind in MessageType:
        device = "dev" if kind.is_device else None
        topic = EdgeTopic("g", kind, "n", device)
        assert parse_topic(topic.topic) == topic
        assert str(topic) == topic.topic
    assert [k for k in MessageType if not k.has_seq] == [
        MessageType.NDEATH,
        MessageType.NCMD,
        MessageType.DCMD,
    ]


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("spAv1.0/plant/NDATA/gw1", "must start with 'spBv1.0/'"),
        ("plant/NDATA/gw1", "must start with"),
        ("spBv1.0/plant/NDATA", "has 3 levels"),
        ("spBv1.0/plant/NDATA/gw1/d/extra", "has 6 levels"),
        ("spBv1.0/plant/ndata/gw1", "unknown Sparkplug message type 'ndata'"),
        ("spBv1.0/plant/NDATA/gw1/pump", "NDATA topics have no device_id"),
        ("spBv1.0/plant/DDATA/gw1", "DDATA topics need a device_id"),
        ("spBv1.0/plant/DDATA/gw1/", "device_id must not be empty"),
        ("spBv1.0//NDATA/gw1", "group_id must not be empty"),
        ("spBv1.0/pl+nt/NDATA/gw1", r"group_id 'pl\+nt' contains '\+'"),
        ("spBv1.0/plant/NDATA/g#1", "edge_node_id 'g#1' contains '#'"),
        ("spBv1.0/STATE/", "host_id must not be empty"),
    ],
)
def test_bad_topics_are_refused_with_the_reason(topic: str, message: str) -> None:
    with pytest.raises(SparkplugTopicError, match=message):
        parse_topic(topic)


def test_building_a_topic_validates_ids() -> None:
    with pytest.raises(SparkplugTopicError, match="'/'"):
        node_topic("a/b", MessageType.NDATA, "n")
    with pytest.raises(SparkplugTopicError, match="device_id"):
        device_topic("g", MessageType.DBIRTH, "n", "d+")
    with pytest.raises(SparkplugTopicError, match="unknown Sparkplug message type"):
        node_topic("g", "NSPAM", "n")
    with pytest.raises(SparkplugTopicError, match="host_id"):
        state_topic("a#")


# --- edge node session ---------------------------------------------------------------------


def _session() -> EdgeNodeSession:
    pump = [MetricDef.for_tag("flow", "float", 1.0), MetricDef("temp", DataType.Int32, -5)]
    tank = [MetricDef.for_tag("level", "float", 0.5), MetricDef.for_tag("high", "bool", False)]
    node = [MetricDef("uptime", DataType.UInt32, 0), MetricDef.for_tag("mode", "string", "auto")]
    return EdgeNodeSession("plant", "gw1", {"pump1": pump, "tank": tank}, node_metrics=node)


def _online(session: EdgeNodeSession, ts: int = TS) -> list[MqttMessage]:
    session.new_connection(timestamp_ms=ts)
    return session.on_connect(timestamp_ms=ts)


def _decode(message: MqttMessage) -> Payload:
    return decode_payload(message.payload)


def test_will_is_an_ndeath_with_bdseq_and_no_seq() -> None:
    session = _session()
    with pytest.raises(SparkplugStateError, match="new_connection"):
        session.will()
    will = session.new_connection(timestamp_ms=TS)
    assert session.will() is will
    assert (will.topic, will.qos, will.retain) == ("spBv1.0/plant/NDEATH/gw1", 1, False)
    payload = _decode(will)
    assert payload.seq is None
    assert payload.metrics == (
        Metric(name=BD_SEQ, timestamp_ms=TS, datatype=DataType.Int64, value=0),
    )


def test_birth_sequence() -> None:
    session = _session()
    will = session.new_connection(timestamp_ms=TS)
    nbirth, *dbirths = session.on_connect(timestamp_ms=TS + 1)
    assert session.online
    assert (nbirth.topic, nbirth.qos, nbirth.retain) == ("spBv1.0/plant/NBIRTH/gw1", 0, False)
    birth = _decode(nbirth)
    assert birth.seq == 0 and birth.timestamp_ms == TS + 1
    will_bd = _decode(will).metric(BD_SEQ)
    assert will_bd is not None and will_bd.value == 0
    assert birth.metric(BD_SEQ) == Metric(BD_SEQ, None, TS + 1, DataType.Int64, 0)
    rebirth = birth.metric(REBIRTH)
    assert rebirth is not None
    assert (rebirth.datatype, rebirth.value, rebirth.alias) == (DataType.Boolean, False, None)
    assert birth.metric("uptime") == Metric("uptime", 1, TS + 1, DataType.UInt32, 0)
    assert birth.metric("mode") == Metric("mode", 2, TS + 1, DataType.String, "auto")
    assert [m.topic for m in dbirths] == [
        "spBv1.0/plant/DBIRTH/gw1/pump1",
        "spBv1.0/plant/DBIRTH/gw1/tank",
    ]
    pump, tank = (_decode(m) for m in dbirths)
    assert (pump.seq, tank.seq) == (1, 2)
    assert all((m.qos, m.retain) == (0, False) for m in dbirths)
    assert pump.metrics == (
        Metric("flow", 3, TS + 1, DataType.Double, 1.0),
        Metric("temp", 4, TS + 1, DataType.Int32, -5),
    )
    assert [(m.name, m.alias, m.datatype) for m in tank.metrics] == [
        ("level", 5, DataType.Double),
        ("high", 6, DataType.Boolean),
    ]


def test_aliases_are_unique_across_node_and_devices() -> None:
    session = _session()
    aliases = [session.alias("uptime"), session.alias("mode")]
    aliases += [session.alias(n, "pump1") for n in ("flow", "temp")]
    aliases += [session.alias(n, "tank") for n in ("level", "high")]
    assert aliases == [1, 2, 3, 4, 5, 6]
    with pytest.raises(SparkplugError, match="has no metric 'nope'"):
        session.alias("nope", "tank")


def test_bdseq_increments_per_connection_and_the_will_matches_the_nbirth() -> None:
    session = _session()
    seen = []
    for connection in range(3):
        will = session.new_connection(timestamp_ms=TS + connection)
        nbirth = session.on_connect(timestamp_ms=TS + connection)[0]
        will_bd = _decode(will).metric(BD_SEQ)
        birth_bd = _decode(nbirth).metric(BD_SEQ)
        assert will_bd is not None and birth_bd is not None
        assert will_bd.value == birth_bd.value == session.bd_seq
        assert _decode(nbirth).seq == 0
        seen.append(birth_bd.value)
    assert seen == [0, 1, 2]


def test_bdseq_wraps_255_to_0() -> None:
    session = _session()
    values = []
    for _ in range(258):
        will = session.new_connection(timestamp_ms=TS)
        metric = _decode(will).metric(BD_SEQ)
        assert metric is not None
        values.append(metric.value)
    assert values[254:] == [254, 255, 0, 1]


def test_every_connect_needs_a_new_will() -> None:
    session = _session()
    with pytest.raises(SparkplugStateError, match="new_connection"):
        session.on_connect(timestamp_ms=TS)
    _online(session)
    with pytest.raises(SparkplugStateError, match="fresh Will"):
        session.on_connect(timestamp_ms=TS)


def test_seq_increments_per_message_and_wraps_255_to_0() -> None:
    session = EdgeNodeSession("g", "n", node_metrics=[MetricDef("count", DataType.Int64, 0)])
    assert [_decode(m).seq for m in _online(session)] == [0]
    seqs = []
    for count in range(1, 301):
        message = session.node_data({"count": count}, timestamp_ms=TS + count)
        assert message is not None
        seqs.append(_decode(message).seq)
    assert seqs[:3] == [1, 2, 3]
    assert seqs[253:258] == [254, 255, 0, 1, 2]
    assert seqs == [n % 256 for n in range(1, 301)]


def test_ddata_carries_only_changed_metrics_by_alias() -> None:
    session = _session()
    _online(session)
    assert session.device_data("pump1", {"flow": 1.0, "temp": -5}, timestamp_ms=TS) is None
    message = session.device_data("pump1", {"flow": 1.0, "temp": -7}, timestamp_ms=TS + 9)
    assert message is not None
    assert message.topic == "spBv1.0/plant/DDATA/gw1/pump1"
    assert (message.qos, message.retain) == (0, False)
    payload = _decode(message)
    assert payload.seq == 3
    (metric,) = payload.metrics
    assert (metric.name, metric.alias, metric.datatype) == (None, 4, None)
    assert metric.timestamp_ms == TS + 9
    assert apply_datatype(metric, DataType.Int32).value == -7
    assert session.value("temp", "pump1") == -7


def test_ndata_and_nan_is_unchanged_only_against_nan() -> None:
    session = EdgeNodeSession("g", "n", node_metrics=[MetricDef("x", DataType.Double, 0.0)])
    _online(session)
    assert session.node_data({"x": float("nan")}, timestamp_ms=TS) is not None
    assert session.node_data({"x": float("nan")}, timestamp_ms=TS) is None
    message = session.node_data({"x": None}, timestamp_ms=TS)
    assert message is not None
    (metric,) = _decode(message).metrics
    assert metric.is_null and metric.alias == 1


def test_data_checks_names_and_values() -> None:
    session = _session()
    _online(session)
    with pytest.raises(SparkplugError, match="has no metric 'speed'.*BIRTH must declare"):
        session.device_data("pump1", {"speed": 1.0}, timestamp_ms=TS)
    with pytest.raises(SparkplugError, match="'temp'.*out of range for Int32"):
        session.device_data("pump1", {"temp": 2**40}, timestamp_ms=TS)
    with pytest.raises(SparkplugError, match="no device 'pump9'"):
        session.device_data("pump9", {"flow": 1.0}, timestamp_ms=TS)
    with pytest.raises(SparkplugError, match="has no metric 'bdSeq'"):
        session.node_data({BD_SEQ: 3}, timestamp_ms=TS)


def test_values_reported_offline_are_carried_by_the_next_birth() -> None:
    session = _session()
    assert session.node_data({"uptime": 42}, timestamp_ms=TS) is None
    assert _decode(_online(session)[0]).metric("uptime") == Metric(
        "uptime", 1, TS, DataType.UInt32, 42
    )


def test_ncmd_rebirth_reemits_nbirth_and_dbirths_with_the_same_bdseq() -> None:
    session = _session()
    _online(session)
    session.node_data({"uptime": 5}, timestamp_ms=TS)
    request = rebirth_request("plant", "gw1", timestamp_ms=TS + 100)
    assert (request.topic, request.qos, request.retain) == ("spBv1.0/plant/NCMD/gw1", 0, False)
    assert _decode(request).seq is None
    command = session.handle_command(request.topic, request.payload, timestamp_ms=TS + 200)
    assert command.rebirth and command.writes == () and command.rejected == ()
    topics = [m.topic for m in command.messages]
    assert topics == [
        "spBv1.0/plant/NBIRTH/gw1",
        "spBv1.0/plant/DBIRTH/gw1/pump1",
        "spBv1.0/plant/DBIRTH/gw1/tank",
    ]
    nbirth = _decode(command.messages[0])
    assert nbirth.seq == 0 and nbirth.timestamp_ms == TS + 200
    bd_seq = nbirth.metric(BD_SEQ)
    assert bd_seq is not None and bd_seq.value == 0 == session.bd_seq
    assert nbirth.metric("uptime") == Metric("uptime", 1, TS + 200, DataType.UInt32, 5)
    assert session.seq == 3


def test_ncmd_rebirth_false_does_nothing() -> None:
    session = _session()
    _online(session)
    metric = Metric(name=REBIRTH, datatype=DataType.Boolean, value=False)
    data = encode_payload([metric], seq=None, timestamp_ms=TS)
    command = session.handle_command("spBv1.0/plant/NCMD/gw1", data, timestamp_ms=TS)
    assert not command.rebirth and command.messages == ()


def test_ncmd_writes_are_returned_by_name_and_bad_ones_rejected() -> None:
    session = _session()
    _online(session)
    metrics = [
        Metric(alias=1, value=7, datatype=DataType.UInt32),  # uptime, by alias
        Metric(name="mode", value="manual"),
        Metric(alias=99, value=1),
        Metric(name=BD_SEQ, value=3),
        Metric(alias=2, value=5),  # mode is a String
        Metric(alias=1, is_null=True),
    ]
    data = encode_payload(metrics, seq=None, timestamp_ms=TS, include_datatypes=False)
    command = session.handle_command("spBv1.0/plant/NCMD/gw1", data, timestamp_ms=TS)
    assert command.device_id is None
    assert command.writes == (("uptime", 7), ("mode", "manual"))
    assert [name for name, _ in command.rejected] == ["alias 99", BD_SEQ, "mode", "uptime"]
    assert "does not fit datatype String" in command.rejected[2][1]
    assert not command.rebirth


def test_dcmd_returns_writes_for_the_device() -> None:
    session = _session()
    _online(session)
    metrics = [Metric(alias=4, datatype=DataType.Int32, value=-3), Metric(alias=1, value=9)]
    data = encode_payload(metrics, seq=None, timestamp_ms=TS, include_datatypes=False)
    command = session.handle_command("spBv1.0/plant/DCMD/gw1/pump1", data, timestamp_ms=TS)
    assert command.device_id == "pump1"
    assert command.writes == (("temp", -3),)
    assert command.rejected[0][0] == "alias 1"  # uptime is the node's, not the device's


@pytest.mark.parametrize(
    "topic",
    [
        "spBv1.0/plant/NCMD/gw2",
        "spBv1.0/other/NCMD/gw1",
        "spBv1.0/plant/NDATA/gw1",
        "spBv1.0/STATE/host",
        "spBv1.0/plant/DCMD/gw1/pump9",
    ],
)
def test_commands_for_someone_else_are_refused(topic: str) -> None:
    session = _session()
    _online(session)
    with pytest.raises(SparkplugError):
        session.handle_command(topic, b"", timestamp_ms=TS)


def test_malformed_command_payload_raises_sparkplug_error() -> None:
    session = _session()
    _online(session)
    with pytest.raises(SparkplugError, match="not a Sparkplug B payload"):
        session.handle_command("spBv1.0/plant/NCMD/gw1", b"\xff\xff", timestamp_ms=TS)


def test_ddeath_and_device_rebirth() -> None:
    session = _session()
    _online(session)
    death = session.device_death("tank", timestamp_ms=TS)
    assert (death.topic, death.qos, death.retain) == ("spBv1.0/plant/DDEATH/gw1/tank", 0, False)
    assert _decode(death).seq == 3 and _decode(death).metrics == ()
    with pytest.raises(SparkplugStateError, match="already dead"):
        session.device_death("tank", timestamp_ms=TS)
    assert session.device_data("tank", {"level": 0.9}, timestamp_ms=TS) is None
    # a rebirth leaves the dead device out
    assert len(session.rebirth(timestamp_ms=TS)) == 2
    birth = session.device_birth("tank", timestamp_ms=TS + 1)
    payload = _decode(birth)
    assert birth.topic == "spBv1.0/plant/DBIRTH/gw1/tank"
    assert payload.seq == 2
    assert payload.metric("level") == Metric("level", 5, TS + 1, DataType.Double, 0.9)


def test_disconnect_sends_ndeath_and_needs_a_new_connection() -> None:
    session = _session()
    with pytest.raises(SparkplugStateError):
        session.disconnect(timestamp_ms=TS)
    _online(session)
    death = session.disconnect(timestamp_ms=TS + 5)
    assert death.topic == "spBv1.0/plant/NDEATH/gw1"
    assert _decode(death).metric(BD_SEQ) == Metric(BD_SEQ, None, TS + 5, DataType.Int64, 0)
    assert not session.online
    assert session.node_data({"uptime": 1}, timestamp_ms=TS) is None
    with pytest.raises(SparkplugStateError):
        session.on_connect(timestamp_ms=TS)
    with pytest.raises(SparkplugStateError, match="on_connect"):
        session.rebirth(timestamp_ms=TS)


def test_new_connection_is_safe_to_call_from_other_threads() -> None:
    """The MQTT client's Will factory runs on its connecting thread."""
    session = _session()
    with ThreadPoolExecutor(max_workers=8) as pool:
        wills = list(pool.map(lambda _: session.new_connection(timestamp_ms=TS), range(200)))
    values = sorted(_bd_seq_of(will) for will in wills)
    assert values == sorted(n % 256 for n in range(200))
    assert session.bd_seq == 199


def _bd_seq_of(message: MqttMessage) -> int:
    metric = _decode(message).metric(BD_SEQ)
    assert metric is not None and isinstance(metric.value, int)
    return metric.value


def test_subscriptions_are_ncmd_and_dcmd_at_qos_1() -> None:
    assert _session().subscriptions() == [
        ("spBv1.0/plant/NCMD/gw1", 1),
        ("spBv1.0/plant/DCMD/gw1/pump1", 1),
        ("spBv1.0/plant/DCMD/gw1/tank", 1),
    ]


def test_session_definition_errors() -> None:
    with pytest.raises(SparkplugError, match="reserved"):
        EdgeNodeSession("g", "n", node_metrics=[MetricDef(REBIRTH, DataType.Boolean, False)])
    with pytest.raises(SparkplugError, match="defined twice"):
        EdgeNodeSession(
            "g", "n", {"d": [MetricDef.for_tag("a", "int"), MetricDef.for_tag("a", "int")]}
        )
    with pytest.raises(SparkplugTopicError, match="device_id"):
        EdgeNodeSession("g", "n", {"d/1": []})
    with pytest.raises(SparkplugTopicError, match="edge_node_id"):
        EdgeNodeSession("g", "n#")
    with pytest.raises(SparkplugError, match="out of range"):
        MetricDef("x", DataType.UInt8, 300)


# --- host sequence tracking ----------------------------------------------------------------


def _observe(tracker: SequenceTracker, message: MqttMessage) -> SeqStatus:
    return tracker.observe(message.topic, decode_payload(message.payload)).status


def test_tracker_follows_a_healthy_session_across_seq_wrap() -> None:
    session = EdgeNodeSession("g", "n", {"d": [MetricDef("v", DataType.Int64, 0)]})
    tracker = SequenceTracker()
    births = _online(session)
    assert [_observe(tracker, m) for m in births] == [SeqStatus.BIRTH, SeqStatus.IN_ORDER]
    statuses = set()
    for value in range(1, 600):
        message = session.device_data("d", {"v": value}, timestamp_ms=TS)
        assert message is not None
        statuses.add(_observe(tracker, message))
    assert statuses == {SeqStatus.IN_ORDER}
    assert tracker.is_online("g", "n") and tracker.bd_seq("g", "n") == 0
    assert tracker.online_devices("g", "n") == {"d"}
    assert tracker.gaps("g", "n") == 0


def test_tracker_reports_gaps() -> None:
    session = EdgeNodeSession("g", "n", node_metrics=[MetricDef("v", DataType.Int64, 0)])
    tracker = SequenceTracker()
    _observe(tracker, _online(session)[0])
    messages = [session.node_data({"v": v}, timestamp_ms=TS) for v in range(1, 6)]
    assert all(m is not None for m in messages)
    first, _lost, _lost_too, fourth, fifth = messages
    assert first is not None and fourth is not None and fifth is not None
    assert _observe(tracker, first) is SeqStatus.IN_ORDER
    report = tracker.observe(fourth.topic, decode_payload(fourth.payload))
    assert report.status is SeqStatus.GAP
    assert (report.expected, report.received, report.missing) == (2, 4, 2)
    assert report.accepted and report.rebirth_advised
    assert "expected seq 2, got 4" in report.detail
    assert _observe(tracker, fifth) is SeqStatus.IN_ORDER  # resynchronised
    assert tracker.gaps("g", "n") == 1


def test_tracker_ignores_a_stale_ndeath_and_honours_the_matching_one() -> None:
    session = _session()
    tracker = SequenceTracker()
    old_will = session.new_connection(timestamp_ms=TS)
    for message in session.on_connect(timestamp_ms=TS):
        _observe(tracker, message)
    # the connection drops; the node reconnects before the broker delivers the old Will
    new_will = session.new_connection(timestamp_ms=TS + 10)
    for message in session.on_connect(timestamp_ms=TS + 10):
        _observe(tracker, message)
    assert tracker.bd_seq("plant", "gw1") == 1
    report = tracker.observe(old_will.topic, decode_payload(old_will.payload))
    assert report.status is SeqStatus.STALE_DEATH and not report.accepted
    assert "bdSeq 0 does not match" in report.detail
    assert tracker.is_online("plant", "gw1")
    assert tracker.online_devices("plant", "gw1") == {"pump1", "tank"}
    assert _observe(tracker, new_will) is SeqStatus.DEATH
    assert not tracker.is_online("plant", "gw1")
    assert tracker.online_devices("plant", "gw1") == frozenset()
    # a repeated NDEATH after the death is stale too, and data now has no session
    assert _observe(tracker, new_will) is SeqStatus.STALE_DEATH
    data = session.node_data({"uptime": 3}, timestamp_ms=TS)
    assert data is not None
    report = tracker.observe(data.topic, decode_payload(data.payload))
    assert report.status is SeqStatus.NO_SESSION and report.rebirth_advised


def test_tracker_flags_data_without_birth_and_invalid_messages() -> None:
    tracker = SequenceTracker()
    ndata = "spBv1.0/g/NDATA/n"
    nbirth = "spBv1.0/g/NBIRTH/n"
    bd = Metric(name=BD_SEQ, timestamp_ms=TS, datatype=DataType.Int64, value=4)
    assert tracker.observe(ndata, Payload(TS, 3)).status is SeqStatus.NO_SESSION
    assert tracker.observe(nbirth, Payload(TS, 1, (bd,))).status is SeqStatus.INVALID
    assert tracker.observe(nbirth, Payload(TS, 0)).status is SeqStatus.INVALID
    assert tracker.observe(nbirth, Payload(TS, 0, (bd,))).status is SeqStatus.BIRTH
    assert tracker.bd_seq("g", "n") == 4
    assert tracker.observe(ndata, Payload(TS, None)).status is SeqStatus.INVALID
    assert tracker.observe(ndata, Payload(TS, 300)).status is SeqStatus.INVALID
    assert tracker.observe("spBv1.0/g/NDEATH/n", Payload(TS, None)).status is SeqStatus.INVALID
    assert tracker.observe("spBv1.0/g/NCMD/n", Payload(TS, None)).status is SeqStatus.NOT_SEQUENCED
    assert tracker.observe(parse_topic(ndata), Payload(TS, 1)).status is SeqStatus.IN_ORDER
    with pytest.raises(SparkplugTopicError, match="STATE"):
        tracker.observe("spBv1.0/STATE/host", Payload(TS, None))
    assert not tracker.is_online("x", "y") and tracker.bd_seq("x", "y") is None
