"""The platform service: historian, alarms, registry, ingest and HTTP API, composed and owned.

:class:`PlatformService` is the mini IIoT platform of one lab, as an async context manager::

    async with PlatformService(scenario, broker_url=url, state_dir=Path("state"),
                               now=clock.now) as platform:
        print(platform.api_url, platform.token)
        ...                                   # the platform ingests until the block ends

What it runs, all on the caller's event loop:

- a :class:`~simlab.platform.historian.SqliteHistorian` in ``state_dir/historian.sqlite``
  (WAL mode: committed rows survive a crash);
- an :class:`~simlab.platform.alarms.AlarmEngine` configured by ``state_dir/rules.yaml``,
  which a :class:`~simlab.platform.rules.RulesWatcher` polls every second (a commented
  starter file is written if there is none; the API's ``PUT /api/rules`` applies at once);
- an :class:`~simlab.platform.registry.AssetRegistry` where every device tag of the
  scenario is declared at ``scenario.uns_path(device, tag)`` with its unit and description,
  and which starts with the last value of every UNS tag the historian holds;
- an :class:`~simlab.bus.client.MqttClient` with client id
  ``simlab-platform-<scenario name>`` and a persistent session (``clean_session=False``):
  QoS 1 messages published while the platform is away are delivered when it comes back
  (with Mosquitto; amqtt forgets sessions when it restarts);
- the :class:`~simlab.platform.ingest.Ingest` of the UNS under the scenario's enterprise
  and of Sparkplug B, each tag stored from one transport (``prefer``, UNS JSON by default;
  ``dual_tags`` are the tags the lab's gateway publishes both ways);
- the OEE of the line from the historian, when the scenario declares ``platform.oee``
  (:func:`historian_oee`, which graders use too);
- the HTTP API (:func:`~simlab.platform.api.create_app` served by
  :func:`~simlab.platform.api.serve_api`), protected by a bearer token: the one given, or a
  new random one written to ``state_dir/api-token`` (mode 0600) at every start.

Tasks are named and owned by an :class:`asyncio.TaskGroup`: if one fails, the block is
cancelled and the error comes out of ``async with``. Leaving the block closes the MQTT
client first, lets the ingest store every message already received, then stops the API
and closes the historian.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import secrets
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Final, Self, TypeVar

from simlab.bus.client import MqttClient
from simlab.bus.uns import UnsPayloadError, UnsTopicError
from simlab.errors import Problem
from simlab.platform.alarms import AlarmEngine
from simlab.platform.api import PlatformState, create_app, serve_api
from simlab.platform.historian import Historian, Sample, SqliteHistorian, Timestamp, to_seconds
from simlab.platform.ingest import Ingest, IngestStats, Transport
from simlab.platform.kpi import OeeResult, Reading, oee
from simlab.platform.registry import AssetRegistry
from simlab.platform.rules import RulesFile, RulesWatcher
from simlab.scenario.devices import TagSpec
from simlab.scenario.model import Scenario

__all__ = [
    "HISTORIAN_FILE",
    "OEE_LOOKBACK_S",
    "RULES_FILE",
    "TOKEN_FILE",
    "PlatformService",
    "historian_oee",
    "starter_rules",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

HISTORIAN_FILE: Final = "historian.sqlite"
"""Name of the historian database in the state directory."""
RULES_FILE: Final = "rules.yaml"
"""Name of the rules file in the state directory."""
TOKEN_FILE: Final = "api-token"
"""Name of the file holding a generated API token (mode 0600)."""

RULES_POLL_S: Final = 1.0
"""Seconds between two looks at the rules file (and two alarm delay updates)."""
OEE_LOOKBACK_S: Final = 7 * 86_400.0
"""How far before an OEE window (and after it) the last (first) sample of the state and the
counters is looked up: a sample further away is not used."""


def starter_rules(scenario: Scenario) -> str:
    """The commented rules file written when the state directory has none.

    It is valid as is (no alarms) and shows, in comments, an alarm on one of the
    scenario's numeric tags.
    """
    tags = [(device.name, tag) for device in scenario.devices for tag in device.tags]
    numeric = [(device, tag) for device, tag in tags if tag.type in ("float", "int")]
    measured = [(device, tag) for device, tag in numeric if tag.signal is not None]
    candidates = measured or numeric
    example = candidates[0] if candidates else None
    if example is None:
        path, limit, unit = "enterprise/site/area/line/cell/asset/tag", "80", ""
    else:
        device, tag = example
        path = scenario.uns_path(device, tag.name)
        high = tag.range[1] if tag.range is not None else None
        if high is None and tag.sensor is not None and tag.sensor.range is not None:
            high = tag.sensor.range[1]
        limit = f"{high * 0.9:g}" if high is not None else "80"
        unit = _tag_unit(scenario, tag)
    comment = len("#     kind: HI            ")
    limit_line = (
        f"#     limit: {limit}".ljust(comment)
        + "# in the tag's unit"
        + (f" ({unit})" if unit else "")
    )
    return f"""\
# simlab platform rules for scenario {scenario.name!r}: alarms, historian deadbands, retention.
# The platform reloads this file within a second of a save, without a restart; a file with
# mistakes is reported (GET /api/rules) and the previous rules stay in force.
# Tags are UNS paths: enterprise/site/area/line/cell/asset/tag.
format_version: 1
alarms: []
# An example: replace "alarms: []" above with
# alarms:
#   - name: {_alarm_name(path)}
#     tag: {path}
#     kind: HI            # HI | HIHI (above the limit), LO | LOLO (below)
{limit_line}
#     deadband: 0         # optional: hysteresis before it clears, in the tag's unit
#     on_delay: 2         # optional: seconds the condition must hold
#     off_delay: 0        # optional: seconds it must be gone
#     severity: 700       # optional: 1 (low) .. 1000 (high), default 500
#     message: {path.rsplit("/", 1)[-1]} high
#
# deadbands:              # optional: store a tag only when it moved by more than this
#   {path}: 0.01
# retention_hours: 48     # optional: hours of history to keep
"""


class PlatformService:
    """The mini IIoT platform of one lab; an async context manager (see the module docs).

    Args:
        scenario: the lab's scenario: its name gives the MQTT client id, its enterprise the
            UNS root, its devices the declared tags, ``platform.oee`` the OEE tags.
        broker_url: ``mqtt://host:port`` (or ``mqtts://``) of the lab's broker.
        state_dir: where the historian, the rules file and the token file live (created).
        api_host, api_port: where the HTTP API listens; port 0 picks a free one.
        token: the API bearer token; ``None`` generates one and writes it to
            ``state_dir/api-token`` (0600).
        now: the lab's simulated time, seconds since the Unix epoch.
        sparkplug_groups: Sparkplug group ids to ingest; ``None`` takes the gateway's group
            when the scenario has a gateway, else every group.
        prefer: the transport a tag that comes both as UNS JSON and as a Sparkplug metric
            is stored from (see :mod:`simlab.platform.ingest`).
        dual_tags: UNS paths known to come both ways (the lab's gateway's, when it
            publishes both): stored from the preferred transport from the first sample.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        broker_url: str,
        state_dir: Path,
        api_host: str = "127.0.0.1",
        api_port: int = 0,
        token: str | None = None,
        now: Callable[[], float],
        sparkplug_groups: Iterable[str] | None = None,
        prefer: Transport = "uns",
        dual_tags: Iterable[str] = (),
    ) -> None:
        if token is not None and not token.strip():
            raise ValueError("the API token must not be empty: pass None to generate one")
        self._scenario = scenario
        self._broker_url = broker_url
        self._state_dir = Path(state_dir)
        self._api_host = api_host
        self._api_port = api_port
        self._token = token
        self._now = now
        if sparkplug_groups is None and scenario.gateway is not None:
            sparkplug_groups = [scenario.gateway.sparkplug_group]
        self._groups = None if sparkplug_groups is None else list(sparkplug_groups)
        self._prefer: Transport = prefer
        self._dual_tags = list(dual_tags)

        self._stack: contextlib.AsyncExitStack | None = None
        self._historian: SqliteHistorian | None = None
        self._alarms = AlarmEngine()
        self._registry = AssetRegistry()
        self._watcher: RulesWatcher | None = None
        self._ingest: Ingest | None = None
        self._client: MqttClient | None = None
        self._api_url: str | None = None
        self._housekeeping: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ properties

    @property
    def scenario(self) -> Scenario:
        """The scenario the platform serves."""
        return self._scenario

    @property
    def state_dir(self) -> Path:
        """Where the historian, rules and token files live."""
        return self._state_dir

    @property
    def rules_path(self) -> Path:
        """``state_dir/rules.yaml``."""
        return self._state_dir / RULES_FILE

    @property
    def token_path(self) -> Path:
        """``state_dir/api-token`` (written only for a generated token)."""
        return self._state_dir / TOKEN_FILE

    @property
    def client_id(self) -> str:
        """The MQTT client id of the platform, fixed so the broker keeps its session."""
        return f"simlab-platform-{self._scenario.name}"

    @property
    def api_url(self) -> str:
        """Base URL of the HTTP API, e.g. ``http://127.0.0.1:41234`` (endpoints: /api/...)."""
        return self._started(self._api_url, "api_url")

    @property
    def token(self) -> str:
        """The API bearer token (``Authorization: Bearer <token>``)."""
        return self._started(self._token, "token")

    @property
    def historian(self) -> SqliteHistorian:
        """The historian (open while the service runs)."""
        return self._started(self._historian, "historian")

    @property
    def alarms(self) -> AlarmEngine:
        """The alarm engine."""
        return self._alarms

    @property
    def registry(self) -> AssetRegistry:
        """The asset registry."""
        return self._registry

    @property
    def ingest(self) -> Ingest:
        """The ingest (for :meth:`Ingest.wait_until <simlab.platform.ingest.Ingest.wait_until>`)."""
        return self._started(self._ingest, "ingest")

    @property
    def mqtt(self) -> MqttClient:
        """The platform's MQTT client."""
        return self._started(self._client, "mqtt")

    @property
    def stats(self) -> IngestStats:
        """The ingest's live counters."""
        return self.ingest.stats

    @staticmethod
    def _started(value: _T | None, what: str) -> _T:
        if value is None:
            raise RuntimeError(f"PlatformService.{what} is only available inside `async with`")
        return value

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise RuntimeError("this PlatformService is already running")
        stack = contextlib.AsyncExitStack()
        self._stack = stack
        try:
            await self._start(stack)
        except BaseException:
            self._stack = None
            await stack.aclose()
            self._forget()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            return
        try:
            await stack.__aexit__(exc_type, exc, tb)
        finally:
            self._forget()

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        """Open everything; each step registers its undoing on ``stack`` (LIFO)."""
        scenario = self._scenario
        self._state_dir.mkdir(parents=True, exist_ok=True)

        historian = SqliteHistorian(
            self._state_dir / HISTORIAN_FILE, batch_size=5_000, flush_interval=0.25
        )
        self._historian = historian
        stack.callback(historian.close)  # closed last: it commits what is still buffered

        self._declare_tags()
        self._seed_registry(historian)
        self._ensure_rules_file()
        self._watcher = RulesWatcher(
            self.rules_path, self.reload_rules, on_error=self._rules_problems
        )
        self._watcher.poll()
        if self._token is None:
            self._token = secrets.token_urlsafe(32)
            _write_secret(self.token_path, self._token)

        self._ingest = Ingest(
            historian,
            self._alarms,
            self._registry,
            uns_roots=[scenario.uns.enterprise],
            sparkplug_groups=self._groups,
            now=self._now,
            prefer=self._prefer,
            dual_tags=self._dual_tags,
        )
        client = MqttClient(
            self._broker_url,
            client_id=self.client_id,
            clean_session=False,
            subscriptions=self._ingest.subscriptions,
            reconnect_max_delay=5,
        )
        await client.start()
        self._client = client
        stack.push_async_callback(client.close)

        state = PlatformState(
            historian=historian,
            alarms=self._alarms,
            registry=self._registry,
            rules_path=self.rules_path,
            reload_rules=self.reload_rules,
            oee=self.oee,
            now=self._now,
        )
        app = create_app(state, self._token)
        running = await stack.enter_async_context(serve_api(app, self._api_host, self._api_port))
        self._api_url = running.url

        tasks = await stack.enter_async_context(asyncio.TaskGroup())
        name = scenario.name
        tasks.create_task(self._ingest.run(client), name=f"simlab-platform-ingest:{name}")
        self._housekeeping = tasks.create_task(
            self._keep_house(), name=f"simlab-platform-rules:{name}"
        )
        # Runs first on exit: closing the client ends the ingest's message stream once the
        # messages already received are stored; then the TaskGroup waits for it.
        stack.push_async_callback(self._stop_tasks)
        log.info(
            "platform of %s: API at %s, MQTT %s as %s, state in %s",
            name,
            self._api_url,
            client.url,
            self.client_id,
            self._state_dir,
        )

    async def _stop_tasks(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._housekeeping is not None:
            self._housekeeping.cancel()

    def _forget(self) -> None:
        self._historian = None
        self._client = None
        self._ingest = None
        self._watcher = None
        self._api_url = None
        self._housekeeping = None

    async def _keep_house(self) -> None:
        """Every second: reload the rules file if it changed, let alarm delays run out."""
        while True:
            await asyncio.sleep(RULES_POLL_S)
            try:
                if self._watcher is not None:
                    self._watcher.poll()
                for event in self._alarms.advance(self._now()):
                    log.info("alarm %s %s (%s)", event.alarm, event.kind, event.state)
            except Exception:
                log.exception("platform housekeeping failed (it carries on)")

    # ------------------------------------------------------------------ configuration

    def _declare_tags(self) -> None:
        scenario = self._scenario
        for device in scenario.devices:
            for tag in device.tags:
                self._registry.declare(
                    scenario.uns_path(device.name, tag.name),
                    unit=_tag_unit(scenario, tag) or None,
                    description=tag.description,
                    source=device.name,
                )

    def _seed_registry(self, historian: SqliteHistorian) -> None:
        """Give the registry each stored UNS tag's last value, as it was before a restart."""
        for summary in historian.tags():
            sample = historian.latest(summary.tag)
            if sample is None:
                continue
            try:
                self._registry.observe(
                    summary.tag,
                    sample.value,
                    sample.ts,
                    sample.quality,
                    source=sample.source or None,
                )
            except (UnsTopicError, UnsPayloadError):
                continue  # a Sparkplug metric stored under a non-UNS path: historian only

    def _ensure_rules_file(self) -> None:
        path = self.rules_path
        if path.exists():
            return
        _write_new(path, starter_rules(self._scenario))
        log.info("wrote a starter rules file at %s", path)

    def reload_rules(self, rules: RulesFile) -> None:
        """Put ``rules`` in force: alarm definitions, historian deadbands and retention."""
        for event in self._alarms.replace_definitions(rules.alarms):
            log.info("alarm %s %s after the rules reload", event.alarm, event.kind)
        if self._historian is not None:
            self._historian.set_deadbands(rules.deadbands)
            self._historian.set_retention(rules.retention_s)
        log.info("rules in force: %d alarms, %d deadbands", len(rules.alarms), len(rules.deadbands))

    def _rules_problems(self, problems: list[Problem]) -> None:
        listed = "\n".join(f"  {problem}" for problem in problems)
        log.warning(
            "the rules file %s has problems; the previous rules stay in force:\n%s",
            self.rules_path,
            listed,
        )

    # ------------------------------------------------------------------ KPIs

    def oee(self, window_start: float, window_end: float) -> OeeResult | None:
        """OEE of the line over the window, from the historian; None without ``platform.oee``.

        Raises :class:`~simlab.platform.kpi.KpiError` when the data do not allow it.
        """
        spec = self._scenario.platform.oee
        if spec is None:
            return None
        return historian_oee(
            self.historian,
            state=self._uns_path_of(spec.state),
            good=self._uns_path_of(spec.good),
            rejected=self._uns_path_of(spec.rejected),
            window_start=window_start,
            window_end=window_end,
            ideal_rate_per_min=spec.ideal_rate_per_min,
            held=True,  # the lab's gateway reports by exception: as exercise 12 teaches
        )

    def _uns_path_of(self, ref: str) -> str:
        device, _, tag = ref.partition(".")
        return self._scenario.uns_path(device, tag)


# --------------------------------------------------------------------------- OEE


def historian_oee(
    historian: Historian,
    *,
    state: str,
    good: str,
    rejected: str,
    window_start: Timestamp,
    window_end: Timestamp,
    ideal_rate_per_min: float,
    lookback_s: float = OEE_LOOKBACK_S,
    held: bool = False,
) -> OeeResult:
    """OEE of a line over the window from a historian: its PackML ``state`` tag and its
    ``good`` and ``rejected`` counters (tag paths), per :func:`~simlab.platform.kpi.oee`.

    Each series is the tag's samples in the window, with their source, plus the last sample
    before the window and the first after it, at their real instants (per source, within
    ``lookback_s``): the value a tag held at the window start, and the share of a counter
    increase that straddles an edge. The states are read over the whole span the counters'
    readings cover, so that such an increase is shared by its real run time.

    ``held=True`` reads the samples as changes (report by exception, as the lab's gateway
    publishes): a tag's value at the window start is its last sample before it, placed at
    the start, and no sample after the end is used, so an increase counts where its sample
    is. The rule exercise 12 teaches.
    Raises :class:`~simlab.platform.kpi.KpiError` when the data do not allow an OEE.
    """
    start, end = to_seconds(window_start), to_seconds(window_end)
    goods = _readings(historian, good, start, end, lookback_s, held=held)
    rejects = _readings(historian, rejected, start, end, lookback_s, held=held)
    counted = [sample.ts for sample in goods + rejects]
    first, last = min([start, *counted]), max([end, *counted])
    states = _readings(historian, state, first, last, lookback_s, after=False, held=held)
    return oee(
        _series(states),
        None,
        _series(goods),
        start,
        end,
        ideal_rate_per_min,
        rejected=_series(rejects),
    )


def _readings(
    historian: Historian,
    tag: str,
    start: float,
    end: float,
    lookback_s: float,
    *,
    after: bool = True,
    held: bool = False,
) -> list[Sample]:
    """The samples of ``tag`` in ``[start, end]``, with the last one before ``start`` and (if
    ``after``) the first one after ``end`` of each source seen in the window (of any source
    when none is), within ``lookback_s`` of the window. ``held``: the one before is moved to
    ``start``, and none after is taken."""
    inside = historian.history(tag, start, math.nextafter(end, math.inf))
    sources: list[str | None] = [*sorted({s.source for s in inside})] or [None]
    edges: list[Sample] = []
    for source in sources:
        before = historian.last_before(tag, start, source)
        if before is not None and before.ts >= start - lookback_s:
            edges.append(dataclasses.replace(before, ts=start) if held else before)
        later = historian.first_after(tag, end, source) if after and not held else None
        if later is not None and later.ts <= end + lookback_s:
            edges.append(later)
    return sorted(edges + inside, key=lambda s: s.ts)


def _series(samples: list[Sample]) -> list[Reading]:
    """``(ts, value, source)`` readings for :func:`~simlab.platform.kpi.oee`."""
    return [(s.ts, s.value, s.source) for s in samples]


# --------------------------------------------------------------------------- helpers


def _tag_unit(scenario: Scenario, tag: TagSpec) -> str:
    """A tag's unit: declared, else its plant signal's ("" when it has none)."""
    if tag.unit is not None:
        return tag.unit
    ref = tag.signal or tag.drives
    if ref is None:
        return ""
    signal = scenario.plant.signal_catalogue().get(ref)
    return signal.unit if signal is not None else ""


def _alarm_name(path: str) -> str:
    tag = path.rsplit("/", 1)[-1]
    name = "".join(c if c.isalnum() else "_" for c in tag).upper() or "TAG"
    return f"{name}_HI" if name[0].isalpha() else f"TAG_{name}_HI"


def _write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600), replacing it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older file may have had wider permissions
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def _write_new(path: Path, text: str) -> None:
    """Create ``path`` with ``text`` atomically; leave an existing file alone."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)  # fails if someone created it meanwhile
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
