"""``value_tracks_truth``: a published value follows the true plant value.

Each value received (on an MQTT topic, or stored by the platform's historian) is compared
with the truth over the latency allowance before its arrival: it matches when some true
value of ``[arrival - max_latency_s, arrival]`` lies within ``tolerance`` of it. The check
passes when matching values cover ``min_coverage`` of the window's time (a value covers
the time until the next one arrives, at most ``max_gap_s``).

The historian stamps values in whole milliseconds of Unix time (the UNS ``ts`` or the
Sparkplug timestamp), so a value read at the very instant the truth changed (a counter
stepping) may carry a stamp up to half a millisecond *before* that truth sample. Values of
a ``platform_tag`` are therefore matched with :data:`PLATFORM_SLACK_S` of slack: the truth
sampled up to that long after the stamp counts as "at" the stamp.

When it fails, :mod:`grading.checks.diagnosis` tests hypotheses against the truth and names
the one that explains the data (word order, off-by-one register, unit, scale, offset,
stale, late, wrong signal).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from grading.checks._common import (
    ParamError,
    Params,
    Sample,
    bus_samples,
    excerpt,
    fmt,
    outcome,
)
from grading.evidence import Evidence, EvidenceError, TagRef, convert_units
from grading.model import CheckResult
from simlab.scenario.checks import did_you_mean

__all__ = ["TruthTrack", "check_value_tracks_truth"]

CHECK: Final = "value_tracks_truth"
PARAMS: Final = (
    "topic",
    "platform_tag",
    "signal",
    "tolerance",
    "max_latency_s",
    "min_coverage",
    "window",
    "unit",
    "tag",
    "field",
    "max_gap_s",
    "min_samples",
)
FloatArray = npt.NDArray[np.float64]
PLATFORM_SLACK_S: Final = 1e-3
"""Slack when matching historian values to the truth: half a millisecond of rounding of the
platform's millisecond timestamps, plus the float error of Unix seconds, rounded up."""


@dataclass(frozen=True)
class TruthTrack:
    """The truth of one signal, in the unit the values are expected in, ready for matching."""

    signal: str
    unit: str
    times: FloatArray
    values: FloatArray
    slack: float = 0.0
    """Seconds a value's stamp may lie before the truth sample it shows (timestamp rounding)."""

    @classmethod
    def load(
        cls,
        evidence: Evidence,
        signal: str,
        unit: str,
        start: float,
        end: float,
        *,
        slack: float = 0.0,
    ) -> TruthTrack:
        """The truth of ``signal`` over ``[start, end]`` converted to ``unit``."""
        times, values = evidence.signal_series(signal, start, end + slack)
        source = evidence.signal_unit(signal)
        converted = np.array([convert_units(float(v), source, unit) for v in values])
        return cls(signal, unit, times, converted, slack)

    def at(self, time: float) -> float:
        """The true value held at ``time`` (NaN before the first sample), ``slack`` included."""
        index = int(np.searchsorted(self.times, time + self.slack, side="right")) - 1
        return float(self.values[index]) if index >= 0 else math.nan

    def matches(
        self,
        times: FloatArray,
        values: FloatArray,
        tolerance: float,
        latency: float,
        delay: float = 0.0,
    ) -> npt.NDArray[np.bool_]:
        """Per value: does a true value of ``[t - delay - latency, t - delay + slack]`` lie
        within ``tolerance`` of it? (The value held at the interval's start counts.)"""
        out = np.zeros(len(times), dtype=bool)
        if len(self.times) == 0:
            return out
        lows = np.searchsorted(self.times, times - delay - latency, side="right") - 1
        highs = np.searchsorted(self.times, times - delay + self.slack, side="right")
        for i, (first, high, value) in enumerate(zip(lows, highs, values, strict=True)):
            low = max(int(first), 0)
            if high <= low or not math.isfinite(value):
                continue
            segment = self.values[low:high]
            out[i] = bool(np.min(np.abs(segment - value)) <= tolerance)
        return out

    @property
    def spread(self) -> float:
        """Max - min of the true values (0 when empty)."""
        return float(np.ptp(self.values)) if len(self.values) else 0.0


def coverage(
    times: Sequence[float], matched: Sequence[bool], start: float, end: float, max_gap: float
) -> float:
    """Share of ``[start, end]`` during which the latest value (at most ``max_gap`` old)
    was a matching one."""
    if end <= start:
        return 1.0 if matched and all(matched) else 0.0
    covered = 0.0
    for i, (time, ok) in enumerate(zip(times, matched, strict=True)):
        if not ok:
            continue
        following = times[i + 1] if i + 1 < len(times) else end
        low, high = max(time, start), min(following, time + max_gap, end)
        if high > low:
            covered += high - low
    return covered / (end - start)


@dataclass(frozen=True)
class TrackingSetup:
    """Everything value_tracks_truth and its diagnosis need, parsed from the params."""

    signal: str
    unit: str
    tolerance: float
    latency: float
    start: float
    end: float
    max_gap: float
    tag: TagRef | None
    what: str
    slack: float = 0.0


def _setup(evidence: Evidence, p: Params) -> TrackingSetup:
    signal = p.text("signal")
    evidence.signal_unit(signal)
    tag = evidence.tag(p.text("tag")) if p.has("tag") else None
    default_unit = evidence.tag_unit(tag) if tag is not None else evidence.signal_unit(signal)
    unit = p.text("unit", default_unit or evidence.signal_unit(signal))
    start, end = p.window(evidence)
    if p.has("topic") == p.has("platform_tag"):
        raise ParamError(f"{CHECK}: give exactly one of params.topic and params.platform_tag")
    what = (
        f"topic {p.text('topic')}" if p.has("topic") else f"platform tag {p.text('platform_tag')}"
    )
    return TrackingSetup(
        signal=signal,
        unit=unit,
        tolerance=p.number("tolerance", minimum=0.0),
        latency=p.number("max_latency_s", 2.0, minimum=0.0),
        start=start,
        end=end,
        max_gap=p.number("max_gap_s", 10.0, minimum=0.0),
        tag=tag,
        what=what,
        slack=PLATFORM_SLACK_S if p.has("platform_tag") else 0.0,
    )


def _observed(
    evidence: Evidence, p: Params, setup: TrackingSetup
) -> tuple[list[Sample], list[str]]:
    """The values to grade (arrival order) and why some could not be read."""
    low = setup.start - setup.max_gap
    if p.has("topic"):
        messages = [  # a retained copy is an old value replayed to a new subscriber: not live
            m
            for m in evidence.messages(p.text("topic"))
            if low <= m.sim_time <= setup.end and not m.retain
        ]
        return bus_samples(messages, p.text("field", "value"))
    platform = evidence.platform
    if platform is None or platform.historian is None:
        raise EvidenceError("no platform historian in the evidence: params.platform_tag needs one")
    rows = platform.historian.history(
        p.text("platform_tag"), evidence.unix_time(low), evidence.unix_time(setup.end) + 1e-6
    )
    samples = [
        Sample(evidence.sim_time(row.ts), float(row.value), row.tag)
        for row in rows
        if row.value is not None and math.isfinite(row.value)
    ]
    return samples, []


def check_value_tracks_truth(
    evidence: Evidence, params: Mapping[str, Any], variant: Mapping[str, Any]
) -> CheckResult:
    """Values on ``topic`` (or in the historian as ``platform_tag``) follow ``signal``.

    Params: ``topic`` | ``platform_tag``; ``signal``; ``tolerance`` (absolute, in ``unit``);
    ``max_latency_s`` (2); ``min_coverage`` (0.9); ``window`` [start, end] (the whole run);
    ``unit`` (the tag's, else the signal's); ``tag`` (``device.tag`` the values come from:
    lets the diagnosis rebuild its Modbus registers); ``field`` ("value", for JSON
    payloads); ``max_gap_s`` (10: how long a value counts as current); ``min_samples`` (3).
    """
    from grading.checks.diagnosis import diagnose

    p = Params(CHECK, params, PARAMS)
    setup = _setup(evidence, p)
    min_coverage = p.number("min_coverage", 0.9, minimum=0.0)
    min_samples = int(p.number("min_samples", 3, minimum=1))
    samples, problems = _observed(evidence, p, setup)
    if not samples:
        return _nothing(evidence, p, setup, problems)
    truth = TruthTrack.load(
        evidence,
        setup.signal,
        setup.unit,
        setup.start - setup.max_gap - 300.0,
        setup.end,
        slack=setup.slack,
    )
    times = np.array([s.time for s in samples])
    values = np.array([s.value for s in samples])
    matched = truth.matches(times, values, setup.tolerance, setup.latency)
    share = coverage(list(times), list(matched), setup.start, setup.end, setup.max_gap)
    in_window = (times >= setup.start) & (times <= setup.end)
    rows = [
        {"t": round(float(t), 3), "value": float(v), "truth": truth.at(float(t)), "ok": bool(ok)}
        for t, v, ok in zip(times, values, matched, strict=True)
        if setup.start <= t <= setup.end
    ]
    misses = [r for r in rows if not r["ok"]]
    facts: dict[str, Any] = {
        "signal": setup.signal,
        "unit": setup.unit,
        "source": setup.what,
        "values": int(in_window.sum()),
        "matching": int((matched & in_window).sum()),
        "coverage": round(share, 4),
        "min_coverage": min_coverage,
        "tolerance": setup.tolerance,
        "max_latency_s": setup.latency,
        "window": [setup.start, setup.end],
        "first": excerpt(rows),
        "first_misses": excerpt(misses),
    }
    if problems:
        facts["unreadable"] = excerpt(problems)
    enough = int(in_window.sum()) >= min_samples
    if enough and share >= min_coverage:
        return outcome(
            CHECK,
            True,
            f"{setup.what} follows {setup.signal}: {share:.0%} of the window covered by values "
            f"within {fmt(setup.tolerance)} {setup.unit} of the truth",
            evidence=facts,
        )
    if not enough:
        message = (
            f"{setup.what}: only {int(in_window.sum())} readable value(s) in the window, "
            f"{min_samples} needed"
        )
    else:
        message = (
            f"{setup.what} does not follow {setup.signal}: values within "
            f"{fmt(setup.tolerance)} {setup.unit} of the truth cover {share:.0%} of the "
            f"window, {min_coverage:.0%} needed"
        )
    keep = in_window
    diagnosis = ""
    if int(keep.sum()) >= 2:
        found = diagnose(evidence, setup, truth, times[keep], values[keep])
        if found is not None:
            message = f"{message}; {found.headline}"
            diagnosis = found.explanation
            facts["hypothesis"] = found.name
            facts["hypothesis_share"] = round(found.share, 4)
            facts["hypotheses"] = found.tried
        else:
            diagnosis = _no_hypothesis(truth, times[keep], values[keep], setup)
    if problems and not diagnosis:
        diagnosis = f"{len(problems)} payload(s) carried no readable number: {problems[0]}"
    return outcome(CHECK, False, message, diagnosis=diagnosis, evidence=facts)


def _nothing(
    evidence: Evidence, p: Params, setup: TrackingSetup, problems: list[str]
) -> CheckResult:
    """No value at all: say what was there instead."""
    facts: dict[str, Any] = {"signal": setup.signal, "source": setup.what}
    if problems:
        facts["unreadable"] = excerpt(problems)
        return outcome(
            CHECK,
            False,
            f"{setup.what}: {len(problems)} message(s), none carrying a readable number",
            diagnosis=f"first: {problems[0]}. Publish the value as a number, plain or in "
            'a UNS JSON object ({"value": ..., ...}).',
            evidence=facts,
        )
    if p.has("platform_tag"):
        return outcome(
            CHECK,
            False,
            f"{setup.what}: the historian holds no value in the window",
            diagnosis="the platform stored nothing under that tag: is ingest subscribed to "
            "the right topic, and is the tag path spelled as the exercise asks?",
            evidence=facts,
        )
    topic = p.text("topic")
    if any(m.retain for m in evidence.messages(topic)):
        return outcome(
            CHECK,
            False,
            f"only an old retained value on {topic}: nothing was published during the run",
            diagnosis="the broker replayed a value retained before the run; your program did "
            "not publish while it was graded (is it running, connected, publishing?)",
            evidence=facts,
        )
    topics = evidence.topics()
    facts["topics_seen"] = excerpt(topics, 20)
    guess = did_you_mean(topic, topics)
    if topics:
        hint = f"nothing was published on {topic!r}; {len(topics)} other topic(s) were" + (
            f" — {guess}" if guess else f", e.g. {topics[0]!r}"
        )
    else:
        hint = "nothing at all was published on the bus during the run: is your program connected?"
    return outcome(
        CHECK,
        False,
        f"no message on {topic}",
        diagnosis=hint,
        evidence=facts,
    )


def _no_hypothesis(
    truth: TruthTrack, times: FloatArray, values: FloatArray, setup: TrackingSetup
) -> str:
    errors = np.array([v - truth.at(float(t)) for t, v in zip(times, values, strict=True)])
    errors = errors[np.isfinite(errors)]
    if len(errors) == 0:
        return "no truth to compare with in the window"
    return (
        f"no simple cause explains the values: the median error is {fmt(float(np.median(errors)))} "
        f"{setup.unit} (largest {fmt(float(errors[np.argmax(np.abs(errors))]))}); "
        "compare your values with the register map and the truth by hand"
    )
