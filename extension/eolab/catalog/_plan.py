"""What one member is asked and what its page means: the member's own request for a query (with what
the broker must do itself), its page parsed, the cache of pages for continuing walks, and what a
member's failure means for the request. Pure apart from the clock."""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eolab.catalog._fallback import (
    Capabilities,
    antimeridian_split,
    bbox_matcher,
    crosses_antimeridian,
    filter_matcher,
    filter_text,
    member_fields,
    query_matcher,
)
from eolab.catalog._health import MemberError, error_reason
from eolab.catalog._members import Member
from eolab.catalog._merge import MemberPage
from eolab.catalog._paging import compact_next, expand_next
from eolab.catalog._query import SearchQuery
from eolab.catalog._rewrite import localize_filter
from eolab.errors import EolabError

BASIC_QUERY_OPS = {"eq", "neq", "lt", "lte", "gt", "gte"}

TOP_LEVEL = ("id", "collection", "geometry", "bbox", "type", "links", "assets", "stac_version")


class MemberRejected(EolabError):
    """A member refused a search the broker cannot do in its place: HTTP 400 naming the member."""


class EveryMemberFailed(EolabError):
    """No member gave an item, and those that failed answered this search with a server error: HTTP
    502 naming them (a 200 with no features would read as "nothing found" to a STAC client)."""

    def __init__(self, errors: dict[str, str], found_nothing: list[str] | None = None):
        said = "; ".join(f"{m}: {r}" for m, r in sorted(errors.items()))
        others = f"; {', '.join(found_nothing)} found nothing" if found_nothing else ""
        super().__init__(f"the members failed this search with a server error ({said}){others}",
                         hint="a filter comparing a field with a value of another type does this (a text field "
                              "with a number, or the reverse): see /collections/{id}/queryables and the items' "
                              "properties; other searches are answered as usual")
        self.errors = errors


class PageCache:
    """Member pages by request, for continuing walks; LRU with a time to live."""

    def __init__(self, ttl: float, max_entries: int = 512, clock: Callable[[], float] = time.monotonic):
        self.ttl, self.max_entries, self.clock = ttl, max_entries, clock
        self._data: OrderedDict[str, tuple[float, MemberPage]] = OrderedDict()

    def get(self, key: str) -> MemberPage | None:
        entry = self._data.get(key)
        if entry is None or self.clock() > entry[0]:
            self._data.pop(key, None)
            return None
        self._data.move_to_end(key)
        return entry[1]

    def put(self, key: str, page: MemberPage) -> None:
        if self.ttl <= 0:
            return
        self._data[key] = (self.clock() + self.ttl, page)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)


@dataclass
class MemberPlan:
    """How one member is asked in one walk: its first-page request and what the broker does for it."""

    member: Member
    locals_: list[str] | None
    method: str
    href: str
    payload: dict
    accept: Callable[[dict], bool] | None
    key: str = ""                        # the query's fingerprint: tells requests apart for health
    default_collection: str | None = None  # for items that come without ``collection``

    def request_for(self, ref: Any) -> tuple[str, str, dict]:
        if ref is None:
            return self.method, self.href, self.payload
        return expand_next(ref, self.payload, self.method)


def _prop_path(name: str) -> str:
    return name if name.startswith("properties.") or name in TOP_LEVEL else f"properties.{name}"


def member_request(query: SearchQuery, member_id: str, locals_: list[str] | None, caps: Capabilities,
                   limit: int, base_url: str) -> tuple[str, str, dict, Callable[[dict], bool] | None]:
    """The first-page request for one member, and the broker-side predicate it needs (or None)."""
    method = "POST" if caps.post else "GET"
    checks: list[Callable[[dict], bool]] = []
    body: dict[str, Any] = {"limit": limit}
    if locals_ is not None:
        body["collections"] = list(locals_)
    if query.ids is not None:
        body["ids"] = list(query.ids)
    if crosses_antimeridian(query.bbox):
        # Two boxes, one each side of the antimeridian; members that read it as one box from east to
        # west (or ignore it) are corrected by the broker's own check.
        body["intersects"] = antimeridian_split(query.bbox)
        checks.append(bbox_matcher(query.bbox))
    elif query.bbox is not None:
        body["bbox"] = list(query.bbox)
    if query.intersects is not None:
        body["intersects"] = query.intersects
    if query.datetime is not None:
        body["datetime"] = query.datetime
    if query.filter is not None:
        if caps.can_filter(method):
            body["filter"] = localize_filter(query.filter, member_id)
            body["filter-lang"] = "cql2-json"
        else:
            checks.append(filter_matcher(query.filter))
    if query.query is not None:
        # Members commonly implement only the comparison operators (stac-fastapi rejects the rest).
        basic = all(op in BASIC_QUERY_OPS for ops in query.query.values() for op in ops)
        if caps.query and basic:
            body["query"] = query.query
        else:
            checks.append(query_matcher(query.query))
    sortby = query.effective_sortby
    if caps.sort:
        body["sortby"] = [{"field": f, "direction": d} for f, d in sortby]
    if query.fields is not None and caps.fields and not checks:
        needed = tuple(_prop_path(f) for f, _ in sortby)
        body["fields"] = member_fields(tuple(map(_prop_path, query.fields[0])), query.fields[1], needed)
    accept = None
    if checks:
        accept = (lambda item: all(check(item) for check in checks))
    href = f"{base_url}/search"
    if method == "POST":
        return method, href, body, accept
    return method, href, _as_params(body, caps), accept


def _as_params(body: dict, caps: Capabilities) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in body.items():
        if key in ("collections", "ids", "bbox"):
            params[key] = ",".join(str(v) for v in value)
        elif key in ("intersects", "query"):
            params[key] = json.dumps(value, separators=(",", ":"))
        elif key == "filter":
            if caps.filter_text:
                params["filter"], params["filter-lang"] = filter_text(value), "cql2-text"
            else:
                params["filter"], params["filter-lang"] = json.dumps(value, separators=(",", ":")), "cql2-json"
        elif key == "filter-lang":
            continue
        elif key == "sortby":
            params[key] = ",".join(("-" if s["direction"] == "desc" else "+") + s["field"] for s in value)
        elif key == "fields":
            params[key] = ",".join(list(value["include"]) + ["-" + e for e in value["exclude"]])
        else:
            params[key] = str(value)
    return params


def parse_member_page(member_id: str, body: Any, plan: MemberPlan) -> MemberPage:
    if not isinstance(body, dict) or not isinstance(body.get("features"), list):
        raise MemberError(member_id, "malformed", error_reason("malformed", "search answer is not a FeatureCollection"))
    features = body["features"]
    if not all(isinstance(f, dict) for f in features):
        raise MemberError(member_id, "malformed",
                          error_reason("malformed", "search answer holds features that are not objects"))
    if plan.default_collection is not None:
        features = [f if isinstance(f.get("collection"), str) and f["collection"]
                    else {**f, "collection": plan.default_collection} for f in features]
    nxt = None
    for link in body.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "next" and isinstance(link.get("href"), str):
            nxt = compact_next(link, plan.payload, plan.method)
            break
    matched = body.get("numberMatched")
    if matched is None and isinstance(body.get("context"), dict):
        matched = body["context"].get("matched")
    return MemberPage(items=features, next_ref=nxt,
                      number_matched=matched if isinstance(matched, int) and not isinstance(matched, bool) else None)


# Broker pages in a row that may end waiting for one busy member before it leaves the walk. Waiting
# happens only while the member answers other requests (see Member.busy), so this bounds a walk's
# patience under overload, not the time a hung member can hold it.
MAX_WAITS = 30


def failure_outcome(error: MemberError, *, first_page: bool, waits: int) -> str:
    """What one member failure does to the search (pure).

    ``reject``: the whole search is a 400 (the member refused the query itself on its first page);
    ``empty``: the member holds nothing for it (404 on a first page); ``wait``: the page ends early
    and the walk keeps the member's cursor (no answer in time, e.g. under load: it is asked again on
    the next page, up to ``MAX_WAITS`` pages in a row); ``missing``: the member leaves the walk and
    is named in ``federation:missing`` with the reason (down, rate limited after the retries, a 5xx
    for this query, a malformed answer).
    """
    if error.kind == "rejected" and first_page:
        return "reject"
    if error.kind == "not_found" and first_page:
        return "empty"
    if error.transient and waits < MAX_WAITS:
        return "wait"
    return "missing"

