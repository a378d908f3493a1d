"""The committed JSON Schema (docs/scenario.schema.json) is the one the code exports."""

from __future__ import annotations

import json
from pathlib import Path

from simlab.scenario import json_schema

DOC = Path(__file__).resolve().parents[2] / "docs" / "scenario.schema.json"


def test_committed_schema_is_current() -> None:
    committed = json.loads(DOC.read_text(encoding="utf-8"))
    assert committed == json.loads(json_schema()), (
        "docs/scenario.schema.json is stale: run `simlab schema > docs/scenario.schema.json`"
    )
