"""Item-search parameters: parse GET query strings and POST bodies into one canonical query.

Pure functions. Every rejection is a :class:`BadParameter` naming the parameter, which the broker
turns into HTTP 400. The canonical :class:`SearchQuery` is what the broker routes, fingerprints
(for paging tokens) and turns into each member's own request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from eolab.catalog._filters import (  # noqa: F401  (re-exported)
    _between_compat,
    check_filter,
    field_path,
    parse_fields,
    parse_filter,
    parse_query,
    parse_sortby,
)
from eolab.catalog._params import (  # noqa: F401  (re-exported: the query's vocabulary)
    _CONTROL,
    _DEPTH,
    _FIELD_NAME,
    _RFC3339,
    CQL2_OPS,
    CRS84,
    DEFAULT_FIELDS,
    DEFAULT_LIMIT,
    DEFAULT_SORTBY,
    GEOMETRY_TYPES,
    ITEM_TOP_LEVEL,
    MAX_BODY_BYTES,
    MAX_FILTER_NODES,
    MAX_INT_DIGITS,
    MAX_JSON_DEPTH,
    MAX_LIMIT,
    QUERY_OPS,
    BadParameter,
    _big_int,
    _check_positions,
    _depth_ok,
    _finite,
    _interval_text,
    _no_constant,
    _TooBig,
    check_text,
    load_json,
    parse_bbox,
    parse_datetime,
    parse_geometry,
    parse_interval,
    parse_limit,
    parse_string_list,
)


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
        check_text(raw["datetime"], "datetime")
        # members get the instant(s) as parsed, in one plain form: not text only the broker's parser took
        values["datetime"] = _interval_text(values["interval"])
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

