"""The check library: check functions by name, and :func:`run_check`, which never raises.

A check is ``check(evidence, params, variant) -> CheckResult``: it looks only at the
:class:`~grading.evidence.Evidence` (the truth, the audit, the bus, the platform, the
answers, the program's run) and returns its verdict with ``max_points`` 1 and ``points``
the share earned. :func:`run_check` renders the params with the variant, calls the check
named by the :class:`~grading.manifest.CheckSpec` (a :data:`REGISTRY` name or
``python:module:function``), and stamps the spec's id, title, points, competencies and
gate on the result. Whatever goes wrong inside — a bug, bad params, missing evidence — it
returns a failed result whose message says the check itself broke, never an exception.

=====================  =============================================================
name                   verdict
=====================  =============================================================
value_tracks_truth     published values follow a plant signal; diagnoses why not
uns_contract           UNS topics: ISA-95 path, JSON payload, retained, publish rate
sparkplug_rules        an edge node's Sparkplug B session rules (births, seq, bdSeq)
state_held             a signal stays in a band after an event, or over a window
timed_sequence         B happens within T s after A
platform_alarm         a platform alarm is raised within N s of a fault (cleared, acked)
answer_equals          a quiz answer equals a value, a variant parameter or the truth
audit_security         an OPC UA session with the required security was used
audit_subscribed       a node was subscribed to, not polled
audit_no_write         no write to protected tags (a safety gate)
program_ran            the apprentice's program exited 0 within its time limit
=====================  =============================================================
"""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias

from grading.checks._common import ParamError
from grading.checks.answers import check_answer_equals
from grading.checks.audit import check_audit_no_write, check_audit_security, check_audit_subscribed
from grading.checks.bus import check_sparkplug_rules, check_uns_contract
from grading.checks.program import check_program_ran
from grading.checks.timing import check_platform_alarm, check_state_held, check_timed_sequence
from grading.checks.tracking import check_value_tracks_truth
from grading.evidence import Evidence, EvidenceError
from grading.manifest import CheckSpec
from grading.model import CheckResult
from grading.variants import VariantError, render_title, render_value

__all__ = [
    "BROKEN",
    "REGISTRY",
    "CheckFunction",
    "ParamError",
    "check_answer_equals",
    "check_audit_no_write",
    "check_audit_security",
    "check_audit_subscribed",
    "check_platform_alarm",
    "check_program_ran",
    "check_sparkplug_rules",
    "check_state_held",
    "check_timed_sequence",
    "check_uns_contract",
    "check_value_tracks_truth",
    "render_title",
    "run_check",
]

CheckFunction: TypeAlias = Callable[[Evidence, Mapping[str, Any], Mapping[str, Any]], CheckResult]
"""``check(evidence, params, variant) -> CheckResult``."""

REGISTRY: Final[Mapping[str, CheckFunction]] = {
    "value_tracks_truth": check_value_tracks_truth,
    "uns_contract": check_uns_contract,
    "sparkplug_rules": check_sparkplug_rules,
    "state_held": check_state_held,
    "timed_sequence": check_timed_sequence,
    "platform_alarm": check_platform_alarm,
    "answer_equals": check_answer_equals,
    "audit_security": check_audit_security,
    "audit_subscribed": check_audit_subscribed,
    "audit_no_write": check_audit_no_write,
    "program_ran": check_program_ran,
}
"""Every library check, by the name an ``exercise.yaml`` gives as its ``type``."""

BROKEN: Final = "the check itself broke"
"""Start of the message of a check that raised (not the apprentice's fault)."""


def _resolve(spec: CheckSpec) -> CheckFunction:
    target = spec.python_target
    if target is None:
        if spec.type not in REGISTRY:
            from simlab.scenario.checks import did_you_mean

            guess = did_you_mean(spec.type, REGISTRY)
            raise ParamError(
                f"unknown check type {spec.type!r}. {guess} Known: {', '.join(sorted(REGISTRY))}"
            )
        return REGISTRY[spec.type]
    module, name = target
    function = getattr(importlib.import_module(module), name, None)
    if not callable(function):
        raise ParamError(f"{module} has no function {name!r} (check type {spec.type!r})")
    checked: CheckFunction = function
    return checked


def _stamp(spec: CheckSpec, raw: CheckResult, variant: Mapping[str, Any]) -> CheckResult:
    """The check's verdict with the spec's identity and its points rescaled to the spec's."""
    if not isinstance(raw, CheckResult):
        raise TypeError(f"the check returned {type(raw).__name__}, not a CheckResult")
    if raw.max_points > 0:
        points = spec.points * raw.points / raw.max_points
    else:
        points = float(spec.points) if raw.passed else 0.0
    return CheckResult(
        check_id=spec.id,
        title=render_title(spec.title, variant),
        passed=raw.passed,
        points=min(max(points, 0.0), float(spec.points)),
        max_points=float(spec.points),
        message=raw.message,
        diagnosis=raw.diagnosis,
        evidence=raw.evidence,
        competencies=tuple(spec.competencies),
        gate=spec.gate,
    )


def _broken(spec: Any, err: BaseException, variant: Mapping[str, Any]) -> CheckResult:
    """A failed result saying the check itself broke, with what broke it."""
    kind = type(err).__name__
    if isinstance(err, ParamError | VariantError):
        why = f"it is misconfigured: {err}"
    elif isinstance(err, EvidenceError):
        why = f"evidence it needs is missing: {err}"
    else:
        why = f"{kind}: {err}"
    frames = traceback.extract_tb(err.__traceback__)[-3:]
    where = [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name}" for f in frames]
    check_id = getattr(spec, "id", None) or "unknown-check"
    points = getattr(spec, "points", 0)
    max_points = float(points) if isinstance(points, int | float) and points >= 0 else 0.0
    return CheckResult(
        check_id=str(check_id),
        title=render_title(str(getattr(spec, "title", check_id)), variant),
        passed=False,
        points=0.0,
        max_points=max_points,
        message=f"{BROKEN} ({why}); this is not your fault: tell your instructor",
        diagnosis=f"check type {getattr(spec, 'type', '?')!r} raised {kind}"
        + (f" at {' <- '.join(reversed(where))}" if where else ""),
        evidence={"error": kind, "detail": str(err)[:2000], "where": where},
        competencies=tuple(getattr(spec, "competencies", ()) or ()),
        gate=bool(getattr(spec, "gate", False)),
    )


def run_check(spec: CheckSpec, evidence: Evidence, variant: dict[str, Any]) -> CheckResult:
    """Run one check of an exercise; never raises (a broken check is a failed result).

    The params and the title are rendered with the variant (``"{{ setpoint }}"`` becomes
    the drawn value); the params are given ``_check_id`` (the spec's id, e.g. the default
    answer key).
    """
    try:
        function = _resolve(spec)
        rendered = render_value(dict(spec.params), variant, "exercise.yaml", "params")
        params = dict(rendered) if isinstance(rendered, Mapping) else {}
        params["_check_id"] = spec.id
        return _stamp(spec, function(evidence, params, variant), variant)
    except Exception as err:
        try:
            return _broken(spec, err, variant)
        except Exception:  # pragma: no cover - a spec too broken to even describe
            return CheckResult(
                check_id="unknown-check",
                title="unknown check",
                passed=False,
                points=0.0,
                max_points=0.0,
                message=f"{BROKEN} ({type(err).__name__}); this is not your fault",
            )
