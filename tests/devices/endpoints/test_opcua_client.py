"""OpcUaPoller: the gateway's OPC UA client, against the lab's real OPC UA server.

One serving lab of the bundled bottling line is shared by the tests of this module
(an OPC UA server takes about a second to start); each test asserts relative to the state
it finds and clears the faults it injects. Values are compared with the device's tags at
the same simulated instant: the virtual clock only moves through ``lab.run_for``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import asyncua.ua
import pytest
import pytest_asyncio

from devices.endpoints.modbus_client import DeviceUnreachable, PolledValue
from devices.endpoints.opcua_client import OpcUaPoller, quality_of_status
from simlab.errors import TagNotWritable, UnknownTag, ValueOutOfRange
from simlab.lab import Lab
from simlab.scenario import load_scenario, resolve_scenario

pytestmark = pytest.mark.asyncio(loop_scope="module")
ua: Any = asyncua.ua

DEVICE = "line_plc"


class Rig:
    """The serving bottling-line lab."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.device = lab.devices[DEVICE]
        address = next(a for a in lab.addresses() if a.protocol == "opcua")
        self.url = address.url
        assert self.device.spec.opcua is not None
        self.namespace = self.device.spec.opcua.namespace
        self.tags = [t.name for t in self.device.spec.tags]

    def poller(self, mode: Literal["read", "subscribe"] = "read", **extra: Any) -> OpcUaPoller:
        return OpcUaPoller(self.url, self.namespace, DEVICE, self.tags, mode=mode, **extra)

    def now_ms(self) -> int:
        return round(self.lab.clock.datetime_at(self.lab.time).timestamp() * 1000)

    def assert_matches_device(self, values: dict[str, PolledValue]) -> None:
        assert list(values) == self.tags
        for tag, polled in values.items():
            assert polled.good, f"{tag}: {polled}"
            expected = self.device.tags[tag]
            assert polled.value == expected, tag
            assert (
                type(polled.value)
                is {"bool": bool, "int": int, "float": float}[self.device.specs[tag].type]
            ), tag
            assert polled.source_ms is not None
            assert polled.source_ms <= self.now_ms()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    scenario = load_scenario(resolve_scenario("bottling-line"))
    state_dir = tmp_path_factory.mktemp("bottling")
    async with Lab(scenario, serve=True, auto_ports=True, state_dir=state_dir) as lab:
        await lab.run_for(8.0)  # the line starts at power-up: Execute after 2 s
        yield Rig(lab)


async def eventually(condition: Callable[[], Any], timeout: float = 3.0) -> None:
    """Wait (bounded) until ``condition()`` is true; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_status_codes_map_to_three_qualities() -> None:
    assert quality_of_status(ua.StatusCode(ua.StatusCodes.Good)) == "Good"
    uncertain = ua.StatusCode(ua.StatusCodes.UncertainEngineeringUnitsExceeded)
    assert quality_of_status(uncertain) == "Uncertain"
    assert quality_of_status(ua.StatusCode(ua.StatusCodes.BadSensorFailure)) == "Bad"
    assert quality_of_status(None) == "Good"


async def test_read_mode_polls_every_tag_in_one_read_with_source_timestamps(rig: Rig) -> None:
    async with rig.poller() as poller:
        index = rig.lab.endpoints.opcua[DEVICE].namespace_index  # type: ignore[union-attr]
        assert poller.node_id("state") == f"ns={index};s={DEVICE}.state"
        await rig.lab.run_for(2.0)
        before = len(rig.lab.audit.events)
        values = await poller.poll()
        rig.assert_matches_device(values)
        assert values["state"].value == 6, "the line runs (PackML Execute)"
        start_ms = round(rig.lab.clock.datetime_at(0.0).timestamp() * 1000)
        assert values["cmd_hold"].source_ms == start_ms, "never changed since the start"
        reads = [e for e in rig.lab.audit.events[before:] if e.kind == "read"]
        assert sorted(e.target for e in reads) == sorted(rig.tags)
        assert len({e.session for e in reads}) == 1
        assert poller.stats.requests == 1, "one Read service call per poll"


async def test_subscribe_mode_returns_the_latest_notifications(rig: Rig) -> None:
    async with rig.poller("subscribe", sampling_ms=100.0) as poller:

        async def caught_up() -> bool:
            values = await poller.poll()
            return all(v.good and v.value == rig.device.tags[t] for t, v in values.items())

        await eventually(caught_up)
        await rig.lab.run_for(3.0)
        await eventually(caught_up)
        rig.assert_matches_device(await poller.poll())
        assert poller.stats.requests == 0, "no Read: the server pushes the changes"
    subscribed = [e for e in rig.lab.audit.events if e.kind == "subscribe"]
    assert sorted(e.target for e in subscribed) == sorted(rig.tags)
    assert {e.detail["sampling_interval"] for e in subscribed} == {100.0}


async def test_bad_status_gives_bad_quality_and_no_value(rig: Rig) -> None:
    async with rig.poller() as poller:
        fault = rig.lab.inject_fault({"kind": "offline", "target": f"{DEVICE}.fill_volume"})
        try:
            await rig.lab.run_for(0.3)
            values = await poller.poll()
            fill = values.pop("fill_volume")
            assert (fill.value, fill.quality, fill.status) == (None, "Bad", "BadCommunicationError")
            assert fill.source_ms is not None
            assert fill.source_ms < rig.now_ms(), "when the reading went Bad, not now"
            assert all(v.good for v in values.values())
        finally:
            rig.lab.clear_fault(fault)
        await rig.lab.run_for(0.3)
        rig.assert_matches_device(await poller.poll())


@pytest.mark.parametrize("mode", ["read", "subscribe"])
async def test_reconnects_after_a_comm_loss_fault(
    rig: Rig, mode: Literal["read", "subscribe"]
) -> None:
    async with rig.poller(mode, timeout=1.0) as poller:

        async def all_good() -> bool:
            return all(v.good for v in (await poller.poll()).values())

        await eventually(all_good)
        fault = rig.lab.inject_fault({"kind": "comm_loss", "target": DEVICE, "protocol": "opcua"})
        try:

            async def all_bad() -> bool:
                values = await poller.poll()
                return all(v.quality == "Bad" for v in values.values())

            await eventually(all_bad)
            statuses = {v.status for v in (await poller.poll()).values()}
            assert statuses <= {"BadNotConnected", "BadCommunicationError"}
            assert not poller.connected
        finally:
            rig.lab.clear_fault(fault)
        await eventually(all_good)
        assert poller.connected
        assert poller.stats.connects == 2
        assert poller.stats.connection_failures >= 1


async def test_a_wrong_namespace_or_an_absent_server_gives_bad_values(
    rig: Rig, free_port: Callable[[], int]
) -> None:
    wrong = OpcUaPoller(rig.url, "urn:not-there", DEVICE, ["state"], timeout=1.0)
    async with wrong:
        [value] = (await wrong.poll()).values()
        assert (value.quality, value.status) == ("Bad", "BadNotConnected")
        assert "no namespace 'urn:not-there'" in value.error
    absent = OpcUaPoller(f"opc.tcp://127.0.0.1:{free_port()}", "urn:x", DEVICE, ["state"])
    async with absent:
        [value] = (await absent.poll()).values()
        assert value.status == "BadNotConnected"
        with pytest.raises(DeviceUnreachable):
            await absent.write("state", 1)


async def test_writes_use_the_node_data_type_and_refusals_are_typed(rig: Rig) -> None:
    async with rig.poller() as poller:
        await poller.write("count_reset", True)
        assert rig.device.tags["count_reset"] is True
        await poller.write("count_reset", 0)  # an int for a Boolean node is converted
        assert rig.device.tags["count_reset"] is False
        with pytest.raises(TagNotWritable, match="BadNotWritable"):
            await poller.write("state", 2)
        with pytest.raises(ValueOutOfRange, match="not a valid Int32"):
            await poller.write("bottles_in", "many")  # not even sent
        with pytest.raises(UnknownTag):
            await poller.write("no_such_tag", 1)
        assert poller.stats.writes == 2
    writes = [e for e in rig.lab.audit.events if e.kind == "write" and e.target == "count_reset"]
    assert [(e.ok, e.detail["value"]) for e in writes] == [(True, True), (True, False)]
