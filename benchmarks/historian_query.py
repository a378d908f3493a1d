"""Historian figures: write throughput and the 24 h / 1 min average query (goal < 100 ms).

Fills a SQLite historian (a temporary file, WAL, synchronous=NORMAL) with 24 simulated
hours at 1 Hz of 10 tags (864,000 rows: the tag under test plus 9 neighbours, interleaved
as an ingest would receive them), then prints:

- the write throughput in rows/s, committed in batches of ``--batch`` rows;
- the median of 10 runs of ``aggregate(tag, day, 60 s, "avg")`` (1,440 buckets);
- for comparison, the median of ``history`` over the same day (86,400 samples).

Run: ``.venv/bin/python benchmarks/historian_query.py [--batch 500]``
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

from simlab.clock import DEFAULT_EPOCH
from simlab.platform.historian import Sample, SqliteHistorian

DAY_S = 86_400
TAG = "acme/plant1/bottling/filler/level"
NEIGHBOURS = [f"acme/plant1/bottling/line{i}/temperature" for i in range(1, 10)]


def fill(historian: SqliteHistorian, start: float, batch: int) -> tuple[int, float]:
    """Write one day of the 10 tags; returns (rows, seconds)."""
    tags = [TAG, *NEIGHBOURS]
    buffer: list[Sample] = []
    rows = 0
    began = time.perf_counter()
    for second in range(DAY_S):
        ts = start + second
        for index, tag in enumerate(tags):
            value = 50.0 + 10.0 * math.sin(second / 600.0 + index)
            buffer.append(Sample(tag, ts, value, "Good", "bench"))
        if len(buffer) >= batch:
            historian.write_many(buffer)
            historian.flush()
            rows += len(buffer)
            buffer = []
    historian.write_many(buffer)
    historian.flush()
    rows += len(buffer)
    return rows, time.perf_counter() - began


def median_ms(action: object, runs: int = 10) -> float:
    """Median wall time of ``runs`` calls, in milliseconds."""
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        action()  # type: ignore[operator]
        times.append((time.perf_counter() - began) * 1000.0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=500, help="rows per committed batch")
    args = parser.parse_args()
    start = DEFAULT_EPOCH.timestamp()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "historian.sqlite"
        # batch_size above --batch so that the benchmark decides when to commit.
        with SqliteHistorian(path, batch_size=10**9, flush_interval=3600.0) as historian:
            rows, seconds = fill(historian, start, args.batch)
            print(f"write: {rows:,} rows in {seconds:.2f} s = {rows / seconds:,.0f} rows/s "
                  f"(batches of {args.batch}, one transaction each)")  # fmt: skip
            buckets = historian.aggregate(TAG, start, start + DAY_S, 60.0, "avg")
            assert len(buckets) == 1440, len(buckets)
            query = median_ms(lambda: historian.aggregate(TAG, start, start + DAY_S, 60.0, "avg"))
            verdict = "OK" if query < 100.0 else "SLOW"
            print(f"aggregate 24 h as 1-min avg (1,440 buckets of 86,400 rows): median of 10 = "
                  f"{query:.1f} ms (goal < 100 ms: {verdict})")  # fmt: skip
            raw = median_ms(lambda: historian.history(TAG, start, start + DAY_S))
            print(f"history 24 h (86,400 samples as Python objects): median of 10 = {raw:.1f} ms")
        size = path.stat().st_size / 1e6
        print(f"database file: {size:.1f} MB")


if __name__ == "__main__":
    main()
