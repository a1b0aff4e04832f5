"""The federation's metadata: landing page, collections, one collection, one item, queryables.

A mixin of :class:`eolab.catalog._federation.Federation`, which owns the members and their client;
apart so the search fan-out reads on its own.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from eolab.catalog._members import Member, MemberError, error_reason
from eolab.catalog._params import _CONTROL
from eolab.catalog._rewrite import rewrite_collection, rewrite_item, split_id
from eolab.errors import EolabError

STAC_VERSION = "1.0.0"

CONFORMANCE = sorted([
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#fields",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-operators",
])


class NotFound(EolabError):
    """HTTP 404."""


class Unavailable(EolabError):
    """The one member a request needs did not answer: HTTP 503 naming it."""


def _check_path_id(text: str, what: str) -> None:
    """An id that can name a resource at a member: not empty, not a path step, no control characters
    (a member asked for /collections/.. answers its landing page; for NUL, an error of its own)."""
    if not text or text in (".", "..") or _CONTROL.search(text):
        raise NotFound(f"{what} id {text!r} does not exist", hint="see /collections for the ids")


def _quote(text: str) -> str:

    return quote(text, safe="|")


class MetadataMixin:
    """Metadata routes of the federation (uses ``self.members``, ``self.config``, ``self.client``)."""

    async def _info(self, member: Member, timeout: float):
        try:
            return await member.ensure_info(timeout)
        except MemberError:
            return None

    # ------------------------------------------------------------------ metadata
    def landing(self, base: str) -> dict:
        base = base.rstrip("/")
        links = [
            {"rel": "self", "type": "application/json", "href": base + "/"},
            {"rel": "root", "type": "application/json", "href": base + "/"},
            {"rel": "conformance", "type": "application/json", "href": base + "/conformance"},
            {"rel": "data", "type": "application/json", "href": base + "/collections"},
            {"rel": "search", "type": "application/geo+json", "href": base + "/search", "method": "GET"},
            {"rel": "search", "type": "application/geo+json", "href": base + "/search", "method": "POST"},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables", "type": "application/schema+json",
             "href": base + "/queryables"},
            {"rel": "service-desc", "type": "application/vnd.oai.openapi+json;version=3.0", "href": base + "/api"},
            {"rel": "service-doc", "type": "text/html", "href": base + "/api.html"},
        ]
        return {"type": "Catalog", "stac_version": STAC_VERSION, "id": "eolab-broker",
                "title": "eolab federated catalogue",
                "description": "One STAC API over the members: " + ", ".join(self.members),
                "conformsTo": CONFORMANCE, "links": links,
                # The longest a search waits for its answer (at the door, in the members' queues,
                # then its budget): clients set their read timeout from it (eolab's does).
                "eolab:answer_within_s": self.answer_within}

    async def collections(self, base: str) -> dict:
        base = base.rstrip("/")
        missing: dict[str, str] = {}
        asked = []
        for member in self.members.values():
            reason = member.skip_reason()
            if reason:
                missing[member.id] = reason
            else:
                asked.append(member)
        results = await self._gather_info(asked, self.total_timeout)
        found = []
        for member, info in zip(asked, results):
            if isinstance(info, MemberError):
                missing[member.id] = info.reason
                continue
            for collection in info.collections.values():
                found.append(rewrite_collection(collection, member.id, member.base_url, base))
        return {"collections": found, "numberMatched": len(found), "numberReturned": len(found),
                "links": [{"rel": "self", "type": "application/json", "href": base + "/collections"},
                          {"rel": "root", "type": "application/json", "href": base + "/"},
                          {"rel": "parent", "type": "application/json", "href": base + "/"}],
                "federation:missing": sorted(missing), "eolab:member_errors": missing}

    async def _gather_info(self, members: list[Member], budget: float) -> list:
        async def one(member: Member):
            try:
                return await member.ensure_info(min(member.timeout, budget))
            except MemberError as error:
                return error

        try:
            return await asyncio.wait_for(asyncio.gather(*(one(m) for m in members)), budget)
        except TimeoutError:
            return [m.info if m.info else MemberError(m.id, "timeout", error_reason("timeout", "no answer in time"))
                    for m in members]

    def _member_for(self, collection_id: str) -> tuple[Member, str]:
        owner, local = split_id(collection_id)
        if owner is None or owner not in self.members:
            raise NotFound(f"collection {collection_id!r} does not exist",
                           hint="broker collection ids are 'member|collection', see /collections")
        _check_path_id(local, "collection")
        return self.members[owner], local

    async def _member_get(self, member: Member, path: str) -> Any:
        reason = member.skip_reason()
        if reason:
            raise Unavailable(f"member {member.id!r} is {reason}")
        try:
            return await member.get_json(path, timeout=member.timeout)
        except MemberError as error:
            if error.kind == "not_found":
                raise NotFound(f"{path} does not exist at member {member.id!r}") from None
            member.mark_failed(error, path)
            raise Unavailable(f"member {member.id!r} did not answer: {error.reason}") from None

    async def collection(self, base: str, collection_id: str) -> dict:
        member, local = self._member_for(collection_id)
        info = await self._info(member, member.timeout)
        if info is not None and info.collections is not None and local in info.collections:
            body = info.collections[local]
        else:
            body = await self._member_get(member, f"/collections/{_quote(local)}")
            if not isinstance(body, dict) or body.get("id") != local:
                raise Unavailable(f"member {member.id!r} answered a malformed collection")
        return rewrite_collection(body, member.id, member.base_url, base)

    async def item(self, base: str, collection_id: str, item_id: str) -> dict:
        member, local = self._member_for(collection_id)
        _check_path_id(item_id, "item")
        body = await self._member_get(member, f"/collections/{_quote(local)}/items/{_quote(item_id)}")
        if not isinstance(body, dict) or body.get("type") != "Feature":
            raise Unavailable(f"member {member.id!r} answered a malformed item")
        return rewrite_item(body, member.id, member.base_url, base)

    async def queryables(self, base: str, collection_id: str | None = None) -> dict:
        generic = {
            "$schema": "https://json-schema.org/draft/2019-09/schema",
            "$id": f"{base.rstrip('/')}/queryables", "type": "object", "title": "Queryables",
            "properties": {
                "id": {"title": "Item ID", "type": "string"},
                "collection": {"title": "Collection ID (member|collection)", "type": "string"},
                "geometry": {"title": "Geometry", "$ref": "https://geojson.org/schema/Geometry.json"},
                "datetime": {"title": "Acquired", "type": "string", "format": "date-time"},
            },
            "additionalProperties": True,
        }
        if collection_id is None:
            return generic
        member, local = self._member_for(collection_id)
        try:
            body = await self._member_get(member, f"/collections/{_quote(local)}/queryables")
        except NotFound:
            return generic
        if isinstance(body, dict):
            body = {**body, "$id": f"{base.rstrip('/')}/collections/{_quote(collection_id)}/queryables"}
            return body
        return generic
