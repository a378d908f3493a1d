"""The Platform screen: the lab's mini IIoT platform, seen through its HTTP API.

Like any outside client, the screen talks to the platform's JSON API (``httpx``, the
bearer token of the lab): the ISA-95 asset tree with each tag's last value, the history
of the chosen tag (bucket averages over the last minutes of lab time), the alarm list
with acknowledgement, and the line's OEE when the scenario declares one. A worker polls
the API about once a second while the screen is shown; the view is redrawn from the last
answers at the screen's refresh rate. API errors (refused token, unknown tag, platform
unreachable) are shown in plain words.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from urllib.parse import quote

import httpx
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Static, Tree

from simlab.tui.screens.base import LabScreen
from simlab.tui.widgets.alarm_table import AlarmTable
from simlab.tui.widgets.history_chart import HistoryChart
from simlab.tui.widgets.topic_tree import TopicTree

__all__ = ["ApiProblem", "PlatformClient", "PlatformScreen", "ack_user"]

POLL_S: Final = 1.0
"""Seconds between two polls of the API."""

TIMEOUT_S: Final = 5.0
"""Seconds an API request may take."""

SPANS: Final = ((5, "5s"), (15, "15s"), (60, "1m"), (240, "1m"))
"""History spans: minutes of lab time, and the bucket each point averages (API syntax)."""

NO_PLATFORM = (
    "This lab runs without its IT side (started with --no-bus), so there is no platform. "
    "Start simlab without --no-bus to have the broker, the gateway and the platform."
)

_STATE_STYLES: Final = {"online": "green", "stale": "yellow", "unknown": "dim"}


def ack_user() -> str:
    """Who acknowledges alarms: ``$SIMLAB_USER``, else the login name, else apprentice."""
    return os.environ.get("SIMLAB_USER") or os.environ.get("USER") or "apprentice"


class ApiProblem(Exception):
    """An API request that failed, said in plain words; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PlatformClient:
    """The platform's HTTP JSON API through ``http`` (base URL and token set on it)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def get(self, path: str, **params: str) -> Any:
        """The JSON answer of ``GET path``; :class:`ApiProblem` when it fails."""
        return await self._send("GET", path, params=params)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        """The JSON answer of ``POST path`` with a JSON ``body``."""
        return await self._send("POST", path, json=body)

    async def _send(self, method: str, path: str, **options: Any) -> Any:
        where = str(self.http.base_url).rstrip("/")
        try:
            reply = await self.http.request(method, path, **options)
        except httpx.ConnectError:
            raise ApiProblem(
                f"cannot reach the platform API at {where} (connection refused: is the lab "
                "still running?)"
            ) from None
        except httpx.TimeoutException:
            raise ApiProblem(
                f"the platform API at {where} did not answer within {TIMEOUT_S:g} s"
            ) from None
        except httpx.HTTPError as err:
            raise ApiProblem(f"the platform API at {where} failed: {err}") from None
        if reply.is_success:
            return reply.json()
        try:
            detail = str(reply.json()["detail"])
        except (ValueError, KeyError, TypeError):
            detail = reply.text[:200] or reply.reason_phrase
        if reply.status_code == 401:
            raise ApiProblem(f"the platform refused the API token (401): {detail}", 401)
        raise ApiProblem(f"{detail} ({reply.status_code} {reply.reason_phrase})", reply.status_code)


@dataclass
class _Answers:
    """The last answers of the API, redrawn by :meth:`PlatformScreen.refresh_view`."""

    now: float | None = None
    states: dict[str, str] = field(default_factory=dict)
    tags: dict[str, dict[str, Any]] = field(default_factory=dict)
    alarms: list[dict[str, Any]] = field(default_factory=list)
    oee: Text = field(default_factory=Text)
    chart_tag: str | None = None
    span: int = 0
    history: list[tuple[float, float]] = field(default_factory=list)
    history_note: str = ""
    problem: str = ""


class PlatformScreen(LabScreen):
    """Asset tree, history chart, alarm list with acknowledgement, OEE."""

    CSS_PATH = "platform.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "acknowledge", "Acknowledge"),
        Binding("w", "span", "History span"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.chart_tag: str | None = None
        """The UNS path of the tag whose history is charted."""
        self.span = 1
        """Index of the history span in :data:`SPANS`."""
        self.api: PlatformClient | None = None
        self._answers = _Answers()
        self._version = 0
        self._drawn = -1
        self._wake = asyncio.Event()
        self._message = Text()
        self._status = ""

    def compose_body(self) -> ComposeResult:
        if self.lab.it is None:
            yield Static(NO_PLATFORM, id="no-platform", classes="placeholder")
            return
        yield Static(id="platform-status", classes="volatile")
        with Horizontal(id="platform-main"):
            yield TopicTree(id="assets")
            with Vertical(id="history-pane"):
                yield Static(id="history-title")
                yield HistoryChart(id="history")
        yield Label("Alarms", id="alarms-title")
        yield AlarmTable(id="alarms")
        yield Input(
            placeholder="comment for the acknowledgement (a or Enter acknowledges)",
            id="ack-comment",
        )
        yield Static(id="platform-message")
        yield Static(id="oee")

    def on_mount(self) -> None:
        if self.lab.it is None:
            return
        scenario = self.lab.scenario
        if scenario.watch:
            device, _, tag = scenario.watch[0].partition(".")
            self.chart_tag = scenario.uns_path(device, tag)
        self.query_one("#assets", TopicTree).focus()
        self._poll()

    def on_screen_resume(self) -> None:
        self._wake.set()  # fresh answers now, not in a second

    # --- polling --------------------------------------------------------------------------

    @work(exclusive=True, group="platform-poll", exit_on_error=False)
    async def _poll(self) -> None:
        """Ask the API for everything shown, about once a second while the screen shows."""
        it = self.lab.it
        assert it is not None and it.platform is not None
        headers = {"Authorization": f"Bearer {it.platform.token}"}
        async with httpx.AsyncClient(
            base_url=it.platform.api_url, headers=headers, timeout=TIMEOUT_S
        ) as http:
            self.api = PlatformClient(http)
            while True:
                if self.is_current:
                    self._answers = await self._ask(self.api)
                    self._version += 1
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_S)

    async def _ask(self, api: PlatformClient) -> _Answers:
        answers = _Answers()
        try:
            answers.now = (await api.get("/api/health"))["now"]
            _flatten(await api.get("/api/assets"), answers)
            answers.alarms = await api.get("/api/alarms")
        except ApiProblem as problem:  # keep showing the last answers, and why they are old
            return replace(self._answers, problem=str(problem))
        answers.oee = await _oee(api)
        answers.chart_tag, answers.span = self.chart_tag, self.span
        if answers.chart_tag is not None:
            minutes, bucket = SPANS[answers.span]
            try:
                reply = await api.get(
                    f"/api/tags/{quote(answers.chart_tag)}/history",
                    start=f"-{minutes}m",
                    end="+1ms",  # the window ends after now: the newest sample is in it
                    bucket=bucket,
                )
            except ApiProblem as problem:
                answers.history_note = str(problem)
            else:
                end, length = reply["end"], reply["bucket"]
                answers.history = [
                    (min(0.0, (b["start"] + length / 2 - end) / 60), b["value"])
                    for b in reply["buckets"]
                    if b["value"] is not None
                ]
                if not answers.history:
                    answers.history_note = "no sample in this span yet"
        return answers

    # --- the view -------------------------------------------------------------------------

    def refresh_view(self) -> None:
        if self.lab.it is None or self._version == self._drawn:
            return
        self._drawn = self._version
        answers = self._answers
        where = "…" if self.api is None else str(self.api.http.base_url).rstrip("/")
        clock = "…" if answers.now is None else _clock(answers.now)
        status = f"platform API {where} · lab time {clock}"
        if status != self._status:  # only when it changes (snapshot tests blank it)
            self._status = status
            self.query_one("#platform-status", Static).update(status)
        self._draw_assets(answers)
        self._draw_history(answers)
        alarms = self.query_one(AlarmTable)
        alarms.show(answers.alarms)
        waiting = sum(1 for a in answers.alarms if not a["acknowledged"])
        self.query_one("#alarms-title", Label).update(
            f"Alarms: {len(answers.alarms)} not normal, {waiting} to acknowledge"
        )
        message = Text(answers.problem, style="bold red") if answers.problem else self._message
        self.query_one("#platform-message", Static).update(message)
        self.query_one("#oee", Static).update(answers.oee)

    def _draw_assets(self, answers: _Answers) -> None:
        tree = self.query_one("#assets", TopicTree)

        def describe(path: str, shown: str) -> Text:
            tag = answers.tags.get(path)
            if tag is None:
                state = answers.states.get(path, "unknown")
                return Text.assemble(shown, "  ", (state, _STATE_STYLES.get(state, "")))
            return Text.assemble(shown, "  ", _reading(tag))

        tree.sync(list(answers.tags), describe)
        if tree.cursor_path is None and self.chart_tag is not None:
            node = tree.node_of(self.chart_tag)
            if node is not None:
                _ = tree.last_line  # lays the lines out, so the node has its line
                tree.move_cursor(node)

    def _draw_history(self, answers: _Answers) -> None:
        minutes, bucket = SPANS[answers.span]
        chart = self.query_one(HistoryChart)
        title = self.query_one("#history-title", Static)
        if answers.chart_tag is None:
            title.update("Select a tag in the asset tree to chart its history.")
            chart.show([], minutes)
            return
        name = answers.chart_tag.rsplit("/", 1)[-1]
        unit = (answers.tags.get(answers.chart_tag) or {}).get("unit")
        heading = Text.assemble(
            (name, "bold"),
            f" ({unit})" if unit else "",
            f" · last {minutes} min · {_duration(bucket)} averages",
        )
        if answers.history_note:
            heading.append(f" · {answers.history_note}", "yellow")
        title.update(heading)
        chart.show(answers.history, minutes)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        path = event.node.data
        if path is not None and path in self._answers.tags and path != self.chart_tag:
            self.chart_tag = path
            self._wake.set()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "ack-comment":
            self.action_acknowledge()

    def _say(self, message: str, style: str = "") -> None:
        self._message = Text(message, style=style)
        self.query_one("#platform-message", Static).update(self._message)

    # --- actions --------------------------------------------------------------------------

    def action_span(self) -> None:
        """Chart the next span of history (5 min, 15 min, 1 h, 4 h)."""
        self.span = (self.span + 1) % len(SPANS)
        self._wake.set()

    def action_acknowledge(self) -> None:
        """Acknowledge the alarm under the cursor, with the comment typed."""
        if self.lab.it is None:
            return
        name = self.query_one(AlarmTable).selected
        if name is None:
            self._say("No alarm to acknowledge.", "yellow")
            return
        comment = self.query_one("#ack-comment", Input).value.strip()
        self._acknowledge(name, comment)

    @work(group="platform-ack", exit_on_error=False)
    async def _acknowledge(self, name: str, comment: str) -> None:
        if self.api is None:
            self._say("Not connected to the platform API yet.", "yellow")
            return
        user = ack_user()
        try:
            event = await self.api.post(
                f"/api/alarms/{quote(name)}/ack", {"user": user, "comment": comment}
            )
        except ApiProblem as problem:
            self._say(f"{name} not acknowledged: {problem}", "bold red")
            return
        self._say(f"{name} acknowledged by {user} at {_clock(event['ts'])}: {event['state']}.")
        self.query_one("#ack-comment", Input).value = ""
        self._wake.set()


def _flatten(tree: dict[str, Any], answers: _Answers) -> None:
    """Node states and tags of the ``/api/assets`` answer, by path."""
    nodes = list(tree["enterprises"])
    while nodes:
        node = nodes.pop()
        answers.states[node["path"]] = node["state"]
        nodes.extend(node["children"])
        for tag in node["tags"]:
            answers.tags[tag["path"]] = tag


async def _oee(api: PlatformClient) -> Text:
    """The OEE line: the figures of the last hour, or why there are none."""
    try:
        oee = await api.get("/api/kpis/oee", start="-1h")
    except ApiProblem as problem:
        if problem.status == 404:
            return Text("OEE: none configured for this scenario (no platform.oee).", "dim")
        return Text(f"OEE: not available yet: {problem}", "yellow")
    text = Text.assemble(
        ("OEE ", "bold"),
        (_percent(oee["oee"]), "bold"),
        f" = availability {_percent(oee['availability'])}"
        f" × performance {_percent(oee['performance'])}"
        f" × quality {_percent(oee['quality'])} (last hour)",
    )
    reasons: dict[str, str] = oee.get("reasons") or {}
    shown = [name for name in ("performance", "quality") if oee[name] is None]
    if oee["oee"] is None and not shown:
        shown = ["oee"]
    for name in shown:
        text.append(f" · {name}: {reasons.get(name, 'not known')}", "yellow")
    return text


def _percent(figure: float | None) -> str:
    """A ratio as ``72.5%``; ``—`` when the platform could not compute it."""
    return "—" if figure is None else f"{figure:.1%}"


def _reading(tag: dict[str, Any]) -> Text:
    """A tag's last value with its unit, and its quality when not Good."""
    value = tag["value"]
    if value is None and tag["ts"] is None:
        return Text("no value yet", "dim")
    if value is None or isinstance(value, bool):  # a Bad value carries none
        shown = "—" if value is None else str(value)
    else:
        number = f"{value:.4g}" if isinstance(value, float) else str(value)
        shown = f"{number} {tag['unit'] or ''}".rstrip()
    text = Text(shown, "green")
    quality = tag["quality"]
    if quality and quality != "Good":
        text.append(f" {quality}", "yellow" if quality.startswith("Uncertain") else "red")
    return text


def _duration(bucket: str) -> str:
    """``15s`` → ``15 s``, ``1m`` → ``1 min``."""
    return bucket.replace("s", " s").replace("m", " min")


def _clock(ts: float) -> str:
    """Epoch seconds of lab time as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
