"""Why a value does not track the truth: hypotheses tested against the truth record.

Each hypothesis turns the received values back into what they would be if the hypothesis
were the whole story, and counts the share of values that then match the truth (same
tolerance and latency allowance as the check). The one explaining at least
:data:`EXPLAINS` of the values wins (ties: the order below):

``stale``
    the value repeats while the truth moves (a publisher that never re-reads).
``word_order``
    the value is the device's registers decoded with another word/byte order (CDAB, BADC,
    DCBA): re-encode it with that order and decode it with the device's — the truth comes out.
``off_by_one``
    the value is decoded from the registers one address too early or too late: re-encode it,
    put its registers at the shifted addresses of the true register image (rebuilt from the
    truth for every tag of the device's table) and the tag whose most significant register
    was overwritten decodes to its own true value.
``unit``
    a unit of the same dimension (simlab.units) explains it: ``mm`` for ``m``, ``K`` for ``degC``...
``scale``
    a constant factor (10, 100, 1000, 0.1, ...): a gain applied twice or not at all.
``offset``
    a constant difference (the median one).
``wrong_signal``
    another plant signal of a compatible unit matches (the wrong register or node).
``late``
    the truth delayed by more than the allowance matches (polling too slowly, queueing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from devices.registermap import TagCodec
from grading.checks._common import fmt
from grading.checks.tracking import FloatArray, TrackingSetup, TruthTrack
from grading.evidence import Evidence, TagRef, convert_units
from simlab.errors import SimlabError
from simlab.scenario.devices import ModbusTagSpec
from simlab.units import UNITS

__all__ = ["EXPLAINS", "Finding", "diagnose"]

EXPLAINS: Final = 0.8
"""Share of the values a hypothesis must explain to be named."""

ORDERS: Final = ("ABCD", "CDAB", "BADC", "DCBA")
SCALES: Final = (10.0, 100.0, 1000.0, 1e4, 1e6, 0.1, 0.01, 0.001, 1e-4, 1e-6)
_GENERIC_FLOAT32: Final = ModbusTagSpec(table="input_register", address=0, type="float32")
_REGISTER_TABLES: Final = ("input_register", "holding_register")


@dataclass(frozen=True)
class Finding:
    """The hypothesis that explains the values best.

    ``headline`` goes into the check's message, ``explanation`` is its diagnosis, ``tried``
    maps every hypothesis tested to the share of values it explains.
    """

    name: str
    share: float
    headline: str
    explanation: str
    tried: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Candidate:
    name: str
    share: float
    headline: str
    explanation: str


def diagnose(
    evidence: Evidence,
    setup: TrackingSetup,
    truth: TruthTrack,
    times: FloatArray,
    values: FloatArray,
) -> Finding | None:
    """The hypothesis explaining at least :data:`EXPLAINS` of the values, or None."""
    candidates: list[_Candidate] = []
    tests = (_stale, _word_order, _off_by_one, _unit, _scale, _offset, _wrong_signal, _late)
    for test in tests:
        candidates.extend(test(evidence, setup, truth, times, values))
    tried = {c.name: round(c.share, 4) for c in candidates}
    best: _Candidate | None = None
    for candidate in candidates:  # first best wins: the tests are in order of preference
        if candidate.share >= EXPLAINS and (best is None or candidate.share > best.share + 1e-9):
            best = candidate
    if best is None:
        return None
    kind = best.name.split(":", 1)[0]
    return Finding(kind, best.share, best.headline, best.explanation, tried)


def _share(matched: np.ndarray[tuple[int], np.dtype[np.bool_]]) -> float:
    return float(matched.mean()) if len(matched) else 0.0


def _example(
    truth: TruthTrack,
    times: FloatArray,
    values: FloatArray,
    matched: np.ndarray[tuple[int], np.dtype[np.bool_]],
    setup: TrackingSetup,
) -> str:
    """One value the hypothesis explains, with the truth at its arrival."""
    index = int(np.argmax(matched)) if matched.any() else 0
    t = float(times[index])
    return (
        f"at t={t:.1f} s the value was {fmt(float(values[index]))} while the true "
        f"{truth.signal} was {fmt(truth.at(t))} {setup.unit}"
    )


# --- stale ----------------------------------------------------------------------------------


def _stale(
    evidence: Evidence,
    setup: TrackingSetup,
    truth: TruthTrack,
    times: FloatArray,
    values: FloatArray,
) -> list[_Candidate]:
    if len(values) < 3:
        return []
    repeats = np.abs(np.diff(values)) <= 1e-12
    span = (truth.times >= times[0] - setup.latency) & (truth.times <= times[-1])
    moving = truth.values[span]
    if len(moving) == 0 or float(np.ptp(moving)) <= 2 * setup.tolerance:
        return []
    share = _share(repeats)
    first_repeat = int(np.argmax(repeats)) if repeats.any() else 0
    stuck = float(values[-1])
    return [
        _Candidate(
            "stale",
            share,
            f"the value is stale: it stays at {fmt(stuck)} while the truth moves",
            f"{share:.0%} of the values repeat the previous one exactly (stuck at "
            f"{fmt(stuck)} {setup.unit} from t={float(times[first_repeat]):.1f} s) while the "
            f"true {truth.signal} moves between {fmt(float(np.min(moving)))} and "
            f"{fmt(float(np.max(moving)))} {setup.unit}: the publisher repeats an old value — "
            "read the source again before each publish (or check that the source is not frozen)",
        )
    ]


# --- word order -----------------------------------------------------------------------------


def _modbus_ref(evidence: Evidence, setup: TrackingSetup) -> TagRef | None:
    """The device tag whose Modbus registers carry the signal (the check's ``tag`` first)."""
    candidates = [setup.tag] if setup.tag is not None else []
    candidates += [r for r in evidence.tags() if r.signal == setup.signal]
    for ref in candidates:
        spec = ref.spec.modbus
        if spec is not None and spec.table in _REGISTER_TABLES and spec.type != "string":
            return ref
    return None


def _swap_words(right: str, wrong: str) -> str:
    pairs = {frozenset(("ABCD", "CDAB")), frozenset(("BADC", "DCBA"))}
    bytes_ = {frozenset(("ABCD", "BADC")), frozenset(("CDAB", "DCBA"))}
    key = frozenset((right, wrong))
    if key in pairs:
        return "the gateway swaps the two 16-bit words"
    if key in bytes_:
        return "the gateway swaps the two bytes of each register"
    return "the gateway reverses all the bytes (words and bytes swapped)"


def _word_order(
    evidence: Evidence,
    setup: TrackingSetup,
    truth: TruthTrack,
    times: FloatArray,
    values: FloatArray,
) -> list[_Candidate]:
    ref = _modbus_ref(evidence, setup)
    spec = ref.spec.modbus if ref is not None and ref.spec.modbus is not None else _GENERIC_FLOAT32
    tag_unit = evidence.tag_unit(ref) if ref is not None else setup.unit
    right = TagCodec(spec)
    found: list[_Candidate] = []
    for order in ORDERS:
        if order == spec.word_order:
            continue
        wrong = TagCodec(spec.model_copy(update={"word_order": order}))
        fixed = np.full(len(values), math.nan)
        for i, value in enumerate(values):
            try:
                served = wrong.encode(float(value))
                number = right.decode(served)
            except (SimlabError, ValueError, OverflowError):
                continue
            if isinstance(number, int | float) and not isinstance(number, bool):
                fixed[i] = convert_units(float(number), tag_unit or setup.unit, setup.unit)
        if np.allclose(fixed, values, equal_nan=True):
            continue  # this order changes nothing for this type (one register)
        matched = truth.matches(times, fixed, setup.tolerance, setup.latency)
        share = _share(matched)
        where = f" (the device serves {spec.word_order})" if ref is not None else ""
        register = (
            f"{ref.name}: {spec.table} {spec.address}, {spec.type}"
            if ref is not None
            else "float32"
        )
        index = int(np.argmax(matched)) if matched.any() else 0
        found.append(
            _Candidate(
                f"word_order:{order}",
                share,
                f"values match the truth decoded with word order {order}: "
                f"{_swap_words(spec.word_order, order)}",
                f"{share:.0%} of the values are the true value's registers ({register}) "
                f"decoded with word order {order}{where}: {_swap_words(spec.word_order, order)}. "
                f"E.g. the value {fmt(float(values[index]))} re-encoded as {order} and read as "
                f"{spec.word_order} is {fmt(float(fixed[index]))} {setup.unit}, the truth then "
                f"was {fmt(truth.at(float(times[index])))} {setup.unit}. Decode with the register "
                "map's word "
                "order (pymodbus: word_order/byteorder, mbpoll: -B).",
            )
        )
    return found


# --- off by one register ----------------------------------------------------------------------


def _significant(spec: ModbusTagSpec) -> int:
    """Index of the register holding the most significant byte of the value."""
    count = spec.registers()
    return count - 1 if spec.word_order in ("CDAB", "DCBA") and count > 1 else 0


def _table_tags(evidence: Evidence, ref: TagRef) -> list[TagRef]:
    spec = ref.spec.modbus
    assert spec is not None
    return [
        r
        for r in evidence.tags()
        if r.device == ref.device
        and r.spec.modbus is not None
        and r.spec.modbus.table == spec.table
        and r.spec.modbus.type != "string"
    ]


def _image(evidence: Evidence, tags: Sequence[TagRef], time: float) -> dict[int, int | None]:
    """Address -> served register at ``time`` rebuilt from the truth (None: value unknown)."""
    image: dict[int, int | None] = {}
    for ref in tags:
        spec = ref.spec.modbus
        assert spec is not None
        value = evidence.tag_value_at(ref, time)
        registers: list[int] | None = None
        if value is not None and math.isfinite(value):
            try:
                registers = TagCodec(spec).encode(value, clamp=True)
            except (SimlabError, ValueError, OverflowError):
                registers = None
        for i in range(spec.registers()):
            image[spec.address + i] = registers[i] if registers is not None else None
    return image


def _close(decoded: float, true: float, ref: TagRef, tolerance: float) -> bool:
    sensor = ref.spec.sensor
    slack = 5 * sensor.noise + 2 * sensor.resolution if sensor is not None else 0.0
    return abs(decoded - true) <= max(tolerance, 0.02 * abs(true) + slack + 1e-9)


def _off_by_one(
    evidence: Evidence,
    setup: TrackingSetup,
    truth: TruthTrack,
    times: FloatArray,
    values: FloatArray,
) -> list[_Candidate]:
    ref = _modbus_ref(evidence, setup)
    if ref is None or ref.spec.modbus is None:
        return []
    spec = ref.spec.modbus
    tags = _table_tags(evidence, ref)
    codecs = {r.name: TagCodec(r.spec.modbus) for r in tags if r.spec.modbus is not None}
    own = codecs[ref.name]
    tag_unit = evidence.tag_unit(ref) or setup.unit
    count = spec.registers()
    found: list[_Candidate] = []
    for shift in (-1, 1):
        first = spec.address + shift
        window = range(first, first + count)
        tested = matched = 0
        mapped = True
        for time, value in zip(times, values, strict=True):
            image = _image(evidence, tags, float(time))
            if any(a not in image for a in window):
                mapped = False  # the device refuses a read across unmapped addresses
                break
            try:
                read = own.encode(convert_units(float(value), setup.unit, tag_unit), clamp=True)
            except (SimlabError, ValueError, OverflowError):
                tested += 1
                continue
            patched = dict(image)
            for address, register in zip(window, read, strict=True):
                patched[address] = register
            verdicts: list[bool] = []
            for other in tags:
                other_spec = other.spec.modbus
                assert other_spec is not None
                top = other_spec.address + _significant(other_spec)
                if top not in window:
                    continue
                span = range(other_spec.address, other_spec.address + other_spec.registers())
                registers = [patched.get(a) for a in span]
                true = evidence.tag_value_at(other, float(time))
                if true is None or any(r is None for r in registers):
                    continue
                decoded = codecs[other.name].decode([r for r in registers if r is not None])
                if isinstance(decoded, str):
                    continue
                tolerance = (
                    convert_units(setup.tolerance, setup.unit, tag_unit) if other is ref else 0.0
                )
                verdicts.append(_close(float(decoded), true, other, tolerance))
            if verdicts:
                tested += 1
                matched += all(verdicts)
        if not mapped or tested == 0:
            continue
        share = matched / tested
        direction = "late" if shift > 0 else "early"
        table = spec.table.replace("_", " ")
        found.append(
            _Candidate(
                f"off_by_one:{shift:+d}",
                share,
                f"values match {table}s {first}..{first + count - 1} instead of "
                f"{spec.address}..{spec.address + count - 1}: the read is off by one register",
                f"{share:.0%} of the values are what {table}s {first}..{first + count - 1} "
                f"decode to, half of {ref.name} and half of its neighbour, not "
                f"{spec.address}..{spec.address + count - 1} where {ref.name} lives: the read "
                f"starts one register too {direction}. Modbus addresses are 0-based on the wire; "
                "the classic 30001/40001 notation counts from 1 (30001 is input register 0).",
            )
        )
    return found


# --- unit, scale, offset -----------------------------------------------------------------------


def _unit(
    evidence: Evidence,
    setup: TrackingSetup,
    truth: TruthTrack,
    times: FloatArray,
    values: FloatArray,
) -> list[_Candidate]:
    expected = UNITS.get(setup.unit)
    if expected is None:
        return []
    found: list[_Candidate] = []
    for symbol, unit in UNITS.items():
        if symbol == setup.unit or unit.dimension != expected.dimension:
            continue
        fixed = np.array([convert_units(float(v), symbol, setup.unit) for v in values])
        matched = truth.matches(times, fixed, setup.tolerance, setup.latency)
        share = _share(matched)
        factor = expected.scale / unit.scale
        if unit.offset == expected.offset:
            times_text = f" (×{fmt(factor)})"
        else:
            times_text = f" (offset {fmt(expected.offset - unit.offset)})"
        found.append(
            _Candidate(
                f"unit:{symbol}",
                share,
                f"values are in {symbol}, not {setup.unit}{times_text}",
                f"{share:.0%} of the values match the truth once read as {symbol} and converted "
                f"to {setup.unit}{times_text}: {_example(truth, times, values, matched, setup)}. "
                f"Convert to {setup.unit} before publishing (or publish the unit you use).",
            )
        )
    return found


def _scale(
    evidence: Evidence,
    setup: TrackingSetup,
    truth: TruthTrack,
    times: FloatArray,
    values: FloatArray,
) -> list[_Candidate]:
    found: list[_Candidate] = []
    for factor in SCALES:
        matched = truth.matches(times, values / factor, setup.tolerance, setup.latency)
        share = _share(matched)
        found.append(
            _Candidate(
                f"scale:{factor:g}",
                share,
                f"values are {fmt(factor)} × the truth: wrong scale",
                f"{share:.0%} of the values are {fmt(factor)} times the truth "
                f"({_example(truth, times, values, matched, setup)}): a gain is applied twice or "
                "not "
                "at all — check the register map's gain (raw = value × gain) and the unit.",
            )
        )
    return found


def _offset(
    evidence: Evidence,
    setup: TrackingSetup,
    truth: TruthTrack,
    times: FloatArray,
    values: FloatArray,
) -> list[_Candidate]:
    diffs = np.array([v - truth.at(float(t)) for t, v in zip(times, values, strict=True)])
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) == 0:
        return []
    offset = float(np.median(diffs))  # biased by the sensor's lag while the truth moves
    if abs(offset) <= setup.tolerance:
        return []
    # the offsets explaining the most values form a plateau: its middle is the best estimate
    step = setup.tolerance / 10 if setup.tolerance > 0 else abs(offset) / 1000
    grid = offset + step * np.arange(-40, 41)
    shares = np.array(
        [_share(truth.matches(times, values - c, setup.tolerance, setup.latency)) for c in grid]
    )
    share = float(shares.max())
    offset = float(np.median(grid[shares >= share - 0.01]))
    matched = truth.matches(times, values - offset, setup.tolerance, setup.latency)
    if setup.tolerance > 0:  # shown to the tolerance's precision
        offset = round(offset / setup.tolerance) * setup.tolerance
    return [
        _Candidate(
            "offset",
            share,
            f"values are offset by about {offset:+.3g} {setup.unit} from the truth",
            f"{share:.0%} of the values equal the truth {offset:+.3g} {setup.unit} "
            f"({_example(truth, times, values, matched, setup)}): a constant offset — check the "
            "register map's offset (value = raw / gain + offset) or a zero calibration.",
        )
    ]


# --- wrong signal, late -------------------------------------------------------------------------


def _wrong_signal(
    evidence: Evidence,
    setup: TrackingSetup,
    truth: TruthTrack,
    times: FloatArray,
    values: FloatArray,
) -> list[_Candidate]:
    expected = UNITS.get(setup.unit)
    found: list[_Candidate] = []
    for signal in evidence.truth.names:
        unit = evidence.truth.units[signal]
        if signal == setup.signal or unit not in UNITS or expected is None:
            continue
        if UNITS[unit].dimension != expected.dimension:
            continue
        other = TruthTrack.load(
            evidence,
            signal,
            setup.unit,
            float(times[0]) - setup.latency - 1,
            float(times[-1]),
            slack=truth.slack,
        )
        if other.spread <= 2 * setup.tolerance and truth.spread <= 2 * setup.tolerance:
            continue  # two flat signals prove nothing
        share = _share(other.matches(times, values, setup.tolerance, setup.latency))
        found.append(
            _Candidate(
                f"wrong_signal:{signal}",
                share,
                f"values follow {signal}, not {setup.signal}",
                f"{share:.0%} of the values match the true {signal}, not {setup.signal}: "
                "you read the wrong register or node — check the address in the register map "
                "or the node id.",
            )
        )
    return found


def _late(
    evidence: Evidence,
    setup: TrackingSetup,
    truth: TruthTrack,
    times: FloatArray,
    values: FloatArray,
) -> list[_Candidate]:
    if truth.spread <= 2 * setup.tolerance:
        return []
    span = float(times[-1] - times[0])
    coarse = [d for d in (1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300) if d <= span]
    if not coarse:
        return []
    delays = [setup.latency + d for d in coarse]
    shares = [
        _share(truth.matches(times, values, setup.tolerance, setup.latency, delay=d))
        for d in delays
    ]
    best = int(np.argmax(shares))
    low = delays[best - 1] if best > 0 else setup.latency
    high = delays[best + 1] if best + 1 < len(delays) else delays[best]
    fine = np.arange(low, high + 0.25, 0.25)
    fine_shares = [
        _share(truth.matches(times, values, setup.tolerance, setup.latency, delay=float(d)))
        for d in fine
    ]
    share = max(*fine_shares, shares[best])
    plateau = [float(d) for d, x in zip(fine, fine_shares, strict=True) if x >= share - 0.02]
    if not plateau:
        plateau = [delays[best]]
    # a value published D s late matches every delay of [D - latency, D]: take the middle
    delay = float(np.median(plateau))
    lag = delay + setup.latency / 2
    return [
        _Candidate(
            "late",
            share,
            f"values are late: they match the truth of about {lag:.3g} s earlier",
            f"{share:.0%} of the values match the truth of about {lag:.3g} s before they "
            f"arrived; {fmt(setup.latency, 3)} s are allowed. Publish as soon as you read, poll "
            "faster, and do not queue old values.",
        )
    ]
