"""OEE of the bottling line over one window, from the platform's history.

Your program asks the platform's HTTP API for the history of the line's PackML state and of
its good and rejected counters, computes availability, performance and quality over your
window (ISO 22400-2, see the brief) and writes them to the answers file.

As shipped it lists the line's tags and stops at the first TODO.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

LINE = "acme/riverside/packaging/bottling1/filling/line"


def load_variant() -> dict[str, Any]:
    path = os.environ.get("SIMLAB_VARIANT")
    if not path:
        raise SystemExit("SIMLAB_VARIANT is not set: run me in a simlab exercise lab")
    values: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return values


def seconds(iso: str) -> float:
    """An ISO-8601 instant ('2026-01-01T00:02:00Z') as seconds since the Unix epoch."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def api(path: str, **query: Any) -> Any:
    """GET the platform API (JSON)."""
    url = os.environ["SIMLAB_API_URL"].rstrip("/") + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {os.environ['SIMLAB_API_TOKEN']}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def main() -> None:
    variant = load_variant()
    start, end = seconds(variant["window_start"]), seconds(variant["window_end"])
    print(f"window: {variant['window_start']} .. {variant['window_end']} ({end - start:.0f} s)")
    print(f"lab time now: {api('/api/health')['now_iso']}")
    for tag in api("/api/tags", prefix=LINE):
        print(f"  {tag['path']}")
    # TODO 1: wait until the lab's clock (GET /api/health) has passed the end of the window.
    # TODO 2: fetch the state, bottles_good and bottles_rejected histories
    #         (GET /api/tags/<path>/history?start=...&end=...), from before the window start.
    # TODO 3: availability, performance, quality, oee and produced, as the brief defines them.
    # TODO 4: write them as JSON to the file named by SIMLAB_ANSWERS.
    raise NotImplementedError("compute the OEE")


if __name__ == "__main__":
    main()
