"""Models of the plant and its devices (layer 2): physics, sensors, PLC logic, faults.

Pure code: a model's ``step(dt)`` never awaits, reads a clock or touches a socket.
"""

from devices.device import Device
from devices.faults import FaultEngine
from devices.plant.plant import Plant
from devices.sensors import Quality, SensorBank

__all__ = ["Device", "FaultEngine", "Plant", "Quality", "SensorBank"]
