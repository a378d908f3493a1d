"""Read scenario files: YAML with positions, pydantic validation, cross checks, clear errors.

Every problem becomes a :class:`~simlab.errors.Problem` with ``file:line:column``, the field
path (``devices[2].tags[5].signal``) and a hint. PyYAML's composer gives us the node
positions; we walk the nodes beside the constructed data to map each path to its line.

Whatever the text, :func:`parse_scenario` returns a :class:`Scenario` or raises
:class:`~simlab.errors.ScenarioError`: no other exception escapes for bad input.
"""

from __future__ import annotations

import re
import reprlib
import types
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from simlab.errors import FileProblems, Problem, ScenarioError, ScenarioNotFound
from simlab.scenario.checks import Loc, cross_check, did_you_mean
from simlab.scenario.model import FORMAT_VERSION, Scenario
from simlab.units import UNITS

__all__ = [
    "Positions",
    "bundled_scenarios",
    "decode_text",
    "format_path",
    "load_scenario",
    "parse_scenario",
    "problem_at",
    "read_model",
    "resolve_scenario",
]

M = TypeVar("M", bound=BaseModel)

Positions = dict[Loc, tuple[int, int]]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
_YAML_HINT = "check indentation (spaces, not tabs), colons after keys and closing quotes"

# Spellings people write for the units simlab knows, for did-you-mean hints.
_UNIT_ALIASES = {
    "meter": "m",
    "meters": "m",
    "metre": "m",
    "metres": "m",
    "centimeter": "cm",
    "centimeters": "cm",
    "millimeter": "mm",
    "millimeters": "mm",
    "percent": "%",
    "pct": "%",
    "celsius": "degC",
    "°c": "degC",
    "c": "degC",
    "degc": "degC",
    "deg c": "degC",
    "kelvin": "K",
    "liter": "L",
    "liters": "L",
    "litre": "L",
    "litres": "L",
    "l": "L",
    "ml": "mL",
    "m³": "m3",
    "m^3": "m3",
    "m3/hr": "m3/h",
    "m³/h": "m3/h",
    "lpm": "L/min",
    "l/min": "L/min",
    "l/s": "L/s",
    "seconds": "s",
    "sec": "s",
    "minutes": "min",
    "hours": "h",
    "hr": "h",
    "amps": "A",
    "ampere": "A",
    "volts": "V",
    "watts": "W",
    "kilowatt": "kW",
    "kw": "kW",
    "hz": "Hz",
    "boolean": "bool",
    "rpm": "rpm",
    "items": "count",
    "pcs": "count",
    "mm/sec": "mm/s",
    "m/sec": "m/s",
    "kpa": "kPa",
    "pa": "Pa",
}

_SHORT = reprlib.Repr()
_SHORT.maxstring = 48
_SHORT.maxother = 48
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = _SHORT.maxfrozenset = 4
_SHORT.maxdict = 3
_SHORT.maxlevel = 2


def _short(value: Any) -> str:
    """A bounded repr: safe for huge, deeply nested or self-referencing YAML values."""
    return _SHORT.repr(value)


def bundled_scenarios() -> dict[str, Path]:
    """Name → file of every scenario shipped with simlab."""
    root = resources.files("simlab") / "scenarios"
    found: dict[str, Path] = {}
    for entry in root.iterdir():
        candidate = entry / "scenario.yaml"
        if candidate.is_file():
            found[entry.name] = Path(str(candidate))
    return dict(sorted(found.items()))


def resolve_scenario(name_or_path: str | Path) -> Path:
    """A bundled scenario's name or a file path → the file; ScenarioNotFound otherwise."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.is_dir() and (path / "scenario.yaml").is_file():
        return path / "scenario.yaml"
    bundled = bundled_scenarios()
    if str(name_or_path) in bundled:
        return bundled[str(name_or_path)]
    guess = did_you_mean(str(name_or_path), bundled)
    raise ScenarioNotFound(
        f"no scenario {str(name_or_path)!r}: not a file, and not a bundled scenario. "
        f"{guess + ' ' if guess else ''}Bundled: {', '.join(bundled)}"
    )


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load and validate a scenario by bundled name or path; ScenarioError lists every problem."""
    path = resolve_scenario(name_or_path)
    return parse_scenario(decode_text(path, ScenarioError), str(path))


def decode_text(path: Path, error: type[FileProblems]) -> str:
    """The UTF-8 text of the file at ``path`` (a byte order mark allowed), or ``error``."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise error(
            [
                Problem(
                    f"cannot read the file: {err.strerror or err}",
                    file=str(path),
                    hint="check that the file exists and that you may read it",
                )
            ]
        ) from err
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        body = bytes(err.object)  # without the byte order mark, if any: err.start counts in it
        line = body.count(b"\n", 0, err.start) + 1
        column = err.start - (body.rfind(b"\n", 0, err.start) + 1) + 1
        raise error(
            [
                Problem(
                    f"the file is not UTF-8 text: byte 0x{body[err.start]:02x} cannot be decoded",
                    file=str(path),
                    line=line,
                    column=column,
                    hint="save the file with UTF-8 encoding",
                )
            ]
        ) from None


def parse_scenario(text: str, filename: str = "<scenario>") -> Scenario:
    """Validate scenario YAML ``text``; ``filename`` is only used in messages."""
    scenario, positions = read_model(
        text,
        filename,
        Scenario,
        error=ScenarioError,
        shape="a scenario is a mapping of fields (format_version, name, plant, devices, ...)",
        start=f"start the file with 'format_version: {FORMAT_VERSION}' and 'name: my_plant'",
    )
    findings = cross_check(scenario)
    if findings:
        raise ScenarioError(
            [problem_at(f.loc, f.message, f.hint, positions, filename) for f in findings]
        )
    return scenario


def read_model(
    text: str, filename: str, model: type[M], *, error: type[FileProblems], shape: str, start: str
) -> tuple[M, Positions]:
    """Validate YAML ``text`` against ``model``: the model and the line of every data path.

    Any problem, from YAML syntax to a field's value, raises ``error`` with every problem
    found, each at its ``file:line:column`` with its field path and a hint. ``shape`` says what
    such a file is and ``start`` how it begins, for a file that is not a mapping.
    """
    try:
        data, positions = _read_yaml(text, filename)
    except FileProblems as err:
        raise error(err.problems) from None
    if not isinstance(data, dict):
        line, column = positions.get((), (1, 1))
        what = "empty" if data is None else f"a single {_kind_of(data)}"
        if isinstance(data, list):
            what = "a list"
        raise error(
            [
                Problem(
                    f"{shape}, but this file is {what}",
                    file=filename,
                    line=line,
                    column=column,
                    hint=start,
                )
            ]
        )
    try:
        return model.model_validate(data), positions
    except ValidationError as err:
        raise error(_translate(err, positions, filename, model)) from None


def _kind_of(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


# --- YAML with positions -------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """A SafeLoader whose value errors (``2024-13-45``, ``!!int abc``) carry the position."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as err:
            what = f" {node.value!r}" if isinstance(node, yaml.ScalarNode) else ""
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read the value{what}: {err}", node.start_mark
            ) from err


def _line_col(text: str, index: int) -> tuple[int, int]:
    index = max(0, min(index, len(text)))
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _yaml_problem(err: yaml.MarkedYAMLError, filename: str) -> Problem:
    mark = err.problem_mark or err.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
    message = " ".join(p for p in (err.context, err.problem) if p) or "invalid YAML"
    context = err.context_mark
    if context is not None and mark is not None and context.line != mark.line:
        message += f" (the construct started at line {context.line + 1})"
    hint = _YAML_HINT
    if "'\\t'" in message:
        hint = "indent with spaces: YAML does not allow tab characters there"
    elif "mapping values are not allowed" in message:
        hint = (
            "a value that contains ': ' must be quoted; otherwise check the indentation "
            "of this line and the one above"
        )
    elif "expected <block end>" in message or "expected <document start>" in message:
        hint = (
            "this line is indented differently from the lines above it: keys of one "
            "mapping and items of one list must line up"
        )
    elif "flow sequence" in message or "flow mapping" in message:
        hint = "close every '[' with ']' and every '{' with '}', and separate items with ','"
    elif "single document" in message:
        hint = "a scenario file holds one YAML document: remove the second '---' and what follows"
    elif "undefined alias" in message:
        hint = "define the anchor ('&name') before the alias ('*name') that repeats it"
    elif "could not determine a constructor" in message:
        hint = "scenario files use plain YAML values: remove the '!' tag"
    elif "cannot read the value" in message:
        hint = "write the value in quotes if it is meant as text, or fix its format"
    return Problem(f"not valid YAML: {message}", file=filename, line=line, column=column, hint=hint)


def _read_yaml(text: str, filename: str) -> tuple[Any, Positions]:
    positions: Positions = {}
    duplicates: list[Problem] = []
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _walk(node, (), _Walk(loader, positions, duplicates, filename, set()))
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as err:
        raise FileProblems([_yaml_problem(err, filename)]) from None
    except yaml.reader.ReaderError as err:
        line, column = _line_col(text, err.position)
        char = f"U+{err.character:04X}" if isinstance(err.character, int) else repr(err.character)
        raise FileProblems(
            [
                Problem(
                    f"not valid YAML: the character {char} is not allowed ({err.reason})",
                    file=filename,
                    line=line,
                    column=column,
                    hint="remove the control character (the file may be binary or damaged)",
                )
            ]
        ) from None
    except yaml.YAMLError as err:
        raise FileProblems(
            [Problem(f"not valid YAML: {err}", file=filename, hint=_YAML_HINT)]
        ) from None
    except RecursionError:
        raise FileProblems(
            [
                Problem(
                    "not valid YAML: the file is nested too deeply to read",
                    file=filename,
                    hint="a scenario needs only a few levels of nesting; look for runaway brackets",
                )
            ]
        ) from None
    if duplicates:
        raise FileProblems(duplicates)
    return data, positions


@dataclass
class _Walk:
    loader: _Loader
    positions: Positions
    duplicates: list[Problem]
    filename: str
    seen: set[int]


def _walk(node: yaml.Node, loc: Loc, walk: _Walk) -> None:
    # An alias is the very node of its anchor: walk each node once, which also stops
    # self-referencing documents (``&a [*a]``) and alias bombs.
    if id(node) in walk.seen:
        return
    walk.seen.add(id(node))
    walk.positions[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue  # '<<: *base' merges; complex keys fail when constructed
            key = walk.loader.construct_object(key_node)
            key_loc: Loc = (*loc, key)
            if key in seen:
                walk.duplicates.append(
                    Problem(
                        f"key {key!r} appears twice in the same mapping",
                        path=format_path((*loc, str(key))),
                        file=walk.filename,
                        line=key_node.start_mark.line + 1,
                        column=key_node.start_mark.column + 1,
                        hint="keep one of them (YAML would silently use the last one)",
                    )
                )
            seen.add(key)
            _walk(value_node, key_loc, walk)
            key_at = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            walk.positions[key_loc] = key_at
            if not isinstance(key, str):  # pydantic names some odd keys by their text
                walk.positions.setdefault((*loc, str(key)), key_at)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*loc, index), walk)


# --- pydantic errors to problems -------------------------------------------------------


def format_path(loc: Loc) -> str:
    """``('devices', 2, 'tags', 5, 'signal')`` → ``devices[2].tags[5].signal``."""
    text = ""
    for part in loc:
        index = isinstance(part, int) and not isinstance(part, bool)
        text += f"[{part}]" if index else (f".{part}" if text else str(part))
    return text


def problem_at(
    loc: Loc, message: str, hint: str, positions: Positions, filename: str, *, path: str = ""
) -> Problem:
    """A problem at ``loc``, placed at the line of the deepest part of ``loc`` in the file."""
    line = column = None
    for end in range(len(loc), -1, -1):
        if loc[:end] in positions:
            line, column = positions[loc[:end]]
            break
    return Problem(
        message, path=path or format_path(loc), file=filename, line=line, column=column, hint=hint
    )


@dataclass(frozen=True)
class _Where:
    """Where a pydantic error is, in the data and in the models."""

    loc: Loc  # path in the data (union labels dropped)
    parent: Any  # the model class holding the last field of ``loc``, if any
    annotation: Any  # annotation of the value at ``loc``, if known
    union_member: bool  # a plain union (``float | bool | str``) tried one of its members
    mapping_field: tuple[Any, str] | None = None  # (model, field) of the dict holding ``loc``


def _strip(annotation: Any) -> Any:
    """Peel ``Annotated`` and ``Optional`` off an annotation."""
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        options = _options(annotation)
        if options is not None and len(options) == 1:
            annotation = options[0]
            continue
        return annotation


def _options(annotation: Any) -> list[Any] | None:
    """The members of a union other than None; None when it is not a union."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _tags_of(option: Any) -> tuple[Any, ...]:
    """The discriminator values (``type``/``kind`` literals) a model accepts."""
    option = _strip(option)
    if not _is_model(option):
        return ()
    for name in ("type", "kind"):
        field = option.model_fields.get(name)
        if field is not None:
            return typing.get_args(field.annotation)
    return ()


def _locate(pydantic_loc: tuple[Any, ...], root: type[BaseModel]) -> _Where:
    """Follow pydantic's error ``loc`` through the models, dropping union labels."""
    out: list[Any] = []
    annotation: Any = root
    parent: Any = None
    member = False
    mapping_field: tuple[Any, str] | None = None
    for part in pydantic_loc:
        current = _strip(annotation)
        if typing.get_origin(current) is dict and parent is not None and out:
            mapping_field = (parent, str(out[-1]))
        options = _options(current)
        if options is not None:
            chosen = [o for o in options if part in _tags_of(o)]
            annotation = chosen[0] if chosen else None
            member = member or not chosen
            continue  # pydantic names the union member it tried; the data has no such key
        out.append(part)
        parent = None
        if _is_model(current):
            parent = current
            field = current.model_fields.get(part) if isinstance(part, str) else None
            annotation = field.annotation if field is not None else None
        elif typing.get_origin(current) is dict:
            annotation = typing.get_args(current)[1]
        elif typing.get_origin(current) is list and isinstance(part, int):
            annotation = typing.get_args(current)[0]
        elif typing.get_origin(current) is tuple and isinstance(part, int):
            args = typing.get_args(current)
            annotation = args[part] if part < len(args) else None
        else:
            annotation = None
    return _Where(tuple(out), parent, annotation, member, mapping_field)


def _translate(
    err: ValidationError, positions: Positions, filename: str, root: type[BaseModel]
) -> list[Problem]:
    entries: list[Problem | Loc] = []
    union_items: dict[Loc, list[Any]] = {}  # a plain union reports once per member it tried
    for item in err.errors(include_url=False):
        pydantic_loc = tuple(item["loc"])
        if pydantic_loc and pydantic_loc[-1] == "[key]":  # a dict key's own error
            pydantic_loc = pydantic_loc[:-1]
        where = _locate(pydantic_loc, root)
        if where.union_member:
            if where.loc not in union_items:
                union_items[where.loc] = []
                entries.append(where.loc)
            union_items[where.loc].append(item)
            continue
        loc, message, hint = _explain(item, where)
        path = format_path((*loc[:-1], str(loc[-1]))) if item["type"] == "invalid_key" else ""
        entries.append(problem_at(loc, message, hint, positions, filename, path=path))
    return [
        entry
        if isinstance(entry, Problem)
        else _union_problem(entry, union_items[entry], positions, filename)
        for entry in entries
    ]


def _union_problem(loc: Loc, items: list[Any], positions: Positions, filename: str) -> Problem:
    """One problem for a value that no member of a plain union (``float | bool | str``) took."""
    wants = [str(i["msg"]).removeprefix("Input should be ").split(",")[0] for i in items]
    wants = list(dict.fromkeys(wants))
    text = ", ".join(wants[:-1]) + (" or " if len(wants) > 1 else "") + wants[-1]
    return problem_at(
        loc,
        f"Input should be {text}, got {_short(items[0].get('input'))}",
        "write a value of one of these types",
        positions,
        filename,
    )


def _field_hint(where: _Where) -> str:
    """``name: description`` of the field at ``where``, for a hint."""
    if where.parent is not None and where.loc and isinstance(where.loc[-1], str):
        field = where.parent.model_fields.get(where.loc[-1])
        if field is not None and field.description:
            return f"{where.loc[-1]}: {field.description}"
    if where.mapping_field is not None:  # a value inside a dict field: describe the dict
        model, name = where.mapping_field
        field = model.model_fields.get(name)
        if field is not None and field.description:
            return f"{name}: {field.description}"
    return ""


def _explain(item: Any, where: _Where) -> tuple[Loc, str, str]:
    """(data loc, message, hint) for one pydantic error."""
    loc = where.loc
    kind = str(item["type"])
    value = item.get("input")
    ctx = item.get("ctx") or {}
    message = str(item["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    last = loc[-1] if loc else ""
    fields = sorted(where.parent.model_fields) if where.parent is not None else []
    if kind == "missing":
        if last == "format_version":
            return (
                loc,
                f"required field {last!r} is missing",
                (f"start the file with 'format_version: {FORMAT_VERSION}'"),
            )
        description = _field_hint(where).partition(": ")[2]
        return (
            loc,
            f"required field {last!r} is missing",
            f"add '{last}:'" + (f" ({description})" if description else ""),
        )
    if kind in ("extra_forbidden", "invalid_key"):
        if kind == "invalid_key":
            message = f"field names are words, but this key is {last!r}"
        else:
            message = f"unknown field {last!r}"
        guess = did_you_mean(str(last), fields)
        return loc, message, f"{guess + ' ' if guess else ''}Fields here: {', '.join(fields)}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = str(ctx.get("discriminator", "'type'")).strip("'\"")
        known = [str(t) for o in (_options(_strip(where.annotation)) or []) for t in _tags_of(o)]
        listing = ", ".join(known)
        if kind == "union_tag_not_found":
            return (
                loc,
                f"this entry has no {key!r} saying what it is",
                (f"add '{key}:' with one of: {listing}" if listing else f"add '{key}:'"),
            )
        tag = str(ctx.get("tag", value))
        guess = did_you_mean(tag, known)
        return (
            (*loc, key),
            f"unknown {key} {tag!r}",
            (f"{guess + ' ' if guess else ''}Known: {listing}".strip()),
        )
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        choices = [e.strip(" '\"") for e in re.split(r",| or ", expected) if e.strip(" '\"")]
        if last == "format_version":
            hint = f"this version of simlab reads format_version {FORMAT_VERSION}"
        else:
            hint = did_you_mean(str(value), choices) or f"use one of: {expected}"
        return loc, f"{message}, got {_short(value)}", hint
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == _NAME_PATTERN:
        hint = "names are lowercase: a letter, then letters, digits or '_'"
        fixed = re.sub(r"[^a-z0-9_]+", "_", str(value).lower()).strip("_")
        if re.match(_NAME_PATTERN, fixed) and len(fixed) <= 48:
            hint = f"did you mean {fixed!r}? " + hint
        return loc, f"{_short(value)} is not a valid name", hint
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return (
            loc,
            f"expected a mapping of fields, got {_short(value)}",
            ("indent 'key: value' lines under this field, or write {key: value, ...}"),
        )
    if kind in ("list_type", "tuple_type"):
        return (
            loc,
            f"expected a list, got {_short(value)}",
            ("write '- item' lines under this field, or [item, item, ...]"),
        )
    if kind == "string_type":
        hint = "put the value in quotes to make it text"
        if isinstance(value, bool):
            hint = "YAML reads yes/no/on/off/true/false as booleans: " + hint
        return loc, f"{message}, got {_short(value)}", hint
    if kind == "value_error":
        hint = ""
        if last == "unit" and isinstance(value, str):
            alias = _UNIT_ALIASES.get(value.strip().lower())
            hint = (
                f"did you mean {alias!r}?"
                if alias
                else did_you_mean(value, [u for u in UNITS if u])
            )
        return loc, message, hint or _field_hint(where)
    if kind.endswith(("_parsing", "_type")):
        return (
            loc,
            f"{message}, got {_short(value)}",
            (_field_hint(where) or "write a value of the expected type"),
        )
    if value is not None and not isinstance(value, dict | list) and "got" not in message:
        message = f"{message}, got {_short(value)}"
    return loc, message, _field_hint(where)
