"""Find the tank level in plc1's OPC UA address space by its browse name, and describe it.

Reference solution. It browses Objects/plc1 recursively for the variable with the browse name
of the brief, then reads its NodeId, its value and its two properties, EURange (the range of
the transmitter) and EngineeringUnits, and writes them to the answers file.

The lab hands its addresses in environment variables (SIMLAB_OPCUA_URL, SIMLAB_OPCUA_NAMESPACE)
and your values in the JSON file named by SIMLAB_VARIANT (browse_name).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from asyncua import Client, Node, ua


def load_variant() -> dict[str, Any]:
    """Your values (browse_name), from the file the lab gives."""
    path = os.environ.get("SIMLAB_VARIANT")
    if not path:
        raise SystemExit("SIMLAB_VARIANT is not set: run me in a simlab exercise lab")
    values: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return values


async def find_variable(parent: Node, browse_name: str) -> Node | None:
    """The variable named ``browse_name`` below ``parent``, browsing folders depth first."""
    for child in await parent.get_children():
        node_class = await child.read_node_class()
        if node_class == ua.NodeClass.Variable:
            if (await child.read_browse_name()).Name == browse_name:
                return child
        elif node_class == ua.NodeClass.Object:
            found = await find_variable(child, browse_name)
            if found is not None:
                return found
    return None


async def describe(node: Node) -> dict[str, Any]:
    """The answers about one analog variable: NodeId, unit, EURange and value."""
    eu_range = await (await node.get_child("0:EURange")).read_value()
    units = await (await node.get_child("0:EngineeringUnits")).read_value()
    return {
        "node_id": node.nodeid.to_string(),
        "unit": units.DisplayName.Text,
        "eu_low": eu_range.Low,
        "eu_high": eu_range.High,
        "level": await node.read_value(),
    }


async def main() -> None:
    browse_name = load_variant()["browse_name"]
    async with Client(os.environ["SIMLAB_OPCUA_URL"]) as client:
        ns = await client.get_namespace_index(os.environ["SIMLAB_OPCUA_NAMESPACE"])
        plc = client.get_node(f"ns={ns};s={os.environ['SIMLAB_DEVICE']}")
        node = await find_variable(plc, browse_name)
        if node is None:
            raise SystemExit(f"no variable {browse_name!r} below {plc.nodeid.to_string()}")
        answers = await describe(node)
    print(json.dumps(answers, indent=2))
    Path(os.environ["SIMLAB_ANSWERS"]).write_text(json.dumps(answers), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
