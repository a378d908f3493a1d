"""OpcUaBrowser: the terminal UI's browsing client, against real lab OPC UA servers.

Two serving labs are shared by the module: the bundled water tank (every security mode,
anonymous access, every certificate trusted) and a locked-down copy (no anonymous access,
one user, a trust list). Both run on a virtual clock on free ports: values change only
through ``lab.run_for``, so they are compared with the device's tags at the same instant.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from devices.endpoints.modbus_client import DeviceUnreachable
from devices.endpoints.opcua_browser import (
    OBJECTS,
    CertificateNotTrusted,
    ClientCertificate,
    DataChange,
    OpcUaBrowser,
    make_client_certificate,
)
from simlab.errors import SimlabError, TagError, TagNotWritable, UnknownTag, ValueOutOfRange
from simlab.lab import Lab
from simlab.scenario import load_scenario, parse_scenario

pytestmark = pytest.mark.asyncio(loop_scope="module")

LOCKED = """
format_version: 1
name: locked_tank
plant:
  units:
    - {name: tank, type: tank, area: 0.5, height: 2.0, initial_level: 0.7}
devices:
  - name: plc1
    type: plc
    opcua:
      namespace: "urn:simlab:locked"
      anonymous: false
      auto_trust: false
      users: [{name: operator, password: s3cret}]
    tags:
      - {name: level, signal: tank.level, unit: m}
"""
LEVEL, LEVEL_SP, AUTO = "ns=2;s=plc1.level", "ns=2;s=plc1.level_sp", "ns=2;s=plc1.auto"


@dataclass
class Rig:
    """The two serving labs and a client certificate."""

    open_lab: Lab
    locked_lab: Lab
    certificate: ClientCertificate

    @staticmethod
    def url(lab: Lab) -> str:
        return next(a.url for a in lab.addresses() if a.protocol == "opcua")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    state = tmp_path_factory.mktemp("state")
    certificate = await make_client_certificate(tmp_path_factory.mktemp("client-pki"))
    async with (
        Lab(
            load_scenario("water-tank"), serve=True, auto_ports=True, state_dir=state / "open"
        ) as open_lab,
        Lab(
            parse_scenario(LOCKED), serve=True, auto_ports=True, state_dir=state / "locked"
        ) as locked_lab,
    ):
        yield Rig(open_lab, locked_lab, certificate)


@pytest_asyncio.fixture(loop_scope="module")
async def browser(rig: Rig) -> AsyncIterator[OpcUaBrowser]:
    async with OpcUaBrowser(Rig.url(rig.open_lab)) as session:
        yield session


async def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """Wait (bounded) until ``condition()`` is true; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_browses_from_objects_to_the_level_tag(browser: OpcUaBrowser) -> None:
    objects = {n.display_name: n for n in await browser.browse(OBJECTS)}
    plc = objects["plc1"]
    assert (plc.node_id, plc.node_class, plc.browse_name, plc.has_children) == (
        "ns=2;s=plc1",
        "Object",
        "2:plc1",
        True,
    )
    folders = {n.display_name: n for n in await browser.browse(plc.node_id)}
    assert {"Inputs", "Parameters", "Outputs", "Status", "AcknowledgeFault"} <= set(folders)
    assert folders["AcknowledgeFault"].node_class == "Method"
    inputs = {n.display_name: n for n in await browser.browse(folders["Inputs"].node_id)}
    level = inputs["level"]
    assert (level.node_id, level.node_class, level.has_children) == (LEVEL, "Variable", True)
    assert not inputs["pump_running"].has_children  # a bool: no EURange, no unit
    properties = {n.display_name for n in await browser.browse(LEVEL)}
    assert properties == {"EURange", "EngineeringUnits"}
    assert await browser.browse("ns=2;s=plc1.level.EURange") == []


async def test_reads_a_variables_attributes(rig: Rig, browser: OpcUaBrowser) -> None:
    level = await browser.read(LEVEL)
    assert level.value == rig.open_lab.read("plc1.level")
    assert (level.node_id, level.browse_name, level.display_name) == (LEVEL, "2:level", "level")
    assert (level.node_class, level.data_type, level.status) == ("Variable", "Double", "Good")
    assert level.description == "Tank level (LT-101)"
    assert (level.readable, level.writable, level.is_variable) == (True, False, True)
    stamp = rig.open_lab.clock.datetime_at(rig.open_lab.time)
    assert level.source_timestamp is not None and level.source_timestamp <= stamp
    assert level.server_timestamp is not None
    assert (await browser.read(LEVEL_SP)).writable
    eu_range = await browser.read("ns=2;s=plc1.level.EURange")
    assert (eu_range.data_type, eu_range.value) == ("Range", "Range(Low=0.0, High=2.0)")


async def test_reads_an_objects_attributes_without_value(browser: OpcUaBrowser) -> None:
    plc = await browser.read("ns=2;s=plc1")
    assert (plc.node_class, plc.description, plc.is_variable) == (
        "Object",
        "Level and temperature control of the buffer tank",
        False,
    )
    assert plc.value is None and plc.data_type is None and not plc.writable


async def test_unknown_and_malformed_node_ids_are_named(browser: OpcUaBrowser) -> None:
    with pytest.raises(UnknownTag, match="no node ns=2;s=plc1.nope"):
        await browser.read("ns=2;s=plc1.nope")
    with pytest.raises(UnknownTag, match="no node"):
        await browser.browse("ns=2;s=plc1.nope")
    with pytest.raises(UnknownTag, match="'plc1.level' is not a NodeId; write it like"):
        await browser.read("plc1.level")


async def test_writes_text_as_the_nodes_data_type(rig: Rig, browser: OpcUaBrowser) -> None:
    assert await browser.write(LEVEL_SP, " 1.4 ") == 1.4
    assert rig.open_lab.read("plc1.level_sp") == 1.4
    assert await browser.write(AUTO, "false") is False
    assert rig.open_lab.read("plc1.auto") is False
    assert await browser.write(AUTO, "on") is True
    assert rig.open_lab.read("plc1.auto") is True


async def test_bad_values_and_refusals_are_clear_errors(rig: Rig, browser: OpcUaBrowser) -> None:
    before = rig.open_lab.read("plc1.level_sp")
    with pytest.raises(ValueOutOfRange, match="is a Double: 'abc' is not a number"):
        await browser.write(LEVEL_SP, "abc")
    with pytest.raises(ValueOutOfRange, match="is a Boolean: enter true or false"):
        await browser.write(AUTO, "maybe")
    with pytest.raises(ValueOutOfRange, match="refused ns=2;s=plc1.level_sp = 5.0: BadOutOfRange"):
        await browser.write(LEVEL_SP, "5")
    with pytest.raises(TagNotWritable, match="it is read-only \\(BadNotWritable\\)"):
        await browser.write(LEVEL, "1.0")
    with pytest.raises(TagNotWritable, match="it is not a Variable"):
        await browser.write("ns=2;s=plc1", "1")
    with pytest.raises(UnknownTag):
        await browser.write("ns=2;s=plc1.nope", "1")
    assert rig.open_lab.read("plc1.level_sp") == before


async def test_subscription_notifies_changes_until_stopped(rig: Rig, browser: OpcUaBrowser) -> None:
    lab = rig.open_lab
    changes: list[DataChange] = []
    monitor = await browser.subscribe(LEVEL, changes.append, interval_ms=50)
    await eventually(lambda: len(changes) >= 1)
    first = changes[-1]
    assert (first.node_id, first.value, first.status) == (LEVEL, lab.read("plc1.level"), "Good")
    await lab.run_for(3.0)
    await eventually(lambda: changes[-1].value == lab.read("plc1.level"))
    last = changes[-1]
    assert last.source_timestamp is not None and first.source_timestamp is not None
    assert last.source_timestamp > first.source_timestamp
    await monitor.stop()
    seen = len(changes)
    await lab.run_for(3.0)
    await asyncio.sleep(0.3)
    assert len(changes) == seen
    with pytest.raises(TagError, match="refused to subscribe to ns=2;s=plc1: BadAttributeId"):
        await browser.subscribe("ns=2;s=plc1", changes.append)


async def test_secure_modes_connect_with_a_client_certificate(rig: Rig) -> None:
    lab = rig.open_lab
    for mode in ("Sign", "SignAndEncrypt"):
        async with OpcUaBrowser(
            Rig.url(lab), security=mode, certificate=rig.certificate
        ) as session:
            assert (await session.read(LEVEL)).value == lab.read("plc1.level")
            assert session.describe() == f"{mode} (Basic256Sha256), anonymous"
        record = list(lab.audit.sessions.values())[-1]
        assert (record.security_mode, record.security_policy) == (mode, "Basic256Sha256")
    with pytest.raises(SimlabError, match="SignAndEncrypt needs a client certificate"):
        async with OpcUaBrowser(Rig.url(lab), security="SignAndEncrypt"):
            pass


async def test_the_certificate_is_made_once_and_reused(rig: Rig) -> None:
    folder = rig.certificate.certificate.parent.parent
    before = rig.certificate.certificate.read_bytes()
    again = await make_client_certificate(folder)
    assert again == rig.certificate
    assert again.certificate.read_bytes() == before


async def test_identity_the_server_does_not_offer_is_named(rig: Rig) -> None:
    with pytest.raises(DeviceUnreachable, match="does not accept user name access.*anonymous"):
        async with OpcUaBrowser(Rig.url(rig.open_lab), user="bob", password="x"):
            pass
    with pytest.raises(DeviceUnreachable, match="does not accept anonymous access.*Enter a user"):
        async with OpcUaBrowser(Rig.url(rig.locked_lab)):
            pass
    async with OpcUaBrowser(Rig.url(rig.locked_lab), user="operator", password="s3cret") as ok:
        assert (await ok.read(LEVEL)).value == rig.locked_lab.read("plc1.level")


async def test_untrusted_certificate_is_refused_until_trusted(rig: Rig, tmp_path: Path) -> None:
    lab, url = rig.locked_lab, Rig.url(rig.locked_lab)
    stranger = await make_client_certificate(tmp_path / "pki", "urn:simlab:test:stranger")

    def as_operator(certificate: ClientCertificate, password: str = "s3cret") -> OpcUaBrowser:
        return OpcUaBrowser(
            url,
            security="SignAndEncrypt",
            user="operator",
            password=password,
            certificate=certificate,
        )

    with pytest.raises(CertificateNotTrusted, match="does not trust this client's certificate"):
        async with as_operator(stranger):
            pass
    trusted = lab.state_dir / "opcua" / "plc1" / "pki" / "trusted"
    shutil.copy(stranger.certificate, trusted / "stranger.der")
    async with as_operator(stranger) as session:
        assert (await session.read(LEVEL)).value == lab.read("plc1.level")
    record = list(lab.audit.sessions.values())[-1]
    assert (record.security_mode, record.user) == ("SignAndEncrypt", "operator")
    with pytest.raises(DeviceUnreachable, match="refused user 'operator'.*wrong password"):
        async with as_operator(stranger, password="nope"):
            pass


async def test_a_mode_the_server_does_not_offer_is_named(rig: Rig, tmp_path: Path) -> None:
    scenario = parse_scenario(
        LOCKED.replace("auto_trust: false", "security: [Basic256Sha256_Sign]")
    )
    async with Lab(scenario, serve=True, auto_ports=True, state_dir=tmp_path) as lab:
        with pytest.raises(DeviceUnreachable, match="offers no None endpoint.*it offers: Sign"):
            async with OpcUaBrowser(Rig.url(lab), user="operator", password="s3cret"):
                pass


async def test_nothing_listening_and_a_lost_connection_are_unreachable(
    rig: Rig, free_port: Callable[[], int]
) -> None:
    with pytest.raises(DeviceUnreachable, match="cannot reach .*connection refused"):
        async with OpcUaBrowser(f"opc.tcp://127.0.0.1:{free_port()}/nothing", timeout=1.0):
            pass
    lab = rig.open_lab
    async with OpcUaBrowser(Rig.url(lab), timeout=1.0) as session:
        fault = lab.inject_fault({"kind": "comm_loss", "target": "plc1", "protocol": "opcua"})
        try:
            with pytest.raises(DeviceUnreachable, match="cannot read ns=2;s=plc1.level on"):
                await session.read(LEVEL)
        finally:
            lab.clear_fault(fault)
