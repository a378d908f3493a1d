"""MQTT-native smart sensors: the firmware that publishes a sensor's own tags to the broker.

A device of ``type: sensor`` with an ``mqtt:`` section talks MQTT itself, with no PLC or
gateway in between. :class:`SensorPublisher` plays that firmware for every such device of
a scenario: every ``mqtt.interval`` *simulated* seconds it takes the device's tag table
and publishes it, by the device's ``mqtt.convention``:

- ``uns``: one retained QoS 1 :class:`~simlab.bus.uns.UnsMessage` per tag at
  ``scenario.uns_path(device, tag)``, source ``"<device>"``, every interval (a sensor
  reports its readings; it does not know what changed for whom);
- ``sparkplug``: the device is its own Sparkplug B edge node (group
  ``scenario.gateway.sparkplug_group``, or ``simlab`` without a gateway; edge node id =
  the device name), each tag a node metric named by its UNS path. NBIRTH after every
  connection (the NDEATH Will with a fresh bdSeq is set before each one), NDATA with the
  metrics that changed, NCMD Rebirth honoured. A sensor has no writable inputs: NCMD
  writes are rejected and logged.

Each sensor has its own MQTT connection (its own client id and Will), as real devices do.

Why the firmware reads the device in-process
--------------------------------------------
The edge gateway (:mod:`simlab.bus.gateway`) is an outside program and must use real
protocols. A smart sensor's publisher *is* the device: it reads its own tag table, so
the lab hands it a small callable, a :data:`DeviceReader`, instead of a socket.
:func:`device_reader` builds the one the lab needs from its ``Device`` objects.

How the lab drives it
---------------------
Publications follow the lab's simulated clock, which a virtual clock moves in bursts
(``run_for``), so the publisher cannot sleep on it. The lab calls :meth:`SensorPublisher.tick`
after every step: ``tick`` is synchronous and cheap (an integer comparison per sensor);
when a sensor is due it snapshots the tag values *at that simulated instant* and queues
them, and a task per sensor publishes the queue in order. :meth:`SensorPublisher.flush`
waits until everything queued has been acknowledged. Wiring, in ``Lab``::

    self.publisher = SensorPublisher(scenario, device_reader(self.devices), broker_url,
                                     now_ms=self.now_ms)   # simulated time, ms since 1970
    await self.publisher.__aenter__()                        # after the devices exist
    ...
    def step(self):
        ...                                                  # plant, sensors, device scans
        if self.publisher is not None:
            self.publisher.tick()

This module also holds the small helpers the gateway shares: :func:`tag_unit` (the UNS
unit of a tag) and :func:`as_tag_type` (a value as its tag's type).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from simlab.bus.client import BusError, ConnectionEvent, MqttClient, Will
from simlab.bus.sparkplug import (
    EdgeNodeSession,
    MessageType,
    MetricDef,
    MetricValue,
    MqttMessage,
    SparkplugError,
)
from simlab.bus.uns import UNS_QOS, UNS_RETAIN, UnsMessage, UnsValue
from simlab.errors import LabError
from simlab.scenario.devices import SmartSensorSpec, TagSpec
from simlab.scenario.model import Scenario

if TYPE_CHECKING:
    from devices.device import Device

__all__ = [
    "DeviceReader",
    "DeviceReading",
    "PublisherStats",
    "SensorPublisher",
    "as_tag_type",
    "device_reader",
    "mqtt_sensors",
    "sparkplug_group",
    "tag_unit",
]

log = logging.getLogger(__name__)

TagValue = float | bool | str


# --- helpers shared with the gateway -------------------------------------------------------


def tag_unit(scenario: Scenario, device: str, tag: TagSpec) -> str | None:
    """The UNS ``unit`` of a tag: declared, else its plant signal's; ``None`` for none/bool."""
    unit = tag.unit
    if unit is None:
        ref = tag.signal or tag.drives
        signal = scenario.plant.signal_catalogue().get(ref) if ref else None
        unit = signal.unit if signal is not None else None
    return None if unit in (None, "", "bool") else unit


def as_tag_type(tag_type: str, value: object) -> bool | int | float | str:
    """``value`` as a tag of ``tag_type`` holds it: bool, int, float or str.

    Protocols blur types (Modbus decodes every number as a float, OPC UA an int tag as
    Int32); UNS and Sparkplug publish the tag's own type. A non-finite number for an
    ``int`` tag stays a float (UNS turns it into null, quality Bad).
    """
    if tag_type == "bool":
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "on")
        return bool(value)
    if tag_type == "string":
        return str(value)
    if isinstance(value, str):
        value = float(value)
    number = float(value)  # type: ignore[arg-type]
    if tag_type == "int" and math.isfinite(number):
        return round(number)
    return number


def sparkplug_group(scenario: Scenario) -> str:
    """The Sparkplug group of the lab: the gateway's ``sparkplug_group``, else ``simlab``."""
    return scenario.gateway.sparkplug_group if scenario.gateway is not None else "simlab"


def mqtt_sensors(scenario: Scenario) -> list[SmartSensorSpec]:
    """The devices of ``scenario`` that publish over MQTT themselves (sensors with ``mqtt:``)."""
    return [d for d in scenario.devices if isinstance(d, SmartSensorSpec) and d.mqtt is not None]


# --- the reader ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceReading:
    """A snapshot of a device's tag table.

    ``values`` by tag name; ``quality`` by tag name as an OPC UA status name whose prefix
    is the severity (``Good``, ``BadSensorFailure``, ``BadCommunicationError``, ...).
    """

    values: Mapping[str, TagValue]
    quality: Mapping[str, str]


DeviceReader = Callable[[str], DeviceReading]
"""``reader(device_name)`` → the device's tags now. Called on the event loop, at tick time."""

_QUALITY_NAMES = {0: "Good", 1: "UncertainEngineeringUnitsExceeded", 2: "BadSensorFailure"}


def device_reader(devices: Mapping[str, Device]) -> DeviceReader:
    """The :data:`DeviceReader` over the lab's ``Device`` objects.

    Quality names are those the OPC UA server gives the same readings: an offline
    sensor is ``BadCommunicationError``, another Bad reading ``BadSensorFailure``, an
    Uncertain one ``UncertainEngineeringUnitsExceeded``.
    """

    def read(name: str) -> DeviceReading:
        device = devices[name]
        quality: dict[str, str] = {}
        for tag, q in device.quality.items():
            text = _QUALITY_NAMES.get(int(q), "Bad")
            if text.startswith("Bad"):
                position = device.sensors.position.get(f"{name}.{tag}")
                if position is not None and bool(device.sensors.offline[position]):
                    text = "BadCommunicationError"
            quality[tag] = text
        return DeviceReading(dict(device.tags), quality)

    return read


# --- the publisher ---------------------------------------------------------------------------


@dataclass
class PublisherStats:
    """Counters of a :class:`SensorPublisher` (all sensors together)."""

    samples: int = 0
    """Snapshots taken (one per sensor and interval)."""
    uns_published: int = 0
    """UNS messages acknowledged by the broker."""
    sparkplug_published: int = 0
    """Sparkplug messages handed to the broker (births, NDATA)."""
    births: int = 0
    """NBIRTHs published (first connection, reconnections, rebirths)."""
    rebirths: int = 0
    """Rebirth requests (NCMD) honoured."""
    rejected_commands: int = 0
    """NCMD metric writes refused (a sensor accepts none) and malformed commands."""
    errors: int = 0
    """Publications that failed (broker unreachable, not acknowledged in time)."""


@dataclass(frozen=True)
class _Batch:
    """One sample of a sensor: UNS messages, or Sparkplug metric values, at ``ts_ms``."""

    ts_ms: int
    uns: tuple[tuple[str, bytes], ...] = ()
    metrics: Mapping[str, MetricValue] | None = None


class _Sensor:
    """One MQTT-native device: its schedule, connection, Sparkplug session and queue."""

    def __init__(self, scenario: Scenario, spec: SmartSensorSpec, reading: DeviceReading) -> None:
        assert spec.mqtt is not None
        self.spec = spec
        self.name = spec.name
        self.interval_ms = max(1, round(spec.mqtt.interval * 1000))
        self.sparkplug = spec.mqtt.convention == "sparkplug"
        self.topics = {t.name: scenario.uns_path(spec.name, t.name) for t in spec.tags}
        self.units = {t.name: tag_unit(scenario, spec.name, t) for t in spec.tags}
        self.types = {t.name: t.type for t in spec.tags}
        self.next_due_ms: int | None = None
        self.queue: deque[_Batch] = deque()
        self.wake = asyncio.Event()
        self.client: MqttClient | None = None
        self.session: EdgeNodeSession | None = None
        self.lock = asyncio.Lock()  # Sparkplug: session call + publish, in seq order
        if self.sparkplug:
            metrics = [
                MetricDef.for_tag(
                    self.topics[t.name],
                    t.type,
                    _metric_value(
                        t.type, reading.values.get(t.name), reading.quality.get(t.name, "Good")
                    ),
                )
                for t in spec.tags
            ]
            group = sparkplug_group(scenario)
            self.session = EdgeNodeSession(group, spec.name, node_metrics=metrics)


def _metric_value(tag_type: str, value: object, quality: str) -> MetricValue:
    """A Sparkplug metric value: the tag's typed value, null when Bad or not finite."""
    if value is None or quality.startswith("Bad"):
        return None
    typed = as_tag_type(tag_type, value)
    if isinstance(typed, float) and not math.isfinite(typed):
        return None
    return typed


class SensorPublisher:
    """Publishes the tags of every MQTT-native sensor of a scenario; ``async with`` it.

    Args:
        scenario: the lab's scenario; its sensors with ``mqtt:`` are published.
        reader: gives a device's tags now (see :func:`device_reader`).
        broker_url: ``mqtt://host:port`` of the lab's broker.
        now_ms: the lab's simulated time, ms since the Unix epoch (the UNS ``ts_ms``, the
            Sparkplug timestamps, and the clock of the publication schedule).
        devices: publish only these sensors (default: all with ``mqtt:``).
        client_prefix: prefix of the MQTT client ids (a random suffix keeps two labs on
            one broker apart).

    Entering connects every sensor and publishes its first sample; after that the lab
    calls :meth:`tick` after each step. Raises :class:`LabError` for an unknown device and
    :class:`~simlab.bus.client.BusError` when the broker cannot be reached.
    """

    def __init__(
        self,
        scenario: Scenario,
        reader: DeviceReader,
        broker_url: str,
        now_ms: Callable[[], int],
        *,
        devices: Iterable[str] | None = None,
        client_prefix: str = "simlab",
    ) -> None:
        self.scenario = scenario
        self.reader = reader
        self.broker_url = broker_url
        self.now_ms = now_ms
        self.client_prefix = client_prefix
        available = {d.name: d for d in mqtt_sensors(scenario)}
        chosen = list(available) if devices is None else list(devices)
        for name in chosen:
            if name not in available:
                known = ", ".join(available) or "none"
                raise LabError(
                    f"{name!r} is not an MQTT-native sensor of scenario {scenario.name!r} "
                    f"(a 'type: sensor' device with 'mqtt:'; these are: {known})"
                )
        self._specs = [available[name] for name in chosen]
        self._sensors: dict[str, _Sensor] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._running = False
        self._progress = asyncio.Condition()
        self.stats = PublisherStats()

    @property
    def devices(self) -> tuple[str, ...]:
        """The sensors this publisher plays."""
        return tuple(spec.name for spec in self._specs)

    def client(self, device: str) -> MqttClient:
        """The MQTT client of ``device`` (to inspect it, or cut it: ``drop_connection``)."""
        sensor = self._sensors.get(device)
        if sensor is None or sensor.client is None:
            raise LabError(f"sensor {device!r} is not publishing")
        return sensor.client

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> SensorPublisher:
        try:
            for spec in self._specs:
                sensor = _Sensor(self.scenario, spec, self.reader(spec.name))
                self._sensors[spec.name] = sensor
                await self._connect(sensor)
                self._spawn(self._sender(sensor), f"publisher:{spec.name}:send")
        except BaseException:
            await self._shutdown()
            raise
        self._running = True
        self.tick()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Publish what is queued (a few seconds at most), then disconnect cleanly."""
        with contextlib.suppress(TimeoutError, BusError):
            await self.flush(timeout=5.0)
        await self._shutdown()

    async def _connect(self, sensor: _Sensor) -> None:
        session = sensor.session
        will: Callable[[], Will | None] | None = None
        subscriptions: dict[str, int] = {}
        if session is not None:
            will = self._will_factory(session)
            subscriptions = dict(session.subscriptions())
        client = MqttClient(
            self.broker_url,
            client_id=f"{self.client_prefix}-{sensor.name}-{uuid.uuid4().hex[:8]}",
            will=will,
            subscriptions=subscriptions,
        )
        sensor.client = client
        if session is not None:
            client.add_listener(lambda event: self._connection_changed(sensor, event))
            self._spawn(self._commands(sensor), f"publisher:{sensor.name}:commands")
        await client.start()

    def _will_factory(self, session: EdgeNodeSession) -> Callable[[], Will]:
        def will() -> Will:
            death = session.new_connection(timestamp_ms=self.now_ms())
            return Will(death.topic, death.payload, death.qos, death.retain)

        return will

    async def _shutdown(self) -> None:
        self._running = False
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for sensor in self._sensors.values():
            client = sensor.client
            if client is None:
                continue
            if sensor.session is not None and client.is_connected:
                death = sensor.session.disconnect(timestamp_ms=self.now_ms())
                with contextlib.suppress(BusError):
                    await client.publish(
                        death.topic, death.payload, death.qos, death.retain, timeout=2.0
                    )
            await client.close()

    def _spawn(self, coroutine: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- sampling -------------------------------------------------------------------------

    def tick(self) -> None:
        """Sample every sensor whose interval is due (call after every lab step).

        Synchronous: the values are those of the simulated instant ``now_ms()``; sending
        happens in each sensor's task. A sensor late by several intervals publishes once
        (as firmware would), then keeps its cadence.
        """
        if not self._running:
            return
        now = self.now_ms()
        for sensor in self._sensors.values():
            due = sensor.next_due_ms
            if due is not None and now < due:
                continue
            sensor.next_due_ms = now + sensor.interval_ms if due is None else due
            while sensor.next_due_ms <= now:
                sensor.next_due_ms += sensor.interval_ms
            self._sample(sensor, now)

    def _sample(self, sensor: _Sensor, now: int) -> None:
        reading = self.reader(sensor.name)
        self.stats.samples += 1
        if sensor.sparkplug:
            metrics = {
                sensor.topics[tag]: _metric_value(
                    tag_type, reading.values.get(tag), reading.quality.get(tag, "Good")
                )
                for tag, tag_type in sensor.types.items()
            }
            batch = _Batch(now, metrics=metrics)
        else:
            messages = []
            for tag, tag_type in sensor.types.items():
                quality = reading.quality.get(tag, "Good")
                value: UnsValue = None  # a Bad reading has no value to trust
                if not quality.startswith("Bad"):
                    value = as_tag_type(tag_type, reading.values[tag])
                message = UnsMessage(value, sensor.units[tag], now, sensor.name, quality)
                messages.append((sensor.topics[tag], message.to_json()))
            batch = _Batch(now, uns=tuple(messages))
        sensor.queue.append(batch)
        self._pending += 1
        self._idle.clear()
        sensor.wake.set()

    async def wait_stats(
        self, predicate: Callable[[PublisherStats], bool], timeout: float = 10.0
    ) -> None:
        """Wait until ``predicate(stats)`` holds (checked after each send, birth and command).

        Raises:
            TimeoutError: it did not hold within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout), self._progress:
            await self._progress.wait_for(lambda: predicate(self.stats))

    async def _notify(self) -> None:
        async with self._progress:
            self._progress.notify_all()

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until every sample taken so far has been published (or has failed).

        Raises:
            TimeoutError: still sending after ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    # --- sending ----------------------------------------------------------------------------

    async def _sender(self, sensor: _Sensor) -> None:
        while True:
            await sensor.wake.wait()
            sensor.wake.clear()
            while sensor.queue:
                batch = sensor.queue.popleft()
                try:
                    if sensor.sparkplug:
                        await self._send_sparkplug(sensor, batch)
                    else:
                        await self._send_uns(sensor, batch)
                except Exception as err:  # keep publishing the next samples
                    self.stats.errors += 1
                    log.warning("sensor %s could not publish: %s", sensor.name, err)
                finally:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.set()
                await self._notify()

    async def _send_uns(self, sensor: _Sensor, batch: _Batch) -> None:
        client = sensor.client
        assert client is not None
        results = await asyncio.gather(
            *(client.publish(topic, payload, UNS_QOS, UNS_RETAIN) for topic, payload in batch.uns),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        self.stats.uns_published += len(results) - len(failures)
        if failures:
            raise failures[0]

    async def _send_sparkplug(self, sensor: _Sensor, batch: _Batch) -> None:
        session, client = sensor.session, sensor.client
        assert session is not None and client is not None and batch.metrics is not None
        async with sensor.lock:
            message = session.node_data(batch.metrics, timestamp_ms=batch.ts_ms)
            if message is not None:
                await self._publish_sparkplug(client, message)

    async def _publish_sparkplug(self, client: MqttClient, message: MqttMessage) -> None:
        await client.publish(message.topic, message.payload, message.qos, message.retain)
        self.stats.sparkplug_published += 1

    # --- Sparkplug births and commands ------------------------------------------------------

    def _connection_changed(self, sensor: _Sensor, event: ConnectionEvent) -> None:
        if event.connected:
            self._spawn(self._birth(sensor), f"publisher:{sensor.name}:birth")

    async def _birth(self, sensor: _Sensor) -> None:
        session, client = sensor.session, sensor.client
        assert session is not None and client is not None
        async with sensor.lock:
            if not client.is_connected or session.online:
                return  # lost again (the next CONNACK births), or this connection has its births
            try:
                messages = session.on_connect(timestamp_ms=self.now_ms())
            except SparkplugError as err:
                log.debug("sensor %s: no birth: %s", sensor.name, err)
                return
            await self._send_births(sensor, client, messages)
        await self._notify()

    async def _send_births(
        self, sensor: _Sensor, client: MqttClient, messages: Iterable[MqttMessage]
    ) -> None:
        for message in messages:
            try:
                await self._publish_sparkplug(client, message)
            except BusError as err:
                self.stats.errors += 1
                log.warning("sensor %s could not publish its birth: %s", sensor.name, err)
                return
            if "/NBIRTH/" in message.topic:
                self.stats.births += 1

    async def _commands(self, sensor: _Sensor) -> None:
        """Handle the NCMDs addressed to a Sparkplug sensor: rebirth yes, writes no."""
        session, client = sensor.session, sensor.client
        assert session is not None and client is not None
        ncmd = session.topic(MessageType.NCMD)
        async for message in client.messages():
            if message.topic != ncmd:
                continue
            async with sensor.lock:  # a rebirth's seq order is the publish order
                await self._command(sensor, session, client, message.payload)
            await self._notify()

    async def _command(
        self, sensor: _Sensor, session: EdgeNodeSession, client: MqttClient, payload: bytes
    ) -> None:
        topic = session.topic(MessageType.NCMD)
        try:
            command = session.handle_command(topic, payload, timestamp_ms=self.now_ms())
        except SparkplugError as err:
            self.stats.rejected_commands += 1
            log.warning("sensor %s: malformed NCMD ignored: %s", sensor.name, err)
            return
        for metric, reason in command.rejected:
            self.stats.rejected_commands += 1
            log.warning("sensor %s: NCMD %s rejected: %s", sensor.name, metric, reason)
        for metric, _ in command.writes:
            self.stats.rejected_commands += 1
            log.warning(
                "sensor %s: NCMD write to %s rejected: a smart sensor has no writable tags",
                sensor.name,
                metric,
            )
        if command.rebirth:
            self.stats.rebirths += 1
            await self._send_births(sensor, client, command.messages)
