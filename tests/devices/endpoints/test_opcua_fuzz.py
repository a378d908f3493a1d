"""Garbage on the OPC UA port: the server survives it and keeps serving normal clients.

Bounded and seeded: a fixed number of malformed conversations (random bytes, truncated and
mutated HEL/OPN messages, lying length fields, chunks out of order) over raw asyncio
sockets, a few at a time. Afterwards a normal Client connects and reads correct values,
and the server holds no connection open for the fuzzers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncua.ua
import pytest
import pytest_asyncio
from asyncua.client.client import Client
from asyncua.common.connection import SecureConnection, TransportLimits
from asyncua.crypto.security_policies import SecurityPolicyNone
from asyncua.ua.ua_binary import struct_to_binary, uatcp_to_binary

from devices.endpoints.audit import SessionAudit
from devices.endpoints.opcua import OpcUaEndpoint
from simlab.lab import Lab
from simlab.scenario import parse_scenario

pytestmark = pytest.mark.asyncio(loop_scope="module")
ua: Any = asyncua.ua  # asyncua's NewType annotations (Int16, Double, ...) are noise here

SEED = 20260101
ROUNDS = 12  # cases per generator below; 9 generators -> 108 conversations

SCENARIO = """
format_version: 1
name: opcua_fuzz
plant:
  units:
    - {name: tank, type: tank, area: 0.5, height: 2.0, initial_level: 0.9}
devices:
  - name: plc1
    type: plc
    opcua: {}
    tags:
      - {name: level, signal: tank.level, unit: m}
      - {name: level_sp, unit: m, initial: 1.0, writable: true, range: [0.2, 1.8]}
"""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def endpoint(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OpcUaEndpoint]:
    lab = Lab(parse_scenario(SCENARIO))
    served = OpcUaEndpoint(
        lab.devices["plc1"],
        host="127.0.0.1",
        port=0,
        audit=SessionAudit(),
        clock=lab.clock,
        now=lambda: lab.time,
        state_dir=tmp_path_factory.mktemp("opcua-fuzz"),
    )
    # asyncua logs every malformed message with a traceback, some with undecodable bytes that
    # pytest-xdist cannot ship between processes: keep that expected noise out of the report.
    stack = logging.getLogger("asyncua")
    level = stack.level
    stack.setLevel(logging.CRITICAL)
    try:
        async with served:
            yield served
    finally:
        stack.setLevel(level)


def _hello(url: str = "opc.tcp://127.0.0.1:4840/") -> bytes:
    hello = ua.Hello()
    hello.EndpointUrl = url
    return bytes(uatcp_to_binary(ua.MessageType.Hello, hello))


def _open() -> bytes:
    request = ua.OpenSecureChannelRequest()
    request.Parameters.RequestType = ua.SecurityTokenRequestType.Issue
    request.Parameters.SecurityMode = ua.MessageSecurityMode.None_
    request.Parameters.RequestedLifetime = 3_600_000
    request.Parameters.ClientNonce = b""
    connection = SecureConnection(SecurityPolicyNone(), TransportLimits())  # type: ignore[no-untyped-call]
    return bytes(
        connection.message_to_binary(
            struct_to_binary(request), message_type=ua.MessageType.SecureOpen, request_id=1
        )
    )


def _header(kind: bytes, size: int, chunk: bytes = b"F") -> bytes:
    return kind + chunk + struct.pack("<I", size & 0xFFFFFFFF)


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        buffer[rng.randrange(len(buffer))] = rng.randrange(256)
    return bytes(buffer)


Case = Callable[[random.Random], list[bytes]]

CASES: dict[str, Case] = {
    "random bytes": lambda r: [r.randbytes(r.randint(1, 600))],
    "hello then random": lambda r: [_hello(), r.randbytes(r.randint(1, 300))],
    "truncated hello": lambda r: [_hello()[: r.randint(1, len(_hello()) - 1)]],
    "truncated open": lambda r: [_hello(), _open()[: r.randint(1, len(_open()) - 1)]],
    "oversized length": lambda r: [
        _header(r.choice([b"HEL", b"OPN", b"MSG", b"CLO"]), r.choice([2**31, 2**32 - 1, 10**8]))
        + r.randbytes(r.randint(0, 64))
    ],
    "undersized length": lambda r: [_header(r.choice([b"HEL", b"MSG", b"XYZ"]), r.randint(0, 7))],
    "mutated hello and open": lambda r: [_mutate(r, _hello()), _mutate(r, _open())],
    "hello with absurd fields": lambda r: [
        _header(b"HEL", 32)
        + struct.pack("<IIIIIi", 0, r.choice([0, 1, 2**32 - 1]), 0, 0, 0, r.choice([-5, 10**9]))
        + r.randbytes(4)
    ],
    "message before open": lambda r: [
        _hello(),
        _header(b"MSG", 24, r.choice([b"F", b"C", b"A"])) + r.randbytes(16),
    ],
}


async def _converse(port: int, chunks: list[bytes]) -> None:
    """Send ``chunks``, take whatever the server answers for a moment, hang up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with contextlib.suppress(ConnectionError, OSError):  # the server hung up on us: fine
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.read(65536), timeout=0.05)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def _read_level(endpoint: OpcUaEndpoint) -> float:
    async with Client(endpoint.url, timeout=5) as client:
        node = client.get_node(f"ns={endpoint.namespace_index};s=plc1.level")
        return float(await node.read_value())


async def test_garbage_then_normal_client(endpoint: OpcUaEndpoint) -> None:
    rng = random.Random(SEED)
    conversations = [CASES[name](rng) for name in sorted(CASES) for _ in range(ROUNDS)]
    rng.shuffle(conversations)
    for start in range(0, len(conversations), 8):
        batch = conversations[start : start + 8]
        await asyncio.gather(*(_converse(endpoint.port, chunks) for chunks in batch))
    assert await _read_level(endpoint) == endpoint.device.tags["level"]
    for _ in range(50):  # the server lets go of every fuzzing connection
        if not endpoint.connections:
            break
        await asyncio.sleep(0.02)
    assert endpoint.connections == 0


async def test_half_sent_message_does_not_block_others(endpoint: OpcUaEndpoint) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)
    writer.write(_hello() + _header(b"OPN", 2**20) + b"\x00" * 100)  # promises 1 MiB, sends 100 B
    await writer.drain()
    try:
        assert await asyncio.wait_for(_read_level(endpoint), 5) == endpoint.device.tags["level"]
    finally:
        writer.close()
        await writer.wait_closed()
