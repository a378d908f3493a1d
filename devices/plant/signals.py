"""The signal table: names, units and values of every plant signal in one float64 vector.

Keeping every signal in one array lets each unit model step all of its instances with a
few vectorised numpy operations (gather by index, compute, scatter back), and lets the
truth recorder copy the whole plant state with one ``ndarray.copy``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from simlab.scenario.plant import SignalDef

__all__ = ["FloatArray", "IndexArray", "SignalTable"]

FloatArray = npt.NDArray[np.float64]


class _HasSignals(Protocol):
    @property
    def name(self) -> str: ...

    def signals(self) -> list[SignalDef]: ...


IndexArray = npt.NDArray[np.intp]


@dataclass
class SignalTable:
    """Registry of plant signals; ``values[index[name]]`` is a signal's current value."""

    names: list[str] = field(default_factory=list)
    definitions: list[SignalDef] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    values: FloatArray = field(default_factory=lambda: np.zeros(0))

    def add(self, unit_name: str, signal: SignalDef) -> int:
        """Register ``unit_name.signal``; returns its index."""
        full = f"{unit_name}.{signal.name}"
        if full in self.index:
            raise ValueError(f"signal {full!r} registered twice")
        self.index[full] = len(self.names)
        self.names.append(full)
        self.definitions.append(signal)
        self.values = np.append(self.values, 0.0)
        return self.index[full]

    def add_units(self, units: Iterable[_HasSignals]) -> None:
        """Register every signal of every unit."""
        for unit in units:
            for signal in unit.signals():
                self.add(unit.name, signal)

    def indices(self, unit_names: list[str], signal: str) -> IndexArray:
        """Indices of ``<unit>.<signal>`` for each unit name, as an array for fancy indexing."""
        return np.array([self.index[f"{name}.{signal}"] for name in unit_names], dtype=np.intp)

    def unit_of(self, name: str) -> str:
        return self.definitions[self.index[name]].unit

    def __len__(self) -> int:
        return len(self.names)
