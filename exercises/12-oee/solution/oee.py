"""OEE of the bottling line over one window, from the platform's history.

Reference solution. It waits until the lab's clock has passed the end of the window, fetches
the PackML state and the good and rejected counters of the line from the platform's HTTP API,
computes availability, performance and quality (ISO 22400-2) and writes them to the answers
file.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

LINE = "acme/riverside/packaging/bottling1/filling/line"
NOT_PLANNED = {2, 4}  # PackML Stopped, Idle
PRODUCING = {6}  # PackML Execute
LOOKBACK_S = 600.0  # fetch this much before the window: the value each tag had at its start
SETTLE_S = 5.0  # lab seconds to wait after the window so that its last samples are stored


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


def history(tag: str, start: float, end: float) -> list[tuple[float, float]]:
    """(ts, value) of the tag's stored samples in [start, end), oldest first."""
    data = api(f"/api/tags/{LINE}/{tag}/history", start=f"{start:.3f}", end=f"{end:.3f}")
    return [(s["ts"], s["value"]) for s in data["samples"] if s["value"] is not None]


def at_start(series: list[tuple[float, float]], start: float) -> list[tuple[float, float]]:
    """The series from ``start`` on, beginning with the value held at ``start``."""
    before = [(ts, v) for ts, v in series if ts <= start]
    inside = [(ts, v) for ts, v in series if ts > start]
    return ([(start, before[-1][1])] if before else []) + inside


def seconds_per_state(states: list[tuple[float, float]], start: float, end: float) -> dict:
    """Seconds spent in each state inside [start, end]: a state holds until the next sample."""
    spent: dict[int, float] = {}
    for i, (ts, value) in enumerate(states):
        until = states[i + 1][0] if i + 1 < len(states) else end
        overlap = min(until, end) - max(ts, start)
        if overlap > 0:
            spent[round(value)] = spent.get(round(value), 0.0) + overlap
    return spent


def increase(counter: list[tuple[float, float]]) -> float:
    """How much a counter grew along the series (a drop is a reset to 0)."""
    total = 0.0
    for (_, previous), (_, value) in itertools.pairwise(counter):
        total += value - previous if value >= previous else value
    return total


def main() -> None:
    variant = load_variant()
    start, end = seconds(variant["window_start"]), seconds(variant["window_end"])
    ideal_rate = float(variant["ideal_rate"])
    while api("/api/health")["now"] < end + SETTLE_S:  # the lab's clock, not ours
        time.sleep(0.2)

    fetch = {
        tag: history(tag, start - LOOKBACK_S, end + 1.0)
        for tag in ("state", "bottles_good", "bottles_rejected")
    }
    inside = {tag: [(ts, v) for ts, v in series if ts <= end] for tag, series in fetch.items()}
    states = at_start(inside["state"], start)
    good = increase(at_start(inside["bottles_good"], start))
    rejected = increase(at_start(inside["bottles_rejected"], start))

    spent = seconds_per_state(states, start, end)
    pbt = sum(t for state, t in spent.items() if state not in NOT_PLANNED)
    apt = sum(t for state, t in spent.items() if state in PRODUCING)
    produced = good + rejected
    availability = apt / pbt
    performance = produced * (60.0 / ideal_rate) / apt if apt else 0.0
    quality = good / produced if produced else 0.0
    answers = {
        "availability": round(availability, 4),
        "performance": round(performance, 4),
        "quality": round(quality, 4),
        "oee": round(availability * performance * quality, 4),
        "produced": produced,
    }
    print(json.dumps(answers), f"(APT {apt:.1f} s of PBT {pbt:.1f} s)")
    Path(os.environ["SIMLAB_ANSWERS"]).write_text(json.dumps(answers), encoding="utf-8")


if __name__ == "__main__":
    main()
