"""Which MQTT broker a lab uses, and the embedded one (amqtt) when there is no other.

This is the only module of simlab that imports amqtt.

- :class:`BrokerSpec` parses the ``--broker`` option: ``auto``, ``embedded``,
  ``mqtt://[user:pass@]host:port`` or ``mqtts://...``.
- :func:`probe` asks "does an MQTT broker answer here?" with a real CONNECT/CONNACK
  exchange, not just a TCP connect.
- :class:`EmbeddedBroker` runs amqtt inside the lab's event loop, bound to loopback only.
- :func:`resolve_broker` turns a spec into a :class:`ResolvedBroker` (an async context
  manager that owns the embedded broker, if one was started)::

      async with await resolve_broker(BrokerSpec.parse(args.broker)) as broker:
          print(broker.description)
          async with MqttClient(broker.url) as client:
              ...

The embedded broker's configuration, and why
---------------------------------------------
- One TCP listener on 127.0.0.1 (amqtt's default is ``0.0.0.0:1883``, open to the whole
  network with anonymous access): an apprentice's lab must not be a broker for the LAN.
- Plugins: only :class:`OpenAuthPlugin`. amqtt's default plugins (event and packet
  loggers, the ``$SYS`` publisher) cost 15–35 % of throughput; ``$SYS`` is off.
- Anyone on loopback may connect, with or without credentials. We do not use amqtt's
  ``AnonymousAuthPlugin`` because it flags every session "anonymous", and amqtt 0.12
  neither keeps anonymous persistent sessions nor queues QoS 1 messages for them
  (Yakifo/amqtt #27, #248): ``clean_session=False`` would silently not work.

Limits of amqtt 0.12 that clients see (the MQTT client copes with the first one):

- every connecting client receives the retained messages matching *any* client's
  subscriptions, subscribed or not (:class:`~simlab.bus.client.MqttClient` ignores them);
- messages queued for an offline persistent session are delivered with the retain flag set;
- messages are delivered at the subscription's QoS, not min(publish QoS, subscription QoS);
- MQTT 3.1.1 only; sessions and retained messages live in memory and die with the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from amqtt.broker import Broker
from amqtt.errors import BrokerError
from amqtt.plugins.base import BaseAuthPlugin

from simlab.bus.client import BrokerAddress, BusError, parse_broker_url

__all__ = [
    "DEFAULT_BROKER_URL",
    "BrokerSpec",
    "EmbeddedBroker",
    "OpenAuthPlugin",
    "ResolvedBroker",
    "probe",
    "resolve_broker",
]

log = logging.getLogger(__name__)

#: Where ``--broker auto`` looks for a running broker (a local Mosquitto) first.
STOP_TIMEOUT_S = 5.0  # amqtt's shutdown can hang; see EmbeddedBroker.stop
DEFAULT_BROKER_URL = "mqtt://127.0.0.1:1883"

_SPEC_FORMS = "auto, embedded, mqtt://[user:pass@]host:port or mqtts://[user:pass@]host:port"


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class BrokerSpec:
    """What ``--broker`` asked for.

    ``mode`` is ``"auto"`` (a broker answering at the default URL, else an embedded one),
    ``"embedded"`` (always start amqtt) or ``"external"`` (the broker at ``address``).
    """

    mode: Literal["auto", "embedded", "external"]
    address: BrokerAddress | None = None

    @classmethod
    def parse(cls, text: str) -> BrokerSpec:
        """Parse a ``--broker`` value.

        Raises:
            BusError: anything but the accepted forms, with a message listing them.
        """
        value = text.strip()
        if value.lower() in ("auto", "embedded"):
            return cls(mode="auto" if value.lower() == "auto" else "embedded")
        if "://" not in value:
            raise BusError(f"invalid --broker value {text!r}: expected {_SPEC_FORMS}")
        try:
            address = parse_broker_url(value)
        except BusError as err:
            raise BusError(f"invalid --broker value {text!r}: {err}") from err
        return cls(mode="external", address=address)

    def __str__(self) -> str:
        return self.address.safe_url if self.address is not None else self.mode


# --------------------------------------------------------------------------- probe


def _connect_packet(client_id: str, keepalive: int = 10) -> bytes:
    """An MQTT 3.1.1 CONNECT with a clean session and no credentials."""
    cid = client_id.encode()
    variable = b"\x00\x04MQTT\x04\x02" + keepalive.to_bytes(2, "big")
    payload = len(cid).to_bytes(2, "big") + cid
    remaining = len(variable) + len(payload)
    assert remaining < 128  # one-byte remaining length: client ids stay short
    return bytes([0x10, remaining]) + variable + payload


async def probe(
    host: str, port: int, timeout: float = 1.0, *, ssl_context: ssl.SSLContext | None = None
) -> bool:
    """True if an MQTT broker answers at ``host:port`` within ``timeout`` seconds.

    Sends an MQTT 3.1.1 CONNECT over a raw asyncio socket and waits for a CONNACK, then
    sends DISCONNECT. Any CONNACK counts, even one refusing us (e.g. "not authorized"): a
    broker is there. A closed port, a non-MQTT server or silence gives False.
    """
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, ssl=ssl_context)
            writer.write(_connect_packet(f"simlab-probe-{uuid.uuid4().hex[:8]}"))
            await writer.drain()
            connack = await reader.readexactly(4)
            if connack[0] != 0x20 or connack[1] != 0x02:
                return False
            writer.write(b"\xe0\x00")  # DISCONNECT: a clean goodbye, no Will
            await writer.drain()
            return True
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
                async with asyncio.timeout(timeout):
                    await writer.wait_closed()


# --------------------------------------------------------------------------- embedded


class OpenAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """amqtt authentication plugin: everyone may connect, sessions are not "anonymous".

    The embedded broker only listens on loopback, so whoever can reach it already runs on
    this machine. Unlike amqtt's ``AnonymousAuthPlugin`` this does not flag sessions as
    anonymous, so persistent sessions (``clean_session=False``) keep their subscriptions
    and queued QoS 1/2 messages.
    """

    async def authenticate(self, *, session: Any) -> bool:
        """Accept every client."""
        return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.version == 4 and address.is_loopback


def _listening_port(broker: Broker) -> int:
    """The port amqtt's TCP listener really bound (port 0 means "any free port")."""
    try:
        server = broker._servers["default"].instance  # amqtt keeps it private
        return int(server.sockets[0].getsockname()[1])
    except (AttributeError, KeyError, IndexError) as err:  # pragma: no cover - amqtt changed
        raise BusError(
            "cannot read the port of the embedded MQTT broker (amqtt internals changed?)"
        ) from err


class EmbeddedBroker:
    """An amqtt broker inside this event loop, on loopback only; an async context manager.

    Args:
        host: a loopback address (``127.0.0.1`` or another ``127.x.y.z``, or ``localhost``).
        port: the TCP port; 0 picks a free one, kept across :meth:`stop`/:meth:`start`.
        session_expiry: seconds a disconnected persistent session (and its queued
            messages) is kept; ``None`` keeps it until the broker stops.
        certfile, keyfile: a PEM certificate and key to listen with TLS (``mqtts://``).

    :meth:`stop` then :meth:`start` restarts it on the same port (a "broker restart"
    fault); sessions and retained messages do not survive a restart.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        session_expiry: int | None = None,
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
    ) -> None:
        if not _is_loopback(host):
            raise BusError(
                f"the embedded MQTT broker only listens on loopback (127.0.0.1), not {host!r}: "
                "for a broker that other machines reach, run Mosquitto and pass "
                "--broker mqtt://host:port"
            )
        if not 0 <= port <= 65535:
            raise BusError(f"invalid port {port} for the embedded MQTT broker: use 0..65535")
        if (certfile is None) != (keyfile is None):
            raise BusError("the embedded MQTT broker needs both certfile and keyfile for TLS")
        self._host = "127.0.0.1" if host == "localhost" else host
        self._port = port
        self._session_expiry = session_expiry
        self._certfile = Path(certfile) if certfile is not None else None
        self._keyfile = Path(keyfile) if keyfile is not None else None
        self._broker: Broker | None = None

    @property
    def host(self) -> str:
        """The loopback address it binds."""
        return self._host

    @property
    def port(self) -> int:
        """The TCP port (the real one once started; 0 before the first start with port 0)."""
        return self._port

    @property
    def tls(self) -> bool:
        """True when it listens with TLS."""
        return self._certfile is not None

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>`` (``mqtts://`` with TLS)."""
        if self._port == 0:
            raise BusError("the embedded MQTT broker has no port yet: start it first")
        return f"{'mqtts' if self.tls else 'mqtt'}://{self._host}:{self._port}"

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._broker is not None

    def _config(self) -> dict[str, Any]:
        listener: dict[str, Any] = {"type": "tcp", "bind": f"{self._host}:{self._port}"}
        if self._certfile is not None and self._keyfile is not None:
            listener |= {
                "ssl": True,
                "certfile": str(self._certfile),
                "keyfile": str(self._keyfile),
            }
        return {
            "listeners": {"default": listener},
            "plugins": {f"{OpenAuthPlugin.__module__}.{OpenAuthPlugin.__qualname__}": {}},
            "session_expiry_interval": self._session_expiry,
        }

    async def start(self) -> None:
        """Start listening (on the same port as before after a :meth:`stop`).

        Raises:
            BusError: the port is taken or the TLS files cannot be read.
        """
        if self._broker is not None:
            return
        try:
            broker = Broker(self._config())
            await broker.start()
        except (BrokerError, OSError, ValueError) as err:
            raise BusError(
                f"cannot start the embedded MQTT broker on {self._host}:{self._port}: "
                f"{_describe_start_error(err)}"
            ) from err
        self._port = _listening_port(broker)
        self._broker = broker
        log.info("embedded amqtt broker listening at %s", self.url)

    async def stop(self) -> None:
        """Stop listening and drop every client (they see a lost connection). Idempotent."""
        broker, self._broker = self._broker, None
        if broker is None:
            return
        shutdown = asyncio.ensure_future(broker.shutdown())
        done, _ = await asyncio.wait({shutdown}, timeout=STOP_TIMEOUT_S)
        if not done:
            # amqtt 0.12 can wait forever for a client's reader that swallowed its
            # cancellation (wait_for on Python 3.11): close the listeners ourselves so the
            # port is free, and leave that stuck task to the event loop's end.
            log.warning(
                "embedded broker at %s did not stop in %.0f s: closing its listeners",
                self.url,
                STOP_TIMEOUT_S,
            )
            for server in list(broker._servers.values()):
                if server.instance is not None:
                    server.instance.close()
            return
        shutdown.result()
        log.info("embedded amqtt broker at %s stopped", self.url)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _describe_start_error(err: BaseException) -> str:
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
            return "address already in use (another broker? try --broker auto or another port)"
        if isinstance(cause, FileNotFoundError):
            return f"file not found: {cause.filename or cause}"
        cause = cause.__cause__ or cause.__context__
    return str(err)


# --------------------------------------------------------------------------- resolution


class ResolvedBroker:
    """The broker a lab uses; an async context manager that stops the embedded one on exit.

    ``url`` is what clients connect to (credentials included, do not print it);
    ``description`` says which broker it is, for humans, e.g.
    ``"embedded amqtt broker at mqtt://127.0.0.1:41234"`` or
    ``"external broker at mqtt://127.0.0.1:1883"``.
    """

    def __init__(self, url: str, description: str, embedded: EmbeddedBroker | None = None):
        self.url = url
        self.description = description
        self.embedded = embedded

    @property
    def kind(self) -> Literal["embedded", "external"]:
        """``"embedded"`` if we run the broker, else ``"external"``."""
        return "embedded" if self.embedded is not None else "external"

    async def aclose(self) -> None:
        """Stop the embedded broker, if we started one. Idempotent."""
        if self.embedded is not None:
            await self.embedded.stop()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"ResolvedBroker({self.description!r})"


async def _start_embedded(port: int) -> ResolvedBroker:
    embedded = EmbeddedBroker(port=port)
    await embedded.start()
    return ResolvedBroker(embedded.url, f"embedded amqtt broker at {embedded.url}", embedded)


async def resolve_broker(
    spec: BrokerSpec | str,
    default_url: str = DEFAULT_BROKER_URL,
    *,
    probe_timeout: float = 1.0,
    embedded_port: int = 0,
) -> ResolvedBroker:
    """Decide which broker to use and start the embedded one if needed.

    - ``auto``: the broker answering at ``default_url`` (a local Mosquitto), else an
      embedded amqtt broker on ``embedded_port`` (0: a free port);
    - ``embedded``: always an embedded broker;
    - a URL: that broker; an ``mqtt://`` one must answer a probe.

    Raises:
        BusError: an invalid spec, an external broker that does not answer, or an embedded
            broker that cannot start.
    """
    if isinstance(spec, str):
        spec = BrokerSpec.parse(spec)
    if spec.mode == "embedded":
        return await _start_embedded(embedded_port)
    if spec.mode == "auto":
        default = parse_broker_url(default_url)
        if not default.tls and await probe(default.host, default.port, probe_timeout):
            return ResolvedBroker(default.url, f"external broker at {default.safe_url}")
        log.info("no MQTT broker answers at %s: starting an embedded one", default.safe_url)
        return await _start_embedded(embedded_port)
    address = spec.address
    assert address is not None  # "external" always has one
    if not address.tls and not await probe(address.host, address.port, probe_timeout):
        raise BusError(
            f"no MQTT broker answers at {address.safe_url} (within {probe_timeout:g} s): "
            "start it (e.g. `systemctl start mosquitto`), check host and port, or use "
            "--broker embedded"
        )
    # mqtts: not probed here (the CA to trust is the client's business); MqttClient
    # reports a clear error if it cannot connect.
    return ResolvedBroker(address.url, f"external broker at {address.safe_url}")
