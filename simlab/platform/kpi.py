"""OEE of a line per ISO 22400-2, from its PackML state and its piece counters.

Definitions (ISO 22400-2:2014, KPIs for manufacturing operations management):

- PBT, planned busy time: the time of the window in which the line is *planned* to work.
  Here: every state except the not-planned ones (by default PackML 2 Stopped and 4 Idle).
- APT, actual production time: the time the line is producing, PackML 6 Execute.
  Down time within PBT (11 Held, 9 Aborted, 5 Suspended, 3 Starting, ...) is PBT − APT.
- availability = APT / PBT
- performance (effectiveness) = produced quantity × planned run time per item / APT,
  where planned run time per item = 60 / ``ideal_rate_per_min`` seconds
- quality rate = good quantity / produced quantity
- OEE = availability × performance × quality rate

Inputs are time series as ``(ts, value)`` pairs (ts: float seconds since the Unix epoch or
aware datetimes; order does not matter). A state holds from its sample until the next one;
time before the first state sample, and time in a state sample without a value (None, e.g.
bad quality), is *unknown* and counts neither as planned nor as production time.

Counters increase monotonically; a decrease is a counter reset (to zero, then counting up
to the new value), so the increase over a reset is the new value. The count at the window
start is the last counter sample at or before it (else the first one inside the window);
give a sample at or before the window start for an exact count.

Ratios with a zero denominator are reported as 0.0 (performance with APT = 0, quality with
nothing produced); a window without planned busy time is an error because OEE is undefined.
Performance above 1 is not clamped: it means the ideal rate is set too low.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from simlab.errors import SimlabError
from simlab.platform.historian import Timestamp, to_seconds

__all__ = [
    "DEFAULT_NOT_PLANNED",
    "PRODUCING",
    "KpiError",
    "OeeResult",
    "counter_increase",
    "oee",
    "state_durations",
]

PRODUCING: frozenset[int] = frozenset({6})
"""PackML states that count as actual production time: 6 Execute."""

DEFAULT_NOT_PLANNED: frozenset[int] = frozenset({2, 4})
"""PackML states outside planned busy time by default: 2 Stopped, 4 Idle."""

Series = Iterable[tuple[Timestamp, float | None]]


class KpiError(SimlabError):
    """A KPI that cannot be computed from the data given (empty window, no data, ...)."""


@dataclass(frozen=True, slots=True)
class OeeResult:
    """OEE and its factors over one window; times in seconds, quantities in items."""

    availability: float
    performance: float
    quality: float
    oee: float
    apt: float
    pbt: float
    produced: float
    good: float


def _sorted(series: Series) -> list[tuple[float, float | None]]:
    return sorted(((to_seconds(ts), v) for ts, v in series), key=lambda p: p[0])


def _window(window_start: Timestamp, window_end: Timestamp) -> tuple[float, float]:
    start, end = to_seconds(window_start), to_seconds(window_end)
    if not end > start:
        raise KpiError(
            f"the window is empty: it ends at {end} s, not after its start at {start} s; "
            "give window_end > window_start"
        )
    return start, end


def state_durations(
    states: Series, window_start: Timestamp, window_end: Timestamp
) -> dict[int | None, float]:
    """Seconds spent in each state code within the window; key None is unknown time."""
    start, end = _window(window_start, window_end)
    durations: dict[int | None, float] = {}
    samples = _sorted(states)
    # (from, state) segments; the time before the first sample is unknown.
    segments: list[tuple[float, int | None]] = [(-math.inf, None)]
    segments += [(ts, None if v is None else round(v)) for ts, v in samples]
    for index, (begin, state) in enumerate(segments):
        finish = segments[index + 1][0] if index + 1 < len(segments) else end
        overlap = min(finish, end) - max(begin, start)
        if overlap > 0:
            durations[state] = durations.get(state, 0.0) + overlap
    return durations


def counter_increase(counter: Series, window_start: Timestamp, window_end: Timestamp) -> float:
    """How much a monotonic counter increased in the window, across resets."""
    start, end = _window(window_start, window_end)
    samples = [(ts, v) for ts, v in _sorted(counter) if v is not None and ts <= end]
    if not samples:
        raise KpiError(
            f"the counter has no sample up to the window end ({end} s): "
            "cannot count production; check the counter's tag and the window"
        )
    before = [v for ts, v in samples if ts <= start]
    inside = [v for ts, v in samples if ts > start]
    if before:
        previous = before[-1]
    else:
        previous, inside = inside[0], inside[1:]
    total = 0.0
    for value in inside:
        total += value - previous if value >= previous else value
        previous = value
    return total


def oee(  # noqa: PLR0917 - the positional order is the platform's documented contract
    states: Series,
    produced: Series,
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

    ``states`` are PackML state codes; ``produced`` and ``good`` are piece counters. Pass
    ``good=None`` and ``rejected=...`` when the line counts rejects instead of good parts
    (good = produced − rejected). ``ideal_rate_per_min`` is the ideal rate in items per
    minute. KpiError for an empty window, missing data or no planned busy time.
    """
    if not ideal_rate_per_min > 0:
        raise KpiError(f"ideal_rate_per_min must be > 0 items/min, got {ideal_rate_per_min}")
    if (good is None) == (rejected is None):
        raise KpiError("give exactly one of good (counter of good items) or rejected")
    durations = state_durations(states, window_start, window_end)
    pbt = sum(t for s, t in durations.items() if s is not None and s not in not_planned)
    apt = sum(t for s, t in durations.items() if s is not None and s in producing)
    if pbt <= 0:
        seen = sorted(s for s in durations if s is not None)
        raise KpiError(
            "no planned busy time in the window (states seen: "
            f"{', '.join(map(str, seen)) or 'none'}; not planned: "
            f"{', '.join(map(str, sorted(not_planned)))}): OEE is undefined; "
            "check the state tag and the window"
        )
    made = counter_increase(produced, window_start, window_end)
    if good is not None:
        fine = counter_increase(good, window_start, window_end)
    else:  # rejected was given (checked above)
        fine = made - counter_increase(rejected or (), window_start, window_end)
    availability = apt / pbt
    performance = made * (60.0 / ideal_rate_per_min) / apt if apt > 0 else 0.0
    quality = fine / made if made > 0 else 0.0
    return OeeResult(
        availability=availability,
        performance=performance,
        quality=quality,
        oee=availability * performance * quality,
        apt=apt,
        pbt=pbt,
        produced=made,
        good=fine,
    )
