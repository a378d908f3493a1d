"""Read the buffer tank's level over OPC UA, and write it to the answers file.

This is the script that worked last week. Since the PLC was hardened it fails: plc1 now
offers only Basic256Sha256 with SignAndEncrypt, and anonymous access is off. Make it connect
securely, as the user of your brief (also in the JSON file named by SIMLAB_VARIANT: user,
password).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from asyncua import Client


def load_variant() -> dict[str, Any]:
    path = os.environ.get("SIMLAB_VARIANT")
    if not path:
        raise SystemExit("SIMLAB_VARIANT is not set: run me in a simlab exercise lab")
    values: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return values


async def read_level(url: str, namespace: str) -> float:
    client = Client(url)
    # TODO: an application instance certificate, the security policy and mode, the user.
    async with client:
        ns = await client.get_namespace_index(namespace)
        value = await client.get_node(f"ns={ns};s=plc1.level").read_value()
    return float(value)


async def main() -> None:
    variant = load_variant()
    print(f"connecting as {variant['user']} (not yet...)")
    level = await read_level(os.environ["SIMLAB_OPCUA_URL"], os.environ["SIMLAB_OPCUA_NAMESPACE"])
    print(f"level: {level} m")
    Path(os.environ["SIMLAB_ANSWERS"]).write_text(json.dumps({"level": level}), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
