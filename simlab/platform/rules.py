"""The rules file apprentices edit: alarms, historian deadbands and retention, with clear errors.

Format (YAML)::

    format_version: 1
    alarms:
      - name: TANK1_LEVEL_HI
        tag: acme/plant1/water/tank1/level
        kind: HI            # HI | HIHI | LO | LOLO (any case)
        limit: 1.8
        deadband: 0.05      # optional, tag unit
        on_delay: 2         # optional, seconds
        off_delay: 0        # optional, seconds
        severity: 700       # optional, OPC UA 1..1000, default 500
        message: Tank 1 nearly full
    deadbands:              # optional historian deadbands, tag → absolute value
      acme/plant1/water/tank1/level: 0.01
    retention_hours: 48     # optional, historian retention

Every mistake becomes a :class:`~simlab.errors.Problem` with file, line, column, field path
(``alarms[2].limit``) and a hint; :func:`parse_rules` raises :class:`RulesError` listing all
of them. Beyond the schema it checks that alarm names are unique and that the limits on one
tag rise strictly in the order LOLO < LO < HI < HIHI.

:class:`RulesWatcher` reloads the file when its modification time changes, polled by an
explicit :meth:`RulesWatcher.poll` call; a bad file keeps the previous rules.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from simlab.errors import FileProblems, Problem
from simlab.platform.alarms import AlarmDefinition, TagPath
from simlab.scenario.checks import Loc
from simlab.scenario.loader import Positions, decode_text, problem_at, read_model

__all__ = [
    "FORMAT_VERSION",
    "RulesError",
    "RulesFile",
    "RulesWatcher",
    "load_rules",
    "parse_rules",
]

FORMAT_VERSION = 1
_RANK = {"LOLO": 0, "LO": 1, "HI": 2, "HIHI": 3}


class RulesFile(BaseModel):
    """A validated rules file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: Annotated[
        Literal[1], Field(description="version of the rules file format; write 1")
    ]
    alarms: Annotated[
        list[AlarmDefinition], Field(description="the alarm definitions (a list)")
    ] = []
    deadbands: Annotated[
        dict[TagPath, Annotated[float, Field(ge=0, allow_inf_nan=False)]],
        Field(description="historian deadbands: tag path → absolute deadband in its unit"),
    ] = {}
    retention_hours: Annotated[
        float | None,
        Field(gt=0, allow_inf_nan=False, description="hours of history the historian keeps"),
    ] = None

    @property
    def retention_s(self) -> float | None:
        """``retention_hours`` in seconds (None keeps everything)."""
        return None if self.retention_hours is None else self.retention_hours * 3600.0


class RulesError(FileProblems):
    """A rules file that cannot be used; ``problems`` lists every error found."""


# --- reading ---------------------------------------------------------------------------


def load_rules(path: Path | str) -> RulesFile:
    """Read and validate the rules file at ``path``; RulesError lists every problem."""
    return parse_rules(decode_text(Path(path), RulesError), str(path))


def parse_rules(text: str, filename: str = "<rules>") -> RulesFile:
    """Validate rules YAML ``text``; ``filename`` is only used in messages."""
    rules, positions = read_model(
        text,
        filename,
        RulesFile,
        error=RulesError,
        shape="a rules file is a mapping of fields (format_version, alarms, deadbands, "
        "retention_hours)",
        start=f"start the file with 'format_version: {FORMAT_VERSION}'",
    )
    problems = [
        problem_at(loc, message, hint, positions, filename)
        for loc, message, hint in _cross_check(rules, positions)
    ]
    if problems:
        raise RulesError(problems)
    return rules


# --- cross checks ----------------------------------------------------------------------


def _cross_check(rules: RulesFile, positions: Positions) -> list[tuple[Loc, str, str]]:
    """(loc, message, hint) of what the schema cannot see."""
    findings: list[tuple[Loc, str, str]] = []
    first: dict[str, int] = {}
    for index, alarm in enumerate(rules.alarms):
        if alarm.name in first:
            earlier = first[alarm.name]
            line = positions.get(("alarms", earlier), (None,))[0]
            findings.append(
                (
                    ("alarms", index, "name"),
                    f"alarm name {alarm.name!r} is already used by alarms[{earlier}]"
                    + (f" (line {line})" if line else ""),
                    "give every alarm its own name, e.g. add _HI or _LO",
                )
            )
        else:
            first[alarm.name] = index
    for index, alarm in enumerate(rules.alarms):
        for other_index, other in enumerate(rules.alarms):
            if other.tag != alarm.tag or _RANK[other.kind] >= _RANK[alarm.kind]:
                continue
            if not other.limit < alarm.limit:
                findings.append(
                    (
                        ("alarms", index, "limit"),
                        f"{alarm.kind} limit {alarm.limit:g} of {alarm.name!r} is not above the "
                        f"{other.kind} limit {other.limit:g} of {other.name!r} "
                        f"(alarms[{other_index}]) on the same tag {alarm.tag}",
                        "on one tag the limits must rise: LOLO < LO < HI < HIHI; "
                        "check the limits and the kinds",
                    )
                )
    return findings


# --- hot reload ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Signature:
    mtime_ns: int
    size: int


class RulesWatcher:
    """Reloads a rules file when it changes; call :meth:`poll` periodically.

    ``on_change(rules)`` is called with each new valid version (the first successful load
    included). A file that fails to load keeps the previous rules; its problems are in
    :attr:`problems` and are passed to ``on_error`` if given. A change is a different
    modification time or size; a file rewritten with identical bytes calls nothing.
    """

    def __init__(
        self,
        path: Path | str,
        on_change: Callable[[RulesFile], None],
        *,
        on_error: Callable[[list[Problem]], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.on_change = on_change
        self.on_error = on_error
        self.rules: RulesFile | None = None
        self.problems: list[Problem] = []
        self._signature: _Signature | None = None
        self._polled = False
        self._loaded: bytes | None = None

    def _stat(self) -> _Signature | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return _Signature(stat.st_mtime_ns, stat.st_size)

    def poll(self) -> bool:
        """Reload if the file changed since the last poll; True when new rules took effect."""
        signature = self._stat()
        if self._polled and signature == self._signature:
            return False
        self._polled = True
        self._signature = signature
        try:
            raw = self.path.read_bytes()
            if raw == self._loaded:
                self.problems = []
                return False
            rules = load_rules(self.path)
        except OSError as err:
            return self._failed(
                [
                    Problem(
                        f"cannot read the rules file: {err.strerror or err}",
                        file=str(self.path),
                        hint="the previous rules stay in force until the file is readable again",
                    )
                ]
            )
        except RulesError as err:
            return self._failed(err.problems)
        self._loaded = raw
        self.rules = rules
        self.problems = []
        self.on_change(rules)
        return True

    def _failed(self, problems: list[Problem]) -> bool:
        self.problems = problems
        if self.on_error is not None:
            self.on_error(problems)
        return False
