"""Checks on what the plant and the platform did, and when: held states, sequences, alarms.

Times are the lab's simulated seconds; events are described by
:class:`~grading.checks._common.EventSpec` mappings (a write, a fault, a truth event, a
condition becoming true, an alarm transition, a fixed instant).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from grading.checks._common import (
    EventSpec,
    ParamError,
    Params,
    excerpt,
    fmt,
    outcome,
    parse_condition,
)
from grading.evidence import Evidence, EvidenceError, convert_units
from grading.model import CheckResult
from simlab.platform.alarms import AlarmEvent, EventKind

__all__ = ["check_platform_alarm", "check_state_held", "check_timed_sequence"]

STATE: Final = "state_held"
SEQUENCE: Final = "timed_sequence"
ALARM: Final = "platform_alarm"
STATE_PARAMS: Final = (
    "signal",
    "tag",
    "low",
    "high",
    "centre",
    "tolerance",
    "duration_s",
    "after",
    "occurrence",
    "settle_s",
    "window",
)
SEQUENCE_PARAMS: Final = ("a", "b", "within_s", "min_delay_s", "every")
ALARM_PARAMS: Final = ("alarm", "tag", "after", "within_s", "cleared", "acknowledged", "by")
EPSILON: Final = 1e-6


def _pick(instants: list[float], occurrence: str, check: str) -> float:
    if occurrence not in ("first", "last"):
        raise ParamError(f"{check}: params.occurrence must be first or last, got {occurrence!r}")
    return instants[0] if occurrence == "first" else instants[-1]


# --- state_held -------------------------------------------------------------------------------


def check_state_held(
    evidence: Evidence, params: Mapping[str, Any], variant: Mapping[str, Any]
) -> CheckResult:
    """A signal stays within a band: for ``duration_s`` after an event, or over a window.

    Params: ``signal`` | ``tag`` (``device.tag`` bound to a signal; bounds in the tag's
    unit); the band: ``low`` and/or ``high``, or ``centre`` with ``tolerance`` (the band
    ``centre ± tolerance``; ``centre`` may be a number, ``"{{ setpoint }}"`` or
    ``{variant: setpoint}``); ``duration_s``; ``after`` (an event: the hold starts
    ``settle_s`` (0) after its ``occurrence``, first or last); without ``after``,
    ``window`` [start, end] (the run): the whole window, or with ``duration_s`` some
    continuous stretch of that length inside it.
    """
    p = Params(STATE, params, STATE_PARAMS)
    if p.has("signal") == p.has("tag"):
        raise ParamError(f"{STATE}: give exactly one of params.signal and params.tag")
    low, high, centred = _band(p, variant)
    lo, hi = (low if low is not None else -math.inf), (high if high is not None else math.inf)
    if p.has("tag"):
        ref = evidence.tag(p.text("tag"))
        if ref.signal is None or not evidence.has_signal(ref.signal):
            raise ParamError(
                f"{STATE}: tag {ref.name} is bound to no plant signal; use params.signal"
            )
        signal, unit, label = ref.signal, evidence.tag_unit(ref), ref.name
    else:
        signal = p.text("signal")
        unit, label = evidence.signal_unit(signal), signal
    band = f"[{fmt(low)}, {fmt(high)}] {unit}".strip()
    facts: dict[str, Any] = {"signal": signal, "band": [low, high], "unit": unit}
    if centred is not None:
        centre, tolerance = centred
        band = f"{fmt(centre)} ± {fmt(tolerance)} {unit}".strip()
        facts["centre"], facts["tolerance"] = centre, tolerance
    duration = p.optional_number("duration_s")
    if p.has("after"):
        if duration is None:
            raise ParamError(f"{STATE}: params.after needs params.duration_s")
        event = EventSpec.parse(STATE, "after", p.raw["after"])
        instants = event.instants(evidence, STATE, "after")
        facts["event"] = event.label
        if not instants:
            return outcome(
                STATE,
                False,
                f"{event.label} never happened, so {label} had nothing to hold after",
                diagnosis=f"the run (t={evidence.start_time:g}..{evidence.end_time:g} s) holds "
                f"no {event.label}: do it first, then hold {label} in {band}",
                evidence=facts,
            )
        t0 = _pick(instants, p.text("occurrence", "first"), STATE)
        start = t0 + p.number("settle_s", 0.0, minimum=0.0)
        end = start + duration
        facts["interval"] = [start, end]
        if end > evidence.end_time + EPSILON:
            return outcome(
                STATE,
                False,
                f"the run ended {evidence.end_time - start:.1f} s into the {duration:g} s "
                f"{label} had to stay in {band}",
                diagnosis=f"{event.label} came at t={t0:.1f} s, too late for the run to show "
                f"{duration:g} s of holding: do it earlier",
                evidence=facts,
            )
        return _hold_over(evidence, _Band(signal, unit, label, lo, hi, band), start, end, facts)
    start, end = p.window(evidence)
    if duration is None:
        facts["interval"] = [start, end]
        return _hold_over(evidence, _Band(signal, unit, label, lo, hi, band), start, end, facts)
    times, values = _series(evidence, signal, unit, start, end)
    best, best_start = _longest(times, values, lo, hi, end)
    facts["longest_s"] = round(best, 3)
    if best + EPSILON >= duration:
        return outcome(
            STATE,
            True,
            f"{label} stayed in {band} for {best:.1f} s from t={best_start:.1f} s "
            f"({duration:g} s needed)",
            evidence=facts,
        )
    return outcome(
        STATE,
        False,
        f"{label} stayed in {band} for at most {best:.1f} s in a row, {duration:g} s needed",
        diagnosis=_excursions(times, values, lo, hi, unit),
        evidence=facts,
    )


def _band(
    p: Params, variant: Mapping[str, Any]
) -> tuple[float | None, float | None, tuple[float, float] | None]:
    """``(low, high, (centre, tolerance) or None)`` of the band form the params use."""
    banded = [n for n in ("low", "high") if p.has(n)]
    centred = [n for n in ("centre", "tolerance") if p.has(n)]
    if banded and centred:
        raise ParamError(
            f"{STATE}: give the band either as params.low/params.high or as params.centre "
            f"with params.tolerance (centre ± tolerance), not both (got "
            f"{', '.join(banded + centred)})"
        )
    if not centred:
        low, high = p.optional_number("low"), p.optional_number("high")
        if low is None and high is None:
            raise ParamError(
                f"{STATE}: give the band: params.low, params.high or both, or params.centre "
                "with params.tolerance"
            )
        if low is not None and high is not None and low > high:
            raise ParamError(
                f"{STATE}: params.low ({fmt(low)}) is above params.high ({fmt(high)}); "
                "fix the check in exercise.yaml"
            )
        return low, high, None
    if not p.has("centre"):
        raise ParamError(
            f"{STATE}: params.tolerance needs params.centre: the band is centre ± tolerance"
        )
    if not p.has("tolerance"):
        raise ParamError(
            f"{STATE}: params.centre needs params.tolerance, the half-width of the band "
            "(centre ± tolerance, in the signal's or tag's unit)"
        )
    raw = p.raw["centre"]
    if isinstance(raw, Mapping):
        if set(raw) != {"variant"}:
            raise ParamError(
                f"{STATE}: params.centre must be a number, a placeholder like "
                f"'{{{{ setpoint }}}}' or {{variant: setpoint}}, got {raw!r}"
            )
        name = str(raw["variant"])
        if name not in variant:
            known = ", ".join(sorted(variant)) or "(none)"
            raise ParamError(
                f"{STATE}: params.centre.variant: no variant parameter {name!r}; this "
                f"exercise's parameters: {known}"
            )
        centre = Params(STATE, {"centre": variant[name]}).number("centre")
    else:
        centre = p.number("centre")
    tolerance = p.number("tolerance", minimum=0.0)
    return centre - tolerance, centre + tolerance, (centre, tolerance)


def _series(
    evidence: Evidence, signal: str, unit: str, start: float, end: float
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]:
    times, values = evidence.signal_series(signal, start, end)
    source = evidence.signal_unit(signal)
    if source != unit:
        values = np.array([convert_units(float(v), source, unit) for v in values])
    return times, values


@dataclass(frozen=True)
class _Band:
    """The signal a state_held check watches and the band it must stay in."""

    signal: str
    unit: str
    label: str
    lo: float
    hi: float
    text: str


def _hold_over(
    evidence: Evidence, band: _Band, start: float, end: float, facts: dict[str, Any]
) -> CheckResult:
    signal, unit, label, lo, hi = band.signal, band.unit, band.label, band.lo, band.hi
    times, values = _series(evidence, signal, unit, start, end)
    if len(times) == 0:
        raise EvidenceError(f"the truth has no sample of {signal} in t={start:g}..{end:g} s")
    outside = (values < lo) | (values > hi) | np.isnan(values)
    facts["min"], facts["max"] = float(np.nanmin(values)), float(np.nanmax(values))
    if not outside.any():
        return outcome(
            STATE,
            True,
            f"{label} stayed in {band.text} from t={start:.1f} to {end:.1f} s "
            f"(min {fmt(facts['min'])}, max {fmt(facts['max'])})",
            evidence=facts,
        )
    first = int(np.argmax(outside))
    facts["left_at"] = float(times[first])
    return outcome(
        STATE,
        False,
        f"{label} left {band.text} at t={float(times[first]):.1f} s ({fmt(float(values[first]))} "
        f"{unit}), {float(times[first]) - start:.1f} s into the hold",
        diagnosis=_excursions(times, values, lo, hi, unit),
        evidence=facts,
    )


def _longest(
    times: np.ndarray[Any, np.dtype[np.float64]],
    values: np.ndarray[Any, np.dtype[np.float64]],
    lo: float,
    hi: float,
    end: float,
) -> tuple[float, float]:
    best, best_start, run_start = 0.0, math.nan, None
    for i, (time, value) in enumerate(zip(times, values, strict=True)):
        inside = lo <= value <= hi
        if inside and run_start is None:
            run_start = float(time)
        if (not inside or i == len(times) - 1) and run_start is not None:
            stop = float(time) if not inside else end
            if stop - run_start > best:
                best, best_start = stop - run_start, run_start
            run_start = None
    return best, best_start


def _excursions(
    times: np.ndarray[Any, np.dtype[np.float64]],
    values: np.ndarray[Any, np.dtype[np.float64]],
    lo: float,
    hi: float,
    unit: str,
) -> str:
    if len(values) == 0:
        return "no true value in the interval"
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    parts = []
    if low < lo:
        parts.append(
            f"went down to {fmt(low)} {unit} at t={float(times[np.nanargmin(values)]):.1f} s"
        )
    if high > hi:
        parts.append(
            f"went up to {fmt(high)} {unit} at t={float(times[np.nanargmax(values)]):.1f} s"
        )
    return "the true value " + " and ".join(parts) if parts else "the value was NaN (no truth)"


# --- timed_sequence -------------------------------------------------------------------------


def check_timed_sequence(
    evidence: Evidence, params: Mapping[str, Any], variant: Mapping[str, Any]
) -> CheckResult:
    """B happens within ``within_s`` after A (e.g. the pump stops within 2 s of low-low).

    Params: ``a``, ``b`` (events; a condition B counts as soon as it holds, also if it
    already held when A happened); ``within_s``; ``min_delay_s`` (0); ``every`` (false:
    the first A only; true: every occurrence of A).
    """
    p = Params(SEQUENCE, params, SEQUENCE_PARAMS)
    a = EventSpec.parse(SEQUENCE, "a", p.raw.get("a"))
    b = EventSpec.parse(SEQUENCE, "b", p.raw.get("b"))
    within = p.number("within_s", minimum=0.0)
    min_delay = p.number("min_delay_s", 0.0, minimum=0.0)
    starts = a.instants(evidence, SEQUENCE, "a")
    facts: dict[str, Any] = {
        "a": a.label,
        "b": b.label,
        "within_s": within,
        "a_at": excerpt(starts),
    }
    if not starts:
        return outcome(
            SEQUENCE,
            False,
            f"{a.label} never happened: there is no sequence to time",
            diagnosis=f"the run (t={evidence.start_time:g}..{evidence.end_time:g} s) holds no "
            f"{a.label}; make it happen, then {b.label} must follow within {within:g} s",
            evidence=facts,
        )
    considered = starts if p.flag("every", False) else starts[:1]
    delays: list[float | None] = []
    for t_a in considered:
        delays.append(_first_b(evidence, b, t_a + min_delay, t_a + within, t_a))
    facts["delays_s"] = [None if d is None else round(d, 3) for d in excerpt(delays, 20)]
    late = [(t, d) for t, d in zip(considered, delays, strict=True) if d is None or d > within]
    if not late:
        worst = max(d for d in delays if d is not None)
        return outcome(
            SEQUENCE,
            True,
            f"{b.label} followed {a.label} within {worst:.2f} s ({within:g} s allowed"
            + (f", {len(considered)} times)" if len(considered) > 1 else ")"),
            evidence=facts,
        )
    t_a, _ = late[0]
    if t_a + within > evidence.end_time + EPSILON:
        diagnosis = (
            f"{a.label} came at t={t_a:.1f} s and the run ended {evidence.end_time - t_a:.1f} s "
            "later, before the allowed delay ran out"
        )
    else:
        later = _first_b(evidence, b, t_a + min_delay, evidence.end_time, t_a)
        diagnosis = (
            f"{b.label} came {later:.1f} s after {a.label}, {later - within:.1f} s too late"
            if later is not None
            else f"{b.label} never happened after {a.label} (t={t_a:.1f} s)"
        )
    return outcome(
        SEQUENCE,
        False,
        f"{b.label} did not follow {a.label} (t={t_a:.1f} s) within {within:g} s",
        diagnosis=diagnosis,
        evidence=facts,
    )


def _first_b(
    evidence: Evidence, b: EventSpec, start: float, end: float, origin: float
) -> float | None:
    """Delay from ``origin`` to the first B in ``[start, end]`` (None: none)."""
    if any(k in b.raw for k in ("signal", "tag")):
        condition = parse_condition(evidence, b.raw, SEQUENCE, "b")
        times, values = evidence.signal_series(condition.signal, start - EPSILON, end)
        for time, value in zip(times, values, strict=True):
            if condition.holds(float(value)):
                return max(float(time), start) - origin
        return None
    for instant in b.instants(evidence, SEQUENCE, "b"):
        if start - EPSILON <= instant <= end + EPSILON:
            return instant - origin
    return None


# --- platform_alarm ---------------------------------------------------------------------------


def check_platform_alarm(
    evidence: Evidence, params: Mapping[str, Any], variant: Mapping[str, Any]
) -> CheckResult:
    """A platform alarm is raised within ``within_s`` after a fault started (and more).

    Only a raise in ``[fault start, fault start + within_s]`` counts. An alarm raised
    before the fault while no fault was acting (a nuisance alarm, its limit inside normal
    operation) fails the check, even if it is raised again after the fault.

    Params: ``alarm`` (its name) | ``tag`` (any alarm on that UNS tag path); ``after`` (an
    event; default: the first fault start); ``within_s``; ``cleared`` (false: it must also
    have cleared); ``acknowledged`` (false: it must also have been acknowledged); ``by``
    (the user who must have acknowledged it).
    """
    p = Params(ALARM, params, ALARM_PARAMS)
    platform = evidence.platform
    if platform is None or platform.alarms is None:
        raise EvidenceError("no platform alarm engine in the evidence: platform_alarm needs one")
    engine = platform.alarms
    if p.has("alarm") == p.has("tag"):
        raise ParamError(f"{ALARM}: give exactly one of params.alarm and params.tag")
    name, tag = p.optional_text("alarm"), p.optional_text("tag")
    subject = f"alarm {name}" if name is not None else f"an alarm on {tag}"
    after = EventSpec.parse(ALARM, "after", p.raw.get("after") or {"fault": "any"})
    within = p.number("within_s", minimum=0.0)
    defined = {d.name: d for d in engine.definitions}
    facts: dict[str, Any] = {"alarm": name, "tag": tag, "after": after.label, "within_s": within}
    if name is not None and name not in defined:
        from simlab.scenario.checks import did_you_mean

        guess = did_you_mean(name, defined)
        return outcome(
            ALARM,
            False,
            f"no alarm named {name!r} is defined on the platform",
            diagnosis=f"{guess} Alarms defined: {', '.join(sorted(defined)) or 'none'}".strip(),
            evidence=facts,
        )
    if tag is not None and not any(d.tag == tag for d in defined.values()):
        tags = sorted({d.tag for d in defined.values()})
        return outcome(
            ALARM,
            False,
            f"no alarm is defined on {tag}",
            diagnosis=f"alarms are defined on: {', '.join(tags) or 'nothing'}",
            evidence=facts,
        )
    starts = after.instants(evidence, ALARM, "after")
    if not starts:
        raise EvidenceError(f"{after.label} never happened in the run: nothing to alarm on")
    t0 = starts[0]
    facts["t0"] = t0
    journal = [(evidence.sim_time(e.ts), e) for e in engine.journal(alarm=name, tag=tag)]
    facts["journal"] = [
        {"t": round(t, 3), "alarm": e.alarm, "kind": e.kind.value, "user": e.user}
        for t, e in excerpt(journal, 20)
    ]
    raised = [(t, e) for t, e in journal if e.kind is EventKind.RAISED and t >= t0 - EPSILON]
    before = [(t, e) for t, e in journal if e.kind is EventKind.RAISED and t < t0 - EPSILON]
    nuisance = [(t, e) for t, e in before if not _fault_active(evidence, t)]
    if before:
        facts["raised_before"] = [round(t, 3) for t, _ in excerpt(before)]
    if nuisance:
        return _nuisance(
            subject,
            after.label,
            t0,
            within,
            nuisance=nuisance,
            raised=raised,
            defined=defined,
            facts=facts,
        )
    if not raised or raised[0][0] > t0 + within + EPSILON:
        if raised:
            t_late, entry = raised[0]
            late = t_late - t0
            message = f"{subject} was raised {late:.1f} s after {after.label}, {within:g} s allowed"
            definition = defined.get(entry.alarm)
            delay = f" (on_delay {fmt(definition.on_delay)} s)" if definition is not None else ""
            diagnosis = (
                f"{after.label} came at t={t0:.1f} s, the alarm at t={t_late:.1f} s with value "
                f"{fmt(entry.value)}: a limit closer to normal operation, or a shorter delay"
                f"{delay}, raises it sooner"
            )
        else:
            message = f"{subject} was not raised after {after.label} (t={t0:.1f} s)"
            diagnosis = _why_silent(engine, name, tag, before, after.label)
        return outcome(ALARM, False, message, diagnosis=diagnosis, evidence=facts)
    t_raise, entry = raised[0]
    facts["raised_after_s"] = round(t_raise - t0, 3)
    problems = _follow_ups(p, journal, t_raise, entry)
    if problems:
        return outcome(
            ALARM,
            False,
            f"{subject} was raised {t_raise - t0:.1f} s after {after.label} but {problems[0]}",
            diagnosis="; ".join(problems),
            evidence=facts,
        )
    extra = []
    if p.flag("cleared", False):
        extra.append("cleared")
    if p.flag("acknowledged", False):
        extra.append("acknowledged")
    return outcome(
        ALARM,
        True,
        f"{subject} was raised {t_raise - t0:.1f} s after {after.label} ({within:g} s allowed)"
        + (f", then {' and '.join(extra)}" if extra else ""),
        evidence=facts,
    )


def _fault_active(evidence: Evidence, time: float) -> bool:
    """Whether some fault was acting at ``time`` (started at or before it, not yet ended)."""
    started: dict[int, float] = {}
    for event in evidence.faults:
        if event.time > time + EPSILON:
            break
        if event.action == "start":
            started[event.fault_id] = event.time
        elif event.action == "end":
            started.pop(event.fault_id, None)
    return bool(started)


def _nuisance(
    subject: str,
    after: str,
    t0: float,
    within: float,
    *,
    nuisance: list[tuple[float, AlarmEvent]],
    raised: list[tuple[float, AlarmEvent]],
    defined: Mapping[str, Any],
    facts: dict[str, Any],
) -> CheckResult:
    """The alarm was raised in normal operation, before the fault: it does not count, and a
    raise after the fault from an alarm that sounds anyway proves nothing either."""
    t_early, early = nuisance[0]
    facts["nuisance_at"] = round(t_early, 3)
    definition = defined.get(early.alarm)
    limit = (
        f" (its limit {definition.kind} {fmt(definition.limit)}, on_delay "
        f"{fmt(definition.on_delay)} s)"
        if definition is not None
        else ""
    )
    message = (
        f"{subject} was already raised at t={t_early:.1f} s, before {after} (t={t0:.1f} s), "
        "with no fault acting: a nuisance alarm"
    )
    in_time = [(t, e) for t, e in raised if t <= t0 + within + EPSILON]
    if in_time:
        again = (
            f"it was raised again {in_time[0][0] - t0:.1f} s after {after}, but only an alarm "
            "raised by the fault counts, and one that also sounds in normal operation tells "
            "the operator nothing about the fault"
        )
    else:
        again = f"only a raise within {within:g} s after {after} counts, and none came"
    diagnosis = (
        f"{again}. {early.alarm} went off at t={t_early:.1f} s with value "
        f"{fmt(early.value)}{limit} while the plant ran normally: move the limit beyond "
        "normal operation (or add a deadband or on_delay against noise)"
    )
    return outcome(ALARM, False, message, diagnosis=diagnosis, evidence=facts)


def _follow_ups(
    p: Params, journal: list[tuple[float, AlarmEvent]], t_raise: float, raised: AlarmEvent
) -> list[str]:
    later = [(t, e) for t, e in journal if t >= t_raise and e.alarm == raised.alarm]
    problems = []
    if p.flag("cleared", False) and not any(e.kind is EventKind.CLEARED for _, e in later):
        problems.append("it never cleared (the condition did not return past the deadband)")
    if p.flag("acknowledged", False):
        acks = [e for _, e in later if e.kind is EventKind.ACKNOWLEDGED]
        by = p.optional_text("by")
        if not acks:
            problems.append("nobody acknowledged it")
        elif by is not None and not any(e.user == by for e in acks):
            users = ", ".join(sorted({e.user for e in acks}))
            problems.append(f"it was acknowledged by {users}, not by {by}")
    return problems


def _why_silent(
    engine: Any,
    name: str | None,
    tag: str | None,
    before: list[tuple[float, AlarmEvent]],
    after: str,
) -> str:
    if before:  # raised while an earlier fault acted (a raise in normal operation is a nuisance)
        t, entry = before[-1]
        return (
            f"{entry.alarm} was raised at t={t:.1f} s, during an earlier fault, before "
            f"{after}: only a raise after {after} counts, and it raised nothing new"
        )
    definitions = [d for d in engine.definitions if d.name == name or d.tag == tag]
    described = "; ".join(
        f"{d.name}: {d.kind} {fmt(d.limit)} on {d.tag}, on_delay {fmt(d.on_delay)} s"
        for d in definitions
    )
    return (
        f"{described}. Check the limit against the values the fault produces, the kind "
        "(HI/LO), and that the platform ingests that tag"
    )
