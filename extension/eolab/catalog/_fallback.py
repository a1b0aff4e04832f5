"""What each member can do (from its conformance) and what the broker does for it when it cannot.

Pure. ``filter`` and ``query`` are applied by the broker to items of members that lack them;
``fields`` is always applied by the broker (members that support it are sent a widened version so
the broker still sees the sort keys); ``sortby`` other than the default is refused for members
without sort support, because the broker cannot re-sort a member's stream across pages.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eolab.catalog._merge import field_value
from eolab.catalog._query import DEFAULT_FIELDS

# Simple strings every item keeps when ``include`` is given (the extension allows always returning
# "simple string fields like id and type"): they keep the entity an identifiable STAC Item of a
# known version, and ``collection`` says which member it came from.
ALWAYS_FIELDS = ("id", "type", "stac_version", "collection")


def _has(conforms_to: list[str], pattern: str) -> bool:
    regex = re.compile(pattern)
    return any(regex.search(c) for c in conforms_to)


@dataclass(frozen=True)
class Capabilities:
    item_search: bool = True
    post: bool = True
    filter: bool = False
    filter_text: bool = False
    filter_json: bool = False
    sort: bool = False
    fields: bool = False
    query: bool = False

    @classmethod
    def from_conformance(cls, conforms_to: list[str], get_only: bool = False) -> "Capabilities":
        conforms_to = [c for c in conforms_to if isinstance(c, str)]
        has_filter = _has(conforms_to, r"item-search#filter|ogcapi-features-3/1\.0/conf/(features-)?filter")
        text = _has(conforms_to, r"cql2/1\.0/conf/cql2-text")
        json_ = _has(conforms_to, r"cql2/1\.0/conf/cql2-json")
        if has_filter and not (text or json_):
            json_ = True  # older servers advertise the extension only
        return cls(
            item_search=_has(conforms_to, r"/item-search$") or not conforms_to,
            post=not get_only,
            filter=has_filter and (json_ or text),
            filter_text=has_filter and text,
            filter_json=has_filter and json_,
            sort=_has(conforms_to, r"item-search#sort"),
            fields=_has(conforms_to, r"item-search#fields"),
            query=_has(conforms_to, r"item-search#query"),
        )

    def can_filter(self, method: str) -> bool:
        if not self.filter:
            return False
        return self.filter_json or (method == "GET" and self.filter_text)


# --------------------------------------------------------------------------- filter (CQL2)

def crosses_antimeridian(bbox: tuple[float, ...] | None) -> bool:
    return bbox is not None and len(bbox) == 4 and bbox[0] > bbox[2]


def antimeridian_split(bbox: tuple[float, ...]) -> dict:
    """A bbox crossing the antimeridian (west > east, STAC semantics) as a MultiPolygon of its two halves."""
    west, south, east, north = bbox

    def box(w: float, e: float) -> list:
        return [[[w, south], [e, south], [e, north], [w, north], [w, south]]]

    return {"type": "MultiPolygon", "coordinates": [box(west, 180.0), box(-180.0, east)]}


def item_box(item: dict) -> tuple[float, float, float, float] | None:
    """An item's bbox (its own, or the extent of its geometry's positions)."""
    box = item.get("bbox")
    if isinstance(box, list) and len(box) in (4, 6) and all(isinstance(v, (int, float)) for v in box):
        return (box[0], box[1], box[2], box[3]) if len(box) == 4 else (box[0], box[1], box[3], box[4])
    geometry = item.get("geometry")
    if isinstance(geometry, dict):
        from eolab.catalog._routing import _coords

        try:
            points = _coords(geometry)
        except (TypeError, IndexError, ValueError):
            return None
        if points:
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            return min(xs), min(ys), max(xs), max(ys)
    return None


def bbox_matcher(bbox: tuple[float, ...]) -> Callable[[dict], bool]:
    """Items whose bbox meets ``bbox`` (either may cross the antimeridian); items without one are dropped."""
    from eolab.catalog._routing import boxes_meet

    def match(item: dict) -> bool:
        box = item_box(item)
        return box is not None and boxes_meet(box, bbox)

    return match


def filter_matcher(expr_json: dict) -> Callable[[dict], bool]:
    """A predicate evaluating a CQL2 JSON filter on a (broker-side) item."""
    import cql2

    expr = cql2.parse_json(json.dumps(expr_json))

    def match(item: dict) -> bool:
        try:
            return bool(expr.matches(item))
        # cql2 raises a plain Exception when a property is missing ("could not reduce to
        # boolean"): SQL semantics, the item does not match.
        except Exception:  # noqa: BLE001 - the library's only error type for evaluation
            return False

    return match


def filter_text(expr_json: dict) -> str:
    import cql2

    return cql2.parse_json(json.dumps(expr_json)).to_text()


# --------------------------------------------------------------------------- query extension

def _query_op(op: str, have: Any, want: Any) -> bool:
    if have is None:
        return op == "neq" and want is not None
    try:
        if op == "eq":
            return have == want
        if op == "neq":
            return have != want
        if op == "lt":
            return have < want
        if op == "lte":
            return have <= want
        if op == "gt":
            return have > want
        if op == "gte":
            return have >= want
    except TypeError:
        return False
    if op == "in":
        return have in want
    if not isinstance(have, str):
        return False
    if op == "startsWith":
        return have.startswith(want)
    if op == "endsWith":
        return have.endswith(want)
    if op == "contains":
        return want in have
    return False


def query_matcher(query: dict) -> Callable[[dict], bool]:
    def match(item: dict) -> bool:
        for prop, ops in query.items():
            have = field_value(item, prop)
            if not all(_query_op(op, have, want) for op, want in ops.items()):
                return False
        return True

    return match


# --------------------------------------------------------------------------- fields extension

def _get_path(item: dict, path: str) -> tuple[bool, Any]:
    node: Any = item
    parts = path.split(".")
    # "properties.eo:cloud_cover" style; keys may contain ':' but not '.'
    for i, part in enumerate(parts):
        if not isinstance(node, dict):
            return False, None
        if part in node:
            node = node[part]
            continue
        rest = ".".join(parts[i:])
        if rest in node:
            return True, node[rest]
        return False, None
    return True, node


def _set_path(target: dict, path: str, value: Any, owned: set[int] | None = None) -> None:
    """Set ``path`` in ``target``; containers met on the way that ``target`` does not own (objects of
    the cached member page, set by an earlier include) are copied first, so they are never changed."""
    parts = path.split(".")
    for part in parts[:-1]:
        child = target.get(part)
        if child is None:
            child = target[part] = {}
            if owned is not None:
                owned.add(id(child))
        elif isinstance(child, dict) and owned is not None and id(child) not in owned:
            child = target[part] = dict(child)
            owned.add(id(child))
        if not isinstance(child, dict):
            return
        target = child
    target[parts[-1]] = value


def _del_path(target: dict, path: str) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        target = target.get(part)
        if not isinstance(target, dict):
            return
    target.pop(parts[-1], None)


def _resolve(name: str, item: dict) -> str:
    """Bare property names (``eo:cloud_cover``) mean ``properties.eo:cloud_cover``."""
    top = name.split(".")[0]
    if top in item or top in DEFAULT_FIELDS:
        return name
    return f"properties.{name}"


def apply_fields(item: dict, include: tuple[str, ...], exclude: tuple[str, ...]) -> dict:
    """The STAC fields extension on one (already rewritten) item."""
    if not include and not exclude:
        include = DEFAULT_FIELDS
    if include:
        out: dict = {}
        owned: set[int] = set()  # containers of ``out`` that are its own, not the cached item's
        for name in tuple(include) + ALWAYS_FIELDS:
            found, value = _get_path(item, _resolve(name, item))
            if found:
                # an exclude below deletes inside what is set here: the values are the cached
                # member page's own objects, which other requests are served from
                _set_path(out, _resolve(name, item), copy.deepcopy(value) if exclude else value, owned)
    else:
        out = copy.deepcopy(item)
    resolved_include = {_resolve(n, item) for n in include}
    for name in exclude:
        path = _resolve(name, item)
        if path in resolved_include or path == "id" or any(i.startswith(path + ".") for i in resolved_include):
            continue  # include wins, and a more specific include survives a broader exclude
        _del_path(out, path)
    return out


def member_fields(include: tuple[str, ...], exclude: tuple[str, ...],
                  needed: tuple[str, ...]) -> dict:
    """The fields sent to a member: the user's, widened so the broker keeps what it needs."""
    keep = needed + ALWAYS_FIELDS + ("links",)
    inc = list(include) if include or exclude else list(DEFAULT_FIELDS)
    if inc:
        inc += [name for name in keep if name not in inc]
    exc = [e for e in exclude if e not in keep and not any(k.startswith(e + ".") for k in keep + tuple(inc))]
    return {"include": inc, "exclude": exc}
