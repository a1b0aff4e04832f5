"""Which members a search asks, and for which of their collections. Pure.

A member is not asked when it cannot hold any requested collection, or when none of its
collections' extents meets the search's bbox/intersects and datetime. A member whose collections
are unknown (its /collections failed earlier) is asked anyway: only a member that answers can be
ruled out. Members that are currently unhealthy are not asked and are reported missing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from eolab.catalog._query import BadParameter, SearchQuery
from eolab.catalog._rewrite import split_id


@dataclass
class MemberView:
    id: str
    collections: dict[str, dict] | None      # local id → collection JSON (None: unknown)
    skip_reason: str | None = None


@dataclass
class Plan:
    targets: dict[str, list[str] | None] = field(default_factory=dict)  # member → local collections
    missing: dict[str, str] = field(default_factory=dict)


def _coords(geometry: Any) -> list[tuple[float, float]]:
    if geometry.get("type") == "GeometryCollection":
        return [p for g in geometry.get("geometries", []) for p in _coords(g)]
    out: list[tuple[float, float]] = []

    def walk(node: Any) -> None:
        if isinstance(node, list) and node and isinstance(node[0], (int, float)):
            out.append((float(node[0]), float(node[1])))
        elif isinstance(node, list):
            for part in node:
                walk(part)

    walk(geometry.get("coordinates"))
    return out


def search_box(query: SearchQuery) -> tuple[float, float, float, float] | None:
    if query.bbox is not None:
        b = query.bbox
        return (b[0], b[1], b[2], b[3]) if len(b) == 4 else (b[0], b[1], b[3], b[4])
    if query.intersects is not None:
        points = _coords(query.intersects)
        if points:
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            return min(xs), min(ys), max(xs), max(ys)
    return None


def _lon_ranges(west: float, east: float) -> list[tuple[float, float]]:
    return [(west, east)] if west <= east else [(west, 180.0), (-180.0, east)]


def boxes_meet(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    if a[1] > b[3] or b[1] > a[3]:
        return False
    return any(x0 <= y1 and y0 <= x1 for x0, x1 in _lon_ranges(a[0], a[2]) for y0, y1 in _lon_ranges(b[0], b[2]))


def _stamp(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.timezone.utc)


def extent_meets(collection: dict, query: SearchQuery) -> bool:
    """False only when the collection's extent certainly misses the search area or time."""
    extent = collection.get("extent") if isinstance(collection, dict) else None
    if not isinstance(extent, dict):
        return True
    box = search_box(query)
    try:
        spatial = extent["spatial"]["bbox"][0]
        coll_box = (spatial[0], spatial[1], spatial[2], spatial[3]) if len(spatial) == 4 else \
            (spatial[0], spatial[1], spatial[3], spatial[4])
        coll_box = tuple(float(v) for v in coll_box)
    except (KeyError, IndexError, TypeError, ValueError):
        coll_box = None
    if box is not None and coll_box is not None and not boxes_meet(box, coll_box):
        return False
    if query.interval is not None:
        try:
            start, end = extent["temporal"]["interval"][0][:2]
        except (KeyError, IndexError, TypeError, ValueError):
            return True
        c_start, c_end = _stamp(start), _stamp(end)
        q_start, q_end = query.interval
        if q_end is not None and c_start is not None and q_end < c_start:
            return False
        if q_start is not None and c_end is not None and q_start > c_end:
            return False
    return True


def plan_search(query: SearchQuery, members: list[MemberView], known_ids: set[str] | None = None) -> Plan:
    """Decide whom to ask. ``known_ids``: all configured member ids (to tell disabled from unknown)."""
    plan = Plan()
    by_id = {m.id: m for m in members}
    wanted: dict[str, list[str] | None] = {}
    if query.collections is None:
        wanted = {m.id: None for m in members}
    else:
        for cid in query.collections:
            owner, local = split_id(cid)
            if owner is not None:
                if owner not in by_id:
                    state = "not enabled" if known_ids and owner in known_ids else "unknown"
                    raise BadParameter("collections", f"{cid!r}: member {owner!r} is {state}",
                                       hint=f"members: {', '.join(sorted(by_id))}")
                targets = [by_id[owner]]
            else:
                targets = [m for m in members if m.collections is None or local in m.collections]
            for member in targets:
                entry = wanted.setdefault(member.id, [])
                if entry is not None and local not in entry:
                    entry.append(local)
    for member_id, locals_ in wanted.items():
        member = by_id[member_id]
        if member.collections is not None:
            candidates = list(member.collections) if locals_ is None else locals_
            meeting = [c for c in candidates if c not in member.collections or
                       extent_meets(member.collections[c], query)]
            if not meeting:
                continue  # cannot hold anything asked for: not asked, not missing
            if locals_ is None and len(meeting) < len(candidates):
                locals_ = meeting
            elif locals_ is not None:
                locals_ = meeting
        if member.skip_reason:
            plan.missing[member_id] = member.skip_reason
            continue
        plan.targets[member_id] = locals_
    return plan
