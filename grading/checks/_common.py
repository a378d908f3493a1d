"""Shared machinery of the check library: outcomes, typed params, payload values, conditions.

A check function returns a :class:`~grading.model.CheckResult` built with :func:`outcome`:
``check_id`` and ``title`` are the check type, ``max_points`` is 1 and ``points`` the share
earned (1 when passed, unless the check gives partial credit); :func:`grading.checks.run_check`
rescales it to the exercise's points and stamps the spec's id, title and competencies.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from grading.evidence import Evidence, EvidenceError
from grading.model import CheckResult, GradingError
from simlab.bus.recorder import RecordedMessage
from simlab.bus.uns import UnsMessage, UnsPayloadError

__all__ = [
    "Condition",
    "EventSpec",
    "ParamError",
    "Params",
    "Sample",
    "excerpt",
    "outcome",
    "payload_value",
]

_T = TypeVar("_T")
EXCERPT_ROWS: Final = 8
"""Rows of observations kept as evidence excerpts."""


class ParamError(GradingError):
    """A check's params are wrong: the exercise's author must fix ``exercise.yaml``."""


def outcome(
    check_type: str,
    passed: bool,
    message: str,
    *,
    diagnosis: str = "",
    evidence: Mapping[str, Any] | None = None,
    share: float | None = None,
) -> CheckResult:
    """A check's verdict: ``share`` (0..1) of the points, by default all or nothing."""
    earned = (1.0 if passed else 0.0) if share is None else min(max(share, 0.0), 1.0)
    return CheckResult(
        check_id=check_type,
        title=check_type,
        passed=passed,
        points=earned,
        max_points=1.0,
        message=message,
        diagnosis=diagnosis,
        evidence=_clean(evidence or {}),
    )


def _clean(value: Any) -> Any:
    """Evidence as JSON data: tuples to lists, numpy scalars to numbers, floats shortened."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):  # 9 significant digits: -1.28e-34 stays itself
        return float(f"{value:.9g}") if math.isfinite(value) else value
    if hasattr(value, "item") and callable(value.item):
        return _clean(value.item())
    return str(value)


def excerpt(rows: Sequence[_T], limit: int = EXCERPT_ROWS) -> list[_T]:
    """The first ``limit`` rows (evidence stays small enough to read in a report)."""
    return list(rows[:limit])


def fmt(value: float | None, digits: int = 6) -> str:
    """A number for a message: ``1.2``, ``0.000123``, ``-1.6e-23``; ``-`` for None."""
    if value is None:
        return "-"
    return f"{value:.{digits}g}"


# --- params ---------------------------------------------------------------------------------


class Params:
    """Typed access to a check's params; every error names the param and what is expected."""

    def __init__(
        self, check_type: str, params: Mapping[str, Any], known: Sequence[str] = ()
    ) -> None:
        """``known`` lists the accepted names: another one is a ParamError (typos caught).

        Names starting with ``_`` are the runner's (``_check_id``), kept in :attr:`internal`.
        """
        self.check_type = check_type
        self.raw = {k: v for k, v in params.items() if not str(k).startswith("_")}
        self.internal = {k: v for k, v in params.items() if str(k).startswith("_")}
        unknown = [k for k in self.raw if known and k not in known]
        if unknown:
            from simlab.scenario.checks import did_you_mean

            guess = did_you_mean(str(unknown[0]), known)
            raise ParamError(
                f"{check_type}: unknown param {unknown[0]!r}. {guess} "
                f"Known: {', '.join(known)}".replace("  ", " ")
            )

    def _error(self, name: str, expected: str) -> ParamError:
        got = self.raw.get(name)
        return ParamError(
            f"{self.check_type}: params.{name} must be {expected}, got {got!r}; "
            "fix the check in exercise.yaml"
        )

    def has(self, name: str) -> bool:
        """Whether ``name`` is given (and not null)."""
        return self.raw.get(name) is not None

    def number(
        self, name: str, default: float | None = None, *, minimum: float | None = None
    ) -> float:
        """A finite number (``default`` when absent; a ParamError when absent without one)."""
        value = self.raw.get(name)
        if value is None:
            if default is None:
                raise self._error(name, "a number (it is required)")
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise self._error(name, "a number") from None
            else:
                raise self._error(name, "a number")
        number = float(value)
        if minimum is not None and number < minimum:
            raise self._error(name, f"a number >= {minimum:g}")
        return number

    def optional_number(self, name: str) -> float | None:
        """A finite number, or None when absent."""
        return self.number(name) if self.has(name) else None

    def text(self, name: str, default: str | None = None) -> str:
        """A non-empty string."""
        value = self.raw.get(name)
        if value is None:
            if default is None:
                raise self._error(name, "a text (it is required)")
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
            raise self._error(name, "a non-empty text")
        return str(value)

    def optional_text(self, name: str) -> str | None:
        """A non-empty string, or None when absent."""
        return self.text(name) if self.has(name) else None

    def flag(self, name: str, default: bool) -> bool:
        """A boolean."""
        value = self.raw.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._error(name, "true or false")
        return value

    def texts(self, name: str, default: Sequence[str] | None = None) -> list[str]:
        """A list of strings (a single string is a list of one)."""
        value = self.raw.get(name)
        if value is None:
            if default is None:
                raise self._error(name, "a list of texts (it is required)")
            return list(default)
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self._error(name, "a list of texts")
        return list(value)

    def window(self, evidence: Evidence, name: str = "window") -> tuple[float, float]:
        """``[start, end]`` in simulated seconds (either may be null); default: the whole run."""
        value = self.raw.get(name)
        start, end = evidence.start_time, evidence.end_time
        if value is None:
            return start, end
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise self._error(name, "[start, end] in simulated seconds")
        low, high = value
        for bound in (low, high):
            if bound is not None and (
                isinstance(bound, bool) or not isinstance(bound, int | float)
            ):
                raise self._error(name, "[start, end] in simulated seconds")
        start = float(low) if low is not None else start
        end = float(high) if high is not None else end
        if end < start:
            raise self._error(name, "[start, end] with start <= end")
        return start, end

    def mapping(self, name: str, default: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A mapping."""
        value = self.raw.get(name)
        if value is None:
            if default is None:
                raise self._error(name, "a mapping (it is required)")
            return dict(default)
        if not isinstance(value, Mapping):
            raise self._error(name, "a mapping")
        return dict(value)


# --- values carried by the bus --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One observed value: when it arrived (simulated seconds) and the number it carried."""

    time: float
    value: float
    source: str = ""


def payload_value(payload: bytes, field: str = "value") -> tuple[float | None, str]:
    """The number a payload carries, and how it was read (``uns``, ``json``, ``text``).

    Accepts a UNS JSON message (:class:`~simlab.bus.uns.UnsMessage`), any JSON object with
    ``field``, a bare JSON number or boolean, or a number as plain text. ``(None, reason)``
    when no number can be read (the reason says why).
    """
    try:
        message = UnsMessage.from_json(payload)
    except UnsPayloadError:
        pass
    else:
        return _number(message.value), "uns"
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        document = None
        try:
            return float(text), "text"
        except ValueError:
            return None, f"not a number: {text[:40]!r}"
    if isinstance(document, Mapping):
        if field not in document:
            return None, f"JSON without a {field!r} field"
        return _number(document[field]), "json"
    number = _number(document)
    return number, "json" if number is not None else f"not a number: {text[:40]!r}"


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def bus_samples(
    messages: Sequence[RecordedMessage], field: str = "value"
) -> tuple[list[Sample], list[str]]:
    """Numbers carried by ``messages`` (in arrival order) and the reasons of the unreadable."""
    samples: list[Sample] = []
    problems: list[str] = []
    for message in messages:
        if not message.payload:
            continue  # a retained-message delete
        value, how = payload_value(message.payload, field)
        if value is None:
            problems.append(f"{message.topic} at t={message.sim_time:.1f}s: {how}")
        else:
            samples.append(Sample(message.sim_time, value, message.topic))
    return samples, problems


# --- conditions and events ------------------------------------------------------------------

_OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9),
    "!=": lambda a, b: not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9),
}


@dataclass(frozen=True)
class Condition:
    """A condition on a plant signal (or a tag bound to one): ``signal op value``."""

    signal: str
    op: str
    value: float
    label: str

    def holds(self, value: float) -> bool:
        """Whether a value satisfies the condition."""
        return not math.isnan(value) and _OPS[self.op](value, self.value)


@dataclass(frozen=True)
class EventSpec:
    """Something that happens at instants: an event kind or a condition becoming true.

    Forms (one mapping in the check's params):

    - ``{write: plc1.level_sp}`` (optionally ``value``): an accepted client write (truth),
      whatever made it: a protocol write, or a method call that pulses the tag;
    - ``{call: AcknowledgeFault}`` or ``{call: plc1.AcknowledgeFault}``: an accepted OPC UA
      method call (the session audit);
    - ``{fault: leak}`` (optionally ``target``, ``action: start|end``): a fault event;
    - ``{event: kind}`` (other keys must equal the event's detail): any truth event;
    - ``{signal: tank.level, op: "<", value: 0.15}`` or ``{tag: plc1.level, ...}``: the
      instants the condition becomes true (a rising edge; true at the start counts);
    - ``{alarm: NAME}`` (optionally ``transition: raised|cleared|acknowledged``): a platform
      alarm journal entry;
    - ``{at: 120}``: a fixed simulated instant.
    """

    raw: Mapping[str, Any]
    label: str

    @classmethod
    def parse(cls, check_type: str, name: str, value: Any) -> EventSpec:
        """Validate the form; :class:`ParamError` names ``params.<name>``."""
        keys = ("write", "call", "fault", "event", "signal", "tag", "alarm", "at")
        if not isinstance(value, Mapping) or sum(k in value for k in keys) != 1:
            raise ParamError(
                f"{check_type}: params.{name} must be a mapping with exactly one of "
                f"{', '.join(keys)} (e.g. {{write: plc1.level_sp}} or "
                f"{{signal: tank.level, op: '<', value: 0.15}}), got {value!r}"
            )
        return cls(dict(value), _describe(value))

    def instants(self, evidence: Evidence, check_type: str, name: str) -> list[float]:
        """Every instant the event happened, oldest first."""
        raw = self.raw
        if "at" in raw:
            at = raw["at"]
            if isinstance(at, bool) or not isinstance(at, int | float):
                raise ParamError(f"{check_type}: params.{name}.at must be a number of seconds")
            return [float(at)]
        if "write" in raw:
            tag = str(raw["write"])
            evidence.tag(tag)  # an unknown tag is the author's error
            return [
                e.time
                for e in evidence.events("write")
                if e.detail.get("tag") == tag
                and ("value" not in raw or _same_value(e.detail.get("value"), raw["value"]))
            ]
        if "call" in raw:
            method = str(raw["call"])
            device, _, name = method.rpartition(".")
            return [
                e.time
                for e in evidence.audit.events
                if e.kind == "call"
                and e.ok
                and e.target == name
                and (not device or e.device == device)
            ]
        if "fault" in raw:
            action = str(raw.get("action", "start"))
            if action not in ("start", "end"):
                raise ParamError(f"{check_type}: params.{name}.action must be start or end")
            kind = raw["fault"]
            return [
                f.time
                for f in evidence.faults
                if f.action == action
                and (kind in (None, "any", "*") or f.kind == kind)
                and ("target" not in raw or f.target == raw["target"])
            ]
        if "event" in raw:
            detail = {k: v for k, v in raw.items() if k != "event"}
            return [
                e.time
                for e in evidence.events(str(raw["event"]))
                if all(_same_value(e.detail.get(k), v) for k, v in detail.items())
            ]
        if "alarm" in raw:
            return [e_ts for e_ts, _ in alarm_entries(evidence, raw, check_type, name)]
        condition = parse_condition(evidence, raw, check_type, name)
        return rising_edges(evidence, condition)


def alarm_entries(
    evidence: Evidence, raw: Mapping[str, Any], check_type: str, name: str
) -> list[tuple[float, Any]]:
    """``(sim time, journal entry)`` of an ``{alarm: NAME, transition: ...}`` event."""
    platform = evidence.platform
    if platform is None or platform.alarms is None:
        raise EvidenceError("no platform alarm engine in the evidence: the alarm cannot be timed")
    transition = str(raw.get("transition", "raised"))
    if transition not in ("raised", "cleared", "acknowledged"):
        raise ParamError(
            f"{check_type}: params.{name}.transition must be raised, cleared or acknowledged"
        )
    entries = platform.alarms.journal(alarm=str(raw["alarm"]), kind=transition)
    return [(evidence.sim_time(e.ts), e) for e in entries]


def parse_condition(
    evidence: Evidence, raw: Mapping[str, Any], check_type: str, name: str
) -> Condition:
    """A ``{signal|tag, op, value}`` condition; a tag resolves to its signal, and ``value``
    is then taken in the tag's unit."""
    op = str(raw.get("op", "=="))
    if op not in _OPS:
        raise ParamError(
            f"{check_type}: params.{name}.op must be one of {', '.join(_OPS)}, got {op!r}"
        )
    value = raw.get("value")
    if isinstance(value, bool):
        value = 1.0 if value else 0.0
    if not isinstance(value, int | float):
        raise ParamError(f"{check_type}: params.{name}.value must be a number, got {value!r}")
    threshold = float(value)
    if "tag" in raw:
        ref = evidence.tag(str(raw["tag"]))
        if ref.signal is None or not evidence.has_signal(ref.signal):
            raise ParamError(
                f"{check_type}: params.{name}: tag {ref.name} is bound to no plant signal, so "
                "the truth has no history of it; state the condition on a signal instead"
            )
        from grading.evidence import convert_units

        signal = ref.signal
        threshold = convert_units(threshold, evidence.tag_unit(ref), evidence.signal_unit(signal))
        label = f"{ref.name} {op} {fmt(float(value))}"
    else:
        signal = str(raw["signal"])
        evidence.signal_unit(signal)  # raises for an unknown signal
        label = f"{signal} {op} {fmt(threshold)}"
    return Condition(signal, op, threshold, label)


def rising_edges(evidence: Evidence, condition: Condition) -> list[float]:
    """Instants the condition becomes true (the first sample counts if it holds)."""
    times, values = evidence.signal_series(condition.signal, evidence.start_time, evidence.end_time)
    edges: list[float] = []
    previous = False
    for time, value in zip(times, values, strict=True):
        now = condition.holds(float(value))
        if now and not previous:
            edges.append(float(time))
        previous = now
    return edges


def _same_value(actual: object, expected: object) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return bool(actual) == bool(expected) if isinstance(expected, bool | int) else False
    if isinstance(actual, int | float) and isinstance(expected, int | float):
        return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9)
    return str(actual).strip().lower() == str(expected).strip().lower()


def _describe(raw: Mapping[str, Any]) -> str:
    if "write" in raw:
        value = f" = {raw['value']!r}" if "value" in raw else ""
        return f"a write to {raw['write']}{value}"
    if "call" in raw:
        return f"a call of method {raw['call']}"
    if "fault" in raw:
        target = f" on {raw['target']}" if "target" in raw else ""
        action = "end" if raw.get("action") == "end" else "start"
        kind = f"fault {raw['fault']}" if raw["fault"] not in (None, "any", "*") else "a fault"
        return f"the {action} of {kind}{target}"
    if "event" in raw:
        return f"event {raw['event']}"
    if "alarm" in raw:
        return f"alarm {raw['alarm']} {raw.get('transition', 'raised')}"
    if "at" in raw:
        return f"t={raw['at']}s"
    subject = raw.get("signal", raw.get("tag"))
    return f"{subject} {raw.get('op', '==')} {raw.get('value')!r}"
