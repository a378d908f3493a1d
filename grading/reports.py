"""Reports of grading: signed JSON and Markdown feedback per apprentice, a class gradebook
(CSV), JUnit XML for CI dashboards, and the class roster (CSV) they are built against.

Every function here is pure: results in, text out (the CLI writes the files).

Competency score
    For one apprentice and one competency: the points credited over the checks tagged with
    it, divided by the points possible over those checks, across the exercises of the
    gradebook. Credited points follow :meth:`ExerciseResult.credited` (0 behind a failed
    gate); exercises without a result count as 0 of their possible points.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from grading.manifest import Exercise
from grading.model import ClassResult, ExerciseResult, GradingError, ResultFormatError
from grading.signing import sign_result, signed_with, verify_result
from grading.variants import VariantError, draw_variant, render_brief, render_title
from simlab.errors import FileProblems, Problem

__all__ = [
    "RosterEntry",
    "RosterError",
    "competency_scores",
    "feedback_markdown",
    "gradebook_csv",
    "junit_xml",
    "read_result_json",
    "read_roster",
    "result_json",
]


# --- signed JSON -----------------------------------------------------------------------


def result_json(
    result: ExerciseResult, course_secret: str | None, *, signing_key: str | None = None
) -> str:
    """The apprentice's result as signed JSON text (2-space indent, newline at the end),
    signed with the grader's ``signing_key`` when given (see :mod:`grading.signing`)."""
    signed = sign_result(result.to_dict(), course_secret, signing_key=signing_key)
    return json.dumps(signed, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def read_result_json(
    text: str,
    course_secret: str | None,
    source: str = "<result>",
    *,
    signing_key: str | None = None,
) -> ExerciseResult:
    """Read a signed result back; :class:`ResultFormatError` if it is not valid JSON, its
    signature does not match (edited, signed with another course's secret, or — when a
    ``signing_key`` is given — not signed with it) or its fields are wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ResultFormatError(
            f"{source}:{err.lineno}:{err.colno}: not valid JSON: {err.msg}"
        ) from None
    if not isinstance(data, dict) or not verify_result(
        data, course_secret, signing_key=signing_key
    ):
        kind = signed_with(data) if isinstance(data, dict) else None
        if signing_key is not None and kind == "course-secret":
            why = (
                "it is signed with the course secret, not with the grader's signing key "
                "(anyone holding the course secret can make such a signature)"
            )
        elif signing_key is None and kind == "signing-key":
            why = "it is signed with a grader's signing key: give that key to verify it"
        else:
            why = (
                "the file was edited after grading, or signed with another course secret "
                "or signing key"
            )
        raise ResultFormatError(f"{source}: the signature does not match: {why}")
    return ExerciseResult.from_dict(data, source)


# --- Markdown feedback -----------------------------------------------------------------


def _pts(value: float) -> str:
    """Points as people write them: ``8``, ``2.5``."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _excerpt(evidence: Mapping[str, Any], max_lines: int) -> str:
    lines = json.dumps(evidence, indent=2, ensure_ascii=False).splitlines()
    if len(lines) > max_lines:
        hidden = len(lines) - max_lines
        lines = [*lines[:max_lines], f"… ({hidden} more line{'s' if hidden > 1 else ''})"]
    return "\n".join(lines)


def _variant(result: ExerciseResult, exercise: Exercise | None) -> dict[str, Any] | None:
    """The apprentice's variant values, from the result's seed (None without the exercise)."""
    if exercise is None:
        return None
    with contextlib.suppress(VariantError):
        return draw_variant(exercise.variant, result.variant_seed)
    return None


def _titles(result: ExerciseResult, exercise: Exercise | None) -> dict[str, str]:
    """Check id → title rendered for the apprentice's variant, from the exercise's checks.

    Titles are rendered when graded; this also renders those of results written before that
    (or by a runner that did not), from the template, never from the stored text."""
    variant = _variant(result, exercise)
    if exercise is None or variant is None:
        return {}
    return {spec.id: render_title(spec.title, variant) for spec in exercise.checks}


def _next_hint(result: ExerciseResult, exercise: Exercise | None) -> tuple[int, str] | None:
    """(rung number from 1, text) of the next hint, rendered for the apprentice's variant."""
    if exercise is None or result.passed or result.hints_used >= len(exercise.hints):
        return None
    variant = _variant(result, exercise) or {}
    text = exercise.hints[result.hints_used]
    # A hint with a bad placeholder is shown as written; check_manifest reports it.
    with contextlib.suppress(VariantError):
        text = render_brief(text, variant, f"{exercise.id}: hints[{result.hints_used}]")
    return result.hints_used + 1, text


def feedback_markdown(
    result: ExerciseResult,
    exercise: Exercise | None = None,
    *,
    max_evidence_lines: int = 20,
) -> str:
    """Markdown feedback for the apprentice: the score, then each check (✓/✗, points,
    message, diagnosis, evidence excerpt in a code block), then the next hint of the
    ladder when the exercise is not passed yet (needs ``exercise``)."""
    title = exercise.title if exercise is not None else result.exercise
    passed = sum(1 for c in result.checks if c.passed)
    out = [
        f"# {title}",
        "",
        f"Apprentice `{result.apprentice}` · exercise `{result.exercise}` · "
        f"variant seed {result.variant_seed}",
        "",
        f"**Score: {_pts(result.score)} / {_pts(result.max_score)}** — "
        f"{'passed' if result.passed else 'not passed yet'}; "
        f"{passed} of {len(result.checks)} checks passed; hints used: {result.hints_used}",
        "",
    ]
    if result.error is not None:
        out += [f"> **The submission did not run to the end:** {result.error}", ""]
    titles = _titles(result, exercise)
    gate = result.failed_gate
    if gate is not None:
        gate_title = titles.get(gate.check_id, gate.title)
        out += [
            f"> **Score 0 because a gate check failed.** gate check {gate.check_id!r} "
            f"({gate_title}) failed: {gate.message}",
            "",
        ]
    for check in result.checks:
        mark = "✓" if check.passed else "✗"
        gate_mark = ", gate" if check.gate else ""
        out += [
            f"## {mark} {titles.get(check.check_id, check.title)} (`{check.check_id}`)",
            "",
            f"Points: {_pts(check.points)} / {_pts(check.max_points)}{gate_mark}",
            "",
            check.message or ("passed" if check.passed else "failed"),
            "",
        ]
        if check.diagnosis:
            out += [f"**Diagnosis:** {check.diagnosis}", ""]
        if check.competencies:
            out += [f"Competencies: {', '.join(check.competencies)}", ""]
        if check.evidence:
            body = _excerpt(check.evidence, max_evidence_lines)
            fence = _fence(body)
            out += ["Evidence:", "", f"{fence}json", body, fence, ""]
    hint = _next_hint(result, exercise)
    if hint is not None:
        rung, text = hint
        total = len(exercise.hints) if exercise is not None else 3
        out += [f"## Next hint ({rung} of {total})", "", text, ""]
    return "\n".join(out)


# --- roster ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RosterEntry:
    """One apprentice of the class."""

    id: str
    name: str


class RosterError(FileProblems, GradingError):
    """A roster file that cannot be used; ``problems`` lists every error with its line."""


_APPRENTICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
_ROSTER_COLUMNS = ("id", "name")


def read_roster(text: str, filename: str = "roster.csv") -> list[RosterEntry]:
    """Read a roster CSV: a header naming at least ``id`` and ``name`` (any order, any case,
    other columns ignored), then one apprentice per line. Blank lines are skipped.

    Raises :class:`RosterError` listing every problem with its line: missing columns,
    empty or invalid ids, empty names, duplicate ids, an empty roster.
    """
    problems: list[Problem] = []

    def problem(message: str, line: int | None, hint: str = "") -> None:
        problems.append(Problem(message, file=filename, line=line, hint=hint))

    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    header: dict[str, int] | None = None
    header_line = 1
    entries: list[RosterEntry] = []
    first_line: dict[str, int] = {}
    line = 1
    try:
        for row in reader:
            start, line = line, reader.line_num + 1  # a quoted cell may span several lines
            cells = [cell.strip() for cell in row]
            if not any(cells):
                continue
            if header is None:
                header_line = start
                names = [cell.lower() for cell in cells]
                header = {}
                for index, name in enumerate(names):
                    if name in header:
                        problem(
                            f"the column {name!r} appears twice in the header",
                            start,
                            "keep one column of each name",
                        )
                    header.setdefault(name, index)
                missing = [c for c in _ROSTER_COLUMNS if c not in header]
                if missing:
                    problem(
                        f"the roster has no {' and no '.join(repr(c) for c in missing)} "
                        f"column; the header line reads: {', '.join(cells)}",
                        start,
                        "the first line names the columns, like: id,name",
                    )
                    break
                continue
            width = max(header["id"], header["name"]) + 1
            if len(cells) < width:
                problem(
                    f"expected at least {width} cells, found {len(cells)}", start, "write: id,name"
                )
                continue
            apprentice, name = cells[header["id"]], cells[header["name"]]
            if not apprentice:
                problem("the apprentice id is empty", start, "every line needs an id")
                continue
            if not _APPRENTICE_ID.match(apprentice):
                problem(
                    f"apprentice id {apprentice!r} has characters ids cannot have",
                    start,
                    "ids are letters, digits, '.', '_', '-' and '@', starting with a letter "
                    "or digit",
                )
                continue
            if apprentice in first_line:
                problem(
                    f"apprentice id {apprentice!r} appears twice (first on line "
                    f"{first_line[apprentice]})",
                    start,
                    "keep one line per apprentice",
                )
                continue
            if not name:
                problem(
                    f"apprentice {apprentice!r} has an empty name",
                    start,
                    "write the apprentice's name in the name column",
                )
            first_line[apprentice] = start
            entries.append(RosterEntry(apprentice, name))
    except csv.Error as err:
        problem(f"not valid CSV: {err}", reader.line_num or line)
    if header is None:
        problem(
            "the roster is empty", 1, "write a header line 'id,name', then one line per apprentice"
        )
    elif not entries and not problems:
        problem(
            "the roster lists no apprentices",
            header_line,
            "add one line per apprentice under the header",
        )
    if problems:
        raise RosterError(problems)
    return entries


# --- gradebook -------------------------------------------------------------------------


@dataclass(frozen=True)
class _CheckWeight:
    max_points: float
    competencies: tuple[str, ...]


def _layouts(results: ClassResult, exercises: Sequence[Exercise]) -> dict[str, list[_CheckWeight]]:
    """Exercise id → its checks' weights: from the exercise files, else a class result."""
    layouts = {
        e.id: [_CheckWeight(c.points, tuple(c.competencies)) for c in e.checks] for e in exercises
    }
    for result in results:
        layouts.setdefault(
            result.exercise,
            [_CheckWeight(c.max_points, c.competencies) for c in result.checks],
        )
    return layouts


def competency_scores(
    results: Iterable[ExerciseResult],
    layouts: Mapping[str, Sequence[tuple[float, Sequence[str]]]] | None = None,
) -> dict[str, tuple[float, float]]:
    """Competency → (points credited, points possible) for one apprentice's ``results``.

    ``layouts`` (exercise id → ``(max_points, competencies)`` of each check) adds the
    possible points of exercises without a result; their credited points are 0.
    """
    totals: dict[str, list[float]] = {}
    seen: set[str] = set()
    for result in results:
        seen.add(result.exercise)
        for check in result.checks:
            for competency in check.competencies:
                earned_possible = totals.setdefault(competency, [0.0, 0.0])
                earned_possible[0] += result.credited(check)
                earned_possible[1] += check.max_points
    for exercise, checks in (layouts or {}).items():
        if exercise in seen:
            continue
        for max_points, competencies in checks:
            for competency in competencies:
                totals.setdefault(competency, [0.0, 0.0])[1] += max_points
    return {k: (v[0], v[1]) for k, v in totals.items()}


def _percent(earned: float, possible: float) -> str:
    return f"{100 * earned / possible:.1f}" if possible > 0 else ""


def _cell(text: str) -> str:
    """Text a spreadsheet shows as text: a leading = + - @ would start a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def gradebook_csv(
    results: ClassResult,
    roster: Sequence[RosterEntry] = (),
    exercises: Sequence[Exercise] = (),
    competencies: Sequence[str] | None = None,
) -> str:
    """The class gradebook: one row per apprentice.

    Columns: ``id``, ``name``, ``total`` (percent of the points of every exercise column),
    then ``exercise:<id>`` per exercise (percent; empty when not attempted) and
    ``competency:<id>`` per competency (percent, see the module docstring; empty when
    nothing is possible). Exercises: the curriculum order of ``results`` and ``exercises``;
    their possible points come from ``exercises`` (the loaded exercise files) or else from
    any result for the exercise in the class. Rows: the roster's order, then apprentices
    with results who are not on the roster (sorted, empty name).
    """
    layouts = _layouts(results, exercises)
    exercise_ids = list(dict.fromkeys([*results.exercise_ids(), *(e.id for e in exercises)]))
    if competencies is None:
        competencies = list(
            dict.fromkeys(
                c for ex in exercise_ids for w in layouts.get(ex, []) for c in w.competencies
            )
        )
    on_roster = {entry.id for entry in roster}
    rows = [
        *roster,
        *(RosterEntry(a, "") for a in sorted(set(results.apprentice_ids()) - on_roster)),
    ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "id",
            "name",
            "total",
            *(f"exercise:{e}" for e in exercise_ids),
            *(f"competency:{c}" for c in competencies),
        ]
    )
    for entry in rows:
        own = [r for r in results if r.apprentice == entry.id]
        earned = possible = 0.0
        exercise_cells = []
        for exercise in exercise_ids:
            result = results.get(entry.id, exercise)
            if result is None:
                possible += sum(w.max_points for w in layouts.get(exercise, []))
                exercise_cells.append("")
            else:
                earned += result.score
                possible += result.max_score
                exercise_cells.append(_percent(result.score, result.max_score))
        scores = competency_scores(
            [r for r in own if r.exercise in exercise_ids],
            {e: [(w.max_points, w.competencies) for w in layouts.get(e, [])] for e in exercise_ids},
        )
        writer.writerow(
            [
                _cell(entry.id),
                _cell(entry.name),
                _percent(earned, possible),
                *exercise_cells,
                *(_percent(*scores.get(c, (0.0, 0.0))) for c in competencies),
            ]
        )
    return out.getvalue()


# --- JUnit XML -------------------------------------------------------------------------

# Characters XML 1.0 cannot carry at all (a hostile submission may print them).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return _XML_INVALID.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _seconds(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "0.000"


def _timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC without offset, as the JUnit schemas' timestamp pattern wants."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def junit_xml(results: ClassResult) -> str:
    """JUnit XML of a class: one ``testsuite`` per exercise, one ``testcase`` per
    apprentice × check (``classname`` = ``course.exercise.apprentice``, ``name`` = check id).

    A failed check is a ``failure`` (message, then diagnosis and points in the text; type
    ``GateFailed`` for a gate). A submission that crashed or timed out (``error``) turns
    its failed checks into ``error`` elements, or is one ``submission`` testcase with an
    ``error`` when it reported no checks. Fits the common JUnit schemas (Jenkins, Ant).
    """
    root = ET.Element("testsuites", name=_xml_text(results.course))
    all_tests = all_failures = all_errors = 0
    all_time = 0.0
    for suite_id, exercise in enumerate(results.exercise_ids()):
        members = results.of_exercise(exercise)
        suite = ET.SubElement(root, "testsuite", name=_xml_text(exercise), id=str(suite_id))
        tests = failures = errors = 0
        time = sum(r.duration_s for r in members)
        for result in members:
            classname = _xml_text(f"{results.course}.{exercise}.{result.apprentice}")
            if not result.checks:
                case = ET.SubElement(
                    suite,
                    "testcase",
                    name="submission",
                    classname=classname,
                    time=_seconds(result.duration_s),
                )
                error = ET.SubElement(
                    case,
                    "error",
                    message=_xml_text(result.error or "no checks were reported"),
                    type="SubmissionError",
                )
                error.text = _xml_text(result.error or "the grader reported no checks")
                tests, errors = tests + 1, errors + 1
                continue
            for check in result.checks:
                tests += 1
                case = ET.SubElement(
                    suite,
                    "testcase",
                    name=_xml_text(check.check_id),
                    classname=classname,
                    time="0.000",
                )
                if check.passed:
                    continue
                detail = [check.message]
                if check.diagnosis:
                    detail.append(f"Diagnosis: {check.diagnosis}")
                detail.append(f"Points: {_pts(check.points)} / {_pts(check.max_points)}")
                if result.error is not None:
                    errors += 1
                    element = ET.SubElement(
                        case, "error", type="SubmissionError", message=_xml_text(result.error)
                    )
                    detail.insert(0, f"The submission did not run to the end: {result.error}")
                else:
                    failures += 1
                    element = ET.SubElement(
                        case,
                        "failure",
                        message=_xml_text(check.message),
                        type="GateFailed" if check.gate else "CheckFailed",
                    )
                element.text = _xml_text("\n".join(detail))
        suite.set("tests", str(tests))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        suite.set("skipped", "0")
        suite.set("time", _seconds(time))
        if members:
            suite.set("timestamp", _timestamp(min(r.started for r in members)))
        all_tests, all_failures, all_errors = (
            all_tests + tests,
            all_failures + failures,
            all_errors + errors,
        )
        all_time += time
    root.set("tests", str(all_tests))
    root.set("failures", str(all_failures))
    root.set("errors", str(all_errors))
    root.set("time", _seconds(all_time))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
