"""Logic blocks of a simulated PLC: PID, hysteresis, interlock, compare, timer, counter, PackML.

Each block is built from its scenario spec by :func:`build_block` and is scanned once per PLC
scan, in declared order, with the scan time and the PLC's tag table. Blocks read and write
tags by name: numeric tags hold floats and bool tags bools. Command bits (resets, PackML
commands) are consumed: the block writes them back to False once it has seen them.

Timers start at 0 on the scan that sees their input change and add ``dt`` on every later
scan, so a 1 s timer scanned every 0.1 s runs out exactly 10 scans after that edge.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Protocol

from devices.plc.packml import PackMLMachine, PackMLState, Trigger, advance
from simlab.scenario.devices import (
    CompareSpec,
    Condition,
    CounterSpec,
    HysteresisSpec,
    InterlockSpec,
    LogicSpec,
    PackMLSpec,
    PidSpec,
    TimerSpec,
)

__all__ = [
    "Block",
    "CompareBlock",
    "CounterBlock",
    "HysteresisBlock",
    "InterlockBlock",
    "PackMLBlock",
    "PidBlock",
    "TagValues",
    "TimerBlock",
    "build_block",
    "evaluate",
]

TagValues = dict[str, float | bool | str]
"""The PLC's tag table: tag name -> current value."""

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def evaluate(condition: Condition, tags: TagValues) -> bool:
    """Whether ``condition`` holds for the current tag values (a bool tag reads as 0 or 1)."""
    return _COMPARISONS[condition.op](float(tags[condition.tag]), condition.value)


def _consume(tags: TagValues, tag: str | None) -> bool:
    """Whether the command bit ``tag`` is set; a set bit is cleared (the PLC consumes it)."""
    if tag is None or not bool(tags[tag]):
        return False
    tags[tag] = False
    return True


class Block(Protocol):
    """A logic block: one :meth:`scan` per PLC scan."""

    name: str

    def scan(self, dt: float, tags: TagValues) -> None:
        """One PLC scan; ``dt`` is the scan time in s."""


class PidBlock:
    """PID controller, ISA form, derivative on measurement (no kick on setpoint steps).

    ``out = kp * (e + I + D)`` clamped to ``out_range``, with ``e = sp - pv`` (reverse) or
    ``pv - sp`` (direct), ``I = integral of e dt / ti`` and ``D = -td * d(pv)/dt`` (sign
    following ``e``). The integral is kept in output units (``kp * I``), so manual tracking
    needs no division by ``kp``.

    Anti-windup by conditional integration (clamping): a scan's integration step is dropped
    when, with it, the unclamped output would be beyond a limit and the step pushes that way.

    With ``enable`` False the block is in manual: it leaves ``out`` to the operator and sets
    its integral so that ``kp * (e + I + D)`` equals the current (clamped) ``out``; back in
    auto the output continues from there (bumpless). With ``ti == 0`` that term is a
    manual-reset bias that auto mode does not change.

    A non-finite pv or sp holds the output: the scan changes nothing.
    """

    def __init__(self, spec: PidSpec) -> None:
        self.name = spec.name
        self._spec = spec
        self._sign = 1.0 if spec.direction == "reverse" else -1.0
        self._integral = 0.0  # kp * I, in output units
        self._last_pv: float | None = None  # None: no derivative on the next scan

    def scan(self, dt: float, tags: TagValues) -> None:
        """Compute the output, or track it in manual."""
        spec = self._spec
        pv, sp = float(tags[spec.pv]), float(tags[spec.sp])
        if not (math.isfinite(pv) and math.isfinite(sp)):
            self._last_pv = None
            return
        error = self._sign * (sp - pv)
        slope = 0.0 if self._last_pv is None else (pv - self._last_pv) / dt
        self._last_pv = pv
        p_plus_d = spec.kp * (error - self._sign * spec.td * slope)  # kp * (e + D)
        if spec.enable is not None and not bool(tags[spec.enable]):
            self._integral = self._clamp(float(tags[spec.out])) - p_plus_d
            return
        step = spec.kp * error * dt / spec.ti if spec.ti > 0 else 0.0
        low, high = spec.out_range
        raw = p_plus_d + self._integral + step
        if not ((raw > high and step > 0) or (raw < low and step < 0)):
            self._integral += step
        tags[spec.out] = self._clamp(p_plus_d + self._integral)

    def _clamp(self, value: float) -> float:
        low, high = self._spec.out_range
        return min(max(value, low), high)


class HysteresisBlock:
    """On/off control with a dead band; the state holds between ``low`` and ``high``.

    ``out`` gets True/False if it currently holds a bool, else ``on_value``/0.0.
    """

    def __init__(self, spec: HysteresisSpec) -> None:
        self.name = spec.name
        self._spec = spec
        self._on = False

    def scan(self, dt: float, tags: TagValues) -> None:
        """Switch on or off at the band's edges and write the output."""
        spec = self._spec
        pv = float(tags[spec.pv])
        below, above = pv < spec.low, pv > spec.high
        turn_on, turn_off = (below, above) if spec.on_when == "below" else (above, below)
        self._on = turn_on or (self._on and not turn_off)
        current = tags[spec.out]
        if isinstance(current, bool):
            tags[spec.out] = self._on
        else:
            tags[spec.out] = spec.on_value if self._on else 0.0


class InterlockBlock:
    """Forces the ``trips`` tags off (False or 0.0) on every scan while active.

    Without latch, active follows ``when``. With latch, a trip stays active until ``when``
    no longer holds and the ``reset`` command is seen; the reset bit is consumed whenever it
    is seen, so a reset pressed while the condition still holds does nothing (a latched
    interlock without a reset tag stays active for good).
    """

    def __init__(self, spec: InterlockSpec) -> None:
        self.name = spec.name
        self._spec = spec
        self._active = False

    def scan(self, dt: float, tags: TagValues) -> None:
        """Update the active state, then force the trips and write ``active``."""
        spec = self._spec
        condition = evaluate(spec.when, tags)
        if spec.latch:
            reset = _consume(tags, spec.reset)
            self._active = condition or (self._active and not reset)
        else:
            self._active = condition
        if self._active:
            for trip in spec.trips:
                tags[trip] = False if isinstance(tags[trip], bool) else 0.0
        if spec.active is not None:
            tags[spec.active] = self._active


class CompareBlock:
    """Sets the bool tag ``out`` to whether ``when`` holds, on every scan."""

    def __init__(self, spec: CompareSpec) -> None:
        self.name = spec.name
        self._spec = spec

    def scan(self, dt: float, tags: TagValues) -> None:
        """Evaluate the condition into ``out``."""
        tags[self._spec.out] = evaluate(self._spec.when, tags)


class TimerBlock:
    """IEC 61131-3 timer: TON (on delay), TOF (off delay) or TP (non-retriggerable pulse).

    ``elapsed`` stops at ``preset``; it returns to 0 when TON's input falls, TOF's input
    rises, or TP's pulse is over and its input is False.
    """

    def __init__(self, spec: TimerSpec) -> None:
        self.name = spec.name
        self._spec = spec
        self._output = False
        self._elapsed = 0.0
        self._last_input = False
        self._logic: Callable[[bool, float], None] = {
            "ton": self._on_delay,
            "tof": self._off_delay,
            "tp": self._pulse,
        }[spec.kind]

    def scan(self, dt: float, tags: TagValues) -> None:
        """Run the timer on the input and write the output and elapsed time."""
        spec = self._spec
        value = bool(tags[spec.input])
        self._logic(value, dt)
        self._last_input = value
        tags[spec.output] = self._output
        if spec.elapsed is not None:
            tags[spec.elapsed] = self._elapsed

    def _run(self, dt: float) -> bool:
        """Add ``dt``; True once the preset is reached."""
        self._elapsed = advance(self._elapsed, dt, self._spec.preset)
        return self._elapsed == self._spec.preset

    def _on_delay(self, value: bool, dt: float) -> None:
        if not value:
            self._elapsed, self._output = 0.0, False
        elif self._last_input:
            self._output = self._run(dt)

    def _off_delay(self, value: bool, dt: float) -> None:
        if value:
            self._elapsed, self._output = 0.0, True
        elif self._output and not self._last_input:
            self._output = not self._run(dt)

    def _pulse(self, value: bool, dt: float) -> None:
        if self._output:
            self._output = not self._run(dt)
        elif value and not self._last_input:
            self._elapsed, self._output = 0.0, True
        if not (self._output or value):
            self._elapsed = 0.0


class CounterBlock:
    """IEC 61131-3 counter: CTU counts rising edges of ``input`` up, CTD down.

    The ``reset`` tag is a level and outranks counting: CTU goes to 0, CTD to ``preset``
    (CTD also starts at ``preset``). Like IEC's CTD, the count may go below 0.
    ``done``: count >= preset for CTU (never with preset 0), count <= 0 for CTD.
    """

    def __init__(self, spec: CounterSpec) -> None:
        self.name = spec.name
        self._spec = spec
        self._up = spec.kind == "ctu"
        self._start = 0 if self._up else spec.preset
        self._count = self._start
        self._last_input = False

    def scan(self, dt: float, tags: TagValues) -> None:
        """Count an edge or reset, then write the count and done."""
        spec = self._spec
        value = bool(tags[spec.input])
        if spec.reset is not None and bool(tags[spec.reset]):
            self._count = self._start
        elif value and not self._last_input:
            self._count += 1 if self._up else -1
        self._last_input = value
        tags[spec.count] = float(self._count)
        if spec.done is not None:
            tags[spec.done] = (self._count >= spec.preset > 0) if self._up else (self._count <= 0)


class PackMLBlock:
    """Drives a :class:`~devices.plc.packml.PackMLMachine` from tags.

    Every command bit seen True is consumed (written False), whether or not it moves the
    machine. Writes ``state`` (the state code as a float) and ``execute_output`` (True
    exactly in Execute) on every scan.
    """

    def __init__(self, spec: PackMLSpec) -> None:
        self.name = spec.name
        self._spec = spec
        self._machine = PackMLMachine(spec)
        commands = (
            (spec.start, Trigger.START),
            (spec.stop, Trigger.STOP),
            (spec.reset, Trigger.RESET),
            (spec.hold, Trigger.HOLD),
            (spec.unhold, Trigger.UNHOLD),
            (spec.abort, Trigger.ABORT),
            (spec.clear, Trigger.CLEAR),
        )
        self._commands = [(tag, trigger) for tag, trigger in commands if tag is not None]
        conditions = ((spec.abort_when, Trigger.ABORT), (spec.hold_when, Trigger.HOLD_CONDITION))
        self._conditions = [(cond, trigger) for cond, trigger in conditions if cond is not None]

    def scan(self, dt: float, tags: TagValues) -> None:
        """Consume commands, evaluate conditions, step the machine, write its outputs."""
        triggers: set[Trigger] = set()
        for tag, trigger in self._commands:
            if _consume(tags, tag):
                triggers.add(trigger)
        triggers.update(trigger for cond, trigger in self._conditions if evaluate(cond, tags))
        state = self._machine.step(dt, triggers)
        tags[self._spec.state] = float(state)
        tags[self._spec.execute_output] = state is PackMLState.EXECUTE


def build_block(spec: LogicSpec) -> Block:
    """The block that runs ``spec``."""
    match spec:
        case PidSpec():
            return PidBlock(spec)
        case HysteresisSpec():
            return HysteresisBlock(spec)
        case InterlockSpec():
            return InterlockBlock(spec)
        case CompareSpec():
            return CompareBlock(spec)
        case TimerSpec():
            return TimerBlock(spec)
        case CounterSpec():
            return CounterBlock(spec)
        case PackMLSpec():
            return PackMLBlock(spec)
