"""Read the buffer tank's level through a secure, authenticated OPC UA session.

Reference solution. plc1 accepts only Basic256Sha256 with SignAndEncrypt, and only a named
user: this program makes its own application instance certificate, opens the secure channel,
logs in with the user of the brief, reads the level and writes it to the answers file.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

APPLICATION_URI = "urn:simlab:apprentice:secure-reader"


def load_variant() -> dict[str, Any]:
    path = os.environ.get("SIMLAB_VARIANT")
    if not path:
        raise SystemExit("SIMLAB_VARIANT is not set: run me in a simlab exercise lab")
    values: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return values


async def read_level(url: str, namespace: str, user: str, password: str, pki: Path) -> float:
    client = Client(url)
    client.application_uri = APPLICATION_URI  # the certificate carries the same URI
    cert, key = await client.setup_self_signed_certificate(pki / "key.pem", pki / "cert.der")
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        str(cert),
        str(key),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    client.set_user(user)
    client.set_password(password)
    async with client:
        ns = await client.get_namespace_index(namespace)
        value = await client.get_node(f"ns={ns};s=plc1.level").read_value()
    return float(value)


async def main() -> None:
    variant = load_variant()
    pki = Path(tempfile.mkdtemp(prefix="apprentice-pki-"))
    try:
        level = await read_level(
            os.environ["SIMLAB_OPCUA_URL"],
            os.environ["SIMLAB_OPCUA_NAMESPACE"],
            variant["user"],
            variant["password"],
            pki,
        )
    finally:
        shutil.rmtree(pki, ignore_errors=True)
    print(f"level: {level} m")
    Path(os.environ["SIMLAB_ANSWERS"]).write_text(json.dumps({"level": level}), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
