"""``simlab validate``: exit status, ``file:line:col`` messages, and never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from simlab.cli import main
from simlab.scenario import bundled_scenarios

BROKEN = Path(__file__).parent / "broken"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def good(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A valid scenario as a short relative path (so console wrapping cannot split it)."""
    monkeypatch.chdir(tmp_path)
    Path("good.yaml").write_text(
        bundled_scenarios()["water-tank"].read_text(encoding="utf-8"), encoding="utf-8"
    )
    return "good.yaml"


@pytest.fixture
def bad(good: str) -> str:
    text = Path(good).read_text(encoding="utf-8")
    assert "signal: tank.level," in text
    Path("bad.yaml").write_text(
        text.replace("signal: tank.level,", "signal: tank.levle,", 1), encoding="utf-8"
    )
    return "bad.yaml"


def line_of(file: str, needle: str) -> int:
    lines = Path(file).read_text(encoding="utf-8").splitlines()
    return next(n for n, text in enumerate(lines, start=1) if needle in text)


def test_valid_file_exits_0(good: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", good]) == 0
    captured = capsys.readouterr()
    assert f"{good}: ok" in captured.out
    assert "error" not in captured.err


def test_broken_file_exits_1_with_file_line_col(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", bad]) == 1
    captured = capsys.readouterr()
    line = line_of(bad, "tank.levle")
    assert f"{bad}:{line}:" in captured.err
    assert "error: devices[0].tags[0].signal: plant signal 'tank.levle' does not exist" in (
        captured.err
    )
    assert "hint: did you mean 'tank.level'?" in captured.err
    assert f"{bad}: 1 problem" in captured.err
    assert "ok" not in captured.out


def test_one_bad_file_among_good_ones_exits_1(
    good: str, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", good, bad, good]) == 1
    captured = capsys.readouterr()
    assert captured.out.count(f"{good}: ok") == 2
    assert f"{bad}:" in captured.err


def test_missing_file_exits_1(good: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "nothing-here.yaml"]) == 1
    assert "nothing-here.yaml: error: no such file" in capsys.readouterr().err


def test_yaml_that_used_to_crash_exits_1(good: str, capsys: pytest.CaptureFixture[str]) -> None:
    Path("date.yaml").write_text(
        "format_version: 1\nname: x\nclock: {epoch: 2024-13-45}\n", encoding="utf-8"
    )
    assert main(["validate", "date.yaml"]) == 1
    assert "date.yaml:3:16: error: not valid YAML: cannot read the value" in (
        capsys.readouterr().err
    )


def test_real_process_prints_no_traceback() -> None:
    files = [str(f) for f in sorted(BROKEN.glob("*.yaml"))]
    valid = str(bundled_scenarios()["water-tank"])
    result = subprocess.run(
        [sys.executable, "-m", "simlab", "validate", valid, *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout
    assert f"{valid}: ok" in result.stdout
    for file in files:
        assert f"{file}:" in result.stderr, file
    typo = str(BROKEN / "signal_typo.yaml")
    assert f"{typo}:12:9: error: devices[0].tags[0].signal:" in result.stderr
