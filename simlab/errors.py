"""The one error tree of simlab.

Every error a user can cause is a :class:`SimlabError`; its message says what is wrong,
where, and how to fix it. Library errors are translated at the boundary
(``raise DeviceUnreachable(...) from err``). The CLI prints ``str(error)`` and exits 1,
so no user ever sees a traceback for bad input.

Tree::

    SimlabError
    ├── FileProblems           a file (scenario, rules, exercise) is unreadable or invalid
    │   └── ScenarioError      ... a scenario file
    ├── ScenarioNotFound       a scenario name or path does not exist
    ├── TagError               a tag access that the device refuses
    │   ├── UnknownTag
    │   ├── TagNotWritable
    │   └── ValueOutOfRange
    ├── FaultError             a fault that cannot be injected or cleared
    └── LabError               the lab cannot start or run
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FaultError",
    "FileProblems",
    "LabError",
    "Problem",
    "ScenarioError",
    "ScenarioNotFound",
    "SimlabError",
    "TagError",
    "TagNotWritable",
    "UnknownTag",
    "ValueOutOfRange",
]


class SimlabError(Exception):
    """Base of every error simlab raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file: what, where (file, line, column, field path), how to fix."""

    message: str
    path: str = ""
    file: str = "<scenario>"
    line: int | None = None
    column: int | None = None
    hint: str = ""

    def location(self) -> str:
        """``file:line:column`` with whatever parts are known."""
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        text = f"{self.location()}: error: {where}{self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class FileProblems(SimlabError):
    """A file that cannot be used; ``problems`` lists every error found in it."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ScenarioError(FileProblems):
    """A scenario file that cannot be used."""


class ScenarioNotFound(SimlabError):
    """A scenario name or path that does not exist."""


class LabError(SimlabError):
    """The lab cannot start or keep running."""


class FaultError(SimlabError):
    """A fault that cannot be injected or cleared."""


class TagError(SimlabError):
    """A tag access that the device refuses."""


class UnknownTag(TagError):
    """A tag name that the device does not have."""


class TagNotWritable(TagError):
    """A write to a tag that is read-only."""


class ValueOutOfRange(TagError):
    """A write outside the tag's declared range."""
