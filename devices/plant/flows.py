"""Helpers to route flows between units and tanks by tank position (-1: no tank)."""

from __future__ import annotations

import numpy as np

from devices.plant.signals import FloatArray, IndexArray

__all__ = ["levels_at", "sum_by_tank"]


def levels_at(tank: IndexArray, levels: FloatArray) -> FloatArray:
    """Level of the referenced tank, 0 where there is none (-1)."""
    if len(levels) == 0:
        return np.zeros(len(tank))
    return np.where(tank >= 0, levels[np.maximum(tank, 0)], 0.0)


def sum_by_tank(tank: IndexArray, flows: FloatArray, n_tanks: int) -> FloatArray:
    """Sum flows per referenced tank (entries with no tank are dropped)."""
    mask = tank >= 0
    return np.bincount(tank[mask], weights=flows[mask], minlength=n_tanks).astype(np.float64)
