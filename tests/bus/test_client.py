"""MqttClient against real brokers: the embedded amqtt one and the machine's Mosquitto."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
from collections.abc import Callable

import pytest

from simlab.bus.broker import EmbeddedBroker
from simlab.bus.client import (
    BusError,
    ConnectionEvent,
    Message,
    MqttClient,
    Will,
    _FilterSet,
    parse_broker_url,
)


async def collect(client: MqttClient, count: int, timeout: float = 5.0) -> list[Message]:
    """Receive ``count`` messages within ``timeout`` s, or fail saying how many came."""
    got: list[Message] = []
    try:
        async with asyncio.timeout(timeout):
            async for message in client.messages():
                got.append(message)
                if len(got) == count:
                    break
    except TimeoutError:
        pytest.fail(f"received {len(got)} of {count} messages within {timeout} s: {got[:3]}")
    return got


async def assert_silent(client: MqttClient, within: float = 0.3) -> None:
    """Fail if a message arrives within ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            async for message in client.messages():
                pytest.fail(f"unexpected message: {message}")
    except TimeoutError:
        pass


async def clear_retained(url: str, topic: str) -> None:
    """Erase a retained message (the shared Mosquitto persists them)."""
    async with MqttClient(url) as client:
        await client.publish(topic, b"", qos=1, retain=True)


# --------------------------------------------------------------------------- pub/sub


@pytest.mark.parametrize("qos", [0, 1])
async def test_publish_subscribe(broker_url: str, topic_prefix: str, qos: int) -> None:
    topic = f"{topic_prefix}/tank1/level"
    async with MqttClient(broker_url) as sub, MqttClient(broker_url) as pub:
        assert await sub.subscribe(f"{topic_prefix}/+/level", qos) == qos
        for i in range(20):
            await pub.publish(topic, f"{i}", qos=qos)
        got = await collect(sub, 20)
        await assert_silent(sub, 0.1)
    assert [m.payload for m in got] == [str(i).encode() for i in range(20)]
    assert {(m.topic, m.qos, m.retain) for m in got} == {(topic, qos, False)}
    assert pub.stats.published == 20
    assert sub.stats.received == 20


async def test_retained_message_reaches_a_late_subscriber(
    broker_url: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}/pump1/state"
    try:
        async with MqttClient(broker_url) as pub:
            await pub.publish(topic, b"running", qos=1, retain=True)
        async with MqttClient(broker_url) as late:
            await late.subscribe(f"{topic_prefix}/#", 1)
            [message] = await collect(late, 1)
    finally:
        await clear_retained(broker_url, topic)
    assert (message.topic, message.payload, message.retain) == (topic, b"running", True)


async def test_messages_outside_our_subscriptions_are_ignored(
    broker_url: str, topic_prefix: str
) -> None:
    # amqtt 0.12 pushes the retained messages matching *other* clients' subscriptions to
    # every client that connects; MqttClient must not surface them.
    retained = f"{topic_prefix}/a/value"
    try:
        async with MqttClient(broker_url) as other:
            await other.subscribe(f"{topic_prefix}/a/#", 1)
            await other.publish(retained, b"1", qos=1, retain=True)
            async with MqttClient(broker_url) as client:
                await client.subscribe(f"{topic_prefix}/b/#", 1)
                await assert_silent(client, 0.3)
                assert client.stats.received == 0
    finally:
        await clear_retained(broker_url, retained)


async def test_mosquitto_sub_receives_a_retained_message_published_by_mqttclient(
    broker_url: str, topic_prefix: str, mosquitto_sub: str
) -> None:
    topic = f"{topic_prefix}/line1/speed"
    address = parse_broker_url(broker_url)
    try:
        async with MqttClient(broker_url) as pub:
            await pub.publish(topic, "21.5", qos=1, retain=True)
        process = await asyncio.create_subprocess_exec(
            mosquitto_sub,
            *("-h", address.host, "-p", str(address.port), "-t", topic),
            *("-v", "-C", "1", "-W", "5"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=10)
    finally:
        await clear_retained(broker_url, topic)
    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == f"{topic} 21.5"


# --------------------------------------------------------------------------- Will


async def test_will_is_published_on_abrupt_disconnect_and_changes_after_reconnect(
    broker_url: str, topic_prefix: str
) -> None:
    will_topic = f"{topic_prefix}/edge1/state"
    bd_seq = itertools.count()

    def will() -> Will:  # called before every (re)connect: Sparkplug's bdSeq pattern
        return Will(will_topic, f"offline bdSeq={next(bd_seq)}".encode(), qos=1)

    async with MqttClient(broker_url) as observer:
        await observer.subscribe(will_topic, 1)
        async with MqttClient(broker_url, will=will) as device:
            await device.drop_connection()
            first = await collect(observer, 1)
            await device.disconnected(timeout=5)
            await device.connected(timeout=10)  # reconnected by itself, with a new Will
            await device.drop_connection()
            second = await collect(observer, 1)
            await device.disconnected(timeout=5)
            await device.connected(timeout=10)
        # a clean close sends DISCONNECT: no Will
        await assert_silent(observer, 0.3)
    assert [m.payload for m in first + second] == [b"offline bdSeq=0", b"offline bdSeq=1"]
    assert device.stats.connects == 3


# --------------------------------------------------------------------------- sessions


async def test_persistent_session_gets_qos1_messages_sent_while_away_exactly_once(
    broker_url: str, topic_prefix: str, client_id: Callable[[str], str]
) -> None:
    topic = f"{topic_prefix}/batch"
    subscriber = client_id("persistent")
    try:
        async with MqttClient(broker_url, client_id=subscriber, clean_session=False) as sub:
            await sub.subscribe(topic, 1)
        async with MqttClient(broker_url) as pub:
            for i in range(100):
                await pub.publish(topic, f"{i}", qos=1)
        async with MqttClient(
            broker_url, client_id=subscriber, clean_session=False, subscriptions={topic: 1}
        ) as sub:
            got = await collect(sub, 100, timeout=10)
            await assert_silent(sub, 0.5)  # ... and nothing twice
    finally:
        async with MqttClient(broker_url, client_id=subscriber, clean_session=True):
            pass  # a clean session erases the broker-side session
    payloads = [m.payload for m in got]
    assert sorted(payloads, key=int) == [str(i).encode() for i in range(100)]
    assert {m.qos for m in got} == {1}


async def test_client_reconnects_by_itself_after_a_broker_restart(
    embedded_broker: EmbeddedBroker, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}/after-restart"
    events: list[ConnectionEvent] = []
    port = embedded_broker.port
    async with MqttClient(embedded_broker.url, subscriptions={topic: 1}) as client:
        client.add_listener(events.append)
        await embedded_broker.stop()
        await client.disconnected(timeout=5)
        await embedded_broker.start()
        assert embedded_broker.port == port
        await client.connected(timeout=10)  # subscriptions restored too
        async with MqttClient(embedded_broker.url) as pub:
            await pub.publish(topic, b"back", qos=1)
        [message] = await collect(client, 1)
    assert message.payload == b"back"
    assert events[0].connected is False and events[0].reason == "connection lost"
    assert [e for e in events if e.connected][-1].reason == "connected"
    assert client.stats.connects == 2


async def test_qos1_publish_made_while_the_broker_is_down_completes_when_it_is_back(
    embedded_broker: EmbeddedBroker, topic_prefix: str
) -> None:
    async with MqttClient(embedded_broker.url) as client:
        await embedded_broker.stop()
        await client.disconnected(timeout=5)
        with pytest.raises(BusError, match="not connected"):
            await client.publish(f"{topic_prefix}/x", b"qos0", qos=0)
        with pytest.raises(BusError, match="did not acknowledge the QoS 1 publish"):
            await client.publish(f"{topic_prefix}/x", b"lost?", qos=1, timeout=0.2)
        pending = asyncio.create_task(client.publish(f"{topic_prefix}/x", b"queued", qos=1))
        await embedded_broker.start()
        await asyncio.wait_for(pending, timeout=10)  # sent and PUBACKed after the reconnect


# --------------------------------------------------------------------------- state, errors


async def test_connection_events_are_observable(broker_url: str) -> None:
    events: list[ConnectionEvent] = []
    async with MqttClient(broker_url) as client:
        assert client.is_connected
        remove = client.add_listener(events.append)
        await client.drop_connection()
        await client.disconnected(timeout=5)
        assert not client.is_connected
        await client.connected(timeout=10)
        remove()
    assert [(e.connected, e.reason) for e in events] == [
        (False, "connection lost"),
        (True, "connected"),
    ]


async def test_unreachable_broker_is_a_clear_error(free_port: Callable[[], int]) -> None:
    port = free_port()
    with pytest.raises(BusError) as caught:
        async with MqttClient(f"mqtt://user:secret@127.0.0.1:{port}"):
            pass
    message = str(caught.value)
    assert message.startswith(f"cannot reach the MQTT broker at mqtt://user:***@127.0.0.1:{port}:")
    assert "connection refused" in message
    assert "secret" not in message


async def test_a_server_that_does_not_speak_mqtt_is_a_clear_error(
    free_port: Callable[[], int],
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1000)  # swallow the CONNECT, never answer

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(BusError, match=r"did not answer CONNECT within 0\.3 s"):
            async with MqttClient(f"mqtt://127.0.0.1:{port}", connect_timeout=0.3):
                pass


async def test_closed_client_ends_iteration_and_refuses_work(
    embedded_broker: EmbeddedBroker,
) -> None:
    client = MqttClient(embedded_broker.url)
    with pytest.raises(BusError, match="not started"):
        await client.publish("a/b", b"x")
    async with client:
        iterator = client.messages()

        async def first() -> Message:
            return await anext(iterator)

        reader = asyncio.create_task(first())
        await asyncio.sleep(0)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(reader, timeout=2)
    with pytest.raises(BusError, match="is closed"):
        await client.publish("a/b", b"x")


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c.publish("a/+/b", b"x"), "wildcards"),
        (lambda c: c.publish("", b"x"), "empty"),
        (lambda c: c.publish("a/b", b"x", qos=3), "QoS 3"),
        (lambda c: c.subscribe("a/#/b"), "'#' must be a whole level"),
        (lambda c: c.subscribe("a/b+"), "'\\+' must be a whole level"),
    ],
)
async def test_invalid_topics_and_qos_are_refused(
    embedded_broker: EmbeddedBroker, call: Callable[[MqttClient], object], match: str
) -> None:
    async with MqttClient(embedded_broker.url) as client:
        with pytest.raises(BusError, match=match):
            await call(client)  # type: ignore[misc]


def test_constructor_checks() -> None:
    with pytest.raises(BusError, match="needs a fixed client_id"):
        MqttClient("mqtt://127.0.0.1:1883", clean_session=False)
    with pytest.raises(BusError, match="unknown scheme 'tcp'"):
        MqttClient("tcp://127.0.0.1:1883")
    with pytest.raises(BusError, match="TLS URL but tls=False"):
        MqttClient("mqtts://127.0.0.1", tls=False)
    client = MqttClient("mqtt://u%40x:p%3Aw@broker.local", username="other", password="pw")
    assert client.url == "mqtt://other:***@broker.local:1883"


def test_broker_url_parsing() -> None:
    address = parse_broker_url("mqtts://user%40site:pa%3Ass@[::1]:8884")
    assert (address.host, address.port, address.tls) == ("::1", 8884, True)
    assert (address.username, address.password) == ("user@site", "pa:ss")
    assert address.safe_url == "mqtts://user@site:***@[::1]:8884"
    assert parse_broker_url("mqtt://localhost").port == 1883
    assert parse_broker_url("mqtts://localhost").port == 8883
    for bad in ("mqtt://", "mqtt://h:70000", "mqtt://h:1883/topic", "mqtt://h:0", "h:1883"):
        with pytest.raises(BusError, match="invalid MQTT broker URL"):
            parse_broker_url(bad)


async def test_a_bounded_queue_drops_the_overflow_and_still_ends_on_close(
    embedded_broker: EmbeddedBroker, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}/flood"
    sub = MqttClient(embedded_broker.url, subscriptions={topic: 1}, queue_size=5)
    async with sub, MqttClient(embedded_broker.url) as pub:
        for i in range(10):
            await pub.publish(topic, f"{i}", qos=1)
        async with asyncio.timeout(5):  # bounded wait for the last five to be dropped
            while sub.stats.dropped < 5:
                await asyncio.sleep(0.01)
    assert (sub.stats.received, sub.stats.dropped) == (5, 6)  # close made room for its marker
    payloads = [m.payload async for m in sub.messages()]
    assert len(payloads) == 4  # the first five minus the one dropped for the end marker
    assert set(payloads) < {b"0", b"1", b"2", b"3", b"4"}


# --------------------------------------------------------------------------- batches


async def test_message_batches_deliver_every_message_in_order_then_end_on_close(
    broker_url: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}/burst"
    count = 300
    sub = MqttClient(broker_url, subscriptions={topic: 1})
    async with sub, MqttClient(broker_url) as pub:
        await asyncio.gather(*(pub.publish(topic, f"{i}", qos=1) for i in range(count)))
        async with asyncio.timeout(10):  # every message received, none read yet
            while sub.stats.received < count:
                await asyncio.sleep(0.01)
        batches = sub.message_batches(max_size=64)
        first = await anext(batches)
        assert len(first) == 64, "a backlog comes in full batches"
        got = list(first)
        async with asyncio.timeout(5):
            while len(got) < count:
                batch = await anext(batches)
                assert 1 <= len(batch) <= 64
                got += batch
    assert sorted(int(m.payload) for m in got) == list(range(count))  # each once
    assert [m.payload for m in got][:64] == [m.payload for m in first]
    with pytest.raises(StopAsyncIteration):  # closed: the batches end, and messages() too
        await asyncio.wait_for(anext(batches), timeout=2)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(sub.messages()), timeout=2)
    with pytest.raises(ValueError, match="max_size"):
        await anext(sub.message_batches(max_size=0))


async def test_a_waiting_batch_reader_wakes_up_for_one_message_and_at_close(
    embedded_broker: EmbeddedBroker, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}/one"
    async with MqttClient(embedded_broker.url, subscriptions={topic: 1}) as sub:
        batches = sub.message_batches()

        async def next_batch() -> list[Message]:
            return await anext(batches)

        reader = asyncio.create_task(next_batch())
        await asyncio.sleep(0.05)
        assert not reader.done()
        async with MqttClient(embedded_broker.url) as pub:
            await pub.publish(topic, b"x", qos=1)
        [message] = await asyncio.wait_for(reader, timeout=5)
        assert (message.topic, message.payload, message.qos) == (topic, b"x", 1)
        ending = asyncio.create_task(next_batch())
        await asyncio.sleep(0.05)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(ending, timeout=2)


async def test_messages_still_handed_over_at_close_come_before_the_end(
    embedded_broker: EmbeddedBroker, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}/late"
    sub = MqttClient(embedded_broker.url, subscriptions={topic: 1})
    async with sub, MqttClient(embedded_broker.url) as pub:
        for i in range(5):
            await pub.publish(topic, f"{i}", qos=1)
        async with asyncio.timeout(5):  # all read by paho, maybe not yet queued
            while len(sub._inbox) + sub.stats.received < 5:
                await asyncio.sleep(0.01)
    payloads = [m.payload async for m in sub.messages()]
    assert payloads == [b"0", b"1", b"2", b"3", b"4"]


def test_subscription_changes_forget_the_cached_topic_verdicts() -> None:
    filters = _FilterSet()
    filters.add("site/+/level")
    assert filters.matches("site/tank1/level")
    assert not filters.matches("other/tank1/level")
    assert not filters.matches("$SYS/x")
    filters.add("other/#")
    assert filters.matches("other/tank1/level")
    filters.discard("site/+/level")
    assert not filters.matches("site/tank1/level")
    filters.add("site/tank1/level")
    assert filters.matches("site/tank1/level")
