"""Read scenario files: YAML with positions, pydantic validation, cross checks, clear errors.

Every problem becomes a :class:`~simlab.errors.Problem` with ``file:line:column``, the field
path (``devices[2].tags[5].signal``) and a hint. PyYAML's composer gives us the node
positions; we walk the nodes beside the constructed data to map each path to its line.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from simlab.errors import Problem, ScenarioError, ScenarioNotFound
from simlab.scenario.checks import Loc, cross_check, did_you_mean
from simlab.scenario.model import Scenario

__all__ = ["bundled_scenarios", "format_path", "load_scenario", "parse_scenario", "resolve_scenario"]

Positions = dict[Loc, tuple[int, int]]


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
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ScenarioError([Problem(f"cannot read the file: {err}", file=str(path))]) from err
    return parse_scenario(text, str(path))


def parse_scenario(text: str, filename: str = "<scenario>") -> Scenario:
    """Validate scenario YAML ``text``; ``filename`` is only used in messages."""
    data, positions = _read_yaml(text, filename)
    if not isinstance(data, dict):
        raise ScenarioError([Problem(
            "a scenario is a mapping of fields (format_version, name, plant, devices, ...)",
            file=filename, line=1, column=1,
            hint="start the file with 'format_version: 1' and 'name: my_plant'",
        )])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(_translate(err, data, positions, filename)) from None
    findings = cross_check(scenario)
    if findings:
        raise ScenarioError([
            _problem(f.loc, f.message, f.hint, data, positions, filename) for f in findings
        ])
    return scenario


# --- YAML with positions -------------------------------------------------------------


def _read_yaml(text: str, filename: str) -> tuple[Any, Positions]:
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        message = " ".join(p for p in (err.context, err.problem) if p) or "invalid YAML"
        raise ScenarioError([Problem(
            f"not valid YAML: {message}", file=filename, line=line, column=column,
            hint="check indentation (spaces, not tabs), colons after keys and closing quotes",
        )]) from None
    except yaml.YAMLError as err:
        raise ScenarioError([Problem(f"not valid YAML: {err}", file=filename)]) from None
    positions: Positions = {}
    duplicates: list[Problem] = []
    if node is not None:
        _walk(node, (), positions, duplicates, filename)
    if duplicates:
        raise ScenarioError(duplicates)
    return data, positions


def _walk(node: yaml.Node, loc: Loc, positions: Positions, duplicates: list[Problem], filename: str) -> None:
    positions[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                duplicates.append(Problem(
                    f"key {key!r} appears twice in the same mapping", path=format_path((*loc, key)),
                    file=filename, line=key_node.start_mark.line + 1,
                    column=key_node.start_mark.column + 1, hint="keep one of them",
                ))
            seen.add(key)
            _walk(value_node, (*loc, key), positions, duplicates, filename)
            positions[(*loc, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*loc, index), positions, duplicates, filename)


# --- pydantic errors to problems -------------------------------------------------------


def format_path(loc: Loc) -> str:
    """``('devices', 2, 'tags', 5, 'signal')`` → ``devices[2].tags[5].signal``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _data_loc(loc: tuple[Any, ...], data: Any) -> Loc:
    """Drop the union tags pydantic puts in ``loc`` (``units.0.tank.area`` → ``units.0.area``)."""
    out: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(current, Mapping) and part not in current and part in (
            current.get("type"), current.get("kind")
        ):
            continue
        out.append(part)
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[part]
        else:
            current = None
    return tuple(out)


def _problem(loc: Loc, message: str, hint: str, data: Any, positions: Positions, filename: str) -> Problem:
    line = column = None
    for end in range(len(loc), -1, -1):
        if loc[:end] in positions:
            line, column = positions[loc[:end]]
            break
    return Problem(message, path=format_path(loc), file=filename, line=line, column=column, hint=hint)


def _translate(err: ValidationError, data: Any, positions: Positions, filename: str) -> list[Problem]:
    problems = []
    for item in err.errors(include_url=False):
        loc = _data_loc(item["loc"], data)
        message, hint = _explain(item, loc, data)
        problems.append(_problem(loc, message, hint, data, positions, filename))
    return problems


def _explain(item: Any, loc: Loc, data: Any) -> tuple[str, str]:
    kind = item["type"]
    message = str(item["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    fields = _fields_at(loc[:-1], data)
    if kind == "missing":
        description = fields.get(str(loc[-1]), "") if fields else ""
        return f"required field {loc[-1]!r} is missing", f"add '{loc[-1]}:'" + (
            f" ({description})" if description else "")
    if kind == "extra_forbidden":
        known = sorted(fields or {})
        guess = did_you_mean(str(loc[-1]), known)
        return f"unknown field {loc[-1]!r}", f"{guess + ' ' if guess else ''}Fields here: {', '.join(known)}"
    if kind in ("union_tag_invalid", "literal_error"):
        expected = item.get("ctx", {}).get("expected_tags") or item.get("ctx", {}).get("expected", "")
        guess = did_you_mean(str(item.get("input")), [e.strip(" '") for e in str(expected).split(",")])
        return message, guess or "use one of the values listed"
    if kind == "union_tag_not_found":
        return message, "add 'type:' (or 'kind:' for faults) naming what this entry is"
    if kind.endswith("_parsing") or kind.endswith("_type"):
        return f"{message}, got {item.get('input')!r}", "write a value of the expected type"
    return message, ""


def _fields_at(loc: Loc, data: Any) -> dict[str, str] | None:
    """Field name → description of the model that validates the mapping at ``loc``."""
    model: Any = Scenario
    current = data
    for part in loc:
        model = _pick(model, current)
        if model is None:
            return None
        if isinstance(part, int):
            model = _item_type(model)
            current = current[part] if isinstance(current, list) and part < len(current) else None
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        model = model.model_fields[part].annotation
        current = current.get(part) if isinstance(current, Mapping) else None
    model = _pick(model, current)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return {name: f.description or "" for name, f in model.model_fields.items()}
    return None


def _pick(annotation: Any, current: Any) -> Any:
    """Resolve Optional, Annotated and tagged unions to the model that fits ``current``."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        tag = None
        if isinstance(current, Mapping):
            tag = current.get("type", current.get("kind"))
        for option in options:
            option = _pick(option, current)
            if isinstance(option, type) and issubclass(option, BaseModel):
                field = option.model_fields.get("type") or option.model_fields.get("kind")
                if field is None or tag in typing.get_args(field.annotation):
                    return option
        return options[0] if len(options) == 1 else None
    return annotation


def _item_type(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    return args[0] if typing.get_origin(annotation) is list and args else None
