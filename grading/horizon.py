"""How long a graded run lasts, in lab time: the time limit, and what the checks' evidence needs.

An exercise's time limit (``time_limit_s`` of its manifest entry, or of its ``exercise.yaml``)
is in **lab seconds**: a lab whose clock runs at speed 4 reaches a 120 s limit after 30 wall
seconds. Within the limit a run lasts as long as its evidence needs, and no longer:

=========  ===================================================================================
mode       the run lasts
=========  ===================================================================================
program    until the program exits (stopped at the limit), then a settle time; then on until
           the end of the latest window a check reads (``answer_equals`` over
           ``window: [0, 60]``, a ``state_held`` window; the start of an open window such as
           ``[10, null]``), so that no check judges a shorter stretch than it says or breaks
answers,   until every check's evidence is complete (:attr:`RunPlan.end_s`): the end of the
rules      truth windows, and the deadlines after events of the scenario's timeline (a fault
           ``at`` + ``within_s``); the whole limit when some check looks at the whole run (the
           truth at the end, a mean over the run, an alarm that must also clear). A
           ``platform_alarm`` check is complete before its deadline once its alarm was raised
           after the event, or when the platform's rules do not define it
           (:meth:`RunPlan.complete`)
tool       the whole limit (outside tools act in that window)
=========  ===================================================================================

A run that someone investigates (``simlab check``: the apprentice's own tools on the lab)
is *held* for the whole limit whatever the mode. An ``answers`` exercise whose checks only
read the truth (``answer_equals``, ``state_held``) and that nobody holds runs on a virtual
clock (:attr:`RunPlan.virtual`): the same scenario and seed give the same trace bit for bit,
at the speed of the CPU.

:func:`check_needs` says per check what lab time its evidence needs; :func:`plan_run` turns
that, the exercise's mode and limit and the lab's clock speed into a :class:`RunPlan`.
A need beyond the limit stretches the run; ``simlab lint`` reports it
(:meth:`RunPlan.beyond_limit`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeGuard

from grading.manifest import Exercise, Mode
from grading.variants import VariantError, render_value
from simlab.platform.alarms import AlarmEngine, EventKind
from simlab.scenario.model import Scenario

__all__ = ["TRUTH_ONLY", "Need", "RunPlan", "check_needs", "plan_run", "timeline_instant"]

EPSILON: Final = 1e-6
TRUTH_ONLY: Final = frozenset({"answer_equals", "state_held"})
"""Library checks that read only the truth, the timeline, the answers and the variant (no
bus, platform, audit or program): an ``answers`` exercise made of these can run virtually."""


@dataclass(frozen=True)
class Need:
    """What lab time a check's evidence needs.

    ``until_s``: the lab time by which the evidence is complete (nothing later can change
    the verdict); None when the check looks at the whole run (its verdict may depend on how
    long the run lasts). ``reach_s``: the lab time the run must reach for the check to judge
    what it says (the end of a window of truth, or the start of an open window), even after
    a program has ended. ``what`` says why, for lint messages.
    """

    check_id: str
    until_s: float | None
    reach_s: float = 0.0
    what: str = "the whole run"
    alarm: str | None = None
    """For ``platform_alarm``: the alarm whose raise after ``after_s`` completes the need."""
    after_s: float | None = None


@dataclass(frozen=True)
class RunPlan:
    """How long one run lasts (see the module docstring); times are lab seconds."""

    mode: Mode
    limit_s: float
    speed: float
    needs: tuple[Need, ...] = ()
    hold: bool = False
    virtual: bool = False

    @property
    def wall_limit_s(self) -> float:
        """The time limit in wall seconds (a program is stopped then)."""
        return self.limit_s / self.speed

    @property
    def reach_s(self) -> float:
        """The lab time every run must reach (see :attr:`Need.reach_s`; 0: none)."""
        return max((n.reach_s for n in self.needs), default=0.0)

    @property
    def evidence_until_s(self) -> float | None:
        """When every check's evidence is complete; None when some check needs the whole run."""
        if any(n.until_s is None for n in self.needs):
            return None
        return max((n.until_s for n in self.needs if n.until_s is not None), default=0.0)

    @property
    def end_s(self) -> float:
        """The lab time a run without a program lasts (a program's run ends with it)."""
        bounded = max((n.until_s for n in self.needs if n.until_s is not None), default=0.0)
        complete = self.evidence_until_s
        if self.hold or self.mode in ("tool", "program") or complete is None:
            return max(self.limit_s, bounded, self.reach_s)
        return max(complete, self.reach_s)

    def complete(self, now: float, alarms: AlarmEngine | None = None, epoch: float = 0.0) -> bool:
        """Whether every check's evidence is complete at lab time ``now``: each need has
        ended, or is an alarm that the platform's ``alarms`` (journal stamped in Unix seconds,
        lab time 0 at ``epoch``) raised in its window or does not define. Only for runs
        whose rules nobody changes while they run (batch grading)."""
        return all(_done(need, now, alarms, epoch) for need in self.needs)

    def beyond_limit(self) -> list[Need]:
        """The needs that end after the time limit (they stretch the run: raise the limit)."""
        return [n for n in self.needs if max(n.until_s or 0.0, n.reach_s) > self.limit_s]


def plan_run(
    exercise: Exercise,
    scenario: Scenario,
    variant: Mapping[str, Any],
    limit_s: float,
    *,
    hold: bool = False,
) -> RunPlan:
    """The plan of one run of ``exercise`` (its ``scenario`` built with ``variant``)."""
    needs = tuple(check_needs(exercise, scenario, variant))
    virtual = (
        exercise.mode == "answers"
        and not hold
        and all(spec.type in TRUTH_ONLY for spec in exercise.checks)
    )
    return RunPlan(
        mode=exercise.mode,
        limit_s=float(limit_s),
        speed=scenario.clock.speed,
        needs=needs,
        hold=hold,
        virtual=virtual,
    )


def check_needs(exercise: Exercise, scenario: Scenario, variant: Mapping[str, Any]) -> list[Need]:
    """Per check of ``exercise``, the lab time its evidence needs (see :class:`Need`).

    Known from the check's params and the scenario's timeline alone: ``answer_equals``
    against a variant value or a constant (nothing), the truth at ``at`` or over a
    ``window``; ``state_held`` over a ``window`` or for ``duration_s`` after a timeline
    event; ``timed_sequence`` (first A only) and ``platform_alarm`` (raised only) after a
    timeline event (``{at: t}``, ``{fault: kind}``). Everything else needs the whole run,
    and any check with a ``window: [start, end]`` a run that reaches its end (its start when
    the end is open). Deadlines get one plant step more: a timeline event happens at the
    first step at or after its instant.
    """
    needs = []
    for spec in exercise.checks:
        try:
            params = render_value(dict(spec.params), variant, exercise._source, "params")
        except VariantError:
            params = None  # the check will say it is misconfigured
        if isinstance(params, Mapping):
            needs.append(_need(spec.id, spec.type, params, scenario))
        else:
            needs.append(Need(spec.id, None))
    return needs


def _done(need: Need, now: float, alarms: AlarmEngine | None, epoch: float) -> bool:
    if need.until_s is None:
        return False
    if now >= need.until_s:
        return True
    if need.alarm is None or need.after_s is None or alarms is None:
        return False
    if need.alarm not in {d.name for d in alarms.definitions}:
        return True  # nothing can raise it: the check fails whenever the run ends
    return any(
        need.after_s - EPSILON <= e.ts - epoch <= need.until_s
        for e in alarms.journal(alarm=need.alarm, kind=EventKind.RAISED)
    )


def timeline_instant(raw: Any, scenario: Scenario) -> float | None:
    """The first instant of an event that the scenario's timeline fixes (``{at: t}``, or
    ``{fault: kind}`` with optional ``target`` and ``action``); None for any other event
    (a write, an alarm, a condition: only the run shows when it happens)."""
    if not isinstance(raw, Mapping):
        return None
    at = raw.get("at")
    if len(raw) == 1 and _number(at):
        return float(at)
    if "fault" not in raw:
        return None
    kind, action = raw["fault"], raw.get("action", "start")
    instants = []
    for fault in scenario.faults:
        if kind not in (None, "any", "*") and fault.kind != kind:
            continue
        if "target" in raw and fault.target != raw["target"]:
            continue
        if action == "start":
            instants.append(fault.at)
        elif action == "end" and fault.duration is not None:
            instants.append(fault.at + fault.duration)
    return min(instants, default=None)


def _need(check_id: str, check_type: str, params: Mapping[str, Any], scenario: Scenario) -> Need:
    step = scenario.clock.step
    if check_type == "answer_equals":
        return _answer_need(check_id, params.get("expected"))
    if check_type == "state_held" and "after" in params:
        t0 = timeline_instant(params["after"], scenario)
        duration, settle = params.get("duration_s"), params.get("settle_s", 0.0)
        if t0 is None or not _number(duration) or not _number(settle):
            return Need(check_id, None)
        end = t0 + float(settle) + float(duration)
        return Need(check_id, end, end, f"the truth until t={end:g} s")
    if check_type == "timed_sequence" and not params.get("every"):
        deadline = _deadline(params.get("a"), params.get("within_s"), scenario, step)
        return Need(check_id, None) if deadline is None else Need(check_id, *deadline)
    if check_type == "platform_alarm" and not (params.get("cleared") or params.get("acknowledged")):
        after = params.get("after") or {"fault": "any"}
        deadline = _deadline(after, params.get("within_s"), scenario, step)
        if deadline is None:
            return Need(check_id, None)
        alarm = params.get("alarm")
        return Need(
            check_id,
            *deadline,
            alarm=alarm if isinstance(alarm, str) else None,
            after_s=timeline_instant(after, scenario),
        )
    return _window_need(check_id, params.get("window"), complete=check_type in TRUTH_ONLY)


def _answer_need(check_id: str, expected: Any) -> Need:
    if not isinstance(expected, Mapping) or "truth" not in expected:
        return Need(check_id, 0.0, what="a value of the variant or the exercise")
    if expected.get("stat", "value") == "value":
        at = expected.get("at")
        if not _number(at):
            return Need(check_id, None)  # the truth at the end of the run
        return Need(check_id, float(at), float(at), f"the truth at t={float(at):g} s")
    if "window" not in expected:
        return Need(check_id, None)  # over the whole run
    return _window_need(check_id, expected["window"], complete=True)


def _window_need(check_id: str, window: Any, *, complete: bool) -> Need:
    """A check over ``window``: the run must reach its end (its start when the end is open);
    with ``complete`` (a check of the truth alone) its evidence is complete then."""
    if not isinstance(window, Sequence) or isinstance(window, str) or len(window) != 2:
        return Need(check_id, None)
    start, end = window
    if _number(end):
        until = float(end) if complete else None
        return Need(check_id, until, float(end), f"a window until t={float(end):g} s")
    if _number(start):
        return Need(check_id, None, float(start), f"a window from t={float(start):g} s")
    return Need(check_id, None)


def _deadline(
    event: Any, within: Any, scenario: Scenario, step: float
) -> tuple[float, float, str] | None:
    """``(until, reach, what)`` of a deadline ``within`` after a timeline event."""
    t0 = timeline_instant(event, scenario)
    if t0 is None or not _number(within):
        return None
    return t0 + float(within) + step, 0.0, f"t={t0:g} s + {float(within):g} s"


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
