"""OEE of a line per ISO 22400-2, from its PackML state and its piece counters.

Definitions (ISO 22400-2:2014, KPIs for manufacturing operations management):

- PBT, planned busy time: the time of the window in which the line is *planned* to work.
  Here: every state except the not-planned ones (by default PackML 2 Stopped and 4 Idle).
- APT, actual production time: the time the line is producing, PackML 6 Execute.
  Down time within PBT (11 Held, 9 Aborted, 5 Suspended, 3 Starting, ...) is PBT − APT.
- availability = APT / PBT
- performance (effectiveness) = produced quantity × planned run time per item / APT,
  where planned run time per item = 60 / ``ideal_rate_per_min`` seconds
- quality rate = good quantity / produced quantity, produced = good + rejected
- OEE = availability × performance × quality rate

Inputs are time series of ``(ts, value)`` or ``(ts, value, source)`` readings (ts: float
seconds since the Unix epoch or aware datetimes; order does not matter; a value None or NaN
is a reading without a value).

States. A state holds from its sample until the next one; time before the first state
sample, and time in a state sample without a value (e.g. bad quality), is *unknown* and
counts neither as planned nor as production time. Availability is over the whole window.

Counters. A counter increases monotonically; a decrease is a counter reset (to zero, then
counting up to the new value), unless the next reading is back at or above the level before
the decrease: then the low reading was a stale one (a lagging second source) and is skipped.
Readings at the same instant are one reading, the highest. The increase between two
readings is spread over the time *the line may have produced* between them (known Execute
time and unknown time, in proportion); only the part falling in known Execute time inside
the counted span is counted. So a window edge between two sparse readings takes its share
of the increase, not all or nothing, and items are never set against run time in which they
could not have been made. After a counter's last reading its value holds.

The counted span, over which performance and quality are computed, runs from the window
start — or from the first reading of a counter, when one is first seen inside the window:
what it counted before is unknown — to the window end. Every counter is counted over the
same span, so good can never exceed produced (the cause of a quality of 160 % once, when
a produced counter covered less of the window than the good one).

Several sources. When readings carry a source and a series has more than one, one source
is used: the one with the most readings in the window (then the earliest, then by name).
Mixing two publishers of one counter makes a lagging one's readings look like resets.

Figures that the data do not support are None, with the reason in ``OeeResult.reasons``:
performance without run time in the counted span or without counter readings, quality
with nothing produced, and a figure outside [0, 1] (performance above 1 means the ideal
rate is set too low, or the state tag lags the counters; good above produced means the
counters disagree). No figure is clamped. OEE is A × P × Q, or 0 when the line did not
run (A = 0) or ran and produced nothing (P = 0) — unless the counters contradict that. A
window without planned busy time is a :class:`KpiError`: there is nothing to report.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Final

from simlab.errors import SimlabError
from simlab.platform.historian import Timestamp, to_seconds

__all__ = [
    "DEFAULT_NOT_PLANNED",
    "PRODUCING",
    "KpiError",
    "OeeResult",
    "Reading",
    "Series",
    "counter_increase",
    "oee",
    "state_durations",
]

PRODUCING: frozenset[int] = frozenset({6})
"""PackML states that count as actual production time: 6 Execute."""

DEFAULT_NOT_PLANNED: frozenset[int] = frozenset({2, 4})
"""PackML states outside planned busy time by default: 2 Stopped, 4 Idle."""

Reading = tuple[Timestamp, float | None] | tuple[Timestamp, float | None, str]
"""``(ts, value)`` or ``(ts, value, source)``."""
Series = Iterable[Reading]

ROUNDING: Final = 1e-9
"""A ratio at most this far above 1 is floating-point rounding of 1, not an excess."""


class KpiError(SimlabError):
    """A KPI that cannot be computed from the data given (empty window, no data, ...)."""


@dataclass(frozen=True, slots=True)
class OeeResult:
    """OEE and its factors over one window; times in seconds, quantities in items.

    ``apt`` and ``pbt`` are over the window; ``run_time`` is the APT of the counted span
    (from ``counted_from`` to the window end), the denominator of performance. A figure is
    None when the data do not support it; ``reasons`` says why, by figure name.
    """

    availability: float
    performance: float | None
    quality: float | None
    oee: float | None
    apt: float
    pbt: float
    produced: float | None
    good: float | None
    run_time: float = 0.0
    counted_from: float | None = None
    reasons: dict[str, str] = field(default_factory=dict)


def _window(window_start: Timestamp, window_end: Timestamp) -> tuple[float, float]:
    start, end = to_seconds(window_start), to_seconds(window_end)
    if not end > start:
        raise KpiError(
            f"the window is empty: it ends at {end} s, not after its start at {start} s; "
            "give window_end > window_start"
        )
    return start, end


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _one_source(series: Series, start: float, end: float) -> list[tuple[float, float | None]]:
    """The readings sorted by time (stable), from one source when they name several."""
    readings: list[tuple[float, float | None, str]] = []
    for reading in series:
        source = reading[2] if len(reading) == 3 else ""
        readings.append((to_seconds(reading[0]), _number(reading[1]), source))
    readings.sort(key=lambda r: r[0])
    sources = {source for _, _, source in readings}
    if len(sources) > 1:

        def rank(source: str) -> tuple[int, float, str]:
            mine = [ts for ts, _, s in readings if s == source]
            return (-sum(start <= ts <= end for ts in mine), mine[0], source)

        chosen = min(sources, key=rank)
        readings = [r for r in readings if r[2] == chosen]
    return [(ts, value) for ts, value, _ in readings]


def _segments(states: Series, start: float, end: float) -> list[tuple[float, int | None]]:
    """``(from, state)`` segments; the first, from -inf, is unknown time."""
    segments: list[tuple[float, int | None]] = [(-math.inf, None)]
    segments += [(ts, None if v is None else round(v)) for ts, v in _one_source(states, start, end)]
    return segments


def state_durations(
    states: Series, window_start: Timestamp, window_end: Timestamp
) -> dict[int | None, float]:
    """Seconds spent in each state code within the window; key None is unknown time."""
    start, end = _window(window_start, window_end)
    durations: dict[int | None, float] = {}
    segments = _segments(states, start, end)
    for index, (begin, state) in enumerate(segments):
        finish = segments[index + 1][0] if index + 1 < len(segments) else end
        overlap = min(finish, end) - max(begin, start)
        if overlap > 0:
            durations[state] = durations.get(state, 0.0) + overlap
    return durations


class _Timeline:
    """Run time (known production) and possible run time (production or unknown) of a
    state series, as cumulative functions of time, for the share of a counter increase."""

    def __init__(
        self,
        segments: list[tuple[float, int | None]],
        run: Collection[int],
        may_run: Collection[int],
    ) -> None:
        finite = segments[1:]
        self._times = [ts for ts, _ in finite]
        self._rates: list[tuple[float, float]] = [
            (float(s in run), float(s is None or s in may_run)) for _, s in finite
        ]
        self._cumulative: list[tuple[float, float]] = [(0.0, 0.0)]
        for index in range(1, len(finite)):
            length = self._times[index] - self._times[index - 1]
            run_rate, may_rate = self._rates[index - 1]
            last_run, last_may = self._cumulative[-1]
            self._cumulative.append((last_run + run_rate * length, last_may + may_rate * length))

    def _at(self, ts: float) -> tuple[float, float]:
        index = bisect.bisect_right(self._times, ts) - 1
        if index < 0:  # before the first state sample: unknown time, the line may have run
            return 0.0, ts - self._times[0]
        length = ts - self._times[index]
        run_rate, may_rate = self._rates[index]
        run, may = self._cumulative[index]
        return run + run_rate * length, may + may_rate * length

    def run(self, begin: float, finish: float) -> float:
        """Seconds of known production time in ``[begin, finish]``."""
        return self._at(finish)[0] - self._at(begin)[0]

    def may_run(self, begin: float, finish: float) -> float:
        """Seconds of ``[begin, finish]`` in which the line may have produced."""
        return self._at(finish)[1] - self._at(begin)[1]


@dataclass(frozen=True, slots=True)
class _Counter:
    """A counter's readings as ``(ts, total increase since its first reading)``."""

    points: list[tuple[float, float]]

    @classmethod
    def of(cls, series: Series, start: float, end: float) -> _Counter:
        readings: list[tuple[float, float]] = []
        for ts, value in _one_source(series, start, end):
            if value is None:
                continue
            if readings and readings[-1][0] == ts:  # one instant, one reading: the highest
                readings[-1] = (ts, max(readings[-1][1], value))
            else:
                readings.append((ts, value))
        points: list[tuple[float, float]] = []
        total, level = 0.0, 0.0
        for index, (ts, value) in enumerate(readings):
            if points and value < level:
                after = readings[index + 1][1] if index + 1 < len(readings) else None
                if after is not None and after >= level:
                    continue  # a stale reading: the next one is back above the level
                total += max(value, 0.0)  # a reset: from zero up to value
            elif points:
                total += value - level
            level = value
            points.append((ts, total))
        return cls(points)

    @property
    def first(self) -> float:
        return self.points[0][0] if self.points else math.inf

    def counted(
        self, begin: float, finish: float, share: Callable[[float, float, float, float], float]
    ) -> float:
        """The increase in ``[begin, finish]``; ``share(t0, t1, lo, hi)`` is the part of
        the increase between readings at t0 and t1 that counts for ``[lo, hi]``."""
        total = 0.0
        for (t0, c0), (t1, c1) in zip(self.points, self.points[1:], strict=False):
            lo, hi = max(t0, begin), min(t1, finish)
            if c1 > c0 and hi > lo:
                total += (c1 - c0) * share(t0, t1, lo, hi)
        return total


def _by_time(t0: float, t1: float, lo: float, hi: float) -> float:
    return (hi - lo) / (t1 - t0)


def counter_increase(counter: Series, window_start: Timestamp, window_end: Timestamp) -> float:
    """How much a monotonic counter increased in the window, across resets.

    An increase between two readings is spread evenly over the time between them, and the
    counter holds its value after its last reading. KpiError without a reading before the
    window end.
    """
    start, end = _window(window_start, window_end)
    readings = _Counter.of(counter, start, end)
    if not readings.first < end:
        raise KpiError(
            f"the counter has no reading before the window end ({end} s): "
            "cannot count production; check the counter's tag and the window"
        )
    return readings.counted(max(start, readings.first), end, _by_time)


def _ratio(name: str, value: float, reasons: dict[str, str], why: str) -> float | None:
    """``value`` if within [0, 1] (up to rounding), else None with ``why`` as the reason."""
    if -ROUNDING <= value <= 1 + ROUNDING:
        return min(max(value, 0.0), 1.0)
    reasons[name] = f"{name} would be {value:.4g}, outside [0, 1]: {why}"
    return None


def oee(  # noqa: PLR0917 - the positional order is the platform's documented contract
    states: Series,
    produced: Series | None,
    good: Series | None,
    window_start: Timestamp,
    window_end: Timestamp,
    ideal_rate_per_min: float,
    *,
    rejected: Series | None = None,
    not_planned: Collection[int] = DEFAULT_NOT_PLANNED,
    producing: Collection[int] = PRODUCING,
) -> OeeResult:
    """OEE over ``[window_start, window_end]`` (see the module docstring for the rules).

    ``states`` are PackML state codes; ``produced``, ``good`` and ``rejected`` are piece
    counters, of which give two: good and rejected (``produced=None``: produced = good +
    rejected, the most robust), produced and good, or produced and rejected (good =
    produced − rejected). ``ideal_rate_per_min`` is the ideal rate in items per minute.
    KpiError for an empty window, a bad rate or counter choice, or no planned busy time.
    """
    if not ideal_rate_per_min > 0:
        raise KpiError(f"ideal_rate_per_min must be > 0 items/min, got {ideal_rate_per_min}")
    if sum(c is not None for c in (produced, good, rejected)) != 2:
        raise KpiError(
            "give exactly two counters: good and rejected (produced=None), produced and "
            "good, or produced and rejected"
        )
    start, end = _window(window_start, window_end)
    run_states = frozenset(producing) - frozenset(not_planned)
    segments = _segments(states, start, end)
    durations = state_durations(segments[1:], start, end)
    pbt = sum(t for s, t in durations.items() if s is not None and s not in not_planned)
    apt = sum(t for s, t in durations.items() if s is not None and s in run_states)
    if pbt <= 0:
        seen = sorted(s for s in durations if s is not None)
        raise KpiError(
            "no planned busy time in the window (states seen: "
            f"{', '.join(map(str, seen)) or 'none'}; not planned: "
            f"{', '.join(map(str, sorted(not_planned)))}): OEE is undefined; "
            "check the state tag and the window"
        )
    availability = apt / pbt  # APT ⊆ PBT: within [0, 1]
    timeline = _Timeline(segments, run_states, set(producing) | run_states)

    def share(t0: float, t1: float, lo: float, hi: float) -> float:
        may_run = timeline.may_run(t0, t1)
        if may_run > 0:
            return timeline.run(lo, hi) / may_run
        return _by_time(t0, t1, lo, hi)  # counted while the line was known not to run

    counters = {
        name: _Counter.of(series, start, end)
        for name, series in (("produced", produced), ("good", good), ("rejected", rejected))
        if series is not None
    }
    reasons: dict[str, str] = {}
    counted_from = max(start, *(c.first for c in counters.values()))
    made = fine = None
    run_time = 0.0
    if counted_from < end:
        run_time = timeline.run(counted_from, end)
        counts = {name: c.counted(counted_from, end, share) for name, c in counters.items()}
        made = counts.get("produced", counts.get("good", 0.0) + counts.get("rejected", 0.0))
        fine = counts["good"] if "good" in counts else made - counts["rejected"]
    else:
        missing = ", ".join(n for n, c in counters.items() if not c.first < end)
        reasons["performance"] = reasons["quality"] = (
            f"no reading of the {missing} counter before the window end ({end} s): "
            "nothing to count; check the counter's tag and the window"
        )
    performance = quality = None
    if made is not None and fine is not None:
        ideal_s = 60.0 / ideal_rate_per_min
        if run_time > 0:
            performance = _ratio(
                "performance",
                made * ideal_s / run_time,
                reasons,
                f"{made:g} items in {run_time:g} s of run time is above the ideal rate of "
                f"{ideal_rate_per_min:g}/min; check ideal_rate_per_min, or whether the state "
                "tag lags the counters",
            )
        elif made > 0:
            reasons["performance"] = (
                f"{made:g} items counted without run time (state {sorted(run_states)}) in the "
                "counted span: the state tag and the counters disagree"
            )
        else:
            reasons["performance"] = "the line did not run (no Execute) in the counted span"
        if made > 0:
            quality = _ratio(
                "quality",
                fine / made,
                reasons,
                f"good {fine:g} of {made:g} produced: the counters disagree",
            )
        else:
            reasons["quality"] = "nothing produced in the counted span"
    figure: float | None
    if performance is not None and quality is not None:
        figure = availability * performance * quality
    elif (availability == 0 and not made) or performance == 0:
        figure = 0.0  # no run time, or no output: whatever the other factors, OEE is 0
    else:
        figure = None
        reasons["oee"] = "; ".join(
            f"{name}: {reasons[name]}" for name in ("performance", "quality") if name in reasons
        )
    return OeeResult(
        availability=availability,
        performance=performance,
        quality=quality,
        oee=figure,
        apt=apt,
        pbt=pbt,
        produced=made,
        good=fine,
        run_time=run_time,
        counted_from=counted_from if counted_from < end else None,
        reasons=reasons,
    )
