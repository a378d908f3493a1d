"""The lineage of one tag: where its value travels, and what each hop makes of it.

True plant signal → device tag → Modbus registers → OPC UA node → MQTT topic → platform
row. :func:`route_of` works out from the scenario and the endpoint map which hops exist
for a tag (and why one does not); :class:`LineageProbe` reads the protocol hops over real
clients, as an outside tool would (raw Modbus registers, an OPC UA Read, an MQTT
subscription to the tag's UNS topic) plus the platform's historian; :func:`hops` turns
the lab's own values and those readings into the lines the Plant screen shows.

No Textual here: the module is pure but for :class:`LineageProbe`, which holds sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Literal

from devices.endpoints.modbus_client import DeviceUnreachable, PolledValue
from devices.endpoints.modbus_raw import ModbusRawClient, ModbusRequestError
from devices.endpoints.modbus_raw import Table as RawTable
from devices.endpoints.opcua_client import OpcUaPoller
from devices.registermap import TagCodec, Value, reference
from simlab.addresses import EndpointAddress
from simlab.bus.client import BusError, Message, MqttClient
from simlab.bus.uns import UnsMessage, UnsPayloadError
from simlab.errors import SimlabError
from simlab.platform.historian import Sample, SqliteHistorian
from simlab.scenario.devices import ModbusTagSpec, PlcSpec, SmartSensorSpec, TagSpec
from simlab.scenario.model import Scenario

__all__ = [
    "Hop",
    "LabSide",
    "LineageProbe",
    "Readings",
    "TagRoute",
    "explain_registers",
    "format_epoch",
    "format_number",
    "format_value",
    "hops",
    "route_of",
]

HopState = Literal["ok", "absent", "waiting", "error"]

RAW_TABLES: dict[str, RawTable] = {
    "coil": "coils",
    "discrete_input": "discrete_inputs",
    "input_register": "input_registers",
    "holding_register": "holding_registers",
}
"""Register-map table names → the raw client's."""


# --- formatting --------------------------------------------------------------------------


def format_number(value: float, digits: int = 6) -> str:
    """``value`` with ``digits`` significant digits (whole above), never in exponent form."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == int(value) or abs(value) >= 10**digits:
        return str(round(value))
    return format(Decimal(f"{value:.{digits}g}"), "f")


def format_value(value: object, unit: str = "") -> str:
    """A value as the UI shows it, with its unit (``1.201 m``, ``true``, ``—`` for none)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = format_number(float(value)) if isinstance(value, int | float) else str(value)
    return f"{text} {unit}" if unit and unit != "bool" else text


def format_epoch(seconds: float) -> str:
    """Seconds since the Unix epoch as a UTC time of day with ms: ``00:00:12.300``."""
    stamp = datetime.fromtimestamp(seconds, UTC)
    return stamp.strftime("%H:%M:%S.%f")[:12]


# --- the route ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TagRoute:
    """Which hops one tag ``device.tag`` has in a lab, and why a missing one is missing."""

    device: str
    tag: TagSpec
    kind: Literal["PLC", "sensor"]
    signal: str | None
    """The plant signal the tag measures, or the plant input it drives (see ``drives``)."""
    drives: bool
    modbus: ModbusTagSpec | None = None
    modbus_at: EndpointAddress | None = None
    modbus_why: str = ""
    opcua_at: EndpointAddress | None = None
    opcua_namespace: str = ""
    opcua_why: str = ""
    topic: str | None = None
    publisher: str = ""
    mqtt_why: str = ""

    @property
    def ref(self) -> str:
        """``device.tag``."""
        return f"{self.device}.{self.tag.name}"

    @property
    def unit_id(self) -> int:
        """The Modbus unit id to ask."""
        return self.modbus_at.unit_ids[0] if self.modbus_at and self.modbus_at.unit_ids else 1


def route_of(scenario: Scenario, addresses: Sequence[EndpointAddress], ref: str) -> TagRoute:
    """The route of ``ref`` (``device.tag``) in a lab of ``scenario`` serving ``addresses``.

    Raises KeyError for a tag the scenario does not declare.
    """
    name, _, tag_name = ref.partition(".")
    device = next((d for d in scenario.devices if d.name == name), None)
    tag = next((t for t in device.tags if t.name == tag_name), None) if device else None
    if device is None or tag is None:
        raise KeyError(ref)
    at = {(a.device, a.protocol): a for a in addresses}
    modbus_at, opcua_at = at.get((name, "modbus")), at.get((name, "opcua"))
    if device.modbus is None:
        modbus_why = f"{name} has no Modbus server"
    elif tag.modbus is None:
        modbus_why = f"{ref} has no address in {name}'s register map"
    elif modbus_at is None:
        modbus_why = "the lab serves no Modbus endpoint"
    else:
        modbus_why = ""
    if device.opcua is None:
        opcua_why = f"{name} has no OPC UA server"
    elif opcua_at is None:
        opcua_why = "the lab serves no OPC UA endpoint"
    elif "None" not in device.opcua.security:
        opcua_why = f"{name} offers no unsecured endpoint (security mode None)"
    else:
        opcua_why = ""
    topic, publisher, mqtt_why = _publication(scenario, device, tag, set(at))
    return TagRoute(
        device=name,
        tag=tag,
        kind="PLC" if isinstance(device, PlcSpec) else "sensor",
        signal=tag.signal or tag.drives,
        drives=tag.drives is not None,
        modbus=tag.modbus if not modbus_why else None,
        modbus_at=modbus_at if not modbus_why else None,
        modbus_why=modbus_why,
        opcua_at=opcua_at if not opcua_why else None,
        opcua_namespace=device.opcua.namespace if device.opcua is not None else "",
        opcua_why=opcua_why,
        topic=topic,
        publisher=publisher,
        mqtt_why=mqtt_why,
    )


def _publication(
    scenario: Scenario,
    device: PlcSpec | SmartSensorSpec,
    tag: TagSpec,
    served: set[tuple[str, str]],
) -> tuple[str | None, str, str]:
    """(UNS topic, who publishes it, why nothing does) of a tag, as the lab wires it
    (``served``: the (device, protocol) endpoints the lab serves)."""
    path = scenario.uns_path(device.name, tag.name)
    if isinstance(device, SmartSensorSpec) and device.mqtt is not None:
        if device.mqtt.convention != "uns":
            return None, "", f"{device.name} publishes Sparkplug B only (metric {path})"
        return path, f"published by {device.name} itself every {device.mqtt.interval:g} s", ""
    gateway = scenario.gateway
    if gateway is None:
        return None, "", "the scenario has no edge gateway: nothing publishes it"
    source = next((s for s in gateway.sources if s.device == device.name), None)
    if source is None:
        return None, "", f"the gateway {gateway.name} does not poll {device.name}"
    if (device.name, source.protocol) not in served:
        return None, "", f"the lab serves no {source.protocol} endpoint for the gateway to poll"
    if source.protocol == "modbus" and tag.modbus is None:
        why = f"the gateway {gateway.name} polls {device.name} over Modbus: no address, no poll"
        return None, "", why
    if source.tags is not None and tag.name not in source.tags:
        return None, "", f"not among the tags the gateway {gateway.name} polls"
    if "uns" not in gateway.publish:
        return None, "", f"the gateway {gateway.name} publishes Sparkplug B only (metric {path})"
    how = f"gateway {gateway.name} polls {source.protocol} every {gateway.poll_interval:g} s"
    return path, how, ""


# --- registers ---------------------------------------------------------------------------


def explain_registers(spec: ModbusTagSpec, registers: Sequence[int]) -> tuple[Value, str]:
    """The value ``registers`` hold per ``spec``, and how it is decoded, in words.

    ``[0x3F99 0x999A] float32 ABCD → 1.2``; a scaled value shows the raw number too
    (``[0x0195] int16 raw 405 ÷ 10 → 40.5``). Raises
    :class:`~simlab.errors.ValueOutOfRange` for the wrong number of registers.
    """
    value = TagCodec(spec).decode(registers)
    if spec.type == "bool":
        return value, f"bit {registers[0]} → {format_value(value)}"
    words = " ".join(f"0x{word:04X}" for word in registers)
    if spec.type == "string":
        return value, f"[{words}] {spec.length} chars {spec.word_order} → {value!r}"
    layout = spec.type if spec.registers() == 1 else f"{spec.type} {spec.word_order}"
    steps = f"[{words}] {layout}"
    if spec.gain != 1 or spec.offset != 0:
        plain = spec.model_copy(update={"gain": 1.0, "offset": 0.0})
        raw = TagCodec(plain).decode(registers)
        assert isinstance(raw, float)
        steps += f" raw {format_number(raw)}"
        if spec.gain != 1:
            steps += f" ÷ {format_number(spec.gain)}"
        if spec.offset != 0:
            steps += f" + {format_number(spec.offset)}"
    return value, f"{steps} → {format_value(value)}"


# --- readings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Readings:
    """What the protocol hops of one tag answered at one probe (``None``: not yet)."""

    registers: list[int] | None = None
    modbus_error: str = ""
    opcua: PolledValue | None = None
    node_id: str = ""
    message: Message | None = None
    """The last message on the tag's UNS topic."""
    mqtt_error: str = ""
    platform: Sample | None = None
    platform_error: str = ""


class LineageProbe:
    """Reads one tag's protocol hops over real clients; ``async with`` it, then :meth:`read`.

    Modbus: the tag's registers with a raw client (FC 1-4); OPC UA: a Read of its node;
    MQTT: a subscription to its UNS topic (the retained value arrives at once; a task
    keeps the last message); platform: the historian's latest row of the topic.
    """

    def __init__(
        self,
        route: TagRoute,
        *,
        broker_url: str | None,
        historian: SqliteHistorian | None,
        timeout: float = 2.0,
    ) -> None:
        self.route = route
        self.broker_url = broker_url
        self.historian = historian
        self.timeout = timeout
        self._modbus: ModbusRawClient | None = None
        self._opcua: OpcUaPoller | None = None
        self._mqtt: MqttClient | None = None
        self._listener: asyncio.Task[None] | None = None
        self._message: Message | None = None
        self._mqtt_error = ""
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> LineageProbe:
        route = self.route
        if route.modbus_at is not None:
            address = route.modbus_at
            self._modbus = ModbusRawClient(
                address.host, address.port, unit=route.unit_id, timeout=self.timeout
            )
            self._stack.callback(self._modbus.close)
        if route.opcua_at is not None:
            poller = OpcUaPoller(
                route.opcua_at.url,
                route.opcua_namespace,
                route.device,
                [route.tag.name],
                timeout=self.timeout,
            )
            self._opcua = await self._stack.enter_async_context(poller)
        if route.topic is not None and self.broker_url is not None:
            await self._subscribe(route.topic, self.broker_url)
        return self

    async def _subscribe(self, topic: str, url: str) -> None:
        client = MqttClient(url, subscriptions={topic: 1}, connect_timeout=self.timeout * 2)
        try:
            await client.start()
        except BusError as err:
            self._mqtt_error = str(err)
            return
        self._mqtt = client
        self._stack.push_async_callback(client.close)
        self._listener = asyncio.create_task(self._listen(client), name=f"lineage:{topic}")

    async def _listen(self, client: MqttClient) -> None:
        async for message in client.messages():
            self._message = message

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._stack.aclose()

    async def read(self) -> Readings:
        """Every hop now (Modbus and OPC UA concurrently); never raises for a hop's error."""
        (registers, modbus_error), (polled, node_id) = await asyncio.gather(
            self._read_modbus(), self._read_opcua()
        )
        platform, platform_error = self._read_platform()
        return Readings(
            registers=registers,
            modbus_error=modbus_error,
            opcua=polled,
            node_id=node_id,
            message=self._message,
            mqtt_error=self._mqtt_error,
            platform=platform,
            platform_error=platform_error,
        )

    async def _read_modbus(self) -> tuple[list[int] | None, str]:
        spec, client = self.route.modbus, self._modbus
        if spec is None or client is None:
            return None, ""
        try:
            return await client.read(RAW_TABLES[spec.table], spec.address, spec.registers()), ""
        except (ModbusRequestError, DeviceUnreachable, SimlabError) as err:
            return None, str(err)

    async def _read_opcua(self) -> tuple[PolledValue | None, str]:
        poller = self._opcua
        if poller is None:
            return None, ""
        polled = (await poller.poll())[self.route.tag.name]
        node_id = poller.node_id(self.route.tag.name) if poller.connected else ""
        return polled, node_id

    def _read_platform(self) -> tuple[Sample | None, str]:
        topic, historian = self.route.topic, self.historian
        if topic is None or historian is None:
            return None, ""
        try:
            return historian.latest(topic), ""
        except SimlabError as err:
            return None, str(err)


# --- the hops ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LabSide:
    """The lab's own view of a tag (in-process), beside the protocol readings."""

    truth: float | None
    """The plant signal's value now (the true value measured, or the input driven)."""
    truth_unit: str
    value: Value
    quality: str
    unit: str
    has_bus: bool = True
    """Whether the lab runs its IT side (broker, platform)."""


@dataclass(frozen=True)
class Hop:
    """One line of a lineage: the stage, where the value is there, the value, how or why."""

    stage: str
    where: str
    value: str
    note: str = ""
    state: HopState = "ok"


def hops(route: TagRoute, lab: LabSide, readings: Readings | None) -> list[Hop]:
    """The lineage of ``route`` as lines, from plant to platform (``readings`` None: the
    protocol hops are being read)."""
    return [
        _plant_hop(route, lab),
        _device_hop(route, lab),
        _modbus_hop(route, lab, readings),
        _opcua_hop(route, lab, readings),
        _mqtt_hop(route, lab, readings),
        _platform_hop(route, lab, readings),
    ]


def _absent(stage: str, why: str) -> Hop:
    return Hop(stage, "—", "—", why, "absent")


def _plant_hop(route: TagRoute, lab: LabSide) -> Hop:
    if route.signal is None or lab.truth is None:
        return _absent("plant", "an internal tag: no plant signal behind it")
    value = format_value(lab.truth, lab.truth_unit)
    if route.drives:
        return Hop("plant", route.signal, value, "plant input this tag drives")
    return Hop("plant", route.signal, value, "true signal")


def _device_hop(route: TagRoute, lab: LabSide) -> Hop:
    tag = route.tag
    notes = []
    if tag.sensor is not None:
        sensor = tag.sensor
        parts = [f"noise ±{format_number(sensor.noise)}"] if sensor.noise else []
        if sensor.resolution:
            parts.append(f"step {format_number(sensor.resolution)}")
        if sensor.lag:
            parts.append(f"lag {format_number(sensor.lag)} s")
        if sensor.range is not None:
            low, high = sensor.range
            parts.append(f"range {format_number(low)}..{format_number(high)}")
        notes.append("sensor " + ", ".join(parts) if parts else "ideal sensor")
    if route.signal and lab.unit not in ("", "bool") and lab.unit != lab.truth_unit:
        notes.append(f"{lab.truth_unit} → {lab.unit}")
    if tag.writable:
        notes.append("writable")
    state: HopState = "ok" if lab.quality == "Good" else "error"
    note = f"{lab.quality}" + (f" · {'; '.join(notes)}" if notes else "")
    return Hop(route.kind, route.ref, format_value(lab.value, lab.unit), note, state)


def _modbus_hop(route: TagRoute, lab: LabSide, readings: Readings | None) -> Hop:
    spec = route.modbus
    if spec is None:
        return _absent("Modbus", route.modbus_why)
    count = spec.registers()
    first = reference(spec.table, spec.address)
    span = first if count == 1 else f"{first}-{reference(spec.table, spec.address + count - 1)}"
    table = spec.table.replace("_", " ")
    where = f"{span} ({table} {spec.address}, unit {route.unit_id})"
    if readings is None or (readings.registers is None and not readings.modbus_error):
        return Hop("Modbus", where, "…", "reading", "waiting")
    if readings.registers is None:
        return Hop("Modbus", where, "✗", readings.modbus_error, "error")
    try:
        value, steps = explain_registers(spec, readings.registers)
    except SimlabError as err:
        return Hop("Modbus", where, "✗", str(err), "error")
    return Hop("Modbus", where, format_value(value, lab.unit), steps)


def _opcua_hop(route: TagRoute, lab: LabSide, readings: Readings | None) -> Hop:
    if route.opcua_at is None:
        return _absent("OPC UA", route.opcua_why)
    expected = f"ns=?;s={route.ref}"
    polled = readings.opcua if readings is not None else None
    if readings is None or polled is None:
        return Hop("OPC UA", expected, "…", "reading", "waiting")
    where = readings.node_id or expected
    if polled.quality == "Bad":
        return Hop("OPC UA", where, "✗", f"{polled.status}: {polled.error}", "error")
    note = polled.status
    if polled.source_ms is not None:
        note += f" · source ts {format_epoch(polled.source_ms / 1000)}"
    return Hop("OPC UA", where, format_value(polled.value, lab.unit), note)


def _mqtt_hop(route: TagRoute, lab: LabSide, readings: Readings | None) -> Hop:
    if route.topic is None:
        return _absent("MQTT", route.mqtt_why)
    if not lab.has_bus:
        return _absent("MQTT", "the lab runs without its IT side (no broker)")
    if readings is not None and readings.mqtt_error:
        return Hop("MQTT", route.topic, "✗", readings.mqtt_error, "error")
    message = readings.message if readings is not None else None
    if message is None:
        return Hop(
            "MQTT", route.topic, "…", f"waiting for a message ({route.publisher})", "waiting"
        )
    try:
        payload = UnsMessage.from_json(message.payload)
    except UnsPayloadError as err:
        text = message.payload[:60].decode("utf-8", errors="replace")
        return Hop("MQTT", route.topic, "✗", f"not a UNS payload ({err}): {text}", "error")
    note = f"{payload.quality} · ts {format_epoch(payload.ts_ms / 1000)} · {payload.source}"
    state: HopState = "ok" if payload.severity == "Good" else "error"
    value = format_value(payload.value, payload.unit or "")
    return Hop("MQTT", route.topic, value, note, state)


def _platform_hop(route: TagRoute, lab: LabSide, readings: Readings | None) -> Hop:
    if route.topic is None:
        return _absent("platform", "nothing publishes it, so the platform never sees it")
    if not lab.has_bus:
        return _absent("platform", "the lab runs without its IT side (no platform)")
    if route.tag.type == "string":
        return _absent("platform", "text is kept by the asset registry, not the historian")
    where = "historian, latest row"
    if readings is not None and readings.platform_error:
        return Hop("platform", where, "✗", readings.platform_error, "error")
    sample = readings.platform if readings is not None else None
    if sample is None:
        return Hop("platform", where, "…", "no row stored yet", "waiting")
    value: Value | None = sample.value
    if sample.value is not None and route.tag.type == "bool":
        value = bool(sample.value)
    note = f"{sample.quality} · ts {format_epoch(sample.ts)}"
    state: HopState = "ok" if sample.quality.startswith("Good") else "error"
    return Hop("platform", where, format_value(value, lab.unit), note, state)
