"""An ISA-18.2-style alarm engine: limits with deadband and delays, acknowledgement, journal.

States (ISA-18.2 alarm state model, without shelving and suppression)::

    transition       from            to
    raised           CLEARED_ACK     ACTIVE_UNACK   condition beyond the limit (after on_delay)
    raised           CLEARED_UNACK   ACTIVE_UNACK   back beyond the limit before anyone acked
    acknowledged     ACTIVE_UNACK    ACTIVE_ACK     operator ack while still active
    acknowledged     CLEARED_UNACK   CLEARED_ACK    operator ack after it returned
    cleared          ACTIVE_UNACK    CLEARED_UNACK  returned past the deadband (after off_delay)
    cleared          ACTIVE_ACK      CLEARED_ACK    returned, already acked

``CLEARED_ACK`` is the normal state (``AlarmState.normal``). A ``HI``/``HIHI`` condition
holds while ``value > limit`` and returns once ``value <= limit - deadband``; ``LO``/``LOLO``
holds while ``value < limit`` and returns once ``value >= limit + deadband``. Between the
two the alarm keeps its state (hysteresis).

Delays are measured in the timestamps of the samples, never on the wall clock: the
condition must hold for ``on_delay`` seconds before the alarm is raised, and be gone for
``off_delay`` seconds before it clears. Samples drive time; when a tag reports only on
change, call :meth:`AlarmEngine.advance` so that a delay can run out without a new sample.

Quality: only samples whose OPC UA status is of the Good class (``Good``, ``GoodClamped``,
...) and that carry a value are evaluated. An Uncertain or Bad sample (or one without a
value) neither raises nor clears an alarm; it keeps the state but restarts any running
on/off delay, because the condition was not seen to hold continuously.

Severity follows OPC UA: an integer 1..1000 (Part 9 suggests 801–1000 high, 601–800 medium
high, 401–600 medium, 201–400 medium low, 1–200 low). Timestamps are float seconds since
the Unix epoch or aware datetimes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from simlab.errors import SimlabError
from simlab.platform.historian import Timestamp, is_good_quality, to_seconds
from simlab.scenario.checks import did_you_mean

__all__ = [
    "AlarmDefinition",
    "AlarmEngine",
    "AlarmError",
    "AlarmEvent",
    "AlarmKind",
    "AlarmState",
    "AlarmStatus",
    "EventKind",
    "TagPath",
    "UnknownAlarm",
]

AlarmKind = Literal["HI", "HIHI", "LO", "LOLO"]


def _tag_path(path: str) -> str:
    if not path or any(c.isspace() or c in "+#" for c in path):
        raise ValueError(
            f"{path!r} is not a valid tag path: a tag path is a UNS path like "
            "acme/plant1/line1/tank/level, with no spaces and no MQTT wildcards + or #"
        )
    return path


TagPath = Annotated[
    str,
    AfterValidator(_tag_path),
    Field(
        description="UNS path of a tag, e.g. acme/plant1/line1/tank/level "
        "(no spaces, no MQTT wildcards + or #)",
    ),
]
"""A tag's Unified Namespace path, as the historian and the alarm engine key it."""

HIGH_KINDS: frozenset[str] = frozenset({"HI", "HIHI"})
TIME_EPSILON = 1e-9
"""Seconds of float rounding forgiven when a delay is compared (0.3 + 2.0 - 0.3 < 2.0)."""


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


class AlarmDefinition(BaseModel):
    """One limit alarm on one tag, as written in the rules file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[
        str,
        Field(
            pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$",
            max_length=64,
            description="unique alarm name: a letter, then letters, digits, '_', '.', '-'",
        ),
    ]
    tag: TagPath
    kind: Annotated[
        AlarmKind,
        BeforeValidator(_upper),
        Field(description="HI or HIHI (above the limit), LO or LOLO (below the limit)"),
    ]
    limit: Annotated[float, Field(allow_inf_nan=False, description="limit in the tag's unit")]
    deadband: Annotated[
        float,
        Field(ge=0, allow_inf_nan=False, description="return hysteresis in the tag's unit"),
    ] = 0.0
    on_delay: Annotated[
        float,
        Field(ge=0, allow_inf_nan=False, description="seconds the condition must hold"),
    ] = 0.0
    off_delay: Annotated[
        float,
        Field(ge=0, allow_inf_nan=False, description="seconds the condition must be gone"),
    ] = 0.0
    severity: Annotated[
        int, Field(ge=1, le=1000, description="OPC UA severity 1 (lowest) .. 1000 (highest)")
    ] = 500
    message: Annotated[str, Field(description="text shown to the operator")] = ""

    def text(self) -> str:
        """The operator message, or a generated one when ``message`` is empty."""
        if self.message:
            return self.message
        side = "above" if self.kind in HIGH_KINDS else "below"
        return f"{self.tag} {side} {self.kind} limit {self.limit:g}"

    def in_alarm(self, value: float) -> bool:
        """True while ``value`` is beyond the limit."""
        return value > self.limit if self.kind in HIGH_KINDS else value < self.limit

    def returned(self, value: float) -> bool:
        """True once ``value`` is back inside the limit by at least the deadband."""
        if self.kind in HIGH_KINDS:
            return value <= self.limit - self.deadband
        return value >= self.limit + self.deadband


class AlarmState(StrEnum):
    """ISA-18.2 alarm states; ``CLEARED_ACK`` is the normal state (see :attr:`normal`)."""

    ACTIVE_UNACK = "ACTIVE_UNACK"
    ACTIVE_ACK = "ACTIVE_ACK"
    CLEARED_UNACK = "CLEARED_UNACK"
    CLEARED_ACK = "CLEARED_ACK"

    @property
    def normal(self) -> bool:
        """True in CLEARED_ACK: nothing active, nothing to acknowledge."""
        return self is AlarmState.CLEARED_ACK

    @property
    def active(self) -> bool:
        """True while the alarm condition is active."""
        return self in (AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK)

    @property
    def acknowledged(self) -> bool:
        """True when nothing waits for an operator's acknowledgement."""
        return self in (AlarmState.ACTIVE_ACK, AlarmState.CLEARED_ACK)


class EventKind(StrEnum):
    """What happened to an alarm."""

    RAISED = "raised"
    CLEARED = "cleared"
    ACKNOWLEDGED = "acknowledged"


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One journal entry: a transition of one alarm."""

    seq: int
    ts: float
    kind: EventKind
    alarm: str
    tag: str
    alarm_kind: AlarmKind
    state: AlarmState
    value: float | None
    severity: int
    message: str
    user: str = ""
    comment: str = ""


@dataclass(frozen=True, slots=True)
class AlarmStatus:
    """The current state of one alarm, as an alarm list shows it."""

    name: str
    tag: str
    kind: AlarmKind
    state: AlarmState
    severity: int
    message: str
    since: float | None
    value: float | None


class AlarmError(SimlabError):
    """An alarm operation that is not allowed (e.g. acknowledging a normal alarm)."""


class UnknownAlarm(AlarmError):
    """An alarm name that no definition has."""


@dataclass(slots=True)
class _Runtime:
    """The mutable state of one alarm."""

    definition: AlarmDefinition
    state: AlarmState = AlarmState.CLEARED_ACK
    since: float | None = None  # ts of the last state change
    value: float | None = None  # last good value evaluated
    last_ts: float = -math.inf  # ts of the last sample evaluated
    pending: float | None = None  # ts since which a raise/clear has been pending


class AlarmEngine:
    """Evaluates alarm definitions against tag samples; keeps states and a journal.

    ``journal_size`` bounds the in-memory journal (oldest entries are dropped).
    """

    def __init__(
        self, definitions: Iterable[AlarmDefinition] = (), *, journal_size: int = 100_000
    ) -> None:
        self._alarms: dict[str, _Runtime] = {}
        self._by_tag: dict[str, list[str]] = {}
        self._journal: deque[AlarmEvent] = deque(maxlen=journal_size)
        self._seq = 0
        self._last: dict[str, tuple[float, float | None, str]] = {}  # tag → ts, value, quality
        self._now = -math.inf  # the newest ts seen (samples, advance, acknowledgements)
        self._install(_unique(definitions))

    def _install(self, definitions: dict[str, AlarmDefinition]) -> None:
        old = self._alarms
        self._alarms = {
            name: old[name] if name in old and old[name].definition == d else _Runtime(d)
            for name, d in definitions.items()
        }
        self._by_tag = {}
        for name, runtime in self._alarms.items():
            self._by_tag.setdefault(runtime.definition.tag, []).append(name)

    # --- configuration -----------------------------------------------------------------

    @property
    def definitions(self) -> list[AlarmDefinition]:
        """The definitions in force, in their order."""
        return [r.definition for r in self._alarms.values()]

    def replace_definitions(self, definitions: Iterable[AlarmDefinition]) -> list[AlarmEvent]:
        """Hot reload: install ``definitions``, keeping the state of unchanged alarms.

        An alarm whose definition changed in any field (or that is new) starts NORMAL and
        is evaluated at once against the last sample of its tag, at the engine's time (the
        newest ts it has seen), so new limits apply without waiting for the next sample;
        the events of that evaluation are returned.
        Alarms no longer defined are dropped without an event.
        """
        wanted = _unique(definitions)
        before = dict(self._alarms)
        self._install(wanted)
        events: list[AlarmEvent] = []
        for name, runtime in self._alarms.items():
            if before.get(name) is runtime:
                continue
            last = self._last.get(runtime.definition.tag)
            if last is not None:
                _, value, quality = last
                events += self._evaluate_one(runtime, value, self._now, quality)
        return events

    # --- evaluation --------------------------------------------------------------------

    def evaluate(
        self, tag: str, value: float | None, ts: Timestamp, quality: str = "Good"
    ) -> list[AlarmEvent]:
        """Feed one sample of ``tag``; returns the transitions it caused (maybe none).

        A sample older than the last one evaluated for an alarm is ignored by that alarm.
        """
        seconds = to_seconds(ts)
        self._now = max(self._now, seconds)
        number = None if value is None or math.isnan(value) else float(value)
        previous = self._last.get(tag)
        if previous is None or seconds >= previous[0]:
            self._last[tag] = (seconds, number, quality)
        events: list[AlarmEvent] = []
        for name in self._by_tag.get(tag, ()):
            events += self._evaluate_one(self._alarms[name], number, seconds, quality)
        return events

    def advance(self, ts: Timestamp) -> list[AlarmEvent]:
        """Let time pass to ``ts`` without new samples: run out pending on/off delays.

        Each alarm re-evaluates the last sample of its tag at ``ts``.
        """
        seconds = to_seconds(ts)
        self._now = max(self._now, seconds)
        events: list[AlarmEvent] = []
        for runtime in self._alarms.values():
            last = self._last.get(runtime.definition.tag)
            if runtime.pending is None or last is None:
                continue
            _, value, quality = last
            events += self._evaluate_one(runtime, value, seconds, quality)
        return events

    def _evaluate_one(
        self, runtime: _Runtime, value: float | None, ts: float, quality: str
    ) -> list[AlarmEvent]:
        if ts < runtime.last_ts:
            return []
        runtime.last_ts = ts
        if value is None or not is_good_quality(quality):
            runtime.pending = None  # the condition was not seen to hold continuously
            return []
        runtime.value = value
        definition = runtime.definition
        if runtime.state.active:
            wants_change = definition.returned(value)
            delay = definition.off_delay
        else:
            wants_change = definition.in_alarm(value)
            delay = definition.on_delay
        if not wants_change:
            runtime.pending = None
            return []
        if runtime.pending is None:
            runtime.pending = ts
        if ts - runtime.pending + TIME_EPSILON < delay:
            return []
        runtime.pending = None
        if runtime.state.active:
            new_state = (
                AlarmState.CLEARED_ACK
                if runtime.state is AlarmState.ACTIVE_ACK
                else AlarmState.CLEARED_UNACK
            )
            return [self._transition(runtime, new_state, EventKind.CLEARED, ts)]
        return [self._transition(runtime, AlarmState.ACTIVE_UNACK, EventKind.RAISED, ts)]

    def _transition(
        self,
        runtime: _Runtime,
        state: AlarmState,
        kind: EventKind,
        ts: float,
        *,
        user: str = "",
        comment: str = "",
    ) -> AlarmEvent:
        runtime.state = state
        runtime.since = ts
        self._seq += 1
        d = runtime.definition
        event = AlarmEvent(
            self._seq, ts, kind, d.name, d.tag, d.kind, state, runtime.value, d.severity,
            d.text(), user, comment,
        )  # fmt: skip
        self._journal.append(event)
        return event

    # --- operator ----------------------------------------------------------------------

    def acknowledge(self, name: str, user: str, comment: str, ts: Timestamp) -> AlarmEvent:
        """Acknowledge alarm ``name`` as ``user`` at ``ts``; returns the journal entry.

        AlarmError when the alarm does not wait for an acknowledgement (NORMAL or already
        ACTIVE_ACK) or ``user`` is empty; UnknownAlarm for a name without a definition.
        """
        runtime = self._runtime(name)
        if not user.strip():
            raise AlarmError(f"acknowledging {name!r} needs a user name (who acknowledged?)")
        if runtime.state.acknowledged:
            what = (
                "is in normal state"
                if runtime.state is AlarmState.CLEARED_ACK
                else "is active and already acknowledged"
            )
            raise AlarmError(
                f"cannot acknowledge alarm {name!r}: it {what} ({runtime.state.value}); "
                "only ACTIVE_UNACK and CLEARED_UNACK alarms wait for acknowledgement"
            )
        new_state = (
            AlarmState.ACTIVE_ACK
            if runtime.state is AlarmState.ACTIVE_UNACK
            else AlarmState.CLEARED_ACK
        )
        seconds = to_seconds(ts)
        self._now = max(self._now, seconds)
        return self._transition(
            runtime, new_state, EventKind.ACKNOWLEDGED, seconds, user=user, comment=comment
        )

    def _runtime(self, name: str) -> _Runtime:
        runtime = self._alarms.get(name)
        if runtime is None:
            guess = did_you_mean(name, self._alarms)
            known = ", ".join(self._alarms) or "(none defined)"
            raise UnknownAlarm(
                f"no alarm named {name!r}. {guess + ' ' if guess else ''}Alarms: {known}"
            )
        return runtime

    # --- queries -----------------------------------------------------------------------

    def state(self, name: str) -> AlarmState:
        """The state of alarm ``name`` (UnknownAlarm if it does not exist)."""
        return self._runtime(name).state

    def status(self, name: str) -> AlarmStatus:
        """The alarm-list row of alarm ``name``."""
        return _status(self._runtime(name))

    def statuses(self) -> list[AlarmStatus]:
        """Every alarm's status, in definition order."""
        return [_status(r) for r in self._alarms.values()]

    def active(self) -> list[AlarmStatus]:
        """The operator's alarm list: every alarm not NORMAL (active, or cleared but unacked).

        Sorted by severity (highest first), then by the time of the last change.
        """
        listed = [
            _status(r) for r in self._alarms.values() if r.state is not AlarmState.CLEARED_ACK
        ]
        return sorted(listed, key=lambda s: (-s.severity, s.since or 0.0, s.name))

    def journal(
        self,
        *,
        alarm: str | None = None,
        tag: str | None = None,
        kind: EventKind | str | None = None,
        start: Timestamp | None = None,
        end: Timestamp | None = None,
    ) -> list[AlarmEvent]:
        """Journal entries, oldest first; filters: alarm, tag, event kind, ``start <= ts < end``."""
        low = -math.inf if start is None else to_seconds(start)
        high = math.inf if end is None else to_seconds(end)
        wanted = None if kind is None else EventKind(kind)
        return [
            e
            for e in self._journal
            if (alarm is None or e.alarm == alarm)
            and (tag is None or e.tag == tag)
            and (wanted is None or e.kind is wanted)
            and low <= e.ts < high
        ]


def _status(runtime: _Runtime) -> AlarmStatus:
    d = runtime.definition
    return AlarmStatus(
        d.name, d.tag, d.kind, runtime.state, d.severity, d.text(), runtime.since, runtime.value
    )


def _unique(definitions: Iterable[AlarmDefinition]) -> dict[str, AlarmDefinition]:
    found: dict[str, AlarmDefinition] = {}
    for definition in definitions:
        if definition.name in found:
            raise AlarmError(
                f"two alarms are named {definition.name!r}; give each alarm its own name"
            )
        found[definition.name] = definition
    return found
