"""The platform HTTP API: auth, every endpoint against a real historian and alarm engine,
error bodies, rules hot reload, the OpenAPI document, and a real server on a socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from simlab.platform.alarms import AlarmEngine, AlarmState
from simlab.platform.api import (
    ApiServerError,
    PlatformState,
    create_app,
    parse_duration,
    parse_time,
    serve_api,
)
from simlab.platform.historian import Sample, SqliteHistorian
from simlab.platform.kpi import OeeResult, oee
from simlab.platform.registry import AssetRegistry, TagDeclaration
from simlab.platform.rules import RulesFile, load_rules

T0 = 1_772_352_000.0  # 2026-03-01T08:00:00Z, the simulated "now"
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LINE = "acme/lyon/water/line-1"
TANK = f"{LINE}/cell-1/tank-1"
LEVEL = f"{TANK}/level"
TEMP = f"{TANK}/temperature"
STATE = f"{LINE}/cell-1/packml/state"
PRODUCED = f"{LINE}/cell-1/packml/produced"
GOOD = f"{LINE}/cell-1/packml/good"
LEGACY = "acme/plant1/water/tank9/level"  # stored by the historian only, not a UNS path

RULES = f"""\
format_version: 1
alarms:
  - name: LEVEL_HI
    tag: {LEVEL}
    kind: HI
    limit: 50
    severity: 700
    message: Tank 1 level high
  - name: LEVEL_LO
    tag: {LEVEL}
    kind: LO
    limit: -5
"""

NEW_RULES = f"""\
format_version: 1
alarms:
  - name: LEVEL_HI
    tag: {LEVEL}
    kind: HI
    limit: 70
  - name: TEMP_HI
    tag: {TEMP}
    kind: HI
    limit: 30
deadbands:
  {LEVEL}: 0.5
"""

BAD_RULES = f"""\
format_version: 1
alarms:
  - name: LEVEL_HI
    tag: {LEVEL}
    kind: HI
    limit: high
  - name: LEVEL_LO
    tag: {LEVEL}
    kind: HX
    limit: 3
"""


class Lab:
    """A platform with data: level 0..59 every 10 s over the last 10 minutes, alarms fed."""

    def __init__(self, tmp_path: Path) -> None:
        self.historian = SqliteHistorian(tmp_path / "history.db")
        self.rules_path = tmp_path / "rules.yaml"
        self.rules_path.write_text(RULES, encoding="utf-8")
        self.engine = AlarmEngine(load_rules(self.rules_path).alarms)
        self.registry = AssetRegistry(
            [TagDeclaration(LEVEL, unit="m", source="plc-1"), TagDeclaration(TEMP, unit="degC")]
        )
        self.reloads: list[RulesFile] = []
        self.oee_enabled = True
        for i in range(60):
            ts, value = T0 - 600 + 10 * i, float(i)
            self.historian.write(LEVEL, ts, value, source="plc-1")
            self.registry.observe(LEVEL, value, ts, source="plc-1")
            self.engine.evaluate(LEVEL, value, ts)
        self.historian.write(LEGACY, T0 - 30, 4.0)
        # A line: Execute for the hour except 10 minutes Held; 2400 made, 2280 good.
        self.historian.write_many(
            [
                Sample(STATE, T0 - 3600, 6.0),
                Sample(STATE, T0 - 1800, 11.0),
                Sample(STATE, T0 - 1200, 6.0),
                Sample(PRODUCED, T0 - 3600, 0.0),
                Sample(PRODUCED, T0 - 1, 2400.0),
                Sample(GOOD, T0 - 3600, 0.0),
                Sample(GOOD, T0 - 1, 2280.0),
            ]
        )
        self.historian.flush()
        self.platform = PlatformState(
            historian=self.historian,
            alarms=self.engine,
            registry=self.registry,
            rules_path=self.rules_path,
            reload_rules=self.reload,
            oee=self.oee,
            now=lambda: T0,
        )

    def reload(self, rules: RulesFile) -> None:
        self.reloads.append(rules)
        self.engine.replace_definitions(rules.alarms)
        self.historian.set_deadbands(rules.deadbands)

    def series(self, tag: str, end: float) -> list[tuple[float, float | None]]:
        return [(s.ts, s.value) for s in self.historian.history(tag, 0.0, end + 1e-6)]

    def oee(self, start: float, end: float) -> OeeResult | None:
        if not self.oee_enabled:
            return None
        return oee(
            self.series(STATE, end),
            self.series(PRODUCED, end),
            self.series(GOOD, end),
            start,
            end,
            ideal_rate_per_min=60.0,
        )


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path)


@pytest.fixture
async def client(lab: Lab) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(lab.platform, TOKEN)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://simlab") as http:
        yield http
    lab.historian.close()


async def get(client: httpx.AsyncClient, url: str, **params: Any) -> Any:
    response = await client.get(url, params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert body["detail"] and "Traceback" not in response.text
    return body


# --- auth ----------------------------------------------------------------------------------


async def test_missing_token_is_401_with_json_and_www_authenticate(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/assets")
    body = assert_error(response, 401, "unauthorized")
    assert "Authorization: Bearer" in body["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer wrong", f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer"])
async def test_wrong_token_is_401(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get("/api/tags", headers={"Authorization": header})
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer realm=")


async def test_health_openapi_and_docs_are_public(client: httpx.AsyncClient) -> None:
    health = await client.get("/api/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["now"] == T0 and health.json()["now_iso"] == "2026-03-01T08:00:00.000Z"
    assert (await client.get("/api/openapi.json")).status_code == 200
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "/api/openapi.json" in docs.text


def test_empty_token_is_refused(lab: Lab) -> None:
    with pytest.raises(ValueError, match="token"):
        create_app(lab.platform, " ")


async def test_unknown_endpoint_and_method_are_json(client: httpx.AsyncClient) -> None:
    body = assert_error(await client.get("/api/nothing", headers=AUTH), 404, "not found")
    assert "/api/openapi.json" in body["detail"]
    assert_error(await client.delete("/api/assets", headers=AUTH), 405, "method not allowed")


# --- assets and tags -------------------------------------------------------------------------


async def test_assets_tree(client: httpx.AsyncClient, lab: Lab) -> None:
    lab.registry.mark_stale(LINE, "NDEATH", ts=T0 - 5)
    tree = await get(client, "/api/assets")
    assert (tree["assets"], tree["tags"]) == (1, 2)
    node = tree["enterprises"][0]
    for _ in range(5):
        (node,) = node["children"]
    assert (node["path"], node["level"], node["state"]) == (TANK, "asset", "stale")
    assert (node["reason"], node["decided_by"]) == ("NDEATH", LINE)
    level = node["tags"][0]
    assert (level["name"], level["value"], level["ts"], level["unit"]) == (
        "level",
        59.0,
        T0 - 10,
        "m",
    )


async def test_tags_merge_registry_and_historian(client: httpx.AsyncClient) -> None:
    tags = await get(client, "/api/tags")
    by_path = {t["path"]: t for t in tags}
    assert list(by_path) == sorted([LEVEL, TEMP, STATE, PRODUCED, GOOD, LEGACY])
    level = by_path[LEVEL]
    assert (level["declared"], level["value"], level["unit"]) == (True, 59.0, "m")
    assert (level["first_stored"], level["last_stored"]) == (T0 - 600, T0 - 10)
    assert by_path[TEMP]["first_stored"] is None  # declared, never stored
    legacy = by_path[LEGACY]
    assert (legacy["declared"], legacy["asset"], legacy["name"]) == (
        False,
        "acme/plant1/water/tank9",
        "level",
    )
    assert [t["path"] for t in await get(client, "/api/tags", prefix=TANK)] == [LEVEL, TEMP]
    assert [t["path"] for t in await get(client, "/api/tags", prefix="acme/plant1")] == [LEGACY]
    assert await get(client, "/api/tags", prefix="acme/lyo") == []


async def test_latest_from_registry_then_historian(client: httpx.AsyncClient) -> None:
    latest = await get(client, f"/api/tags/{LEVEL}/latest")
    assert latest == {
        "path": LEVEL,
        "value": 59.0,
        "ts": T0 - 10,
        "ts_iso": "2026-03-01T07:59:50.000Z",
        "quality": "Good",
        "unit": "m",
        "source": "plc-1",
    }
    legacy = await get(client, f"/api/tags/{LEGACY}/latest")
    assert (legacy["value"], legacy["ts"], legacy["unit"]) == (4.0, T0 - 30, None)


async def test_latest_of_unknown_or_silent_tag_is_404(client: httpx.AsyncClient) -> None:
    typo = LEVEL.replace("level", "levle")
    body = assert_error(
        await client.get(f"/api/tags/{typo}/latest", headers=AUTH), 404, "not found"
    )
    assert f"did you mean {LEVEL!r}" in body["detail"]
    body = assert_error(await client.get(f"/api/tags/{TEMP}/latest", headers=AUTH), 404, "no value")
    assert "no sample" in body["detail"]


# --- history -----------------------------------------------------------------------------------


async def test_raw_history_defaults_to_the_last_hour(client: httpx.AsyncClient) -> None:
    history = await get(client, f"/api/tags/{LEVEL}/history")
    assert (history["start"], history["end"], history["bucket"], history["agg"]) == (
        T0 - 3600,
        T0,
        None,
        None,
    )
    assert len(history["samples"]) == 60 and history["buckets"] == []
    assert history["samples"][0] == {
        "ts": T0 - 600,
        "value": 0.0,
        "quality": "Good",
        "source": "plc-1",
    }


@pytest.mark.parametrize(
    ("agg", "expected"),
    [
        ("avg", [6 * k + 2.5 for k in range(10)]),
        ("min", [6.0 * k for k in range(10)]),
        ("max", [6.0 * k + 5 for k in range(10)]),
        ("count", [6.0] * 10),
        ("last", [6.0 * k + 5 for k in range(10)]),
    ],
)
async def test_history_aggregates_per_bucket(
    client: httpx.AsyncClient, agg: str, expected: list[float]
) -> None:
    history = await get(
        client, f"/api/tags/{LEVEL}/history", start="-10m", end="now", bucket="1m", agg=agg
    )
    assert (history["bucket"], history["agg"], history["samples"]) == (60.0, agg, [])
    assert [b["start"] for b in history["buckets"]] == [T0 - 600 + 60 * k for k in range(10)]
    assert [b["value"] for b in history["buckets"]] == pytest.approx(expected)


async def test_history_time_forms(client: httpx.AsyncClient) -> None:
    iso = await get(
        client,
        f"/api/tags/{LEVEL}/history",
        start="2026-03-01T07:50:00Z",
        end="2026-03-01T09:00:00+01:00",
        agg="max",
    )
    assert (iso["start"], iso["end"], iso["bucket"]) == (T0 - 600, T0, 600.0)
    assert iso["buckets"] == [{"start": T0 - 600, "value": 59.0}]
    epoch = await get(client, f"/api/tags/{LEVEL}/history", start=str(T0 - 100), end=str(T0))
    assert [s["value"] for s in epoch["samples"]] == [50.0 + i for i in range(10)]
    averaged = await get(client, f"/api/tags/{LEVEL}/history", start="now-1min", bucket="30")
    assert averaged["agg"] == "avg"
    assert [b["value"] for b in averaged["buckets"]] == [55.0, 58.0]


@pytest.mark.parametrize(
    ("params", "path", "needle"),
    [
        ({"start": "yesterday"}, "query.start", "not a time"),
        ({"start": "2026-03-01T07:00:00"}, "query.start", "no time zone"),
        ({"start": "-3600"}, "query.start", "give a unit"),
        ({"end": "nan"}, "query.end", "not a finite time"),
        ({"start": "-1h", "end": "-2h"}, "query.end", "window is empty"),
        ({"bucket": "fast"}, "query.bucket", "not a duration"),
        ({"bucket": "0"}, "query.bucket", "duration > 0"),
        ({"bucket": "1ms", "start": "-1d"}, "query.bucket", "more than 100000"),
        ({"agg": "median"}, "query.agg", "'avg', 'min', 'max', 'count' or 'last'"),
    ],
)
async def test_history_bad_parameters_are_422(
    client: httpx.AsyncClient, params: dict[str, str], path: str, needle: str
) -> None:
    response = await client.get(f"/api/tags/{LEVEL}/history", params=params, headers=AUTH)
    body = assert_error(response, 422, "invalid request")
    assert [p["path"] for p in body["problems"]] == [path]
    assert needle in body["problems"][0]["message"]
    assert needle in body["detail"]


async def test_history_of_unknown_tag_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/tags/{TANK}/levels/history", headers=AUTH)
    assert f"did you mean {LEVEL!r}" in assert_error(response, 404, "not found")["detail"]


async def test_closed_historian_is_503_json(client: httpx.AsyncClient, lab: Lab) -> None:
    lab.historian.close()
    response = await client.get(f"/api/tags/{LEVEL}/history", headers=AUTH)
    assert "closed" in assert_error(response, 503, "historian unavailable")["detail"]


# --- alarms ----------------------------------------------------------------------------------


async def test_alarm_list_active_and_all(client: httpx.AsyncClient) -> None:
    active = await get(client, "/api/alarms")
    assert [(a["name"], a["state"], a["active"], a["acknowledged"]) for a in active] == [
        ("LEVEL_HI", "ACTIVE_UNACK", True, False)
    ]
    assert (active[0]["since"], active[0]["value"], active[0]["severity"]) == (
        T0 - 600 + 510,
        59.0,
        700,
    )
    every = await get(client, "/api/alarms", state="all")
    assert [(a["name"], a["state"]) for a in every] == [
        ("LEVEL_HI", "ACTIVE_UNACK"),
        ("LEVEL_LO", "CLEARED_ACK"),
    ]
    assert_error(await client.get("/api/alarms?state=open", headers=AUTH), 422, "invalid request")


async def test_acknowledge_lifecycle(client: httpx.AsyncClient, lab: Lab) -> None:
    response = await client.post(
        "/api/alarms/LEVEL_HI/ack", json={"user": "alice", "comment": "on it"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    event = response.json()
    assert (event["kind"], event["state"], event["user"], event["comment"], event["ts"]) == (
        "acknowledged",
        "ACTIVE_ACK",
        "alice",
        "on it",
        T0,
    )
    assert lab.engine.state("LEVEL_HI") is AlarmState.ACTIVE_ACK

    again = await client.post("/api/alarms/LEVEL_HI/ack", json={"user": "bob"}, headers=AUTH)
    assert "already acknowledged" in assert_error(again, 409, "conflict")["detail"]
    normal = await client.post("/api/alarms/LEVEL_LO/ack", json={"user": "bob"}, headers=AUTH)
    assert "normal state" in assert_error(normal, 409, "conflict")["detail"]

    journal = await get(client, "/api/alarms/journal")
    assert [(e["alarm"], e["kind"]) for e in journal] == [
        ("LEVEL_HI", "raised"),
        ("LEVEL_HI", "acknowledged"),
    ]
    assert [e["seq"] for e in journal] == [1, 2]
    only = await get(client, "/api/alarms/journal", kind="acknowledged", start="-1s")
    assert [e["user"] for e in only] == ["alice"]
    assert await get(client, "/api/alarms/journal", end="-1h") == []
    assert len(await get(client, "/api/alarms/journal", limit=1)) == 1


async def test_acknowledge_unknown_or_invalid(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/alarms/LEVEL_HJ/ack", json={"user": "a"}, headers=AUTH)
    assert "did you mean 'LEVEL_HI'" in assert_error(response, 404, "not found")["detail"]
    for body in ({"user": "  "}, {"comment": "x"}, {"user": "a", "extra": 1}):
        response = await client.post("/api/alarms/LEVEL_HI/ack", json=body, headers=AUTH)
        problems = assert_error(response, 422, "invalid request")["problems"]
        assert problems and problems[0]["path"].startswith("body")
    bad_json = await client.post(
        "/api/alarms/LEVEL_HI/ack",
        content=b"{user",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert_error(bad_json, 422, "invalid request")


# --- KPIs --------------------------------------------------------------------------------------


async def test_oee_over_the_last_hour(client: httpx.AsyncClient) -> None:
    result = await get(client, "/api/kpis/oee")
    assert (result["start"], result["end"]) == (T0 - 3600, T0)
    assert result["availability"] == pytest.approx(3000 / 3600)
    assert result["performance"] == pytest.approx(0.8)
    assert result["quality"] == pytest.approx(0.95)
    assert result["oee"] == pytest.approx(3000 / 3600 * 0.8 * 0.95)
    assert (result["apt"], result["pbt"], result["produced"], result["good"]) == (
        3000.0,
        3600.0,
        2400.0,
        2280.0,
    )
    assert (result["run_time"], result["counted_from"], result["reasons"]) == (
        3000.0,
        T0 - 3600,
        {},
    )


async def test_oee_with_figures_it_cannot_support_answers_them_null_with_reasons(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    # The line entered Execute a minute ago; the counters read 0 since (no bottle has reached
    # the outfeed yet), and the rejected counter has not been published at all.
    states = [(T0 - 60, 6.0)]
    good = [(T0 - 60, 0.0), (T0 - 1, 0.0)]
    rejected = [(T0 - 30, 0.0)]  # first stored half a minute ago

    def early(start: float, end: float) -> OeeResult | None:
        return oee(states, None, good, start, end, 60.0, rejected=rejected)

    lab.platform.oee = early
    result = await get(client, "/api/kpis/oee", start="-60s")
    assert (result["availability"], result["performance"], result["oee"]) == (1.0, 0.0, 0.0)
    assert (result["quality"], result["produced"], result["good"]) == (None, 0.0, 0.0)
    assert (result["counted_from"], result["run_time"]) == (T0 - 30, 30.0)
    assert "nothing produced" in result["reasons"]["quality"]
    assert set(result["reasons"]) == {"quality"}

    rejected[:] = [(T0 + 5, 0.0)]  # no reading of the rejected counter within the window
    result = await get(client, "/api/kpis/oee", start="-60s")
    figures = ("performance", "quality", "oee", "produced", "good", "counted_from")
    assert [result[name] for name in figures] == [None] * len(figures)
    assert result["availability"] == 1.0
    assert "no reading of the rejected counter" in result["reasons"]["performance"]
    assert set(result["reasons"]) == {"performance", "quality", "oee"}


async def test_oee_unavailable_or_undefined(client: httpx.AsyncClient, lab: Lab) -> None:
    early = await client.get("/api/kpis/oee", params={"start": "-2h", "end": "-1h"}, headers=AUTH)
    assert "planned busy time" in assert_error(early, 422, "kpi unavailable")["detail"]
    bad = await client.get("/api/kpis/oee", params={"start": "soon"}, headers=AUTH)
    assert assert_error(bad, 422, "invalid request")["problems"][0]["path"] == "query.start"
    lab.oee_enabled = False
    assert_error(await client.get("/api/kpis/oee", headers=AUTH), 404, "not available")


async def test_unexpected_exception_is_500_json_and_serving_goes_on(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    def broken(start: float, end: float) -> OeeResult | None:
        raise RuntimeError("boom")

    lab.platform.oee = broken
    response = await client.get("/api/kpis/oee", headers=AUTH)
    body = assert_error(response, 500, "internal error")
    assert "boom" not in response.text
    assert "server log" in body["detail"]
    assert (await client.get("/api/alarms", headers=AUTH)).status_code == 200


# --- rules -------------------------------------------------------------------------------------


async def test_get_rules_text_and_parsed(client: httpx.AsyncClient, lab: Lab) -> None:
    rules = await get(client, "/api/rules")
    assert (rules["text"], rules["problems"], rules["reloaded"]) == (RULES, [], False)
    assert [a["name"] for a in rules["rules"]["alarms"]] == ["LEVEL_HI", "LEVEL_LO"]
    assert rules["path"] == str(lab.rules_path)


async def test_get_rules_missing_or_invalid_file(client: httpx.AsyncClient, lab: Lab) -> None:
    lab.rules_path.write_text(BAD_RULES, encoding="utf-8")
    rules = await get(client, "/api/rules")
    assert rules["rules"] is None and len(rules["problems"]) == 2
    lab.rules_path.unlink()
    rules = await get(client, "/api/rules")
    assert (rules["text"], rules["rules"]) == ("", None)
    assert "PUT /api/rules" in rules["problems"][0]["hint"]


async def test_put_bad_rules_is_422_with_problems_and_changes_nothing(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    response = await client.put(
        "/api/rules", content=BAD_RULES, headers={**AUTH, "Content-Type": "application/yaml"}
    )
    body = assert_error(response, 422, "invalid rules")
    assert body["problems"] == [
        {
            "line": 6,
            "column": 5,
            "path": "alarms[0].limit",
            "message": "Input should be a valid number, unable to parse string as a number, "
            "got 'high'",
            "hint": "limit: limit in the tag's unit",
        },
        {
            "line": 9,
            "column": 5,
            "path": "alarms[1].kind",
            "message": "Input should be 'HI', 'HIHI', 'LO' or 'LOLO', got 'HX'",
            "hint": "use one of: 'HI', 'HIHI', 'LO' or 'LOLO'",
        },
    ]
    assert "2 problems" in body["detail"] and "rules.yaml:6:5" in body["detail"]
    assert lab.rules_path.read_text(encoding="utf-8") == RULES
    assert lab.reloads == []
    assert [d.name for d in lab.engine.definitions] == ["LEVEL_HI", "LEVEL_LO"]

    not_utf8 = await client.put("/api/rules", content=b"format_version: \xff", headers=AUTH)
    assert "UTF-8" in assert_error(not_utf8, 422, "invalid rules")["detail"]
    empty = await client.put("/api/rules", content=b"", headers=AUTH)
    assert assert_error(empty, 422, "invalid rules")["problems"]
    huge = await client.put("/api/rules", content=b"#" * (1024 * 1024 + 1), headers=AUTH)
    assert_error(huge, 413, "payload too large")


async def test_put_good_rules_writes_and_reloads_without_restart(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    assert lab.engine.state("LEVEL_HI") is AlarmState.ACTIVE_UNACK
    response = await client.put(
        "/api/rules", content=NEW_RULES, headers={**AUTH, "Content-Type": "application/yaml"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["reloaded"] is True and body["problems"] == []
    assert [a["name"] for a in body["rules"]["alarms"]] == ["LEVEL_HI", "TEMP_HI"]

    assert lab.rules_path.read_text(encoding="utf-8") == NEW_RULES
    assert not list(lab.rules_path.parent.glob(".rules.yaml.*"))  # no temporary left
    assert len(lab.reloads) == 1
    assert [(d.name, d.limit) for d in lab.engine.definitions] == [
        ("LEVEL_HI", 70.0),
        ("TEMP_HI", 30.0),
    ]
    assert lab.historian.deadbands == {LEVEL: 0.5}
    # The changed alarm restarted NORMAL against the last level (59 < 70): nothing active.
    assert await get(client, "/api/alarms") == []
    assert (await get(client, "/api/rules"))["text"] == NEW_RULES


# --- OpenAPI -----------------------------------------------------------------------------------

ENDPOINTS = {
    ("get", "/api/health"),
    ("get", "/api/assets"),
    ("get", "/api/tags"),
    ("get", "/api/tags/{path}/latest"),
    ("get", "/api/tags/{path}/history"),
    ("get", "/api/alarms"),
    ("get", "/api/alarms/journal"),
    ("post", "/api/alarms/{name}/ack"),
    ("get", "/api/kpis/oee"),
    ("get", "/api/rules"),
    ("put", "/api/rules"),
}


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


async def test_openapi_document_describes_every_endpoint(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] and doc["info"]["version"]
    operations = {
        (method, path)
        for path, item in doc["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert operations == ENDPOINTS
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "the platform's API token: Authorization: Bearer <token>",
    }
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # every 422 is documented as our ErrorBody
    for ref in _refs(doc):  # every reference resolves
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas
    for method, path in ENDPOINTS:
        operation = doc["paths"][path][method]
        assert "200" in operation["responses"]
        secured = operation.get("security") == [{"bearer": []}]
        assert secured is (path != "/api/health"), (method, path)
        if secured:
            error = operation["responses"]["401"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ErrorBody"}
    history = doc["paths"]["/api/tags/{path}/history"]["get"]
    assert {p["name"] for p in history["parameters"]} == {"path", "start", "end", "bucket", "agg"}
    assert "422" in history["responses"]
    put = doc["paths"]["/api/rules"]["put"]
    assert "application/yaml" in put["requestBody"]["content"]
    assert {"AssetTreeOut", "TagOut", "HistoryOut", "AlarmOut", "OeeOut", "RulesOut"} <= set(
        schemas
    )
    oee_out = schemas["OeeOut"]["properties"]
    for figure in ("performance", "quality", "oee", "produced", "good", "counted_from"):
        assert {"type": "null"} in oee_out[figure]["anyOf"], figure
    assert oee_out["availability"]["type"] == "number"
    assert oee_out["reasons"]["additionalProperties"] == {"type": "string"}
    assert "reasons" in doc["paths"]["/api/kpis/oee"]["get"]["description"]


# --- time parameters ---------------------------------------------------------------------------


def test_parse_time_and_duration() -> None:
    assert parse_time("now", T0) == T0
    assert parse_time(" -1h ", T0) == T0 - 3600
    assert parse_time("now-90s", T0) == T0 - 90
    assert parse_time("+500ms", T0) == T0 + 0.5
    assert parse_time("-2d", T0) == T0 - 172800
    assert parse_time("-1w", T0) == T0 - 604800
    assert parse_time("1772352000.5", T0) == T0 + 0.5
    assert parse_time("2026-03-01T08:00:00Z", 0.0) == T0
    assert parse_duration("90") == 90.0 and parse_duration("1.5min") == 90.0
    assert parse_duration("250ms") == 0.25 and parse_duration("2h") == 7200.0
    for bad in ("later", "1h ago", "2026-13-01T00:00:00Z", "inf"):
        with pytest.raises(ValueError, match="time"):
            parse_time(bad, T0)
    for bad in ("-1m", "x", "0s"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


# --- a real server -----------------------------------------------------------------------------


async def test_serve_api_on_a_real_socket(lab: Lab, free_port: Callable[[], int]) -> None:
    app = create_app(lab.platform, TOKEN)
    port = free_port()
    async with serve_api(app, "127.0.0.1", port) as running:
        assert (running.host, running.port) == ("127.0.0.1", port)
        assert running.url == f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=running.url, timeout=5.0) as http:
            assert (await http.get("/api/health")).json()["status"] == "ok"
            assert (await http.get("/api/assets")).status_code == 401
            latest = await http.get(f"/api/tags/{LEVEL}/latest", headers=AUTH)
            assert latest.json()["value"] == 59.0
            ack = await http.post("/api/alarms/LEVEL_HI/ack", json={"user": "eve"}, headers=AUTH)
            assert ack.status_code == 200

        with pytest.raises(ApiServerError, match="already in use"):  # same port twice
            async with serve_api(app, "127.0.0.1", port):
                pass
    with pytest.raises(httpx.ConnectError):  # stopped on exit
        async with httpx.AsyncClient(timeout=1.0) as http:
            await http.get(f"http://127.0.0.1:{port}/api/health")
    lab.historian.close()


async def test_serve_api_port_zero_and_bad_addresses(lab: Lab) -> None:
    app = create_app(lab.platform, TOKEN)
    async with serve_api(app, "127.0.0.1", 0) as running:
        assert running.port > 0
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 200")
        writer.close()
    with pytest.raises(ApiServerError, match="out of range"):
        async with serve_api(app, "127.0.0.1", 70000):
            pass
    with pytest.raises(ApiServerError, match="not one of this machine's"):
        async with serve_api(app, "192.0.2.1", 0):  # TEST-NET-1, never local
            pass
    lab.historian.close()
