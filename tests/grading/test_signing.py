"""Signing results, and the JSON form of results that the signature covers."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from grading.model import (
    RESULT_SCHEMA_VERSION,
    CheckResult,
    ClassResult,
    ExerciseResult,
    ResultFormatError,
)
from grading.signing import (
    KEY_SIGNATURE_PREFIX,
    SIGNATURE_PREFIX,
    SIGNING_LABEL,
    SigningError,
    canonical_json,
    derive_key,
    sign_result,
    signed_with,
    verify_result,
)
from grading.variants import variant_seed

SECRET = "course-secret"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def result(**overrides: Any) -> ExerciseResult:
    fields: dict[str, Any] = {
        "exercise": "modbus-read",
        "apprentice": "ann",
        "variant_seed": 3437790924546525,
        "checks": [
            CheckResult(
                "connects",
                "Talks Modbus",
                True,
                0,
                0,
                "seen 12 requests",
                competencies=("modbus",),
                gate=True,
            ),
            CheckResult(
                "level",
                "Level matches",
                True,
                8,
                8,
                "within 0.004 m",
                evidence={"true": 1.203, "printed": [1.2, 1.21]},
                competencies=("modbus",),
            ),
            CheckResult(
                "setpoint",
                "Setpoint found",
                False,
                0,
                2,
                "you answered 1.0",
                diagnosis="1.0 is the default; read level_sp",
                evidence={"answer": 1.0},
                competencies=("diagnostics",),
            ),
        ],
        "started": T0,
        "finished": T0 + timedelta(seconds=42.5),
        "hints_used": 1,
    }
    fields.update(overrides)
    return ExerciseResult(**fields)


# --- canonical JSON and signatures -----------------------------------------------------


def test_canonical_json_sorts_keys_and_drops_whitespace() -> None:
    data = {"b": [True, None, 1.5], "a": {"z": 1, "y": "é"}}
    assert canonical_json(data) == '{"a":{"y":"é","z":1},"b":[true,null,1.5]}'.encode()


def test_canonical_json_refuses_nan_and_objects() -> None:
    with pytest.raises(SigningError, match="not plain JSON"):
        canonical_json({"x": math.nan})
    with pytest.raises(SigningError, match="not plain JSON"):
        canonical_json({"x": object()})


def test_signature_is_hmac_sha256_of_the_canonical_json_without_it() -> None:
    data = {"score": 8, "apprentice": "ann"}
    signed = sign_result(data, SECRET)
    mac = hmac.new(SECRET.encode(), b'{"apprentice":"ann","score":8}', hashlib.sha256)
    assert signed == {
        "score": 8,
        "apprentice": "ann",
        "signature": "hmac-sha256:" + mac.hexdigest(),
    }
    assert data == {"score": 8, "apprentice": "ann"}  # the input is not modified


def test_signing_twice_gives_the_same_signature() -> None:
    once = sign_result({"a": 1}, SECRET)
    assert sign_result(once, SECRET) == once


def test_result_round_trip_sign_verify_tamper() -> None:
    original = result()
    signed = sign_result(original.to_dict(), SECRET)
    assert signed["signature"].startswith(SIGNATURE_PREFIX)
    # Through a file: JSON text and back.
    on_disk = json.loads(json.dumps(signed, indent=2))
    assert verify_result(on_disk, SECRET) is True
    assert ExerciseResult.from_dict(on_disk) == original
    # The apprentice gives themselves one more point on the failed check.
    tampered = copy.deepcopy(on_disk)
    tampered["checks"][2]["points"] = 1
    assert verify_result(tampered, SECRET) is False


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.__setitem__("score", 10),
        lambda d: d["checks"][2].__setitem__("passed", True),
        lambda d: d["checks"][1]["evidence"].__setitem__("true", 1.2),
        lambda d: d.__setitem__("extra", 1),
        lambda d: d.pop("hints_used"),
        lambda d: d.__setitem__("apprentice", "bob"),
        lambda d: d.__setitem__("signature", d["signature"][:-1] + "0"),
        lambda d: d.pop("signature"),
        lambda d: d.__setitem__("signature", 12),
    ],
)
def test_any_edit_breaks_the_signature(edit: Any) -> None:
    signed = sign_result(result().to_dict(), SECRET)
    assert verify_result(signed, SECRET)
    edit(signed)
    assert verify_result(signed, SECRET) is False


def test_another_secret_does_not_verify() -> None:
    signed = sign_result(result().to_dict(), SECRET)
    assert verify_result(signed, "another-course") is False


def test_empty_secret_is_a_setup_error() -> None:
    with pytest.raises(SigningError, match="secret is empty"):
        sign_result({"a": 1}, "")
    with pytest.raises(SigningError, match="secret is empty"):
        verify_result({"a": 1, "signature": "x"}, "")


def test_verify_is_false_for_non_json_content() -> None:
    assert verify_result({"a": math.nan, "signature": "hmac-sha256:00"}, SECRET) is False


# --- a grader-only signing key ---------------------------------------------------------

SIGNING_KEY = "grader-only-key"


def test_a_signing_key_signs_with_a_key_derived_for_results_only() -> None:
    data = {"score": 8, "apprentice": "ann"}
    signed = sign_result(data, SECRET, signing_key=SIGNING_KEY)
    key = hmac.new(SIGNING_KEY.encode(), b"simlab-result-signature", hashlib.sha256).digest()
    assert SIGNING_LABEL == b"simlab-result-signature"
    assert derive_key(SIGNING_KEY, SIGNING_LABEL) == key
    mac = hmac.new(key, b'{"apprentice":"ann","score":8}', hashlib.sha256)
    assert signed["signature"] == KEY_SIGNATURE_PREFIX + mac.hexdigest()
    assert sign_result(data, signing_key=SIGNING_KEY) == signed  # no course secret needed
    assert verify_result(signed, signing_key=SIGNING_KEY) is True
    assert signed_with(signed) == "signing-key"
    assert signed_with(sign_result(data, SECRET)) == "course-secret"
    assert signed_with(data) is None


def test_whoever_holds_the_course_secret_cannot_forge_a_signing_key_signature() -> None:
    """Apprentices hold the course secret (their variants need it): a result they sign
    with it, or with any key derived from it, must not verify as the grader's."""
    forged = result().to_dict()
    forged["checks"][2].update(passed=True, points=2)
    forged["score"], forged["passed"] = 10, True
    attempts = [
        sign_result(forged, SECRET),
        sign_result(forged, signing_key=SECRET),
        sign_result(forged, signing_key=derive_key(SECRET, SIGNING_LABEL).hex()),
    ]
    for attempt in attempts:
        assert verify_result(attempt, SECRET, signing_key=SIGNING_KEY) is False
    genuine = sign_result(result().to_dict(), SECRET, signing_key=SIGNING_KEY)
    assert verify_result(genuine, SECRET, signing_key=SIGNING_KEY) is True
    assert verify_result(genuine, SECRET) is False  # the course secret alone cannot vouch
    tampered = copy.deepcopy(genuine)
    tampered["score"] = 10
    assert verify_result(tampered, signing_key=SIGNING_KEY) is False


def test_the_signing_key_is_independent_of_the_variant_seeds() -> None:
    """The same text as course secret and signing key still gives unrelated MACs."""
    signed = sign_result({"a": 1}, signing_key=SECRET)
    assert signed != sign_result({"a": 1}, SECRET)
    seed = variant_seed(SECRET, "ann", "modbus-read")
    assert str(seed) not in signed["signature"]
    assert derive_key(SECRET, SIGNING_LABEL) != derive_key(SECRET, b"simlab-variant-seed")


def test_an_empty_signing_key_is_a_setup_error() -> None:
    with pytest.raises(SigningError, match="signing key is empty"):
        sign_result({"a": 1}, SECRET, signing_key="")
    with pytest.raises(SigningError, match="signing key is empty"):
        verify_result({"a": 1, "signature": "x"}, SECRET, signing_key="")
    with pytest.raises(SigningError, match="secret is empty"):
        sign_result({"a": 1})


# --- the JSON form of results ----------------------------------------------------------


def test_exercise_result_json_form() -> None:
    data = result().to_dict()
    assert data["kind"] == "simlab.exercise-result"
    assert data["schema_version"] == RESULT_SCHEMA_VERSION == 1
    assert data["score"] == 8
    assert data["max_score"] == 10
    assert data["passed"] is False
    assert data["started"] == "2025-03-01T09:00:00+00:00"
    assert data["finished"] == "2025-03-01T09:00:42.500000+00:00"
    assert data["checks"][2] == {
        "check_id": "setpoint",
        "title": "Setpoint found",
        "passed": False,
        "points": 0,
        "max_points": 2,
        "message": "you answered 1.0",
        "diagnosis": "1.0 is the default; read level_sp",
        "evidence": {"answer": 1.0},
        "competencies": ["diagnostics"],
        "gate": False,
    }


def test_round_trip_keeps_every_field() -> None:
    original = result(
        error="timed out after 120 s",
        hints_used=2,
        started=datetime(2025, 3, 1, 10, tzinfo=timezone(timedelta(hours=1))),
    )
    back = ExerciseResult.from_dict(json.loads(json.dumps(original.to_dict())))
    assert back == original
    assert back.error == "timed out after 120 s"
    assert back.started.utcoffset() == timedelta(hours=1)


def test_class_result_round_trip() -> None:
    cls = ClassResult("iiot-basics", [result(), result(apprentice="bob")], ("modbus-read",))
    back = ClassResult.from_dict(json.loads(json.dumps(cls.to_dict())))
    assert back == cls
    assert back.apprentice_ids() == ["ann", "bob"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d.__setitem__("schema_version", 2),
            "schema_version: this simlab reads version 1",
        ),
        (
            lambda d: d.__setitem__("kind", "other"),
            "result.kind: expected 'simlab.exercise-result'",
        ),
        (lambda d: d.pop("apprentice"), "result.apprentice: required field is missing"),
        (lambda d: d.__setitem__("variant_seed", "12"), "result.variant_seed: expected an integer"),
        (
            lambda d: d["checks"][0].__setitem__("points", True),
            "checks[0].points: expected a number",
        ),
        (lambda d: d["checks"][1].__setitem__("points", 9), "points must lie in [0, max_points=8]"),
        (
            lambda d: d.__setitem__("score", 9),
            "result.score: the file says 9 but its checks give 8",
        ),
        (lambda d: d.__setitem__("started", "yesterday"), "expected an ISO 8601 time"),
        (lambda d: d.__setitem__("started", "2025-03-01T09:00:00"), "must carry a time zone"),
        (lambda d: d.__setitem__("colour", "red"), "unknown field(s) colour"),
        (lambda d: d.__setitem__("checks", {}), "result.checks: expected a list"),
    ],
)
def test_bad_result_files_name_the_field(edit: Any, message: str) -> None:
    data = result().to_dict()
    edit(data)
    with pytest.raises(ResultFormatError) as caught:
        ExerciseResult.from_dict(data)
    assert message in str(caught.value)


# --- validation of results -------------------------------------------------------------


def test_evidence_is_normalized_to_json_data() -> None:
    check = CheckResult(
        "c",
        "t",
        False,
        0,
        1,
        "m",
        evidence={"reading": math.nan, "limits": (1, math.inf), "n": -math.inf},
    )
    assert check.evidence == {"reading": "nan", "limits": [1, "inf"], "n": "-inf"}
    assert canonical_json(check.to_dict())  # signable


def test_evidence_must_be_json_data() -> None:
    with pytest.raises(TypeError, match=r"evidence\.when: evidence must be JSON data"):
        CheckResult("c", "t", False, 0, 1, "m", evidence={"when": T0})


@pytest.mark.parametrize(("points", "max_points"), [(3, 2), (-1, 2), (math.nan, 2), (0, -1)])
def test_points_must_lie_within_max(points: float, max_points: float) -> None:
    with pytest.raises(ValueError, match="check 'c'"):
        CheckResult("c", "t", False, points, max_points, "m")


def test_exercise_result_rejects_inconsistent_input() -> None:
    with pytest.raises(ValueError, match="finished .* is before started"):
        result(finished=T0 - timedelta(seconds=1))
    with pytest.raises(ValueError, match="started must carry a time zone"):
        result(started=datetime(2025, 3, 1, 9))
    with pytest.raises(ValueError, match="check 'level' is reported twice"):
        result(
            checks=[
                CheckResult("level", "a", True, 1, 1, ""),
                CheckResult("level", "b", True, 1, 1, ""),
            ]
        )


def test_class_result_keeps_one_attempt_per_apprentice_and_exercise() -> None:
    with pytest.raises(ValueError, match="two results of 'ann' for 'modbus-read'"):
        ClassResult("c", [result(), result()])
