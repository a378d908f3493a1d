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
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from simlab.errors import Problem, SimlabError
from simlab.platform.alarms import AlarmDefinition, TagPath
from simlab.scenario.checks import Loc, did_you_mean
from simlab.scenario.loader import format_path

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

Positions = dict[Loc, tuple[int, int]]
_TAG_HINT = "a tag path is a UNS path like acme/plant1/line1/tank/level: no spaces, no + or #"


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


class RulesError(SimlabError):
    """A rules file that cannot be used; ``problems`` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# --- reading ---------------------------------------------------------------------------


def load_rules(path: Path | str) -> RulesFile:
    """Read and validate the rules file at ``path``; RulesError lists every problem."""
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise RulesError(
            [
                Problem(
                    f"cannot read the rules file: {err.strerror or err}",
                    file=str(path),
                    hint="check that the file exists and that you may read it",
                )
            ]
        ) from err
    return _parse_bytes(raw, str(path))


def _parse_bytes(raw: bytes, filename: str) -> RulesFile:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise RulesError(
            [
                Problem(
                    f"the file is not UTF-8 text (byte 0x{raw[err.start]:02x})",
                    file=filename,
                    line=raw.count(b"\n", 0, err.start) + 1,
                    hint="save the file with UTF-8 encoding",
                )
            ]
        ) from None
    return parse_rules(text, filename)


def parse_rules(text: str, filename: str = "<rules>") -> RulesFile:
    """Validate rules YAML ``text``; ``filename`` is only used in messages."""
    data, positions = _read_yaml(text, filename)
    if not isinstance(data, dict):
        line, column = positions.get((), (1, 1))
        raise RulesError(
            [
                Problem(
                    "a rules file is a mapping of fields (format_version, alarms, deadbands, "
                    f"retention_hours), but this file is {_kind_of(data)}",
                    file=filename,
                    line=line,
                    column=column,
                    hint=f"start the file with 'format_version: {FORMAT_VERSION}'",
                )
            ]
        )
    try:
        rules = RulesFile.model_validate(data)
    except ValidationError as err:
        raise RulesError(
            [_problem_of(item, positions, filename) for item in err.errors(include_url=False)]
        ) from None
    problems = [
        _place(loc, message, hint, positions, filename)
        for loc, message, hint in _cross_check(rules, positions)
    ]
    if problems:
        raise RulesError(problems)
    return rules


def _kind_of(data: Any) -> str:
    if data is None:
        return "empty"
    return "a list" if isinstance(data, list) else f"a single value ({data!r:.40})"


# --- YAML with positions ---------------------------------------------------------------
# A compact cousin of simlab.scenario.loader's private reader (which is bound to the
# scenario model): compose the node tree, map each data path to its line, construct.


def _read_yaml(text: str, filename: str) -> tuple[Any, Positions]:
    try:
        loader = yaml.SafeLoader(text)
        walker = _Walker(loader, filename)
        try:
            node = loader.get_single_node()
            if node is not None:
                walker.walk(node, ())
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        message = " ".join(p for p in (err.context, err.problem) if p) or "invalid YAML"
        raise RulesError(
            [
                Problem(
                    f"not valid YAML: {message}",
                    file=filename,
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                    hint="check indentation (spaces, not tabs), colons after keys and quotes",
                )
            ]
        ) from None
    except (yaml.YAMLError, RecursionError) as err:
        raise RulesError(
            [
                Problem(
                    f"not valid YAML: {err or 'nested too deeply'}",
                    file=filename,
                    hint="check that this is a plain YAML text file",
                )
            ]
        ) from None
    if walker.duplicates:
        raise RulesError(walker.duplicates)
    return data, walker.positions


@dataclass
class _Walker:
    """Records the line and column of every data path, and duplicate keys, in a node tree."""

    loader: yaml.SafeLoader
    filename: str
    positions: Positions = field(default_factory=dict)
    duplicates: list[Problem] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)

    def walk(self, node: yaml.Node, loc: Loc) -> None:
        if id(node) in self.seen:  # an alias: walked once already (also stops alias bombs)
            return
        self.seen.add(id(node))
        self.positions[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            keys: set[Any] = set()
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                key = self.loader.construct_object(key_node)
                at = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                if key in keys:
                    self.duplicates.append(
                        Problem(
                            f"key {key!r} appears twice in the same mapping",
                            path=format_path((*loc, str(key))),
                            file=self.filename,
                            line=at[0],
                            column=at[1],
                            hint="keep one of them (YAML would silently use the last one)",
                        )
                    )
                keys.add(key)
                self.walk(value_node, (*loc, key))
                self.positions[(*loc, key)] = at  # a field's problems point at its key
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*loc, index))


# --- pydantic errors to problems -------------------------------------------------------


def _place(loc: Loc, message: str, hint: str, positions: Positions, filename: str) -> Problem:
    """A problem at ``loc``, on the line of the deepest part of ``loc`` found in the file."""
    line = column = None
    for end in range(len(loc), -1, -1):
        if loc[:end] in positions:
            line, column = positions[loc[:end]]
            break
    return Problem(
        message, path=format_path(loc), file=filename, line=line, column=column, hint=hint
    )


def _resolve(loc: Loc) -> tuple[Any, str, FieldInfo | None]:
    """The annotation of the value at ``loc``, and the innermost model field on the way."""
    annotation: Any = RulesFile
    name, info = "", None
    for part in loc:
        while typing.get_origin(annotation) is Annotated:
            annotation = typing.get_args(annotation)[0]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found = annotation.model_fields.get(str(part))
            if found is None:
                return None, name, info
            name, info, annotation = str(part), found, found.annotation
        elif typing.get_origin(annotation) in (list, dict):
            annotation = typing.get_args(annotation)[-1]
        else:
            return None, name, info
    return annotation, name, info


def _fields_of(annotation: Any) -> list[str]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return sorted(annotation.model_fields)
    return []


def _problem_of(item: Any, positions: Positions, filename: str) -> Problem:
    """One pydantic error as a Problem with position and hint."""
    loc: Loc = tuple(item["loc"])
    kind = str(item["type"])
    value = item.get("input")
    message = str(item["msg"]).removeprefix("Value error, ")
    is_key = bool(loc) and loc[-1] == "[key]"
    if is_key:
        loc = loc[:-1]
    _, owner, info = _resolve(loc)
    description = info.description if info is not None and info.description else ""
    name = str(loc[-1]) if loc else ""
    described = f"{owner}: {description}" if description else ""
    if kind == "missing":
        hint = f"add '{name}:'" + (f" ({description})" if description else "")
        if name == "format_version":
            hint = f"start the file with 'format_version: {FORMAT_VERSION}'"
        return _place(loc, f"required field {name!r} is missing", hint, positions, filename)
    if kind == "extra_forbidden":
        fields = _fields_of(_resolve(loc[:-1])[0])
        guess = did_you_mean(name, fields)
        hint = f"{guess + ' ' if guess else ''}Fields here: {', '.join(fields)}"
        return _place(loc, f"unknown field {name!r}", hint, positions, filename)
    if kind == "literal_error":
        expected = str((item.get("ctx") or {}).get("expected", ""))
        choices = [c.strip(" '\"") for c in expected.replace(" or ", ",").split(",")]
        hint = did_you_mean(str(value), [c for c in choices if c]) or f"use one of: {expected}"
        if name == "format_version":
            hint = f"this version of simlab reads rules format_version {FORMAT_VERSION}"
        return _place(loc, f"{message}, got {value!r}", hint, positions, filename)
    if is_key or kind == "string_pattern_mismatch":
        what = "tag path" if is_key or name == "tag" else name
        hint = _TAG_HINT if what == "tag path" else described
        return _place(loc, f"{value!r} is not a valid {what}", hint, positions, filename)
    if kind in ("list_type", "dict_type", "model_type", "model_attributes_type"):
        want = "a list ('- item' lines)" if kind == "list_type" else "a mapping of 'key: value'"
        return _place(loc, f"expected {want}, got {value!r}", described, positions, filename)
    if value is not None and not isinstance(value, dict | list):
        message = f"{message}, got {value!r}"
    hint = described or "write a value of the expected type"
    return _place(loc, message, hint, positions, filename)


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
            rules = _parse_bytes(raw, str(self.path))
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
