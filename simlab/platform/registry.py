"""The asset registry: the ISA-95 asset tree of the platform, its tags and their liveness.

Tree
    Every tag lives at a UNS path ``enterprise/site/area/line/cell/asset/tag`` (see
    :mod:`simlab.bus.uns`); the six levels above the tag form the asset tree. The tree grows
    from two sources: *declared* tags (:meth:`AssetRegistry.declare`, with unit, description
    and source, typically from the scenario) and *observed* tags (:meth:`AssetRegistry.observe`,
    any new UNS path that arrives on the bus). An observed tag that was never declared is
    kept with ``declared=False`` so a UI can point at it.

Last value
    Each tag keeps its newest value, timestamp (float seconds since the Unix epoch, simulated
    time) and quality (OPC UA status name). A sample older than the one kept is ignored
    (an MQTT redelivery or an out-of-order message does not move the value back in time).
    A value that is not a finite number is kept as ``None`` with a ``Bad`` quality, as the
    UNS payload contract does.

Liveness
    Any node of the tree (an asset, or a higher node that an edge node serves, e.g. a line)
    can be marked online (:meth:`AssetRegistry.mark_online`) or stale
    (:meth:`AssetRegistry.mark_stale`, with a reason). The state of a node is decided by the
    most recent mark on the node itself or on one of its ancestors; a node never marked is
    ``unknown``. This is the Sparkplug B model: NDEATH of an edge node serving a line makes
    every asset of the line stale, a later DBIRTH of one asset brings only that asset back,
    and the next NBIRTH brings the whole line back. Which bus events mark what is the
    ingest's decision (births/deaths, a ``Bad`` UNS quality, a silent source); the registry
    only keeps the marks.

The registry is pure (no I/O, no clock) and not thread-safe: use it from one asyncio loop.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from simlab.bus.uns import (
    ISA95_LEVELS,
    UnsMessage,
    UnsTopicError,
    UnsValue,
    parse_uns_topic,
    quality_severity,
)
from simlab.errors import SimlabError
from simlab.platform.historian import Timestamp, to_seconds
from simlab.scenario.checks import did_you_mean

__all__ = [
    "AssetRegistry",
    "AssetState",
    "AssetStatus",
    "NodeLevel",
    "RegistryError",
    "TagDeclaration",
    "TagInfo",
    "UnknownPath",
]

AssetState = Literal["online", "stale", "unknown"]
"""Liveness of a node: ``online`` (born, alive), ``stale`` (dead or silent), ``unknown``."""

NodeLevel = Literal["enterprise", "site", "area", "line", "cell", "asset"]
"""The ISA-95 level of a node of the asset tree."""

_SEGMENT: Final = re.compile(r"[a-z0-9_-]+")
_ASSET_DEPTH: Final = len(ISA95_LEVELS)


class RegistryError(SimlabError):
    """A registry operation that cannot be done."""


class UnknownPath(RegistryError, LookupError):
    """A tag path the registry does not hold."""


@dataclass(frozen=True, slots=True)
class TagDeclaration:
    """A tag declared ahead of its data: UNS path, engineering unit, description, source."""

    path: str
    unit: str | None = None
    description: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True)
class TagInfo:
    """A snapshot of one tag of the registry.

    ``asset`` is the path of the asset holding the tag (its first six segments), ``name``
    the tag segment. ``value``, ``ts`` and ``quality`` are None until a sample arrived.
    """

    path: str
    asset: str
    name: str
    unit: str | None = None
    description: str = ""
    source: str = ""
    declared: bool = False
    value: UnsValue = None
    ts: float | None = None
    quality: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The tag as a JSON-ready dict (the shape the HTTP API serves)."""
        return {
            "path": self.path,
            "asset": self.asset,
            "name": self.name,
            "unit": self.unit,
            "description": self.description,
            "source": self.source,
            "declared": self.declared,
            "value": self.value,
            "ts": self.ts,
            "quality": self.quality,
        }


@dataclass(frozen=True, slots=True)
class AssetStatus:
    """The liveness of one node of the tree.

    ``decided_by`` is the path of the node whose mark decides the state (the node itself or
    an ancestor, e.g. the line an edge node serves); None when the state is ``unknown``.
    """

    path: str
    state: AssetState
    reason: str = ""
    since: float | None = None
    decided_by: str | None = None


@dataclass(frozen=True, slots=True)
class _Mark:
    """One online/stale mark on a node; ``seq`` orders marks in time."""

    seq: int
    online: bool
    reason: str
    ts: float | None


class AssetRegistry:
    """The ISA-95 asset tree built from declared and observed tags, with liveness marks."""

    def __init__(self, declarations: Iterable[TagDeclaration] = ()) -> None:
        self._tags: dict[str, TagInfo] = {}
        self._marks: dict[str, _Mark] = {}
        self._seq = 0
        for declaration in declarations:
            self.declare(
                declaration.path,
                unit=declaration.unit,
                description=declaration.description,
                source=declaration.source,
            )

    # --- building ----------------------------------------------------------------------

    def declare(
        self, path: str, *, unit: str | None = None, description: str = "", source: str = ""
    ) -> TagInfo:
        """Declare the tag at UNS ``path``; a second declaration replaces the metadata.

        The last value (if any) is kept, and so is a unit already observed when the
        declaration gives none. :class:`~simlab.bus.uns.UnsTopicError` when
        ``path`` is not a UNS tag path.
        """
        current = self._tags.get(path) or _new_tag(path)
        info = replace(
            current,
            unit=unit or current.unit,
            description=description,
            source=source,
            declared=True,
        )
        self._tags[path] = info
        return info

    def observe(
        self,
        path: str,
        value: UnsValue,
        ts: Timestamp,
        quality: str = "Good",
        *,
        unit: str | None = None,
        source: str | None = None,
    ) -> TagInfo:
        """Record a sample of the tag at UNS ``path`` (adding the tag if it is new).

        A sample older than the one kept leaves the value alone. ``unit`` and ``source``
        fill in what a declaration left empty; a declared unit is never overridden.
        :class:`~simlab.bus.uns.UnsTopicError` for a path that is not a UNS tag path,
        ``UnsPayloadError`` for a quality that is not an OPC UA status name.
        """
        severity = quality_severity(quality)
        if isinstance(value, float) and not math.isfinite(value):
            value = None
            if severity != "Bad":
                quality = "Bad"
        current = self._tags.get(path) or _new_tag(path)
        info = replace(
            current,
            unit=current.unit or unit or None,
            source=current.source or source or "",
        )
        seconds = to_seconds(ts)
        if current.ts is None or seconds >= current.ts:
            info = replace(info, value=value, ts=seconds, quality=quality)
        self._tags[path] = info
        return info

    def observe_message(self, path: str, message: UnsMessage) -> TagInfo:
        """Record a UNS payload received at topic ``path`` (see :meth:`observe`)."""
        return self.observe(
            path,
            message.value,
            message.ts_ms / 1000.0,
            message.quality,
            unit=message.unit,
            source=message.source,
        )

    # --- liveness ----------------------------------------------------------------------

    def mark_online(self, asset_path: str, *, ts: float | None = None) -> None:
        """Mark the node at ``asset_path`` (an asset, or a higher node) and all below online.

        ``asset_path`` has one to six segments (``acme/lyon/packaging/line-1``); it does not
        need tags yet. ``ts`` (simulated seconds) is reported as ``since``.
        """
        self._mark(asset_path, online=True, reason="", ts=ts)

    def mark_stale(self, asset_path: str, reason: str, *, ts: float | None = None) -> None:
        """Mark the node at ``asset_path`` and all below stale, saying why (``reason``)."""
        self._mark(asset_path, online=False, reason=reason.strip() or "stale", ts=ts)

    def _mark(self, path: str, *, online: bool, reason: str, ts: float | None) -> None:
        key = _node_path(path)
        self._seq += 1
        self._marks[key] = _Mark(self._seq, online, reason, ts)

    def status(self, asset_path: str) -> AssetStatus:
        """The liveness of the node at ``asset_path`` (the latest mark on it or above)."""
        key = _node_path(asset_path)
        segments = key.split("/")
        best: tuple[str, _Mark] | None = None
        for depth in range(1, len(segments) + 1):
            prefix = "/".join(segments[:depth])
            mark = self._marks.get(prefix)
            if mark is not None and (best is None or mark.seq > best[1].seq):
                best = (prefix, mark)
        if best is None:
            return AssetStatus(key, "unknown")
        where, mark = best
        state: AssetState = "online" if mark.online else "stale"
        return AssetStatus(key, state, mark.reason, mark.ts, where)

    def assets(self) -> list[AssetStatus]:
        """The status of every asset (six-segment node) of the tree, sorted by path."""
        return [self.status(path) for path in sorted(self._asset_paths())]

    # --- queries -----------------------------------------------------------------------

    def tags(self, prefix: str | None = None) -> list[TagInfo]:
        """The tags at or below ``prefix`` (whole segments; None or ``""``: all), by path."""
        if not prefix or not prefix.strip("/"):
            return [self._tags[path] for path in sorted(self._tags)]
        wanted = prefix.strip("/")
        return [
            self._tags[path]
            for path in sorted(self._tags)
            if path == wanted or path.startswith(wanted + "/")
        ]

    def tag(self, path: str) -> TagInfo:
        """The tag at ``path``; :class:`UnknownPath` (with a did-you-mean) if there is none."""
        info = self._tags.get(path)
        if info is None:
            guess = did_you_mean(path, self._tags)
            raise UnknownPath(
                f"no tag at {path!r} in the asset registry"
                + (f"; {guess}" if guess else "")
                + " (tags are UNS paths enterprise/site/area/line/cell/asset/tag)"
            )
        return info

    def get(self, path: str) -> TagInfo | None:
        """The tag at ``path``, or None."""
        return self._tags.get(path)

    def __contains__(self, path: object) -> bool:
        return path in self._tags

    def __len__(self) -> int:
        return len(self._tags)

    def __iter__(self) -> Iterator[TagInfo]:
        return iter(self.tags())

    # --- tree --------------------------------------------------------------------------

    def _asset_paths(self) -> set[str]:
        paths = {info.asset for info in self._tags.values()}
        paths |= {path for path in self._marks if path.count("/") == _ASSET_DEPTH - 1}
        return paths

    def tree(self) -> dict[str, Any]:
        """The asset tree as nested dicts, for the HTTP API and UIs.

        Shape::

            {"enterprises": [node, ...], "assets": <count>, "tags": <count>}
            node = {"name", "level", "path", "state", "reason", "since", "decided_by",
                    "children": [node, ...], "tags": [tag dict, ...]}

        Children and tags are sorted by name; only asset nodes hold tags. Nodes that were
        marked online/stale but hold no tags yet are included.
        """
        children: dict[str, set[str]] = {"": set()}
        node_paths = {info.asset for info in self._tags.values()} | set(self._marks)
        for path in node_paths:
            segments = path.split("/")
            for depth in range(1, len(segments) + 1):
                parent = "/".join(segments[: depth - 1])
                node = "/".join(segments[:depth])
                children.setdefault(parent, set()).add(node)
                children.setdefault(node, set())
        by_asset: dict[str, list[TagInfo]] = {}
        for info in self._tags.values():
            by_asset.setdefault(info.asset, []).append(info)

        def render(path: str) -> dict[str, Any]:
            depth = path.count("/")
            status = self.status(path)
            return {
                "name": path.rsplit("/", 1)[-1],
                "level": ISA95_LEVELS[depth],
                "path": path,
                "state": status.state,
                "reason": status.reason,
                "since": status.since,
                "decided_by": status.decided_by,
                "children": [render(child) for child in sorted(children[path])],
                "tags": [info.to_dict() for info in sorted(by_asset.get(path, ()), key=_by_name)],
            }

        return {
            "enterprises": [render(path) for path in sorted(children[""])],
            "assets": len(self._asset_paths()),
            "tags": len(self._tags),
        }


def _by_name(info: TagInfo) -> str:
    return info.name


def _new_tag(path: str) -> TagInfo:
    parsed = parse_uns_topic(path)
    segments = parsed.segments
    return TagInfo(path=path, asset="/".join(segments[:_ASSET_DEPTH]), name=parsed.tag)


def _node_path(path: str) -> str:
    """``path`` validated as a node of the tree (1..6 UNS segments), without edge slashes."""
    if not isinstance(path, str):
        raise UnsTopicError(f"a node path is a string, not {type(path).__name__}")
    segments = path.strip("/").split("/")
    if not path.strip("/") or len(segments) > _ASSET_DEPTH:
        raise UnsTopicError(
            f"{path!r} is not a node of the asset tree: give 1 to {_ASSET_DEPTH} segments "
            f"of {'/'.join(ISA95_LEVELS)}, e.g. acme/lyon/packaging/line-1"
        )
    for level, segment in zip(ISA95_LEVELS, segments, strict=False):
        if not _SEGMENT.fullmatch(segment):
            hint = " (use lowercase)" if segment.lower() != segment else ""
            raise UnsTopicError(
                f"{level} segment {segment!r} of {path!r} is invalid: "
                f"use only a-z, 0-9, '_' and '-'{hint}"
            )
    return "/".join(segments)
