"""A tree of ``/``-separated paths (MQTT topics, UNS tag paths), kept in step with a set.

Levels that hold a single child and no data of their own are shown as one node
(``…/buffer_tank/tank1``), so deep ISA-95 paths fit a narrow pane. :meth:`sync` is
called at the screen's refresh rate: it rebuilds the nodes only when the set of paths
changes (keeping the cursor on the same path and collapsed nodes collapsed) and otherwise
only relabels the nodes whose label changed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Final

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

__all__ = ["Describe", "TopicTree", "shorten"]

Describe = Callable[[str, str], Text]
"""``describe(path, shown)``: the label of the node of ``path``, displayed as ``shown``."""

MAX_SHOWN: Final = 20
"""Longest label of a chain of levels before its first levels are elided."""


def shorten(shown: str, limit: int = MAX_SHOWN) -> str:
    """``acme/riverside/utilities/water/buffer_tank/tank1`` → ``…/buffer_tank/tank1``: the
    last levels that fit in ``limit`` characters (at least the last one)."""
    if len(shown) <= limit:
        return shown
    *above, kept = shown.split("/")
    for level in reversed(above):
        if len(level) + len(kept) + 3 > limit:
            break
        kept = f"{level}/{kept}"
    return f"…/{kept}"


@dataclass
class _Level:
    children: dict[str, _Level] = field(default_factory=dict)


class TopicTree(Tree[str]):
    """Paths as a tree; each node's data is its full path (see the module docstring)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("/", id=id, classes=classes)
        self.show_root = False
        self.guide_depth = 2
        self._layout_key: tuple[tuple[str, str | None], ...] = ()
        self._by_path: dict[str, TreeNode[str]] = {}
        self._labels: dict[str, str] = {}
        self._folded: set[str] = set()

    @property
    def cursor_path(self) -> str | None:
        """The path of the node under the cursor."""
        node = self.cursor_node
        return None if node is None else node.data

    def node_of(self, path: str) -> TreeNode[str] | None:
        """The node showing ``path`` (None when it is not a node)."""
        return self._by_path.get(path)

    def sync(self, paths: Collection[str], describe: Describe) -> None:
        """Show ``paths`` and the levels above them, labelled by ``describe``."""
        layout = _layout(paths)
        shape = tuple((path, parent) for path, parent, _ in layout)
        if shape != self._layout_key:
            self._rebuild(layout, describe)
            self._layout_key = shape
            return
        for path, node in self._by_path.items():
            label = describe(path, self._labels[path])
            if label != node.label:
                node.set_label(label)

    def _rebuild(self, layout: list[tuple[str, str | None, str]], describe: Describe) -> None:
        cursor = self.cursor_path
        self.clear()
        self._by_path, self._labels = {}, {}
        parents = {parent for _, parent, _ in layout}
        for path, parent, shown in layout:
            above = self.root if parent is None else self._by_path[parent]
            label = describe(path, shown)
            if path in parents:
                node = above.add(label, data=path, expand=path not in self._folded)
            else:
                node = above.add_leaf(label, data=path)
            self._by_path[path], self._labels[path] = node, shown
        if cursor is None:
            return
        _ = self.last_line  # lays the new lines out, so the nodes have their lines
        target = self._nearest(cursor)
        if target is not None:
            self.move_cursor(target)
        moved_to = self.cursor_node
        if moved_to is not None and moved_to.data != cursor:
            # the cursor may stay on its line while the node there changed: say so
            self.post_message(self.NodeHighlighted(moved_to))

    def _nearest(self, path: str) -> TreeNode[str] | None:
        """The node of ``path``, else of the deepest level above it that is shown."""
        levels = path.split("/")
        for depth in range(len(levels), 0, -1):
            node = self._by_path.get("/".join(levels[:depth]))
            if node is not None:
                return node
        return None

    def on_tree_node_collapsed(self, event: Tree.NodeCollapsed[str]) -> None:
        if event.node.data is not None:
            self._folded.add(event.node.data)

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[str]) -> None:
        if event.node.data is not None:
            self._folded.discard(event.node.data)


def _layout(paths: Collection[str]) -> list[tuple[str, str | None, str]]:
    """``(path, parent path or None, shown text)`` of every node, depth first, by name."""
    root = _Level()
    for path in paths:
        level = root
        for name in path.split("/"):
            level = level.children.setdefault(name, _Level())
    wanted = set(paths)
    rows: list[tuple[str, str | None, str]] = []

    def visit(level: _Level, parent: str | None) -> None:
        for name in sorted(level.children):
            child = level.children[name]
            path = name if parent is None else f"{parent}/{name}"
            shown = name
            while path not in wanted and len(child.children) == 1:
                (below, child), *_ = child.children.items()
                path, shown = f"{path}/{below}", f"{shown}/{below}"
            rows.append((path, parent, shorten(shown)))
            visit(child, path)

    visit(root, None)
    return rows
