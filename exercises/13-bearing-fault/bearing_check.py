"""The check of exercise 13 (``python:bearing_check:check``): the apprentice's bearing diagnosis.

Two answers, two truths, both in the lab's simulated seconds:

- ``detected_at``: when the *true* drive-end vibration (plant signal ``motor1.vibration``)
  first rose above ``threshold`` mm/s after the bearing started to wear;
- ``wear_onset``: when the bearing-wear fault really started (the lab's fault timeline).

An answer is an ISO-8601 UTC timestamp (``2026-01-01T00:01:23.400Z``, as in the UNS
payloads), Unix seconds or milliseconds, or seconds of lab time.

Params: ``key`` (detected_at or wear_onset), ``tolerance`` (s), ``threshold`` (mm/s, 4.5).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from grading.evidence import Evidence, EvidenceError
from grading.model import CheckResult

SIGNAL = "motor1.vibration"
KEYS = ("detected_at", "wear_onset")


def _result(passed: bool, message: str, diagnosis: str = "", **facts: Any) -> CheckResult:
    return CheckResult(
        check_id="bearing_check",
        title="bearing_check",
        passed=passed,
        points=1.0 if passed else 0.0,
        max_points=1.0,
        message=message,
        diagnosis=diagnosis,
        evidence=facts,
    )


def lab_seconds(evidence: Evidence, answer: Any) -> float | None:
    """An answer as seconds of lab time (None when it is no time at all)."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int | float):
        number = float(answer)
    elif isinstance(answer, str):
        text = answer.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return None
            if moment.tzinfo is None:
                return None
            return evidence.sim_time(moment.timestamp())
    else:
        return None
    if not math.isfinite(number):
        return None
    if number > 1e11:  # Unix milliseconds (ts_ms)
        return evidence.sim_time(number / 1000.0)
    if number > 1e8:  # Unix seconds
        return evidence.sim_time(number)
    return number


def true_times(evidence: Evidence, threshold: float) -> tuple[float | None, float | None]:
    """(wear onset, first instant the true vibration exceeds ``threshold`` after it); None
    for what did not happen before the run ended."""
    starts = [f.time for f in evidence.faults if f.kind == "bearing_wear" and f.action == "start"]
    if not starts:
        if not any(f.kind == "bearing_wear" for f in evidence.scenario.faults):
            raise EvidenceError("the scenario has no bearing_wear fault to diagnose")
        return None, None
    onset = starts[0]
    times, values = evidence.signal_series(SIGNAL, onset, evidence.end_time)
    crossing = next((float(t) for t, v in zip(times, values, strict=True) if v > threshold), None)
    return onset, crossing


def check(evidence: Evidence, params: Mapping[str, Any], variant: Mapping[str, Any]) -> CheckResult:
    """The answer under ``params.key`` is within ``tolerance`` s of the truth."""
    key = str(params.get("key", ""))
    if key not in KEYS:
        raise ValueError(f"bearing_check: params.key must be one of {', '.join(KEYS)}, got {key!r}")
    tolerance = float(params.get("tolerance", 5.0))
    threshold = float(params.get("threshold", 4.5))
    onset, crossing = true_times(evidence, threshold)
    facts: dict[str, Any] = {
        "key": key,
        "tolerance_s": tolerance,
        "true_wear_onset_s": None if onset is None else round(onset, 2),
        "true_crossing_s": None if crossing is None else round(crossing, 2),
        "threshold": threshold,
    }
    wanted = crossing if key == "detected_at" else onset
    if wanted is None:
        what = "the bearing started to wear" if onset is None else f"it exceeded {threshold:g} mm/s"
        return _result(
            False,
            f"the run ended at t={evidence.end_time:.1f} s, before {what}",
            "the lab stops shortly after your program exits: keep watching until the first "
            f"reading above {threshold:g} mm/s arrives",
            **facts,
        )
    answers = evidence.answers
    if answers is None or answers.get(key) is None:
        given_keys = ", ".join(sorted(answers)) if answers else "none"
        return _result(
            False,
            f"no answer to {key!r}",
            f"answers written: {given_keys}; write JSON with '{key}' to the file named by "
            "SIMLAB_ANSWERS before your program exits",
            **facts,
        )
    raw = answers[key]
    facts["answer"] = raw if isinstance(raw, int | float | str) else str(raw)
    given = lab_seconds(evidence, raw)
    if given is None:
        return _result(
            False,
            f"{key}: {raw!r} is not a time",
            "give an ISO-8601 UTC timestamp like 2026-01-01T00:01:23.400Z (the payload's ts)",
            **facts,
        )
    facts["answer_s"] = round(given, 2)
    error = given - wanted
    what = f"the vibration crossed {threshold:g} mm/s" if key == "detected_at" else "wear started"
    if abs(error) <= tolerance:
        return _result(
            True, f"{key}: t={given:.1f} s, {what} at t={wanted:.1f} s (±{tolerance:g} s)", **facts
        )
    if abs(error) > 3600:
        diagnosis = (
            "your time is hours away from the lab's: the lab has its own clock (it starts on "
            "2026-01-01 and runs faster than yours); use the ts in the sensor's messages"
        )
    elif key == "detected_at" and error < 0:
        diagnosis = (
            "too early: a single noisy reading, or a threshold below 4.5 mm/s? (the true "
            "vibration was still below the threshold then)"
        )
    elif key == "detected_at":
        diagnosis = "too late: react to the first reading above the threshold, without buffering"
    elif error > 0:
        diagnosis = (
            "too late: wear starts well before the readings leave the noise; extrapolate the "
            "trend back to where it leaves the baseline"
        )
    else:
        diagnosis = "too early: the readings were still at their baseline then"
    return _result(
        False,
        f"{key}: t={given:.1f} s, but {what} at t={wanted:.1f} s ({error:+.1f} s)",
        diagnosis,
        **facts,
    )
