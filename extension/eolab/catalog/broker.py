"""The federated catalogue broker: one STAC API (FastAPI) over every enabled member.

Run it with uvicorn's factory mode; the configuration comes from ``EOLAB_CATALOG_CONFIG`` and the
other ``EOLAB_*`` variables read by :func:`eolab.config.load_config`::

    EOLAB_CATALOG_CONFIG=hub_config/catalog.yaml \\
        python -m uvicorn eolab.catalog.broker:create_app --factory --host 127.0.0.1 --port 8720

Readiness: ``GET /_health`` (200 with each member's health). Every search answer names the members
that could not contribute in ``federation:missing`` and says why in ``eolab:member_errors``
(``timeout: …``, ``rate limited: …``, ``refused this query: …``, ``down: …``, ``malformed answer: …``,
``out of order: …``); members a page ended early waiting for (busy under load, still in the walk)
are in ``eolab:member_waiting``. Request bodies and JSON parameters are size-, depth- and
number-limited (see ``_query.load_json``). Optional environment (:class:`eolab.settings.ServiceSettings`):
``EOLAB_BROKER_TOKEN_SECRET`` (HMAC key for paging tokens when the config sets none; give every
worker/replica the same one), ``EOLAB_BROKER_PAGE_CACHE_TTL`` (s, default 30; 0 disables),
``EOLAB_BROKER_INFO_TTL`` (s, member conformance/collections cache, default 60),
``EOLAB_BROKER_MAX_SEARCHES`` (searches one broker process works on at once, default the config's
``broker.max_searches``, 24). Searches beyond that wait at the door (``broker.max_queued``, up to
``total_timeout``); beyond that the broker answers 503 with ``Retry-After``: clients should wait
that long and send the same request again.

This is the thin shell: parsing is in ``_query``, merging in ``_merge``, tokens in ``_paging``,
member I/O in ``_members`` and the fan-out in ``_federation``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, JSONResponse

from eolab.catalog._federation import (
    CONFORMANCE,
    EveryMemberFailed,
    Federation,
    MemberRejected,
    NotFound,
    Overloaded,
    Unavailable,
)
from eolab.catalog._query import BadParameter, load_json, parse_get, parse_post
from eolab.config import StackConfig, load_config

log = logging.getLogger("eolab.broker")

try:
    import orjson

    def _dumps(content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except TypeError:  # e.g. an integer beyond 64 bits echoed from a request body
            return json.dumps(content, separators=(",", ":")).encode()
except ImportError:  # pragma: no cover
    def _dumps(content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()


class StacJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return _dumps(content)


class GeoJSON(StacJSON):
    media_type = "application/geo+json"


def _error(status: int, code: str, description: str, **extra: Any) -> StacJSON:
    return StacJSON({"code": code, "description": description, **extra}, status_code=status)


def _param(name: str, description: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


SEARCH_PARAMS = [
    _param("collections", "Comma-separated collection ids ('member|collection' or plain: every member holding it)"),
    _param("ids", "Comma-separated item ids"),
    _param("bbox", "west,south,east,north (or 6 values with heights)"),
    _param("intersects", "GeoJSON geometry (URL-encoded JSON)"),
    _param("datetime", "RFC 3339 date-time or interval start/end with '..' for open ends"),
    _param("limit", "Items per page (1-10000)", {"type": "integer", "minimum": 1, "maximum": 10000}),
    _param("filter", "CQL2 filter (text by default)"),
    _param("filter-lang", "cql2-text or cql2-json", {"type": "string", "enum": ["cql2-text", "cql2-json"]}),
    _param("filter-crs", "CRS of geometries in the filter (CRS84 only)"),
    _param("sortby", "e.g. -properties.datetime,+id"),
    _param("fields", "e.g. id,properties.eo:cloud_cover,-assets"),
    _param("query", "query extension object (JSON)"),
    _param("token", "paging token from a 'next' link"),
]
# OpenAPI links (what a client, or a stateful fuzzer, can do with an answer): open its first item;
# for POST searches, the next page (the 'next' link's body: self, root, then next in every page).
FIRST_ITEM = {"operationId": "getItem", "description": "the first item of this page",
              "parameters": {"collection_id": "$response.body#/features/0/collection",
                             "item_id": "$response.body#/features/0/id"}}
NEXT_POST_PAGE = {"operationId": "postSearch", "description": "the next page: the body of the 'next' link",
                  "requestBody": "$response.body#/links/2/body"}
ITEMS_PARAMS = [p for p in SEARCH_PARAMS if p["name"] not in ("collections", "ids", "intersects")]
SEARCH_BODY = {
    "required": False,
    "content": {"application/json": {"schema": {
        "type": "object",
        "properties": {
            "collections": {"type": "array", "items": {"type": "string"}},
            "ids": {"type": "array", "items": {"type": "string"}},
            "bbox": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 6},
            "intersects": {"type": "object"},
            "datetime": {"type": "string"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 10000},
            "filter": {"oneOf": [{"type": "object"}, {"type": "string"}]},
            "filter-lang": {"type": "string", "enum": ["cql2-json", "cql2-text"]},
            "sortby": {"type": "array", "items": {"type": "object", "properties": {
                "field": {"type": "string"}, "direction": {"type": "string", "enum": ["asc", "desc"]}},
                "required": ["field"]}},
            "fields": {"type": "object", "properties": {
                "include": {"type": "array", "items": {"type": "string"}},
                "exclude": {"type": "array", "items": {"type": "string"}}}},
            "query": {"type": "object"},
            "token": {"type": "string"},
        },
    }}},
}
FEATURE_COLLECTION = {"200": {"description": "Items", "content": {"application/geo+json": {"schema": {
    "type": "object", "required": ["type", "features"],
    "properties": {"type": {"const": "FeatureCollection"}, "features": {"type": "array"},
                   "federation:missing": {"type": "array", "items": {"type": "string"}}}}}}},
    "400": {"description": "A parameter is invalid: the description names it"},
    "503": {"description": "The broker is at its admission limit: retry after the seconds in Retry-After"}}


def _with_links(responses: dict, links: dict) -> dict:
    ok = {**responses["200"], "links": links}
    return {**responses, "200": ok}


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _self(request: Request) -> str:
    """The requested URL as the client wrote it ('|' in collection ids kept)."""
    query = request.url.query
    return _base(request) + request.url.path.replace("%7C", "|").replace("%7c", "|") + (f"?{query}" if query else "")


def _get_next(request: Request):
    def link(token: str) -> dict:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "token"] + [("token", token)]
        href = f"{_base(request)}{request.url.path}?{urlencode(params)}"
        return {"rel": "next", "type": "application/geo+json", "method": "GET", "href": href}
    return link


def create_app(config: StackConfig | None = None, *, transport: Any = None, secret: str | None = None,
               page_cache_ttl: float | None = None, info_ttl: float | None = None) -> FastAPI:
    """The broker app. ``config`` defaults to :func:`eolab.config.load_config` (env-driven).

    ``transport`` (an httpx transport) replaces the network to the members, e.g. in tests.
    """
    config = config or load_config()
    from eolab import settings

    env = settings.services()
    if page_cache_ttl is None:
        page_cache_ttl = config.broker.page_cache_ttl if env.broker_page_cache_ttl is None else env.broker_page_cache_ttl
    if info_ttl is None:
        info_ttl = config.broker.info_ttl if env.broker_info_ttl is None else env.broker_info_ttl
    if env.service_token:  # started by the stack: demo members want the token from other accounts
        for member in config.demo_members:
            member.headers.setdefault("Authorization", f"Bearer {env.service_token}")
    federation = Federation(config, transport=transport, secret=secret, page_cache_ttl=page_cache_ttl,
                            info_ttl=info_ttl)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        federation.ensure_open()
        federation._spawn(federation.warm_up())
        yield
        await federation.aclose()

    app = FastAPI(title="eolab federated catalogue", version="1.0.0", openapi_url=None, docs_url=None,
                  redoc_url=None, lifespan=lifespan,
                  description="A STAC API over the catalogue members; collection ids are 'member|collection'.")
    app.state.federation = federation
    app.state.config = config
    if env.service_token:
        from eolab._guard import ServiceGuard

        app.add_middleware(ServiceGuard, tokens=[env.service_token])

    # ---- errors: STAC style {code, description}, 400 naming the parameter, never a traceback page
    @app.exception_handler(BadParameter)
    async def _bad_parameter(request: Request, exc: BadParameter):
        return _error(400, "BadRequest", str(exc), parameter=exc.parameter)

    @app.exception_handler(MemberRejected)
    async def _rejected(request: Request, exc: MemberRejected):
        return _error(400, "MemberRejected", str(exc))

    @app.exception_handler(EveryMemberFailed)
    async def _every_member_failed(request: Request, exc: EveryMemberFailed):
        return _error(502, "EveryMemberFailed", str(exc), **{"federation:missing": sorted(exc.errors),
                                                            "eolab:member_errors": exc.errors})

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound):
        return _error(404, "NotFound", str(exc))

    @app.exception_handler(Unavailable)
    async def _unavailable(request: Request, exc: Unavailable):
        return _error(503, "MemberUnavailable", str(exc))

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded):
        response = _error(503, "Overloaded", str(exc), retry_after=exc.retry_after)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return _error(400, "BadRequest", f"{where}: {first.get('msg', 'invalid')}", parameter=where)

    # ---- core
    @app.get("/", response_class=StacJSON, summary="Landing page")
    async def landing(request: Request):
        return StacJSON(federation.landing(_base(request)))

    @app.get("/conformance", response_class=StacJSON, summary="Conformance classes")
    async def conformance():
        return StacJSON({"conformsTo": CONFORMANCE})

    @app.get("/_health", response_class=StacJSON, summary="Readiness and member health")
    async def health():
        members = {m.id: {"healthy": m.health.ok, "reason": m.health.reason or None,
                          "known": m.info is not None} for m in federation.members.values()}
        return StacJSON({"status": "UP", "members": members})

    @app.get("/_mgmt/ping", response_class=StacJSON, include_in_schema=False)
    async def ping():
        return StacJSON({"message": "PONG"})

    @app.get("/api", include_in_schema=False)
    async def openapi():
        return StacJSON(app.openapi(), media_type="application/vnd.oai.openapi+json;version=3.0")

    @app.get("/api.html", include_in_schema=False)
    async def docs():
        return HTMLResponse("<!doctype html><title>eolab broker API</title>"
                            "<p>OpenAPI description: <a href='api'>/api</a></p>")

    # ---- collections
    @app.get("/collections", response_class=StacJSON, summary="Every member's collections")
    async def collections(request: Request):
        return StacJSON(await federation.collections(_base(request)))

    @app.get("/collections/{collection_id}", response_class=StacJSON, summary="One collection")
    async def collection(request: Request, collection_id: str):
        return StacJSON(await federation.collection(_base(request), collection_id))

    @app.get("/collections/{collection_id}/queryables", summary="Queryables of one collection")
    async def collection_queryables(request: Request, collection_id: str):
        body = await federation.queryables(_base(request), collection_id)
        return StacJSON(body, media_type="application/schema+json")

    @app.get("/queryables", summary="Queryables")
    async def queryables(request: Request):
        return StacJSON(await federation.queryables(_base(request)), media_type="application/schema+json")

    @app.get("/collections/{collection_id}/items", response_class=GeoJSON, summary="Items of one collection",
             openapi_extra={"parameters": ITEMS_PARAMS}, responses=FEATURE_COLLECTION)
    async def items(request: Request, collection_id: str):
        federation._member_for(collection_id)  # 404 for unknown collections
        params = {k: v for k, v in request.query_params.items() if k not in ("collections", "ids", "intersects")}
        query = parse_get(params).with_collections([collection_id])
        body = await federation.search(query, _base(request), _get_next(request), _self(request))
        return GeoJSON(body)

    @app.get("/collections/{collection_id}/items/{item_id}", response_class=GeoJSON, summary="One item",
             operation_id="getItem")
    async def item(request: Request, collection_id: str, item_id: str):
        return GeoJSON(await federation.item(_base(request), collection_id, item_id))

    # ---- search
    @app.get("/search", response_class=GeoJSON, summary="Search all members (GET)", operation_id="getSearch",
             openapi_extra={"parameters": SEARCH_PARAMS},
             responses=_with_links(FEATURE_COLLECTION, {"firstItem": FIRST_ITEM}))
    async def search_get(request: Request):
        query = parse_get(dict(request.query_params))
        body = await federation.search(query, _base(request), _get_next(request), _self(request))
        return GeoJSON(body)

    @app.post("/search", response_class=GeoJSON, summary="Search all members (POST)", operation_id="postSearch",
              openapi_extra={"requestBody": SEARCH_BODY},
              responses=_with_links(FEATURE_COLLECTION, {"firstItem": FIRST_ITEM, "nextPage": NEXT_POST_PAGE}))
    async def search_post(request: Request):
        raw = await request.body()
        payload = load_json(raw, "body") if raw.strip() else {}
        payload = {} if payload is None else payload
        query = parse_post(payload)

        def next_link(token: str) -> dict:
            return {"rel": "next", "type": "application/geo+json", "method": "POST",
                    "href": f"{_base(request)}/search", "body": {**payload, "token": token}, "merge": False}

        body = await federation.search(query, _base(request), next_link, _self(request))
        return GeoJSON(body)

    return app
