"""The SQLite historian: batching, durability, duplicates, deadband, retention, queries."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simlab.errors import SimlabError
from simlab.platform.historian import (
    Historian,
    HistorianError,
    Sample,
    SqliteHistorian,
    TagSummary,
    is_good_quality,
    to_seconds,
)

REPO = Path(__file__).resolve().parents[2]
LEVEL = "acme/plant1/water/tank1/level"
FLOW = "acme/plant1/water/pump1/flow"


def rows_on_disk(path: Path) -> int:
    """Rows committed, as another connection (another process) sees them."""
    with sqlite3.connect(path) as other:
        return int(other.execute("SELECT count(*) FROM samples").fetchone()[0])


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "historian.sqlite"


def test_roundtrip_keeps_every_column(db: Path) -> None:
    with SqliteHistorian(db) as historian:
        historian.write(LEVEL, 10.0, 1.5, "Good", "plc1")
        historian.write(LEVEL, 11.0, None, "BadCommunicationError", "plc1")
        historian.write(LEVEL, 12.0, float("nan"), "Bad", "plc1")
    with SqliteHistorian(db) as reopened:
        assert reopened.history(LEVEL, 0, 100) == [
            Sample(LEVEL, 10.0, 1.5, "Good", "plc1"),
            Sample(LEVEL, 11.0, None, "BadCommunicationError", "plc1"),
            Sample(LEVEL, 12.0, None, "Bad", "plc1"),
        ]


def test_sample_is_frozen() -> None:
    sample = Sample(LEVEL, 1.0, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sample.value = 3.0  # type: ignore[misc]


def test_pragmas_wal_and_synchronous_normal(db: Path) -> None:
    with SqliteHistorian(db) as historian:
        conn = historian._conn()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_write_buffers_until_flush(db: Path) -> None:
    historian = SqliteHistorian(db, batch_size=100, flush_interval=3600)
    for second in range(5):
        assert historian.write(LEVEL, float(second), float(second))
    assert historian.pending == 5
    assert rows_on_disk(db) == 0
    assert historian.flush() == 5
    assert historian.pending == 0
    assert rows_on_disk(db) == 5
    historian.close()


def test_full_batch_commits_by_itself(db: Path) -> None:
    historian = SqliteHistorian(db, batch_size=3, flush_interval=3600)
    historian.write_many(Sample(LEVEL, float(s), 1.0) for s in range(4))
    assert rows_on_disk(db) == 3
    assert historian.pending == 1
    historian.close()
    assert rows_on_disk(db) == 4


def test_flush_interval_zero_commits_every_write(db: Path) -> None:
    historian = SqliteHistorian(db, batch_size=100, flush_interval=0.0)
    historian.write(LEVEL, 1.0, 1.0)
    assert rows_on_disk(db) == 1
    historian.close()


def test_queries_see_buffered_writes(db: Path) -> None:
    historian = SqliteHistorian(db, batch_size=100, flush_interval=3600)
    historian.write(LEVEL, 5.0, 42.0)
    assert historian.latest(LEVEL) == Sample(LEVEL, 5.0, 42.0)
    historian.close()


def test_committed_rows_survive_kill_9(db: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from simlab.platform.historian import SqliteHistorian
        h = SqliteHistorian(sys.argv[1], batch_size=10**6, flush_interval=3600)
        for i in range(1000):
            h.write({LEVEL!r}, float(i), i * 0.5, "Good", "plc1")
        h.flush()
        for i in range(1000, 1100):
            h.write({LEVEL!r}, float(i), -1.0, "Good", "plc1")  # buffered, never committed
        print("flushed", flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(db)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "flushed"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert Path(f"{db}-wal").exists()  # the rows live in the WAL, never checkpointed
    with SqliteHistorian(db) as reopened:
        assert reopened.count(LEVEL) == 1000
        assert reopened.latest(LEVEL) == Sample(LEVEL, 999.0, 499.5, "Good", "plc1")
        assert reopened.tags() == [TagSummary(LEVEL, 0.0, 999.0)]


def test_duplicates_are_stored_once(db: Path) -> None:
    with SqliteHistorian(db) as historian:
        historian.write(LEVEL, 1.0, 3.0, "Good", "gw")
        assert historian.flush() == 1
        historian.write(LEVEL, 1.0, 3.0, "Good", "gw")  # QoS 1 redelivery
        assert historian.flush() == 0
        historian.write(LEVEL, 1.0, 3.0, "Good", "other")  # same instant, other source
        assert historian.flush() == 1
        assert historian.count(LEVEL) == 2
        assert [s.source for s in historian.history(LEVEL, 0, 2)] == ["gw", "other"]


def test_deadband_drops_small_changes(db: Path) -> None:
    with SqliteHistorian(db, deadbands={LEVEL: 0.5}, max_interval=10.0) as historian:
        kept = [
            historian.write(LEVEL, 0.0, 10.0),  # first value: kept
            historian.write(LEVEL, 1.0, 10.3),  # |0.3| <= 0.5: dropped
            historian.write(LEVEL, 2.0, 10.5),  # |0.5| <= 0.5: dropped
            historian.write(LEVEL, 3.0, 10.6),  # |0.6| > 0.5 from 10.0: kept
            historian.write(LEVEL, 4.0, 10.7),  # |0.1| from 10.6: dropped
            historian.write(LEVEL, 5.0, 10.7, "Bad"),  # quality changed: kept
            historian.write(LEVEL, 6.0, 10.7, "Bad"),  # same: dropped
            historian.write(LEVEL, 15.0, 10.7, "Bad"),  # 10 s since the last kept: kept
            historian.write(LEVEL, 16.0, None, "Bad"),  # no value after a value: kept
            historian.write(LEVEL, 17.0, None, "Bad"),  # still none: dropped
        ]
        assert kept == [True, False, False, True, False, True, False, True, True, False]
        assert [s.ts for s in historian.history(LEVEL, 0, 100)] == [0.0, 3.0, 5.0, 15.0, 16.0]
        historian.write(FLOW, 0.0, 1.0)  # no deadband on this tag
        assert historian.write(FLOW, 1.0, 1.0)
        assert historian.count(FLOW) == 2


def test_deadband_lets_late_samples_through(db: Path) -> None:
    with SqliteHistorian(db, deadbands={LEVEL: 5.0}) as historian:
        historian.write(LEVEL, 10.0, 1.0)
        assert historian.write(LEVEL, 5.0, 1.0)  # older than the last kept one
        assert not historian.write(LEVEL, 11.0, 1.0)


def test_deadbands_validated_and_replaceable(db: Path) -> None:
    with pytest.raises(ValueError, match="deadband of 'x' must be >= 0"):
        SqliteHistorian(db, deadbands={"x": -1.0})
    with SqliteHistorian(db) as historian:
        historian.set_deadbands({LEVEL: 1.0})
        assert historian.deadbands == {LEVEL: 1.0}
        historian.write(LEVEL, 0.0, 0.0)
        assert not historian.write(LEVEL, 1.0, 0.5)


def test_retention_uses_data_time_by_default(db: Path) -> None:
    with SqliteHistorian(db, retention=10.0) as historian:
        historian.write_many(Sample(LEVEL, float(s), float(s)) for s in range(21))
        historian.write(FLOW, 3.0, 1.0)  # entirely older than the cutoff 20 - 10 = 10
        historian.flush()
        assert [s.ts for s in historian.history(LEVEL, 0, 100)] == [float(s) for s in range(10, 21)]
        assert historian.tags() == [TagSummary(LEVEL, 10.0, 20.0)]


def test_retention_with_a_clock(db: Path) -> None:
    now = [100.0]
    with SqliteHistorian(db, retention=50.0, now=lambda: now[0]) as historian:
        historian.write_many(Sample(LEVEL, float(s), 0.0) for s in (10, 60, 90))
        historian.flush()
        assert historian.count() == 2  # 10 < 100 - 50
        now[0] = 135.0  # cutoff 85: 60 goes, 90 stays
        historian.flush()
        assert [s.ts for s in historian.history(LEVEL, 0, 200)] == [90.0]


def test_history_is_half_open_and_ordered(db: Path) -> None:
    with SqliteHistorian(db) as historian:
        historian.write_many(Sample(LEVEL, float(s), float(s)) for s in (5, 1, 3, 2, 4))
        assert [s.ts for s in historian.history(LEVEL, 2, 4)] == [2.0, 3.0]
        assert list(historian.iter_history(LEVEL, 2, 4)) == historian.history(LEVEL, 2, 4)
        assert historian.history("no/such/tag", 0, 10) == []
        assert historian.latest("no/such/tag") is None


def test_last_before_and_first_after_are_strict_and_by_source(db: Path) -> None:
    with SqliteHistorian(db) as historian:
        historian.write_many(
            [
                Sample(LEVEL, 10.0, 1.0, source="uns"),
                Sample(LEVEL, 20.0, 2.0, source="uns"),
                Sample(LEVEL, 20.0, 2.5, source="spb"),
                Sample(LEVEL, 30.0, None, "Bad", source="uns"),
                Sample(LEVEL, 40.0, 4.0, source="spb"),
                Sample(FLOW, 25.0, 9.0),
            ]
        )  # buffered: a query flushes first
        assert historian.last_before(LEVEL, 20.0) == Sample(LEVEL, 10.0, 1.0, source="uns")
        assert historian.last_before(LEVEL, 25.0) == Sample(LEVEL, 20.0, 2.0, source="uns")
        assert historian.last_before(LEVEL, 40.0, source="spb") == Sample(
            LEVEL, 20.0, 2.5, source="spb"
        )
        assert historian.last_before(LEVEL, 35.0) == Sample(LEVEL, 30.0, None, "Bad", "uns")
        assert historian.last_before(LEVEL, 10.0) is None
        assert historian.first_after(LEVEL, 10.0) == Sample(LEVEL, 20.0, 2.5, source="spb")
        assert historian.first_after(LEVEL, 20.0, source="spb") == Sample(
            LEVEL, 40.0, 4.0, source="spb"
        )
        assert historian.first_after(LEVEL, 40.0) is None
        assert historian.last_before(LEVEL, 15.0, source="other") is None
        start = datetime.fromtimestamp(25.0, UTC)
        assert historian.first_after(FLOW, start - timedelta(seconds=1)) == Sample(FLOW, 25.0, 9.0)
        assert historian.last_before("no/such/tag", 100.0) is None


def test_last_before_and_first_after_seek_the_primary_key(db: Path) -> None:
    with SqliteHistorian(db) as historian:
        historian.write(LEVEL, 1.0, 1.0)
        historian.flush()
        queries: list[str] = []
        historian._conn().set_trace_callback(queries.append)
        historian.last_before(LEVEL, 5.0, source="uns")
        historian.first_after(LEVEL, 0.0)
        historian._conn().set_trace_callback(None)
        assert len(queries) == 2
        for sql in queries:
            plan = historian._conn().execute(f"EXPLAIN QUERY PLAN {sql}")
            detail = " ".join(str(row[-1]) for row in plan)
            assert "SEARCH samples USING PRIMARY KEY (tag=? AND ts" in detail, detail
            assert "TEMP B-TREE" not in detail, detail  # no sort: read in index order


@pytest.fixture
def ten(db: Path) -> SqliteHistorian:
    """ts 0..9 with value = ts, except ts 3 which has no value."""
    historian = SqliteHistorian(db)
    for second in range(10):
        historian.write(LEVEL, float(second), None if second == 3 else float(second))
    historian.write(LEVEL, 30.0, 30.0)  # far away: buckets between stay out
    return historian


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        ("avg", [(0.0, (0 + 1 + 2 + 4) / 4), (5.0, 7.0), (30.0, 30.0)]),
        ("min", [(0.0, 0.0), (5.0, 5.0), (30.0, 30.0)]),
        ("max", [(0.0, 4.0), (5.0, 9.0), (30.0, 30.0)]),
        ("count", [(0.0, 5.0), (5.0, 5.0), (30.0, 1.0)]),
        ("last", [(0.0, 4.0), (5.0, 9.0), (30.0, 30.0)]),
    ],
)
def test_aggregate_buckets(ten: SqliteHistorian, fn: str, expected: list[object]) -> None:
    assert ten.aggregate(LEVEL, 0, 35, 5, fn) == expected  # type: ignore[arg-type]
    ten.close()


def test_aggregate_aligns_buckets_on_start(ten: SqliteHistorian) -> None:
    # [2, 7): 2, 4, 5, 6 (3 has no value); [7, 10): 7, 8, 9
    assert ten.aggregate(LEVEL, 2, 10, 5, "avg") == [(2.0, 17 / 4), (7.0, 8.0)]
    assert ten.aggregate(LEVEL, 2, 10, 5, "count") == [(2.0, 5.0), (7.0, 3.0)]
    ten.close()


def test_aggregate_last_may_be_none(db: Path) -> None:
    with SqliteHistorian(db) as historian:
        historian.write(LEVEL, 0.0, 1.0)
        historian.write(LEVEL, 1.0, None, "Bad")
        assert historian.aggregate(LEVEL, 0, 10, 10, "last") == [(0.0, None)]


def test_aggregate_runs_in_sql_on_the_primary_key(ten: SqliteHistorian) -> None:
    plan = ten._conn().execute(
        "EXPLAIN QUERY PLAN SELECT avg(value) FROM samples WHERE tag = ? AND ts >= ? AND ts < ?",
        (LEVEL, 0, 1),
    )
    detail = " ".join(str(row[-1]) for row in plan)
    assert "SEARCH samples USING PRIMARY KEY (tag=? AND ts>? AND ts<?)" in detail
    ten.close()


def test_aggregate_rejects_bad_arguments(ten: SqliteHistorian) -> None:
    with pytest.raises(ValueError, match="unknown aggregate 'mean'; use one of avg, min"):
        ten.aggregate(LEVEL, 0, 10, 5, "mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bucket_s must be > 0"):
        ten.aggregate(LEVEL, 0, 10, 0, "avg")
    ten.close()


def test_tags_lists_spans(db: Path) -> None:
    with SqliteHistorian(db) as historian:
        historian.write(LEVEL, 7.0, 1.0)
        historian.write(FLOW, 2.0, 1.0)
        historian.write(LEVEL, 3.0, 1.0)
        assert historian.tags() == [TagSummary(FLOW, 2.0, 2.0), TagSummary(LEVEL, 3.0, 7.0)]


def test_datetimes_are_accepted_naive_ones_refused(db: Path) -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    assert to_seconds(moment) == 1767225600.0
    with SqliteHistorian(db) as historian:
        historian.write(LEVEL, moment, 1.0)
        window = historian.history(LEVEL, moment, moment + timedelta(seconds=1))
        assert window == [Sample(LEVEL, 1767225600.0, 1.0)]
        with pytest.raises(ValueError, match="has no time zone"):
            historian.write(LEVEL, datetime(2026, 1, 1), 1.0)


def test_quality_classes() -> None:
    assert is_good_quality("Good")
    assert is_good_quality("GoodClamped")
    assert not is_good_quality("UncertainLastUsableValue")
    assert not is_good_quality("BadCommunicationError")


def test_is_a_historian(db: Path) -> None:
    with SqliteHistorian(db) as historian:
        store: Historian = historian
        assert isinstance(store, Historian)


def test_errors_are_simlab_errors(tmp_path: Path, db: Path) -> None:
    with pytest.raises(HistorianError, match="cannot open the historian database"):
        SqliteHistorian(tmp_path / "missing-dir" / "h.sqlite")
    not_a_db = tmp_path / "notes.sqlite"
    not_a_db.write_text("hello, this is not SQLite" * 100)
    with pytest.raises(SimlabError, match="cannot open"):
        SqliteHistorian(not_a_db)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version=7")
    with pytest.raises(HistorianError, match="schema version 7 is not supported"):
        SqliteHistorian(db)


def test_closed_historian_refuses_work(tmp_path: Path) -> None:
    historian = SqliteHistorian(tmp_path / "h.sqlite")
    historian.close()
    historian.close()  # idempotent
    with pytest.raises(HistorianError, match="closed"):
        historian.latest(LEVEL)


def test_arguments_validated(db: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        SqliteHistorian(db, batch_size=0)
    with pytest.raises(ValueError, match="retention must be > 0"):
        SqliteHistorian(db, retention=0)
    with SqliteHistorian(db) as historian, pytest.raises(ValueError, match="needs a tag"):
        historian.write("", 0.0, 1.0)


def test_memory_database() -> None:
    with SqliteHistorian(":memory:") as historian:
        historian.write(LEVEL, 1.0, 2.0)
        assert historian.count() == 1
