"""An asyncio MQTT client for the simlab bus, bridged over paho-mqtt 2.

This is the only module of simlab that imports paho. Everything else talks to the bus
through :class:`MqttClient`::

    async with MqttClient("mqtt://127.0.0.1:1883", client_id="gateway-1") as client:
        await client.subscribe("site/#", qos=1)
        await client.publish("site/tank1/level", b"4.2", qos=1)
        async for message in client.messages():
            ...

Threading model: paho's own network thread (``loop_start``)
------------------------------------------------------------
paho runs its network loop in a thread it owns. We chose that over the "loop adapter"
pattern (driving ``loop_read``/``loop_write``/``loop_misc`` from asyncio's
``add_reader``/``add_writer``) because:

- automatic reconnection with exponential backoff (``reconnect_delay_set``) and the
  ``on_pre_connect`` hook, where the Will is refreshed before *every* reconnect, live in
  paho's ``loop_forever``; the adapter pattern would have to re-implement both;
- paho's connect does blocking DNS, TCP and TLS work that must not run on the event loop.

The price is a thread boundary, handled by strict rules:

- paho callbacks run on paho's thread and do nothing but hand data to the event loop with
  ``loop.call_soon_threadsafe`` (they never publish, subscribe or await). Incoming
  messages and PUBACKs are batched: the callback appends to a deque and schedules one
  drain only when none is pending, so a burst costs one wake-up of the loop, not one per
  message. When a drain finds a burst (several messages: they come faster than the loop
  is woken), the loop stops asking to be woken and looks at the deque again every
  :data:`_POLL_S` (1 ms) until a look finds less than a burst; a flood of small messages
  then costs one loop iteration per millisecond instead of one per few messages, and a
  trickle (one message per look) is still delivered at once. A consumer can take what
  arrived in one go with :meth:`MqttClient.message_batches` (the platform's ingest does).
- ``publish``/``subscribe`` are called from the event loop thread only (paho guards them
  with its own locks). Every ``publish`` checks ``info.rc``; QoS 1 and 2 publishes await
  their acknowledgement through a future keyed by message id (``on_publish``), never
  through ``wait_for_publish`` (which can hang, paho #613, #875).
- The Will factory is the one piece of user code called off the loop: it runs on the
  thread that opens the connection (see :class:`MqttClient`).

Errors the user can cause are raised as :class:`BusError`, a :class:`~simlab.errors.SimlabError`
whose message says what failed, where (the broker URL, without password) and what to try.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import SplitResult, unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from simlab.errors import SimlabError

__all__ = [
    "DEFAULT_PORTS",
    "BrokerAddress",
    "BusError",
    "ClientStats",
    "ConnectionEvent",
    "Message",
    "MqttClient",
    "Will",
    "parse_broker_url",
]

log = logging.getLogger(__name__)


class _PahoNoiseFilter(logging.Filter):
    """Drop paho's "Client is not connected" error, logged on every clean close."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Client is not connected")


_paho_log = logging.getLogger(f"{__name__}.paho")
_paho_log.addFilter(_PahoNoiseFilter())

#: Default TCP port of each URL scheme.
DEFAULT_PORTS: Mapping[str, int] = {"mqtt": 1883, "mqtts": 8883}

_MAX_PORT = 65535


class BusError(SimlabError):
    """The MQTT bus cannot do what was asked: bad broker URL, broker unreachable or refusing,
    publish or subscription not acknowledged, client closed."""


# --------------------------------------------------------------------------- addresses


@dataclass(frozen=True)
class BrokerAddress:
    """Where a broker listens and how to log in, parsed from an ``mqtt://`` or ``mqtts://`` URL."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def scheme(self) -> str:
        """``mqtts`` with TLS, else ``mqtt``."""
        return "mqtts" if self.tls else "mqtt"

    @property
    def url(self) -> str:
        """The full URL, credentials included: pass it to clients, never print it."""
        return self._format(redact=False)

    @property
    def safe_url(self) -> str:
        """The URL for messages and logs: the password is replaced by ``***``."""
        return self._format(redact=True)

    def _format(self, *, redact: bool) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        userinfo = ""
        if self.username is not None:
            userinfo = self.username
            if self.password is not None:
                userinfo += ":***" if redact else f":{self.password}"
            userinfo += "@"
        return f"{self.scheme}://{userinfo}{host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse ``mqtt://[user[:password]@]host[:port]`` or ``mqtts://...`` (percent-encoded
    credentials allowed; default ports 1883 and 8883).

    Raises:
        BusError: anything else, with a message naming the URL and the expected form.
    """
    expected = "expected mqtt://[user:password@]host:port or mqtts://[user:password@]host:port"
    try:
        parts: SplitResult = urlsplit(url.strip())
        port = parts.port
    except ValueError as err:
        raise BusError(f"invalid MQTT broker URL {url!r}: {err}; {expected}") from err
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise BusError(f"invalid MQTT broker URL {url!r}: unknown scheme {scheme!r}; {expected}")
    if not parts.hostname:
        raise BusError(f"invalid MQTT broker URL {url!r}: no host; {expected}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BusError(
            f"invalid MQTT broker URL {url!r}: unexpected path, query or fragment; {expected}"
        )
    if port == 0:
        raise BusError(f"invalid MQTT broker URL {url!r}: port 0; {expected}")
    return BrokerAddress(
        host=parts.hostname,
        port=port if port is not None else DEFAULT_PORTS[scheme],
        tls=scheme == "mqtts",
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Will:
    """A Last Will: what the broker publishes for us if we vanish without a DISCONNECT."""

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False

    def __post_init__(self) -> None:
        _check_topic(self.topic, "Will topic")
        _check_qos(self.qos)


@dataclass(frozen=True, slots=True)
class Message:
    """One message received from the broker.

    ``retain`` is true for a retained message delivered because of a new subscription (and,
    with amqtt, for messages queued while a persistent session was offline, see the
    module's limits). ``received_monotonic`` is ``time.monotonic()`` when paho read it.
    """

    topic: str
    payload: bytes
    qos: int
    retain: bool
    received_monotonic: float


@dataclass(frozen=True)
class ConnectionEvent:
    """A change of connection state, as seen by the event loop.

    ``reason`` is human readable: ``"connected"``, ``"connection lost"``,
    ``"refused by the broker: Not authorized"``, ``"closed by the client"``...
    """

    connected: bool
    reason: str
    session_present: bool = False
    monotonic: float = field(default_factory=time.monotonic)


@dataclass
class ClientStats:
    """Counters of one client, updated on the event loop thread."""

    published: int = 0
    """Messages handed to paho successfully (QoS 0) or acknowledged by the broker (QoS 1, 2)."""
    received: int = 0
    """Messages put in the :meth:`MqttClient.messages` queue."""
    dropped: int = 0
    """Messages lost because the bounded message queue was full."""
    unsolicited: int = 0
    """Messages ignored because they match none of our subscriptions (amqtt sends some)."""
    connects: int = 0
    """Successful CONNACKs, the first connection included."""
    disconnects: int = 0
    """Connections lost or closed."""


# --------------------------------------------------------------------------- helpers


def _check_topic(topic: str, what: str = "topic") -> None:
    if not topic:
        raise BusError(f"invalid MQTT {what}: it is empty")
    if "+" in topic or "#" in topic:
        raise BusError(
            f"invalid MQTT {what} {topic!r}: wildcards '+' and '#' are only allowed in "
            "subscription filters"
        )
    if "\0" in topic:
        raise BusError(f"invalid MQTT {what} {topic!r}: it contains a NUL character")


def _check_filter(topic_filter: str) -> None:
    if not topic_filter:
        raise BusError("invalid MQTT topic filter: it is empty")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise BusError(
                f"invalid MQTT topic filter {topic_filter!r}: '#' must be a whole level, the last"
            )
        if "+" in level and level != "+":
            raise BusError(f"invalid MQTT topic filter {topic_filter!r}: '+' must be a whole level")


_MATCH_CACHE_LIMIT = 10_000

_POLL_S = 0.001
"""Seconds between two looks at the received messages paho handed over, while they come in
bursts (see the module docs)."""
_POLL_BURST = 2
"""Messages found by one look that make the loop look again in :data:`_POLL_S`."""


class _FilterSet:
    """The topic filters of a client, matched against received topics (MQTT 3.1.1 rules).

    Verdicts are cached per topic (a plant publishes the same topics over and over) until
    the filters change.
    """

    def __init__(self) -> None:
        self._exact: set[str] = set()
        self._wild: dict[str, list[str]] = {}
        self._verdicts: dict[str, bool] = {}

    def add(self, topic_filter: str) -> None:
        if "+" in topic_filter or "#" in topic_filter:
            self._wild[topic_filter] = topic_filter.split("/")
        else:
            self._exact.add(topic_filter)
        self._verdicts.clear()

    def discard(self, topic_filter: str) -> None:
        self._exact.discard(topic_filter)
        self._wild.pop(topic_filter, None)
        self._verdicts.clear()

    def matches(self, topic: str) -> bool:
        verdict = self._verdicts.get(topic)
        if verdict is None:
            verdict = self._match(topic)
            if len(self._verdicts) >= _MATCH_CACHE_LIMIT:
                self._verdicts.clear()
            self._verdicts[topic] = verdict
        return verdict

    def _match(self, topic: str) -> bool:
        if topic in self._exact:
            return True
        if not self._wild:
            return False
        levels = topic.split("/")
        system = topic.startswith("$")
        for parts in self._wild.values():
            if system and parts[0] in ("+", "#"):
                continue  # [MQTT-4.7.2-1] wildcards at the first level never match $ topics
            if _levels_match(parts, levels):
                return True
        return False


def _levels_match(filter_levels: list[str], topic_levels: list[str]) -> bool:
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True  # also matches the parent level: "a/#" matches "a"
        if index >= len(topic_levels) or level not in ("+", topic_levels[index]):
            return False
    return len(filter_levels) == len(topic_levels)


def _check_qos(qos: int) -> None:
    if qos not in (0, 1, 2):
        raise BusError(f"invalid MQTT QoS {qos!r}: use 0, 1 or 2")


def _describe_os_error(err: BaseException, timeout: float) -> str:
    """Say in a few words why a socket could not be opened."""
    if isinstance(err, ConnectionRefusedError):
        return "connection refused (is the broker running? `--broker embedded` starts one)"
    if isinstance(err, socket.gaierror):
        return f"unknown host ({err.strerror})"
    if isinstance(err, TimeoutError):
        return f"no answer within {timeout:g} s (firewall, wrong host or port?)"
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"TLS certificate rejected ({err.verify_message}); pass the CA file with tls=..."
    if isinstance(err, ssl.SSLError):
        return f"TLS handshake failed ({err.reason or err}); is this a TLS port?"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror[0].lower() + err.strerror[1:]
    return str(err) or type(err).__name__


def _describe_disconnect(reason: ReasonCode) -> str:
    if reason.value == 0:
        return "closed by the client"
    name = str(reason)
    if name == "Unspecified error":
        return "connection lost"
    return name[0].lower() + name[1:]


def _tls_context(tls: bool | str | os.PathLike[str] | ssl.SSLContext) -> ssl.SSLContext:
    if isinstance(tls, ssl.SSLContext):
        return tls
    cafile = None if isinstance(tls, bool) else os.fspath(tls)
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as err:
        raise BusError(f"cannot load the TLS CA file {cafile!r}: {err}") from err


# --------------------------------------------------------------------------- the client


class MqttClient:
    """An MQTT 3.1.1 client for asyncio code; an async context manager.

    Args:
        url: ``mqtt://[user:password@]host[:port]`` or ``mqtts://...``.
        client_id: the MQTT client id; a random ``simlab-...`` id if omitted. A persistent
            session (``clean_session=False``) needs a fixed one.
        clean_session: false keeps the broker-side session (subscriptions and QoS 1/2
            messages queued while we are away) across disconnections.
        username, password: override the credentials of the URL.
        tls: ``None`` follows the URL scheme; ``True`` uses the system CAs; a path is a CA
            file (PEM); an ``ssl.SSLContext`` is used as is.
        will: called before *every* connection attempt, reconnections included, so the
            Will can change (Sparkplug's bdSeq). It returns the :class:`Will` to register,
            or ``None`` for none. It runs on the connecting thread (a worker thread for the
            first connection, paho's network thread afterwards): keep it short and
            thread-safe, e.g. read and increment a counter. If it raises, the previous Will
            is kept and the error is logged.
        keepalive: seconds between PINGREQs; the broker declares us gone (and publishes the
            Will) after 1.5 times this without traffic.
        subscriptions: ``{topic_filter: qos}`` subscribed on every connection. Declare the
            filters here when resuming a persistent session, so messages the broker
            delivers right after CONNACK are not ignored as unsolicited.
        connect_timeout: seconds allowed for the first connection (TCP, TLS and CONNACK).
        ack_timeout: default seconds to wait for a PUBACK/PUBCOMP or SUBACK.
        reconnect_min_delay, reconnect_max_delay: exponential backoff between reconnection
            attempts, in whole seconds (paho's ``reconnect_delay_set``).
        max_inflight: QoS 1/2 messages sent but not yet acknowledged; later ones wait in
            paho's queue.
        queue_size: bound of the received-message queue; 0 is unbounded. When full, new
            messages are dropped and counted in ``stats.dropped``.

    Received messages are read with :meth:`messages` (one at a time) or
    :meth:`message_batches` (everything at hand at once).

    Only messages matching one of our subscriptions reach :meth:`messages`; others are
    counted in ``stats.unsolicited`` (amqtt 0.12 pushes retained messages of *other*
    clients' subscriptions to every connecting client).
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str | None = None,
        clean_session: bool = True,
        username: str | None = None,
        password: str | None = None,
        tls: bool | str | os.PathLike[str] | ssl.SSLContext | None = None,
        will: Callable[[], Will | None] | None = None,
        keepalive: int = 30,
        subscriptions: Mapping[str, int] | Iterable[tuple[str, int]] = (),
        connect_timeout: float = 10.0,
        ack_timeout: float = 10.0,
        reconnect_min_delay: int = 1,
        reconnect_max_delay: int = 30,
        max_inflight: int = 20,
        queue_size: int = 0,
    ) -> None:
        address = parse_broker_url(url)
        if username is not None:
            address = BrokerAddress(address.host, address.port, address.tls, username, password)
        elif password is not None:
            raise BusError("an MQTT password was given without a username")
        if tls is False and address.tls:
            raise BusError(f"{address.safe_url} is a TLS URL but tls=False was given")
        use_tls = address.tls if tls is None else tls is not False
        if use_tls and not address.tls:
            address = BrokerAddress(
                address.host, address.port, True, address.username, address.password
            )
        if not clean_session and not client_id:
            raise BusError(
                "a persistent MQTT session (clean_session=False) needs a fixed client_id: "
                "the broker finds the session by it"
            )
        if keepalive < 0 or reconnect_min_delay < 1 or reconnect_max_delay < reconnect_min_delay:
            raise BusError(
                "invalid MQTT client timing: keepalive >= 0 and "
                "1 <= reconnect_min_delay <= reconnect_max_delay are required"
            )
        self._address = address
        self._client_id = client_id or f"simlab-{uuid.uuid4().hex[:12]}"
        self._clean_session = clean_session
        self._will_factory = will
        self._keepalive = keepalive
        self._connect_timeout = connect_timeout
        self._ack_timeout = ack_timeout

        items = subscriptions.items() if isinstance(subscriptions, Mapping) else subscriptions
        self._subscriptions: dict[str, int] = {}
        self._matcher = _FilterSet()
        for topic_filter, qos in items:
            _check_filter(topic_filter)
            _check_qos(qos)
            self._subscriptions[topic_filter] = qos
            self._matcher.add(topic_filter)

        self._paho = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            clean_session=clean_session,
            protocol=MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=True,
        )
        self._paho.enable_logger(_paho_log)
        self._paho.suppress_exceptions = True  # an exception must never kill paho's thread
        self._paho.connect_timeout = connect_timeout
        self._paho.reconnect_delay_set(reconnect_min_delay, reconnect_max_delay)
        self._paho.max_inflight_messages_set(max_inflight)
        if address.username is not None:
            self._paho.username_pw_set(address.username, address.password)
        if use_tls:
            self._paho.tls_set_context(_tls_context(True if tls is None else tls))
        self._paho.on_pre_connect = self._on_pre_connect
        self._paho.on_socket_open = self._on_socket_open
        self._paho.on_connect = self._on_connect
        self._paho.on_connect_fail = self._on_connect_fail
        self._paho.on_disconnect = self._on_disconnect
        self._paho.on_message = self._on_message
        self._paho.on_publish = self._on_publish
        self._paho.on_subscribe = self._on_subscribe

        self.stats = ClientStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._closed = False
        self._session_up = False  # CONNACK accepted, not disconnected since (loop thread view)
        self._ready = False  # ... and the subscriptions restored (SUBACK received)
        self._session_present = False
        self._restore_mid: int | None = None
        self._connected_event = asyncio.Event()
        self._disconnected_event = asyncio.Event()
        self._disconnected_event.set()
        self._first_connack: asyncio.Future[None] | None = None
        self._last_reason = "not connected yet"
        self._last_state: tuple[bool, str] = (False, self._last_reason)
        self._listeners: list[Callable[[ConnectionEvent], None]] = []
        # received messages, then None once closed (the end marker, always last)
        self._received: collections.deque[Message | None] = collections.deque()
        self._queue_size = max(0, queue_size)
        self._readable = asyncio.Event()  # set while _received is not empty
        # paho thread -> loop thread hand-over (deque append/popleft are atomic)
        self._inbox: collections.deque[paho.MQTTMessage] = collections.deque()
        self._inbox_scheduled = False  # a drain will run: paho need not wake the loop
        self._inbox_poll: asyncio.TimerHandle | None = None
        self._acks: collections.deque[int] = collections.deque()
        self._acks_scheduled = False
        self._acks_awaited = 0  # read by paho's thread: skip the hand-over when nobody waits
        # loop-thread state
        self._ack_waiters: dict[int, asyncio.Future[None]] = {}
        self._sub_waiters: dict[str, asyncio.Future[int]] = {}
        self._suback_mids: dict[int, list[str]] = {}
        self._confirmed: set[str] = set()

    # ------------------------------------------------------------------ properties

    @property
    def url(self) -> str:
        """The broker URL, password redacted."""
        return self._address.safe_url

    @property
    def client_id(self) -> str:
        """The MQTT client id in use."""
        return self._client_id

    @property
    def is_connected(self) -> bool:
        """True once connected with every subscription in place, until the next disconnection."""
        return self._ready

    @property
    def last_reason(self) -> str:
        """The reason of the last connection state change, for messages."""
        return self._last_reason

    @property
    def subscriptions(self) -> dict[str, int]:
        """A copy of the current ``{topic_filter: qos}`` subscriptions."""
        return dict(self._subscriptions)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect (waiting for the first CONNACK) and start paho's network thread.

        The first connection is not retried: a wrong URL or a missing broker is reported
        at once. Once connected, lost connections are retried forever with backoff.

        Raises:
            BusError: the broker is unreachable, refuses us, or does not answer in time.
        """
        if self._started:
            raise BusError(f"MQTT client {self._client_id!r} was already started")
        self._started = True
        self._loop = asyncio.get_running_loop()
        self._first_connack = self._loop.create_future()
        address = self._address
        try:
            # paho's connect() resolves, connects, does the TLS handshake and sends CONNECT:
            # blocking work, so it runs in a worker thread.
            await asyncio.to_thread(self._paho.connect, address.host, address.port, self._keepalive)
        except (OSError, ValueError) as err:
            self._closed = True
            reason = _describe_os_error(err, self._connect_timeout)
            raise BusError(f"cannot reach the MQTT broker at {address.safe_url}: {reason}") from err
        self._paho.loop_start()
        try:
            async with asyncio.timeout(self._connect_timeout):
                await self._first_connack
        except TimeoutError as err:
            await self._stop_network()
            raise BusError(
                f"the MQTT broker at {address.safe_url} did not answer CONNECT within "
                f"{self._connect_timeout:g} s (is it an MQTT 3.1.1 broker on that port?)"
            ) from err
        except BaseException:  # refused, or cancelled: do not leave paho's thread running
            await self._stop_network()
            raise

    async def close(self) -> None:
        """Disconnect cleanly (the broker does not publish the Will) and stop the thread.

        Publishes still waiting for an acknowledgement fail with :class:`BusError`; the
        :meth:`messages` iterators end. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        if self._started:
            await self._stop_network()
        self._session_up = False
        self._fail_waiters(BusError(f"the MQTT client {self._client_id!r} was closed"))
        self._set_state(False, "closed by the client")
        self._drain_inbox()  # what paho read before it stopped comes before the end marker
        if self._inbox_poll is not None:
            self._inbox_poll.cancel()
            self._inbox_poll = None
        received = self._received
        if self._queue_size and len(received) >= self._queue_size:
            received.popleft()  # make room for the end marker: the iterators must end
            self.stats.dropped += 1
        received.append(None)
        self._readable.set()

    async def _stop_network(self) -> None:
        self._closed = True
        # disconnect() also wakes paho's select() at once (and ends a backoff wait within 1 s);
        # it sends DISCONNECT only if a connection is open. Idempotent.
        self._paho.disconnect()
        await asyncio.to_thread(self._paho.loop_stop)

    async def drop_connection(self) -> None:
        """Cut the network connection abruptly, without DISCONNECT.

        The broker sees a vanished client and publishes the Will; the client then
        reconnects by itself after the backoff delay. This is the bus's "network cut"
        fault, also used by tests.
        """
        sock = self._paho.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                # socket.socket.shutdown, not SSLSocket.shutdown (which would tear down the
                # TLS object under paho's feet): the fd stays valid, paho reads EOF.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ state

    async def connected(self, timeout: float | None = None) -> None:
        """Wait until the client is connected (at once if it is).

        "Connected" means the CONNACK accepted us *and* the broker acknowledged our
        subscriptions, so a message published after this returns is not missed.

        Raises:
            BusError: not connected within ``timeout`` seconds, or the client is closed.
        """
        self._check_open()
        try:
            async with asyncio.timeout(timeout):
                await self._connected_event.wait()
        except TimeoutError as err:
            raise BusError(
                f"not connected to the MQTT broker at {self.url} after {timeout:g} s "
                f"(last: {self._last_reason})"
            ) from err

    async def disconnected(self, timeout: float | None = None) -> None:
        """Wait until the client has lost its connection (at once if it has).

        Raises:
            BusError: still connected after ``timeout`` seconds.
        """
        try:
            async with asyncio.timeout(timeout):
                await self._disconnected_event.wait()
        except TimeoutError as err:
            raise BusError(
                f"still connected to the MQTT broker at {self.url} after {timeout:g} s"
            ) from err

    def add_listener(self, callback: Callable[[ConnectionEvent], None]) -> Callable[[], None]:
        """Call ``callback`` (on the event loop) at each connection state change.

        Returns a function that removes the listener.
        """
        self._listeners.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return remove

    # ------------------------------------------------------------------ publish

    async def publish(
        self,
        topic: str,
        payload: bytes | bytearray | str = b"",
        qos: int = 0,
        retain: bool = False,
        *,
        timeout: float | None = None,
    ) -> None:
        """Publish one message.

        QoS 0 returns once paho has queued it (it fails if the client is disconnected).
        QoS 1 and 2 return once the broker has acknowledged it (PUBACK/PUBCOMP); while the
        client is disconnected the message waits in paho's queue and is sent on reconnect.

        Raises:
            BusError: invalid topic or QoS, not connected (QoS 0), paho's queue full, no
                acknowledgement within ``timeout`` (default ``ack_timeout``) seconds — the
                message may still be delivered later — or the client is closed.
        """
        self._check_open()
        _check_topic(topic)
        _check_qos(qos)
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        if qos == 0:
            info = self._paho.publish(topic, data, 0, retain)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise self._publish_error(topic, info.rc)
            self.stats.published += 1
            return
        self._acks_awaited += 1
        try:
            info = self._paho.publish(topic, data, qos, retain)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                raise self._publish_error(topic, info.rc)
            # NO_CONN with QoS > 0: paho keeps the message and sends it on reconnect.
            waiter = self._running_loop().create_future()
            self._ack_waiters[info.mid] = waiter
            limit = self._ack_timeout if timeout is None else timeout
            try:
                async with asyncio.timeout(limit):
                    await waiter
            except TimeoutError as err:
                raise BusError(
                    f"the MQTT broker at {self.url} did not acknowledge the QoS {qos} publish "
                    f"to {topic!r} within {limit:g} s (last: {self._last_reason}); it may "
                    "still be delivered when the connection comes back"
                ) from err
            finally:
                if self._ack_waiters.get(info.mid) is waiter:
                    del self._ack_waiters[info.mid]
        finally:
            self._acks_awaited -= 1
        self.stats.published += 1

    def _publish_error(self, topic: str, rc: int) -> BusError:
        if rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
            why = (
                f"not connected (last: {self._last_reason}); the client reconnects by "
                "itself, retry later or publish with QoS 1 to have it queued"
            )
        elif rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            why = "too many messages await an acknowledgement (65,535 at most); slow down"
        else:
            why = paho.error_string(rc)
        return BusError(f"cannot publish to {topic!r} on {self.url}: {why}")

    # ------------------------------------------------------------------ subscribe

    async def subscribe(
        self, topic_filter: str, qos: int = 0, *, timeout: float | None = None
    ) -> int:
        """Subscribe (on this and every later connection) and wait for the SUBACK.

        If the client is disconnected, the subscription is made as soon as it reconnects.
        Returns the QoS granted by the broker.

        Raises:
            BusError: invalid filter or QoS, the broker refuses the subscription, or no
                SUBACK within ``timeout`` (default ``ack_timeout``) seconds.
        """
        self._check_open()
        _check_filter(topic_filter)
        _check_qos(qos)
        waiter = self._sub_waiters.get(topic_filter)
        if waiter is None or waiter.done():
            waiter = self._running_loop().create_future()
            self._sub_waiters[topic_filter] = waiter
        self._subscriptions[topic_filter] = qos
        self._matcher.add(topic_filter)
        self._confirmed.discard(topic_filter)
        if self._session_up:
            self._send_subscribe([topic_filter])
        limit = self._ack_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                return await asyncio.shield(waiter)
        except TimeoutError as err:
            raise BusError(
                f"the MQTT broker at {self.url} did not acknowledge the subscription to "
                f"{topic_filter!r} within {limit:g} s (last: {self._last_reason}); it will be "
                "made when the client reconnects"
            ) from err

    async def unsubscribe(self, topic_filter: str) -> None:
        """Forget a subscription; messages matching only it are no longer delivered."""
        self._check_open()
        if self._subscriptions.pop(topic_filter, None) is None:
            return
        self._matcher.discard(topic_filter)
        self._confirmed.discard(topic_filter)
        if self._session_up:
            self._paho.unsubscribe(topic_filter)

    def _send_subscribe(self, filters: list[str]) -> int | None:
        """Send one SUBSCRIBE for ``filters`` (loop thread, connected); its mid or None."""
        rc, mid = self._paho.subscribe([(f, self._subscriptions[f]) for f in filters])
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
            self._suback_mids[mid] = filters
            return int(mid)
        return None  # the connection just dropped; the next CONNACK subscribes again

    # ------------------------------------------------------------------ receive

    async def messages(self) -> AsyncIterator[Message]:
        """Iterate over received messages until the client is closed.

        One consumer at a time: each message is delivered once, to one iterator.
        """
        received = self._received
        while True:
            if not received:
                self._readable.clear()
                await self._readable.wait()
                continue
            if received[0] is None:
                return  # the end marker stays: other iterators end too
            message = received.popleft()
            assert message is not None
            yield message

    async def message_batches(self, max_size: int = 1024) -> AsyncIterator[list[Message]]:
        """Iterate over lists of received messages until the client is closed.

        Each list holds every message at hand (at most ``max_size``, at least one), in
        order: a consumer handles a burst with one await instead of one per message. Like
        :meth:`messages`, one consumer at a time.
        """
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        received = self._received
        popleft = received.popleft
        while True:
            if not received:
                self._readable.clear()
                await self._readable.wait()
                continue
            count = len(received)
            if received[-1] is None:  # the end marker
                count -= 1
                if count == 0:
                    return
            # no None in the batch: the marker is last and never taken
            yield cast("list[Message]", [popleft() for _ in range(min(count, max_size))])

    # ------------------------------------------------------------------ paho thread side

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` on the event loop (from paho's thread)."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens anymore
            loop.call_soon_threadsafe(callback, *args)

    def _on_pre_connect(self, client: paho.Client, userdata: Any) -> None:
        if self._will_factory is None:
            return
        try:
            will = self._will_factory()
        except Exception:
            log.exception("the Will factory of MQTT client %r failed", self._client_id)
            return
        if will is None:
            client.will_clear()
        else:
            client.will_set(will.topic, will.payload, will.qos, will.retain)

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # No Nagle on our side: a small publish must not wait for the broker's delayed ACK
        # (up to 40 ms on Linux). paho leaves Nagle on.
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._post(
            self._handle_connack, reason_code.is_failure, str(reason_code), flags.session_present
        )

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        self._post(self._handle_connect_fail)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._post(self._handle_disconnect, _describe_disconnect(reason_code))

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._inbox.append(message)
        if not self._inbox_scheduled:
            self._inbox_scheduled = True
            self._post(self._drain_inbox)

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._acks_awaited == 0:  # QoS 0 writes, or nobody waits: skip the hand-over
            return
        self._acks.append(mid)
        if not self._acks_scheduled:
            self._acks_scheduled = True
            self._post(self._drain_acks)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        granted = [None if rc.is_failure else rc.value for rc in reason_codes]
        self._post(self._handle_suback, mid, granted)

    # ------------------------------------------------------------------ loop thread side

    def _drain_inbox(self) -> None:
        """Queue what paho handed over; after a burst, look again in _POLL_S (module docs)."""
        poll = self._inbox_poll
        if poll is not None:  # one chain of looks at a time
            poll.cancel()
            self._inbox_poll = None
        while True:
            taken = self._move_inbox()
            if taken >= _POLL_BURST and not self._closed and self._loop is not None:
                # _inbox_scheduled stays set: paho does not wake us, we look again
                self._inbox_poll = self._loop.call_later(_POLL_S, self._drain_inbox)
                return
            self._inbox_scheduled = False
            if not self._inbox:
                return
            self._inbox_scheduled = True  # appended before the flag went down: not posted

    def _move_inbox(self) -> int:
        """Move the messages of the inbox to the received queue; how many it held."""
        inbox = self._inbox
        taken = len(inbox)
        if not taken:
            return 0
        received = self._received
        if received and received[-1] is None:  # closed: nobody reads anymore
            inbox.clear()
            return 0
        matcher = self._matcher
        stats = self.stats
        limit = self._queue_size
        before = len(received)
        while inbox:
            raw = inbox.popleft()
            try:
                topic = raw.topic
            except UnicodeDecodeError:
                stats.unsolicited += 1
                continue
            if not matcher.matches(topic):
                stats.unsolicited += 1
                continue
            if limit and len(received) >= limit:
                stats.dropped += 1
                if stats.dropped == 1:
                    log.warning(
                        "MQTT client %r: message queue full, dropping messages", self._client_id
                    )
                continue
            payload = raw.payload if isinstance(raw.payload, bytes) else bytes(raw.payload)
            received.append(Message(topic, payload, raw.qos, bool(raw.retain), raw.timestamp))
            stats.received += 1
        if len(received) > before and not self._readable.is_set():
            self._readable.set()
        return taken

    def _drain_acks(self) -> None:
        self._acks_scheduled = False
        acks = self._acks
        waiters = self._ack_waiters
        while acks:
            waiter = waiters.pop(acks.popleft(), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def _handle_connack(self, failed: bool, reason: str, session_present: bool) -> None:
        if self._closed:
            return
        if failed:
            text = f"refused by the broker: {reason}"
            self._set_state(False, text)
            self._resolve_first(
                BusError(f"the MQTT broker at {self.url} refused the connection: {reason}")
            )
            return
        self.stats.connects += 1
        self._session_up = True
        self._session_present = session_present
        if not session_present:
            self._confirmed.clear()
        pending = [f for f in self._subscriptions if f not in self._confirmed]
        self._restore_mid = self._send_subscribe(pending) if pending else None
        if self._restore_mid is None:
            self._become_ready()
        # else: ready when that SUBACK arrives (_handle_suback)

    def _become_ready(self) -> None:
        self._restore_mid = None
        self._set_state(True, "connected", self._session_present)
        self._resolve_first(None)

    def _handle_connect_fail(self) -> None:
        if not self._closed:
            self._set_state(False, "reconnection attempt failed (broker unreachable)")

    def _handle_disconnect(self, reason: str) -> None:
        if self._closed:
            return
        if self._session_up:
            self.stats.disconnects += 1
        self._session_up = False
        self._restore_mid = None
        self._suback_mids.clear()
        self._set_state(False, reason)
        self._resolve_first(
            BusError(f"the MQTT broker at {self.url} closed the connection before CONNACK")
        )

    def _handle_suback(self, mid: int, granted: list[int | None]) -> None:
        filters = self._suback_mids.pop(mid, None)
        if filters is None:
            return
        for topic_filter, qos in zip(filters, granted, strict=False):
            waiter = self._sub_waiters.pop(topic_filter, None)
            if qos is None:
                self._subscriptions.pop(topic_filter, None)
                self._matcher.discard(topic_filter)
                error = BusError(
                    f"the MQTT broker at {self.url} refused the subscription to {topic_filter!r}"
                    " (not allowed, or an invalid filter for this broker)"
                )
                if waiter is not None and not waiter.done():
                    waiter.set_exception(error)
                else:
                    log.warning("%s", error)
                continue
            if topic_filter in self._subscriptions:
                self._confirmed.add(topic_filter)
            if waiter is not None and not waiter.done():
                waiter.set_result(qos)
        if mid == self._restore_mid and self._session_up:
            self._become_ready()

    def _set_state(self, connected: bool, reason: str, session_present: bool = False) -> None:
        self._ready = connected
        self._last_reason = reason
        if connected:
            self._disconnected_event.clear()
            self._connected_event.set()
        else:
            self._connected_event.clear()
            self._disconnected_event.set()
        if not connected and self._last_state == (connected, reason):
            return  # the same failure again (a retry): not news
        self._last_state = (connected, reason)
        event = ConnectionEvent(connected, reason, session_present)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("a connection listener of MQTT client %r failed", self._client_id)

    def _resolve_first(self, error: BusError | None) -> None:
        first = self._first_connack
        if first is None or first.done():
            return
        if error is None:
            first.set_result(None)
        else:
            first.set_exception(error)

    def _fail_waiters(self, error: BusError) -> None:
        waiters: list[asyncio.Future[Any]] = [*self._ack_waiters.values()]
        waiters += self._sub_waiters.values()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)
        self._ack_waiters.clear()
        self._sub_waiters.clear()
        if self._first_connack is not None and not self._first_connack.done():
            self._first_connack.set_exception(error)
            self._first_connack.exception()  # mark retrieved

    def _check_open(self) -> None:
        if self._closed:
            raise BusError(f"the MQTT client {self._client_id!r} is closed")
        if not self._started:
            raise BusError(
                f"the MQTT client {self._client_id!r} is not started: "
                "use `async with MqttClient(...)`"
            )

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None  # set by start(), checked by _check_open()
        return self._loop
