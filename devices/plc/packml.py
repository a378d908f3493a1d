"""PackML state machine (ISA-TR88.00.02) of a discrete line, as a transition table.

The machine knows nothing about tags: each scan it is given the triggers seen in that scan
(commands and conditions) and the scan time; :class:`~devices.plc.blocks.PackMLBlock`
turns tags into triggers and the state back into tags.
"""

from __future__ import annotations

from enum import Enum, IntEnum, auto

from simlab.scenario.devices import PackMLSpec

__all__ = ["TIME_EPSILON", "TRANSITIONS", "PackMLMachine", "PackMLState", "Trigger", "advance"]

TIME_EPSILON = 1e-9
"""s; absorbs the drift of summed scan times (ten scans of 0.1 s add up to 0.9999999999999999)."""


def advance(elapsed: float, dt: float, duration: float) -> float:
    """``elapsed + dt``, capped at ``duration`` and snapped onto it within :data:`TIME_EPSILON`.

    A timer has run out exactly when the result equals ``duration``.
    """
    total = elapsed + dt
    return duration if total >= duration - TIME_EPSILON else total


class PackMLState(IntEnum):
    """PackTags ``StateCurrent`` codes of ISA-TR88.00.02."""

    CLEARING = 1
    STOPPED = 2
    STARTING = 3
    IDLE = 4
    SUSPENDED = 5
    EXECUTE = 6
    STOPPING = 7
    ABORTING = 8
    ABORTED = 9
    HOLDING = 10
    HELD = 11
    UNHOLDING = 12
    SUSPENDING = 13
    UNSUSPENDING = 14
    RESETTING = 15
    COMPLETING = 16
    COMPLETE = 17


class Trigger(Enum):
    """What can move the machine, in priority order: in one scan the first that applies wins."""

    ABORT = auto()  # abort command or abort_when condition
    STOP = auto()
    HOLD_CONDITION = auto()  # hold_when holds
    HOLD = auto()
    UNHOLD = auto()
    START = auto()
    RESET = auto()
    CLEAR = auto()
    DONE = auto()  # the acting state's time has run out


_S = PackMLState
_T = Trigger
_STOPPABLE = (_S.IDLE, _S.STARTING, _S.EXECUTE, _S.HOLDING, _S.HELD, _S.UNHOLDING, _S.RESETTING)
_ABORTABLE = tuple(s for s in _S if s not in (_S.ABORTING, _S.ABORTED))

TRANSITIONS: dict[tuple[PackMLState, Trigger], PackMLState] = {
    (_S.STOPPED, _T.RESET): _S.RESETTING,
    (_S.RESETTING, _T.DONE): _S.IDLE,
    (_S.IDLE, _T.START): _S.STARTING,
    (_S.STARTING, _T.DONE): _S.EXECUTE,
    (_S.EXECUTE, _T.HOLD): _S.HOLDING,
    (_S.EXECUTE, _T.HOLD_CONDITION): _S.HOLDING,
    (_S.HOLDING, _T.DONE): _S.HELD,
    # While hold_when holds the line stays held: this entry outranks UNHOLD.
    (_S.HELD, _T.HOLD_CONDITION): _S.HELD,
    (_S.HELD, _T.UNHOLD): _S.UNHOLDING,
    (_S.UNHOLDING, _T.DONE): _S.EXECUTE,
    (_S.STOPPING, _T.DONE): _S.STOPPED,
    (_S.ABORTING, _T.DONE): _S.ABORTED,
    (_S.ABORTED, _T.CLEAR): _S.CLEARING,
    (_S.CLEARING, _T.DONE): _S.STOPPED,
    **{(state, _T.STOP): _S.STOPPING for state in _STOPPABLE},
    **{(state, _T.ABORT): _S.ABORTING for state in _ABORTABLE},
}
"""(state, trigger) -> next state; a pair not listed leaves the state as it is."""

_FIXED_DURATIONS = {_S.HOLDING: 0.5, _S.UNHOLDING: 0.5, _S.ABORTING: 0.5, _S.CLEARING: 0.5}


class PackMLMachine:
    """The state and the time spent in it; at most one transition per scan.

    An acting state (Resetting, Starting, ...) fires :attr:`Trigger.DONE` once it has lasted
    its duration, counted from the scan that entered it: entered at scan ``k``, it is left at
    scan ``k + duration / dt``.
    """

    def __init__(self, spec: PackMLSpec) -> None:
        self.state = _S.IDLE if spec.initial_state == "idle" else _S.STOPPED
        self._elapsed = 0.0
        self._durations = {
            **_FIXED_DURATIONS,
            _S.RESETTING: spec.resetting_time,
            _S.STARTING: spec.starting_time,
            _S.STOPPING: spec.stopping_time,
        }

    def step(self, dt: float, triggers: set[Trigger]) -> PackMLState:
        """Advance one scan of ``dt`` s with the triggers seen in it; return the new state."""
        duration = self._durations.get(self.state)
        if duration is not None:
            self._elapsed = advance(self._elapsed, dt, duration)
            if self._elapsed == duration:
                triggers = triggers | {_T.DONE}
        for trigger in Trigger:
            target = TRANSITIONS.get((self.state, trigger))
            if trigger in triggers and target is not None:
                self.state = target
                self._elapsed = 0.0
                break
        return self.state
