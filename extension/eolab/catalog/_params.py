"""Single item-search parameters: parsing, validation and the limits that keep hostile input away
from the members. Pure. Every rejection is a :class:`BadParameter` naming the parameter (HTTP 400)."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
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
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$")


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
# Nesting of CQL2 operators: cql2's validation costs ~10 MB and ~8 ms per level (a chain of 500 NOTs
# took 23 GB); real filters nest 3–5 deep.
MAX_FILTER_DEPTH = 12


class BadParameter(EolabError):
    """A search parameter is invalid: HTTP 400 naming ``parameter``."""

    def __init__(self, parameter: str, message: str, hint: str | None = None):
        super().__init__(f"{parameter}: {message}", hint=hint)
        self.parameter = parameter


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
        return stamp.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError) as exc:  # 9999-12-31T23:59:59-01:00 is past year 9999 in UTC
        raise BadParameter(parameter, f"{text!r} is not a valid date-time ({exc})") from None


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
    fmt = (lambda d: f"{d.year:04d}" + d.strftime("-%m-%dT%H:%M:%S.%fZ") if d else "..")  # noqa: E731 (%Y does not pad years < 1000)
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
        # A 3D box (STAC allows it) is searched by its footprint: items are 2D, and members, whose
        # databases may not take six values, only ever see the four.
        west, south, bottom, east, north, top = numbers
        if bottom > top:
            raise BadParameter("bbox", "the bottom of the 3D box is above its top")
        numbers = [west, south, east, north]
    if len(numbers) != 4:
        raise BadParameter("bbox", f"has {len(numbers)} values, needs 4 (or 6 for a 3D box)")
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















