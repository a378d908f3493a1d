"""Shared building blocks of the scenario schema."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from simlab.units import UNITS

__all__ = ["Name", "Range", "Spec", "UnitSymbol"]


class Spec(BaseModel):
    """Base of every scenario model: frozen, and unknown fields are errors (typos surface)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Name = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=48),
    Field(description="lowercase name: a letter, then letters, digits or '_'"),
]


def _known_unit(symbol: str) -> str:
    if symbol not in UNITS:
        known = ", ".join(repr(s) for s in UNITS if s)
        raise ValueError(f"unknown unit {symbol!r}; simlab knows {known}")
    return symbol


UnitSymbol = Annotated[str, AfterValidator(_known_unit), Field(description="engineering unit")]


def _ordered(pair: tuple[float, float]) -> tuple[float, float]:
    low, high = pair
    if not low < high:
        raise ValueError(f"range must be [low, high] with low < high, got [{low}, {high}]")
    return pair


Range = Annotated[
    tuple[float, float],
    AfterValidator(_ordered),
    Field(description="[low, high] in the tag's unit"),
]
