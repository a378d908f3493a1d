"""Simulated time: one interface, a virtual clock and a real-time clock with a speed factor.

Models never read wall time; the lab asks its clock. A :class:`VirtualClock` only moves
when told (tests, grading, replays), so a run is a pure function of scenario and seed.
A :class:`RealTimeClock` follows the wall clock scaled by ``speed`` (live labs).
Both give simulated seconds since the scenario's epoch, and ``datetime_at`` turns them
into UTC timestamps for protocols.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta

__all__ = ["DEFAULT_EPOCH", "Clock", "RealTimeClock", "VirtualClock"]

DEFAULT_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class Clock(ABC):
    """Simulated seconds since ``epoch``; how they relate to wall time is the subclass's."""

    def __init__(self, epoch: datetime = DEFAULT_EPOCH) -> None:
        if epoch.tzinfo is None:
            raise ValueError("clock epoch must be timezone-aware (UTC)")
        self.epoch = epoch

    @abstractmethod
    def now(self) -> float:
        """Simulated seconds since the epoch."""

    @abstractmethod
    async def wait_until(self, sim_time: float) -> None:
        """Return once the simulated time may advance to ``sim_time``."""

    def datetime_at(self, sim_time: float) -> datetime:
        """The UTC timestamp of a simulated instant."""
        return self.epoch + timedelta(seconds=sim_time)


class VirtualClock(Clock):
    """A clock that moves only when the lab steps it: as fast as the CPU allows."""

    def __init__(self, epoch: datetime = DEFAULT_EPOCH) -> None:
        super().__init__(epoch)
        self._now = 0.0

    def now(self) -> float:
        return self._now

    def set(self, sim_time: float) -> None:
        """Move to ``sim_time`` (never backwards)."""
        if sim_time < self._now:
            raise ValueError(f"virtual clock cannot go back from {self._now} to {sim_time}")
        self._now = sim_time

    async def wait_until(self, sim_time: float) -> None:
        # Yield to the event loop so servers keep serving, but never wait for the wall clock.
        await asyncio.sleep(0)


class RealTimeClock(Clock):
    """Simulated time = wall time since start × ``speed``."""

    def __init__(self, speed: float = 1.0, epoch: datetime = DEFAULT_EPOCH) -> None:
        super().__init__(epoch)
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.speed = speed
        self._start = time.monotonic()

    def start(self) -> None:
        """Make now the simulated instant 0 (the lab calls this when it starts running)."""
        self._start = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._start) * self.speed

    async def wait_until(self, sim_time: float) -> None:
        delay = (sim_time - self.now()) / self.speed
        await asyncio.sleep(max(delay, 0.0))
