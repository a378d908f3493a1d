"""The check of exercise 12 (``python:oee_check:check``): the apprentice's OEE answers.

The expected values are computed with the platform's own code (ISO 22400-2,
:func:`simlab.platform.service.historian_oee`) from the platform's historian, the same data
the apprentice was asked to use: the PackML state, the good and rejected counters of
``line_plc`` over the variant's window, with the rules of the brief (``held=True``): a tag's
value at the window start is its last sample before it, and a counter's increase is counted
up to its last sample in the window. The ideal rate is the variant's nameplate rate. (The
platform's API, ``held=False``, shares an increase between two samples that straddle a window
edge by run time instead.) A figure the history does not
support (None, with the platform's reason) cannot be graded: the check raises, which the
grader reports as a broken check, not as the apprentice's fault.

Params: ``key`` (availability, performance, quality, oee or produced: the answer's key and
the value compared), ``tolerance`` (absolute).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from grading.evidence import Evidence
from grading.model import CheckResult
from simlab.platform.kpi import KpiError, OeeResult
from simlab.platform.service import historian_oee

DEVICE = "line_plc"
LOOKBACK_S = 3600.0
KEYS = ("availability", "performance", "quality", "oee", "produced")


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def expected_oee(evidence: Evidence, variant: Mapping[str, Any]) -> OeeResult:
    """OEE of the variant's window from the run's historian (KpiError when impossible)."""
    platform = evidence.platform
    if platform is None or platform.historian is None:
        raise KpiError("no platform historian in the evidence")
    historian = platform.historian
    start, end = _seconds(variant["window_start"]), _seconds(variant["window_end"])
    paths = {
        tag: evidence.scenario.uns_path(DEVICE, tag)
        for tag in ("state", "bottles_good", "bottles_rejected")
    }
    return historian_oee(
        historian,
        state=paths["state"],
        good=paths["bottles_good"],
        rejected=paths["bottles_rejected"],
        window_start=start,
        window_end=end,
        ideal_rate_per_min=float(variant["ideal_rate"]),
        lookback_s=LOOKBACK_S,
        held=True,
    )


def _result(passed: bool, message: str, diagnosis: str = "", **facts: Any) -> CheckResult:
    return CheckResult(
        check_id="oee_check",
        title="oee_check",
        passed=passed,
        points=1.0 if passed else 0.0,
        max_points=1.0,
        message=message,
        diagnosis=diagnosis,
        evidence=facts,
    )


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            return float(value.strip().rstrip("%")) / (100.0 if value.strip().endswith("%") else 1)
        except ValueError:
            return None
    return None


def check(evidence: Evidence, params: Mapping[str, Any], variant: Mapping[str, Any]) -> CheckResult:
    """The answer under ``params.key`` equals the platform-history OEE figure."""
    key = str(params.get("key", ""))
    if key not in KEYS:
        raise ValueError(f"oee_check: params.key must be one of {', '.join(KEYS)}, got {key!r}")
    tolerance = float(params.get("tolerance", 0.02))
    window_end = _seconds(variant["window_end"])
    if evidence.unix_time(evidence.end_time) < window_end:
        return _result(
            False,
            f"the lab stopped at {evidence.end_time:.0f} s of lab time, before your window ended "
            f"({variant['window_end']}): the window's OEE was not known yet",
            "the lab stops shortly after your program exits: wait until GET /api/health says "
            "the lab's clock has passed the window's end (plus a few seconds), then compute",
            key=key,
        )
    answers = evidence.answers
    if answers is None:
        return _result(
            False,
            "no answers: your program wrote no answers file",
            f"write JSON with '{key}' to the file named by SIMLAB_ANSWERS before you exit",
            key=key,
        )
    result = expected_oee(evidence, variant)
    figure: float | None = getattr(result, key)
    if figure is None:
        reason = result.reasons.get(key) or "; ".join(result.reasons.values()) or "no data"
        raise KpiError(
            f"the platform history gives no {key} for the window "
            f"{variant['window_start']} .. {variant['window_end']}: {reason}"
        )
    wanted = float(figure)
    facts: dict[str, Any] = {
        "key": key,
        "expected": round(wanted, 4),
        "tolerance": tolerance,
        "window": [variant["window_start"], variant["window_end"]],
        "platform_oee": {
            "availability": round(result.availability, 4),
            "performance": _rounded(result.performance, 4),
            "quality": _rounded(result.quality, 4),
            "oee": _rounded(result.oee, 4),
            "apt_s": round(result.apt, 1),
            "pbt_s": round(result.pbt, 1),
            "produced": _rounded(result.produced, 2),
            "good": _rounded(result.good, 2),
            "counted_from": result.counted_from,
            "reasons": dict(result.reasons),
        },
    }
    if answers.get(key) is None:
        return _result(
            False,
            f"no answer to {key!r}",
            f"answers given: {', '.join(sorted(k for k, v in answers.items() if v is not None))}",
            **facts,
        )
    given = _number(answers[key])
    facts["answer"] = answers[key] if isinstance(answers[key], int | float | str) else None
    if given is None:
        return _result(False, f"{key}: {answers[key]!r} is not a number", **facts)
    if abs(given - wanted) <= tolerance:
        return _result(True, f"{key}: {given:.4g} is right (±{tolerance:g})", **facts)
    hint = "too high" if given > wanted else "too low"
    if key in ("availability", "performance", "quality", "oee") and 1.5 < given <= 100:
        hint += ": give a fraction (0.85), not a percentage"
    elif key == "availability":
        hint += ": count every state but Stopped (2) and Idle (4) as planned, Execute (6) as run"
    elif key == "performance":
        hint += f": planned time per bottle is 60 / {variant['ideal_rate']} s, over the run time"
    return _result(
        False,
        f"{key}: {given:.4g} is not within {tolerance:g} of the platform history's {wanted:.4g}",
        hint,
        **facts,
    )
