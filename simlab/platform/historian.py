"""The historian: time series of tag samples, stored in SQLite, queried by graders and UIs.

Time
    Every ``ts`` is a float of seconds since the Unix epoch (1970-01-01T00:00:00Z) in the
    lab's *simulated* time; an aware :class:`~datetime.datetime` is accepted wherever a
    timestamp is (see :func:`to_seconds`). The historian never reads the wall clock for data;
    only its write batching (``flush_interval``) uses a monotonic clock.

Rows
    One row per sample: tag path (the UNS path, e.g. ``acme/plant1/bottling/filler/level``),
    ``ts``, ``value`` (REAL; NULL when there is no value, NaN is stored as NULL),
    ``quality`` (the OPC UA status name, ``Good``, ``UncertainLastUsableValue``,
    ``BadCommunicationError``, ...) and ``source`` (who delivered it, ``""`` when unknown).

Guarantees
    - *None stored twice*: ``(tag, ts, source)`` is the primary key and rows are inserted
      with ``INSERT OR IGNORE``, so an MQTT QoS 1 redelivery of the same sample is stored once.
    - *Committed means durable*: a :meth:`SqliteHistorian.flush` commits one transaction in
      WAL mode with ``synchronous=NORMAL``; committed rows survive a crash of the process
      (``kill -9``). Samples still in the write buffer are lost in a crash.
    - *Read your writes*: every query flushes the buffer first.

Layout
    The table is ``WITHOUT ROWID`` with primary key ``(tag, ts, source)``: the rows of one
    tag are stored together in time order, so the primary key *is* the (tag, ts) index and a
    day of one tag is a contiguous range scan. A small ``tags`` table keeps each tag's
    first and last timestamp, so :meth:`SqliteHistorian.tags` and retention never scan the
    samples.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self, runtime_checkable

from simlab.errors import SimlabError

__all__ = [
    "AGGREGATES",
    "Aggregate",
    "Historian",
    "HistorianError",
    "Sample",
    "SqliteHistorian",
    "TagSummary",
    "Timestamp",
    "is_good_quality",
    "to_seconds",
]

Timestamp = float | datetime
"""Seconds since the Unix epoch, or an aware datetime (converted with ``.timestamp()``)."""

Aggregate = Literal["avg", "min", "max", "count", "last"]
AGGREGATES: tuple[Aggregate, ...] = ("avg", "min", "max", "count", "last")

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    tag     TEXT NOT NULL,
    ts      REAL NOT NULL,
    source  TEXT NOT NULL DEFAULT '',
    value   REAL,
    quality TEXT NOT NULL DEFAULT 'Good',
    PRIMARY KEY (tag, ts, source)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (
    tag      TEXT PRIMARY KEY,
    first_ts REAL NOT NULL,
    last_ts  REAL NOT NULL
) WITHOUT ROWID;
"""

_INSERT = "INSERT OR IGNORE INTO samples (tag, ts, source, value, quality) VALUES (?, ?, ?, ?, ?)"
_UPSERT_TAG = """
INSERT INTO tags (tag, first_ts, last_ts) VALUES (?, ?, ?)
ON CONFLICT (tag) DO UPDATE SET
    first_ts = min(first_ts, excluded.first_ts),
    last_ts = max(last_ts, excluded.last_ts)
"""
_COLUMNS = "tag, ts, value, quality, source"

# SQL of each aggregate over the rows of one bucket. For ``last`` SQLite's documented
# bare-column rule applies: with max(ts), ``value`` comes from the row holding the max.
_AGGREGATE_SQL: dict[str, str] = {
    "avg": "avg(value)",
    "min": "min(value)",
    "max": "max(value)",
    "count": "count(*)",
    "last": "value, max(ts)",
}


class HistorianError(SimlabError):
    """The historian's database cannot be opened, read or written."""


def to_seconds(ts: Timestamp) -> float:
    """``ts`` as float seconds since the Unix epoch; a naive datetime is a ``ValueError``."""
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            raise ValueError(
                f"timestamp {ts.isoformat()} has no time zone: use an aware UTC datetime "
                "(datetime(..., tzinfo=UTC)) or float seconds since the Unix epoch"
            )
        return ts.timestamp()
    return float(ts)


def is_good_quality(quality: str) -> bool:
    """True for OPC UA status names of the Good class (``Good``, ``GoodClamped``, ...)."""
    return quality.startswith("Good")


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one tag at one instant.

    ``value`` is None when the source had no value (typically with a Bad quality).
    """

    tag: str
    ts: float
    value: float | None
    quality: str = "Good"
    source: str = ""


@dataclass(frozen=True, slots=True)
class TagSummary:
    """A tag the historian holds, with the time span of its stored samples."""

    tag: str
    first_ts: float
    last_ts: float


@runtime_checkable
class Historian(Protocol):
    """What the platform needs from a time-series store (SQLite today, a server DB later)."""

    def write_many(self, samples: Iterable[Sample]) -> int:
        """Accept samples for storage; returns how many passed the deadband filter."""
        ...

    def latest(self, tag: str) -> Sample | None:
        """The newest stored sample of ``tag``, or None."""
        ...

    def history(self, tag: str, start: Timestamp, end: Timestamp) -> list[Sample]:
        """The samples of ``tag`` with ``start <= ts < end``, oldest first."""
        ...

    def last_before(self, tag: str, ts: Timestamp, source: str | None = None) -> Sample | None:
        """The newest sample of ``tag`` (from ``source``, if given) with a ts before ``ts``."""
        ...

    def first_after(self, tag: str, ts: Timestamp, source: str | None = None) -> Sample | None:
        """The oldest sample of ``tag`` (from ``source``, if given) with a ts after ``ts``."""
        ...

    def aggregate(
        self, tag: str, start: Timestamp, end: Timestamp, bucket_s: float, fn: Aggregate
    ) -> list[tuple[float, float | None]]:
        """``(bucket_start, fn(values))`` per non-empty bucket of ``[start, end)``."""
        ...

    def tags(self) -> list[TagSummary]:
        """Every tag stored, with its first and last timestamps, sorted by path."""
        ...

    def close(self) -> None:
        """Store what is buffered and release the store."""
        ...


@dataclass(slots=True)
class _Kept:
    """The last sample of a tag that passed the deadband filter."""

    ts: float
    value: float | None
    quality: str


class SqliteHistorian:
    """A :class:`Historian` in one SQLite file (or ``":memory:"``).

    ``batch_size`` and ``flush_interval`` (seconds of wall time) bound the write buffer: a
    write that fills the batch or comes ``flush_interval`` after the last flush commits
    the buffer. There is no background thread; call :meth:`flush` (or :meth:`maybe_flush`
    from a periodic task) so that an idle historian does not hold samples back.

    ``retention`` (seconds): on every flush, rows older than ``now() - retention`` are
    deleted. ``now`` defaults to the newest timestamp ever written (data time), so
    retention follows the simulated clock, not the wall clock.

    ``deadbands`` (tag → absolute deadband in value units, OPC UA semantics): a new value of
    such a tag is kept only when ``|value - last kept value| > deadband``, its quality
    differs from the last kept one, or ``max_interval`` seconds passed since the last kept
    sample. A sample older than the last kept one bypasses the filter.

    Use from one thread (SQLite connections are not shared across threads here).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.25,
        retention: float | None = None,
        deadbands: Mapping[str, float] | None = None,
        max_interval: float = 60.0,
        now: Callable[[], float] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if flush_interval < 0:
            raise ValueError(f"flush_interval must be >= 0 s, got {flush_interval}")
        if not max_interval > 0:
            raise ValueError(f"max_interval must be > 0 s, got {max_interval}")
        self.path = path
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retention: float | None = None
        self.set_retention(retention)
        self.max_interval = max_interval
        self._deadbands: dict[str, float] = {}
        self.set_deadbands(deadbands or {})
        self._now = now
        self._high_water = -math.inf
        self._buffer: list[tuple[str, float, str, float | None, str]] = []
        self._kept: dict[str, _Kept] = {}
        self._last_flush = time.monotonic()
        self._db: sqlite3.Connection | None = self._open(path)

    # --- lifecycle ---------------------------------------------------------------------

    @staticmethod
    def _open(path: Path | str) -> sqlite3.Connection:
        target = str(path)
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(target, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version not in (0, SCHEMA_VERSION):
                raise HistorianError(
                    f"{target}: historian schema version {version} is not supported "
                    f"(this simlab writes version {SCHEMA_VERSION}); use a new file"
                )
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (sqlite3.Error, HistorianError) as err:
            if db is not None:
                db.close()
            if isinstance(err, HistorianError):
                raise
            raise HistorianError(
                f"{target}: cannot open the historian database: {err}; check that the "
                "directory exists, is writable, and the file is a simlab historian"
            ) from err
        return db

    def close(self) -> None:
        """Flush the buffer and close the database; further use is an error."""
        if self._db is None:
            return
        try:
            self.flush()
        finally:
            self._db.close()
            self._db = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise HistorianError(f"{self.path}: the historian is closed")
        return self._db

    # --- configuration -----------------------------------------------------------------

    def set_deadbands(self, deadbands: Mapping[str, float]) -> None:
        """Replace the per-tag deadbands (e.g. after a rules file reload)."""
        for tag, band in deadbands.items():
            if not band >= 0:
                raise ValueError(f"deadband of {tag!r} must be >= 0, got {band}")
        self._deadbands = dict(deadbands)

    def set_retention(self, retention: float | None) -> None:
        """Keep ``retention`` seconds of history (None keeps everything); applied on flush."""
        if retention is not None and not retention > 0:
            raise ValueError(f"retention must be > 0 s (or None to keep all), got {retention}")
        self.retention = retention

    @property
    def deadbands(self) -> dict[str, float]:
        """A copy of the per-tag deadbands."""
        return dict(self._deadbands)

    # --- writing -----------------------------------------------------------------------

    def write(
        self,
        tag: str,
        ts: Timestamp,
        value: float | None,
        quality: str = "Good",
        source: str = "",
    ) -> bool:
        """Buffer one sample; False when the deadband filter dropped it."""
        if not tag:
            raise ValueError("a sample needs a tag path, got ''")
        seconds = to_seconds(ts)
        number = None if value is None or math.isnan(value) else float(value)
        if not self._passes(tag, seconds, number, quality):
            return False
        self._buffer.append((tag, seconds, source, number, quality))
        self._high_water = max(self._high_water, seconds)
        if len(self._buffer) >= self.batch_size:
            self.flush()
        else:
            self.maybe_flush()
        return True

    def write_many(self, samples: Iterable[Sample]) -> int:
        """Buffer many samples; returns how many passed the deadband filter."""
        return sum(self.write(s.tag, s.ts, s.value, s.quality, s.source) for s in samples)

    def _passes(self, tag: str, ts: float, value: float | None, quality: str) -> bool:
        band = self._deadbands.get(tag)
        if band is None:
            return True
        last = self._kept.get(tag)
        if last is not None and ts >= last.ts:
            same_quality = quality == last.quality
            recent = ts - last.ts < self.max_interval
            if value is None or last.value is None:
                within = value is None and last.value is None
            else:
                within = abs(value - last.value) <= band
            if same_quality and recent and within:
                return False
        if last is None or ts >= last.ts:
            self._kept[tag] = _Kept(ts, value, quality)
        return True

    def maybe_flush(self) -> bool:
        """Flush when ``flush_interval`` passed since the last flush; True if it did."""
        if self._buffer and time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()
            return True
        return False

    def flush(self) -> int:
        """Commit the buffer in one transaction (then apply retention); rows newly stored."""
        db = self._conn()
        rows, self._buffer = self._buffer, []
        self._last_flush = time.monotonic()
        if not rows and self.retention is None:
            return 0
        spans: dict[str, tuple[float, float]] = {}
        for tag, ts, *_ in rows:
            first, last = spans.get(tag, (ts, ts))
            spans[tag] = (min(first, ts), max(last, ts))
        try:
            db.execute("BEGIN")
            before = db.total_changes
            db.executemany(_INSERT, rows)
            stored = db.total_changes - before
            db.executemany(_UPSERT_TAG, [(t, a, b) for t, (a, b) in spans.items()])
            if self.retention is not None:
                self._apply_retention(db, self.retention)
            db.execute("COMMIT")
        except sqlite3.Error as err:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._buffer = rows + self._buffer
            raise HistorianError(f"{self.path}: cannot store samples: {err}") from err
        return stored

    def _apply_retention(self, db: sqlite3.Connection, retention: float) -> None:
        now = self._now() if self._now is not None else self._high_water
        if not math.isfinite(now):
            return
        cutoff = now - retention
        old = db.execute("SELECT tag FROM tags WHERE first_ts < ?", (cutoff,)).fetchall()
        for (tag,) in old:
            db.execute("DELETE FROM samples WHERE tag = ? AND ts < ?", (tag, cutoff))
            first = db.execute("SELECT min(ts) FROM samples WHERE tag = ?", (tag,)).fetchone()[0]
            if first is None:
                db.execute("DELETE FROM tags WHERE tag = ?", (tag,))
            else:
                db.execute("UPDATE tags SET first_ts = ? WHERE tag = ?", (first, tag))

    # --- reading -----------------------------------------------------------------------

    def _query(self, sql: str, args: tuple[object, ...]) -> list[Any]:
        if self._buffer:
            self.flush()
        try:
            return self._conn().execute(sql, args).fetchall()
        except sqlite3.Error as err:
            raise HistorianError(f"{self.path}: query failed: {err}") from err

    def latest(self, tag: str) -> Sample | None:
        """The sample of ``tag`` with the greatest ts, or None if the tag has none."""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM samples WHERE tag = ? ORDER BY ts DESC, source DESC LIMIT 1",
            (tag,),
        )
        return _sample(rows[0]) if rows else None

    def history(self, tag: str, start: Timestamp, end: Timestamp) -> list[Sample]:
        """The samples of ``tag`` with ``start <= ts < end``, by ts then source."""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM samples WHERE tag = ? AND ts >= ? AND ts < ? "
            "ORDER BY ts, source",
            (tag, to_seconds(start), to_seconds(end)),
        )
        return [_sample(row) for row in rows]

    def last_before(self, tag: str, ts: Timestamp, source: str | None = None) -> Sample | None:
        """The newest sample of ``tag`` with a ts strictly before ``ts``, or None.

        With ``source``, only that source's samples count; without, the greatest source wins
        a tie (as in :meth:`latest`). One index seek: the value a tag held at an instant.
        """
        return self._neighbour(tag, to_seconds(ts), source, after=False)

    def first_after(self, tag: str, ts: Timestamp, source: str | None = None) -> Sample | None:
        """The oldest sample of ``tag`` with a ts strictly after ``ts``, or None.

        With ``source``, only that source's samples count; without, the smallest source wins
        a tie (as in :meth:`history`).
        """
        return self._neighbour(tag, to_seconds(ts), source, after=True)

    def _neighbour(self, tag: str, ts: float, source: str | None, *, after: bool) -> Sample | None:
        compare, order = (">", "ASC") if after else ("<", "DESC")
        where, args = f"tag = ? AND ts {compare} ?", [tag, ts]
        if source is not None:
            where += " AND source = ?"
            args.append(source)
        rows = self._query(
            f"SELECT {_COLUMNS} FROM samples WHERE {where} "
            f"ORDER BY ts {order}, source {order} LIMIT 1",
            tuple(args),
        )
        return _sample(rows[0]) if rows else None

    def iter_history(self, tag: str, start: Timestamp, end: Timestamp) -> Iterator[Sample]:
        """Like :meth:`history`, one sample at a time (for long ranges)."""
        if self._buffer:
            self.flush()
        cursor = self._conn().execute(
            f"SELECT {_COLUMNS} FROM samples WHERE tag = ? AND ts >= ? AND ts < ? "
            "ORDER BY ts, source",
            (tag, to_seconds(start), to_seconds(end)),
        )
        for row in cursor:
            yield _sample(row)

    def aggregate(
        self, tag: str, start: Timestamp, end: Timestamp, bucket_s: float, fn: Aggregate
    ) -> list[tuple[float, float | None]]:
        """``fn`` over buckets of ``bucket_s`` seconds of ``[start, end)``, computed in SQL.

        Buckets are aligned on ``start`` (``start + k * bucket_s``); a bucket without rows
        is left out. ``avg``, ``min``, ``max`` and ``last`` ignore NULL values except that
        ``last`` returns the value of the newest row, which may be None; ``count`` counts
        rows (samples), with or without a value. Quality is not filtered.
        """
        if fn not in _AGGREGATE_SQL:
            raise ValueError(f"unknown aggregate {fn!r}; use one of {', '.join(AGGREGATES)}")
        if not bucket_s > 0:
            raise ValueError(f"bucket_s must be > 0 s, got {bucket_s}")
        first, stop = to_seconds(start), to_seconds(end)
        rows = self._query(
            f"SELECT CAST((ts - ?) / ? AS INTEGER) AS bucket, {_AGGREGATE_SQL[fn]} "
            "FROM samples WHERE tag = ? AND ts >= ? AND ts < ? GROUP BY bucket ORDER BY bucket",
            (first, bucket_s, tag, first, stop),
        )
        return [(first + int(b) * bucket_s, _number(v)) for b, v, *_ in rows]

    def tags(self) -> list[TagSummary]:
        """Every tag with stored samples and its first and last ts, sorted by path."""
        rows = self._query("SELECT tag, first_ts, last_ts FROM tags ORDER BY tag", ())
        return [TagSummary(str(t), float(a), float(b)) for t, a, b in rows]

    def count(self, tag: str | None = None) -> int:
        """Rows stored (for one tag, or in all)."""
        if tag is None:
            rows = self._query("SELECT count(*) FROM samples", ())
        else:
            rows = self._query("SELECT count(*) FROM samples WHERE tag = ?", (tag,))
        return int(rows[0][0])

    @property
    def pending(self) -> int:
        """Samples buffered and not yet committed."""
        return len(self._buffer)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _sample(row: Any) -> Sample:
    tag, ts, value, quality, source = row
    return Sample(str(tag), float(ts), _number(value), str(quality), str(source))
