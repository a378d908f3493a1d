"""The asset registry: tree from declared and observed tags, last values, liveness marks."""

from __future__ import annotations

import math
from typing import Any

import pytest

from simlab.bus.uns import UnsMessage, UnsPayloadError, UnsTopicError
from simlab.errors import SimlabError
from simlab.platform.registry import AssetRegistry, TagDeclaration, TagInfo, UnknownPath

LINE = "acme/lyon/water/line-1"
TANK = f"{LINE}/cell-1/tank-1"
PUMP = f"{LINE}/cell-1/pump-1"
LEVEL = f"{TANK}/level"
TEMP = f"{TANK}/temperature"
SPEED = f"{PUMP}/speed"
OTHER_SITE = "acme/paris/packaging/line-9/filler/valve-2/position"
T0 = 1_772_352_000.0


@pytest.fixture
def registry() -> AssetRegistry:
    return AssetRegistry(
        [
            TagDeclaration(LEVEL, unit="m", description="tank 1 level", source="plc-1"),
            TagDeclaration(TEMP, unit="degC"),
        ]
    )


def test_declared_tags_have_metadata_and_no_value(registry: AssetRegistry) -> None:
    info = registry.tag(LEVEL)
    assert info == TagInfo(
        path=LEVEL,
        asset=TANK,
        name="level",
        unit="m",
        description="tank 1 level",
        source="plc-1",
        declared=True,
    )
    assert info.value is None and info.ts is None and info.quality is None
    assert len(registry) == 2 and LEVEL in registry and SPEED not in registry


def test_observe_keeps_newest_value_and_adds_new_paths(registry: AssetRegistry) -> None:
    registry.observe(LEVEL, 1.25, T0, "Good", unit="ft", source="gateway")
    info = registry.observe(LEVEL, 1.0, T0 - 5)  # older: ignored (out of order)
    assert (info.value, info.ts, info.quality) == (1.25, T0, "Good")
    assert info.unit == "m"  # a declared unit is never overridden
    assert info.source == "plc-1"

    new = registry.observe(SPEED, 1450, T0, "GoodClamped", unit="rpm", source="plc-2")
    assert new.declared is False
    assert (new.asset, new.name, new.unit, new.source, new.value) == (
        PUMP,
        "speed",
        "rpm",
        "plc-2",
        1450,
    )
    assert [t.path for t in registry.tags()] == sorted([LEVEL, TEMP, SPEED])


def test_non_finite_value_becomes_none_with_bad_quality(registry: AssetRegistry) -> None:
    info = registry.observe(LEVEL, math.nan, T0)
    assert info.value is None and info.quality == "Bad"
    info = registry.observe(LEVEL, math.inf, T0 + 1, "BadSensorFailure")
    assert info.value is None and info.quality == "BadSensorFailure"


def test_observe_message_and_redeclare_keeps_value(registry: AssetRegistry) -> None:
    message = UnsMessage(value=21.5, unit="degC", ts_ms=int(T0 * 1000) + 250, source="s-1")
    registry.observe_message(TEMP, message)
    assert registry.tag(TEMP).ts == T0 + 0.25
    again = registry.declare(TEMP, description="tank 1 temperature")
    assert again.value == 21.5 and again.unit == "degC" and again.description != ""


def test_bad_paths_and_qualities_are_clear_errors(registry: AssetRegistry) -> None:
    with pytest.raises(UnsTopicError, match="levels"):
        registry.observe("acme/lyon/level", 1.0, T0)
    with pytest.raises(UnsTopicError, match="lowercase"):
        registry.declare("acme/Lyon/water/line-1/cell-1/tank-1/level")
    with pytest.raises(UnsPayloadError, match="quality"):
        registry.observe(LEVEL, 1.0, T0, "Fine")


def test_tags_prefix_matches_whole_segments(registry: AssetRegistry) -> None:
    registry.observe("acme/lyon/water/line-10/cell-1/tank-1/level", 2.0, T0)
    registry.observe(OTHER_SITE, 0.5, T0)
    assert [t.path for t in registry.tags(LINE)] == [LEVEL, TEMP]
    assert [t.path for t in registry.tags(LINE + "/")] == [LEVEL, TEMP]
    assert [t.path for t in registry.tags("acme/paris")] == [OTHER_SITE]
    assert [t.path for t in registry.tags(LEVEL)] == [LEVEL]
    assert len(registry.tags()) == len(registry.tags("")) == 4


def test_unknown_tag_suggests_a_close_path(registry: AssetRegistry) -> None:
    with pytest.raises(UnknownPath) as caught:
        registry.tag(LEVEL.replace("level", "levle"))
    assert f"did you mean {LEVEL!r}" in str(caught.value)
    assert isinstance(caught.value, SimlabError) and isinstance(caught.value, LookupError)
    assert registry.get("nope") is None


def test_liveness_follows_the_latest_mark_on_a_node_or_above(registry: AssetRegistry) -> None:
    registry.observe(SPEED, 1.0, T0)
    assert registry.status(TANK).state == "unknown"

    registry.mark_online(LINE, ts=T0)  # NBIRTH of the edge node serving the line
    assert {s.path: s.state for s in registry.assets()} == {TANK: "online", PUMP: "online"}

    registry.mark_stale(LINE, "NDEATH of edge node line-1", ts=T0 + 10)
    pump = registry.status(PUMP)
    assert (pump.state, pump.reason, pump.since, pump.decided_by) == (
        "stale",
        "NDEATH of edge node line-1",
        T0 + 10,
        LINE,
    )

    registry.mark_online(TANK, ts=T0 + 20)  # DBIRTH of one device only
    assert registry.status(TANK).state == "online"
    assert registry.status(PUMP).state == "stale"

    registry.mark_online(LINE + "/", ts=T0 + 30)  # next NBIRTH: the whole line again
    assert registry.status(PUMP).state == "online"
    registry.mark_stale(PUMP, "  ")
    assert registry.status(PUMP).reason == "stale"
    assert registry.status(LINE).state == "online"  # a child's mark does not move its parent


def test_marks_validate_the_node_path(registry: AssetRegistry) -> None:
    with pytest.raises(UnsTopicError, match="1 to 6 segments"):
        registry.mark_online(LEVEL)  # a tag, not a node
    with pytest.raises(UnsTopicError, match="1 to 6 segments"):
        registry.mark_stale("", "x")
    with pytest.raises(UnsTopicError, match="site segment"):
        registry.mark_online("acme/ly on")


def _find(nodes: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(node for node in nodes if node["name"] == name)


def test_tree_nests_the_isa95_levels_with_tags_on_assets(registry: AssetRegistry) -> None:
    registry.observe(LEVEL, 1.5, T0)
    registry.observe(OTHER_SITE, 0.5, T0)
    registry.mark_stale("acme/paris/packaging/line-9/filler/valve-3", "DDEATH", ts=T0)
    tree = registry.tree()
    assert tree["tags"] == 3 and tree["assets"] == 3  # tank-1, valve-2, marked valve-3

    (acme,) = tree["enterprises"]
    assert (acme["level"], acme["path"], acme["tags"]) == ("enterprise", "acme", [])
    assert [site["name"] for site in acme["children"]] == ["lyon", "paris"]
    node = acme
    for name, level in zip(
        ["lyon", "water", "line-1", "cell-1", "tank-1"],
        ["site", "area", "line", "cell", "asset"],
        strict=True,
    ):
        node = _find(node["children"], name)
        assert node["level"] == level
    assert node["path"] == TANK and node["children"] == []
    assert [tag["name"] for tag in node["tags"]] == ["level", "temperature"]
    level = node["tags"][0]
    assert (level["value"], level["unit"], level["declared"]) == (1.5, "m", True)

    filler = acme
    for name in ["paris", "packaging", "line-9", "filler"]:
        filler = _find(filler["children"], name)
    valves = {child["name"]: child for child in filler["children"]}
    assert valves["valve-2"]["state"] == "unknown" and len(valves["valve-2"]["tags"]) == 1
    assert valves["valve-3"]["state"] == "stale" and valves["valve-3"]["tags"] == []
    assert valves["valve-3"]["reason"] == "DDEATH"


def test_empty_registry_has_an_empty_tree() -> None:
    assert AssetRegistry().tree() == {"enterprises": [], "assets": 0, "tags": 0}
