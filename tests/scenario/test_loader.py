"""The scenario loader: hints, several problems at once, files and names, and robustness."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from simlab.errors import Problem, ScenarioError, ScenarioNotFound
from simlab.scenario import (
    Scenario,
    bundled_scenarios,
    format_path,
    load_scenario,
    parse_scenario,
    resolve_scenario,
)
from simlab.scenario.checks import did_you_mean
from simlab.scenario.plant import TankSpec

MINIMAL = """\
format_version: 1
name: mini
plant:
  units:
    - name: tank
      type: tank
      area: 1.0
      height: 2.0
      initial_level: 0.5
    - name: pump
      type: pump
      max_flow: 10.0
      shutoff_head: 5.0
      to: tank
devices:
  - name: plc1
    type: plc
    tags:
      - name: level
        signal: tank.level
      - name: pump_run
        type: bool
        drives: pump.cmd_run
watch: [plc1.level]
"""


def problems(text: str, filename: str = "test.yaml") -> list[Problem]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, filename)
    assert caught.value.problems, "a ScenarioError must carry at least one problem"
    return caught.value.problems


def only(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def test_minimal_scenario_is_valid() -> None:
    scenario = parse_scenario(MINIMAL)
    assert scenario.name == "mini"
    assert [u.name for u in scenario.plant.units] == ["tank", "pump"]


# --- did you mean --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "path", "hint"),
    [
        (
            "initial_level: 0.5",
            "initail_level: 0.5",
            "plant.units[0].initail_level",
            "did you mean 'initial_level'?",
        ),
        (
            "signal: tank.level",
            "signal: tank.levle",
            "devices[0].tags[0].signal",
            "did you mean 'tank.level'?",
        ),
        ("type: tank", "type: tnak", "plant.units[0].type", "did you mean 'tank'?"),
        ("to: tank", "to: tnak", "plant.units[1].to", "did you mean 'tank'?"),
        (
            "drives: pump.cmd_run",
            "drives: pump.cmd_rn",
            "devices[0].tags[1].drives",
            "did you mean 'pump.cmd_run'?",
        ),
        ("watch: [plc1.level]", "watch: [plc1.levle]", "watch[0]", "did you mean 'plc1.level'?"),
        (
            "        signal: tank.level",
            "        signal: tank.level\n        unit: meters",
            "devices[0].tags[0].unit",
            "did you mean 'm'?",
        ),
        (
            "        signal: tank.level",
            "        signal: tank.level\n        unit: degc",
            "devices[0].tags[0].unit",
            "did you mean 'degC'?",
        ),
        ("type: plc", "type: plcc", "devices[0].type", "did you mean 'plc'?"),
        ("name: pump\n", "name: Pump\n", "plant.units[1].name", "did you mean 'pump'?"),
    ],
)
def test_did_you_mean_hints(old: str, new: str, path: str, hint: str) -> None:
    assert old in MINIMAL
    problem = only(MINIMAL.replace(old, new, 1))
    assert problem.path == path
    assert hint in problem.hint, str(problem)


def test_did_you_mean_helper() -> None:
    assert did_you_mean("levle", ["level", "volume"]) == "did you mean 'level'?"
    assert did_you_mean("xyz", ["level", "volume"]) == ""
    assert did_you_mean("a", []) == ""


def test_unknown_field_hint_lists_the_fields_of_that_place() -> None:
    problem = only(MINIMAL.replace("shutoff_head: 5.0", "shutoff_head: 5.0\n      colour: red"))
    assert problem.path == "plant.units[1].colour"
    assert problem.line == 14
    for field in ("max_flow", "shutoff_head", "source", "to"):
        assert field in problem.hint
    assert "area" not in problem.hint  # the tank's fields, not the pump's


# --- several problems at once ----------------------------------------------------------


def test_two_schema_errors_give_two_problems() -> None:
    text = MINIMAL.replace("area: 1.0", "area: big").replace("max_flow: 10.0", "max_flow: -3")
    found = problems(text)
    assert [(p.path, p.line) for p in found] == [
        ("plant.units[0].area", 7),
        ("plant.units[1].max_flow", 12),
    ]
    assert "got 'big'" in found[0].message
    assert "greater than 0" in found[1].message


def test_two_reference_errors_give_two_problems() -> None:
    text = MINIMAL.replace("signal: tank.level", "signal: tank.levle").replace(
        "watch: [plc1.level]", "watch: [plc1.nothing]"
    )
    found = problems(text)
    assert [(p.path, p.line) for p in found] == [
        ("devices[0].tags[0].signal", 20),
        ("watch[0]", 24),
    ]


def test_every_problem_is_printed() -> None:
    text = MINIMAL.replace("area: 1.0", "area: big").replace("max_flow: 10.0", "max_flow: -3")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "two.yaml")
    message = str(caught.value)
    assert "two.yaml:7:7: error: plant.units[0].area:" in message
    assert "two.yaml:12:7: error: plant.units[1].max_flow:" in message


# --- files and names -------------------------------------------------------------------


def test_load_scenario_from_a_file(tmp_path: Path) -> None:
    file = tmp_path / "scenario.yaml"
    file.write_text(MINIMAL, encoding="utf-8")
    assert load_scenario(file).name == "mini"
    assert load_scenario(str(file)).name == "mini"
    assert load_scenario(tmp_path).name == "mini"  # a folder holding a scenario.yaml


def test_problems_name_the_file(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(MINIMAL.replace("area: 1.0", "area: big"), encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(file)
    assert caught.value.problems[0].file == str(file)
    assert str(caught.value).startswith(f"{file}:7:7: error: plant.units[0].area:")


def test_missing_file_is_scenario_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ScenarioNotFound) as caught:
        load_scenario(missing)
    message = str(caught.value)
    assert repr(str(missing)) in message
    assert "not a file" in message
    assert "water-tank" in message  # it lists what does exist


def test_folder_without_scenario_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(ScenarioNotFound):
        load_scenario(tmp_path)


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    file = tmp_path / "latin1.yaml"
    file.write_bytes(b"format_version: 1\nname: caf\xe9\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(file)
    (problem,) = caught.value.problems
    assert "not UTF-8" in problem.message
    assert "0xe9" in problem.message
    assert (problem.file, problem.line, problem.column) == (str(file), 2, 10)
    assert "UTF-8" in problem.hint


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "locked.yaml"
    file.write_text(MINIMAL, encoding="utf-8")

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(file)
    (problem,) = caught.value.problems
    assert problem.message == "cannot read the file: Permission denied"
    assert problem.file == str(file)


def test_utf8_with_byte_order_mark(tmp_path: Path) -> None:
    file = tmp_path / "bom.yaml"
    file.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_scenario(file).name == "mini"
    file.write_bytes(b"\xef\xbb\xbfformat_version: 1\nname: x\xff\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(file)
    (problem,) = caught.value.problems
    assert "byte 0xff" in problem.message
    assert (problem.line, problem.column) == (2, 8)


def test_resolve_a_bundled_name() -> None:
    bundled = bundled_scenarios()
    assert resolve_scenario("water-tank") == bundled["water-tank"]
    assert load_scenario("water-tank").name == "water_tank"


def test_unknown_bundled_name_suggests_one() -> None:
    with pytest.raises(ScenarioNotFound) as caught:
        resolve_scenario("water_tank")
    assert "did you mean 'water-tank'?" in str(caught.value)


def test_format_path() -> None:
    assert format_path(("devices", 2, "tags", 5, "signal")) == "devices[2].tags[5].signal"
    assert format_path(("watch", 0)) == "watch[0]"
    assert format_path(()) == ""
    assert format_path((True,)) == "True"  # a YAML key, not a list index


# --- odd YAML: every case is a clear problem at the right line --------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "this file is empty"),
        ("# only a comment\n", 1, "this file is empty"),
        ("# comment\n- a\n- b\n", 2, "this file is a list"),
        ("just text\n", 1, "this file is a single text"),
        (
            "format_version: 1\nname: x\nclock: {epoch: 2024-13-45}\n",
            3,
            "cannot read the value '2024-13-45'",
        ),
        ("format_version: 1\nname: x\nseed: !!int abc\n", 3, "cannot read the value 'abc'"),
        (
            "format_version: 1\nname: x\nseed: !!python/object:os.system x\n",
            3,
            "could not determine a constructor",
        ),
        ("format_version: 1\nname: x\x00\n", 2, "U+0000 is not allowed"),
        ("format_version: 1\nname: x\n---\nname: y\n", 3, "single document"),
        ("format_version: 1\nname: x\nwatch: *nowhere\n", 3, "undefined alias"),
        ("format_version: 1\nname: x\n1: one\n", 3, "field names are words, but this key is 1"),
        ("format_version: 1\nname: x\n? [a, b]\n: 1\n", 3, "unhashable key"),
        ("format_version: 1\nname: x\nplant: [1, 2]\n", 3, "expected a mapping of fields"),
        ("format_version: 1\nname: x\ndevices:\n", 3, "expected a list, got None"),
        ("format_version: 1\nname: x\nname: y\n", 3, "key 'name' appears twice"),
    ],
)
def test_odd_yaml(text: str, line: int, message: str) -> None:
    problem = only(text)
    assert message in problem.message, str(problem)
    assert problem.line == line, str(problem)


def test_self_referencing_yaml_is_a_problem_not_a_crash() -> None:
    problem = only("format_version: 1\nname: x\nwatch: &loop [*loop]\n")
    assert problem.path == "watch[0]"
    assert len(problem.message) < 200


def test_deep_nesting_is_a_problem_not_a_crash() -> None:
    problem = only("format_version: 1\nname: x\nwatch: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested too deeply" in problem.message


def test_alias_bomb_is_quick_and_short() -> None:
    lines = ["format_version: 1", "name: x", "plant:", "  units:", "    - &a [x, x, x, x, x, x]"]
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        lines.append(f"    - &{level} [" + ", ".join([f"*{previous}"] * 6) + "]")
    found = problems("\n".join(lines) + "\n")
    assert len(found) <= 8
    assert all(len(p.message) < 300 for p in found)


def test_merge_keys_are_not_duplicates() -> None:
    text = MINIMAL.replace(
        "    - name: pump\n",
        "    - &spare {name: spare, type: tank, area: 2.0, height: 3.0}\n"
        "    - <<: *spare\n      name: spare2\n      height: 4.0\n    - name: pump\n",
    )
    scenario = parse_scenario(text)
    spare2 = scenario.plant.units[2]
    assert isinstance(spare2, TankSpec)
    assert (spare2.name, spare2.area, spare2.height) == ("spare2", 2.0, 4.0)


def test_field_named_like_the_union_tag() -> None:
    # 'tank' is both the tag of this unit's type and an (unknown) field of it
    problem = only(MINIMAL.replace("initial_level: 0.5", "initial_level: 0.5\n      tank: x"))
    assert problem.path == "plant.units[0].tank"
    assert "unknown field 'tank'" in problem.message
    assert "initial_level" in problem.hint


def test_plain_union_reports_one_problem() -> None:
    text = MINIMAL.replace("drives: pump.cmd_run", "drives: pump.cmd_run\n        initial: {a: 1}")
    problem = only(text)
    assert problem.path == "devices[0].tags[1].initial"
    assert "valid number" in problem.message and "valid string" in problem.message
    assert problem.line == 24


# --- never a traceback -----------------------------------------------------------------


def _mutations(text: str, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = text.splitlines(keepends=True)
    numbers = [m for m in re.finditer(r"(?<![\w.])-?\d+(\.\d+)?(?![\w.])", text)]
    out = []
    for _ in range(count):
        kind = rng.randrange(8)
        i = rng.randrange(len(lines))
        if kind == 0:  # delete a line
            mutated = lines[:i] + lines[i + 1 :]
        elif kind == 1:  # duplicate a line
            mutated = lines[: i + 1] + lines[i:]
        elif kind == 2:  # a number becomes a word
            m = rng.choice(numbers)
            word = rng.choice(
                [
                    "big",
                    "'12'",
                    "~",
                    "[]",
                    "{}",
                    "-1e999",
                    "2024-13-45",
                    "1_0",
                    "!!int 1.5",
                    "0x1G",
                    ".nan",
                    "&x 1",
                    "*x",
                    "!!str 5",
                ]
            )
            out.append(text[: m.start()] + word + text[m.end() :])
            continue
        elif kind == 3:  # truncate
            out.append(text[: rng.randrange(len(text))])
            continue
        elif kind == 4:  # indent or dedent a line
            mutated = list(lines)
            mutated[i] = ("  " + lines[i]) if rng.random() < 0.5 else lines[i][2:]
        elif kind == 5:  # swap two lines
            j = rng.randrange(len(lines))
            mutated = list(lines)
            mutated[i], mutated[j] = mutated[j], mutated[i]
        elif kind == 6:  # drop or add a YAML punctuation character
            at = rng.randrange(len(text))
            out.append(text[:at] + rng.choice(":-[]{},'\"&*!\t#|>") + text[at + 1 :])
            continue
        else:  # a value becomes a number, a list or null
            mutated = list(lines)
            key, colon, _ = lines[i].partition(": ")
            if colon:
                mutated[i] = key + ": " + rng.choice(["0", "-5", "[]", "null", "yes"]) + "\n"
        out.append("".join(mutated))
    return out


@pytest.mark.parametrize("name", ["water-tank", "bottling-line", "pump-station"])
def test_mutated_scenarios_never_crash(name: str) -> None:
    file = bundled_scenarios()[name]
    text = file.read_text(encoding="utf-8")
    counts = {"valid": 0, "invalid": 0}
    for mutated in _mutations(text, 80, seed=sum(map(ord, name))):
        try:
            result = parse_scenario(mutated, "mutant.yaml")
        except ScenarioError as error:
            counts["invalid"] += 1
            n_lines = mutated.count("\n") + 1
            for problem in error.problems:
                assert problem.message, mutated
                assert problem.file == "mutant.yaml"
                assert problem.line is None or 1 <= problem.line <= n_lines, str(problem)
                assert "Traceback" not in str(problem)
        else:
            counts["valid"] += 1
            assert isinstance(result, Scenario)
    # the mutations must really exercise both outcomes
    assert counts["invalid"] >= 30, counts
    assert counts["valid"] >= 1, counts
