"""Find the tank level in plc1's OPC UA address space by its browse name, and describe it.

The lab hands its addresses in environment variables (SIMLAB_OPCUA_URL, SIMLAB_OPCUA_NAMESPACE)
and your values in the JSON file named by SIMLAB_VARIANT (browse_name).

As shipped it prints the tree below Objects/plc1 (browse names, node classes and NodeIds),
then stops at the first TODO. Read the tree before you write any code.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from asyncua import Client, Node


def load_variant() -> dict[str, Any]:
    """Your values (browse_name), from the file the lab gives."""
    path = os.environ.get("SIMLAB_VARIANT")
    if not path:
        raise SystemExit("SIMLAB_VARIANT is not set: run me in a simlab exercise lab")
    values: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return values


async def print_tree(node: Node, depth: int = 0) -> None:
    """Print ``node`` and everything below it, one line each: browse name, class, NodeId."""
    name = (await node.read_browse_name()).to_string()
    node_class = await node.read_node_class()
    print(f"{'  ' * depth}{name}  [{node_class.name}]  {node.nodeid.to_string()}")
    for child in await node.get_children():
        await print_tree(child, depth + 1)


async def find_variable(parent: Node, browse_name: str) -> Node | None:
    """The variable named ``browse_name`` below ``parent``, browsing folders depth first."""
    # TODO 1: look at every child of parent; a Variable with that browse name is the one,
    # an Object (a folder) is a place to look further down. None when it is nowhere.
    raise NotImplementedError("find_variable")


async def describe(node: Node) -> dict[str, Any]:
    """The answers about one analog variable: NodeId, unit, EURange and value."""
    # TODO 2: return {"node_id": "ns=..;s=..", "unit": ..., "eu_low": ..., "eu_high": ...,
    # "level": ...}. EURange and EngineeringUnits are properties: variables below the node.
    raise NotImplementedError("describe")


async def main() -> None:
    browse_name = load_variant()["browse_name"]
    async with Client(os.environ["SIMLAB_OPCUA_URL"]) as client:
        ns = await client.get_namespace_index(os.environ["SIMLAB_OPCUA_NAMESPACE"])
        plc = client.get_node(f"ns={ns};s={os.environ['SIMLAB_DEVICE']}")
        await print_tree(plc)
        node = await find_variable(plc, browse_name)
        if node is None:
            raise SystemExit(f"no variable {browse_name!r} below {plc.nodeid.to_string()}")
        answers = await describe(node)
    print(json.dumps(answers, indent=2))
    Path(os.environ["SIMLAB_ANSWERS"]).write_text(json.dumps(answers), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
