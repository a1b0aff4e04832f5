"""Item-search parameters: parse GET query strings and POST bodies into one canonical query.

Pure functions. Every rejection is a :class:`BadParameter` naming the parameter, which the broker
turns into HTTP 400. The canonical :class:`SearchQuery` is what the broker routes, fingerprints
(for paging tokens) and turns into each member's own request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from eolab.errors import EolabError

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 10
# The broker's default order: newest first, ties broken by id (then by member, see _merge).
DEFAULT_SORTBY: tuple[tuple[str, str], ...] = (("properties.datetime", "desc"), ("id", "desc"))
CRS84 = ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "http://www.opengis.net/def/crs/EPSG/0/4326")
QUERY_OPS = {"eq", "neq", "lt", "lte", "gt", "gte", "startsWith", "endsWith", "contains", "in"}
GEOMETRY_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
                  "GeometryCollection"}

# The Fields extension's default set (rule 1 of its include/exclude semantics): what an item keeps
# when ``fields`` is empty, and the set an ``exclude`` is taken from when ``include`` is null or [].
# start/end_datetime are there for items whose ``datetime`` is null (ranges); absent ones are skipped.
DEFAULT_FIELDS = ("type", "stac_version", "id", "geometry", "bbox", "links", "assets", "properties.datetime",
                  "properties.start_datetime", "properties.end_datetime", "collection")
# Top-level Item members; any other bare field name means ``properties.<name>``.
ITEM_TOP_LEVEL = ("id", "collection", "geometry", "bbox", "type", "links", "assets", "stac_version",
                  "stac_extensions", "properties")

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_FIELD_NAME = re.compile(r"^[A-Za-z0-9_:.\-]+$")
# C0/C1 control characters (NUL first of all): no member database can be trusted to store or compare them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# CQL2 1.0 operators (basic, advanced comparison, case/accent, spatial, temporal, array, arithmetic) as the
# cql2 package spells them in CQL2 JSON. The package parses any other name as a function call, which
# members answer with errors of their own (HTTP 500 from pgstac): the broker refuses it instead.
CQL2_OPS = frozenset({
    "and", "or", "not", "=", "<>", "<", "<=", ">", ">=", "like", "between", "in", "isnull", "casei", "accenti",
    "s_intersects", "s_equals", "s_disjoint", "s_touches", "s_within", "s_overlaps", "s_crosses", "s_contains",
    "t_after", "t_before", "t_contains", "t_disjoint", "t_during", "t_equals", "t_finishedby", "t_finishes",
    "t_intersects", "t_meets", "t_metby", "t_overlappedby", "t_overlaps", "t_startedby", "t_starts",
    "a_equals", "a_contains", "a_containedby", "a_overlaps", "+", "-", "*", "/", "%", "^", "div",
})
MAX_FILTER_NODES = 2_000


class BadParameter(EolabError):
    """A search parameter is invalid: HTTP 400 naming ``parameter``."""

    def __init__(self, parameter: str, message: str, hint: str | None = None):
        super().__init__(f"{parameter}: {message}", hint=hint)
        self.parameter = parameter


@dataclass(frozen=True)
class SearchQuery:
    """One item search, independent of GET/POST spelling."""

    collections: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None
    bbox: tuple[float, ...] | None = None
    intersects: dict | None = None
    datetime: str | None = None
    interval: tuple[dt.datetime | None, dt.datetime | None] | None = None
    limit: int = DEFAULT_LIMIT
    filter: dict | None = None               # CQL2 JSON (text filters are converted)
    sortby: tuple[tuple[str, str], ...] | None = None
    fields: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # (include, exclude)
    query: dict | None = None
    token: str | None = None
    extra: dict = field(default_factory=dict, compare=False)  # unknown POST members, ignored

    @property
    def effective_sortby(self) -> tuple[tuple[str, str], ...]:
        return self.sortby or DEFAULT_SORTBY

    def canonical(self) -> dict:
        """The query as a JSON-able dict without ``token`` and ``limit`` (which may change between pages)."""
        return {
            "collections": list(self.collections) if self.collections is not None else None,
            "ids": list(self.ids) if self.ids is not None else None,
            "bbox": list(self.bbox) if self.bbox is not None else None,
            "intersects": self.intersects,
            "datetime": _interval_text(self.interval),
            "filter": self.filter,
            "sortby": [list(s) for s in self.effective_sortby],
            "fields": [list(self.fields[0]), list(self.fields[1])] if self.fields is not None else None,
            "query": self.query,
        }

    def fingerprint(self) -> str:
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def with_collections(self, collections: list[str] | None) -> "SearchQuery":
        return replace(self, collections=tuple(collections) if collections is not None else None)

    def to_post_body(self) -> dict:
        """The broker-level POST body (used for the broker's own ``next`` links)."""
        body: dict[str, Any] = {}
        if self.collections is not None:
            body["collections"] = list(self.collections)
        if self.ids is not None:
            body["ids"] = list(self.ids)
        if self.bbox is not None:
            body["bbox"] = list(self.bbox)
        if self.intersects is not None:
            body["intersects"] = self.intersects
        if self.datetime is not None:
            body["datetime"] = self.datetime
        body["limit"] = self.limit
        if self.filter is not None:
            body["filter"] = self.filter
            body["filter-lang"] = "cql2-json"
        if self.sortby is not None:
            body["sortby"] = [{"field": f, "direction": d} for f, d in self.sortby]
        if self.fields is not None:
            body["fields"] = {"include": list(self.fields[0]), "exclude": list(self.fields[1])}
        if self.query is not None:
            body["query"] = self.query
        return body


# --------------------------------------------------------------------------- single parameters

def parse_datetime(text: str, parameter: str = "datetime") -> dt.datetime:
    """One RFC 3339 date-time (with time zone) → aware UTC datetime."""
    match = _RFC3339.match(text.strip())
    if not match:
        raise BadParameter(parameter, f"{text!r} is not an RFC 3339 date-time",
                           hint="e.g. 2026-05-01T00:00:00Z, with a time and a time zone")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    frac, zone = match.group(7), match.group(8)
    micro = int(round(float(frac) * 1_000_000)) if frac else 0
    leap = second == 60
    try:
        if zone in ("Z", "z"):
            tz = dt.timezone.utc
        else:
            sign = 1 if zone[0] == "+" else -1
            hours, minutes = int(zone[1:3]), int(zone[4:6])
            if hours > 23 or minutes > 59:
                raise ValueError("time zone offset out of range")
            tz = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
        stamp = dt.datetime(year, month, day, hour, minute, 59 if leap else second, min(micro, 999_999), tzinfo=tz)
    except ValueError as exc:
        raise BadParameter(parameter, f"{text!r} is not a valid date-time ({exc})") from None
    return stamp.astimezone(dt.timezone.utc)


def parse_interval(text: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``datetime``: an instant, or ``start/end`` with ``..`` or empty for an open end."""
    if not isinstance(text, str) or not text.strip():
        raise BadParameter("datetime", "must be a non-empty string")
    parts = text.split("/")
    if len(parts) == 1:
        instant = parse_datetime(parts[0])
        return instant, instant
    if len(parts) != 2:
        raise BadParameter("datetime", f"{text!r} has more than one '/'", hint="use start/end")
    start_text, end_text = (p.strip() for p in parts)
    start = None if start_text in ("", "..") else parse_datetime(start_text)
    end = None if end_text in ("", "..") else parse_datetime(end_text)
    if start is None and end is None:
        raise BadParameter("datetime", f"{text!r}: at least one end of the interval must be given")
    if start is not None and end is not None and start > end:
        raise BadParameter("datetime", f"{text!r}: start is after end")
    return start, end


def _interval_text(interval: tuple[dt.datetime | None, dt.datetime | None] | None) -> str | None:
    if interval is None:
        return None
    start, end = interval
    fmt = (lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if d else "..")  # noqa: E731
    if start is not None and start == end:
        return fmt(start)
    return f"{fmt(start)}/{fmt(end)}"


MAX_JSON_DEPTH = 32          # nesting of objects/arrays in a request body or JSON parameter
MAX_INT_DIGITS = 24          # integers longer than this are refused (no coordinate or limit needs them)
MAX_BODY_BYTES = 1_000_000


def _big_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _TooBig(f"an integer with {len(text)} digits")
    return int(text)


def _no_constant(text: str) -> Any:
    raise _TooBig(f"{text} (not JSON)")


class _TooBig(ValueError):
    pass


def _depth_ok(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return False
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return True


def load_json(data: str | bytes, parameter: str) -> Any:
    """JSON from a client, with limits: size, nesting depth, integer length; NaN/Infinity refused."""
    if len(data) > MAX_BODY_BYTES:
        raise BadParameter(parameter, f"is larger than {MAX_BODY_BYTES} bytes")
    try:
        value = json.loads(data, parse_int=_big_int, parse_constant=_no_constant)
    except _TooBig as exc:
        raise BadParameter(parameter, f"holds {exc}") from None
    except RecursionError:
        raise BadParameter(parameter, f"is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise BadParameter(parameter, "is not valid JSON") from None
    if not _depth_ok(value):
        raise BadParameter(parameter, f"is nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def check_text(value: str, parameter: str) -> str:
    """Refuse control characters (NUL etc.) in a string that would reach a member."""
    found = _CONTROL.search(value)
    if found:
        raise BadParameter(parameter, f"contains the control character U+{ord(found.group()):04X}",
                           hint="ids, collections and filter strings cannot hold control characters")
    return value


def _finite(value: Any, parameter: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadParameter(parameter, f"{str(value)[:40]!r} is not a number")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        raise BadParameter(parameter, "holds a number too large to be a coordinate") from None
    if not math.isfinite(number):
        raise BadParameter(parameter, f"{value!r} is not a finite number")
    return number


def parse_bbox(value: Any, *, post: bool = False) -> tuple[float, ...]:
    if isinstance(value, str) and post:
        raise BadParameter("bbox", "must be a JSON array of numbers in a POST body")
    if isinstance(value, str):
        try:
            numbers = [float(v) for v in value.split(",")]
        except ValueError:
            raise BadParameter("bbox", f"{value!r} is not a comma-separated list of numbers") from None
    elif isinstance(value, (list, tuple)):
        numbers = list(value)
    else:
        raise BadParameter("bbox", "must be 4 or 6 numbers")
    numbers = [_finite(v, "bbox") for v in numbers]
    if len(numbers) == 6:
        raise BadParameter("bbox", "3D bounding boxes (6 values) are not supported",
                           hint="give west,south,east,north")
    if len(numbers) != 4:
        raise BadParameter("bbox", f"has {len(numbers)} values, needs 4")
    west, south, east, north = numbers
    for lon in (west, east):
        if not -180 <= lon <= 180:
            raise BadParameter("bbox", f"longitude {lon} is outside [-180, 180]")
    for lat in (south, north):
        if not -90 <= lat <= 90:
            raise BadParameter("bbox", f"latitude {lat} is outside [-90, 90]")
    if south > north:
        raise BadParameter("bbox", "south edge is north of the north edge")
    return tuple(numbers)


def _check_positions(coords: Any, depth: int, parameter: str) -> None:
    if depth == 0:
        if isinstance(coords, list) and len(coords) == 3:
            raise BadParameter(parameter, "3D positions (with heights) are not supported")
        if not isinstance(coords, list) or len(coords) != 2:
            raise BadParameter(parameter, "a position must be 2 numbers")
        for v in coords:
            _finite(v, parameter)
        return
    if not isinstance(coords, list):
        raise BadParameter(parameter, "coordinates are not nested lists of the right depth")
    for part in coords:
        _check_positions(part, depth - 1, parameter)


_DEPTH = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2, "MultiPolygon": 3}


def parse_geometry(value: Any, parameter: str = "intersects", nested: bool = False) -> dict:
    if isinstance(value, str):
        value = load_json(value, parameter)
    if not isinstance(value, dict) or value.get("type") not in GEOMETRY_TYPES:
        raise BadParameter(parameter, "must be a GeoJSON geometry object",
                           hint=f"type one of {', '.join(sorted(GEOMETRY_TYPES))}")
    if value["type"] == "GeometryCollection":
        if nested:
            raise BadParameter(parameter, "a GeometryCollection cannot hold another one")
        members = value.get("geometries")
        if not isinstance(members, list) or not members:
            raise BadParameter(parameter, "GeometryCollection needs a non-empty 'geometries' list")
        for member in members:
            parse_geometry(member, parameter, nested=True)
        return value
    coords = value.get("coordinates")
    _check_positions(coords, _DEPTH[value["type"]], parameter)
    if value["type"] in ("LineString",) and len(coords) < 2:
        raise BadParameter(parameter, "a LineString needs at least 2 positions")
    if value["type"] == "Polygon":
        for ring in coords:
            if len(ring) < 4 or ring[0] != ring[-1]:
                raise BadParameter(parameter, "polygon rings need ≥ 4 positions and must be closed")
    if value["type"] == "MultiPolygon":
        for polygon in coords:
            for ring in polygon:
                if len(ring) < 4 or ring[0] != ring[-1]:
                    raise BadParameter(parameter, "polygon rings need ≥ 4 positions and must be closed")
    return value


def parse_limit(value: Any) -> int:
    if isinstance(value, bool):
        raise BadParameter("limit", f"{value!r} is not an integer")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise BadParameter("limit", f"{value!r} is not an integer") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise BadParameter("limit", f"{value!r} is not an integer")
    if value < 1:
        raise BadParameter("limit", f"{value} is less than 1")
    return min(value, MAX_LIMIT)


def parse_string_list(value: Any, parameter: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")] if value.strip() else []
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise BadParameter(parameter, "must be a list of strings")
    for item in items:
        if not isinstance(item, str) or not item:
            raise BadParameter(parameter, f"{item!r} is not a non-empty string")
        check_text(item, parameter)
    return tuple(items)


def parse_filter(value: Any, lang: str | None, crs: str | None, *, post: bool) -> dict:
    """CQL2 text or JSON → validated CQL2 JSON."""
    import cql2  # Rust-backed; imported here so eolab.catalog imports stay light

    if crs is not None and crs not in CRS84:
        raise BadParameter("filter-crs", f"{crs!r} is not supported", hint=f"use {CRS84[0]}")
    if lang is None:
        lang = "cql2-text" if isinstance(value, str) else "cql2-json"
    if lang not in ("cql2-text", "cql2-json"):
        raise BadParameter("filter-lang", f"{lang!r} is not supported", hint="use cql2-text or cql2-json")
    try:
        if lang == "cql2-text":
            if not isinstance(value, str):
                raise BadParameter("filter", "filter-lang is cql2-text but the filter is not a string")
            expr = cql2.parse_text(value)
        else:
            if not isinstance(value, str):
                value = _between_compat(value)
            text = value if isinstance(value, str) else json.dumps(value)
            if isinstance(value, str):
                load_json(value, "filter")  # limits, and a clearer message than the parser's for non-JSON
            expr = cql2.parse_json(text)
        expr.validate()
        result = expr.to_json()
    except ValueError as exc:  # json.JSONDecodeError
        raise BadParameter("filter", f"is not valid JSON: {exc}") from None
    except (cql2.ParseError, cql2.ValidationError) as exc:
        first = str(exc).strip().splitlines()
        raise BadParameter("filter", f"is not valid {lang}: {' '.join(first[:6])[:300]}") from None
    if not isinstance(result, dict):
        raise BadParameter("filter", "must be a boolean expression")
    check_filter(result)
    return result


def check_filter(expr: Any) -> None:
    """Refuse what a member cannot be trusted to reject cleanly: unknown operators (function calls),
    control characters in literals and property names, 3D geometries and bounding boxes."""
    stack, nodes = [expr], 0
    while stack:
        node = stack.pop()
        nodes += 1
        if nodes > MAX_FILTER_NODES:
            raise BadParameter("filter", f"has more than {MAX_FILTER_NODES} terms")
        if isinstance(node, str):
            check_text(node, "filter")
        elif isinstance(node, float) and not math.isfinite(node):
            raise BadParameter("filter", "holds a number that is not finite")
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if "op" in node:
                op = node["op"]
                if not isinstance(op, str) or op.lower() not in CQL2_OPS:
                    raise BadParameter("filter", f"operator or function {str(op)[:40]!r} is not supported",
                                       hint="CQL2 operators only (comparison, like, between, in, isNull, "
                                            "casei, accenti, s_*, t_*, a_*, arithmetic)")
                stack.extend(node.get("args") or [])
            elif "property" in node:
                stack.append(node["property"])
            elif "bbox" in node:
                if not isinstance(node["bbox"], list) or len(node["bbox"]) != 4:
                    raise BadParameter("filter", "a BBOX literal needs 4 values (3D boxes are not supported)")
                for value in node["bbox"]:
                    _finite(value, "filter")
            elif "type" in node and ("coordinates" in node or "geometries" in node):
                parse_geometry(node, "filter")
            else:
                stack.extend(node.values())


def _between_compat(expr: Any) -> Any:
    """Accept the pre-1.0 CQL2 JSON form ``between(p, [lo, hi])`` as ``between(p, lo, hi)``."""
    if isinstance(expr, list):
        return [_between_compat(e) for e in expr]
    if not isinstance(expr, dict):
        return expr
    out = {k: _between_compat(v) for k, v in expr.items()}
    args = out.get("args")
    if out.get("op") == "between" and isinstance(args, list) and len(args) == 2 and \
            isinstance(args[1], list) and len(args[1]) == 2:
        out["args"] = [args[0], *args[1]]
    return out


def parse_sortby(value: Any) -> tuple[tuple[str, str], ...]:
    terms: list[tuple[str, str]] = []
    if isinstance(value, str):
        for part in value.split(","):
            part = part.strip()
            direction = "asc"
            if part[:1] in "+-" and part:
                direction = "desc" if part[0] == "-" else "asc"
                part = part[1:]
            terms.append((part, direction))
    elif isinstance(value, list):
        for entry in value:
            if not isinstance(entry, dict) or not isinstance(entry.get("field"), str):
                raise BadParameter("sortby", "each entry needs a 'field' string")
            direction = entry.get("direction", "asc")
            if direction not in ("asc", "desc"):
                raise BadParameter("sortby", f"direction {direction!r} is not 'asc' or 'desc'")
            terms.append((entry["field"], direction))
    else:
        raise BadParameter("sortby", "must be a list of {field, direction} or '+a,-b'")
    if not terms:
        raise BadParameter("sortby", "is empty")
    for name, _ in terms:
        if not _FIELD_NAME.match(name):
            raise BadParameter("sortby", f"{name!r} is not a field name")
    return tuple(terms)


def field_path(name: str) -> str:
    """A field name as a dotted path in the item: bare property names get ``properties.``."""
    return name if name.split(".")[0] in ITEM_TOP_LEVEL else f"properties.{name}"


def parse_fields(value: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``fields`` → (include, exclude), with the Fields extension (v1.0.0) semantics made explicit.

    Both empty means the default set (rule 1); only ``include`` means those fields (rule 2); only
    ``exclude`` means the whole item minus those (rule 3). A POST ``exclude`` with ``include``
    given as null or [] is taken from the *default* set (rule 4): it is returned here as
    include = the default fields the excludes do not remove, so the rest of the broker (member
    requests, paging fingerprints, ``apply_fields``) needs no fourth case. GET cannot spell an
    empty include, so ``fields=-geometry`` is rule 3.
    """
    include: list[str] = []
    exclude: list[str] = []
    empty_include = False
    if isinstance(value, str):
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            if part[0] == "-":
                exclude.append(part[1:])
            else:
                include.append(part.lstrip("+"))
    elif isinstance(value, dict):
        for key, target in (("include", include), ("exclude", exclude)):
            entries = value.get(key) or []
            if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
                raise BadParameter("fields", f"'{key}' must be a list of strings")
            target.extend(entries)
        empty_include = "include" in value and not value["include"]
    else:
        raise BadParameter("fields", "must be {include: [...], exclude: [...]} or 'a,-b'")
    for name in include + exclude:
        if not _FIELD_NAME.match(name):
            raise BadParameter("fields", f"{name!r} is not a field name")
    if empty_include and exclude:
        removed = [field_path(e) for e in exclude]
        include = [d for d in DEFAULT_FIELDS if not any(d == r or d.startswith(r + ".") for r in removed)]
        include = include or ["id"]  # everything default excluded: still not rule 3 (the whole item)
    return tuple(include), tuple(exclude)


def parse_query(value: Any) -> dict:
    if isinstance(value, str):
        value = load_json(value, "query")
    if not isinstance(value, dict):
        raise BadParameter("query", "must be an object {property: {operator: value}}")
    for prop, ops in value.items():
        check_text(prop, "query")
        if not isinstance(ops, dict) or not ops:
            raise BadParameter("query", f"{prop!r} needs an object of operators")
        for op, operand in ops.items():
            if op not in QUERY_OPS:
                raise BadParameter("query", f"operator {op!r} is unknown", hint=f"use {', '.join(sorted(QUERY_OPS))}")
            if op == "in" and not isinstance(operand, list):
                raise BadParameter("query", f"{prop!r}: 'in' needs a list")
            if op in ("startsWith", "endsWith", "contains") and not isinstance(operand, str):
                raise BadParameter("query", f"{prop!r}: {op!r} needs a string")
            for literal in (operand if isinstance(operand, list) else [operand]):
                if isinstance(literal, str):
                    check_text(literal, "query")
                elif isinstance(literal, (int, float)) and not isinstance(literal, bool):
                    _finite(literal, "query")
                elif literal is not None and not isinstance(literal, bool):
                    raise BadParameter("query", f"{prop!r}: {op!r} takes strings, numbers or booleans")
    return value


# --------------------------------------------------------------------------- whole requests

def _build(raw: Mapping[str, Any], *, post: bool) -> SearchQuery:
    values: dict[str, Any] = {}
    if raw.get("collections") is not None:
        values["collections"] = parse_string_list(raw["collections"], "collections")
    if raw.get("ids") is not None:
        values["ids"] = parse_string_list(raw["ids"], "ids")
    if raw.get("bbox") not in (None, ""):
        values["bbox"] = parse_bbox(raw["bbox"], post=post)
    if raw.get("intersects") not in (None, ""):
        values["intersects"] = parse_geometry(raw["intersects"])
    if "bbox" in values and "intersects" in values:
        raise BadParameter("bbox", "bbox and intersects cannot be used together")
    if raw.get("datetime") not in (None, ""):
        if not isinstance(raw["datetime"], str):
            raise BadParameter("datetime", "must be a string")
        values["interval"] = parse_interval(raw["datetime"])
        values["datetime"] = check_text(raw["datetime"], "datetime")
    if raw.get("limit") not in (None, ""):
        values["limit"] = parse_limit(raw["limit"])
    if raw.get("filter") not in (None, ""):
        lang = raw.get("filter-lang", raw.get("filter_lang"))
        crs = raw.get("filter-crs", raw.get("filter_crs"))
        if lang is not None and not isinstance(lang, str):
            raise BadParameter("filter-lang", "must be a string")
        values["filter"] = parse_filter(raw["filter"], lang, crs, post=post)
    if raw.get("sortby") not in (None, ""):
        values["sortby"] = parse_sortby(raw["sortby"])
    if post and "fields" in raw and raw["fields"] is None:
        raise BadParameter("fields", "must be an object {include: [...], exclude: [...]}, not null")
    if raw.get("fields") is not None:
        values["fields"] = parse_fields(raw["fields"])
    if raw.get("query") not in (None, ""):
        values["query"] = parse_query(raw["query"])
    if raw.get("token") not in (None, ""):
        if not isinstance(raw["token"], str):
            raise BadParameter("token", "must be a string")
        values["token"] = raw["token"]
    return SearchQuery(**values)


def parse_get(params: Mapping[str, str]) -> SearchQuery:
    """GET /search query parameters (strings)."""
    return _build(params, post=False)


def parse_post(body: Any) -> SearchQuery:
    """POST /search JSON body."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadParameter("body", "must be a JSON object")
    return _build(body, post=True)
