"""The scenario file format: models, loading with clear errors, JSON Schema."""

from __future__ import annotations

import json

from simlab.scenario.devices import DeviceSpec, PlcSpec, SmartSensorSpec, TagSpec
from simlab.scenario.faults import FaultSpec
from simlab.scenario.loader import (
    bundled_scenarios,
    format_path,
    load_scenario,
    parse_scenario,
    resolve_scenario,
)
from simlab.scenario.model import FORMAT_VERSION, Scenario
from simlab.scenario.plant import PlantSpec, SignalDef, UnitSpec

__all__ = [
    "FORMAT_VERSION",
    "DeviceSpec",
    "FaultSpec",
    "PlantSpec",
    "PlcSpec",
    "Scenario",
    "SignalDef",
    "SmartSensorSpec",
    "TagSpec",
    "UnitSpec",
    "bundled_scenarios",
    "format_path",
    "json_schema",
    "load_scenario",
    "parse_scenario",
    "resolve_scenario",
]


def json_schema() -> str:
    """The JSON Schema of scenario files, for editors (``simlab schema``)."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "simlab scenario"
    return json.dumps(schema, indent=2)
