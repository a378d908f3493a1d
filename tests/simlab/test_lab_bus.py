"""The IT side of a running lab, end to end: gateway → broker → platform → API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from simlab.clock import RealTimeClock
from simlab.lab import Lab
from simlab.scenario import load_scenario

LEVEL = "acme/riverside/utilities/water/buffer_tank/tank1/level"
RULES = f"""\
format_version: 1
alarms:
  - {{name: TANK1_LEVEL_HI, tag: {LEVEL}, kind: HI, limit: 1.4, deadband: 0.02,
     severity: 700, message: Buffer tank nearly full}}
"""


async def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_level_over_hi_raises_an_alarm_acknowledged_through_the_api(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    scenario = load_scenario("water-tank")
    lab = Lab(
        scenario,
        clock=RealTimeClock(speed=25.0),
        serve=True,
        auto_ports=True,
        state_dir=tmp_path,
        broker="embedded",
    )
    async with lab:
        assert lab.it is not None and lab.it.platform is not None
        platform = lab.it.platform
        headers = {"Authorization": f"Bearer {platform.token}"}
        async with httpx.AsyncClient(base_url=platform.api_url, headers=headers) as api:

            async def level_stored() -> bool:
                reply = await api.get(f"/api/tags/{LEVEL}/latest")
                return reply.status_code == 200

            await wait_for(level_stored)
            lab.write("plc1.level_sp", 1.7)  # the PID fills the tank past the HI limit

            async def alarm_active() -> bool:
                alarms = (await api.get("/api/alarms", params={"state": "active"})).json()
                return any(a["name"] == "TANK1_LEVEL_HI" for a in alarms)

            await wait_for(alarm_active, timeout=30)
            assert lab.truth.value_at("tank.level", lab.time) > 1.38
            reply = await api.post(
                "/api/alarms/TANK1_LEVEL_HI/ack",
                json={"user": "apprentice", "comment": "seen, lowering"},
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["state"] == "ACTIVE_ACK"
            history = await api.get(
                f"/api/tags/{LEVEL}/history", params={"start": "-1h", "bucket": "10", "agg": "max"}
            )
            assert history.status_code == 200
            assert max(b["value"] for b in history.json()["buckets"]) > 1.4
            journal = (await api.get("/api/alarms/journal")).json()
            kinds = [e["kind"] for e in journal]
            assert kinds[:2] == ["raised", "acknowledged"]
