"""The built-in edge gateway: polls devices over real Modbus TCP / OPC UA, publishes to MQTT.

The gateway is an *outside program*, like the one an apprentice writes: it knows the
scenario (what to poll, where each tag sits in the UNS) and the endpoint map (where each
server listens), and reaches the devices only through real clients on real sockets
(:class:`~devices.endpoints.modbus_client.ModbusPoller`,
:class:`~devices.endpoints.opcua_client.OpcUaPoller`). Its pace is the wall clock
(``gateway.poll_interval`` seconds), not the lab's simulated clock.

What it publishes (``gateway.publish``)
---------------------------------------
``uns``
    One :class:`~simlab.bus.uns.UnsMessage` per tag at ``scenario.uns_path(device, tag)``,
    retained, QoS 1: the tag's value in its own type (``int`` tags as integers), ``unit``
    from the scenario, ``quality`` the OPC UA status name of the reading (``Good``,
    ``BadDeviceFailure``, ``BadTimeout``, ``BadSensorFailure``...; the value is ``null``
    when Bad), ``ts``/``ts_ms`` the server's SourceTimestamp (OPC UA) or the lab time of
    the poll (Modbus has no timestamps), source ``gateway:<name>``. Report by exception:
    a tag is published when its value or quality changed, and at least every
    ``heartbeat`` seconds (10 s).
``sparkplug``
    Sparkplug B 3.0 through :class:`~simlab.bus.sparkplug.EdgeNodeSession`: group
    ``gateway.sparkplug_group``, edge node id = the gateway's name, one Sparkplug device
    per polled device, metric names = the tags' UNS paths. The NDEATH Will carrying a new
    bdSeq is set before *every* connection (the MQTT client's Will factory); NBIRTH and the
    DBIRTHs follow each CONNACK; DDATA carries the metrics that changed, by alias; a Bad
    value is a null metric. A device the gateway cannot reach gets a DDEATH, and a DBIRTH
    when it answers again. NCMD ``Node Control/Rebirth`` re-emits the births; a DCMD
    write is applied to the device through the poller (Modbus FC 5/16, OPC UA Write) if
    the scenario declares the tag writable, else it is rejected and logged.

Startup: the pollers connect and poll once, so the births carry real values; then the
MQTT connection opens, the first UNS values go out, and the poll loop starts. An
unreachable device does not stop the gateway (its tags are Bad until it answers); an
unreachable broker does (:class:`~simlab.bus.client.BusError`).

How the lab starts it::

    gateway = EdgeGateway(scenario, lab.addresses(), broker.url, now_ms=lab_now_ms)
    async with gateway:   # after the lab's endpoints listen, before the lab runs
        ...

where ``lab_now_ms()`` is the lab's simulated time in ms since the Unix epoch (it is
called from the MQTT client's connecting thread too: it must only read).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from devices.endpoints.modbus_client import ModbusPoller, PolledValue
from devices.endpoints.opcua_client import OpcUaPoller
from simlab.addresses import EndpointAddress
from simlab.bus.client import BusError, ConnectionEvent, MqttClient, Will
from simlab.bus.publisher import as_tag_type, tag_unit
from simlab.bus.sparkplug import (
    EdgeNodeSession,
    MetricDef,
    MetricValue,
    MqttMessage,
    SparkplugError,
    SparkplugStateError,
)
from simlab.bus.uns import UNS_QOS, UNS_RETAIN, UnsMessage, UnsValue
from simlab.errors import LabError, TagError
from simlab.scenario.devices import PlcSpec, SmartSensorSpec, TagSpec
from simlab.scenario.integration import GatewaySource, GatewaySpec
from simlab.scenario.model import Scenario

__all__ = ["DEFAULT_HEARTBEAT", "EdgeGateway", "GatewayStats", "dual_transport_tags"]

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT = 10.0
"""Seconds after which an unchanged UNS value is published again."""

Poller = ModbusPoller | OpcUaPoller


@dataclass
class GatewayStats:
    """Counters of an :class:`EdgeGateway`, updated on the event loop."""

    polls: int = 0
    """Poll cycles completed (every source polled, results published)."""
    poll_errors: int = 0
    """Poll cycles that failed unexpectedly (logged)."""
    bad_values: int = 0
    """Tag readings that were not Good, over all cycles."""
    uns_published: int = 0
    """UNS messages acknowledged by the broker."""
    uns_unchanged: int = 0
    """UNS messages not sent because neither value nor quality changed (report by exception)."""
    sparkplug_published: int = 0
    """Sparkplug messages published (births, DDATA, DDEATH)."""
    births: int = 0
    """NBIRTHs published (each connection, each rebirth)."""
    rebirths: int = 0
    """Rebirth requests (NCMD) honoured."""
    commands: int = 0
    """NCMD/DCMD messages received."""
    writes_applied: int = 0
    """DCMD writes the device accepted."""
    writes_rejected: int = 0
    """DCMD writes refused: read-only tag, unknown metric, value refused by the device."""
    publish_errors: int = 0
    """Publications that failed (not connected, not acknowledged in time)."""


@dataclass(eq=False)
class _Point:
    """One polled tag: where it goes, and what was last published to the UNS."""

    device: str
    tag: TagSpec
    topic: str  # UNS path, also the Sparkplug metric name
    unit: str | None
    sent: tuple[UnsValue, str] | None = None
    sent_at: float = -math.inf  # time.monotonic() of the last UNS publication


@dataclass(eq=False)
class _Source:
    """A gateway source with its poller and tags."""

    spec: GatewaySource
    poller: Poller
    points: dict[str, _Point] = field(default_factory=dict)


def _same(a: object, b: object) -> bool:
    """Equal values of the same type (NaN equals NaN: an unchanged NaN is no change)."""
    if type(a) is not type(b):
        return False
    if a == b:
        return True
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


class EdgeGateway:
    """The scenario's edge gateway (``scenario.gateway``); ``async with`` it.

    Args:
        scenario: the lab's scenario; it must have a ``gateway:`` section.
        endpoints: the endpoint map of the running lab (``lab.addresses()``).
        broker_url: ``mqtt://host:port`` of the broker.
        now_ms: the lab's simulated time, ms since the Unix epoch: timestamps of Modbus
            values and of Sparkplug messages.
        heartbeat: seconds after which an unchanged UNS value is published again.
        timeout: seconds the pollers wait for a device to connect or answer.
        opcua_mode: ``"read"`` (one Read per poll, the default) or ``"subscribe"``
            (100 ms monitored items; a poll takes the latest notifications).
        client_id: MQTT client id (default ``simlab-<gateway name>-<random>``).

    Useful attributes: ``stats`` (:class:`GatewayStats`), ``last_values`` (the latest
    :class:`PolledValue` of every tag), ``session`` (the Sparkplug session, or None),
    ``heartbeat`` (may be changed while running), ``client`` and ``pollers``.

    Raises :class:`LabError` at construction for a source the endpoint map or the scenario
    cannot satisfy: unknown device, no endpoint for the protocol, a tag the protocol does
    not map, a tag polled twice. Entering raises :class:`~simlab.bus.client.BusError` when
    the broker cannot be reached (an unreachable *device* only makes its values Bad).
    """

    def __init__(
        self,
        scenario: Scenario,
        endpoints: Sequence[EndpointAddress],
        broker_url: str,
        *,
        now_ms: Callable[[], int],
        heartbeat: float = DEFAULT_HEARTBEAT,
        timeout: float = 1.0,
        opcua_mode: Literal["read", "subscribe"] = "read",
        client_id: str | None = None,
    ) -> None:
        if scenario.gateway is None:
            raise LabError(f"scenario {scenario.name!r} has no 'gateway:' section: nothing to poll")
        self.scenario = scenario
        self.spec: GatewaySpec = scenario.gateway
        self.name = self.spec.name
        self.endpoints = list(endpoints)
        self.broker_url = broker_url
        self.now_ms = now_ms
        self.heartbeat = heartbeat
        self.timeout = timeout
        self.opcua_mode = opcua_mode
        self.source_name = f"gateway:{self.name}"
        self.uns = "uns" in self.spec.publish
        self.sparkplug = "sparkplug" in self.spec.publish
        self.stats = GatewayStats()
        self.last_values: dict[str, dict[str, PolledValue]] = {}
        """The latest poll of each device: ``{device: {tag: PolledValue}}``."""
        self._client_id = client_id or f"simlab-{self.name}-{uuid.uuid4().hex[:8]}"
        self._sources = self._plan_sources()
        self._points = {
            (p.device, p.topic): (source, p)
            for source in self._sources
            for p in source.points.values()
        }
        self.session: EdgeNodeSession | None = None
        if self.sparkplug:
            self.session = EdgeNodeSession(
                self.spec.sparkplug_group, self.name, self._metric_defs()
            )
        self._alive: dict[str, bool] = {device: True for device in self._devices()}
        self._client: MqttClient | None = None
        self._stack = contextlib.AsyncExitStack()
        self._tasks: set[asyncio.Task[None]] = set()
        self._cycle_lock = asyncio.Lock()
        self._spark_lock = asyncio.Lock()  # session call + publish: seq order = wire order
        self._progress = asyncio.Condition()
        self._wake = asyncio.Event()

    # --- configuration ----------------------------------------------------------------------

    def _plan_sources(self) -> list[_Source]:
        devices = {d.name: d for d in self.scenario.devices}
        seen: dict[tuple[str, str], str] = {}
        sources = []
        for index, source in enumerate(self.spec.sources):
            where = f"gateway.sources[{index}]"
            device = devices.get(source.device)
            if device is None:
                raise LabError(
                    f"{where}: no device {source.device!r} in the scenario "
                    f"(devices: {', '.join(devices)})"
                )
            tags = self._source_tags(device, source, where)
            for tag in tags:
                key = (device.name, tag.name)
                if key in seen:
                    raise LabError(
                        f"{where}: {device.name}.{tag.name} is already polled by {seen[key]}; "
                        "poll each tag through one source only"
                    )
                seen[key] = where
            poller = self._poller(device, source, tags, where)
            points = {
                tag.name: _Point(
                    device.name,
                    tag,
                    self.scenario.uns_path(device.name, tag.name),
                    tag_unit(self.scenario, device.name, tag),
                )
                for tag in tags
            }
            sources.append(_Source(source, poller, points))
        return sources

    @staticmethod
    def _source_tags(
        device: PlcSpec | SmartSensorSpec, source: GatewaySource, where: str
    ) -> list[TagSpec]:
        by_name = {t.name: t for t in device.tags}
        if source.protocol == "modbus":
            mapped = [t for t in device.tags if t.modbus is not None]
        else:
            mapped = list(device.tags)  # the OPC UA server exposes every tag
        if source.tags is None:
            return mapped
        chosen = []
        for name in source.tags:
            tag = by_name.get(name)
            if tag is None:
                raise LabError(f"{where}: device {device.name!r} has no tag {name!r}")
            if tag not in mapped:
                raise LabError(
                    f"{where}: {device.name}.{name} has no Modbus address; add 'modbus:' to "
                    "the tag or poll it over OPC UA"
                )
            chosen.append(tag)
        return chosen

    def _poller(
        self,
        device: PlcSpec | SmartSensorSpec,
        source: GatewaySource,
        tags: list[TagSpec],
        where: str,
    ) -> Poller:
        address = next(
            (
                a
                for a in self.endpoints
                if a.device == device.name and a.protocol == source.protocol
            ),
            None,
        )
        if address is None:
            raise LabError(
                f"{where}: the lab serves no {source.protocol} endpoint for {device.name!r} "
                f"(give the device a '{source.protocol}:' section, and start the lab serving)"
            )
        if source.protocol == "modbus":
            unit_ids = address.unit_ids or (device.modbus.unit_ids if device.modbus else (1,))
            mapping = {t.name: t.modbus for t in tags if t.modbus is not None}
            return ModbusPoller(
                address.host,
                address.port,
                unit_ids[0],
                mapping,
                timeout=self.timeout,
                name=f"{device.name}@{address.host}:{address.port}",
            )
        namespace = device.opcua.namespace if device.opcua is not None else "urn:simlab"
        return OpcUaPoller(
            address.url,
            namespace,
            device.name,
            [t.name for t in tags],
            mode=self.opcua_mode,
            timeout=max(self.timeout, 1.0),
        )

    def _devices(self) -> list[str]:
        return list(dict.fromkeys(s.spec.device for s in self._sources))

    def _metric_defs(self) -> dict[str, list[MetricDef]]:
        defs: dict[str, list[MetricDef]] = {device: [] for device in self._devices()}
        for source in self._sources:
            for point in source.points.values():
                defs[point.device].append(MetricDef.for_tag(point.topic, point.tag.type))
        return defs

    # --- public state -------------------------------------------------------------------------

    @property
    def client(self) -> MqttClient:
        """The gateway's MQTT client (e.g. ``drop_connection()`` to simulate a network cut)."""
        if self._client is None:
            raise LabError(f"the gateway {self.name!r} is not running")
        return self._client

    @property
    def pollers(self) -> dict[tuple[str, str], Poller]:
        """The pollers by ``(device, protocol)``."""
        return {(s.spec.device, s.spec.protocol): s.poller for s in self._sources}

    def topics(self) -> dict[str, str]:
        """Every polled tag's UNS topic, by ``"device.tag"``."""
        return {
            f"{p.device}.{p.tag.name}": p.topic for s in self._sources for p in s.points.values()
        }

    async def wait_stats(
        self, predicate: Callable[[GatewayStats], bool], timeout: float = 10.0
    ) -> None:
        """Wait until ``predicate(stats)`` holds (checked after each cycle and command).

        Raises:
            TimeoutError: it did not hold within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout), self._progress:
            await self._progress.wait_for(lambda: predicate(self.stats))

    async def _notify(self) -> None:
        async with self._progress:
            self._progress.notify_all()

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> EdgeGateway:
        try:
            for source in self._sources:
                await self._stack.enter_async_context(source.poller)
            first = await self._poll_sources()
            if self.session is not None:  # the births (after CONNACK) carry these values
                for device, values in self._metric_values(first).items():
                    self.session.device_data(device, values, timestamp_ms=self.now_ms())
            self._client = self._make_client()
            await self._client.start()
            await self._cycle(first)  # the first values on the bus: those of the births
            self._spawn(self._run(), f"gateway:{self.name}:poll")
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop polling, publish the NDEATH (clean Sparkplug disconnect), close everything."""
        await self._shutdown()

    def _make_client(self) -> MqttClient:
        will: Callable[[], Will | None] | None = None
        subscriptions: dict[str, int] = {}
        session = self.session
        if session is not None:
            will = self._will_factory(session)
            subscriptions = dict(session.subscriptions())
        client = MqttClient(
            self.broker_url, client_id=self._client_id, will=will, subscriptions=subscriptions
        )
        if session is not None:
            client.add_listener(self._connection_changed)
            self._spawn(self._commands(client, session), f"gateway:{self.name}:commands")
        return client

    def _will_factory(self, session: EdgeNodeSession) -> Callable[[], Will]:
        """Called before every CONNECT (on the connecting thread): a fresh NDEATH and bdSeq."""

        def will() -> Will:
            death = session.new_connection(timestamp_ms=self.now_ms())
            return Will(death.topic, death.payload, death.qos, death.retain)

        return will

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        client, self._client = self._client, None
        if client is not None:
            session = self.session
            if session is not None and session.online and client.is_connected:
                death = session.disconnect(timestamp_ms=self.now_ms())
                with contextlib.suppress(BusError):
                    await client.publish(
                        death.topic, death.payload, death.qos, death.retain, timeout=2.0
                    )
            await client.close()
        await self._stack.aclose()

    def _spawn(self, coroutine: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- polling ------------------------------------------------------------------------------

    async def _run(self) -> None:
        """Poll every ``poll_interval`` wall-clock seconds (sooner after an applied write)."""
        interval = self.spec.poll_interval
        next_at = time.monotonic() + interval
        while True:
            delay = next_at - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
            next_at = max(next_at + interval, time.monotonic())
            try:
                await self.poll_once()
            except Exception:  # one bad cycle must not stop the gateway
                self.stats.poll_errors += 1
                log.exception("gateway %s: poll cycle failed", self.name)

    async def poll_once(self) -> dict[str, dict[str, PolledValue]]:
        """One cycle now: poll every source, publish what the rules say.

        Cycles never overlap (one asked for while another runs waits for it), so the values
        are read after this call began. Returns :attr:`last_values`.
        """
        await self._cycle()
        return {device: dict(values) for device, values in self.last_values.items()}

    async def _cycle(self, readings: Sequence[dict[str, PolledValue]] | None = None) -> None:
        """Poll (unless ``readings``, one dict per source, are given) and publish."""
        async with self._cycle_lock:
            polled = list(readings) if readings is not None else await self._poll_sources()
            await self._process(polled)
            self.stats.polls += 1
        await self._notify()

    async def _poll_sources(self) -> list[dict[str, PolledValue]]:
        return list(await asyncio.gather(*(s.poller.poll() for s in self._sources)))

    async def _process(self, readings: Sequence[dict[str, PolledValue]]) -> None:
        """Publish one poll: the UNS messages report by exception lets through, Sparkplug."""
        now = self.now_ms()
        reachable: dict[str, bool] = {}
        uns: list[_Outgoing] = []
        for source, values in zip(self._sources, readings, strict=True):
            device = source.spec.device
            reachable[device] = reachable.get(device, True) and source.poller.connected
            self.last_values.setdefault(device, {}).update(values)
            for tag, polled in values.items():
                if not polled.good:
                    self.stats.bad_values += 1
                if self.uns:
                    point = source.points[tag]
                    outgoing = self._uns_message(point, polled, self._typed(point, polled), now)
                    if outgoing is not None:
                        uns.append(outgoing)
        if self.sparkplug:
            await self._sparkplug_data(self._metric_values(readings), reachable, now)
        if uns:
            await self._publish_uns(uns)

    def _metric_values(
        self, readings: Sequence[dict[str, PolledValue]]
    ) -> dict[str, dict[str, MetricValue]]:
        """Sparkplug metric values of a poll, by device."""
        by_device: dict[str, dict[str, MetricValue]] = {}
        for source, values in zip(self._sources, readings, strict=True):
            metrics = by_device.setdefault(source.spec.device, {})
            for tag, polled in values.items():
                point = source.points[tag]
                metrics[point.topic] = _metric(self._typed(point, polled))
        return by_device

    @staticmethod
    def _typed(point: _Point, polled: PolledValue) -> UnsValue:
        """The polled value in the tag's own type; None when Bad (nothing to trust)."""
        if polled.value is None or polled.quality == "Bad":
            return None
        try:
            return as_tag_type(point.tag.type, polled.value)
        except (TypeError, ValueError):
            return None

    def _uns_message(
        self, point: _Point, polled: PolledValue, value: UnsValue, now: int
    ) -> _Outgoing | None:
        """The UNS message of a reading, or None when report by exception holds it back."""
        status = polled.status
        if value is None and status == "Good":  # a Good reading without a usable value
            status = "BadDecodingError"
        fresh = point.sent is None or not (_same(point.sent[0], value) and point.sent[1] == status)
        if not fresh and time.monotonic() - point.sent_at < self.heartbeat:
            self.stats.uns_unchanged += 1
            return None
        ts = polled.source_ms if polled.source_ms is not None else now
        try:
            message = UnsMessage(value, point.unit, ts, self.source_name, status)
            payload = message.to_json()
        except ValueError as err:  # a value the UNS contract cannot carry
            log.warning("gateway %s: %s not published: %s", self.name, point.topic, err)
            return None
        return _Outgoing(point, (value, status), payload)

    async def _publish_uns(self, outgoing: list[_Outgoing]) -> None:
        """Publish retained at QoS 1, concurrently; a tag counts as sent once acknowledged."""
        client = self._client
        if client is None or not client.is_connected:
            return  # kept as unsent: published once the broker is back
        limit = min(10.0, max(2.0, 2 * self.spec.poll_interval))  # PUBACK wait
        results = await asyncio.gather(
            *(
                client.publish(item.point.topic, item.payload, UNS_QOS, UNS_RETAIN, timeout=limit)
                for item in outgoing
            ),
            return_exceptions=True,
        )
        sent_at = time.monotonic()
        for item, result in zip(outgoing, results, strict=True):
            if isinstance(result, BaseException):
                self.stats.publish_errors += 1
                log.warning("gateway %s: UNS %s: %s", self.name, item.point.topic, result)
                continue
            item.point.sent, item.point.sent_at = item.key, sent_at
            self.stats.uns_published += 1

    # --- Sparkplug ----------------------------------------------------------------------------

    async def _sparkplug_data(
        self,
        by_device: dict[str, dict[str, MetricValue]],
        reachable: dict[str, bool],
        now: int,
    ) -> None:
        """DDATA of the changed metrics; DDEATH/DBIRTH when a device is lost/found again."""
        session = self.session
        assert session is not None
        async with self._spark_lock:
            for device, values in by_device.items():
                if not reachable[device] and self._alive[device]:
                    with contextlib.suppress(SparkplugStateError):  # offline: births tell it
                        death = session.device_death(device, timestamp_ms=now)
                        self._alive[device] = False
                        log.warning("gateway %s: %s unreachable: DDEATH", self.name, device)
                        await self._publish_sparkplug(death)
                # recorded in any case; None while offline or dead (the next birth carries it)
                message = session.device_data(device, values, timestamp_ms=now)
                if reachable[device] and not self._alive[device]:
                    with contextlib.suppress(SparkplugStateError):
                        message = session.device_birth(device, timestamp_ms=now)
                        self._alive[device] = True
                        log.info("gateway %s: %s answers again: DBIRTH", self.name, device)
                if message is not None:
                    await self._publish_sparkplug(message)

    async def _publish_sparkplug(self, message: MqttMessage) -> bool:
        client = self._client
        if client is None:
            return False
        try:
            await client.publish(message.topic, message.payload, message.qos, message.retain)
        except BusError as err:
            self.stats.publish_errors += 1
            log.warning("gateway %s: %s not published: %s", self.name, message.topic, err)
            return False
        self.stats.sparkplug_published += 1
        if "/NBIRTH/" in message.topic:
            self.stats.births += 1
        return True

    def _connection_changed(self, event: ConnectionEvent) -> None:
        """On each (re)connection: births, from a task (listeners run on the loop)."""
        if event.connected:
            self._spawn(self._birth(), f"gateway:{self.name}:birth")

    async def _birth(self) -> None:
        session, client = self.session, self._client
        assert session is not None
        async with self._spark_lock:
            if client is None or not client.is_connected or session.online:
                return  # lost again (the next CONNACK births), or already born on this one
            try:
                messages = session.on_connect(timestamp_ms=self.now_ms())
            except SparkplugError as err:
                log.debug("gateway %s: no birth: %s", self.name, err)
                return
            await self._publish_all(messages)
        await self._notify()

    async def _publish_all(self, messages: Iterable[MqttMessage]) -> None:
        for message in messages:
            if not await self._publish_sparkplug(message):
                return  # the connection dropped: the next connection births again

    async def _commands(self, client: MqttClient, session: EdgeNodeSession) -> None:
        """Handle NCMD (rebirth) and DCMD (writes) addressed to this edge node."""
        ours = {topic for topic, _ in session.subscriptions()}
        async for message in client.messages():
            if message.topic not in ours:
                continue
            self.stats.commands += 1
            try:
                await self._command(session, message.topic, message.payload)
            except Exception:  # a bad command must not stop the gateway
                log.exception("gateway %s: command on %s failed", self.name, message.topic)
            await self._notify()

    async def _command(self, session: EdgeNodeSession, topic: str, payload: bytes) -> None:
        async with self._spark_lock:
            try:
                command = session.handle_command(topic, payload, timestamp_ms=self.now_ms())
            except SparkplugError as err:
                self.stats.writes_rejected += 1
                log.warning("gateway %s: malformed command on %s: %s", self.name, topic, err)
                return
            if command.rebirth:
                self.stats.rebirths += 1
                log.info("gateway %s: rebirth requested", self.name)
                await self._publish_all(command.messages)
        for metric, reason in command.rejected:
            self.stats.writes_rejected += 1
            log.warning("gateway %s: command %s rejected: %s", self.name, metric, reason)
        device = command.device_id
        for metric, value in command.writes:
            if device is None:
                self.stats.writes_rejected += 1
                log.warning("gateway %s: NCMD write to %s rejected", self.name, metric)
                continue
            await self._write(device, metric, value)

    async def _write(self, device: str, metric: str, value: MetricValue) -> None:
        """Apply one DCMD write to the device, if the scenario declares the tag writable."""
        found = self._points.get((device, metric))
        if found is None:
            self.stats.writes_rejected += 1
            log.warning("gateway %s: DCMD for unknown metric %s of %s", self.name, metric, device)
            return
        source, point = found
        ref = f"{device}.{point.tag.name}"
        if not point.tag.writable:
            self.stats.writes_rejected += 1
            log.warning(
                "gateway %s: DCMD write to %s rejected: the tag is read-only", self.name, ref
            )
            return
        if not isinstance(value, bool | int | float | str):
            self.stats.writes_rejected += 1
            log.warning("gateway %s: DCMD write to %s rejected: %r", self.name, ref, value)
            return
        try:
            await source.poller.write(point.tag.name, as_tag_type(point.tag.type, value))
        except (TagError, LabError, ValueError) as err:
            self.stats.writes_rejected += 1
            log.warning("gateway %s: DCMD write to %s refused: %s", self.name, ref, err)
            return
        self.stats.writes_applied += 1
        log.info("gateway %s: DCMD wrote %s = %r", self.name, ref, value)
        self._wake.set()  # poll now: the new value goes out without waiting a whole interval


@dataclass(frozen=True, eq=False)
class _Outgoing:
    """A UNS message about to be published, and the (value, status) it reports."""

    point: _Point
    key: tuple[UnsValue, str]
    payload: bytes


def _metric(value: UnsValue) -> MetricValue:
    """A Sparkplug metric value: null for Bad or non-finite values."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dual_transport_tags(scenario: Scenario) -> list[str]:
    """The UNS paths the scenario's gateway publishes both as UNS JSON and as Sparkplug
    metrics: none unless its ``publish`` has both conventions.

    The platform stores each of them from one transport only (see
    :mod:`simlab.platform.ingest`); knowing them before the gateway starts keeps its births
    (which often arrive before its first UNS messages) from being stored twice. Sources the
    gateway would refuse (unknown device or tag) are left out: the gateway reports them.
    """
    spec = scenario.gateway
    if spec is None or not {"uns", "sparkplug"} <= set(spec.publish):
        return []
    devices = {d.name: d for d in scenario.devices}
    paths: list[str] = []
    for index, source in enumerate(spec.sources):
        device = devices.get(source.device)
        if device is None:
            continue
        try:
            tags = EdgeGateway._source_tags(device, source, f"gateway.sources[{index}]")
        except LabError:
            continue
        paths += [scenario.uns_path(device.name, tag.name) for tag in tags]
    return paths
