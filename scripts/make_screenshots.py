"""Regenerate docs/simlab-up.svg: what `simlab up --headless` shows on the default scenario.

Run: ``.venv/bin/python scripts/make_screenshots.py``
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.text import Text

DOCS = Path(__file__).resolve().parent.parent / "docs"


def main() -> None:
    command = ["simlab", "up", "--headless", "--virtual", "--duration", "240", "--every", "40"]
    result = subprocess.run(
        [sys.executable, "-m", "simlab", *command[1:]],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "110", "FORCE_COLOR": "1", "PATH": ""},
    )
    console = Console(record=True, width=110, force_terminal=True, file=io.StringIO())
    console.print(Text("$ " + " ".join(command), style="bold"))
    console.print(Text.from_ansi(result.stdout))
    DOCS.mkdir(exist_ok=True)
    console.save_svg(str(DOCS / "simlab-up.svg"), title="simlab up --headless")


if __name__ == "__main__":
    main()
