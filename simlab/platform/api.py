"""The platform's HTTP JSON API: assets, tags, history, alarms, KPIs and the rules file.

Built with FastAPI, so the OpenAPI 3 description (``/api/openapi.json``, browsable at
``/docs``) is generated from the pydantic models below and always matches the code.

Authentication
    Every endpoint except ``/api/health``, ``/api/openapi.json`` and ``/docs`` needs
    ``Authorization: Bearer <token>``. A missing or wrong token is a 401 with a JSON error
    body and a ``WWW-Authenticate: Bearer`` header (RFC 6750).

Errors
    Every error is JSON ``{"error": <what kind>, "detail": <what is wrong and how to fix it>,
    "problems": [...]}``; ``problems`` lists ``{line, column, path, message, hint}`` for a
    rules file or for request parameters (422). An unexpected exception is logged and
    answered with a 500 JSON body; the server keeps serving. Nobody sees a traceback.

Time
    Timestamps in responses are float seconds since the Unix epoch in *simulated* time.
    Query parameters ``start``/``end`` accept ISO-8601 with a zone (``2026-03-01T08:00:00Z``),
    epoch seconds (``1772352000``), ``now``, or a time relative to now (``-1h``, ``-15m``,
    ``now-30s``; units ms, s, m, min, h, d, w). When both are missing the window is the last
    hour; ``bucket`` is seconds or a duration (``60``, ``1m``).

Concurrency
    The platform objects are single-threaded (the SQLite historian belongs to the thread of
    the event loop), so every endpoint is ``async`` and calls them on the loop: no request
    ever runs in a worker thread. Queries are short; a long history should use ``bucket``.

:func:`serve_api` runs the app in-process with uvicorn, on the running event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import logging
import math
import os
import re
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simlab.errors import Problem, SimlabError
from simlab.platform.alarms import (
    AlarmEngine,
    AlarmError,
    AlarmEvent,
    AlarmKind,
    AlarmState,
    AlarmStatus,
    UnknownAlarm,
)
from simlab.platform.historian import Aggregate, Historian, HistorianError, Sample
from simlab.platform.kpi import KpiError, OeeResult
from simlab.platform.registry import AssetRegistry, AssetState, NodeLevel, TagInfo
from simlab.platform.rules import RulesError, RulesFile, parse_rules
from simlab.scenario.checks import did_you_mean

__all__ = [
    "API_VERSION",
    "ApiServerError",
    "PlatformState",
    "RunningApi",
    "create_app",
    "parse_duration",
    "parse_time",
    "serve_api",
]

API_VERSION: Final = "1.0.0"
"""Version of the HTTP API contract (``info.version`` of the OpenAPI document)."""

DEFAULT_WINDOW_S: Final = 3600.0
"""Length of the time window when a query gives neither ``start`` nor ``end``."""

MAX_BUCKETS: Final = 100_000
"""Most buckets one history query may ask for."""

MAX_RULES_BYTES: Final = 1024 * 1024
"""Largest rules file accepted by ``PUT /api/rules``."""

logger = logging.getLogger(__name__)


class ApiServerError(SimlabError):
    """The API server cannot start (address in use, permission, unknown host, ...)."""


# --- the platform the API serves -----------------------------------------------------------


@dataclass(slots=True)
class PlatformState:
    """What the API reads and drives; the platform service builds one and keeps it.

    ``reload_rules(rules)`` applies a validated rules file at once (alarm definitions,
    historian deadbands and retention); the API calls it after writing ``rules_path``.
    ``oee(window_start, window_end)`` returns the line's OEE over the window (epoch
    seconds), None when the platform has no OEE to offer, or raises
    :class:`~simlab.platform.kpi.KpiError` when the data do not allow it.
    ``now()`` is the simulated time in seconds since the Unix epoch.
    """

    historian: Historian
    alarms: AlarmEngine
    registry: AssetRegistry
    rules_path: Path
    reload_rules: Callable[[RulesFile], object]
    oee: Callable[[float, float], OeeResult | None]
    now: Callable[[], float]


# --- response and request models -----------------------------------------------------------

Scalar = bool | int | float | str | None
"""A tag value as the UNS carries it."""


class ProblemOut(BaseModel):
    """One thing wrong in a request or a rules file, with where and how to fix it."""

    line: int | None = Field(None, description="line in the rules file (1-based)")
    column: int | None = Field(None, description="column in the rules file (1-based)")
    path: str = Field("", description="field path, e.g. alarms[2].limit or query.start")
    message: str = Field(description="what is wrong")
    hint: str = Field("", description="how to fix it")


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: str = Field(description="the kind of error, e.g. 'unauthorized', 'not found'")
    detail: str = Field(description="what is wrong, where, and how to fix it")
    problems: list[ProblemOut] = Field(
        default_factory=list, description="each problem of an invalid request or rules file"
    )


class HealthOut(BaseModel):
    """Liveness of the API."""

    status: Literal["ok"] = "ok"
    now: float = Field(description="simulated time, seconds since the Unix epoch")
    now_iso: str = Field(description="simulated time, ISO-8601 UTC")
    api_version: str = API_VERSION


class TagOut(BaseModel):
    """A tag: registry metadata, last value, and the span of its stored history."""

    path: str = Field(description="UNS path enterprise/site/area/line/cell/asset/tag")
    asset: str = Field(description="path of the asset holding the tag")
    name: str = Field(description="the tag segment of the path")
    unit: str | None = None
    description: str = ""
    source: str = ""
    declared: bool = Field(False, description="declared ahead (True) or only observed")
    value: Scalar = None
    ts: float | None = Field(None, description="timestamp of the last value")
    quality: str | None = Field(None, description="OPC UA status name of the last value")
    first_stored: float | None = Field(None, description="oldest sample in the historian")
    last_stored: float | None = Field(None, description="newest sample in the historian")


class AssetNodeOut(BaseModel):
    """One node of the ISA-95 asset tree, with its liveness."""

    name: str
    level: NodeLevel
    path: str
    state: AssetState = Field(description="online, stale or unknown")
    reason: str = Field("", description="why the node is stale")
    since: float | None = Field(None, description="when the deciding mark was set")
    decided_by: str | None = Field(None, description="path of the node whose mark decides")
    children: list[AssetNodeOut] = []
    tags: list[TagOut] = []


class AssetTreeOut(BaseModel):
    """The asset tree: enterprises at the top, tags on the assets."""

    enterprises: list[AssetNodeOut]
    assets: int = Field(description="number of assets (six-segment nodes)")
    tags: int = Field(description="number of tags")


class LatestOut(BaseModel):
    """The newest value of one tag."""

    path: str
    value: Scalar
    ts: float
    ts_iso: str
    quality: str
    unit: str | None = None
    source: str = ""


class SampleOut(BaseModel):
    """One stored sample."""

    ts: float
    value: float | None
    quality: str
    source: str


class BucketOut(BaseModel):
    """One aggregated bucket ``[start, start + bucket)``; empty buckets are left out."""

    start: float
    value: float | None


class HistoryOut(BaseModel):
    """Raw samples (no ``bucket``/``agg``) or aggregated buckets of one tag over a window."""

    path: str
    start: float
    end: float
    bucket: float | None = Field(None, description="bucket length in seconds, if aggregated")
    agg: Aggregate | None = None
    samples: list[SampleOut] = Field(default_factory=list, description="raw samples")
    buckets: list[BucketOut] = Field(default_factory=list, description="aggregated buckets")


class AlarmOut(BaseModel):
    """One row of the alarm list."""

    name: str
    tag: str
    kind: AlarmKind
    state: AlarmState
    active: bool
    acknowledged: bool
    severity: int
    message: str
    since: float | None
    value: float | None


class AlarmEventOut(BaseModel):
    """One alarm journal entry."""

    seq: int
    ts: float
    kind: Literal["raised", "cleared", "acknowledged"]
    alarm: str
    tag: str
    alarm_kind: AlarmKind
    state: AlarmState
    value: float | None
    severity: int
    message: str
    user: str = ""
    comment: str = ""


class AckIn(BaseModel):
    """Who acknowledges an alarm, and why."""

    model_config = ConfigDict(extra="forbid")

    user: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] = (
        Field(description="who acknowledges (required)")
    )
    comment: Annotated[str, StringConstraints(max_length=1000)] = ""


class OeeOut(BaseModel):
    """OEE and its factors over a window (ISO 22400-2).

    A figure the data do not support is null, and ``reasons`` says why (by figure name):
    e.g. no counter reading before the window end, nothing produced yet, or a ratio that
    would leave [0, 1] (counters or state tag that disagree). No figure is clamped.
    """

    start: float = Field(description="window start, s since the Unix epoch")
    end: float = Field(description="window end, s since the Unix epoch")
    availability: float = Field(description="APT / PBT, within [0, 1]")
    performance: float | None = Field(
        description="produced × ideal cycle time / run time, within [0, 1]; null: see reasons"
    )
    quality: float | None = Field(description="good / produced, within [0, 1]; null: see reasons")
    oee: float | None = Field(
        description="availability × performance × quality (0 when the line did not run or "
        "made nothing), within [0, 1]; null: see reasons"
    )
    apt: float = Field(description="actual production time in the window, s")
    pbt: float = Field(description="planned busy time in the window, s")
    produced: float | None = Field(
        description="items produced (good + rejected) from counted_from to the window end; "
        "null without counter readings"
    )
    good: float | None = Field(
        description="good items from counted_from to the window end; null without counter readings"
    )
    run_time: float = Field(
        description="actual production time from counted_from to the window end, s: the "
        "denominator of performance"
    )
    counted_from: float | None = Field(
        description="where the counted span begins, s since the Unix epoch: the window start, "
        "or the first reading of a counter first seen inside the window; null when no counter "
        "has a reading before the window end"
    )
    reasons: dict[str, str] = Field(
        default_factory=dict,
        description="why a figure is null, by figure name (performance, quality, oee)",
    )


class RulesOut(BaseModel):
    """The rules file: its text, the rules parsed from it, or its problems."""

    path: str
    text: str
    rules: RulesFile | None = Field(None, description="the parsed rules (None when invalid)")
    problems: list[ProblemOut] = Field(default_factory=list)
    reloaded: bool = Field(False, description="True when this request put the rules in force")


# --- errors --------------------------------------------------------------------------------


class _HttpProblem(Exception):
    """An error response raised from an endpoint."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        problems: list[ProblemOut] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.body = ErrorBody(error=error, detail=detail, problems=problems or [])
        self.headers = headers


def _error(
    status: int,
    error: str,
    detail: str,
    problems: list[ProblemOut] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=error, detail=detail, problems=problems or [])
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


_PHRASES: Final = {
    400: "bad request",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    409: "conflict",
    413: "payload too large",
    415: "unsupported media type",
    422: "invalid request",
    500: "internal error",
    503: "unavailable",
}


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting the JSON error body for ``codes``."""
    return {
        code: {"model": ErrorBody, "description": _PHRASES.get(code, "error")} for code in codes
    }


class _CatchAll:
    """ASGI middleware: an unhandled exception becomes a 500 JSON body, never a traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            logger.exception("API %s %s failed", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = _error(
                500,
                "internal error",
                "the platform failed to answer this request; the error is in the server log "
                "(the API keeps serving)",
            )
            await response(scope, receive, send)


def _problem_out(problem: Problem) -> ProblemOut:
    return ProblemOut(
        line=problem.line,
        column=problem.column,
        path=problem.path,
        message=problem.message,
        hint=problem.hint,
    )


def _invalid(path: str, message: str, hint: str = "") -> _HttpProblem:
    return _HttpProblem(
        422,
        "invalid request",
        f"{path}: {message}" + (f" ({hint})" if hint else ""),
        problems=[ProblemOut(path=path, message=message, hint=hint)],
    )


# --- time parameters -----------------------------------------------------------------------

_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_UNITS_W: Final = {**_UNITS, "w": 604800.0}
_NUMBER: Final = r"(\d+(?:\.\d*)?|\.\d+)"
_RELATIVE: Final = re.compile(rf"(?:now)?\s*([+-])\s*{_NUMBER}\s*(ms|s|min|m|h|d|w)")
_DURATION: Final = re.compile(rf"{_NUMBER}\s*(ms|s|min|m|h|d|w)?")
_TIME_FORMS: Final = (
    "use ISO-8601 with a zone (2026-03-01T08:00:00Z), epoch seconds (1772352000), 'now', "
    "or a time relative to now (-1h, -15m, now-30s)"
)


def parse_time(text: str, now: float) -> float:
    """Epoch seconds of a query time: ISO-8601 with zone, epoch seconds, ``now``, ``-1h``.

    ValueError (with the accepted forms) for anything else, a naive ISO time, or a time
    that is not finite.
    """
    value = text.strip()
    if value.lower() == "now":
        return now
    relative = _RELATIVE.fullmatch(value.lower())
    if relative is not None:
        sign, number, unit = relative.groups()
        offset = float(number) * _UNITS_W[unit]
        return now - offset if sign == "-" else now + offset
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ValueError(f"{text!r} is not a finite time; {_TIME_FORMS}")
        if seconds < 0:
            raise ValueError(
                f"{text!r} is before 1970; for a time relative to now give a unit, e.g. {value}s"
            )
        return seconds
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not a time; {_TIME_FORMS}") from None
    if moment.tzinfo is None:
        raise ValueError(
            f"{text!r} has no time zone: add Z for UTC or an offset like +01:00 (e.g. {value}Z)"
        )
    return moment.timestamp()


def parse_duration(text: str) -> float:
    """Seconds of a duration: a number of seconds (``60``) or with a unit (``1m``, ``500ms``).

    ValueError unless it is a finite number > 0.
    """
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: give seconds (60) or a number with a unit "
            "(500ms, 30s, 1m, 1h, 1d)"
        )
    number, unit = match.groups()
    seconds = float(number) * _UNITS_W[unit or "s"]
    if not seconds > 0:
        raise ValueError(f"{text!r} is not a duration > 0")
    return seconds


def _window(start: str | None, end: str | None, now: float) -> tuple[float, float]:
    """The ``[start, end)`` of a query; the last hour by default; 422 when invalid."""
    try:
        stop = now if end is None else parse_time(end, now)
    except ValueError as err:
        raise _invalid("query.end", str(err)) from None
    try:
        first = stop - DEFAULT_WINDOW_S if start is None else parse_time(start, now)
    except ValueError as err:
        raise _invalid("query.start", str(err)) from None
    if not stop > first:
        raise _invalid(
            "query.end",
            f"the window is empty: end {_iso(stop)} is not after start {_iso(first)}",
            "give end after start, e.g. start=-1h&end=now",
        )
    return first, stop


def _iso(ts: float) -> str:
    """``ts`` as ISO-8601 UTC with milliseconds and Z (``repr`` when out of range)."""
    try:
        moment = datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        return repr(ts)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- conversions ---------------------------------------------------------------------------


def _tag_out(info: TagInfo, span: tuple[float, float] | None) -> TagOut:
    return TagOut(
        **info.to_dict(),
        first_stored=None if span is None else span[0],
        last_stored=None if span is None else span[1],
    )


def _stored_tag_out(path: str, span: tuple[float, float]) -> TagOut:
    """A tag the historian holds but the registry does not know."""
    asset, _, name = path.rpartition("/")
    return TagOut(path=path, asset=asset, name=name, first_stored=span[0], last_stored=span[1])


def _node_out(node: dict[str, Any]) -> AssetNodeOut:
    return AssetNodeOut(
        name=node["name"],
        level=node["level"],
        path=node["path"],
        state=node["state"],
        reason=node["reason"],
        since=node["since"],
        decided_by=node["decided_by"],
        children=[_node_out(child) for child in node["children"]],
        tags=[TagOut(**tag) for tag in node["tags"]],
    )


def _alarm_out(status: AlarmStatus) -> AlarmOut:
    return AlarmOut(
        name=status.name,
        tag=status.tag,
        kind=status.kind,
        state=status.state,
        active=status.state.active,
        acknowledged=status.state.acknowledged,
        severity=status.severity,
        message=status.message,
        since=status.since,
        value=status.value,
    )


def _event_out(event: AlarmEvent) -> AlarmEventOut:
    return AlarmEventOut(
        seq=event.seq,
        ts=event.ts,
        kind=event.kind.value,
        alarm=event.alarm,
        tag=event.tag,
        alarm_kind=event.alarm_kind,
        state=event.state,
        value=event.value,
        severity=event.severity,
        message=event.message,
        user=event.user,
        comment=event.comment,
    )


def _sample_out(sample: Sample) -> SampleOut:
    return SampleOut(ts=sample.ts, value=sample.value, quality=sample.quality, source=sample.source)


def _validation_problems(exc: RequestValidationError) -> list[ProblemOut]:
    problems = []
    for item in exc.errors():
        loc = [str(part) for part in item.get("loc", ())]
        hint = ""
        if loc[:1] == ["body"]:
            hint = "check the JSON body against the schema in /api/openapi.json"
        elif loc[:1] == ["query"]:
            hint = "check the query parameters against /api/openapi.json"
        problems.append(
            ProblemOut(path=".".join(loc), message=str(item.get("msg", "invalid")), hint=hint)
        )
    return problems


# --- the app -------------------------------------------------------------------------------

_bearer = HTTPBearer(
    scheme_name="bearer",
    description="the platform's API token: Authorization: Bearer <token>",
    auto_error=False,
)

_DESCRIPTION = """\
The mini IIoT platform of simlab: the ISA-95 asset tree, tags and their history, the alarm
list and journal, OEE, and the rules file (alarms, deadbands, retention).

Authenticate with `Authorization: Bearer <token>`. Times are seconds since the Unix epoch in
simulated time; `start`/`end` also accept ISO-8601 with a zone, `now`, or `-1h`-style
relative times. Errors are JSON `{"error", "detail", "problems"}`.
"""


def create_app(platform: PlatformState, token: str) -> FastAPI:
    """The ASGI app serving ``platform``; every non-public endpoint requires ``token``.

    ValueError for an empty token (an API without a secret would be open to anyone).
    """
    if not token or not token.strip():
        raise ValueError("the API token must not be empty: generate one, e.g. secrets.token_hex")
    expected = token.encode("utf-8")

    app = FastAPI(
        title="simlab platform API",
        version=API_VERSION,
        description=_DESCRIPTION,
        openapi_url="/api/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.add_middleware(_CatchAll)

    @app.exception_handler(_HttpProblem)
    async def _on_problem(request: Request, exc: _HttpProblem) -> JSONResponse:
        return JSONResponse(
            exc.body.model_dump(mode="json"), status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = _validation_problems(exc)
        detail = "; ".join(f"{p.path}: {p.message}" for p in problems) or "invalid request"
        return _error(422, "invalid request", detail, problems)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            detail = (
                f"no endpoint at {request.method} {request.url.path}; "
                "the endpoints are listed in /api/openapi.json"
            )
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        else:
            detail = str(exc.detail)
        phrase = _PHRASES.get(exc.status_code, "error")
        return _error(exc.status_code, phrase, detail, headers=exc.headers)

    @app.exception_handler(HistorianError)
    async def _on_historian(request: Request, exc: HistorianError) -> JSONResponse:
        logger.error("API %s %s: %s", request.method, request.url.path, exc)
        return _error(503, "historian unavailable", str(exc))

    async def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if credentials is None:
            raise _HttpProblem(
                401,
                "unauthorized",
                "this endpoint needs the API token: send the header "
                "'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": 'Bearer realm="simlab"'},
            )
        if not hmac.compare_digest(credentials.credentials.encode("utf-8"), expected):
            raise _HttpProblem(
                401,
                "unauthorized",
                "the bearer token is not valid: use the platform's API token",
                headers={
                    "WWW-Authenticate": 'Bearer realm="simlab", error="invalid_token"',
                },
            )

    @app.get("/api/health", tags=["health"], summary="Liveness (no token needed)")
    async def health() -> HealthOut:
        now = platform.now()
        return HealthOut(now=now, now_iso=_iso(now))

    api = APIRouter(
        prefix="/api", dependencies=[Depends(require_token)], responses=_responses(401, 500)
    )
    _add_asset_routes(api, platform)
    _add_alarm_routes(api, platform)
    _add_rules_routes(api, platform)
    app.include_router(api)
    return app


def _stored_spans(platform: PlatformState) -> dict[str, tuple[float, float]]:
    return {s.tag: (s.first_ts, s.last_ts) for s in platform.historian.tags()}


def _unknown_tag(path: str, known: set[str]) -> _HttpProblem:
    guess = did_you_mean(path, known)
    return _HttpProblem(
        404,
        "not found",
        f"no tag at {path!r}"
        + (f"; {guess}" if guess else "")
        + " (list the tags with GET /api/tags)",
    )


def _add_asset_routes(api: APIRouter, platform: PlatformState) -> None:
    registry = platform.registry

    @api.get("/assets", tags=["assets"], summary="The ISA-95 asset tree")
    async def assets() -> AssetTreeOut:
        tree = registry.tree()
        return AssetTreeOut(
            enterprises=[_node_out(node) for node in tree["enterprises"]],
            assets=tree["assets"],
            tags=tree["tags"],
        )

    @api.get("/tags", tags=["tags"], summary="Tags at or below a path", responses=_responses(422))
    async def tags(
        prefix: Annotated[
            str | None, Query(description="path prefix (whole segments), e.g. acme/lyon")
        ] = None,
    ) -> list[TagOut]:
        spans = _stored_spans(platform)
        listed = {info.path: _tag_out(info, spans.get(info.path)) for info in registry.tags(prefix)}
        wanted = (prefix or "").strip("/")
        for path, span in spans.items():
            inside = not wanted or path == wanted or path.startswith(wanted + "/")
            if inside and path not in listed:
                listed[path] = _stored_tag_out(path, span)
        return [listed[path] for path in sorted(listed)]

    @api.get(
        "/tags/{path:path}/latest",
        tags=["tags"],
        summary="The newest value of a tag",
        responses=_responses(404, 422),
    )
    async def latest(path: str) -> LatestOut:
        info = registry.get(path)
        if info is not None and info.ts is not None:
            return LatestOut(
                path=path,
                value=info.value,
                ts=info.ts,
                ts_iso=_iso(info.ts),
                quality=info.quality or "Good",
                unit=info.unit,
                source=info.source,
            )
        sample = platform.historian.latest(path)
        if sample is not None:
            return LatestOut(
                path=path,
                value=sample.value,
                ts=sample.ts,
                ts_iso=_iso(sample.ts),
                quality=sample.quality,
                unit=None if info is None else info.unit,
                source=sample.source,
            )
        if info is not None:
            raise _HttpProblem(
                404,
                "no value",
                f"tag {path!r} is declared but no sample of it has arrived yet; "
                "check that its source publishes",
            )
        raise _unknown_tag(path, {i.path for i in registry.tags()} | set(_stored_spans(platform)))

    @api.get(
        "/tags/{path:path}/history",
        tags=["tags"],
        summary="Samples or aggregated buckets of a tag over a window",
        responses=_responses(404, 422),
    )
    async def history(
        path: str,
        start: Annotated[
            str | None, Query(description="window start (default: end - 1 h)", examples=["-1h"])
        ] = None,
        end: Annotated[str | None, Query(description="window end (default: now)")] = None,
        bucket: Annotated[
            str | None,
            Query(description="bucket length: seconds or 500ms/30s/1m/1h; aggregates"),
        ] = None,
        agg: Annotated[
            Aggregate | None,
            Query(description="aggregate per bucket (default avg when bucket is given)"),
        ] = None,
    ) -> HistoryOut:
        first, stop = _window(start, end, platform.now())
        if path not in registry and path not in _stored_spans(platform):
            raise _unknown_tag(
                path, {i.path for i in registry.tags()} | set(_stored_spans(platform))
            )
        if bucket is None and agg is None:
            samples = platform.historian.history(path, first, stop)
            return HistoryOut(
                path=path, start=first, end=stop, samples=[_sample_out(s) for s in samples]
            )
        if bucket is None:
            length = stop - first
        else:
            try:
                length = parse_duration(bucket)
            except ValueError as err:
                raise _invalid("query.bucket", str(err)) from None
            if (stop - first) / length > MAX_BUCKETS:
                raise _invalid(
                    "query.bucket",
                    f"{bucket!r} makes {math.ceil((stop - first) / length)} buckets in the "
                    f"window, more than {MAX_BUCKETS}",
                    "use a longer bucket or a shorter window",
                )
        fn: Aggregate = agg or "avg"
        rows = platform.historian.aggregate(path, first, stop, length, fn)
        return HistoryOut(
            path=path,
            start=first,
            end=stop,
            bucket=length,
            agg=fn,
            buckets=[BucketOut(start=ts, value=value) for ts, value in rows],
        )

    @api.get(
        "/kpis/oee",
        tags=["kpis"],
        summary="OEE of the line over a window (ISO 22400-2)",
        description=(
            "Availability, performance, quality and OEE of the line from its PackML state "
            "and its good and rejected counters in the historian. A figure the data do not "
            "support (yet) is null, with why in `reasons`: early in Execute, before any item "
            "was counted, quality is null. 422 when the window has no planned busy time; "
            "404 when the platform has no OEE configured."
        ),
        responses=_responses(404, 422),
    )
    async def oee(
        start: Annotated[str | None, Query(description="window start (default: end - 1 h)")] = None,
        end: Annotated[str | None, Query(description="window end (default: now)")] = None,
    ) -> OeeOut:
        first, stop = _window(start, end, platform.now())
        try:
            result = platform.oee(first, stop)
        except KpiError as err:
            raise _HttpProblem(422, "kpi unavailable", str(err)) from None
        if result is None:
            raise _HttpProblem(
                404,
                "not available",
                "this platform has no OEE configured (no line with a state tag and counters)",
            )
        return OeeOut(
            start=first,
            end=stop,
            availability=result.availability,
            performance=result.performance,
            quality=result.quality,
            oee=result.oee,
            apt=result.apt,
            pbt=result.pbt,
            produced=result.produced,
            good=result.good,
            run_time=result.run_time,
            counted_from=result.counted_from,
            reasons=dict(result.reasons),
        )


def _add_alarm_routes(api: APIRouter, platform: PlatformState) -> None:
    engine = platform.alarms

    @api.get("/alarms", tags=["alarms"], summary="The alarm list", responses=_responses(422))
    async def alarms(
        state: Annotated[
            Literal["active", "all"],
            Query(description="active: alarms not in normal state (operator list); all: every"),
        ] = "active",
    ) -> list[AlarmOut]:
        statuses = engine.active() if state == "active" else engine.statuses()
        return [_alarm_out(s) for s in statuses]

    @api.get(
        "/alarms/journal",
        tags=["alarms"],
        summary="Alarm journal entries, oldest first",
        responses=_responses(422),
    )
    async def journal(
        *,
        alarm: Annotated[str | None, Query(description="only this alarm")] = None,
        tag: Annotated[str | None, Query(description="only alarms on this tag")] = None,
        kind: Annotated[
            Literal["raised", "cleared", "acknowledged"] | None, Query(description="event kind")
        ] = None,
        start: Annotated[
            str | None, Query(description="entries at or after (default: all)")
        ] = None,
        end: Annotated[str | None, Query(description="entries before (default: all)")] = None,
        limit: Annotated[int, Query(ge=1, le=100_000, description="newest N entries")] = 1000,
    ) -> list[AlarmEventOut]:
        now = platform.now()
        try:
            low = None if start is None else parse_time(start, now)
        except ValueError as err:
            raise _invalid("query.start", str(err)) from None
        try:
            high = None if end is None else parse_time(end, now)
        except ValueError as err:
            raise _invalid("query.end", str(err)) from None
        events = engine.journal(alarm=alarm, tag=tag, kind=kind, start=low, end=high)
        return [_event_out(e) for e in events[-limit:]]

    @api.post(
        "/alarms/{name}/ack",
        tags=["alarms"],
        summary="Acknowledge an alarm",
        responses=_responses(404, 409, 422),
    )
    async def acknowledge(name: str, body: AckIn) -> AlarmEventOut:
        try:
            event = engine.acknowledge(name, body.user, body.comment, platform.now())
        except UnknownAlarm as err:
            raise _HttpProblem(404, "not found", str(err)) from None
        except AlarmError as err:
            raise _HttpProblem(409, "conflict", str(err)) from None
        return _event_out(event)


_YAML_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "description": "the whole rules file, YAML (UTF-8)",
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}


def _add_rules_routes(api: APIRouter, platform: PlatformState) -> None:
    path = platform.rules_path

    def current() -> RulesOut:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return RulesOut(
                path=str(path),
                text="",
                problems=[
                    ProblemOut(
                        message="there is no rules file yet",
                        hint="PUT /api/rules with a rules YAML body to create it",
                    )
                ],
            )
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            return RulesOut(
                path=str(path),
                text=raw.decode("utf-8", errors="replace"),
                problems=[
                    ProblemOut(
                        message=f"the rules file is not UTF-8 text ({err.reason})",
                        hint="save it with UTF-8 encoding, or PUT new rules",
                    )
                ],
            )
        try:
            rules = parse_rules(text, path.name)
        except RulesError as err:
            return RulesOut(
                path=str(path), text=text, problems=[_problem_out(p) for p in err.problems]
            )
        return RulesOut(path=str(path), text=text, rules=rules)

    @api.get("/rules", tags=["rules"], summary="The rules file: text and parsed rules")
    async def get_rules() -> RulesOut:
        return current()

    @api.put(
        "/rules",
        tags=["rules"],
        summary="Replace the rules file and reload it without a restart",
        responses=_responses(413, 422),
        openapi_extra=_YAML_BODY,
    )
    async def put_rules(request: Request) -> RulesOut:
        raw = await _read_body(request, MAX_RULES_BYTES)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise _HttpProblem(
                422,
                "invalid rules",
                f"the body is not UTF-8 text ({err.reason} at byte {err.start})",
                problems=[
                    ProblemOut(message="not UTF-8 text", hint="send the YAML encoded as UTF-8")
                ],
            ) from None
        try:
            rules = parse_rules(text, path.name)
        except RulesError as err:
            count = len(err.problems)
            raise _HttpProblem(
                422,
                "invalid rules",
                f"the rules have {count} problem{'s' if count != 1 else ''}; nothing was "
                f"changed:\n{err}",
                problems=[_problem_out(p) for p in err.problems],
            ) from None
        _write_atomically(path, raw)
        platform.reload_rules(rules)
        logger.info("rules %s replaced through the API and reloaded", path)
        return RulesOut(path=str(path), text=text, rules=rules, reloaded=True)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, read in chunks; 413 as soon as it grows over ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _HttpProblem(
                413,
                "payload too large",
                f"the body is more than {limit} bytes; a rules file is at most {limit} bytes",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that no reader ever sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# --- serving -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunningApi:
    """Where a running API listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8080``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class _InProcessServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers to its owner (the lab)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port``; ApiServerError saying why it cannot be."""
    if not 0 <= port <= 65535:
        raise ApiServerError(f"API port {port} is out of range: use 1..65535 (0: any free port)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise ApiServerError(
            f"cannot serve the API on host {host!r}: the name does not resolve ({err.strerror}); "
            "use an address such as 127.0.0.1 or 0.0.0.0"
        ) from err
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            why = "the port is already in use (another simlab, or another program?)"
            fix = "choose another port, or stop what uses it"
        elif err.errno in (errno.EACCES, errno.EPERM):
            why = "permission denied"
            fix = "use a port above 1023"
        elif err.errno == errno.EADDRNOTAVAIL:
            why = "the address is not one of this machine's"
            fix = "use 127.0.0.1, 0.0.0.0 or an address of this machine"
        else:
            why = err.strerror or str(err)
            fix = "check the host and port"
        raise ApiServerError(f"cannot serve the API on {host}:{port}: {why}; {fix}") from err
    return sock


@contextlib.asynccontextmanager
async def serve_api(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, *, shutdown_timeout: float = 5.0
) -> AsyncIterator[RunningApi]:
    """Serve ``app`` with uvicorn on the running loop while the context is entered.

    ``port`` 0 picks a free port; the :class:`RunningApi` yielded says which. Binding
    errors raise :class:`ApiServerError` before anything runs. On exit the server stops
    accepting, lets requests in flight finish (up to ``shutdown_timeout`` seconds), then
    closes. Signal handlers are left to the caller.
    """
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        host=host,
        port=bound_port,
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, math.floor(shutdown_timeout - 1)),
    )
    server = _InProcessServer(config)

    async def run() -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exit_:  # uvicorn exits the process on startup failures
            raise ApiServerError(
                f"the API server on {host}:{bound_port} failed to start (exit {exit_.code}); "
                "see the log"
            ) from None

    task = asyncio.create_task(run(), name=f"simlab-api:{host}:{bound_port}")
    try:
        while not server.started:
            if task.done():
                task.result()  # raises the startup error
                raise ApiServerError(f"the API server on {host}:{bound_port} stopped at start")
            await asyncio.sleep(0.005)
        yield RunningApi(str(bound_host), int(bound_port))
    finally:
        await _stop(server, task, shutdown_timeout)
        sock.close()


async def _stop(server: uvicorn.Server, task: asyncio.Task[None], timeout: float) -> None:
    """Stop ``server`` gracefully within ``timeout`` seconds, then by force."""
    server.should_exit = True
    if not task.done():
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=timeout)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
        except Exception:
            logger.exception("the API server failed while stopping")
    if task.done() and not task.cancelled() and task.exception() is not None:
        logger.debug("API server task ended with %r", task.exception())
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
