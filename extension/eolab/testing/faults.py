"""A small, real STAC API that can misbehave on purpose: for broker tests and benchmarks.

It serves synthetic items (or items loaded from files, e.g. real provider responses) from memory
with token paging, bbox/datetime/ids/collections, CQL2 filter and sortby, and can be told to:
add latency (``delay``), fail after N searches (``fault``: http500 | malformed | slow | close),
end pages early (``short_pages``), ignore ``limit`` (``page_size``), or advertise only core
item search (``conformance: core``, so the broker must filter for it). More misbehaviour:

- ``poison``: a string; any search whose request mentions it is answered HTTP 500 (a failure one
  request's content causes, like PostgreSQL choking on a value), every other search works;
- ``rate_limit``: ``{"pages": [0, 1], "times": 2, "retry_after": 1, "status": 429}``: the listed
  page numbers (0: first page) are refused that many times each with ``Retry-After`` first
  (``/_stats`` gives ``refusals`` and, per page number, when each search for it came: ``asked_at``);
- ``hang_after_headers``: seconds to stall after sending the status and headers of a search;
- ``capacity``: searches served at once; the others queue (with ``delay`` each: an overloaded
  member whose answers slow down with load);
- ``no_collection``: items come without ``collection``; ``repeat``: each page starts with the last
  item of the previous page again; ``text_sort``: properties are sorted as text (pgstac without
  queryables); ``bbox``: the area the synthetic items are spread over (``[w, s, e, n]``);
- ``labels``: items get a string property ``label`` (mixed case, punctuation, accents);
  ``collation: "linguistic"``: strings are sorted as a linguistic database collation does
  (case, accents and punctuation ignored), not by code point.

Run as a real server::

    EOLAB_FAKE_MEMBER='{"id": "m1", "n_items": 500}' \\
        python -m uvicorn eolab.testing.faults:create_app --factory --port 9001
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from eolab.catalog._merge import sort_key_function

FULL = [
    "https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features", "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#sort", "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json", "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
]
CORE = ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/collections",
        "https://api.stacspec.org/v1.0.0/item-search"]


def synthetic_items(member: str, n: int, collection: str = "synthetic", start: str = "2026-01-01T00:00:00Z",
                    step_minutes: float = 97.0, offset_minutes: float = 0.0, seed: int = 0,
                    bbox: tuple[float, float, float, float] = (16.0, 45.5, 23.0, 48.5)) -> list[dict]:
    """``n`` deterministic items; ties in datetime on purpose (every 7th item repeats its predecessor's)."""
    rng = random.Random(f"{member}-{seed}")
    t0 = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
    items = []
    for i in range(n):
        k = i - 1 if i % 7 == 6 else i
        stamp = t0 + dt.timedelta(minutes=offset_minutes + k * step_minutes)
        x = bbox[0] + rng.random() * (bbox[2] - bbox[0] - 0.2)
        y = bbox[1] + rng.random() * (bbox[3] - bbox[1] - 0.2)
        box = [round(x, 5), round(y, 5), round(x + 0.2, 5), round(y + 0.2, 5)]
        item_id = f"{member}-{i:06d}"
        items.append({
            "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": collection,
            "bbox": box,
            "geometry": {"type": "Polygon", "coordinates": [[[box[0], box[1]], [box[2], box[1]], [box[2], box[3]],
                                                             [box[0], box[3]], [box[0], box[1]]]]},
            "properties": {"datetime": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "eo:cloud_cover": round(rng.random() * 100, 2), "platform": f"sat-{i % 3}",
                           "member": member},
            "assets": {"data": {"href": f"https://data.example.org/{member}/{item_id}.tif",
                                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                                "roles": ["data"]}},
            "links": [{"rel": "license", "href": "https://example.org/license"}],
        })
    return items


LABELS = ("north", "North", "_north", "south-2", "South", "south1", "Éast", "east", "EAST-3", "west", "zulu",
          "Zulu", "ärger", "arbor")


def label(n: int, member: str) -> str:
    """A string property whose code point order differs from a linguistic collation's (case,
    punctuation, accents), with ties across members."""
    return f"{LABELS[(n * 5 + len(member)) % len(LABELS)]}{'-' if n % 3 else '_'}{n % 4}"


def _linguistic(value: Any) -> Any:
    """A string as a linguistic collation (e.g. PostgreSQL with ``en_US``) compares it first: letters
    and digits only, case and accents ignored."""
    if not isinstance(value, str):
        return value
    import unicodedata

    plain = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().casefold()
    return "".join(ch for ch in plain if ch.isalnum())


def load_items(paths: list[str]) -> list[dict]:
    """Items from STAC JSON files: Features, FeatureCollections, or recorded ``{"response": ...}`` pairs."""
    items: list[dict] = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        if isinstance(data, dict) and "response" in data:
            data = data["response"]
        if isinstance(data, dict) and data.get("type") == "FeatureCollection":
            items.extend(data["features"])
        elif isinstance(data, dict) and data.get("type") == "Feature":
            items.append(data)
    unique = {(i.get("collection"), i.get("id")): i for i in items}  # the same item in two responses
    return list(unique.values())


def _extent(items: list[dict]) -> dict:
    boxes = [i["bbox"] for i in items if i.get("bbox")]
    times = sorted(i["properties"].get("datetime") or i["properties"].get("start_datetime") for i in items)
    spatial = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
               max(b[3] for b in boxes)] if boxes else [-180, -90, 180, 90]
    return {"spatial": {"bbox": [spatial]}, "temporal": {"interval": [[times[0], times[-1]] if times else
                                                                     [None, None]]}}


def _stamp(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))


class FakeMember:
    def __init__(self, spec: dict):
        self.spec = spec
        self.id = spec.get("id", "fake")
        if spec.get("items_files"):
            self.items = load_items(spec["items_files"])
        else:
            self.items = synthetic_items(self.id, int(spec.get("n_items", 100)), spec.get("collection", "synthetic"),
                                         spec.get("start", "2026-01-01T00:00:00Z"),
                                         float(spec.get("step_minutes", 97.0)), float(spec.get("offset_minutes", 0)),
                                         int(spec.get("seed", 0)), bbox=tuple(spec.get("bbox") or (16.0, 45.5, 23.0, 48.5)))
        if spec.get("labels"):
            for n, item in enumerate(self.items):
                item["properties"]["label"] = label(n, self.id)
        self.by_id = {(i["collection"], i["id"]): i for i in self.items}
        self.conformance = CORE if spec.get("conformance") == "core" else FULL
        self.searches = 0
        self.refusals: dict[int, int] = {}   # page number → 429/503 answers given
        self.asked_at: dict[int, list[float]] = {}  # page number → when each search for it came (monotonic s)
        self.active = 0
        self.peak = 0
        self.slots = asyncio.Semaphore(int(spec["capacity"])) if spec.get("capacity") else None

    # ---- helpers
    def collections(self, base: str) -> list[dict]:
        out = []
        for cid in sorted({i["collection"] for i in self.items}):
            held = [i for i in self.items if i["collection"] == cid]
            out.append({"type": "Collection", "stac_version": "1.0.0", "id": cid, "description": f"{cid} at {self.id}",
                        "license": "proprietary", "extent": _extent(held),
                        "summaries": {"platform": sorted({i["properties"].get("platform", "") for i in held})},
                        "links": [{"rel": "self", "href": f"{base}/collections/{cid}"},
                                  {"rel": "items", "href": f"{base}/collections/{cid}/items"},
                                  {"rel": "root", "href": f"{base}/"},
                                  {"rel": "license", "href": "https://example.org/license"}]})
        return out

    def select(self, args: dict) -> list[dict]:
        items = self.items
        if args.get("collections"):
            wanted = set(args["collections"])
            items = [i for i in items if i["collection"] in wanted]
        if args.get("ids"):
            wanted = set(args["ids"])
            items = [i for i in items if i["id"] in wanted]
        if args.get("bbox"):
            w, s, e, n = (args["bbox"][:2] + args["bbox"][2:4]) if len(args["bbox"]) == 4 else \
                (args["bbox"][0], args["bbox"][1], args["bbox"][3], args["bbox"][4])
            items = [i for i in items if i["bbox"][0] <= e and i["bbox"][2] >= w and i["bbox"][1] <= n
                     and i["bbox"][3] >= s]
        if args.get("datetime"):
            parts = args["datetime"].split("/")
            lo = None if parts[0] in ("", "..") else _stamp(parts[0])
            hi = lo if len(parts) == 1 else (None if parts[1] in ("", "..") else _stamp(parts[1]))
            items = [i for i in items if (lo is None or _stamp(i["properties"]["datetime"]) >= lo)
                     and (hi is None or _stamp(i["properties"]["datetime"]) <= hi)]
        if args.get("filter") and self.conformance is FULL:
            import cql2

            lang = args.get("filter-lang") or ("cql2-text" if isinstance(args["filter"], str) else "cql2-json")
            expr = cql2.parse_text(args["filter"]) if lang == "cql2-text" else cql2.parse_json(
                args["filter"] if isinstance(args["filter"], str) else json.dumps(args["filter"]))

            def ok(item: dict) -> bool:
                try:
                    return bool(expr.matches(item))
                except Exception:  # noqa: BLE001 - cql2's only evaluation error type (missing property)
                    return False

            items = [i for i in items if ok(i)]
        sortby = args.get("sortby") if self.conformance is FULL else None
        terms = tuple((s["field"], s.get("direction", "asc")) for s in sortby) if sortby else \
            (("properties.datetime", "desc"), ("id", "desc"))
        key = sort_key_function(terms)
        if self.spec.get("text_sort"):
            def key(item: dict, plain=key) -> tuple:  # noqa: E306 - numbers compared as their text
                props = {k: v if isinstance(v, bool) or not isinstance(v, (int, float)) else str(v)
                         for k, v in (item.get("properties") or {}).items()}
                return plain({**item, "properties": props})
        if self.spec.get("collation") == "linguistic":
            def key(item: dict, plain=key) -> tuple:  # noqa: E306, F811 - strings as a linguistic collation
                props = {k: _linguistic(v) for k, v in (item.get("properties") or {}).items()}
                return plain({**item, "id": _linguistic(item.get("id")), "properties": props})
        return sorted(items, key=key)

    async def search(self, request: Request, args: dict, method: str) -> Response:
        if self.slots is None:
            return await self._search(request, args, method)
        async with self.slots:
            return await self._search(request, args, method)

    async def _search(self, request: Request, args: dict, method: str) -> Response:
        self.searches += 1
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            return await self._answer(request, args, method)
        finally:
            self.active -= 1

    async def _answer(self, request: Request, args: dict, method: str) -> Response:
        spec = self.spec
        if spec.get("poison") and spec["poison"] in json.dumps(args) + str(request.url):
            return JSONResponse({"code": "InternalError", "description": "invalid byte sequence (deliberate)"},
                                status_code=500)
        number = int((str(args.get("token") or "off:0:0").split(":") + ["0", "0"])[2])
        self.asked_at.setdefault(number, []).append(time.monotonic())
        limited = spec.get("rate_limit")
        if limited and number in limited.get("pages", [0]) and \
                self.refusals.get(number, 0) < int(limited.get("times", 1)):
            self.refusals[number] = self.refusals.get(number, 0) + 1
            return JSONResponse({"code": "TooManyRequests", "description": "slow down"},
                                status_code=int(limited.get("status", 429)),
                                headers={"Retry-After": str(limited.get("retry_after", 1))})
        if spec.get("delay"):
            await asyncio.sleep(float(spec["delay"]))
        fault = spec.get("fault")
        if fault and self.searches > int(spec.get("fault_after", 0)):
            if fault == "http500":
                return JSONResponse({"code": "Boom", "description": "deliberate failure"}, status_code=500)
            if fault == "malformed":
                return Response(b'{"type": "FeatureCollection", "features": [{"id": ', media_type="application/json")
            if fault == "slow":
                await asyncio.sleep(float(spec.get("fault_delay", 30)))
            if fault == "not_a_collection":
                return JSONResponse({"hello": "world"})
        items = self.select(args)
        limit = int(args.get("limit") or 10)
        self.largest_limit = max(getattr(self, "largest_limit", 0), limit)  # what the broker asked for
        # token "off:<offset>:<page number>": a re-fetch of the same token gives the same page
        _, offset, number = (str(args.get("token") or "off:0:0").split(":") + ["0"])[:3]
        offset, number = int(offset), int(number)
        size = int(spec["page_size"]) if spec.get("page_size") else limit
        if spec.get("short_pages"):
            size = min(size, (number * 7 + 3) % (limit + 1))  # 0..limit items, empty pages included
        page = items[offset: offset + size]
        base = str(request.base_url).rstrip("/")
        links = [{"rel": "self", "href": str(request.url)}, {"rel": "root", "href": base + "/"}]
        if offset + size < len(items):
            token = f"off:{offset + size}:{number + 1}"
            if method == "POST":
                body = {**args, "token": token}
                links.append({"rel": "next", "href": f"{base}/search", "method": "POST", "body": body})
            else:
                params = {k: v for k, v in request.query_params.items() if k != "token"}
                params["token"] = token
                links.append({"rel": "next", "href": f"{base}{request.url.path}?{urlencode(params)}"})
        if spec.get("repeat") and offset > 0:
            page = [items[offset - 1]] + page
        if spec.get("no_collection"):
            page = [{k: v for k, v in i.items() if k != "collection"} for i in page]
        body = {"type": "FeatureCollection", "features": page, "links": links, "numberReturned": len(page)}
        if spec.get("number_matched"):
            body["numberMatched"] = len(items)
        if spec.get("hang_after_headers"):
            return _stalling(body, float(spec["hang_after_headers"]))
        return JSONResponse(body, media_type="application/geo+json")


def _stalling(body: dict, seconds: float) -> Response:
    """Status and headers at once, then the body only after ``seconds``."""
    from starlette.responses import StreamingResponse

    data = json.dumps(body).encode()

    async def chunks():
        yield data[:1]
        await asyncio.sleep(seconds)
        yield data[1:]

    return StreamingResponse(chunks(), media_type="application/geo+json")


def _get_args(request: Request) -> dict:
    q = request.query_params
    args: dict[str, Any] = {k: v for k, v in q.items()}
    for key in ("collections", "ids"):
        if key in args:
            args[key] = args[key].split(",")
    if "bbox" in args:
        args["bbox"] = [float(v) for v in args["bbox"].split(",")]
    if "sortby" in args:
        args["sortby"] = [{"field": p.lstrip("+-"), "direction": "desc" if p.startswith("-") else "asc"}
                          for p in args["sortby"].split(",")]
    return args


def create_app(spec: dict | None = None) -> Starlette:
    if spec is None:
        from eolab import settings

        spec = json.loads(settings.services().fake_member)
    member = FakeMember(spec)

    async def landing(request: Request):
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"type": "Catalog", "id": member.id, "stac_version": "1.0.0",
                             "description": "fake member", "conformsTo": member.conformance,
                             "links": [{"rel": "self", "href": base + "/"},
                                       {"rel": "search", "href": base + "/search"}]})

    async def conformance(request: Request):
        return JSONResponse({"conformsTo": member.conformance})

    async def collections(request: Request):
        if spec.get("fault") == "http500" and spec.get("fault_collections"):
            return JSONResponse({"code": "Boom"}, status_code=500)
        return JSONResponse({"collections": member.collections(str(request.base_url).rstrip("/")), "links": []})

    async def collection(request: Request):
        cid = request.path_params["cid"]
        for c in member.collections(str(request.base_url).rstrip("/")):
            if c["id"] == cid:
                return JSONResponse(c)
        return JSONResponse({"code": "NotFound", "description": cid}, status_code=404)

    async def item(request: Request):
        found = member.by_id.get((request.path_params["cid"], request.path_params["iid"]))
        if found is None:
            return JSONResponse({"code": "NotFound", "description": "no item"}, status_code=404)
        return JSONResponse(found, media_type="application/geo+json")

    async def items(request: Request):
        args = _get_args(request)
        args["collections"] = [request.path_params["cid"]]
        return await member.search(request, args, "GET")

    async def search(request: Request):
        if request.method == "POST":
            args = await request.json()
            return await member.search(request, args, "POST")
        return await member.search(request, _get_args(request), "GET")

    async def stats(request: Request):
        return JSONResponse({"searches": member.searches, "items": len(member.items), "peak": member.peak,
                             "refusals": member.refusals,
                             "asked_at": member.asked_at})

    routes = [
        Route("/", landing), Route("/conformance", conformance), Route("/collections", collections),
        Route("/collections/{cid}", collection), Route("/collections/{cid}/items", items),
        Route("/collections/{cid}/items/{iid}", item), Route("/search", search, methods=["GET", "POST"]),
        Route("/_stats", stats),
    ]
    app = Starlette(routes=routes)
    app.state.member = member
    return app


class HostRouter:
    """An httpx transport sending each host to its own in-process ASGI app (no sockets).

    ``hosts``: ``{"m1.test": app, ...}``; an unknown host behaves like a member that is down.
    """

    def __new__(cls, hosts: dict):
        import httpx

        class _Router(httpx.AsyncBaseTransport):
            def __init__(self) -> None:
                self.transports = {h: httpx.ASGITransport(app=a) for h, a in hosts.items()}

            async def handle_async_request(self, request):
                transport = self.transports.get(request.url.netloc.decode())
                if transport is None:
                    raise httpx.ConnectError(f"connection refused: {request.url.host}", request=request)
                return await transport.handle_async_request(request)

        return _Router()


# --------------------------------------------------------------------------- real processes (tests, benchmarks)

def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_fake(run_dir, name: str, spec: dict, port: int | None = None) -> str:
    """Start a fake member as a real uvicorn process; returns its URL (stop with ``stop(run_dir, name)``)."""
    import sys
    from pathlib import Path

    from eolab import _services

    port = port or free_port()
    cmd = [sys.executable, "-m", "uvicorn", "eolab.testing.faults:create_app", "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", "--no-access-log"]
    service = _services.Service(name=name, cmd=cmd, port=port, env={"EOLAB_FAKE_MEMBER": json.dumps(spec)},
                                ready_path="/conformance")
    _services.start(Path(run_dir), service, timeout=30)
    return service.url


def serve_broker(run_dir, config_path, port: int, name: str = "broker", workers: int = 1,
                 env: dict | None = None) -> str:
    """Start the broker as a real uvicorn process (the command line ``eolab catalog up`` uses)."""
    import sys
    from pathlib import Path

    from eolab import _services
    from eolab.catalog._admission import BROKER_SERVER_ARGS

    cmd = [sys.executable, "-m", "uvicorn", "eolab.catalog.broker:create_app", "--factory", "--host", "127.0.0.1",
           "--port", str(port), *BROKER_SERVER_ARGS]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    service = _services.Service(name=name, cmd=cmd, port=port, ready_path="/_health",
                                env={"EOLAB_CATALOG_CONFIG": str(config_path), **(env or {})})
    _services.start(Path(run_dir), service, timeout=30)
    return service.url


def stop(run_dir, name: str) -> None:
    from pathlib import Path

    from eolab import _services

    _services.stop(Path(run_dir), name)
