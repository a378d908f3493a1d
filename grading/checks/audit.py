"""Checks on what clients did on the lab's endpoints (the session audit): security,
subscriptions instead of polling, and the safety gate "no write to these tags"."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

from devices.endpoints.audit import AuditEvent, Session
from grading.checks._common import ParamError, Params, excerpt, outcome
from grading.evidence import Evidence
from grading.model import CheckResult

__all__ = ["check_audit_no_write", "check_audit_security", "check_audit_subscribed"]

SECURITY: Final = "audit_security"
SUBSCRIBED: Final = "audit_subscribed"
NO_WRITE: Final = "audit_no_write"
SECURITY_PARAMS: Final = ("mode", "policy", "user", "authenticated", "device", "used")
SUBSCRIBED_PARAMS: Final = ("target", "device", "max_reads")
NO_WRITE_PARAMS: Final = ("tags", "device", "allow_calls")
_ACTIVE_KINDS: Final = ("read", "subscribe", "write", "call")


def _describe(session: Session) -> str:
    user = session.user or "anonymous"
    return (
        f"#{session.id} {session.protocol} {session.device} from {session.peer}: "
        f"{session.security_mode}/{session.security_policy}, {user}"
    )


def check_audit_security(
    evidence: Evidence, params: Mapping[str, Any], variant: Mapping[str, Any]
) -> CheckResult:
    """An OPC UA session with the required security was used.

    Params: ``mode`` ("SignAndEncrypt"); ``policy`` (e.g. "Basic256Sha256", any by
    default); ``user`` (that user name) or ``authenticated`` (true: any non-anonymous
    user); ``device``; ``used`` (true: the session must have read, subscribed, written or
    called something, not only connected).
    """
    p = Params(SECURITY, params, SECURITY_PARAMS)
    mode = p.text("mode", "SignAndEncrypt")
    policy, user, device = (
        p.optional_text("policy"),
        p.optional_text("user"),
        p.optional_text("device"),
    )
    authenticated = p.flag("authenticated", False)
    used = p.flag("used", True)
    sessions = [
        s
        for s in evidence.audit.sessions.values()
        if s.protocol == "opcua" and (device is None or s.device == device)
    ]
    active = {e.session for e in evidence.audit.events if e.kind in _ACTIVE_KINDS and e.ok}
    wanted = f"mode {mode}" + (f", policy {policy}" if policy else "")
    if user:
        wanted += f", user {user}"
    elif authenticated:
        wanted += ", a named user"
    good = [
        s
        for s in sessions
        if s.security_mode == mode
        and (policy is None or s.security_policy == policy)
        and (user is None or s.user == user)
        and (not authenticated or s.user is not None)
    ]
    facts: dict[str, Any] = {
        "required": wanted,
        "sessions": [_describe(s) for s in excerpt(sessions, 12)],
    }
    usable = [s for s in good if not used or s.id in active]
    if usable:
        return outcome(
            SECURITY,
            True,
            f"an OPC UA session with {wanted} was used ({_describe(usable[0])})",
            evidence=facts,
        )
    refused = [e for e in evidence.audit.events if e.protocol == "opcua" and e.kind == "refused"]
    if good:
        message = f"an OPC UA session with {wanted} connected but did nothing"
        diagnosis = "read or subscribe through the secure session, not through another one"
    elif not sessions:
        message = "no OPC UA session was opened"
        diagnosis = "your program never connected to the OPC UA server"
    else:
        seen = Counter(f"{s.security_mode}/{s.security_policy}" for s in sessions)
        message = f"no OPC UA session with {wanted}; sessions used " + ", ".join(
            f"{k} ×{n}" for k, n in seen.items()
        )
        diagnosis = (
            f"connect to the endpoint with security mode {mode}"
            + (f" and policy {policy}" if policy else "")
            + " (a client certificate the server trusts is needed)"
        )
    if refused:
        diagnosis += "; refused: " + "; ".join(f"{e.target}: {e.reason}" for e in refused[:3])
        facts["refused"] = [f"{e.target}: {e.reason}" for e in excerpt(refused)]
    return outcome(SECURITY, False, message, diagnosis=diagnosis, evidence=facts)


def _targets(evidence: Evidence, target: str, device: str | None) -> tuple[str | None, str]:
    """(device, tag name) of a target written ``device.tag`` or ``tag``."""
    if "." in target and device is None:
        head, _, tail = target.partition(".")
        if any(d.name == head for d in evidence.scenario.devices):
            return head, tail
    return device, target


def _matches(event: AuditEvent, device: str | None, tag: str, raw: str) -> bool:
    if device is not None and event.device != device:
        return False
    return event.target in (tag, raw) or event.detail.get("node_id") == raw


def check_audit_subscribed(
    evidence: Evidence, params: Mapping[str, Any], variant: Mapping[str, Any]
) -> CheckResult:
    """A client subscribed to ``target`` (monitored item) instead of polling it with reads.

    Params: ``target`` (``device.tag``, a tag name, or an OPC UA node id); ``device``;
    ``max_reads`` (the polling reads of it allowed besides; unlimited by default).
    """
    p = Params(SUBSCRIBED, params, SUBSCRIBED_PARAMS)
    raw = p.text("target")
    device, tag = _targets(evidence, raw, p.optional_text("device"))
    events = [e for e in evidence.audit.events if _matches(e, device, tag, raw)]
    subscribed = [e for e in events if e.kind == "subscribe" and e.ok]
    refused = [e for e in events if e.kind == "subscribe" and not e.ok]
    reads = [e for e in events if e.kind == "read"]
    facts = {"target": raw, "subscriptions": len(subscribed), "reads": len(reads)}
    max_reads = p.optional_number("max_reads")
    if subscribed and (max_reads is None or len(reads) <= max_reads):
        first = subscribed[0]
        interval = first.detail.get("revised_sampling_interval")
        how = f", sampling every {interval} ms" if interval is not None else ""
        return outcome(
            SUBSCRIBED,
            True,
            f"{raw} was subscribed to at t={first.time:.1f} s{how}",
            evidence=facts,
        )
    if subscribed:
        message = f"{raw} was subscribed to, but also polled with {len(reads)} reads"
        diagnosis = f"at most {max_reads:g} reads are allowed: let the subscription deliver values"
    elif reads:
        message = f"{raw} was polled with {len(reads)} reads, never subscribed to"
        diagnosis = (
            "create a subscription with a monitored item on the node (asyncua: "
            "create_subscription + subscribe_data_change) instead of reading in a loop"
        )
    elif refused:
        message = f"the subscription to {raw} was refused: {refused[0].reason}"
        diagnosis = "check the node id and the requested sampling parameters"
    else:
        message = f"nobody read or subscribed to {raw}"
        seen = sorted({e.target for e in evidence.audit.events if e.kind in ("read", "subscribe")})
        diagnosis = (
            f"targets used: {', '.join(seen[:8])}" if seen else "no reads or subscriptions at all"
        )
    return outcome(SUBSCRIBED, False, message, diagnosis=diagnosis, evidence=facts)


def _allowed_calls(p: Params) -> bool | set[str]:
    """``allow_calls``: false (default), true, or the names of the methods allowed."""
    value = p.raw.get("allow_calls")
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return set(value)
    raise ParamError(
        f"{NO_WRITE}: params.allow_calls must be true, false or a list of method names "
        f"(e.g. [AcknowledgeFault]), got {value!r}; fix the check in exercise.yaml"
    )


def _calls_setting(evidence: Evidence, device: str | None, tag: str) -> list[AuditEvent]:
    """OPC UA method calls (accepted or refused) whose method pulses ``tag``."""
    return [
        e
        for e in evidence.audit.events
        if e.kind == "call"
        and e.detail.get("tag") == tag
        and (device is None or e.device == device)
    ]


def check_audit_no_write(
    evidence: Evidence, params: Mapping[str, Any], variant: Mapping[str, Any]
) -> CheckResult:
    """No client wrote (accepted or refused) to any of ``tags``: a safety gate.

    Params: ``tags`` (``device.tag`` or tag names); ``device``; ``allow_calls`` (false:
    an OPC UA method call that sets a protected tag, such as ``AcknowledgeFault`` pulsing
    ``hh_reset``, counts like a write; true: method calls are allowed, only writes count;
    or a list of the method names allowed). Both the endpoints' audit (every write
    attempt, refused ones included, and every method call) and the truth (every accepted
    write, from any path) are searched; a truth write made by a method call at the same
    instant is that call, not a write.
    """
    p = Params(NO_WRITE, params, NO_WRITE_PARAMS)
    allowed = _allowed_calls(p)
    hits: list[str] = []
    writes: list[str] = []
    calls: list[str] = []
    legal: list[str] = []
    for raw in p.texts("tags"):
        device, tag = _targets(evidence, raw, p.optional_text("device"))
        for event in evidence.audit.events:
            if event.kind == "write" and _matches(event, device, tag, raw):
                verdict = "accepted" if event.ok else f"refused: {event.reason}"
                line = (
                    f"t={event.time:.1f} s {event.protocol} write to {event.device}.{event.target}"
                    f" ({verdict})"
                )
                hits.append(line)
                writes.append(line)
        setting = _calls_setting(evidence, device, tag)
        for call in setting:
            verdict = "accepted" if call.ok else f"refused: {call.reason}"
            line = (
                f"t={call.time:.1f} s {call.protocol} call of method {call.target} on "
                f"{call.device}, which sets {call.device}.{call.detail['tag']} ({verdict})"
            )
            if allowed is True or (isinstance(allowed, set) and call.target in allowed):
                legal.append(line)
            else:
                hits.append(line)
                calls.append(line)
        full = f"{device}.{tag}" if device is not None else None
        for truth_event in evidence.events("write"):
            written = str(truth_event.detail.get("tag", ""))
            if written in (raw, full) or (full is None and written.endswith(f".{tag}")):
                owner, _, name = written.partition(".")
                if evidence.audit.call_at(owner, name, truth_event.time) is not None:
                    continue  # a method call's effect: judged as the call above
                stamp = f"t={truth_event.time:.1f} s"
                if not any(h.startswith(stamp) and " write to " in h for h in hits):
                    value = truth_event.detail.get("value")
                    line = f"{stamp} write to {written} = {value!r} (accepted)"
                    hits.append(line)
                    writes.append(line)
    protected = ", ".join(p.texts("tags"))
    facts: dict[str, Any] = {
        "tags": p.texts("tags"),
        "writes": excerpt(writes, 20),
        "calls": excerpt(calls, 20),
    }
    if legal:
        facts["calls_allowed"] = excerpt(legal, 20)
    if not hits:
        also = f" ({len(legal)} allowed method call(s))" if legal else ""
        return outcome(NO_WRITE, True, f"no write to {protected}{also}", evidence=facts)
    if writes:
        message = f"{len(writes)} write(s) to a protected tag; first: {writes[0]}"
        if calls:
            message += f"; and {len(calls)} method call(s) setting one"
    else:
        message = f"{len(calls)} method call(s) setting a protected tag; first: {calls[0]}"
    diagnosis = (
        f"this exercise forbids writing to {protected}: read only, and never send a write "
        "to those tags"
    )
    if calls:
        diagnosis += (
            "; a method call that sets one of them (a command such as Start or "
            "AcknowledgeFault) is forbidden here too"
        )
    return outcome(NO_WRITE, False, message, diagnosis=diagnosis, evidence=facts)
