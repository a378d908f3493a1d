"""``answer_equals``: a quiz answer from the answers file, compared with the truth or a value."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from grading.checks._common import ParamError, Params, fmt, outcome
from grading.evidence import Evidence, answers_source, convert_units
from grading.model import CheckResult

__all__ = ["check_answer_equals"]

CHECK: Final = "answer_equals"
PARAMS: Final = ("key", "expected", "tolerance", "rel_tolerance")
_NUMBER: Final = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(\S*)\s*$")
_STATS: Final = ("value", "min", "max", "mean")


def _expected(evidence: Evidence, raw: Any, variant: Mapping[str, Any]) -> tuple[Any, str]:
    """The expected answer and where it comes from."""
    if isinstance(raw, Mapping):
        if "variant" in raw:
            name = str(raw["variant"])
            if name not in variant:
                raise ParamError(f"{CHECK}: params.expected.variant: no variant parameter {name!r}")
            return variant[name], f"variant parameter {name}"
        if "truth" in raw:
            signal = str(raw["truth"])
            stat = str(raw.get("stat", "value"))
            if stat not in _STATS:
                raise ParamError(
                    f"{CHECK}: params.expected.stat must be one of {', '.join(_STATS)}"
                )
            unit = str(raw.get("unit", evidence.signal_unit(signal)))
            if stat == "value":
                at = raw.get("at", evidence.end_time)
                if isinstance(at, bool) or not isinstance(at, int | float):
                    raise ParamError(f"{CHECK}: params.expected.at must be a number of seconds")
                value = evidence.value_at(signal, float(at))
                where = f"the true {signal} at t={float(at):g} s"
            else:
                window = raw.get("window", [evidence.start_time, evidence.end_time])
                if not isinstance(window, list | tuple) or len(window) != 2:
                    raise ParamError(f"{CHECK}: params.expected.window must be [start, end]")
                _, values = evidence.signal_series(signal, float(window[0]), float(window[1]))
                if len(values) == 0:
                    raise ParamError(f"{CHECK}: no truth of {signal} in {list(window)}")
                value = float(getattr(np, "nan" + stat)(values))
                where = f"the {stat} of the true {signal} over t={window[0]}..{window[1]} s"
            return convert_units(value, evidence.signal_unit(signal), unit), f"{where} in {unit}"
        raise ParamError(
            f"{CHECK}: params.expected must be a value, {{truth: signal, at: t}} or "
            f"{{variant: name}}, got {raw!r}"
        )
    return raw, "the exercise"


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        match = _NUMBER.match(value.replace(",", ".") if value.count(",") == 1 else value)
        if match:
            return float(match.group(1))
    return None


def _blank(value: Any) -> bool:
    """An answer left empty: ``key:`` (null in YAML) or an empty or blank text."""
    return value is None or (isinstance(value, str) and not value.strip())


def _missing(
    key: str, answers: Mapping[str, Any], given: Mapping[str, Any], facts: dict[str, Any]
) -> CheckResult:
    """No answer under ``key``: say so, and which answers the file does hold."""
    source = answers_source(answers)
    empty = sorted(k for k in answers if k not in given)
    facts["answers_given"] = sorted(given)
    if empty:
        facts["answers_empty"] = empty
    if key in answers:
        message = f"no answer for {key!r} in {source}: the key is there but its value is empty"
    else:
        message = f"no answer for {key!r} in {source}"
    parts = [f"answers given: {', '.join(sorted(given)) or 'none'}"]
    others = [k for k in empty if k != key]
    if others:
        parts.append(f"left empty: {', '.join(others)}")
    parts.append(f"write your answer as '{key}: ...'")
    return outcome(CHECK, False, message, diagnosis="; ".join(parts), evidence=facts)


def check_answer_equals(
    evidence: Evidence, params: Mapping[str, Any], variant: Mapping[str, Any]
) -> CheckResult:
    """The answer under ``key`` equals ``expected``: numbers within ``tolerance`` (absolute,
    default 1e-9) or ``rel_tolerance``; text equal ignoring case and surrounding spaces.

    Params: ``key`` (the answers file's key; default: the check's id); ``expected`` (a
    value, a ``{{ variant }}`` placeholder, ``{variant: name}``, or ``{truth: signal, at:
    t}`` / ``{truth: signal, stat: min|max|mean, window: [a, b]}`` with an optional
    ``unit``); ``tolerance``; ``rel_tolerance``.
    """
    p = Params(CHECK, params, PARAMS)
    key = p.text("key", str(p.internal.get("_check_id") or "") or None)
    if "expected" not in p.raw:
        raise ParamError(f"{CHECK}: params.expected is required")
    expected, source = _expected(evidence, p.raw["expected"], variant)
    facts: dict[str, Any] = {"key": key, "expected_from": source, "expected": expected}
    if evidence.answers is None:
        return outcome(
            CHECK,
            False,
            "no answers file was handed in",
            diagnosis=f"write your answer as '{key}: ...' in the answers file",
            evidence=facts,
        )
    given = {k: v for k, v in evidence.answers.items() if not _blank(v)}
    if key not in given:
        return _missing(key, evidence.answers, given, facts)
    answer = given[key]
    facts["answer"] = answer if isinstance(answer, str | int | float | bool) else str(answer)
    wanted = _as_number(expected)
    if wanted is None:
        same = str(answer).strip().casefold() == str(expected).strip().casefold()
        if same:
            return outcome(CHECK, True, f"{key}: {answer!r} is right", evidence=facts)
        return outcome(
            CHECK, False, f"{key}: {answer!r} is not the expected answer", evidence=facts
        )
    number = _as_number(answer)
    if number is None:
        return outcome(
            CHECK,
            False,
            f"{key}: {answer!r} is not a number",
            diagnosis="write the number alone (e.g. 1.25), a unit after it is allowed",
            evidence=facts,
        )
    tolerance = max(
        p.number("tolerance", 1e-9, minimum=0.0),
        p.number("rel_tolerance", 0.0, minimum=0.0) * abs(wanted),
    )
    facts["tolerance"] = tolerance
    if abs(number - wanted) <= tolerance:
        return outcome(
            CHECK, True, f"{key}: {fmt(number)} is right (±{fmt(tolerance, 3)})", evidence=facts
        )
    diagnosis = "too high" if number > wanted else "too low"
    if wanted != 0 and number != 0:
        ratio = number / wanted
        for factor in (10.0, 100.0, 1000.0, 0.1, 0.01, 0.001, 3600.0, 60.0, 1 / 60, 1 / 3600):
            if math.isclose(ratio, factor, rel_tol=0.02):
                diagnosis += (
                    f": about {fmt(factor, 4)} × the expected value — check the unit or scale"
                )
                break
    return outcome(
        CHECK,
        False,
        f"{key}: {fmt(number)} is not within {fmt(tolerance, 3)} of the expected value",
        diagnosis=diagnosis,
        evidence=facts,
    )
