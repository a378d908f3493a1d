"""Engineering units: dimension, conversion and UNECE code of every unit a signal may carry.

A deliberately small table rather than pint: simlab needs the UN/CEFACT (Rec. 20) common
code of each unit for OPC UA ``EUInformation``, which pint does not know, and a closed
list lets ``simlab validate`` say exactly which units exist. Conversions are affine
(``si = value * scale + offset``) so that °C and K both work.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UNITS", "Unit", "convert", "lookup", "same_dimension"]


@dataclass(frozen=True)
class Unit:
    """One engineering unit."""

    symbol: str
    dimension: str
    scale: float
    unece: str
    description: str
    offset: float = 0.0


_TABLE = [
    Unit("", "dimensionless", 1.0, "C62", "no unit"),
    Unit("bool", "boolean", 1.0, "C62", "true/false"),
    Unit("count", "count", 1.0, "C62", "count of items or events"),
    Unit("state", "state", 1.0, "C62", "enumerated state code"),
    Unit("%", "ratio", 0.01, "P1", "percent"),
    Unit("m", "length", 1.0, "MTR", "metre"),
    Unit("cm", "length", 0.01, "CMT", "centimetre"),
    Unit("mm", "length", 0.001, "MMT", "millimetre"),
    Unit("m2", "area", 1.0, "MTK", "square metre"),
    Unit("m3", "volume", 1.0, "MTQ", "cubic metre"),
    Unit("L", "volume", 0.001, "LTR", "litre"),
    Unit("mL", "volume", 1e-6, "MLT", "millilitre"),
    Unit("m3/h", "flow", 1 / 3600, "MQH", "cubic metre per hour"),
    Unit("m3/s", "flow", 1.0, "MQS", "cubic metre per second"),
    Unit("L/min", "flow", 0.001 / 60, "L2", "litre per minute"),
    Unit("L/s", "flow", 0.001, "G51", "litre per second"),
    Unit("degC", "temperature", 1.0, "CEL", "degree Celsius", offset=273.15),
    Unit("K", "temperature", 1.0, "KEL", "kelvin"),
    Unit("Pa", "pressure", 1.0, "PAL", "pascal"),
    Unit("kPa", "pressure", 1000.0, "KPA", "kilopascal"),
    Unit("bar", "pressure", 1e5, "BAR", "bar"),
    Unit("s", "time", 1.0, "SEC", "second"),
    Unit("min", "time", 60.0, "MIN", "minute"),
    Unit("h", "time", 3600.0, "HUR", "hour"),
    Unit("rpm", "rotation", 1 / 60, "RPM", "revolution per minute"),
    Unit("Hz", "frequency", 1.0, "HTZ", "hertz"),
    Unit("1/min", "rate", 1 / 60, "C94", "per minute"),
    Unit("A", "current", 1.0, "AMP", "ampere"),
    Unit("V", "voltage", 1.0, "VLT", "volt"),
    Unit("W", "power", 1.0, "WTT", "watt"),
    Unit("kW", "power", 1000.0, "KWT", "kilowatt"),
    Unit("kg", "mass", 1.0, "KGM", "kilogram"),
    Unit("m/s", "velocity", 1.0, "MTS", "metre per second"),
    Unit("mm/s", "velocity", 0.001, "C16", "millimetre per second"),
]

UNITS: dict[str, Unit] = {unit.symbol: unit for unit in _TABLE}


def lookup(symbol: str) -> Unit:
    """The unit for ``symbol``; ``KeyError`` if simlab does not know it."""
    return UNITS[symbol]


def same_dimension(a: str, b: str) -> bool:
    """True when values in unit ``a`` can be converted to unit ``b``."""
    return UNITS[a].dimension == UNITS[b].dimension


def convert(value: float, source: str, target: str) -> float:
    """Convert ``value`` from unit ``source`` to unit ``target`` of the same dimension."""
    if source == target:
        return value
    src, dst = UNITS[source], UNITS[target]
    if src.dimension != dst.dimension:
        raise ValueError(f"cannot convert {src.dimension} ({source}) to {dst.dimension} ({target})")
    return ((value * src.scale + src.offset) - dst.offset) / dst.scale
