"""Broker selection, probing and the embedded amqtt broker."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from simlab.bus.broker import (
    DEFAULT_BROKER_URL,
    BrokerSpec,
    EmbeddedBroker,
    probe,
    resolve_broker,
)
from simlab.bus.client import BusError, MqttClient

# --------------------------------------------------------------------------- --broker


@pytest.mark.parametrize(
    ("text", "mode", "url"),
    [
        ("auto", "auto", None),
        (" Embedded ", "embedded", None),
        ("mqtt://10.0.0.5:1884", "external", "mqtt://10.0.0.5:1884"),
        ("mqtt://broker.local", "external", "mqtt://broker.local:1883"),
        ("mqtt://ann:s3cret@10.0.0.5:1883", "external", "mqtt://ann:s3cret@10.0.0.5:1883"),
        ("mqtts://broker.local", "external", "mqtts://broker.local:8883"),
    ],
)
def test_broker_spec_parses_the_accepted_forms(text: str, mode: str, url: str | None) -> None:
    spec = BrokerSpec.parse(text)
    assert spec.mode == mode
    assert (spec.address.url if spec.address else None) == url


def test_broker_spec_never_shows_the_password() -> None:
    assert str(BrokerSpec.parse("mqtt://ann:s3cret@h:1883")) == "mqtt://ann:***@h:1883"
    assert "s3cret" not in repr(BrokerSpec.parse("mqtt://ann:s3cret@h:1883"))


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("", "expected auto, embedded, mqtt://"),
        ("mosquitto", "expected auto, embedded, mqtt://"),
        ("localhost:1883", "expected auto, embedded, mqtt://"),
        ("tcp://localhost:1883", "unknown scheme 'tcp'"),
        ("ws://localhost:9001", "unknown scheme 'ws'"),
        ("mqtt://", "no host"),
        ("mqtt://host:99999", "out of range"),
        ("mqtt://host:1883/site", "unexpected path"),
    ],
)
def test_broker_spec_rejects_anything_else_clearly(text: str, detail: str) -> None:
    with pytest.raises(BusError) as caught:
        BrokerSpec.parse(text)
    message = str(caught.value)
    assert message.startswith(f"invalid --broker value {text!r}")
    assert detail in message


# --------------------------------------------------------------------------- probe


async def test_probe_finds_a_broker(broker_url: str) -> None:
    host, port = broker_url.removeprefix("mqtt://").rsplit(":", 1)
    assert await probe(host, int(port), timeout=2.0)


async def test_probe_says_no_for_a_closed_port(free_port: Callable[[], int]) -> None:
    assert not await probe("127.0.0.1", free_port(), timeout=1.0)


@pytest.mark.parametrize("answer", [b"", b"HTTP/1.1 400 Bad Request\r\n\r\n"])
async def test_probe_says_no_for_a_server_that_does_not_speak_mqtt(answer: bytes) -> None:
    # A TCP connect alone would say yes: the probe needs a CONNACK.
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        if answer:
            writer.write(answer)
            await writer.drain()
            writer.close()
        else:
            await asyncio.sleep(5)  # silence

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert not await probe("127.0.0.1", port, timeout=0.3)


# --------------------------------------------------------------------------- embedded


async def test_embedded_broker_listens_on_a_free_loopback_port() -> None:
    async with EmbeddedBroker() as broker:
        assert broker.running
        assert broker.host == "127.0.0.1"
        assert broker.port > 0
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        assert await probe("127.0.0.1", broker.port)
        other_address = _non_loopback_address()
        if other_address is not None:  # not reachable from the network
            assert not await probe(other_address, broker.port, timeout=0.5)
    assert not broker.running
    assert not await probe("127.0.0.1", broker.port, timeout=0.5)


def _non_loopback_address() -> str | None:
    """This machine's address on its default route, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent by a UDP connect
        except OSError:
            return None
        address = str(sock.getsockname()[0])
    return None if address.startswith("127.") else address


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.org"])
def test_embedded_broker_refuses_to_bind_beyond_loopback(host: str) -> None:
    with pytest.raises(BusError, match="only listens on loopback"):
        EmbeddedBroker(host=host)


async def test_embedded_broker_on_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BusError, match=f"127.0.0.1:{port}: address already in use"):
            await EmbeddedBroker(port=port).start()


async def test_embedded_broker_restarts_on_the_same_port() -> None:
    broker = EmbeddedBroker()
    async with broker:
        port = broker.port
        await broker.stop()
        assert not await probe("127.0.0.1", port, timeout=0.5)
        await broker.start()
        assert broker.port == port
        assert await probe("127.0.0.1", port)


async def test_embedded_broker_publishes_no_sys_topics(embedded_broker: EmbeddedBroker) -> None:
    # amqtt's default $SYS plugin would deliver a retained $SYS/broker/version at once.
    async with MqttClient(embedded_broker.url) as client:
        await client.subscribe("$SYS/#")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await anext(client.messages())


async def test_embedded_broker_accepts_clients_with_or_without_credentials(
    embedded_broker: EmbeddedBroker,
) -> None:
    url = embedded_broker.url.replace("mqtt://", "mqtt://apprentice:pw@")
    async with MqttClient(url) as with_login, MqttClient(embedded_broker.url) as anonymous:
        assert with_login.is_connected and anonymous.is_connected


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (made with the openssl tool)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not found: apt-get install -y openssl")
    cert, key = tmp_path / "broker.crt", tmp_path / "broker.key"
    options = "-x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
    names = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        [openssl, "req", *options.split(), *names, *files],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_embedded_broker_with_tls(certificate: tuple[Path, Path], topic_prefix: str) -> None:
    cert, key = certificate
    async with EmbeddedBroker(certfile=cert, keyfile=key) as broker:
        assert broker.url.startswith("mqtts://127.0.0.1:")
        async with MqttClient(broker.url, tls=cert) as client:
            await client.subscribe(f"{topic_prefix}/#", 1)
            await client.publish(f"{topic_prefix}/secure", b"ok", qos=1)
            async with asyncio.timeout(5):
                message = await anext(client.messages())
            assert message.payload == b"ok"
        with pytest.raises(BusError, match="TLS certificate rejected"):
            async with MqttClient(broker.url):  # the system CAs do not trust it
                pass


# --------------------------------------------------------------------------- resolution


async def test_auto_uses_the_broker_answering_at_the_default_url(mosquitto_url: str) -> None:
    async with await resolve_broker("auto") as resolved:
        assert resolved.kind == "external"
        assert resolved.url == DEFAULT_BROKER_URL == mosquitto_url
        assert resolved.description == "external broker at mqtt://127.0.0.1:1883"


async def test_auto_starts_an_embedded_broker_when_nothing_answers(
    free_port: Callable[[], int],
) -> None:
    dead = f"mqtt://127.0.0.1:{free_port()}"
    async with await resolve_broker(BrokerSpec.parse("auto"), default_url=dead) as resolved:
        assert resolved.kind == "embedded"
        assert resolved.embedded is not None
        port = resolved.embedded.port
        assert resolved.url == f"mqtt://127.0.0.1:{port}"
        assert resolved.description == f"embedded amqtt broker at mqtt://127.0.0.1:{port}"
        async with MqttClient(resolved.url) as client:
            assert client.is_connected
    assert not await probe("127.0.0.1", port, timeout=0.5)  # stopped on exit


async def test_embedded_spec_always_starts_one(mosquitto_url: str) -> None:
    async with await resolve_broker("embedded") as resolved:
        assert resolved.kind == "embedded"
        assert resolved.description.startswith("embedded amqtt broker at mqtt://127.0.0.1:")


async def test_external_spec_uses_that_broker(mosquitto_url: str) -> None:
    async with await resolve_broker(mosquitto_url) as resolved:
        assert (resolved.kind, resolved.url) == ("external", mosquitto_url)


async def test_external_spec_that_does_not_answer_is_a_clear_error(
    free_port: Callable[[], int],
) -> None:
    url = f"mqtt://ann:pw@127.0.0.1:{free_port()}"
    with pytest.raises(BusError, match=r"no MQTT broker answers at mqtt://ann:\*\*\*@127") as e:
        await resolve_broker(url, probe_timeout=0.5)
    assert "--broker embedded" in str(e.value)
