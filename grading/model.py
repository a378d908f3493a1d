"""Results of grading: one check, one exercise for one apprentice, a whole class.

Plain frozen dataclasses with a JSON form (``to_dict``/``from_dict``) that carries a schema
version, so stored results stay readable when the format grows. The rules that turn checks
into a score live here and nowhere else:

- a check earns ``points`` out of ``max_points`` (partial credit is allowed);
- a failed **gate** check (``gate=True``) sets the exercise score to 0, whatever the other
  checks earned: a gate guards what the rest of the checks assume (the gateway must be
  publishing at all before its topic layout is worth points);
- an exercise is **passed** when it ran without error and every check passed.

The runner reports every check of the exercise, also when the submission crashed or timed
out (failed, 0 points), so that ``max_score`` is the exercise's full score and a crash never
looks like a smaller exercise.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from simlab.errors import SimlabError

__all__ = [
    "RESULT_SCHEMA_VERSION",
    "CheckResult",
    "ClassResult",
    "ExerciseResult",
    "GradingError",
    "ResultFormatError",
    "format_points",
]

RESULT_SCHEMA_VERSION = 1
"""Version of the JSON form of results; bump it when a field changes meaning."""

_EXERCISE_KIND = "simlab.exercise-result"
_CLASS_KIND = "simlab.class-result"
_T = TypeVar("_T")


def format_points(value: float) -> str:
    """Points as a score line shows them: ``10`` for 10.0, ``2.5`` for 2.5."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


class GradingError(SimlabError):
    """Base of the errors of the assessment layer."""


class ResultFormatError(GradingError):
    """A stored result that cannot be read back: wrong schema, missing or mistyped field."""


# --- JSON-compatible values ----------------------------------------------------------


def _jsonable(value: Any, path: str) -> Any:
    """``value`` as plain JSON data; non-finite floats become the strings nan/inf/-inf.

    Evidence comes from the truth record and the endpoints, where NaN is a real reading (a
    sensor fault); strict JSON has no NaN, so it is kept as text. Tuples become lists, so a
    result equals itself after a JSON round trip.
    """
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: evidence keys must be text, got {key!r}")
            out[key] = _jsonable(item, f"{path}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [_jsonable(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _jsonable(value.item(), path)
    raise TypeError(
        f"{path}: evidence must be JSON data (text, numbers, booleans, lists, mappings), "
        f"got {type(value).__name__}"
    )


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{path} must be a finite number, got {value!r}")
    return value


# --- one check -------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check of one exercise for one apprentice.

    ``message`` says what the check found, in one line; ``diagnosis`` explains a failure
    (the likely cause, what to look at); ``evidence`` holds the observations the verdict
    rests on (true plant values, what the endpoint served), as JSON data.
    """

    check_id: str
    title: str
    passed: bool
    points: float
    max_points: float
    message: str
    diagnosis: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)
    competencies: tuple[str, ...] = ()
    gate: bool = False

    def __post_init__(self) -> None:
        where = f"check {self.check_id!r}"
        if not self.check_id:
            raise ValueError("a check result needs a check_id")
        _number(self.points, f"{where}: points")
        _number(self.max_points, f"{where}: max_points")
        if self.max_points < 0:
            raise ValueError(f"{where}: max_points must be >= 0, got {self.max_points}")
        if not 0 <= self.points <= self.max_points:
            raise ValueError(
                f"{where}: points must lie in [0, max_points={self.max_points}], got {self.points}"
            )
        object.__setattr__(self, "evidence", _jsonable(dict(self.evidence), "evidence"))
        object.__setattr__(self, "competencies", tuple(self.competencies))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of this check result."""
        return {
            "check_id": self.check_id,
            "title": self.title,
            "passed": self.passed,
            "points": self.points,
            "max_points": self.max_points,
            "message": self.message,
            "diagnosis": self.diagnosis,
            "evidence": copy.deepcopy(dict(self.evidence)),
            "competencies": list(self.competencies),
            "gate": self.gate,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "check") -> CheckResult:
        """Read the JSON form back; :class:`ResultFormatError` names the bad field."""
        r = _Reader(data, path)
        result = r.build(
            cls,
            check_id=r.get("check_id", str),
            title=r.get("title", str),
            passed=r.get("passed", bool),
            points=r.get("points", float),
            max_points=r.get("max_points", float),
            message=r.get("message", str),
            diagnosis=r.get("diagnosis", str, ""),
            evidence=r.get("evidence", dict, {}),
            competencies=tuple(r.get_list("competencies", str)),
            gate=r.get("gate", bool, False),
        )
        r.no_extra()
        return result


# --- one exercise ----------------------------------------------------------------------


@dataclass(frozen=True)
class ExerciseResult:
    """One apprentice's graded attempt at one exercise.

    ``error`` is set when the submission could not be graded normally: it crashed, hung
    past its time limit, or behaved in a hostile way (a message for the apprentice; the
    runner still reports every check, failed). ``variant_seed`` reproduces the apprentice's
    variant (see :func:`grading.variants.variant_seed`). ``checks`` is stored as a tuple.
    """

    exercise: str
    apprentice: str
    variant_seed: int
    checks: Sequence[CheckResult]
    started: datetime
    finished: datetime
    error: str | None = None
    hints_used: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "checks", tuple(self.checks))
        where = f"result of {self.apprentice!r} for {self.exercise!r}"
        if not self.exercise or not self.apprentice:
            raise ValueError("an exercise result needs an exercise id and an apprentice id")
        for stamp in ("started", "finished"):
            if getattr(self, stamp).utcoffset() is None:
                raise ValueError(f"{where}: {stamp} must carry a time zone (use UTC)")
        if self.finished < self.started:
            raise ValueError(f"{where}: finished ({self.finished}) is before started")
        if self.hints_used < 0:
            raise ValueError(f"{where}: hints_used must be >= 0, got {self.hints_used}")
        seen: set[str] = set()
        for check in self.checks:
            if check.check_id in seen:
                raise ValueError(f"{where}: check {check.check_id!r} is reported twice")
            seen.add(check.check_id)

    @property
    def failed_gate(self) -> CheckResult | None:
        """The first gate check that failed, if any."""
        return next((c for c in self.checks if c.gate and not c.passed), None)

    @property
    def gate_reason(self) -> str | None:
        """Why the score is 0 despite points earned: the failed gate; None when no gate failed."""
        gate = self.failed_gate
        if gate is None:
            return None
        return f"gate check {gate.check_id!r} ({gate.title}) failed: {gate.message}"

    def credited(self, check: CheckResult) -> float:
        """The points ``check`` contributes to the score: its points, or 0 behind a failed gate."""
        return 0 if self.failed_gate is not None else check.points

    @property
    def score(self) -> float:
        """Sum of the checks' points; 0 when a gate check failed."""
        if self.failed_gate is not None:
            return 0
        return sum(c.points for c in self.checks)

    @property
    def max_score(self) -> float:
        """Sum of the checks' max_points."""
        return sum(c.max_points for c in self.checks)

    @property
    def passed(self) -> bool:
        """Ran without error, has checks, and every check passed."""
        return self.error is None and bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def duration_s(self) -> float:
        """Seconds from started to finished."""
        return (self.finished - self.started).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with ``kind`` and ``schema_version`` (and derived score, for readers).

        ``score``, ``max_score`` and ``passed`` are written for people and spreadsheets that
        read the file; :meth:`from_dict` recomputes them and refuses a file where they disagree.
        """
        return {
            "kind": _EXERCISE_KIND,
            "schema_version": RESULT_SCHEMA_VERSION,
            "exercise": self.exercise,
            "apprentice": self.apprentice,
            "variant_seed": self.variant_seed,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat(),
            "error": self.error,
            "hints_used": self.hints_used,
            "score": self.score,
            "max_score": self.max_score,
            "passed": self.passed,
            "checks": [c.to_dict() for c in self.checks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "result") -> ExerciseResult:
        """Read the JSON form back; :class:`ResultFormatError` names the bad field."""
        r = _Reader(data, path)
        r.header(_EXERCISE_KIND)
        raw_checks = r.get("checks", list)
        checks = [
            CheckResult.from_dict(_mapping(item, f"{path}.checks[{i}]"), f"{path}.checks[{i}]")
            for i, item in enumerate(raw_checks)
        ]
        error = r.get("error", str, None, optional=True)
        result = r.build(
            cls,
            exercise=r.get("exercise", str),
            apprentice=r.get("apprentice", str),
            variant_seed=r.get("variant_seed", int),
            checks=checks,
            started=r.get_time("started"),
            finished=r.get_time("finished"),
            error=error,
            hints_used=r.get("hints_used", int, 0),
        )
        for derived in ("score", "max_score", "passed"):
            if derived in data and data[derived] != getattr(result, derived):
                raise ResultFormatError(
                    f"{path}.{derived}: the file says {data[derived]!r} but its checks give "
                    f"{getattr(result, derived)!r}; the file was edited or damaged"
                )
        r.no_extra({"score", "max_score", "passed"})
        return result


# --- a class ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassResult:
    """The results of a class for one course: at most one result per apprentice and exercise.

    ``exercises`` is the curriculum order (the manifest's); exercises that appear only in
    ``results`` follow it in order of first appearance.
    """

    course: str
    results: Sequence[ExerciseResult]
    exercises: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "results", tuple(self.results))
        object.__setattr__(self, "exercises", tuple(self.exercises))
        seen: set[tuple[str, str]] = set()
        for result in self.results:
            key = (result.apprentice, result.exercise)
            if key in seen:
                raise ValueError(
                    f"class {self.course!r}: two results of {result.apprentice!r} for "
                    f"{result.exercise!r}; keep one attempt per apprentice and exercise"
                )
            seen.add(key)

    def __iter__(self) -> Iterator[ExerciseResult]:
        return iter(self.results)

    def exercise_ids(self) -> list[str]:
        """Exercise ids: the curriculum order, then any others in order of first result."""
        ids = list(self.exercises)
        for result in self.results:
            if result.exercise not in ids:
                ids.append(result.exercise)
        return ids

    def apprentice_ids(self) -> list[str]:
        """Apprentice ids in order of first result."""
        return list(dict.fromkeys(r.apprentice for r in self.results))

    def get(self, apprentice: str, exercise: str) -> ExerciseResult | None:
        """The result of ``apprentice`` for ``exercise``, if there is one."""
        for result in self.results:
            if result.apprentice == apprentice and result.exercise == exercise:
                return result
        return None

    def of_exercise(self, exercise: str) -> list[ExerciseResult]:
        """Every result for ``exercise``, in stored order."""
        return [r for r in self.results if r.exercise == exercise]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with ``kind`` and ``schema_version``."""
        return {
            "kind": _CLASS_KIND,
            "schema_version": RESULT_SCHEMA_VERSION,
            "course": self.course,
            "exercises": list(self.exercises),
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "class") -> ClassResult:
        """Read the JSON form back; :class:`ResultFormatError` names the bad field."""
        r = _Reader(data, path)
        r.header(_CLASS_KIND)
        results = [
            ExerciseResult.from_dict(_mapping(item, f"{path}.results[{i}]"), f"{path}.results[{i}]")
            for i, item in enumerate(r.get("results", list))
        ]
        out = r.build(
            cls,
            course=r.get("course", str),
            results=results,
            exercises=tuple(r.get_list("exercises", str)),
        )
        r.no_extra()
        return out


# --- reading the JSON form -------------------------------------------------------------


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ResultFormatError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


_TYPE_NAMES = {
    str: "text",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    dict: "an object",
    list: "a list",
}


class _Reader:
    """Typed access to one JSON object, with errors naming the field path."""

    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        self.data = _mapping(data, path)
        self.path = path
        self.used: set[str] = {"signature"}  # a signed file carries its signature alongside

    def header(self, kind: str) -> None:
        found = self.get("kind", str)
        if found != kind:
            raise ResultFormatError(f"{self.path}.kind: expected {kind!r}, got {found!r}")
        version = self.get("schema_version", int)
        if version != RESULT_SCHEMA_VERSION:
            raise ResultFormatError(
                f"{self.path}.schema_version: this simlab reads version "
                f"{RESULT_SCHEMA_VERSION}, the file has {version}"
            )

    def get(self, key: str, kind: type, default: Any = ..., *, optional: bool = False) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise ResultFormatError(f"{self.path}.{key}: required field is missing")
            return default
        value = self.data[key]
        if value is None and optional:
            return None
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok:
            raise ResultFormatError(
                f"{self.path}.{key}: expected {_TYPE_NAMES.get(kind, kind.__name__)}, got {value!r}"
            )
        return value

    def get_list(self, key: str, kind: type) -> list[Any]:
        items = self.get(key, list, [])
        for i, item in enumerate(items):
            if not isinstance(item, kind):
                raise ResultFormatError(f"{self.path}.{key}[{i}]: expected text, got {item!r}")
        return list(items)

    def get_time(self, key: str) -> datetime:
        text = self.get(key, str)
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise ResultFormatError(
                f"{self.path}.{key}: expected an ISO 8601 time, got {text!r}"
            ) from None

    def build(self, cls: type[_T], **fields: Any) -> _T:
        try:
            return cls(**fields)
        except (ValueError, TypeError) as err:
            raise ResultFormatError(f"{self.path}: {err}") from None

    def no_extra(self, allowed: Collection[str] = ()) -> None:
        extra = sorted(set(self.data) - self.used - set(allowed))
        if extra:
            raise ResultFormatError(
                f"{self.path}: unknown field(s) {', '.join(extra)}; was the file written by a "
                f"newer simlab?"
            )
