"""The platform ingest: UNS JSON and Sparkplug B messages from the bus into the platform.

:class:`Ingest` consumes the messages of an :class:`~simlab.bus.client.MqttClient` and feeds
the historian, the alarm engine and the asset registry::

    ingest = Ingest(historian, alarms, registry, uns_roots=["acme"])
    async with MqttClient(url, client_id="platform", clean_session=False,
                          subscriptions=ingest.subscriptions) as client:
        await ingest.run(client)          # until the client is closed

Topics
    ``<root>/#`` for each UNS root given (``uns_roots``, e.g. the scenario's enterprise), and
    ``spBv1.0/#`` (or ``spBv1.0/<group>/#`` per Sparkplug group given). Without UNS roots
    the ingest subscribes to ``#`` and treats every topic outside ``spBv1.0/`` as UNS.

UNS messages (:mod:`simlab.bus.uns`)
    The topic must be a UNS tag path and the payload the UNS JSON object, validated as
    :meth:`UnsMessage.from_json <simlab.bus.uns.UnsMessage.from_json>` does (by
    :func:`~simlab.bus.uns.parse_uns_payload`, which skips building the object). Each
    message becomes one historian row ``(topic, ts_ms / 1000, value, quality, source)``, one
    alarm evaluation and one registry observation. Numbers and booleans (as 0/1) are stored;
    a ``null`` value is stored as a row without value (its quality says why). Text values
    cannot go in the historian's REAL column: the registry keeps them (``not_stored``). A
    live (not retained) message marks its asset online in the registry. An empty payload
    (a retained value being cleared) is ignored.

    The registry receives each tag's newest value with every commit of the historian
    (:meth:`Ingest.flush`), not with every message: a flood of one tag costs one registry
    update per commit, and the registry's last value never runs ahead of the historian.

Sparkplug B messages (:mod:`simlab.bus.sparkplug`)
    Every NBIRTH/DBIRTH records the alias → (name, datatype) map of the node or device;
    NDATA/DDATA metrics, usually sent by alias without datatype, are resolved against it
    and given the datatype of the BIRTH (:func:`~simlab.bus.sparkplug.apply_datatype`).
    Births carry current values, so their metrics are stored too (except ``bdSeq`` and the
    ``Node Control/...``, ``Device Control/...`` and ``Properties/...`` metrics).

    Historian path of a metric: *the metric name itself when it is a UNS tag path*
    (``acme/lyon/water/line-1/tank/tank-1/level``), so a gateway that names its metrics by
    their UNS path feeds the same tag whether the value came as UNS JSON or as Sparkplug
    (stored from one of the two, see below); otherwise
    ``<group>/<edge_node>[/<device>]/<metric name>`` (the metric name may itself contain
    ``/``). Only UNS-named metrics reach the asset registry, whose tree is ISA-95.

    The assets of a node or device are those of its UNS-named metrics. NBIRTH and DBIRTH
    mark them online; NDEATH (with the bdSeq of the current NBIRTH) marks every asset of
    the node and its devices stale, DDEATH those of the device.

    :class:`~simlab.bus.sparkplug.SequenceTracker` checks the ``seq`` stream. A gap is
    counted (``gaps`` and ``bad["seq_gap"]``); the message's data are still valid and are
    stored. A gap, data from a node without a current NBIRTH, or a message breaking the
    sequence rules makes the ingest publish a ``Node Control/Rebirth`` NCMD
    (:func:`~simlab.bus.sparkplug.rebirth_request`) at once — no Reorder Timeout — and at
    most once per ``rebirth_holdoff`` seconds per edge node until its NBIRTH arrives.
    Commands (NCMD, DCMD) and host STATE messages are ignored.

One transport per tag (``prefer``)
    An edge gateway may publish the same reading twice: as UNS JSON on the tag's topic and
    as a Sparkplug metric named by the same UNS path (the built-in gateway does, with
    ``publish: [uns, sparkplug]``). The historian would then hold two rows per reading
    under one tag, from two sources. Instead each UNS tag is stored from one transport:

    - ``prefer="uns"`` (the default): a tag that has a UNS source — a valid UNS JSON message
      arrived on its topic since the ingest started, or it is one of ``dual_tags`` — is
      stored from UNS JSON only; its Sparkplug metrics are not stored. Until its first UNS
      message, a tag outside ``dual_tags`` is stored from Sparkplug. UNS has no death: a
      UNS source is remembered until the ingest stops, even if it falls silent.
    - ``prefer="sparkplug"``: a tag that has a live Sparkplug source — a UNS-named metric
      of the current BIRTH of a node or device not dead since, or one of ``dual_tags``
      before its first BIRTH — is stored from Sparkplug only; its UNS JSON messages are not
      stored. While its node or device is dead, its UNS messages are stored again.

    ``dual_tags`` are the tags known in advance to come both ways (the lab gives those of
    its gateway), so that the first sample is not stored twice either: the gateway's
    births, which carry the current values, often arrive before its first UNS messages.
    A sample left out is counted in ``other_transport`` and reaches neither the historian
    nor the alarms nor the registry; Sparkplug births and deaths still mark assets online
    and stale whichever transport is preferred. Metrics not named by a UNS path are always
    stored, under their Sparkplug path.

Bad input never stops the ingest
    Each problem is counted in :attr:`IngestStats.bad` under a :class:`BadReason` and
    logged with its topic, at most once per ``log_interval`` seconds per reason (the next
    line says how many were suppressed).

Duplicates
    The historian stores a ``(tag, ts, source)`` once (its primary key). The ingest also
    remembers the last ``dedupe_window`` keys it stored and skips a repeat (a QoS 1
    redelivery, a retained value sent again on resubscription) before it reaches the
    historian, the alarms and the registry; those are counted in ``duplicates``. A repeat
    of an older sample (e.g. after a restart) is still dropped by the historian, uncounted.

Latency and durability
    Each stored sample schedules a commit of the historian's buffer as soon as the burst
    of messages at hand is processed, but not sooner than ``min_flush_interval`` after the
    previous commit (so a flood commits in batches); a periodic task also commits every
    ``flush_interval`` seconds. A sample is durable (survives ``kill -9``) once committed:
    ``IngestStats.committed``. MQTT acknowledges a QoS 1 message on receipt, so what was
    received but not yet committed (a few milliseconds of data) is lost if the process dies.

The ingest runs on one event loop and is not thread-safe, like the objects it feeds.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal, TypeAlias, TypeGuard

from simlab.bus.client import BusError, Message, MqttClient
from simlab.bus.sparkplug import (
    BD_SEQ,
    NAMESPACE,
    DataType,
    EdgeTopic,
    MessageType,
    Metric,
    MetricValue,
    MqttMessage,
    Payload,
    SeqStatus,
    SequenceTracker,
    SparkplugError,
    SparkplugTopicError,
    StateTopic,
    apply_datatype,
    decode_payload,
    parse_topic,
    rebirth_request,
)
from simlab.bus.uns import (
    ISA95_LEVELS,
    MAX_PAYLOAD_BYTES,
    UnsPayloadError,
    UnsTopicError,
    UnsValue,
    parse_uns_payload,
    parse_uns_topic,
)
from simlab.platform.alarms import AlarmEngine
from simlab.platform.historian import HistorianError, SqliteHistorian
from simlab.platform.registry import AssetRegistry

__all__ = [
    "INGEST_QOS",
    "SPARKPLUG_MAX_PAYLOAD_BYTES",
    "BadReason",
    "Ingest",
    "IngestStats",
    "Transport",
]

log = logging.getLogger(__name__)

INGEST_QOS: Final = 1
"""QoS of the ingest's subscriptions: QoS 1 messages are queued by the broker for a
persistent session while the platform is away."""

Transport: TypeAlias = Literal["uns", "sparkplug"]
"""How a tag's samples come: UNS JSON on its topic, or Sparkplug B metrics named by it."""

SPARKPLUG_MAX_PAYLOAD_BYTES: Final = 1024 * 1024
"""Largest Sparkplug payload decoded by default (1 MiB); larger ones are counted as bad."""

_SP_PREFIX: Final = f"{NAMESPACE}/"
_CONTROL_PREFIXES: Final = ("Node Control/", "Device Control/", "Properties/")
_ASSET_DEPTH: Final = len(ISA95_LEVELS)
_CACHE_LIMIT: Final = 100_000  # validated topics / metric names remembered
_YIELD_EVERY: Final = 16
"""Messages handled in a row before :meth:`Ingest.run` returns to the event loop. A burst
is otherwise handled without a pause, holding the GIL while paho's network thread waits
for it to read and acknowledge more messages (the broker sends few QoS 1 messages ahead:
20 for Mosquitto): going through the loop's ``select`` lets that thread run."""


class BadReason(StrEnum):
    """Why a message (or part of one) could not be used as it came."""

    OVERSIZED = "oversized"
    """The payload is larger than the limit (64 KiB for UNS, ``max_sparkplug_bytes``)."""
    NOT_JSON = "not_json"
    """A UNS payload that is not a UTF-8 JSON object."""
    UNS_FIELD = "uns_field"
    """A UNS JSON object breaking the contract: a field missing, unknown, of the wrong type
    or inconsistent (``ts`` vs ``ts_ms``), a Good quality with a null value..."""
    UNS_TOPIC = "uns_topic"
    """A topic under a UNS root that is not ``enterprise/site/area/line/cell/asset/tag``."""
    SPARKPLUG_TOPIC = "sparkplug_topic"
    """A ``spBv1.0/...`` topic outside the Sparkplug B topic namespace."""
    SPARKPLUG_PAYLOAD = "sparkplug_payload"
    """Bytes that are not a (supported) Sparkplug B payload."""
    SEQ_GAP = "seq_gap"
    """A Sparkplug seq other than the expected one (the data are still stored)."""
    SPARKPLUG_SEQUENCE = "sparkplug_sequence"
    """A message breaking the sequence rules (NBIRTH with seq ≠ 0 or without bdSeq, data
    without seq): dropped."""
    SPARKPLUG_NO_SESSION = "sparkplug_no_session"
    """Data from an edge node whose current NBIRTH was not seen: aliases cannot be resolved."""
    SPARKPLUG_METRIC = "sparkplug_metric"
    """A DATA metric whose alias or name its BIRTH did not declare (the metric is dropped)."""
    SPARKPLUG_VALUE = "sparkplug_value"
    """A metric value that does not fit the datatype of its BIRTH (the metric is dropped)."""
    INTERNAL = "internal_error"
    """An unexpected error while handling the message (a bug: see the log)."""


@dataclass
class IngestStats:
    """Counters of one :class:`Ingest`; :meth:`Ingest.run` updates them on the event loop."""

    received: int = 0
    """Messages taken from the bus."""
    stored: int = 0
    """Samples handed to the historian (that passed its deadband filter)."""
    committed: int = 0
    """Samples known to be committed (durable): ``stored`` as of the last commit."""
    duplicates: int = 0
    """Samples skipped because the same ``(tag, ts, source)`` was stored recently."""
    filtered: int = 0
    """Samples the historian's deadband filter dropped."""
    not_stored: int = 0
    """Values the historian cannot hold (text, bytes, arrays); text still reaches the
    registry."""
    ignored: int = 0
    """Messages not meant for the platform: empty UNS payloads (retained values cleared),
    Sparkplug commands and STATE, NDEATHs of an older session, other groups."""
    other_transport: int = 0
    """Samples left out because their tag is stored from the other, preferred transport
    (see ``prefer``): Sparkplug metrics of a UNS-sourced tag, or the reverse."""
    bad: dict[str, int] = field(default_factory=dict)
    """Problems by :class:`BadReason` value: one count per message (per metric for
    ``sparkplug_metric`` and ``sparkplug_value``)."""
    gaps: int = 0
    """Sparkplug seq gaps seen."""
    rebirths_requested: int = 0
    """Rebirth NCMDs published."""
    flushes: int = 0
    """Commits of the historian's buffer made by the ingest."""
    flush_errors: int = 0
    """Commits that failed (the samples stay buffered and are retried)."""

    @property
    def bad_total(self) -> int:
        """All problems counted in :attr:`bad`."""
        return sum(self.bad.values())

    def copy(self) -> IngestStats:
        """An independent snapshot."""
        return dataclasses.replace(self, bad=dict(self.bad))


@dataclass(slots=True)
class _Scope:
    """What the BIRTH of an edge node or of one of its devices declared."""

    by_alias: dict[int, tuple[str, DataType | None]] = field(default_factory=dict)
    by_name: dict[str, DataType | None] = field(default_factory=dict)
    assets: set[str] = field(default_factory=set)
    uns_tags: set[str] = field(default_factory=set)  # its UNS-named data metrics


@dataclass(slots=True)
class _EdgeNode:
    """A Sparkplug edge node as the ingest knows it."""

    node: _Scope = field(default_factory=_Scope)
    devices: dict[str, _Scope] = field(default_factory=dict)
    rebirth_requested_at: float | None = None  # monotonic


class _LogLimiter:
    """Log at most one warning per key every ``interval`` seconds, counting the rest."""

    def __init__(self, logger: logging.Logger, interval: float) -> None:
        self._logger = logger
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object, exc_info: bool = False) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += " (%d more like this in the last %.0f s were not logged)"
            args = (*args, suppressed, now - (last or now))
        self._logger.warning(message, *args, exc_info=exc_info)


class Ingest:
    """Consume UNS and Sparkplug B messages into the historian, alarms and registry.

    Args:
        historian: where samples are stored; the ingest commits its buffer (see the module
            docstring for when).
        alarms: every numeric sample is evaluated against it.
        registry: UNS tags are observed in it; births and deaths mark assets online/stale.
        on_stats: called with a snapshot of :attr:`stats` at most every ``stats_interval``
            seconds while they change, and once when :meth:`run` ends.
        uns_roots: topic prefixes of the UNS, e.g. ``["acme"]`` (the enterprise) or
            ``["acme/lyon"]``; each is subscribed as ``<root>/#``. ``None`` subscribes to
            ``#`` and takes every topic outside ``spBv1.0/`` as UNS.
        sparkplug: whether to ingest Sparkplug B at all.
        sparkplug_groups: Sparkplug group ids to ingest (``spBv1.0/<group>/#``); ``None``
            takes every group (``spBv1.0/#``).
        now: the lab's time in seconds since the Unix epoch, for Sparkplug metrics without
            any timestamp and for the rebirth requests.
        flush_interval: seconds between the periodic commits (an upper bound on how long a
            sample waits in the buffer if nothing else commits it).
        min_flush_interval: seconds between two commits scheduled by arriving samples.
        stats_interval: seconds between ``on_stats`` calls.
        rebirth_holdoff: seconds before asking the same edge node for a rebirth again.
        max_sparkplug_bytes: largest Sparkplug payload decoded.
        dedupe_window: how many recent ``(tag, ts, source)`` keys are remembered.
        log_interval: seconds between two warnings of the same :class:`BadReason`.
        prefer: the transport a tag published both as UNS JSON and as a Sparkplug metric is
            stored from, ``"uns"`` or ``"sparkplug"`` (see the module docstring).
        dual_tags: UNS paths known to come over both transports (e.g. the tags of the
            lab's gateway publishing both): the preferred transport holds them from the
            start.
    """

    def __init__(
        self,
        historian: SqliteHistorian,
        alarms: AlarmEngine,
        registry: AssetRegistry,
        *,
        on_stats: Callable[[IngestStats], None] | None = None,
        uns_roots: Iterable[str] | None = None,
        sparkplug: bool = True,
        sparkplug_groups: Iterable[str] | None = None,
        now: Callable[[], float] = time.time,
        flush_interval: float = 0.25,
        min_flush_interval: float = 0.005,
        stats_interval: float = 1.0,
        rebirth_holdoff: float = 5.0,
        max_sparkplug_bytes: int = SPARKPLUG_MAX_PAYLOAD_BYTES,
        dedupe_window: int = 65_536,
        log_interval: float = 10.0,
        prefer: Transport = "uns",
        dual_tags: Iterable[str] = (),
    ) -> None:
        if not 0 < flush_interval <= 0.25:
            raise ValueError(f"flush_interval must be in (0, 0.25] s, got {flush_interval}")
        if not 0 <= min_flush_interval <= flush_interval:
            raise ValueError(
                f"min_flush_interval must be in [0, flush_interval], got {min_flush_interval}"
            )
        if dedupe_window < 0:
            raise ValueError(f"dedupe_window must be >= 0, got {dedupe_window}")
        if prefer not in ("uns", "sparkplug"):
            raise ValueError(f"prefer must be 'uns' or 'sparkplug', got {prefer!r}")
        self._historian = historian
        self._alarms = alarms
        self._registry = registry
        self._on_stats = on_stats
        self._roots = _check_roots(uns_roots)
        self._root_prefixes = tuple(f"{root}/" for root in self._roots or ())
        self._sparkplug = sparkplug
        self._groups = None if sparkplug_groups is None else _check_groups(sparkplug_groups)
        self._now = now
        self._flush_interval = flush_interval
        self._min_flush_interval = min_flush_interval
        self._stats_interval = stats_interval
        self._rebirth_holdoff = rebirth_holdoff
        self._max_sparkplug_bytes = max_sparkplug_bytes
        self._dedupe_window = dedupe_window
        self._limiter = _LogLimiter(log, log_interval)

        self._stats = IngestStats()
        self._tracker = SequenceTracker()
        self._nodes: dict[tuple[str, str], _EdgeNode] = {}
        self._uns_assets: dict[str, str] = {}  # valid UNS topic -> its asset path
        self._metric_uns: dict[str, str | None] = {}  # metric name -> asset path, or None
        self._marked_online: set[str] = set()  # assets a live UNS message marked online
        self._prefer_uns = prefer == "uns"
        # prefer="uns": the tags with a UNS source (valid UNS JSON seen, or dual)
        self._uns_sourced: set[str] = set(dual_tags) if self._prefer_uns else set()
        # prefer="sparkplug": dual tags before their first BIRTH; UNS tag -> live BIRTHs
        self._sparkplug_expected: set[str] = set() if self._prefer_uns else set(dual_tags)
        self._sparkplug_live: collections.Counter[str] = collections.Counter()
        # tag -> (ts, value, quality, unit, source): the registry's next update
        self._latest: dict[str, tuple[float, UnsValue, str, str | None, str]] = {}
        self._recent: set[tuple[str, int, str]] = set()
        self._recent_order: collections.deque[tuple[str, int, str]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_handle: asyncio.TimerHandle | None = None
        self._last_flush = time.monotonic()
        self._waiters: list[tuple[Callable[[IngestStats], bool], asyncio.Future[IngestStats]]] = []
        self._last_reported: IngestStats | None = None
        self._running = False

    # ------------------------------------------------------------------ properties

    @property
    def stats(self) -> IngestStats:
        """The live counters (read them, do not change them)."""
        return self._stats

    @property
    def subscriptions(self) -> dict[str, int]:
        """``{topic_filter: qos}`` to give the client's ``subscriptions=`` (all QoS 1)."""
        filters: list[str] = []
        if self._roots is None:
            filters.append("#")
        else:
            filters += [f"{root}/#" for root in self._roots]
            if self._sparkplug:
                if self._groups is None:
                    filters.append(f"{NAMESPACE}/#")
                else:
                    filters += [f"{NAMESPACE}/{group}/#" for group in sorted(self._groups)]
        return dict.fromkeys(filters, INGEST_QOS)

    # ------------------------------------------------------------------ running

    async def run(self, client: MqttClient) -> None:
        """Ingest the messages of ``client`` until it is closed (or this task is cancelled).

        Subscriptions in :attr:`subscriptions` that the client does not have yet are made
        first (declare them in the client's constructor to resume a persistent session).
        Rebirth requests are published through ``client``. On the way out the historian's
        buffer is committed and ``on_stats`` is called.
        """
        if self._running:
            raise RuntimeError("this Ingest is already running")
        self._running = True
        self._loop = asyncio.get_running_loop()
        try:
            have = client.subscriptions
            for topic_filter, qos in self.subscriptions.items():
                if topic_filter not in have:
                    await client.subscribe(topic_filter, qos)
            async with asyncio.TaskGroup() as tasks:
                ticker = tasks.create_task(self._tick(), name="simlab-ingest-flush")
                try:
                    async for batch in client.message_batches(_YIELD_EVERY):
                        for command in self.handle_batch(batch):
                            await self._publish(client, command)
                        if len(batch) == _YIELD_EVERY:
                            # Let paho's network thread have the GIL (see _YIELD_EVERY).
                            await asyncio.sleep(0)
                finally:
                    ticker.cancel()
        finally:
            self._running = False
            if self._flush_handle is not None:
                self._flush_handle.cancel()
                self._flush_handle = None
            self.flush()
            self._loop = None
            self._report_stats(force=True)

    async def _tick(self) -> None:
        """Commit at least every ``flush_interval`` s; report stats every ``stats_interval``."""
        last_report = time.monotonic()
        while True:
            await asyncio.sleep(self._flush_interval)
            if self._historian.pending or self._latest:
                self.flush()
            now = time.monotonic()
            if now - last_report >= self._stats_interval:
                last_report = now
                self._report_stats()

    async def _publish(self, client: MqttClient, command: MqttMessage) -> None:
        try:
            await client.publish(command.topic, command.payload, command.qos, command.retain)
        except BusError as err:
            self._limiter.warning(
                "rebirth", "cannot request a rebirth on %s: %s", command.topic, err
            )
            return
        self._stats.rebirths_requested += 1
        log.info("requested a Sparkplug rebirth: %s", command.topic)

    def flush(self) -> int:
        """Update the registry and commit the historian's buffer now.

        Returns the rows newly stored (0 if the commit failed: the samples stay buffered).
        """
        stats = self._stats
        if self._latest:
            self._apply_latest()
        rows = 0
        if self._historian.pending:
            try:
                rows = self._historian.flush()
            except HistorianError as err:
                stats.flush_errors += 1
                self._limiter.warning("flush", "cannot commit samples to the historian: %s", err)
                return 0
            stats.flushes += 1
        self._last_flush = time.monotonic()
        stats.committed = stats.stored  # nothing pending: everything stored is committed
        self._notify()
        return rows

    def _apply_latest(self) -> None:
        """Hand the registry the newest value of each tag since the last commit."""
        latest, self._latest = self._latest, {}
        observe = self._registry.observe
        for tag, (ts, value, quality, unit, source) in latest.items():
            try:
                observe(tag, value, ts, quality, unit=unit, source=source)
            except Exception as err:  # a UNS path and quality checked on arrival: a bug
                self._count_bad(BadReason.INTERNAL, tag, f"registry update failed: {err}")

    def _observe(
        self, tag: str, ts: float, value: UnsValue, quality: str, *, unit: str | None, source: str
    ) -> None:
        """Remember the tag's newest value for the registry (applied by :meth:`flush`)."""
        previous = self._latest.get(tag)
        if previous is None or ts >= previous[0]:
            self._latest[tag] = (ts, value, quality, unit, source)

    def _schedule_flush(self) -> None:
        if self._flush_handle is not None or self._loop is None:
            return
        delay = max(0.0, self._last_flush + self._min_flush_interval - time.monotonic())
        self._flush_handle = self._loop.call_later(delay, self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_handle = None
        self.flush()

    def _report_stats(self, *, force: bool = False) -> None:
        if self._on_stats is None:
            return
        snapshot = self._stats.copy()
        if not force and snapshot == self._last_reported:
            return
        self._last_reported = snapshot
        try:
            self._on_stats(snapshot)
        except Exception:
            log.exception("the on_stats callback of the ingest failed")

    async def wait_until(
        self, predicate: Callable[[IngestStats], bool], timeout: float | None = None
    ) -> IngestStats:
        """Wait until ``predicate(stats)`` holds; returns a snapshot of the stats then.

        The predicate is checked after every message and every commit. Raises
        :class:`TimeoutError` (saying what the stats were) after ``timeout`` seconds.
        """
        if predicate(self._stats):
            return self._stats.copy()
        waiter: asyncio.Future[IngestStats] = asyncio.get_running_loop().create_future()
        entry = (predicate, waiter)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError:
            raise TimeoutError(
                f"the ingest did not reach the awaited state within {timeout} s: {self._stats}"
            ) from None
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def _notify(self) -> None:
        if not self._waiters:
            return
        # set_result() only schedules the waiter: the list does not change while we iterate
        stats = self._stats
        for predicate, waiter in self._waiters:
            if waiter.done():
                continue
            try:
                ready = predicate(stats)
            except Exception as err:
                waiter.set_exception(err)
                continue
            if ready:
                waiter.set_result(stats.copy())

    # ------------------------------------------------------------------ one message

    def handle(self, message: Message) -> list[MqttMessage]:
        """Ingest one message; returns the commands to publish (rebirth requests).

        Never raises for bad input: problems are counted and logged. Call it (or
        :meth:`handle_batch`) to feed messages from elsewhere, then commit with
        :meth:`flush`.
        """
        commands = self._handle_one(message)
        self._notify()
        return commands

    def handle_batch(self, messages: Iterable[Message]) -> list[MqttMessage]:
        """Ingest messages in order, like :meth:`handle` each; returns all their commands.

        :meth:`run` calls it with what each wake-up of the client brought; ``wait_until``
        predicates are checked once, after the batch.
        """
        commands: list[MqttMessage] = []
        handle = self._handle_one
        for message in messages:
            more = handle(message)
            if more:
                commands += more
        self._notify()
        return commands

    def _handle_one(self, message: Message) -> list[MqttMessage]:
        self._stats.received += 1
        try:
            if message.topic.startswith(_SP_PREFIX):
                if self._sparkplug:
                    return self._handle_sparkplug(message)
                self._stats.ignored += 1
            else:
                self._handle_uns(message)
        except Exception as err:  # a bug: count it, log it (with the traceback), go on
            self._count_bad(BadReason.INTERNAL, message.topic, repr(err), exc_info=True)
        return []

    def _count_bad(
        self, reason: BadReason, topic: str, detail: str, *, exc_info: bool = False
    ) -> None:
        bad = self._stats.bad
        bad[reason.value] = bad.get(reason.value, 0) + 1
        self._limiter.warning(
            reason.value, "ingest: %s on %s: %s", reason.value, topic, detail, exc_info=exc_info
        )

    def _seen(self, key: tuple[str, int, str]) -> bool:
        """Whether ``key`` was stored recently; remembers it if not."""
        if self._dedupe_window == 0:
            return False
        recent = self._recent
        if key in recent:
            self._stats.duplicates += 1
            return True
        recent.add(key)
        order = self._recent_order
        order.append(key)
        if len(order) > self._dedupe_window:
            recent.discard(order.popleft())
        return False

    def _store(self, tag: str, ts: float, value: MetricValue, quality: str, source: str) -> None:
        """Historian row and alarm evaluation of one sample (numbers, booleans and nulls)."""
        stats = self._stats
        if value is None:
            number: float | None = None
        elif isinstance(value, bool | int | float):
            try:
                number = float(value)
            except OverflowError:
                stats.not_stored += 1
                return
        else:
            stats.not_stored += 1
            return
        try:
            kept = self._historian.write(tag, ts, number, quality, source)
        except HistorianError as err:  # its own commit failed: the sample stays buffered
            kept = True
            stats.flush_errors += 1
            self._limiter.warning("flush", "cannot commit samples to the historian: %s", err)
        if kept:
            stats.stored += 1
        else:
            stats.filtered += 1
        for event in self._alarms.evaluate(tag, number, ts, quality):
            log.info("alarm %s %s (%s): %s", event.alarm, event.kind, event.state, event.message)

    # ------------------------------------------------------------------ UNS

    def _handle_uns(self, message: Message) -> None:
        topic = message.topic
        payload = message.payload
        asset = self._uns_assets.get(topic)  # known topics are under a root and valid
        if asset is None and self._root_prefixes and not topic.startswith(self._root_prefixes):
            self._stats.ignored += 1  # not one of our subscriptions' topics
            return
        if not payload:
            self._stats.ignored += 1  # a retained value being cleared
            return
        if len(payload) > MAX_PAYLOAD_BYTES:
            self._count_bad(
                BadReason.OVERSIZED,
                topic,
                f"{len(payload)} bytes, over the UNS limit of {MAX_PAYLOAD_BYTES}",
            )
            return
        if asset is None:
            try:
                path = parse_uns_topic(topic)
            except UnsTopicError as err:
                self._count_bad(BadReason.UNS_TOPIC, topic, str(err))
                return
            asset = "/".join(path.segments[:_ASSET_DEPTH])
            if len(self._uns_assets) < _CACHE_LIMIT:
                self._uns_assets[topic] = asset
        try:
            # the UnsMessage contract without building the object (see parse_uns_payload)
            value, unit, ts_ms, quality, source = parse_uns_payload(payload)
        except UnsPayloadError as err:
            reason = BadReason.NOT_JSON if err.field == "payload" else BadReason.UNS_FIELD
            self._count_bad(reason, topic, str(err))
            return
        if self._prefer_uns:
            self._uns_sourced.add(topic)
        elif topic in self._sparkplug_live or topic in self._sparkplug_expected:
            self._stats.other_transport += 1  # stored from Sparkplug, whose births tell state
            return
        if self._seen((topic, ts_ms, source)):
            return
        ts = ts_ms / 1000.0
        self._observe(topic, ts, value, quality, unit=unit, source=source)
        if not message.retain and asset not in self._marked_online:
            self._registry.mark_online(asset, ts=ts)
            self._marked_online.add(asset)
        self._store(topic, ts, value, quality, source)
        self._schedule_flush()  # also for text values, which only the registry keeps

    # ------------------------------------------------------------------ Sparkplug

    def _handle_sparkplug(self, message: Message) -> list[MqttMessage]:
        topic = message.topic
        stats = self._stats
        if len(message.payload) > self._max_sparkplug_bytes:
            self._count_bad(
                BadReason.OVERSIZED,
                topic,
                f"{len(message.payload)} bytes, over the limit of {self._max_sparkplug_bytes}",
            )
            return []
        try:
            parsed = parse_topic(topic)
        except SparkplugTopicError as err:
            self._count_bad(BadReason.SPARKPLUG_TOPIC, topic, str(err))
            return []
        if isinstance(parsed, StateTopic):
            stats.ignored += 1  # a host application's STATE, not data
            return []
        kind = parsed.message_type
        if kind in (MessageType.NCMD, MessageType.DCMD) or (
            self._groups is not None and parsed.group_id not in self._groups
        ):
            stats.ignored += 1  # commands to edge nodes (ours too), or another group
            return []
        try:
            payload = decode_payload(message.payload)
        except SparkplugError as err:
            self._count_bad(BadReason.SPARKPLUG_PAYLOAD, topic, str(err))
            return []
        report = self._tracker.observe(parsed, payload)
        status = report.status
        key = (parsed.group_id, parsed.edge_node_id)
        if status is SeqStatus.INVALID:
            self._count_bad(BadReason.SPARKPLUG_SEQUENCE, topic, report.detail)
            return self._rebirth(key)
        if status is SeqStatus.NO_SESSION:
            self._count_bad(BadReason.SPARKPLUG_NO_SESSION, topic, report.detail)
            return self._rebirth(key)
        if status in (SeqStatus.STALE_DEATH, SeqStatus.NOT_SEQUENCED):
            stats.ignored += 1
            log.debug("ingest: ignored %s: %s", topic, report.detail)
            return []
        commands: list[MqttMessage] = []
        if status is SeqStatus.GAP:
            stats.gaps += 1
            self._count_bad(BadReason.SEQ_GAP, topic, report.detail)
            commands = self._rebirth(key)
        if kind is MessageType.NBIRTH:
            self._node_birth(parsed, payload)
        elif kind is MessageType.NDEATH:
            self._node_death(parsed, payload)
        elif kind is MessageType.DBIRTH:
            self._device_birth(parsed, payload)
        elif kind is MessageType.DDEATH:
            self._device_death(parsed, payload)
        else:  # NDATA, DDATA
            self._data(parsed, payload)
        return commands

    def _rebirth(self, key: tuple[str, str]) -> list[MqttMessage]:
        """A rebirth request for the edge node, unless one was sent within the holdoff."""
        node = self._nodes.setdefault(key, _EdgeNode())
        now = time.monotonic()
        if node.rebirth_requested_at is not None and (
            now - node.rebirth_requested_at < self._rebirth_holdoff
        ):
            return []
        node.rebirth_requested_at = now
        timestamp_ms = max(0, round(self._now() * 1000))
        return [rebirth_request(key[0], key[1], timestamp_ms=timestamp_ms)]

    def _node_birth(self, parsed: EdgeTopic, payload: Payload) -> None:
        node = _EdgeNode()  # a new session: devices must be born again, no rebirth pending
        old = self._nodes.get((parsed.group_id, parsed.edge_node_id))
        if old is not None:
            self._end_node(old)
        self._nodes[(parsed.group_id, parsed.edge_node_id)] = node
        self._birth(node.node, parsed, payload)

    def _device_birth(self, parsed: EdgeTopic, payload: Payload) -> None:
        node = self._nodes.setdefault((parsed.group_id, parsed.edge_node_id), _EdgeNode())
        assert parsed.device_id is not None  # D* topics always have one
        old = node.devices.get(parsed.device_id)
        if old is not None:
            self._end_scope(old)
        scope = _Scope()
        node.devices[parsed.device_id] = scope
        self._birth(scope, parsed, payload)

    def _end_node(self, node: _EdgeNode) -> None:
        """The Sparkplug session of an edge node is over: its tags lose that source."""
        self._end_scope(node.node)
        for scope in node.devices.values():
            self._end_scope(scope)

    def _end_scope(self, scope: _Scope) -> None:
        live = self._sparkplug_live
        for tag in scope.uns_tags:
            live[tag] -= 1
            if live[tag] <= 0:
                del live[tag]
        scope.uns_tags.clear()

    def _birth(self, scope: _Scope, parsed: EdgeTopic, payload: Payload) -> None:
        """Record a BIRTH's metrics in ``scope``, store their values, mark assets online."""
        for metric in payload.metrics:
            name = metric.name
            if name is None:
                self._count_bad(
                    BadReason.SPARKPLUG_METRIC,
                    parsed.topic,
                    f"a BIRTH metric without a name (alias {metric.alias})",
                )
                continue
            scope.by_name[name] = metric.datatype
            if metric.alias is not None:
                scope.by_alias[metric.alias] = (name, metric.datatype)
            asset = self._metric_asset(name)
            if asset is not None:
                scope.assets.add(asset)
            if name != BD_SEQ and not name.startswith(_CONTROL_PREFIXES):
                if asset is not None and name not in scope.uns_tags:
                    scope.uns_tags.add(name)
                    self._sparkplug_live[name] += 1
                    self._sparkplug_expected.discard(name)
                self._store_metric(parsed, payload, name, metric, asset)
        ts = _seconds(payload.timestamp_ms, self._now)
        for asset in sorted(scope.assets):
            self._registry.mark_online(asset, ts=ts)

    def _node_death(self, parsed: EdgeTopic, payload: Payload) -> None:
        node = self._nodes.pop((parsed.group_id, parsed.edge_node_id), None)
        if node is None:
            return
        self._end_node(node)
        assets = set(node.node.assets)
        for scope in node.devices.values():
            assets |= scope.assets
        reason = f"NDEATH of Sparkplug edge node {parsed.group_id}/{parsed.edge_node_id}"
        self._mark_stale(assets, reason, _seconds(payload.timestamp_ms, self._now))

    def _device_death(self, parsed: EdgeTopic, payload: Payload) -> None:
        node = self._nodes.get((parsed.group_id, parsed.edge_node_id))
        assert parsed.device_id is not None
        scope = None if node is None else node.devices.pop(parsed.device_id, None)
        if scope is None:
            return
        self._end_scope(scope)
        reason = (
            f"DDEATH of Sparkplug device {parsed.group_id}/{parsed.edge_node_id}/{parsed.device_id}"
        )
        self._mark_stale(scope.assets, reason, _seconds(payload.timestamp_ms, self._now))

    def _mark_stale(self, assets: Iterable[str], reason: str, ts: float) -> None:
        for asset in sorted(assets):
            self._registry.mark_stale(asset, reason, ts=ts)
            self._marked_online.discard(asset)

    def _data(self, parsed: EdgeTopic, payload: Payload) -> None:
        node = self._nodes.get((parsed.group_id, parsed.edge_node_id))
        scope: _Scope | None
        if node is None:
            scope = None
        elif parsed.device_id is None:
            scope = node.node
        else:
            scope = node.devices.get(parsed.device_id)
        if scope is None:  # a DDATA of a device not born in this session
            self._count_bad(
                BadReason.SPARKPLUG_NO_SESSION, parsed.topic, "no DBIRTH seen for this device"
            )
            return
        for raw in payload.metrics:
            metric = raw
            if metric.name is not None and metric.name in scope.by_name:
                name, datatype = metric.name, scope.by_name[metric.name]
            elif metric.alias is not None and metric.alias in scope.by_alias:
                name, datatype = scope.by_alias[metric.alias]
            else:
                label = metric.name if metric.name is not None else f"alias {metric.alias}"
                self._count_bad(
                    BadReason.SPARKPLUG_METRIC, parsed.topic, f"{label} is not in the BIRTH"
                )
                continue
            if name == BD_SEQ or name.startswith(_CONTROL_PREFIXES):
                continue
            if datatype is not None:
                try:
                    metric = apply_datatype(metric, datatype)
                except SparkplugError as err:
                    self._count_bad(BadReason.SPARKPLUG_VALUE, parsed.topic, str(err))
                    continue
            self._store_metric(parsed, payload, name, metric, self._metric_asset(name))

    def _metric_asset(self, name: str) -> str | None:
        """The asset path of a metric named by a UNS tag path, else None."""
        try:
            return self._metric_uns[name]
        except KeyError:
            pass
        try:
            path = parse_uns_topic(name)
        except UnsTopicError:
            asset = None
        else:
            asset = "/".join(path.segments[:_ASSET_DEPTH])
        if len(self._metric_uns) < _CACHE_LIMIT:
            self._metric_uns[name] = asset
        return asset

    def _store_metric(
        self, parsed: EdgeTopic, payload: Payload, name: str, metric: Metric, asset: str | None
    ) -> None:
        if asset is not None:
            tag = name
            if self._prefer_uns and tag in self._uns_sourced:
                self._stats.other_transport += 1  # stored from UNS JSON
                return
        else:
            parts = [parsed.group_id, parsed.edge_node_id]
            if parsed.device_id is not None:
                parts.append(parsed.device_id)
            tag = "/".join((*parts, name))
        source = f"{NAMESPACE}/{parsed.group_id}/{parsed.edge_node_id}"
        if parsed.device_id is not None:
            source += f"/{parsed.device_id}"
        if metric.timestamp_ms is not None:
            ts_ms = metric.timestamp_ms
        elif payload.timestamp_ms is not None:
            ts_ms = payload.timestamp_ms
        else:
            ts_ms = max(0, round(self._now() * 1000))
        if self._seen((tag, ts_ms, source)):
            return
        ts = ts_ms / 1000.0
        value = metric.value
        quality = "Bad" if metric.is_null else "Good"
        if asset is not None and _is_uns_value(value):
            self._observe(tag, ts, value, quality, unit=None, source=source)
        self._store(tag, ts, value, quality, source)
        self._schedule_flush()


# --------------------------------------------------------------------------- helpers


def _is_uns_value(value: MetricValue) -> TypeGuard[UnsValue]:
    return value is None or isinstance(value, bool | int | float | str)


def _seconds(timestamp_ms: int | None, now: Callable[[], float]) -> float:
    return now() if timestamp_ms is None else timestamp_ms / 1000.0


def _check_roots(roots: Iterable[str] | None) -> tuple[str, ...] | None:
    if roots is None:
        return None
    checked: list[str] = []
    for root in roots:
        value = root.strip("/")
        if not value or "+" in value or "#" in value or value.split("/")[0] == NAMESPACE:
            raise ValueError(
                f"invalid UNS root {root!r}: give a topic prefix such as the enterprise "
                "('acme') or 'acme/lyon', without wildcards and not spBv1.0"
            )
        if value not in checked:
            checked.append(value)
    if not checked:
        raise ValueError("uns_roots is empty: give at least one root, or None for all topics")
    return tuple(checked)


def _check_groups(groups: Iterable[str]) -> frozenset[str]:
    checked = frozenset(groups)
    for group in checked:
        if not group or any(c in group for c in "/+#"):
            raise ValueError(f"invalid Sparkplug group id {group!r}")
    return checked
