"""Reports: gate semantics, gradebook numbers, JUnit XML, Markdown feedback, signed JSON,
rosters. Expected numbers are computed by hand in the comments."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from grading.manifest import load_exercise
from grading.model import CheckResult, ClassResult, ExerciseResult, ResultFormatError
from grading.reports import (
    RosterEntry,
    RosterError,
    competency_scores,
    feedback_markdown,
    gradebook_csv,
    junit_xml,
    read_result_json,
    read_roster,
    result_json,
)
from grading.variants import draw_variant

COURSE = Path(__file__).parent / "fixtures" / "course"
SECRET = "course-secret"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def check(
    check_id: str,
    passed: bool,
    points: float,
    max_points: float,
    competency: str,
    *,
    gate: bool = False,
    message: str = "",
    diagnosis: str = "",
    evidence: dict[str, Any] | None = None,
) -> CheckResult:
    return CheckResult(
        check_id,
        check_id.title(),
        passed,
        points,
        max_points,
        message or ("ok" if passed else "wrong"),
        diagnosis,
        evidence or {},
        (competency,),
        gate,
    )


def modbus(
    apprentice: str,
    connects: bool,
    level: float,
    setpoint: float,
    *,
    seconds: float,
    error: str | None = None,
    hints_used: int = 0,
) -> ExerciseResult:
    """Exercise A: connects (gate, 0 points), level (8, modbus), setpoint (2, diagnostics)."""
    return ExerciseResult(
        "modbus-read",
        apprentice,
        7,
        [
            check("connects", connects, 0, 0, "modbus", gate=True),
            check("level", level == 8, level, 8, "modbus"),
            check("setpoint", setpoint == 2, setpoint, 2, "diagnostics"),
        ],
        T0,
        T0 + timedelta(seconds=seconds),
        error,
        hints_used,
    )


def uns(
    apprentice: str, topic: float, payload: float, *, seconds: float, topic_message: str = ""
) -> ExerciseResult:
    """Exercise B: topic (4, uns), payload (2, uns)."""
    return ExerciseResult(
        "uns-topics",
        apprentice,
        9,
        [
            check(
                "topic",
                topic == 4,
                topic,
                4,
                "uns",
                message=topic_message,
                diagnosis="publish under the site" if topic < 4 else "",
            ),
            check("payload", payload == 2, payload, 2, "uns"),
        ],
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=1, seconds=seconds),
    )


# ann: A 8/10, B 5.5/6.  bob: A gated to 0/10, no B.  cem: A timed out 0/10, B 6/6.
# eve (not on the roster): B 2/6.  dan (on the roster): nothing.
CLASS = ClassResult(
    "iiot-basics",
    [
        modbus("ann", True, 8, 0, seconds=30),
        uns("ann", 4, 1.5, seconds=20),
        modbus("bob", False, 8, 2, seconds=12.5),
        modbus("cem", False, 0, 0, seconds=120, error="timed out after 120 s"),
        uns("cem", 4, 2, seconds=10),
        uns("eve", 0, 2, seconds=5, topic_message="got \x00\x1b[31mred\ud800 topic"),
    ],
    ("modbus-read", "uns-topics"),
)
ROSTER = [
    RosterEntry("ann", "Ann Lee"),
    RosterEntry("bob", "=Bob Smith"),
    RosterEntry("cem", "Cem, Jr."),
    RosterEntry("dan", "Dan"),
]


# --- gate semantics --------------------------------------------------------------------


def test_score_is_the_sum_of_points_when_every_gate_passes() -> None:
    ann = CLASS.get("ann", "modbus-read")
    assert ann is not None
    assert (ann.score, ann.max_score, ann.passed) == (8, 10, False)
    assert ann.gate_reason is None
    assert [ann.credited(c) for c in ann.checks] == [0, 8, 0]


def test_a_failed_gate_zeroes_the_score_and_says_why() -> None:
    bob = CLASS.get("bob", "modbus-read")
    assert bob is not None
    assert sum(c.points for c in bob.checks) == 10  # points earned behind the gate ...
    assert bob.score == 0  # ... do not count
    assert bob.max_score == 10
    assert bob.gate_reason == "gate check 'connects' (Connects) failed: wrong"
    assert [bob.credited(c) for c in bob.checks] == [0, 0, 0]
    assert not bob.passed


def test_passing_needs_every_check_and_no_error() -> None:
    cem_b = CLASS.get("cem", "uns-topics")
    assert cem_b is not None and cem_b.passed and cem_b.score == 6
    crashed = ExerciseResult("uns-topics", "cem", 9, cem_b.checks, T0, T0, "crashed")
    assert not crashed.passed and crashed.score == 6
    assert not ExerciseResult("x", "cem", 1, [], T0, T0).passed  # no checks, no pass


def test_competency_scores_of_one_apprentice() -> None:
    # ann: modbus 0+8 of 0+8; diagnostics 0 of 2; uns 4+1.5 of 4+2.
    ann = [r for r in CLASS if r.apprentice == "ann"]
    assert competency_scores(ann) == {"modbus": (8, 8), "diagnostics": (0, 2), "uns": (5.5, 6)}
    # bob: behind the failed gate nothing is credited; B's possible points come from layouts.
    bob = [r for r in CLASS if r.apprentice == "bob"]
    layouts = {"uns-topics": [(4.0, ["uns"]), (2.0, ["uns"])]}
    assert competency_scores(bob, layouts) == {
        "modbus": (0, 8),
        "diagnostics": (0, 2),
        "uns": (0, 6),
    }


# --- gradebook -------------------------------------------------------------------------


def test_gradebook_numbers() -> None:
    # ann: total 13.5/16 = 84.375; A 8/10; B 5.5/6 = 91.67; modbus 8/8; diag 0/2; uns 5.5/6.
    # bob: total 0/16; A gated 0/10; B not attempted; all competencies 0.
    # cem: total 6/16 = 37.5; A 0/10 (timeout); B 6/6; uns 6/6.
    # dan: nothing: 0/16, competencies 0 of their possible points.
    # eve: not on the roster, last, no name: 2/16 = 12.5; B 2/6 = 33.33; uns 2/6.
    assert gradebook_csv(CLASS, ROSTER) == (
        "id,name,total,exercise:modbus-read,exercise:uns-topics,"
        "competency:modbus,competency:diagnostics,competency:uns\n"
        "ann,Ann Lee,84.4,80.0,91.7,100.0,0.0,91.7\n"
        "bob,'=Bob Smith,0.0,0.0,,0.0,0.0,0.0\n"
        'cem,"Cem, Jr.",37.5,0.0,100.0,0.0,0.0,100.0\n'
        "dan,Dan,0.0,,,0.0,0.0,0.0\n"
        "eve,,12.5,,33.3,0.0,0.0,33.3\n"
    )


def test_gradebook_reads_back_as_csv() -> None:
    rows = list(csv.DictReader(io.StringIO(gradebook_csv(CLASS, ROSTER))))
    assert [r["id"] for r in rows] == ["ann", "bob", "cem", "dan", "eve"]
    assert rows[2]["name"] == "Cem, Jr."
    assert rows[0]["competency:uns"] == "91.7"


def test_gradebook_takes_possible_points_from_exercise_files() -> None:
    # Only bob's A is in the class; B's 6 points and 'uns' come from its exercise.yaml.
    exercises = [load_exercise(COURSE / "01-modbus-read"), load_exercise(COURSE / "02-uns-topics")]
    bob = CLASS.get("bob", "modbus-read")
    assert bob is not None
    only_bob = ClassResult("iiot-basics", [bob])
    text = gradebook_csv(only_bob, [RosterEntry("bob", "Bob")], exercises)
    assert text.splitlines() == [
        "id,name,total,exercise:modbus-read,exercise:uns-topics,"
        "competency:modbus,competency:diagnostics,competency:uns",
        "bob,Bob,0.0,0.0,,0.0,0.0,0.0",
    ]
    assert gradebook_csv(only_bob, competencies=["uns"]).splitlines()[0] == (
        "id,name,total,exercise:modbus-read,competency:uns"
    )


# --- JUnit XML -------------------------------------------------------------------------


def parse(xml_text: str) -> ET.Element:
    assert xml_text.startswith("<?xml version='1.0' encoding='utf-8'?>")
    return ET.fromstring(xml_text.encode("utf-8"))


def test_junit_structure_and_counts() -> None:
    root = parse(junit_xml(CLASS))
    assert root.tag == "testsuites"
    # A: 3 apprentices x 3 checks; failures ann.setpoint, bob.connects; cem's 3 are errors.
    # B: 3 x 2; failures ann.payload, eve.topic.
    assert root.attrib == {
        "name": "iiot-basics",
        "tests": "15",
        "failures": "4",
        "errors": "3",
        "time": "197.500",
    }
    a, b = root.findall("testsuite")
    assert a.attrib == {
        "name": "modbus-read",
        "id": "0",
        "tests": "9",
        "failures": "2",
        "errors": "3",
        "skipped": "0",
        "time": "162.500",
        "timestamp": "2025-03-01T09:00:00",
    }
    assert (
        b.get("name"),
        b.get("tests"),
        b.get("failures"),
        b.get("errors"),
        b.get("time"),
        b.get("timestamp"),
    ) == ("uns-topics", "6", "2", "0", "35.000", "2025-03-01T10:00:00")
    cases = a.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases[:4]] == [
        ("iiot-basics.modbus-read.ann", "connects"),
        ("iiot-basics.modbus-read.ann", "level"),
        ("iiot-basics.modbus-read.ann", "setpoint"),
        ("iiot-basics.modbus-read.bob", "connects"),
    ]
    assert all(c.get("time") == "0.000" for c in cases)
    assert list(cases[0]) == []  # passed: no child


def test_junit_failures_errors_and_gates() -> None:
    root = parse(junit_xml(CLASS))
    a, b = root.findall("testsuite")
    ann_setpoint = a.findall("testcase")[2].find("failure")
    assert ann_setpoint is not None
    assert ann_setpoint.attrib == {"message": "wrong", "type": "CheckFailed"}
    assert ann_setpoint.text == "wrong\nPoints: 0 / 2"
    bob_gate = a.findall("testcase")[3].find("failure")
    assert bob_gate is not None and bob_gate.get("type") == "GateFailed"
    cem = [c for c in a.findall("testcase") if c.get("classname", "").endswith(".cem")]
    assert [c.find("failure") for c in cem] == [None, None, None]
    errors = [c.find("error") for c in cem]
    assert all(
        e is not None
        and e.attrib == {"type": "SubmissionError", "message": "timed out after 120 s"}
        for e in errors
    )
    assert errors[1] is not None and errors[1].text == (
        "The submission did not run to the end: timed out after 120 s\nwrong\nPoints: 0 / 8"
    )
    eve_topic = b.findall("testcase")[4]
    assert eve_topic.get("classname") == "iiot-basics.uns-topics.eve"
    failure = eve_topic.find("failure")
    assert failure is not None
    # Characters XML cannot carry are escaped, so the file still parses.
    assert failure.get("message") == "got \\x00\\x1b[31mred\\xd800 topic"
    assert failure.text == (
        "got \\x00\\x1b[31mred\\xd800 topic\nDiagnosis: publish under the site\nPoints: 0 / 4"
    )


def test_junit_submission_without_checks_is_one_error() -> None:
    crashed = ExerciseResult(
        "modbus-read",
        "fay",
        1,
        [],
        T0,
        T0 + timedelta(seconds=3),
        "ImportError: no module named pymodbus",
    )
    root = parse(junit_xml(ClassResult("c", [crashed])))
    (suite,) = root.findall("testsuite")
    (case,) = suite.findall("testcase")
    assert (case.get("name"), case.get("classname"), case.get("time")) == (
        "submission",
        "c.modbus-read.fay",
        "3.000",
    )
    error = case.find("error")
    assert error is not None and error.get("message") == "ImportError: no module named pymodbus"
    assert (suite.get("tests"), suite.get("errors"), suite.get("failures")) == ("1", "1", "0")


def test_junit_of_an_exercise_nobody_attempted_is_an_empty_suite() -> None:
    root = parse(junit_xml(ClassResult("c", [], ("modbus-read",))))
    (suite,) = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("time"), suite.get("timestamp")) == ("0", "0.000", None)


# --- Markdown feedback -----------------------------------------------------------------


def test_feedback_lists_each_check_and_the_next_hint() -> None:
    exercise = load_exercise(COURSE / "01-modbus-read")
    result = ExerciseResult(
        "modbus-read",
        "ann",
        1234,
        [
            CheckResult(
                "connects",
                "Your program talks Modbus to PLC1",
                True,
                0,
                0,
                "12 requests seen",
                gate=True,
            ),
            CheckResult(
                "level",
                "The level you print matches the true level",
                False,
                2.5,
                8,
                "3 of 10 values off by more than 0.01 m",
                diagnosis="you divide by 100; the map's scale is 1000",
                evidence={"true": 1.203, "printed": [12.03]},
                competencies=("modbus",),
            ),
        ],
        T0,
        T0 + timedelta(seconds=5),
        hints_used=2,
    )
    unit_id = draw_variant(exercise.variant, 1234)["unit_id"]
    assert feedback_markdown(result, exercise) == "\n".join(
        [
            "# Read the tank level over Modbus",
            "",
            "Apprentice `ann` · exercise `modbus-read` · variant seed 1234",
            "",
            "**Score: 2.5 / 8** — not passed yet; 1 of 2 checks passed; hints used: 2",
            "",
            "## ✓ Your program talks Modbus to PLC1 (`connects`)",
            "",
            "Points: 0 / 0, gate",
            "",
            "12 requests seen",
            "",
            "## ✗ The level you print matches the true level (`level`)",
            "",
            "Points: 2.5 / 8",
            "",
            "3 of 10 values off by more than 0.01 m",
            "",
            "**Diagnosis:** you divide by 100; the map's scale is 1000",
            "",
            "Competencies: modbus",
            "",
            "Evidence:",
            "",
            "```json",
            "{",
            '  "true": 1.203,',
            '  "printed": [',
            "    12.03",
            "  ]",
            "}",
            "```",
            "",
            "## Next hint (3 of 3)",
            "",
            f"Read register 0 with unit id {unit_id} and divide by 1000.",
            "",
        ]
    )


def test_feedback_for_gates_errors_and_passes() -> None:
    bob = CLASS.get("bob", "modbus-read")
    cem = CLASS.get("cem", "modbus-read")
    cem_b = CLASS.get("cem", "uns-topics")
    assert bob is not None and cem is not None and cem_b is not None
    text = feedback_markdown(bob)
    assert "# modbus-read" in text
    assert "> **Score 0 because a gate check failed.** gate check 'connects'" in text
    assert text.count("## ✗") == 1 and text.count("## ✓") == 2
    assert "Next hint" not in text  # no exercise given: no ladder to climb
    assert "> **The submission did not run to the end:** timed out after 120 s" in (
        feedback_markdown(cem)
    )
    passed = feedback_markdown(cem_b, load_exercise(COURSE / "02-uns-topics"))
    assert "— passed;" in passed and "Next hint" not in passed
    exhausted = ExerciseResult("uns-topics", "x", 1, bob.checks, T0, T0, hints_used=3)
    assert "Next hint" not in feedback_markdown(exhausted, load_exercise(COURSE / "02-uns-topics"))


def test_feedback_renders_check_titles_with_the_apprentices_variant() -> None:
    loaded = load_exercise(COURSE / "01-modbus-read")
    titles = {"connects": "PLC1 unit {{ unit_id }} answered", "setpoint": "Setpoint {{ setpoint }}"}
    exercise = loaded.model_copy(
        update={
            "checks": [
                c.model_copy(update={"title": titles.get(c.id, c.title)}) for c in loaded.checks
            ]
        }
    )
    variant = draw_variant(exercise.variant, 77)
    result = ExerciseResult(  # stored titles as written: a result graded before titles rendered
        "modbus-read",
        "ann",
        77,
        [
            CheckResult("connects", titles["connects"], False, 0, 0, "no request", gate=True),
            CheckResult("setpoint", titles["setpoint"], False, 0, 2, "you answered 1.0"),
        ],
        T0,
        T0,
    )
    text = feedback_markdown(result, exercise)
    assert "{{" not in text
    assert f"## ✗ PLC1 unit {variant['unit_id']} answered (`connects`)" in text
    assert f"## ✗ Setpoint {variant['setpoint']} (`setpoint`)" in text
    assert (
        f"gate check 'connects' (PLC1 unit {variant['unit_id']} answered) failed: no request"
        in text
    )
    assert "## ✗ Setpoint {{ setpoint }}" in feedback_markdown(result)  # no exercise: as stored


def test_feedback_evidence_is_truncated_and_fenced_safely() -> None:
    # 35 JSON lines: {, note, "samples": [, 30 numbers, ], }; 5 shown, 30 hidden.
    evidence = {"note": "a ``` fence inside", "samples": list(range(30))}
    result = ExerciseResult(
        "e", "a", 1, [CheckResult("c", "C", False, 0, 1, "m", evidence=evidence)], T0, T0
    )
    text = feedback_markdown(result, max_evidence_lines=5)
    assert (
        "\n".join(
            [
                "````json",  # longer than the ``` inside the evidence
                "{",
                '  "note": "a ``` fence inside",',
                '  "samples": [',
                "    0,",
                "    1,",
                "… (30 more lines)",
                "````",
            ]
        )
        in text
    )


# --- signed JSON -----------------------------------------------------------------------


def test_signed_json_round_trip_and_tamper() -> None:
    ann = CLASS.get("ann", "uns-topics")
    assert ann is not None
    text = result_json(ann, SECRET)
    assert text.endswith("}\n")
    assert json.loads(text)["signature"].startswith("hmac-sha256:")
    assert read_result_json(text, SECRET) == ann
    tampered = text.replace('"points": 1.5', '"points": 2', 1)
    assert tampered != text
    with pytest.raises(ResultFormatError, match="the signature does not match"):
        read_result_json(tampered, SECRET, "ann.json")
    with pytest.raises(ResultFormatError, match="the signature does not match"):
        read_result_json(text, "other-secret")
    with pytest.raises(ResultFormatError, match=r"ann\.json:1:2: not valid JSON"):
        read_result_json("{oops", SECRET, "ann.json")


def test_signed_json_with_the_graders_signing_key() -> None:
    ann = CLASS.get("ann", "uns-topics")
    assert ann is not None
    text = result_json(ann, SECRET, signing_key="grader-key")
    assert json.loads(text)["signature"].startswith("hmac-sha256-key:")
    assert read_result_json(text, SECRET, signing_key="grader-key") == ann
    assert read_result_json(text, None, signing_key="grader-key") == ann
    with pytest.raises(ResultFormatError, match="give that key to verify it"):
        read_result_json(text, SECRET, "ann.json")
    by_secret = result_json(ann, SECRET)  # what anyone with the course secret can make
    with pytest.raises(ResultFormatError, match="signed with the course secret, not with the"):
        read_result_json(by_secret, SECRET, "ann.json", signing_key="grader-key")
    with pytest.raises(ResultFormatError, match="edited after grading"):
        read_result_json(text, SECRET, "ann.json", signing_key="other-key")


# --- roster ----------------------------------------------------------------------------


def test_roster_reads_ids_and_names() -> None:
    text = (
        "\ufeffName , ID,email\n"
        "Ann Lee,ann,ann@example.org\n"
        "\n"
        '"Lee, Bob",bob.lee-2,\n'
        '"Cem\nÖz",cem@school,\n'
    )
    assert read_roster(text) == [
        RosterEntry("ann", "Ann Lee"),
        RosterEntry("bob.lee-2", "Lee, Bob"),
        RosterEntry("cem@school", "Cem\nÖz"),
    ]


def roster_problems(text: str) -> list[tuple[int | None, str]]:
    with pytest.raises(RosterError) as caught:
        read_roster(text, "class.csv")
    assert all(p.file == "class.csv" for p in caught.value.problems)
    return [(p.line, p.message) for p in caught.value.problems]


def test_roster_missing_columns() -> None:
    assert roster_problems("\n\nident,nom\nann,Ann\n") == [
        (3, "the roster has no 'id' and no 'name' column; the header line reads: ident, nom")
    ]
    assert roster_problems("id,full name\nann,Ann\n") == [
        (1, "the roster has no 'name' column; the header line reads: id, full name")
    ]


def test_roster_duplicates_and_bad_lines_name_their_lines() -> None:
    text = (
        "id,name\n"
        "ann,Ann\n"
        '"bob","Bob\nSmith"\n'
        "ann,Ann again\n"
        ",Nobody\n"
        "x y,Spaced\n"
        "dan\n"
        "eve,\n"
        "bob,Bob twice\n"
    )
    assert roster_problems(text) == [
        (5, "apprentice id 'ann' appears twice (first on line 2)"),
        (6, "the apprentice id is empty"),
        (7, "apprentice id 'x y' has characters ids cannot have"),
        (8, "expected at least 2 cells, found 1"),
        (9, "apprentice 'eve' has an empty name"),
        (10, "apprentice id 'bob' appears twice (first on line 3)"),
    ]


def test_roster_empty_and_header_only() -> None:
    assert roster_problems("") == [(1, "the roster is empty")]
    assert roster_problems("id,name\n\n") == [(1, "the roster lists no apprentices")]
    assert roster_problems("id,name,id\nann,Ann\n") == [
        (1, "the column 'id' appears twice in the header")
    ]
