"""Time from typing ``simlab`` to the first paint of the UI, and to the lab running in it
(goal: first paint < 1.5 s).

Starts ``simlab tui --ports auto --broker embedded`` in a real terminal (a detached tmux
session, 80×24) as a user would, and polls the terminal every 10 ms: "first paint" is when
the starting screen's text is on it, "lab running" when the navigation bar of the first
tool is. Cold runs include Python's first import of textual and the protocol stacks after
a fresh state folder (the OPC UA certificate is generated); the figures are the median and
the worst of ``--runs`` runs.

Run: ``.venv/bin/python benchmarks/tui_first_paint.py [--runs 5]`` (needs tmux).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

STARTING = "starting the plant"
RUNNING = "1 Exercises"
TIMEOUT_S = 60.0


def _screen(session: str) -> str:
    done = subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=False
    )
    return done.stdout


def one_run() -> tuple[float, float]:
    """(seconds to first paint, seconds to the lab running)."""
    session = f"bench-{uuid.uuid4().hex[:8]}"
    simlab = Path(sys.executable).with_name("simlab")
    with tempfile.TemporaryDirectory() as state:
        command = (
            f"TERM=xterm-256color {simlab} tui --ports auto --broker embedded --state-dir {state}"
        )
        started = time.perf_counter()
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", command],
            check=True,
        )
        try:
            painted = running = None
            while running is None and time.perf_counter() - started < TIMEOUT_S:
                screen = _screen(session)
                now = time.perf_counter() - started
                if painted is None and (STARTING in screen or RUNNING in screen):
                    painted = now
                if RUNNING in screen:
                    running = now
                time.sleep(0.01)
            if painted is None or running is None:
                raise RuntimeError(f"the UI did not come up in {TIMEOUT_S} s:\n{_screen(session)}")
            subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
            time.sleep(1.0)
            return painted, running
        finally:
            subprocess.run(
                ["tmux", "kill-session", "-t", session], capture_output=True, check=False
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = [one_run() for _ in range(args.runs)]
    paint = [r[0] for r in runs]
    ready = [r[1] for r in runs]
    print(f"simlab tui on water-tank, 80x24, {args.runs} runs (median / worst):")
    print(f"  first paint  {statistics.median(paint):.2f} s / {max(paint):.2f} s  (goal < 1.5 s)")
    print(f"  lab running  {statistics.median(ready):.2f} s / {max(ready):.2f} s")


if __name__ == "__main__":
    main()
