"""A corpus of broken scenario files: each must fail with one clear, well-placed problem.

Every file in ``broken/`` is a small scenario broken in one way. Its first line says what
the loader must report::

    # expect: <field path> :: <part of the message>

(``-`` as the path: a problem with no field path, such as a YAML syntax error), and the
line the problem must point at ends with the comment ``# <-- here``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from simlab.errors import Problem, ScenarioError
from simlab.scenario import Scenario, bundled_scenarios, json_schema, parse_scenario

BROKEN = Path(__file__).parent / "broken"
CORPUS = sorted(BROKEN.glob("*.yaml"))
MARKER = "# <-- here"


@dataclass(frozen=True)
class Expectation:
    path: str
    message: str
    line: int


def expectation(file: Path) -> Expectation:
    lines = file.read_text(encoding="utf-8").splitlines()
    header = lines[0]
    assert header.startswith("# expect: "), f"{file.name}: first line must be '# expect: ...'"
    path, sep, message = header.removeprefix("# expect: ").partition(" :: ")
    assert sep and message.strip(), f"{file.name}: write '# expect: <path> :: <message part>'"
    marked = [n for n, text in enumerate(lines, start=1) if text.rstrip().endswith(MARKER)]
    assert len(marked) == 1, f"{file.name}: mark exactly one line with '{MARKER}', got {marked}"
    return Expectation("" if path.strip() == "-" else path.strip(), message.strip(), marked[0])


def problems_of(file: Path) -> list[Problem]:
    text = file.read_text(encoding="utf-8")
    try:
        parse_scenario(text, str(file))
    except ScenarioError as error:
        return error.problems
    pytest.fail(f"{file.name} is accepted, but it is meant to be broken")


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("file", CORPUS, ids=[f.stem for f in CORPUS])
def test_broken_file_reports_the_expected_problem(file: Path) -> None:
    expected = expectation(file)
    problems = problems_of(file)
    report = "\n".join(str(p) for p in problems)
    assert len(problems) == 1, f"{file.name} is broken in one way, but got:\n{report}"
    matching = [
        p
        for p in problems
        if p.path == expected.path and expected.message in p.message and p.line == expected.line
    ]
    assert matching, (
        f"expected {expected.path or '(no path)'!r} at line {expected.line} with "
        f"{expected.message!r}; got:\n{report}"
    )
    problem = matching[0]
    assert problem.file == str(file)
    assert problem.column is not None and problem.column >= 1
    assert f"{file}:{expected.line}:" in str(problem)
    assert ": error: " in str(problem)


def test_error_message_lists_every_problem() -> None:
    file = BROKEN / "signal_typo.yaml"
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(file.read_text(encoding="utf-8"), str(file))
    text = str(caught.value)
    assert text == "\n".join(str(p) for p in caught.value.problems)
    assert f"{file}:12:9: error: devices[0].tags[0].signal: plant signal 'tank.levle'" in text
    assert "\n    hint: did you mean 'tank.level'?" in text


@pytest.mark.parametrize("name", sorted(bundled_scenarios()))
def test_bundled_scenario_is_valid(name: str) -> None:
    file = bundled_scenarios()[name]
    scenario = parse_scenario(file.read_text(encoding="utf-8"), str(file))
    assert isinstance(scenario, Scenario)
    assert scenario.plant.units and scenario.devices


def test_there_are_bundled_scenarios() -> None:
    assert {"water-tank", "pump-station", "bottling-line"} <= set(bundled_scenarios())


def test_json_schema_is_json_with_the_top_level_fields() -> None:
    schema = json.loads(json_schema())
    assert schema["type"] == "object"
    assert schema["title"] == "simlab scenario"
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"format_version", "name", "plant", "devices", "faults", "watch"} <= set(
        schema["properties"]
    )
    assert {"format_version", "name"} <= set(schema["required"])
    assert schema.get("additionalProperties") is False
