"""The exercise format: loading with positions, the course lint, scenarios of exercises."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from grading.manifest import (
    Exercise,
    ManifestError,
    build_scenario,
    check_manifest,
    deep_merge,
    load_competencies,
    load_exercise,
    load_manifest,
)
from grading.variants import draw_variant
from simlab.errors import Problem

FIXTURES = Path(__file__).parent / "fixtures"
COURSE = FIXTURES / "course"
BROKEN = FIXTURES / "broken"


def where(problem: Problem) -> tuple[str, int | None, int | None, str]:
    """(file name, line, column, path) of a problem."""
    return Path(problem.file).name, problem.line, problem.column, problem.path


def problems_of(path: Path, loader: str = "exercise") -> list[Problem]:
    with pytest.raises(ManifestError) as caught:
        (load_manifest if loader == "manifest" else load_exercise)(path)
    assert caught.value.problems
    return caught.value.problems


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A writable copy of the fixture course."""
    return Path(shutil.copytree(COURSE, tmp_path / "course"))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# --- loading ---------------------------------------------------------------------------


def test_manifest_loads_in_curriculum_order() -> None:
    manifest = load_manifest(COURSE)
    assert manifest.course.id == "iiot-basics"
    assert [e.id for e in manifest.exercises] == ["modbus-read", "uns-topics"]
    first = manifest.exercises[0]
    assert (first.folder, first.competencies, first.time_limit_s, first.points) == (
        "01-modbus-read",
        ["modbus", "diagnostics"],
        120,
        10,
    )
    assert manifest.root == COURSE
    assert manifest.folder_of("uns-topics") == COURSE / "02-uns-topics"
    with pytest.raises(KeyError, match="did you mean 'uns-topics'"):
        manifest.entry("uns-topic")


def test_manifest_file_path_works_as_root() -> None:
    assert load_manifest(COURSE / "manifest.yaml") == load_manifest(COURSE)


def test_exercise_loads_with_its_folder_and_checks() -> None:
    exercise = load_exercise(COURSE / "01-modbus-read")
    assert exercise.mode == "program"
    assert exercise.folder == COURSE / "01-modbus-read"
    assert exercise.brief_path == COURSE / "01-modbus-read" / "README.md"
    assert exercise.points == 10
    assert [c.id for c in exercise.checks] == ["connects", "level", "setpoint"]
    assert [c.gate for c in exercise.checks] == [True, False, False]
    assert exercise.checks[0].python_target is None
    assert exercise.checks[1].python_target == ("checks.level", "check")
    assert exercise.checks[1].params == {"tolerance": 0.01, "unit_id": "{{ unit_id }}"}
    assert len(exercise.hints) == 3
    assert sorted(exercise.variant.parameters) == ["setpoint", "unit_id"]
    assert exercise.time_limit_s == 120


def test_manifest_errors_carry_line_column_path_and_hint() -> None:
    found = problems_of(BROKEN / "manifest_errors.yaml", "manifest")
    assert [where(p) for p in found] == [
        ("manifest_errors.yaml", 2, 1, "course.title"),
        ("manifest_errors.yaml", 4, 3, "course.titel"),
        ("manifest_errors.yaml", 8, 5, "exercises[0].folder"),
        ("manifest_errors.yaml", 10, 5, "exercises[0].time_limit_s"),
    ]
    assert found[0].message == "required field 'title' is missing"
    assert found[1].message == "unknown field 'titel'"
    assert found[1].hint.startswith("did you mean 'title'?")
    assert "'../outside' must be a relative path" in found[2].message
    assert found[3].message == "Input should be greater than 0, got -5"
    assert str(found[0]).startswith(f"{BROKEN / 'manifest_errors.yaml'}:2:1: error: course.title")


def test_exercise_errors_carry_line_column_path_and_hint() -> None:
    found = problems_of(BROKEN / "exercise_errors.yaml")
    assert [where(p)[1:] for p in found] == [
        (4, 1, "mode"),
        (8, 16, "variant.parameters.setpoint.int"),
        (9, 5, "variant.parameters.unit_id"),
        (10, 1, "hints"),
        (15, 5, "checks[0].type"),
    ]
    assert found[0].hint == "use one of: 'program', 'tool', 'answers' or 'rules'"
    assert "lo <= hi, got [5, 1]" in found[1].message
    assert "(got choice and int)" in found[2].message
    assert "at least 3 items" in found[3].message
    assert "exactly three hints" in found[3].hint
    assert "neither a check-library name" in found[4].message


def test_four_hints_are_one_too_many(tmp_path: Path) -> None:
    text = (BROKEN / "exercise_duplicate_check.yaml").read_text(encoding="utf-8")
    text = text.replace("[one, two, three]", "[one, two, three, four]")
    text = text.replace(
        "{id: level, type: answer_equals, title: Level again",
        "{id: other, type: answer_equals, title: Other",
    )
    (tmp_path / "exercise.yaml").write_text(text, encoding="utf-8")
    (found,) = problems_of(tmp_path)
    assert (found.line, found.column, found.path) == (6, 1, "hints")
    assert "at most 3 items" in found.message


def test_yaml_syntax_errors_point_at_the_spot() -> None:
    (found,) = problems_of(BROKEN / "exercise_bad_yaml.yaml")
    assert (found.line, found.column) == (5, 17)
    assert "mapping values are not allowed" in found.message
    assert "must be quoted" in found.hint


def test_duplicate_yaml_keys_are_errors() -> None:
    (found,) = problems_of(BROKEN / "exercise_duplicate_key.yaml")
    assert (found.line, found.path) == (3, "title")
    assert "appears twice" in found.message


def test_duplicate_check_ids_point_at_the_second() -> None:
    (found,) = problems_of(BROKEN / "exercise_duplicate_check.yaml")
    assert (found.line, found.column, found.path) == (10, 6, "checks[2].id")
    assert found.message == "duplicate check id 'level' (first at checks[0])"


def test_missing_and_empty_files(tmp_path: Path) -> None:
    (missing,) = problems_of(tmp_path)
    assert "cannot read the file" in missing.message
    assert Path(missing.file) == tmp_path / "exercise.yaml"
    (tmp_path / "exercise.yaml").write_text("", encoding="utf-8")
    (empty,) = problems_of(tmp_path)
    assert "an exercise is a mapping of fields" in empty.message
    assert "but this file is empty" in empty.message
    (tmp_path / "exercise.yaml").write_bytes(b"id: x\ntitle: \xff\n")
    (binary,) = problems_of(tmp_path)
    assert (binary.line, binary.column) == (2, 8)
    assert binary.message == "the file is not UTF-8 text: byte 0xff cannot be decoded"


# --- competencies ----------------------------------------------------------------------


def test_shipped_competency_framework() -> None:
    framework = load_competencies()
    assert 8 <= len(framework) <= 14
    assert {
        "modbus",
        "opcua",
        "opcua_security",
        "uns",
        "sparkplug",
        "gateway",
        "historian",
        "alarms",
        "diagnostics",
        "oee",
        "condition_monitoring",
    } <= set(framework)
    assert {c.area for c in framework.values()} == {
        "OT protocols",
        "Data integration",
        "Platform",
        "Diagnostics",
        "Analytics",
    }
    assert all(c.description and c.title for c in framework.values())


def test_duplicate_competencies_are_errors() -> None:
    with pytest.raises(ManifestError) as caught:
        load_competencies(BROKEN / "competencies_duplicate.yaml")
    (found,) = caught.value.problems
    assert (found.line, found.path) == (4, "competencies[1].id")


# --- the lint --------------------------------------------------------------------------


def test_the_fixture_course_is_clean() -> None:
    assert check_manifest(COURSE) == []
    assert (
        check_manifest(
            COURSE,
            known_checks={
                "modbus_client_seen",
                "answer_equals",
                "mqtt_topic_seen",
                "mqtt_payload_fields",
            },
        )
        == []
    )


def test_lint_reports_a_manifest_that_does_not_load() -> None:
    found = check_manifest(BROKEN / "manifest_errors.yaml")
    assert [p.line for p in found] == [2, 4, 8, 10]


def test_missing_files_are_reported_where_they_are_named(course: Path) -> None:
    (course / "01-modbus-read" / "starter" / "read.py").unlink()
    (course / "02-uns-topics" / "README.md").unlink()
    found = check_manifest(course)
    assert [where(p) for p in found] == [
        ("exercise.yaml", 11, 11, "starter[0]"),
        ("manifest.yaml", 15, 5, "exercises[1].folder"),
    ]
    assert "starter file" in found[0].message and "does not exist" in found[0].message
    assert "has no brief" in found[1].message


def test_missing_folder_and_exercise_file(course: Path) -> None:
    shutil.rmtree(course / "02-uns-topics")
    (course / "01-modbus-read" / "exercise.yaml").unlink()
    found = check_manifest(course)
    assert [(p.line, p.path) for p in found] == [
        (9, "exercises[0].folder"),
        (15, "exercises[1].folder"),
    ]
    assert "exercise.yaml' is missing" in found[0].message
    assert "does not exist" in found[1].message


def test_duplicate_exercise_ids_and_folders(course: Path) -> None:
    edit(course / "manifest.yaml", "id: uns-topics", "id: modbus-read")
    edit(course / "manifest.yaml", "folder: 02-uns-topics", "folder: 01-modbus-read")
    found = check_manifest(course)
    assert [(p.line, p.path) for p in found[:2]] == [
        (13, "exercises[1].id"),
        (15, "exercises[1].folder"),
    ]
    assert found[0].message == "duplicate exercise id 'modbus-read' (first at exercises[0])"


def test_unknown_competencies_get_a_did_you_mean(course: Path) -> None:
    edit(course / "manifest.yaml", "competencies: [uns]", "competencies: [unss]")
    edit(
        course / "02-uns-topics" / "exercise.yaml",
        "competencies: [uns]\n    params",
        "competencies: [unss]\n    params",
    )
    found = check_manifest(course)
    assert [where(p) for p in found] == [
        ("manifest.yaml", 16, 20, "exercises[1].competencies[0]"),
        ("exercise.yaml", 18, 20, "checks[0].competencies[0]"),
        # the payload check is still tagged 'uns', which the entry no longer lists
        ("exercise.yaml", 24, 20, "checks[1].competencies[0]"),
    ]
    assert found[0].message == "unknown competency 'unss'"
    assert found[0].hint.startswith("did you mean 'uns'?")
    assert found[2].message == "competency 'uns' is not listed for 'uns-topics' in the manifest"


def test_listed_competency_without_a_check(course: Path) -> None:
    edit(course / "manifest.yaml", "competencies: [uns]", "competencies: [uns, historian]")
    (found,) = check_manifest(course)
    assert (found.line, found.path) == (16, "exercises[1].competencies[1]")
    assert found.message == "no check of 'uns-topics' is tagged with competency 'historian'"


def test_points_must_add_up(course: Path) -> None:
    edit(course / "manifest.yaml", "points: 6", "points: 7")
    (found,) = check_manifest(course)
    assert (Path(found.file).name, found.line, found.path) == (
        "manifest.yaml",
        18,
        "exercises[1].points",
    )
    assert found.message == "the checks of 'uns-topics' add up to 6 points, the manifest says 7"


def test_ids_and_time_limits_must_agree(course: Path) -> None:
    exercise = course / "01-modbus-read" / "exercise.yaml"
    edit(exercise, "id: modbus-read", "id: modbus-reading")
    edit(exercise, "time_limit_s: 120", "time_limit_s: 60")
    found = check_manifest(course)
    assert [(p.line, p.path) for p in found] == [(1, "id"), (40, "time_limit_s")]
    assert "differs from the manifest's 'modbus-read'" in found[0].message
    assert found[1].message == "time_limit_s 60 differs from the manifest's 120"


def test_unknown_check_types_with_the_library_list(course: Path) -> None:
    found = check_manifest(
        course,
        known_checks={
            "modbus_client_seen",
            "answer_equal",
            "mqtt_topic_seen",
            "mqtt_payload_fields",
        },
    )
    assert [(p.line, p.path) for p in found] == [(35, "checks[2].type")]
    assert found[0].message == "unknown check type 'answer_equals'"
    assert found[0].hint.startswith("did you mean 'answer_equal'?")


def test_placeholders_must_name_variant_parameters(course: Path) -> None:
    folder = course / "01-modbus-read"
    edit(folder / "README.md", "holds {{ setpoint }} m", "holds {{ set_point }} m")
    edit(folder / "exercise.yaml", "divide by 1000.", "divide by {{ scale }}.")
    edit(folder / "exercise.yaml", 'unit_id: "{{ unit_id }}"', 'unit_id: "{{ unit }}"')
    found = check_manifest(course)
    assert [where(p) for p in found] == [
        ("exercise.yaml", 20, 5, "hints[2]"),
        ("exercise.yaml", 33, 5, "checks[1].params"),
        ("README.md", 4, None, ""),
    ]
    assert "unknown variant parameter 'scale'" in found[0].message
    assert found[1].message.startswith("checks[1].params.unit_id: unknown variant parameter")
    assert "unknown variant parameter 'set_point'" in found[2].message


def test_unknown_scenario_base(course: Path) -> None:
    edit(course / "02-uns-topics" / "exercise.yaml", "base: water-tank", "base: water_tank")
    (found,) = check_manifest(course)
    assert (found.line, found.path) == (3, "scenario.base")
    assert found.message == "no bundled scenario 'water_tank'"
    assert found.hint.startswith("did you mean 'water-tank'?")


def test_overrides_that_break_the_scenario(course: Path) -> None:
    edit(
        course / "01-modbus-read" / "exercise.yaml",
        'initial: "{{ setpoint }}"',
        'initial: "{{ setpoint }}", colour: red',
    )
    (found,) = check_manifest(course)
    assert (Path(found.file).name, found.line, found.path) == (
        "exercise.yaml",
        5,
        "scenario.overrides",
    )
    assert found.message.startswith("with these overrides the scenario 'water-tank' is invalid")
    assert "colour" in found.message


# --- scenarios of exercises ------------------------------------------------------------


def test_deep_merge_merges_mappings_and_named_lists() -> None:
    base: dict[str, Any] = {
        "seed": 1,
        "clock": {"step": 0.1, "speed": 1.0},
        "units": [{"name": "tank", "area": 1.0, "height": 2.0}, {"name": "pump", "max": 3}],
        "watch": ["a", "b"],
    }
    overrides = {
        "clock": {"speed": 10.0},
        "units": [{"name": "tank", "area": 0.5}, {"name": "valve", "cv": 4}],
        "watch": ["c"],
    }
    assert deep_merge(base, overrides) == {
        "seed": 1,
        "clock": {"step": 0.1, "speed": 10.0},
        "units": [
            {"name": "tank", "area": 0.5, "height": 2.0},
            {"name": "pump", "max": 3},
            {"name": "valve", "cv": 4},
        ],
        "watch": ["c"],  # lists without names are replaced
    }
    assert deep_merge(base, {"units": []})["units"] == []  # an empty list clears
    assert base["clock"] == {"step": 0.1, "speed": 1.0}  # inputs are not modified
    assert base["units"][0] == {"name": "tank", "area": 1.0, "height": 2.0}


def test_build_scenario_applies_the_variant_to_the_overrides() -> None:
    exercise = load_exercise(COURSE / "01-modbus-read")
    variant = draw_variant(exercise.variant, 5)
    scenario = build_scenario(exercise, variant)
    plc = next(d for d in scenario.devices if d.name == "plc1")
    level_sp = next(t for t in plc.tags if t.name == "level_sp")
    assert level_sp.initial == variant["setpoint"]
    assert level_sp.writable  # the rest of the tag is the bundled one
    assert scenario.name == "water_tank"


def test_build_scenario_without_overrides_is_the_bundled_one() -> None:
    exercise: Exercise = load_exercise(COURSE / "02-uns-topics")
    assert build_scenario(exercise).name == "water_tank"
