"""The rules file: loading, problems with positions and hints, cross checks, hot reload."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from simlab.errors import Problem, SimlabError
from simlab.platform.alarms import AlarmEngine, AlarmState
from simlab.platform.historian import SqliteHistorian
from simlab.platform.rules import RulesError, RulesFile, RulesWatcher, load_rules, parse_rules

LEVEL = "acme/plant1/water/tank1/level"

GOOD = f"""\
format_version: 1
alarms:
  - name: TANK1_LEVEL_HI
    tag: {LEVEL}
    kind: hi
    limit: 1.8
    deadband: 0.05
    on_delay: 2
    severity: 700
    message: Tank 1 nearly full
  - name: TANK1_LEVEL_LO
    tag: {LEVEL}
    kind: LO
    limit: 0.2
deadbands:
  {LEVEL}: 0.01
retention_hours: 48
"""


def problems(text: str) -> list[Problem]:
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "rules.yaml")
    assert isinstance(caught.value, SimlabError)
    assert str(caught.value) == "\n".join(str(p) for p in caught.value.problems)
    return caught.value.problems


def where(found: list[Problem]) -> list[tuple[int | None, int | None, str]]:
    return [(p.line, p.column, p.path) for p in found]


def test_a_good_file_loads() -> None:
    rules = parse_rules(GOOD)
    assert [a.name for a in rules.alarms] == ["TANK1_LEVEL_HI", "TANK1_LEVEL_LO"]
    first = rules.alarms[0]
    assert (first.kind, first.limit, first.deadband, first.on_delay, first.off_delay) == (
        "HI",
        1.8,
        0.05,
        2.0,
        0.0,
    )
    assert (first.severity, first.message, rules.alarms[1].severity) == (
        700,
        "Tank 1 nearly full",
        500,
    )
    assert rules.deadbands == {LEVEL: 0.01}
    assert rules.retention_s == 48 * 3600.0


def test_minimal_file() -> None:
    rules = parse_rules("format_version: 1\n")
    assert rules == RulesFile(format_version=1)
    assert (rules.alarms, rules.deadbands, rules.retention_s) == ([], {}, None)


def test_typos_get_did_you_mean_at_their_line() -> None:
    text = GOOD.replace("    deadband: 0.05", "    dedband: 0.05").replace(
        "retention_hours", "retention_hour"
    )
    found = problems(text)
    assert where(found) == [(7, 5, "alarms[0].dedband"), (17, 1, "retention_hour")]
    assert found[0].message == "unknown field 'dedband'"
    assert found[0].hint.startswith("did you mean 'deadband'? Fields here: deadband, kind,")
    assert found[1].hint.startswith("did you mean 'retention_hours'?")
    assert str(found[0]).startswith("rules.yaml:7:5: error: alarms[0].dedband: unknown field")


def test_every_schema_problem_is_reported_at_once() -> None:
    text = """\
format_version: 1
alarms:
  - name: A_HI
    tag: a/b level
    kind: HII
    limit: high
    severity: 2000
  - tag: a/b/c
    kind: LO
    limit: 1
deadbands:
  x/y: -1
"""
    found = problems(text)
    assert where(found) == [
        (4, 5, "alarms[0].tag"),
        (5, 5, "alarms[0].kind"),
        (6, 5, "alarms[0].limit"),
        (7, 5, "alarms[0].severity"),
        (8, 5, "alarms[1].name"),
        (12, 3, "deadbands.x/y"),
    ]
    tag, kind, limit, severity, name, band = found
    assert tag.message.startswith("'a/b level' is not a valid tag path")
    assert "no spaces, no MQTT wildcards + or #" in tag.hint
    assert kind.hint == "did you mean 'HIHI'?"
    assert limit.message.endswith("got 'high'")
    assert severity.message == "Input should be less than or equal to 1000, got 2000"
    assert severity.hint == "severity: OPC UA severity 1 (lowest) .. 1000 (highest)"
    assert name.message == "required field 'name' is missing"
    assert name.hint.startswith("add 'name:'")
    assert band.message == "Input should be greater than or equal to 0, got -1"
    assert band.hint.startswith("deadbands: historian deadbands")


def test_bad_tag_path_as_deadband_key() -> None:
    [found] = problems("format_version: 1\ndeadbands:\n  'acme/#': 1\n")
    assert (found.line, found.path, found.message) == (
        3,
        "deadbands.acme/#",
        "'acme/#' is not a valid tag path: a tag path is a UNS path like "
        "acme/plant1/line1/tank/level, with no spaces and no MQTT wildcards + or #",
    )


def test_format_version() -> None:
    [missing] = problems("alarms: []\n")
    assert (missing.path, missing.hint) == (
        "format_version",
        "start the file with 'format_version: 1'",
    )
    [wrong] = problems("format_version: 2\n")
    assert (wrong.line, wrong.message) == (1, "Input should be 1, got 2")
    assert wrong.hint == "this version of simlab reads format_version 1"


def test_not_a_mapping() -> None:
    [empty] = problems("")
    assert "this file is empty" in empty.message
    [listed] = problems("- a\n- b\n")
    assert "this file is a list" in listed.message
    [wrong] = problems("format_version: 1\nalarms: 3\n")
    assert (wrong.line, wrong.path, wrong.message) == (
        2,
        "alarms",
        "expected a list, got 3",
    )


def test_yaml_errors_have_positions() -> None:
    [broken] = problems("format_version: 1\nalarms: [\n  {name: a\n")
    assert broken.message.startswith("not valid YAML:")
    assert broken.line == 4
    [twice] = problems("format_version: 1\nretention_hours: 1\nretention_hours: 2\n")
    assert (twice.line, twice.path) == (3, "retention_hours")
    assert "appears twice" in twice.message


def test_duplicate_alarm_names() -> None:
    text = GOOD.replace("TANK1_LEVEL_LO", "TANK1_LEVEL_HI")
    [found] = problems(text)
    assert (found.line, found.path) == (11, "alarms[1].name")
    assert found.message == "alarm name 'TANK1_LEVEL_HI' is already used by alarms[0] (line 3)"


@pytest.mark.parametrize(
    ("low", "high", "bad"),
    [
        ("LO", "HI", True),  # HI 1 below LO 2
        ("LOLO", "LO", True),
        ("HI", "HIHI", True),
        ("LOLO", "HIHI", True),
        ("HI", "LO", False),  # LO 1 below HI 2: fine
    ],
)
def test_limits_must_rise_on_one_tag(low: str, high: str, bad: bool) -> None:
    text = f"""\
format_version: 1
alarms:
  - {{name: FIRST, tag: {LEVEL}, kind: {high}, limit: 1}}
  - {{name: SECOND, tag: {LEVEL}, kind: {low}, limit: 2}}
  - {{name: ELSEWHERE, tag: acme/other, kind: {low}, limit: 5}}
"""
    if not bad:
        assert len(parse_rules(text).alarms) == 3
        return
    [found] = problems(text)
    assert (found.line, found.path) == (3, "alarms[0].limit")
    assert found.message == (
        f"{high} limit 1 of 'FIRST' is not above the {low} limit 2 of 'SECOND' (alarms[1]) "
        f"on the same tag {LEVEL}"
    )
    assert "LOLO < LO < HI < HIHI" in found.hint


def test_equal_limits_are_refused() -> None:
    text = f"""\
format_version: 1
alarms:
  - {{name: A, tag: {LEVEL}, kind: LO, limit: 2}}
  - {{name: B, tag: {LEVEL}, kind: HI, limit: 2}}
"""
    line = text.splitlines()[3]
    assert where(problems(text)) == [(4, line.index("limit") + 1, "alarms[1].limit")]


def test_load_rules_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert len(load_rules(path).alarms) == 2
    with pytest.raises(RulesError, match="cannot read the file"):
        load_rules(tmp_path / "missing.yaml")
    path.write_bytes(b"format_version: 1\n\xff\n")
    with pytest.raises(RulesError, match=r"rules.yaml:2:1: error: the file is not UTF-8"):
        load_rules(path)


class Recorder:
    """Collects what a watcher reports."""

    def __init__(self) -> None:
        self.changes: list[RulesFile] = []
        self.errors: list[list[Problem]] = []


def write(path: Path, text: str, mtime_ns: int) -> None:
    """Write ``text`` with a chosen modification time (file systems tick coarsely)."""
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_watcher_reloads_on_change_and_keeps_rules_on_error(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    seen = Recorder()
    watcher = RulesWatcher(path, seen.changes.append, on_error=seen.errors.append)
    write(path, GOOD, 1_000_000_000)
    assert watcher.poll() is True
    first = watcher.rules
    assert first is not None and seen.changes == [first]
    assert watcher.poll() is False  # unchanged
    write(path, GOOD.replace("limit: 1.8", "limit: 1.9"), 2_000_000_000)
    assert watcher.poll() is True
    assert watcher.rules is not None and watcher.rules.alarms[0].limit == 1.9
    write(path, GOOD.replace("limit: 1.8", "limit: lots"), 3_000_000_000)
    assert watcher.poll() is False
    assert watcher.rules.alarms[0].limit == 1.9  # the previous rules stay
    assert [p.path for p in watcher.problems] == ["alarms[0].limit"]
    assert seen.errors == [watcher.problems]
    assert watcher.poll() is False and len(seen.errors) == 1  # reported once
    write(path, GOOD.replace("limit: 1.8", "limit: 1.9"), 4_000_000_000)
    assert watcher.poll() is False  # same bytes as the rules in force: nothing to do
    assert watcher.problems == []
    assert len(seen.changes) == 2


def test_watcher_survives_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    seen = Recorder()
    watcher = RulesWatcher(path, seen.changes.append)
    assert watcher.poll() is False
    assert watcher.rules is None
    assert "cannot read the rules file" in watcher.problems[0].message
    write(path, GOOD, 1_000_000_000)
    assert watcher.poll() is True
    path.unlink()
    assert watcher.poll() is False
    assert watcher.rules is not None and len(watcher.rules.alarms) == 2


def test_watcher_drives_engine_and_historian(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    engine = AlarmEngine()
    historian = SqliteHistorian(tmp_path / "h.sqlite")

    def apply(rules: RulesFile) -> None:
        engine.replace_definitions(rules.alarms)
        historian.set_deadbands(rules.deadbands)
        historian.set_retention(rules.retention_s)

    watcher = RulesWatcher(path, apply)
    write(path, GOOD, 1_000_000_000)
    watcher.poll()
    engine.evaluate(LEVEL, 0.1, 10.0)
    assert engine.state("TANK1_LEVEL_LO") is AlarmState.ACTIVE_UNACK
    assert historian.deadbands == {LEVEL: 0.01}
    assert historian.retention == 48 * 3600.0
    write(path, GOOD.replace("limit: 0.2", "limit: 0.05"), 2_000_000_000)
    watcher.poll()
    assert engine.state("TANK1_LEVEL_LO") is AlarmState.CLEARED_ACK  # changed: starts afresh
    historian.close()
