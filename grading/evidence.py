"""What checks may look at: the lab's truth and audit, the bus, the platform, the submission.

:class:`Evidence` bundles everything one grading run observed, and nothing a submission
says about itself: the truth record (true plant values and events), the endpoints' session
audit, the messages recorded on the bus (:class:`~simlab.bus.recorder.BusRecorder`), the
platform's historian and alarm journal, the answers file, and how the apprentice's program
ran. Build it from a finished lab with :meth:`Evidence.from_lab`.

Times
    Everything a check compares is in the lab's *simulated* seconds since the scenario's
    epoch (``lab.time``): truth samples, audit events, fault events, bus arrival times.
    The platform stamps samples and journal entries in Unix seconds of the same simulated
    time; :meth:`Evidence.sim_time` and :meth:`Evidence.unix_time` convert.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from devices.endpoints.audit import SessionAudit
from devices.faults import FaultEvent
from grading.model import GradingError
from simlab.bus.recorder import BusRecorder, RecordedMessage, topic_matches
from simlab.platform.alarms import AlarmEngine
from simlab.platform.historian import Historian
from simlab.scenario.devices import TagSpec
from simlab.scenario.model import Scenario
from simlab.truth import TruthEvent, TruthRecorder
from simlab.units import UNITS

if TYPE_CHECKING:
    from simlab.lab import Lab

__all__ = [
    "AnswersFile",
    "Evidence",
    "EvidenceError",
    "PlatformEvidence",
    "ProgramRun",
    "TagRef",
    "answers_source",
    "convert_units",
    "read_answers",
]


class EvidenceError(GradingError):
    """Evidence a check needs is missing or cannot be read (no such signal, tag, answers file)."""


@dataclass(frozen=True)
class ProgramRun:
    """How the apprentice's program ran.

    ``exit_status`` is ``None`` when the program did not finish by itself (killed at its
    time limit, or could not start); ``timed_out`` says it was stopped at ``time_limit_s``.
    """

    exit_status: int | None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    duration_s: float | None = None
    time_limit_s: float | None = None


@dataclass(frozen=True)
class PlatformEvidence:
    """The mini platform of the run: its historian and its alarm engine (either may be None)."""

    historian: Historian | None = None
    alarms: AlarmEngine | None = None


@dataclass(frozen=True)
class TagRef:
    """A ``device.tag`` of the scenario, with the plant signal it measures or drives."""

    device: str
    spec: TagSpec
    signal: str | None

    @property
    def name(self) -> str:
        """``device.tag``."""
        return f"{self.device}.{self.spec.name}"


@dataclass(frozen=True)
class Evidence:
    """Everything a check may look at; see the module docstring for times.

    ``start_time``/``end_time`` bound the graded run in simulated seconds; ``bus`` holds
    the recorded messages in arrival order; ``retained`` the retained messages a fresh
    subscriber got at the end (``None`` when nobody asked the broker); ``faults`` the fault
    engine's start/end events; ``answers`` the parsed answers file (``None`` when there is
    none); ``program`` how the apprentice's program ran (``None`` when the exercise has no
    program, or it was not run).
    """

    truth: TruthRecorder
    audit: SessionAudit
    scenario: Scenario
    epoch: datetime
    end_time: float
    start_time: float = 0.0
    bus: Sequence[RecordedMessage] = ()
    retained: Mapping[str, RecordedMessage] | None = None
    faults: Sequence[FaultEvent] = ()
    platform: PlatformEvidence | None = None
    answers: Mapping[str, Any] | None = None
    program: ProgramRun | None = None
    _tags: dict[str, TagRef] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.epoch.utcoffset() is None:
            raise ValueError("the evidence epoch must carry a time zone (UTC)")
        for device in self.scenario.devices:
            for tag in device.tags:
                ref = TagRef(device.name, tag, tag.signal or tag.drives)
                self._tags[ref.name] = ref

    @classmethod
    def from_lab(
        cls,
        lab: Lab,
        *,
        bus: BusRecorder | Sequence[RecordedMessage] = (),
        retained: Mapping[str, RecordedMessage] | None = None,
        platform: PlatformEvidence | None = None,
        answers: Mapping[str, Any] | None = None,
        program: ProgramRun | None = None,
        start_time: float = 0.0,
    ) -> Evidence:
        """The evidence of a lab at its current time (call it when the run is over).

        A :class:`BusRecorder` given as ``bus`` contributes its messages and, unless
        ``retained`` is given, its last retained snapshot.
        """
        if isinstance(bus, BusRecorder):
            if retained is None:
                retained = bus.retained_snapshot
            messages: Sequence[RecordedMessage] = bus.all
        else:
            messages = list(bus)
        return cls(
            truth=lab.truth,
            audit=lab.audit,
            scenario=lab.scenario,
            epoch=lab.clock.epoch,
            start_time=start_time,
            end_time=lab.time,
            bus=messages,
            retained=retained,
            faults=list(lab.faults.events),
            platform=platform,
            answers=answers,
            program=program,
        )

    # --- time -------------------------------------------------------------------------------

    def unix_time(self, sim_time: float) -> float:
        """Unix seconds of a simulated instant (what the platform stamps)."""
        return self.epoch.timestamp() + sim_time

    def sim_time(self, unix_time: float) -> float:
        """Simulated seconds of a Unix timestamp (platform samples, journal entries)."""
        return unix_time - self.epoch.timestamp()

    # --- bus --------------------------------------------------------------------------------

    def messages(self, topic_filter: str = "#") -> list[RecordedMessage]:
        """Recorded bus messages matching the MQTT ``topic_filter``, in arrival order."""
        return [m for m in self.bus if topic_matches(topic_filter, m.topic)]

    def topics(self) -> list[str]:
        """Distinct recorded topics, in order of first arrival."""
        return list(dict.fromkeys(m.topic for m in self.bus))

    # --- truth ------------------------------------------------------------------------------

    def has_signal(self, signal: str) -> bool:
        """Whether the truth records plant signal ``signal``."""
        return signal in self.truth.column

    def signal_unit(self, signal: str) -> str:
        """The unit of plant signal ``signal``; :class:`EvidenceError` when there is none."""
        self._require_signal(signal)
        return self.truth.units[signal]

    def signal_series(
        self, signal: str, start: float = -math.inf, end: float = math.inf
    ) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]:
        """Times and true values of ``signal`` in ``[start, end]``, with the value held at
        ``start`` prepended (at ``start``) when a sample precedes the window."""
        self._require_signal(signal)
        times, values = self.truth.window(signal, start, end)
        if math.isfinite(start):
            before = self.truth.value_at(signal, start)
            if not math.isnan(before) and (len(times) == 0 or times[0] > start):
                times = np.concatenate(([start], times))
                values = np.concatenate(([before], values))
        return times, values

    def value_at(self, signal: str, time: float) -> float:
        """The true value of ``signal`` at ``time`` (NaN before the first sample)."""
        self._require_signal(signal)
        return self.truth.value_at(signal, time)

    def _require_signal(self, signal: str) -> None:
        if signal not in self.truth.column:
            from simlab.scenario.checks import did_you_mean

            guess = did_you_mean(signal, self.truth.names)
            raise EvidenceError(
                f"no plant signal {signal!r} in the truth record. {guess} "
                f"Signals: {', '.join(self.truth.names)}"
            )

    def events(self, kind: str | None = None) -> list[TruthEvent]:
        """Truth events (``write``, ``fault_ignored``, ...), oldest first."""
        return [e for e in self.truth.events if kind is None or e.kind == kind]

    # --- tags -------------------------------------------------------------------------------

    def tag(self, ref: str) -> TagRef:
        """The scenario tag ``device.tag``; :class:`EvidenceError` (with a guess) if none."""
        if ref in self._tags:
            return self._tags[ref]
        from simlab.scenario.checks import did_you_mean

        guess = did_you_mean(ref, self._tags)
        raise EvidenceError(
            f"no tag {ref!r} in scenario {self.scenario.name!r}. {guess} "
            "Write tags as 'device.tag', e.g. 'plc1.level'."
        )

    def tags(self) -> list[TagRef]:
        """Every tag of the scenario's devices."""
        return list(self._tags.values())

    def tag_unit(self, ref: TagRef) -> str:
        """The unit a tag's values are in: its own, else its signal's, else none ('')."""
        if ref.spec.unit is not None:
            return ref.spec.unit
        if ref.signal is not None and ref.signal in self.truth.units:
            return self.truth.units[ref.signal]
        return ""

    def tag_value_at(self, ref: TagRef, time: float) -> float | None:
        """The true value of a tag at ``time``, in the tag's unit, from the evidence alone.

        A tag bound to a signal (``signal`` or ``drives``) is that signal converted to the
        tag's unit; a client-written tag is its initial value, then the last accepted write
        (truth ``write`` events). ``None`` when neither applies (a logic output, or a text).
        """
        if ref.signal is not None and ref.signal in self.truth.column:
            value = self.truth.value_at(ref.signal, time)
            return convert_units(value, self.truth.units[ref.signal], self.tag_unit(ref))
        current: object = ref.spec.initial
        if current is None:
            current = False if ref.spec.type == "bool" else 0.0
        for event in self.truth.events:
            if event.time > time:
                break
            if event.kind == "write" and event.detail.get("tag") == ref.name:
                current = event.detail.get("value")
        if isinstance(current, bool | int | float):
            return float(current)
        return None


def convert_units(value: float, source: str, target: str) -> float:
    """``value`` from unit ``source`` to ``target``; unchanged when either is unknown or they
    are of different dimensions (the caller compares numbers as they are)."""
    if source == target or source not in UNITS or target not in UNITS:
        return value
    src, dst = UNITS[source], UNITS[target]
    if src.dimension != dst.dimension:
        return value
    return ((value * src.scale + src.offset) - dst.offset) / dst.scale


class AnswersFile(dict[str, Any]):
    """The answers of an answers file (a plain ``dict``) that remembers the file's name, so
    a check can say where an answer is missing ("no answer for 'unit' in answers.yaml")."""

    def __init__(self, answers: Mapping[str, Any] | None = None, source: str = "") -> None:
        super().__init__(answers or {})
        self.source = source


def answers_source(answers: Mapping[str, Any] | None) -> str:
    """The name of the file ``answers`` came from, or ``"the answers file"``."""
    return getattr(answers, "source", "") or "the answers file"


def read_answers(path: Path) -> AnswersFile:
    """Parse an answers file (YAML or JSON: a mapping of question id to answer).

    The mapping returned is a dict whose ``source`` is the file's name. Raises
    :class:`EvidenceError` saying what is wrong with the file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvidenceError(f"{path}: no answers file; create it next to the brief") from None
    except (OSError, UnicodeDecodeError) as err:
        raise EvidenceError(f"{path}: cannot read the answers file: {err}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise EvidenceError(f"{path}: the answers file is not valid YAML/JSON: {err}") from None
    if data is None:
        return AnswersFile({}, path.name)
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise EvidenceError(
            f"{path}: the answers file must map question ids to answers, like 'level: 1.2'"
        )
    return AnswersFile(data, path.name)
