"""The OPC UA address space as a tree, filled lazily: a node's children are browsed when
it is first expanded (the screen browses, in a worker, and hands them to :meth:`fill`)."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import NodeID, TreeNode

from devices.endpoints.opcua_browser import BrowseNode

__all__ = ["AddressSpaceTree"]


class AddressSpaceTree(Tree[BrowseNode]):
    """Objects and below; variables and methods styled by the component classes."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "address-space--variable",
        "address-space--method",
        "address-space--note",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("not connected", id=id)
        self.root.allow_expand = False
        self._loaded: set[NodeID] = set()

    def start(self, root: BrowseNode | None, note: str = "not connected") -> None:
        """Show ``root`` (collapsed, children not browsed yet), or only ``note``."""
        self._loaded.clear()
        if root is None:
            self.reset(Text(note, style=self._style("note")))
            self.root.allow_expand = False
            return
        self.reset(root.display_name, root)
        self.root.allow_expand = root.has_children

    def needs_children(self, node: TreeNode[BrowseNode]) -> bool:
        """Whether ``node`` was never browsed."""
        return node.data is not None and node.allow_expand and node.id not in self._loaded

    def fill(self, node: TreeNode[BrowseNode], children: list[BrowseNode]) -> None:
        """Put the browsed ``children`` under ``node``."""
        self._loaded.add(node.id)
        node.remove_children()
        for child in children:
            node.add(self._label(child), data=child, allow_expand=child.has_children)
        if not children:
            node.allow_expand = False

    def _label(self, node: BrowseNode) -> Text:
        if node.node_class == "Variable":
            return Text(node.display_name, style=self._style("variable"))
        if node.node_class == "Method":
            return Text(f"{node.display_name}()", style=self._style("method"))
        return Text(node.display_name)

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"address-space--{name}", partial=True)
