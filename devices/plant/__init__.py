"""Process physics: vectorised numpy models of tanks, pumps, valves, heat, conveyors, motors."""

from devices.plant.plant import Plant
from devices.plant.signals import SignalTable

__all__ = ["Plant", "SignalTable"]
