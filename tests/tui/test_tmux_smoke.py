"""Smoke test as a user would: ``simlab`` in a real terminal (tmux), keys, and a clean quit.

Skipped when tmux is absent, except in CI (``SIMLAB_REQUIRE_TOOLS=1``), where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

TIMEOUT_S = 30.0


def _tmux(*args: str) -> str:
    done = subprocess.run(["tmux", *args], capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture
def session(tmp_path: Path) -> Iterator[str]:
    if shutil.which("tmux") is None:
        if os.environ.get("SIMLAB_REQUIRE_TOOLS") == "1":
            pytest.fail("tmux is missing (SIMLAB_REQUIRE_TOOLS=1)")
        pytest.skip("tmux is missing: apt-get install tmux")
    name = f"simlab-{uuid.uuid4().hex[:8]}"
    status = tmp_path / "status"
    simlab = Path(sys.executable).with_name("simlab")
    command = (
        f"cd {tmp_path} && TERM=xterm-256color {simlab} tui --ports auto --broker embedded "
        f"--instructor --state-dir {tmp_path / 'state'}; echo $? > {status}"
    )
    _tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24", command)
    try:
        yield name
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True, check=False)


def _screen(name: str) -> str:
    return _tmux("capture-pane", "-p", "-t", name)


def _wait_for(name: str, text: str) -> str:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        screen = _screen(name)
        if text in screen:
            return screen
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared; the terminal shows:\n{_screen(name)}")


def test_simlab_opens_moves_through_the_screens_and_quits_cleanly(
    session: str, tmp_path: Path
) -> None:
    _wait_for(session, "Plant")  # the navigation bar: the lab runs
    for key, marker in [
        ("4", "Read"),  # the Modbus poller
        ("3", "Objects"),  # the OPC UA browser
        ("5", "DDATA"),  # the MQTT explorer sees the gateway's Sparkplug data
        ("6", "Alarms"),
        ("7", "Active faults"),
        ("1", "simlab init"),  # no workspace here: the exercises screen says how
        ("2", "level"),
    ]:
        _tmux("send-keys", "-t", session, key)
        _wait_for(session, marker)
    _tmux("send-keys", "-t", session, "q")
    status = tmp_path / "status"
    deadline = time.monotonic() + TIMEOUT_S
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status.read_text().strip() == "0", _screen(session)
