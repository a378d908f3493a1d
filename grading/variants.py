"""Per-apprentice variants: a seed from the course secret, parameter draws, brief rendering.

Each apprentice gets their own numbers (a setpoint, a register address, a topic name) so
answers cannot be copied from a neighbour, yet everything is reproducible:

- :func:`variant_seed` derives the seed from the course secret, the apprentice and the
  exercise with HMAC-SHA256: the same on every run and machine, unguessable without the
  secret.
- :func:`draw_variant` draws the exercise's parameters with ``random.Random(seed)``, in
  sorted parameter-name order (reordering the YAML does not change anyone's variant).
- :func:`render_brief` fills ``{{ name }}`` placeholders in the Markdown brief;
  :func:`render_value` does the same inside data (scenario overrides, check params).

Placeholder syntax (deliberately tiny, no template engine): ``{{ name }}`` with optional
spaces, ``name`` a Python-style identifier. Write ``\\{{`` for a literal ``{{`` (Node-RED
and Mustache use ``{{payload}}``). Any other ``{{ ... }}`` is an error, so a typo never
reaches an apprentice as raw template text.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import math
import random
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from grading.model import GradingError

__all__ = [
    "ParameterSpec",
    "VariantError",
    "VariantSpec",
    "draw_variant",
    "render_brief",
    "render_title",
    "render_value",
    "variant_seed",
]

_SEED_BITS = 53  # a seed survives JSON readers that hold numbers as doubles (JavaScript)


class VariantError(GradingError):
    """A variant that cannot be drawn or rendered: empty secret, bad spec, unknown placeholder.

    ``detail`` is the message alone; ``source`` and ``line`` say where, when known, and
    ``str(error)`` is ``source:line: detail``.
    """

    def __init__(self, detail: str, *, source: str = "", line: int | None = None) -> None:
        self.detail = detail
        self.source = source
        self.line = line
        where = ":".join(str(p) for p in (source, line) if p not in ("", None))
        super().__init__(f"{where}: {detail}" if where else detail)


class ParameterSpec(BaseModel):
    """How one parameter is drawn: exactly one of ``choice``, ``int`` or ``float``.

    - ``choice: [a, b, c]`` picks one of the values (any YAML scalars);
    - ``int: [lo, hi]`` an integer with lo ≤ n ≤ hi;
    - ``float: [lo, hi, step]`` one of lo, lo+step, ... ≤ hi, rounded to step's decimals.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The fields are named as the YAML keys; inside this class ``int`` and ``float`` are
    # those fields, so the types are spelled ``builtins.int`` and ``builtins.float``.
    choice: list[Any] | None = Field(None, description="values to pick one of", min_length=1)
    int: tuple[builtins.int, builtins.int] | None = Field(
        None, description="[lo, hi]: an integer from lo to hi, both included"
    )
    float: tuple[builtins.float, builtins.float, builtins.float] | None = Field(
        None, description="[lo, hi, step]: lo, lo+step, ... up to hi"
    )

    @field_validator("int")
    @classmethod
    def _int_range(
        cls, value: tuple[builtins.int, builtins.int] | None
    ) -> tuple[builtins.int, builtins.int] | None:
        if value is not None and value[0] > value[1]:
            raise ValueError(f"int range must be [lo, hi] with lo <= hi, got {list(value)}")
        return value

    @field_validator("float")
    @classmethod
    def _float_range(
        cls, value: tuple[builtins.float, builtins.float, builtins.float] | None
    ) -> tuple[builtins.float, builtins.float, builtins.float] | None:
        if value is None:
            return None
        lo, hi, step = value
        if not all(math.isfinite(v) for v in value):
            raise ValueError(f"float range must be finite numbers, got {list(value)}")
        if lo > hi:
            raise ValueError(f"float range must be [lo, hi, step] with lo <= hi, got {list(value)}")
        if step <= 0:
            raise ValueError(f"float step must be > 0, got {step}")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ParameterSpec:
        given = [k for k in ("choice", "int", "float") if getattr(self, k) is not None]
        if len(given) != 1:
            what = "none" if not given else " and ".join(given)
            raise ValueError(
                f"a parameter is drawn one way: give exactly one of choice, int, float (got {what})"
            )
        return self


class VariantSpec(BaseModel):
    """The parameters drawn per apprentice (``variant:`` in ``exercise.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parameters: dict[str, ParameterSpec] = Field(
        default_factory=dict, description="name → how to draw it"
    )

    @field_validator("parameters")
    @classmethod
    def _names(cls, value: dict[str, ParameterSpec]) -> dict[str, ParameterSpec]:
        for name in value:
            if not _NAME.fullmatch(name):
                raise ValueError(
                    f"parameter name {name!r} cannot be used as {{{{ {name} }}}}: use a letter "
                    f"or '_', then letters, digits or '_'"
                )
        return value


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# An escaped "\\{{", a placeholder "{{ ... }}" on one line, or an unclosed "{{".
_PLACEHOLDER = re.compile(r"(?P<escaped>\\\{\{)|\{\{(?P<body>[^\n]*?)\}\}|(?P<unclosed>\{\{)")


def variant_seed(course_secret: str, apprentice_id: str, exercise_id: str) -> int:
    """The apprentice's seed for an exercise: HMAC-SHA256, 53 bits, stable everywhere.

    The message is the JSON array ``[apprentice_id, exercise_id]`` so no pair of ids can
    collide with another by shifting a separator.
    """
    if not course_secret:
        raise VariantError("the course secret is empty; variants need the course's secret")
    message = json.dumps([apprentice_id, exercise_id], ensure_ascii=False).encode("utf-8")
    digest = hmac.new(course_secret.encode("utf-8"), message, hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - _SEED_BITS)


def _decimals(step: float) -> int:
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _draw(spec: ParameterSpec, rng: random.Random) -> Any:
    if spec.choice is not None:
        return rng.choice(spec.choice)
    if spec.int is not None:
        return rng.randint(spec.int[0], spec.int[1])
    assert spec.float is not None  # guaranteed by ParameterSpec._exactly_one
    lo, hi, step = spec.float
    steps = math.floor((hi - lo) / step + 1e-9)
    return round(lo + step * rng.randint(0, steps), _decimals(step))


def draw_variant(spec: VariantSpec | Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Draw every parameter of ``spec`` with ``random.Random(seed)``, in sorted name order.

    ``spec`` is a :class:`VariantSpec` or its YAML form (``{"parameters": {...}}``).
    """
    if not isinstance(spec, VariantSpec):
        try:
            spec = VariantSpec.model_validate(spec)
        except ValidationError as err:
            details = "; ".join(
                ".".join(str(p) for p in e["loc"]) + ": " + e["msg"].removeprefix("Value error, ")
                for e in err.errors(include_url=False)
            )
            raise VariantError(f"invalid variant spec: {details}") from None
    rng = random.Random(seed)
    return {name: _draw(spec.parameters[name], rng) for name in sorted(spec.parameters)}


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _substitute(text: str, variant: Mapping[str, Any], source: str, where: str = "") -> str:
    """Fill the placeholders of ``text``; errors name ``source`` and the line in ``text``
    (or, for a value inside data, the data path ``where``)."""

    def fail(match: re.Match[str], message: str) -> VariantError:
        line = None if where else _line_of(text, match.start())
        return VariantError(f"{where + ': ' if where else ''}{message}", source=source, line=line)

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "{{"
        if match.group("unclosed"):
            raise fail(
                match,
                "'{{' without a closing '}}' on the same line; write "
                "{{ name }}, or \\{{ for a literal '{{'",
            )
        name = match.group("body").strip()
        if not _NAME.fullmatch(name):
            raise fail(
                match,
                f"{match.group(0)!r} is not a placeholder: write {{{{ name }}}} "
                "with a parameter name, or \\{{ for a literal '{{'",
            )
        if name not in variant:
            known = ", ".join(sorted(variant)) or "(none)"
            raise fail(
                match,
                f"unknown variant parameter {name!r} in {match.group(0)!r}; "
                f"this exercise's parameters: {known}",
            )
        return str(variant[name])

    return _PLACEHOLDER.sub(replace, text)


def render_brief(markdown: str, variant: Mapping[str, Any], source: str = "README.md") -> str:
    """``markdown`` with each ``{{ name }}`` replaced by ``str(variant[name])``.

    ``source`` names the brief in errors (``README.md:12: unknown variant parameter ...``).
    """
    return _substitute(markdown, variant, source)


def render_title(title: str, variant: Mapping[str, Any]) -> str:
    """A check's title with the apprentice's variant filled in ("Level held at
    {{ setpoint }} m" → "Level held at 1.25 m"), as written when it cannot be rendered: a
    bad placeholder is the author's mistake (``simlab course lint`` reports it) and must not
    cost the apprentice a check or a report."""
    try:
        return _substitute(title, variant, "exercise.yaml", "title")
    except VariantError:
        return title


def render_value(
    value: Any, variant: Mapping[str, Any], source: str = "exercise.yaml", path: str = ""
) -> Any:
    """Fill placeholders inside data: a string that is exactly one ``{{ name }}`` becomes the
    parameter's value with its type (``"{{ setpoint }}"`` → ``1.25``); other strings get text
    substitution; mappings and lists are rendered item by item; other values pass through.
    Errors name ``source`` and the data path (``params.topic``) below ``path``.
    """
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value.strip())
        if whole and whole.group("body") is not None:
            name = whole.group("body").strip()
            if name in variant:
                return variant[name]
        return _substitute(value, variant, source, path or "(value)")
    if isinstance(value, Mapping):
        return {
            k: render_value(v, variant, source, f"{path}.{k}" if path else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [render_value(v, variant, source, f"{path}[{i}]") for i, v in enumerate(value)]
    return value
