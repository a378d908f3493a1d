"""`simlab up` as a user runs it: a real process, real signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from simlab.cli import main


def test_up_virtual_prints_summary_and_settles(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["up", "--headless", "--virtual", "--duration", "300", "--every", "100"]
    assert main([*args, "--no-endpoints", "--no-bus"]) == 0
    out = capsys.readouterr().out
    assert "Water tank with PID level control" in out
    assert "Endpoints" not in out
    assert "level_control" in out and "pid" in out
    last = [line for line in out.splitlines() if line.startswith("t=")][-1]
    assert "plc1.level=1.20" in last


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_up_serves_and_stops_cleanly_on_signal(signum: int, tmp_path: Path) -> None:
    command = ["up", "--headless", "--speed", "20", "--ports", "auto", "--state-dir", str(tmp_path)]
    process = subprocess.Popen(
        [sys.executable, "-m", "simlab", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:  # wait for the first heartbeat: the lab is running
        if line.startswith("t="):
            break
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "lab stopped at" in stdout
    assert "Traceback" not in stderr
    endpoint_map = json.loads((tmp_path / "endpoints.json").read_text())
    assert endpoint_map["plc1"]["opcua"]["url"].startswith("opc.tcp://127.0.0.1:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["up", "watertank"], "did you mean 'water-tank'?"),
        (["up", "--virtual"], "needs --duration"),
        (["up", "--speed", "-1"], "--speed must be positive"),
    ],
)
def test_up_bad_input_is_one_clear_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_unreadable_scenario_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["up", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:1:1: error: the file is not UTF-8 text" in err
    assert err.count("error:") == 1


def test_scenarios_and_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    assert "water-tank" in out and "bottling-line" in out and "pump-station" in out
    assert main(["schema"]) == 0
    assert '"format_version"' in capsys.readouterr().out


def test_registers_handout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registers", "line_plc", "--scenario", "bottling-line", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("tag,table,address,reference,registers,type,word_order")
    assert "bottles_good,input_register,3,30004,2,uint32,CDAB" in "\n".join(lines)
    assert main(["registers", "plc9"]) == 1
    assert "did you mean 'plc1'?" in capsys.readouterr().err
