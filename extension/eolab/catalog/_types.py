"""Type checks of a search's filter and query against the types STAC fixes for its fields. Pure.

Members answer a comparison of a number field with a word, a division by zero or a spatial test of a
number field with HTTP 500 (pgstac) or, worse, with an empty page; the broker then had nothing to tell
the user but that every member failed. These are the user's mistakes, so they are refused here as
HTTP 400 naming the field, its type and the value. Only what is certain is refused: fields whose type
the STAC specification or one of its extensions fixes, and literals. Unknown fields pass, and so do
number-like words for number fields and dates for date fields (pgstac casts them).

(cql2 validates the grammar, not types: it knows no field's type, so this small checker is ours.)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from eolab.catalog._params import BadParameter

# Field types fixed by the STAC item specification (common metadata) and its stable extensions
# (eo, view, sat, proj, sar, landsat, mgrs). A field a member declares differently breaks the spec.
FIELD_TYPES: dict[str, str] = {
    **dict.fromkeys(("id", "collection", "platform", "constellation", "mission", "title", "description",
                     "license", "sat:orbit_state", "sat:platform_international_designator", "proj:code",
                     "sar:instrument_mode", "sar:frequency_band", "sar:product_type", "sar:observation_direction",
                     "mgrs:latitude_band", "mgrs:grid_square", "landsat:scene_id",
                     "landsat:collection_category", "landsat:correction"), "string"),
    # landsat:wrs_path/wrs_row/collection_number are digits as text ("033"): pgstac compares them
    # with numbers too, so they are left out (unknown: anything passes)
    **dict.fromkeys(("eo:cloud_cover", "eo:snow_cover", "gsd", "view:off_nadir", "view:incidence_angle",
                     "view:azimuth", "view:sun_azimuth", "view:sun_elevation", "sat:absolute_orbit",
                     "sat:relative_orbit", "sat:anx_datetime_offset", "proj:epsg", "sar:center_frequency",
                     "sar:resolution_range", "sar:resolution_azimuth", "sar:pixel_spacing_range",
                     "sar:pixel_spacing_azimuth", "sar:looks_range", "sar:looks_azimuth", "sar:looks_equivalent_number",
                     "landsat:cloud_cover_land", "mgrs:utm_zone"), "number"),
    **dict.fromkeys(("datetime", "start_datetime", "end_datetime", "created", "updated", "published",
                     "expires", "unpublished"), "timestamp"),
    **dict.fromkeys(("instruments", "keywords", "sar:polarizations", "providers"), "array"),
    "geometry": "geometry",
}

_WORD = {"number": "a number", "string": "text", "timestamp": "a date-time", "geometry": "a geometry",
         "array": "an array", "boolean": "true/false", "interval": "an interval"}

_COMPARE = {"=", "<>", "<", "<=", ">", ">="}
_ARITHMETIC = {"+", "-", "*", "/", "%", "^", "div"}
_DIVIDE = {"/", "%", "div"}


def field_type(name: str) -> str | None:
    return FIELD_TYPES.get(name[len("properties."):] if name.startswith("properties.") else name)


def _kind(node: Any) -> str | None:
    """What a CQL2 JSON node evaluates to, where that is certain; None when unknown."""
    if isinstance(node, bool):
        return "boolean"
    if isinstance(node, (int, float)):
        return "number"
    if isinstance(node, str):
        return "string"
    if isinstance(node, list):
        return "array"
    if not isinstance(node, dict):
        return None
    if "property" in node:
        return field_type(str(node["property"]))
    if "timestamp" in node or "date" in node:
        return "timestamp"
    if "interval" in node:
        return "interval"
    if "bbox" in node or ("type" in node and ("coordinates" in node or "geometries" in node)):
        return "geometry"
    op = str(node.get("op", "")).lower()
    if op in _ARITHMETIC:
        return "number"
    if op in ("casei", "accenti"):
        return "string"
    return None


def _show(node: Any) -> str:
    if isinstance(node, dict) and "property" in node:
        kind = _kind(node)
        return f"{node['property']} ({_WORD[kind]})" if kind else str(node["property"])
    if isinstance(node, bool):
        return f"the boolean {str(node).lower()}"
    if isinstance(node, (int, float)):
        return f"the number {int(node) if float(node).is_integer() else node}"  # cql2 makes 5 into 5.0
    if isinstance(node, str):
        return f"the text {node[:60]!r}"
    kind = _kind(node)
    return _WORD[kind] if kind else "an expression"


def _number_like(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _date_like(text: str) -> bool:
    try:
        dt.datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _comparable(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka is None or kb is None or ka == kb:
        return True
    for typed, kind_word, fits in (("number", "string", _number_like), ("timestamp", "string", _date_like)):
        if {ka, kb} == {typed, kind_word}:
            word = a if ka == "string" else b
            return isinstance(word, str) and fits(word)  # a word the member casts ('20', '2026-05-01')
    return False


def _mismatch(parameter: str, a: Any, b: Any, how: str = "compared with") -> BadParameter:
    prop = a if isinstance(a, dict) and "property" in a else b if isinstance(b, dict) and "property" in b else None
    hint = None
    if prop is not None:
        kind = _kind(prop)
        example = {"number": "20", "string": "'sentinel-2a'", "timestamp": "TIMESTAMP('2026-05-01T00:00:00Z')",
                   "geometry": "POINT(19 47)"}.get(kind or "")
        if example:
            hint = f"{prop['property']} holds {_WORD[kind]}: compare it with {_WORD[kind]}, e.g. {example}"
    return BadParameter(parameter, f"{_show(a)} cannot be {how} {_show(b)}", hint=hint)


def _require(parameter: str, op: str, node: Any, allowed: tuple[str, ...]) -> None:
    kind = _kind(node)
    if kind is not None and kind not in allowed:
        raise BadParameter(parameter, f"{op.upper()} needs {' or '.join(_WORD[k] for k in allowed)}, "
                                      f"not {_show(node)}")


def check_filter_types(expr: Any, parameter: str = "filter") -> None:
    """Refuse comparisons, patterns, arithmetic and spatial/temporal/array tests whose operands'
    types certainly do not fit (see the module's docstring)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict) or "op" not in node:
            continue
        op = str(node["op"]).lower()
        args = node.get("args")
        args = args if isinstance(args, list) else [args]
        stack.extend(args)
        if op in _COMPARE and len(args) == 2:
            if not _comparable(args[0], args[1]):
                raise _mismatch(parameter, args[0], args[1])
        elif op == "between" and len(args) == 3:
            for bound in args[1:]:
                if not _comparable(args[0], bound):
                    raise _mismatch(parameter, args[0], bound)
        elif op == "in" and len(args) == 2 and isinstance(args[1], list):
            for value in args[1]:
                if not _comparable(args[0], value):
                    raise _mismatch(parameter, args[0], value, "matched against")
        elif op == "like" and args:
            _require(parameter, op, args[0], ("string",))
        elif op in _ARITHMETIC:
            for value in args:
                if isinstance(value, str) or _kind(value) not in (None, "number"):
                    raise BadParameter(parameter, f"arithmetic ({op}) needs numbers, not {_show(value)}")
            if op in _DIVIDE and len(args) == 2 and _kind(args[1]) == "number" \
                    and not isinstance(args[1], dict) and args[1] == 0:
                raise BadParameter(parameter, f"divides by zero ({op} 0)")
        elif op.startswith("t_"):
            for value in args:
                _require(parameter, op, value, ("timestamp", "interval"))
        elif op.startswith("s_"):
            for value in args:
                _require(parameter, op, value, ("geometry",))
        elif op.startswith("a_"):
            for value in args:
                _require(parameter, op, value, ("array",))


_QUERY_COMPARE = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def check_query_types(query: dict) -> None:
    """The query extension's ``{field: {op: value}}`` under the same rules, as the CQL2 it stands for."""
    for name, ops in query.items():
        prop = {"property": name}
        for op, value in ops.items():
            if op in _QUERY_COMPARE:
                check_filter_types({"op": _QUERY_COMPARE[op], "args": [prop, value]}, "query")
            elif op == "in":
                check_filter_types({"op": "in", "args": [prop, value]}, "query")
            else:  # startsWith, endsWith, contains: text operations
                _require("query", op, prop, ("string",))
