"""Session audit: what clients did on a device's endpoints — the evidence grading uses.

Endpoints report every session (connect, disconnect, peer, security), every read,
subscription, write (accepted or refused, with the reason) and Modbus request (function
code and address range). Times are simulated seconds of the lab's clock. Pure data: no
protocol library is imported here, so every endpoint and the grader share it.

An OPC UA method call is its own kind of event, never a write: ``kind="call"``, ``target``
the method's browse name (``AcknowledgeFault``), ``detail`` ``tag`` (the command tag it
pulses, without the device), ``status`` and ``node_id`` (the method's node). The device sees
the pulse like any accepted write, so the truth records a ``write`` of that tag at the same
instant; :meth:`SessionAudit.call_at` tells such a write from one a client sent. Safety
gates use this to allow a command through its method while forbidding writes to the tag.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["AuditEvent", "Session", "SessionAudit"]

Protocol = Literal["modbus", "opcua", "mqtt"]
EventKind = Literal["read", "subscribe", "unsubscribe", "write", "call", "request", "refused"]


@dataclass
class Session:
    """One client connection to one endpoint."""

    id: int
    device: str
    protocol: Protocol
    peer: str
    connected_at: float
    disconnected_at: float | None = None
    security_mode: str = "None"  # OPC UA: None | Sign | SignAndEncrypt
    security_policy: str = "None"
    user: str | None = None  # None: anonymous


@dataclass(frozen=True)
class AuditEvent:
    """Something a session did. ``ok`` is False for a refused request; ``reason`` says why."""

    time: float
    session: int
    device: str
    protocol: Protocol
    kind: EventKind
    target: str  # tag name, node id, or Modbus "fc3 holding_register 0..9"
    ok: bool = True
    reason: str = ""
    detail: dict[str, object] = field(default_factory=dict)


class SessionAudit:
    """The audit log of a lab: sessions and events, in order."""

    def __init__(self) -> None:
        self.sessions: dict[int, Session] = {}
        self.events: list[AuditEvent] = []
        self._ids = itertools.count(1)

    def open(
        self, device: str, protocol: Protocol, peer: str, now: float, **security: str | None
    ) -> int:
        """Record a new session; returns its id."""
        session_id = next(self._ids)
        session = Session(session_id, device, protocol, peer, now)
        for key, value in security.items():
            setattr(session, key, value)
        self.sessions[session_id] = session
        return session_id

    def close(self, session_id: int, now: float) -> None:
        session = self.sessions.get(session_id)
        if session is not None and session.disconnected_at is None:
            session.disconnected_at = now

    def record(
        self,
        session_id: int,
        now: float,
        kind: EventKind,
        target: str,
        *,
        ok: bool = True,
        reason: str = "",
        **detail: object,
    ) -> None:
        """Record an event of a session."""
        session = self.sessions[session_id]
        self.events.append(
            AuditEvent(
                now, session_id, session.device, session.protocol, kind, target, ok, reason, detail
            )
        )

    def call_at(self, device: str, tag: str, time: float, slack: float = 1e-6) -> AuditEvent | None:
        """The accepted method call that pulsed ``device.tag`` at ``time``, if one did."""
        for event in self.events:
            if (
                event.kind == "call"
                and event.ok
                and event.device == device
                and event.detail.get("tag") == tag
                and abs(event.time - time) <= slack
            ):
                return event
        return None

    def query(
        self,
        *,
        device: str | None = None,
        protocol: Protocol | None = None,
        kind: EventKind | None = None,
        ok: bool | None = None,
    ) -> list[AuditEvent]:
        """Events matching every given filter."""
        return [
            e
            for e in self.events
            if (device is None or e.device == device)
            and (protocol is None or e.protocol == protocol)
            and (kind is None or e.kind == kind)
            and (ok is None or e.ok == ok)
        ]
