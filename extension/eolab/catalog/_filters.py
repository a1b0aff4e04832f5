"""Filter, sort, fields and query parameters of an item search: CQL2 checked against the operators
members can take, sort keys and field paths. Pure; rejections are :class:`BadParameter` (HTTP 400)."""

from __future__ import annotations

import json
import math
from typing import Any

from eolab.catalog._params import (
    _FIELD_NAME,
    CQL2_OPS,
    CRS84,
    DEFAULT_FIELDS,
    ITEM_TOP_LEVEL,
    MAX_FILTER_DEPTH,
    MAX_FILTER_NODES,
    QUERY_OPS,
    BadParameter,
    _finite,
    check_text,
    load_json,
    parse_geometry,
)
from eolab.catalog._types import check_filter_types, check_query_types


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
            _check_text_nesting(value)  # the parser recurses: 2,000 nested brackets crash the process
            expr = cql2.parse_text(value)
        else:
            if not isinstance(value, str):
                value = _between_compat(value)
            text = value if isinstance(value, str) else json.dumps(value)
            if isinstance(value, str):
                load_json(value, "filter")  # limits, and a clearer message than the parser's for non-JSON
            expr = cql2.parse_json(text)
        result = expr.to_json()
        if isinstance(result, dict):
            check_filter(result)  # size and depth first: validation's cost grows with the nesting
        expr.validate()
    except ValueError as exc:  # json.JSONDecodeError
        raise BadParameter("filter", f"is not valid JSON: {exc}") from None
    except (cql2.ParseError, cql2.ValidationError) as exc:
        first = str(exc).strip().splitlines()
        raise BadParameter("filter", f"is not valid {lang}: {' '.join(first[:6])[:300]}") from None
    if not isinstance(result, dict):
        raise BadParameter("filter", "must be a boolean expression")
    check_filter_types(result)
    return result


def _check_text_nesting(text: str) -> None:
    """Refuse CQL2 text nesting deeper than the JSON checks allow, before the parser sees it:
    brackets (outside quoted strings) and runs of NOT."""
    import re

    depth = deepest = 0
    quote = None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    nots = max((len(m.group(0).split()) for m in re.finditer(r"(?i)(?:\bNOT\b\s*)+", text)), default=0)
    if deepest + nots > 2 * MAX_FILTER_DEPTH:
        raise BadParameter("filter", f"nests operators more than {MAX_FILTER_DEPTH} deep",
                           hint="flatten it (a AND b AND c takes one level)")


def check_filter(expr: Any) -> None:
    """Refuse what a member cannot be trusted to reject cleanly: unknown operators (function calls),
    control characters in literals and property names, 3D geometries and bounding boxes."""
    stack, nodes = [(expr, 0)], 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_FILTER_NODES:
            raise BadParameter("filter", f"has more than {MAX_FILTER_NODES} terms")
        if isinstance(node, str):
            check_text(node, "filter")
        elif isinstance(node, float) and not math.isfinite(node):
            raise BadParameter("filter", "holds a number that is not finite")
        elif isinstance(node, list):  # a literal array nests like an operator (its validation costs alike)
            if depth >= MAX_FILTER_DEPTH:
                raise BadParameter("filter", f"nests operators or arrays more than {MAX_FILTER_DEPTH} deep",
                                   hint="flatten it (a AND b AND c takes one level)")
            stack.extend((n, depth + 1) for n in node)
        elif isinstance(node, dict):
            if "op" in node:
                op = node["op"]
                if not isinstance(op, str) or op.lower() not in CQL2_OPS:
                    raise BadParameter("filter", f"operator or function {str(op)[:40]!r} is not supported",
                                       hint="CQL2 operators only (comparison, like, between, in, isNull, "
                                            "casei, accenti, s_*, t_*, a_*, arithmetic)")
                if depth >= MAX_FILTER_DEPTH:
                    raise BadParameter("filter", f"nests operators more than {MAX_FILTER_DEPTH} deep",
                                       hint="flatten it (a AND b AND c takes one level)")
                args = node.get("args") or []
                stack.extend((n, depth + 1) for n in (args if isinstance(args, list) else [args]))
            elif "property" in node:
                stack.append((node["property"], depth))
            elif "bbox" in node:
                if not isinstance(node["bbox"], list) or len(node["bbox"]) != 4:
                    raise BadParameter("filter", "a BBOX literal needs 4 values (3D boxes are not supported)")
                for value in node["bbox"]:
                    _finite(value, "filter")
            elif "type" in node and ("coordinates" in node or "geometries" in node):
                parse_geometry(node, "filter")
            else:
                stack.extend((n, depth) for n in node.values())


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
        if name == "properties":  # an object, not a value: pgstac answers HTTP 500
            raise BadParameter("sortby", "'properties' holds all of an item's properties, not one value",
                               hint="sort by one of them, e.g. properties.datetime or eo:cloud_cover")
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
    check_query_types(value)
    return value
