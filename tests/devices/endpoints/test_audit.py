"""The session audit as plain data: method calls are their own kind of event, not writes."""

from __future__ import annotations

from devices.endpoints.audit import SessionAudit


def test_a_method_call_is_recorded_as_a_call_and_found_by_its_tag() -> None:
    audit = SessionAudit()
    session = audit.open("plc1", "opcua", "127.0.0.1:5000", 0.0)
    audit.record(session, 1.5, "write", "level_sp", value=1.2, node_id="ns=2;s=plc1.level_sp")
    audit.record(session, 2.0, "call", "AcknowledgeFault", tag="hh_reset", status="Good")
    audit.record(session, 3.0, "call", "AcknowledgeFault", ok=False, reason="no", tag="hh_reset")
    (call, _) = audit.query(kind="call")
    assert (call.kind, call.target, call.detail["tag"]) == ("call", "AcknowledgeFault", "hh_reset")
    assert [e.target for e in audit.query(kind="write")] == ["level_sp"]
    assert audit.call_at("plc1", "hh_reset", 2.0) is call
    assert audit.call_at("plc1", "hh_reset", 2.0 + 1e-9) is call  # the same instant
    assert audit.call_at("plc1", "hh_reset", 3.0) is None  # refused: it set nothing
    assert audit.call_at("plc1", "hh_reset", 1.5) is None
    assert audit.call_at("plc2", "hh_reset", 2.0) is None
    assert audit.call_at("plc1", "level_sp", 1.5) is None  # a write is no call
