"""Fixtures of the bus tests: real brokers only.

- ``embedded_broker``: an amqtt broker of our own on a free loopback port, per test;
- ``mosquitto_url``: the machine's Mosquitto at 127.0.0.1:1883, shared by every test (and
  by other test runs): use ``topic_prefix`` and unique client ids to stay isolated;
- ``broker_url``: each test that takes it runs once per broker, embedded and Mosquitto;
- ``mosquitto_sub``: the path of the ``mosquitto_sub`` tool (Debian mosquitto-clients).

A missing Mosquitto or ``mosquitto_sub`` skips the tests that need it, with the reason; with
``SIMLAB_REQUIRE_TOOLS=1`` (CI) it fails them instead.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from simlab.bus.broker import EmbeddedBroker, probe

MOSQUITTO_HOST = "127.0.0.1"
MOSQUITTO_PORT = 1883
MOSQUITTO_URL = f"mqtt://{MOSQUITTO_HOST}:{MOSQUITTO_PORT}"


def _require_tools() -> bool:
    return os.environ.get("SIMLAB_REQUIRE_TOOLS") == "1"


def _missing(reason: str) -> None:
    """Skip, or fail under SIMLAB_REQUIRE_TOOLS=1."""
    if _require_tools():
        pytest.fail(f"{reason} (SIMLAB_REQUIRE_TOOLS=1)")
    pytest.skip(reason)


@functools.cache
def mosquitto_answers() -> bool:
    """Whether Mosquitto answers a CONNECT at 127.0.0.1:1883 (asked once per process)."""
    # A thread of its own: callers may already be inside a running event loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, probe(MOSQUITTO_HOST, MOSQUITTO_PORT, 2.0)).result()


@pytest.fixture
def mosquitto_url() -> str:
    """The URL of the machine's Mosquitto; skips the test if it does not answer."""
    if not mosquitto_answers():
        _missing(
            f"Mosquitto does not answer at {MOSQUITTO_URL}: install and start it "
            "(apt-get install -y mosquitto && mosquitto -d) to run this test"
        )
    return MOSQUITTO_URL


@pytest.fixture
async def embedded_broker() -> AsyncIterator[EmbeddedBroker]:
    """A running embedded amqtt broker on a free loopback port, stopped after the test."""
    async with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture(params=["embedded", "mosquitto"])
async def broker_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The URL of a running broker: the test runs once with each kind."""
    if request.param == "mosquitto":
        if not mosquitto_answers():
            _missing(f"Mosquitto does not answer at {MOSQUITTO_URL}: start it to run this test")
        yield MOSQUITTO_URL
        return
    async with EmbeddedBroker() as broker:
        yield broker.url


@pytest.fixture
def topic_prefix() -> str:
    """A topic prefix no other test (nor another run on the shared Mosquitto) uses."""
    return f"simlab-test/{uuid.uuid4().hex}"


@pytest.fixture
def client_id() -> Callable[[str], str]:
    """A function making unique client ids: ``client_id("sub")`` -> ``"t-sub-1a2b3c4d5e"``."""
    return lambda role: f"t-{role}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def mosquitto_sub() -> str:
    """The path of ``mosquitto_sub``; skips (or fails under SIMLAB_REQUIRE_TOOLS=1) if absent."""
    path = shutil.which("mosquitto_sub")
    if path is None:
        _missing("mosquitto_sub not found: apt-get install -y mosquitto-clients")
    assert path is not None
    return path
