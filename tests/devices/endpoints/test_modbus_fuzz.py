"""The Modbus endpoint survives garbage: 10,000+ seeded malformed frames over raw sockets.

Every frame class has a deterministic expected outcome, so the test never waits for luck:

- well-framed requests (valid MBAP header, any PDU, any unit id): every one addressed to a
  served unit gets exactly one well-formed answer (a response or an exception 01..04),
  the others none; a batch ends with a sentinel read whose answer proves the server has
  processed everything before it;
- invalid headers (protocol id not 0, length 0, 1 or oversized): the server closes;
- truncated frames followed by end of file: the server closes;
- random bytes followed by 600 zero bytes: whatever the bytes did, the zeros end in an
  invalid header (length 0), so the server closes.

Afterwards a pymodbus client is answered correctly and the lab still steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
from collections.abc import Callable

import pytest
import yaml
from pymodbus.client import AsyncModbusTcpClient

from devices.endpoints.audit import SessionAudit
from devices.endpoints.modbus import ModbusEndpoint
from simlab.lab import Lab
from simlab.scenario import parse_scenario, resolve_scenario

SEED = 20240611
WORKERS = 8
FRAMES_PER_WORKER = 1300  # 10,400 frames in all
BATCH = 10
STEP_TIMEOUT = 3.0  # s: a safety net only; every step ends on an answer or a close
SENTINEL = struct.pack(">BBHH", 1, 3, 0, 2)  # unit 1, FC 3, holding register 0, 2 registers
SUPPORTED = (1, 2, 3, 4, 5, 6, 15, 16, 43)


def lab_with_map() -> Lab:
    """Water tank with a small map on plc1: floats, a scaled int, coils, a gap at 4..9."""
    data = yaml.safe_load(resolve_scenario("water-tank").read_text())
    plc = next(d for d in data["devices"] if d["name"] == "plc1")
    plc["modbus"] = {"port": 5020, "unit_ids": [1]}
    mapping = {
        "level_sp": {"table": "holding_register", "address": 0, "type": "float32"},
        "valve_cmd": {"table": "holding_register", "address": 2, "type": "int16", "gain": 10},
        "level": {"table": "input_register", "address": 0, "type": "float32"},
        "auto": {"table": "coil", "address": 0, "type": "bool"},
        "hh_reset": {"table": "coil", "address": 1, "type": "bool"},
        "level_hh": {"table": "discrete_input", "address": 0, "type": "bool"},
    }
    for tag in plc["tags"]:
        tag.pop("modbus", None)
        if tag["name"] in mapping:
            tag["modbus"] = mapping[tag["name"]]
    return Lab(parse_scenario(yaml.safe_dump(data), "water-tank+fuzz"))


def mbap(tid: int, pdu_with_unit: bytes, protocol: int = 0, length: int | None = None) -> bytes:
    size = len(pdu_with_unit) if length is None else length
    return struct.pack(">HHH", tid & 0xFFFF, protocol, size) + pdu_with_unit


# --- frame generators -------------------------------------------------------------------


def random_pdu(rng: random.Random) -> bytes:
    """A PDU (function code first) that is well framed but anything inside."""
    roll = rng.random()
    if roll < 0.45:  # supported function, random payload of any length
        return bytes([rng.choice(SUPPORTED)]) + rng.randbytes(rng.randint(0, 252))
    if roll < 0.75:  # supported function, structured fields at the edges
        return structured_pdu(rng)
    if roll < 0.9:  # any other function code
        fc = rng.choice([c for c in range(256) if c not in SUPPORTED])
        return bytes([fc]) + rng.randbytes(rng.randint(0, 40))
    address = rng.randint(0, 3)
    return struct.pack(">BHH", rng.choice((1, 2, 3, 4)), address, rng.randint(1, 4))


def structured_pdu(rng: random.Random) -> bytes:
    fc = rng.choice(SUPPORTED)
    address = rng.choice((0, 1, 2, 3, 9, 0xFFFF, rng.randint(0, 0xFFFF)))
    count = rng.choice((0, 1, 2, 125, 126, 2000, 2001, 0xFFFF, rng.randint(0, 0xFFFF)))
    if fc in (1, 2, 3, 4, 5, 6):
        return struct.pack(">BHH", fc, address, count)
    if fc in (15, 16):
        byte_count = rng.choice((0, 1, 2, 4, 255, rng.randint(0, 255)))
        data = rng.randbytes(rng.choice((0, 1, byte_count, rng.randint(0, 240))))
        return struct.pack(">BHHB", fc, address, count, byte_count) + data[:240]
    return bytes([43, rng.choice((13, 14, 14, 14)), rng.randint(0, 6), rng.randint(0, 255)])[
        : rng.randint(1, 4)
    ]


def well_framed(rng: random.Random, tid: int) -> tuple[bytes, int]:
    unit = 1 if rng.random() < 0.85 else rng.randint(0, 255)
    return mbap(tid, bytes([unit]) + random_pdu(rng)), unit


def invalid_header(rng: random.Random) -> bytes:
    body = bytes([1]) + rng.randbytes(rng.randint(0, 300))
    if rng.random() < 0.4:
        return mbap(rng.randint(0, 0xFFFF), body, protocol=rng.randint(1, 0xFFFF))
    length = rng.choice((0, 1, 255, 256, 1000, 0xFFFF, rng.randint(255, 0xFFFF)))
    return mbap(rng.randint(0, 0xFFFF), body, length=length)  # oversized or too short


# --- one connection ---------------------------------------------------------------------


class Worker:
    """Sends its share of frames over as many connections as the server leaves it."""

    def __init__(self, port: int, seed: int) -> None:
        self.port = port
        self.rng = random.Random(seed)
        self.tid = 0
        self.sent = 0
        self.answers = 0
        self.closes = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def run(self, frames: int) -> None:
        while self.sent < frames:
            roll = self.rng.random()
            if roll < 0.6:
                await self.batch(min(BATCH, frames - self.sent))
            elif roll < 0.75:
                await self.closing(invalid_header(self.rng))
            elif roll < 0.87:
                await self.truncated()
            else:
                noise = self.rng.randbytes(self.rng.randint(0, 300))
                await self.closing(noise + bytes(600), frames=1)
        await self.disconnect()

    async def streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self.reader, self.writer

    async def disconnect(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with _reset_ok():
                await self.writer.wait_closed()
        self.reader = self.writer = None

    def next_tid(self) -> int:
        self.tid = (self.tid + 1) % 0x10000
        return self.tid

    async def batch(self, size: int) -> None:
        """Well-framed requests then the sentinel: exactly the served ones are answered."""
        reader, writer = await self.streams()
        expected: dict[int, int] = {}
        frames = []
        for _ in range(size):
            tid = self.next_tid()
            frame, unit = well_framed(self.rng, tid)
            frames.append(frame)
            if unit == 1:
                expected[tid] = frame[7]
        sentinel = self.next_tid()
        writer.write(b"".join(frames) + mbap(sentinel, SENTINEL))
        await writer.drain()
        async with asyncio.timeout(STEP_TIMEOUT):
            while True:
                tid, fc, body = await read_frame(reader)
                if tid == sentinel:
                    assert fc == 3 and body[0] == 4, "the sentinel read must succeed"
                    break
                request_fc = expected.pop(tid)  # KeyError: an answer nobody should get
                assert fc in (request_fc, request_fc | 0x80), (request_fc, fc)
                if fc & 0x80:
                    assert body[0] in (1, 2, 3, 4), f"exception code {body[0]}"
                self.answers += 1
        assert not expected, f"requests {sorted(expected)} were not answered"
        self.sent += size

    async def closing(self, data: bytes, frames: int = 1) -> None:
        """Send data the server must answer by closing the connection."""
        reader, writer = await self.streams()
        writer.write(data)
        with _reset_ok():
            await writer.drain()
        await self.until_closed(reader)
        self.sent += frames

    async def truncated(self) -> None:
        """A frame cut short, then end of file: the server closes."""
        frame, _ = well_framed(self.rng, self.next_tid())
        reader, writer = await self.streams()
        writer.write(frame[: self.rng.randint(1, len(frame) - 1)])
        with _reset_ok():
            await writer.drain()
            writer.write_eof()
        await self.until_closed(reader)
        self.sent += 1

    async def until_closed(self, reader: asyncio.StreamReader) -> None:
        async with asyncio.timeout(STEP_TIMEOUT):
            with _reset_ok():
                while await reader.read(65536):
                    pass
        self.closes += 1
        await self.disconnect()


def _reset_ok() -> contextlib.suppress:
    """Suppress the errors of a socket the server has reset or closed."""
    return contextlib.suppress(OSError)


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    """(transaction id, function code, rest) of one response; checks its MBAP header."""
    tid, protocol, length, _unit = struct.unpack(">HHHB", await reader.readexactly(7))
    assert protocol == 0 and 2 <= length <= 254, (protocol, length)
    pdu = await reader.readexactly(length - 1)
    return tid, pdu[0], pdu[1:]


# --- the test ---------------------------------------------------------------------------


async def test_endpoint_survives_10000_malformed_frames(free_port: Callable[[], int]) -> None:
    lab = lab_with_map()
    audit = SessionAudit()
    device = lab.devices["plc1"]
    port = free_port()
    async with ModbusEndpoint(
        device, host="127.0.0.1", port=port, audit=audit, now=lambda: lab.time
    ) as endpoint:
        workers = [Worker(port, SEED + i) for i in range(WORKERS)]
        async with asyncio.timeout(20):
            await asyncio.gather(*(w.run(FRAMES_PER_WORKER) for w in workers))
        assert sum(w.sent for w in workers) >= 10_000
        assert sum(w.answers for w in workers) > 1000
        assert sum(w.closes for w in workers) > 500

        device.tags["level_sp"] = 1.25  # whatever the fuzz wrote, set a known value
        async with AsyncModbusTcpClient("127.0.0.1", port=port, retries=0) as client:
            response = await client.read_holding_registers(0, count=2, device_id=1)
            assert not response.isError()
            value = client.convert_from_registers(response.registers, client.DATATYPE.FLOAT32)
            assert value == 1.25
            registers = client.convert_to_registers(0.8, client.DATATYPE.FLOAT32)
            assert not (await client.write_registers(0, registers, device_id=1)).isError()
        assert device.tags["level_sp"] == pytest.approx(0.8)
        before = lab.time
        await lab.run_for(5.0)
        assert lab.time == pytest.approx(before + 5.0)
        await _all_sessions_closed(audit)
        assert endpoint.device is device
    refused = audit.query(kind="refused")
    assert refused and all("connection closed" in e.reason for e in refused)


async def _all_sessions_closed(audit: SessionAudit) -> None:
    async with asyncio.timeout(3.0):
        while any(s.disconnected_at is None for s in audit.sessions.values()):
            await asyncio.sleep(0.01)
