"""Search, page, select and load catalogue items from Python: everything the catalogue widgets do.

The widgets in :mod:`eolab.widgets` are views over this module, so a notebook can run the same
steps headless::

    from eolab.search import Catalogue, load

    cat = Catalogue("http://127.0.0.1:8720")            # or $EOLAB_CATALOG_URL (the broker)
    cat.providers()                                      # {provider: [CollectionInfo, ...]}
    page = cat.search(["sentinel-2-l2a"], bbox=[20.60, 47.65, 20.70, 47.72],
                      datetime=("2026-04-01", "2026-06-30"), max_cloud=30, limit=20)
    page.missing                                         # providers that did not answer
    page2 = cat.next_page(page)                          # follows the broker's paging token
    items = select(page.items, [page.items[0]["id"]])    # -> pystac ItemCollection
    cube = load(items, bands=["B04", "B08"], resolution=10)

Only httpx is imported here; pystac, geopandas and odc-stac load when their functions run.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from eolab.errors import EolabError

DEFAULT_SORTBY = "-properties.datetime"
ROW_COLUMNS = ("provider", "collection", "datetime", "cloud_cover", "id")


def catalogue_url(url: str | None = None) -> str:
    """The broker to use: ``url``, else ``$EOLAB_CATALOG_URL``."""
    url = url or os.environ.get("EOLAB_CATALOG_URL")
    if not url:
        raise EolabError("no catalogue URL given", hint="pass the broker URL or set EOLAB_CATALOG_URL")
    return url.rstrip("/")


# --------------------------------------------------------------------------- collections

@dataclass(frozen=True)
class CollectionInfo:
    """One collection of the federation: ``id`` is ``provider|collection``."""

    id: str
    provider: str
    collection: str
    title: str
    bbox: tuple[float, float, float, float] | None
    interval: tuple[str | None, str | None]
    data_providers: tuple[str, ...] = ()

    @classmethod
    def from_stac(cls, body: dict) -> "CollectionInfo":
        provider, _, plain = body["id"].rpartition("|")
        extent = body.get("extent") or {}
        boxes = (extent.get("spatial") or {}).get("bbox") or []
        intervals = (extent.get("temporal") or {}).get("interval") or [[None, None]]
        start, end = (list(intervals[0]) + [None, None])[:2]
        return cls(id=body["id"], provider=provider or "", collection=plain, title=body.get("title") or plain,
                   bbox=tuple(float(v) for v in boxes[0][:4]) if boxes else None, interval=(start, end),
                   data_providers=tuple(p.get("name", "") for p in body.get("providers") or []))

    @property
    def extent_text(self) -> str:
        start, end = (s[:10] if s else ".." for s in self.interval)
        box = ", ".join(f"{v:.2f}" for v in self.bbox) if self.bbox else "no bbox"
        return f"{start} – {end}; {box}"


@dataclass
class Collections:
    """The broker's collections and the providers that did not answer."""

    collections: list[CollectionInfo]
    missing: list[str] = field(default_factory=list)

    def by_provider(self) -> dict[str, list[CollectionInfo]]:
        groups: dict[str, list[CollectionInfo]] = {}
        for info in sorted(self.collections, key=lambda c: (c.provider, c.collection)):
            groups.setdefault(info.provider, []).append(info)
        return groups

    def __iter__(self) -> Iterator[CollectionInfo]:
        return iter(self.collections)

    def __len__(self) -> int:
        return len(self.collections)


# --------------------------------------------------------------------------- search parameters (pure)

def _as_time(value: Any, end: bool) -> str | None:
    if value in (None, "", ".."):
        return None
    if isinstance(value, str):
        value = value.strip()
        if "T" in value:
            return value
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            raise EolabError(f"time {value!r} is not a date", hint="use 'YYYY-MM-DD', a date or a datetime") from None
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return stamp.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return f"{value.isoformat()}T23:59:59Z" if end else f"{value.isoformat()}T00:00:00Z"
    raise EolabError(f"time {value!r} is not a date", hint="use 'YYYY-MM-DD', a date or a datetime")


def datetime_interval(datetime: Any) -> str | None:
    """An RFC 3339 interval from ``(start, end)`` (dates count whole days; None = open) or a string."""
    if datetime is None:
        return None
    if isinstance(datetime, str) and "/" in datetime:
        datetime = tuple(datetime.split("/", 1))
    if isinstance(datetime, (tuple, list)):
        if len(datetime) != 2:
            raise EolabError(f"time range {datetime!r} needs two values", hint="give (start, end)")
        start, end = _as_time(datetime[0], end=False), _as_time(datetime[1], end=True)
        if start and end and start > end:
            raise EolabError(f"time range starts ({start[:10]}) after it ends ({end[:10]})",
                             hint="swap start and end")
        return f"{start or '..'}/{end or '..'}"
    single = _as_time(datetime, end=False)
    if isinstance(datetime, dt.date) and not isinstance(datetime, dt.datetime):
        return f"{single}/{_as_time(datetime, end=True)}"
    return single


def cloud_filter(max_cloud: float | None, extra: str | None = None) -> str | None:
    """CQL2 text: cloud cover at most ``max_cloud`` (items without cloud cover, e.g. radar, pass) and ``extra``."""
    parts = []
    if max_cloud is not None:
        if not 0 <= float(max_cloud) <= 100:
            raise EolabError(f"max_cloud={max_cloud} is not a percentage", hint="use 0 to 100")
        if float(max_cloud) < 100:
            parts.append(f"(eo:cloud_cover <= {float(max_cloud):g} OR eo:cloud_cover IS NULL)")
    if extra and extra.strip():
        parts.append(f"({extra.strip()})")
    return " AND ".join(parts) or None


def search_body(collections: str | Sequence[str] | None = None, *, bbox: Sequence[float] | None = None,
                intersects: Any = None, datetime: Any = None, max_cloud: float | None = None,
                filter: str | None = None, limit: int = 20, sortby: str | None = DEFAULT_SORTBY,
                ids: Sequence[str] | None = None) -> dict:
    """The POST /search body for these parameters (validated, so errors name the parameter)."""
    body: dict[str, Any] = {"limit": int(limit)}
    if not 1 <= body["limit"] <= 10000:
        raise EolabError(f"limit={limit} is out of range", hint="use 1 to 10000 items per page")
    if collections:
        body["collections"] = [collections] if isinstance(collections, str) else list(collections)
    if ids:
        body["ids"] = list(ids)
    if intersects is not None and bbox is not None:
        raise EolabError("give either bbox or intersects, not both")
    if intersects is not None:
        body["intersects"] = intersects.__geo_interface__ if hasattr(intersects, "__geo_interface__") else intersects
    elif bbox is not None:
        box = [float(v) for v in bbox]
        if len(box) != 4 or not (box[0] < box[2] and box[1] < box[3]):
            raise EolabError(f"bbox {bbox} is not west, south, east, north", hint="e.g. [20.60, 47.65, 20.70, 47.72]")
        body["bbox"] = box
    interval = datetime_interval(datetime)
    if interval:
        body["datetime"] = interval
    text = cloud_filter(max_cloud, filter)
    if text:
        body["filter"], body["filter-lang"] = text, "cql2-text"
    if sortby:
        body["sortby"] = [{"field": f.lstrip("+-"), "direction": "desc" if f.startswith("-") else "asc"}
                          for f in sortby.split(",") if f.strip()]
    return body


# --------------------------------------------------------------------------- results (pure)

def item_row(item: dict) -> dict:
    """One table row: provider, collection, datetime, cloud cover (None for radar), id."""
    provider, _, plain = (item.get("collection") or "").rpartition("|")
    props = item.get("properties") or {}
    cloud = props.get("eo:cloud_cover")
    return {"provider": provider, "collection": plain, "datetime": props.get("datetime") or props.get("start_datetime"),
            "cloud_cover": None if cloud is None else float(cloud), "id": item["id"], "key": item_key(item)}


def item_key(item: dict) -> str:
    """Unique across the federation: the same item id can exist at two providers."""
    return f"{item.get('collection') or ''}/{item['id']}"


def sort_rows(rows: list[dict], column: str, descending: bool = False) -> list[dict]:
    """Rows sorted by ``column``; missing values (radar cloud cover) always last."""
    if column not in ROW_COLUMNS:
        raise EolabError(f"cannot sort by {column!r}", hint=f"columns are: {', '.join(ROW_COLUMNS)}")
    present = [r for r in rows if r.get(column) is not None]
    absent = [r for r in rows if r.get(column) is None]
    return sorted(present, key=lambda r: (r[column], r["key"]), reverse=descending) + absent


@dataclass
class Page:
    """One page of a federated search: items (STAC dicts), who was missing, and how to go on."""

    items: list[dict]
    number: int
    request: dict
    next_request: dict | None
    missing: list[str] = field(default_factory=list)
    number_matched: int | None = None
    member_errors: dict = field(default_factory=dict)

    @property
    def has_next(self) -> bool:
        return self.next_request is not None

    @property
    def rows(self) -> list[dict]:
        return [item_row(i) for i in self.items]

    def item_collection(self):
        return to_item_collection(self.items)

    def to_geodataframe(self):
        return to_geodataframe(self.items)


def to_item_collection(items: Iterable[Any]):
    """A pystac ``ItemCollection`` of STAC item dicts or pystac Items."""
    import pystac

    out = [i if isinstance(i, pystac.Item) else pystac.Item.from_dict(i, preserve_dict=True) for i in items]
    return pystac.ItemCollection(out)


def to_geodataframe(items: Iterable[Any]):
    """A GeoDataFrame (EPSG:4326) with one row per item: the table columns, the footprint and the item."""
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import shape

    records, geoms = [], []
    for item in items:
        item = item.to_dict() if hasattr(item, "to_dict") else item
        row = item_row(item)
        row.pop("key")
        row["datetime"] = pd.to_datetime(row["datetime"], utc=True) if row["datetime"] else pd.NaT
        row["item"] = item
        records.append(row)
        geoms.append(shape(item["geometry"]) if item.get("geometry") else None)
    columns = list(ROW_COLUMNS) + ["item"]
    return gpd.GeoDataFrame(pd.DataFrame.from_records(records, columns=columns), geometry=geoms, crs="EPSG:4326")


def select(items: Iterable[dict], keys: Iterable[str]):
    """The items whose id or ``provider|collection/id`` key is in ``keys``, as an ItemCollection, in ``keys`` order."""
    items = list(items)
    by_key = {item_key(i): i for i in items}
    by_id: dict[str, list[dict]] = {}
    for i in items:
        by_id.setdefault(i["id"], []).append(i)
    chosen, unknown = [], []
    for key in keys:
        if key in by_key:
            chosen.append(by_key[key])
        elif len(by_id.get(key, [])) == 1:
            chosen.append(by_id[key][0])
        elif key in by_id:
            raise EolabError(f"item id {key!r} exists at several providers",
                             hint="select it by its key 'provider|collection/id'")
        else:
            unknown.append(key)
    if unknown:
        raise EolabError(f"not among the results: {', '.join(unknown[:3])}", hint="select ids of the shown results")
    return to_item_collection(chosen)


# --------------------------------------------------------------------------- the client

class Catalogue:
    """A client of the federated broker (or any STAC API with POST /search and token paging)."""

    def __init__(self, url: str | None = None, *, headers: dict[str, str] | None = None, timeout: float = 30.0):
        import httpx

        self.url = catalogue_url(url)
        self._http = httpx.Client(headers=headers or {}, timeout=timeout, follow_redirects=True)

    def __repr__(self) -> str:
        return f"Catalogue({self.url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Catalogue":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- HTTP
    def _send(self, method: str, url: str, body: dict | None = None) -> dict:
        import httpx

        try:
            response = self._http.request(method, url, json=body if method == "POST" else None)
        except httpx.HTTPError as exc:
            raise EolabError(f"the catalogue at {self.url} is not reachable ({type(exc).__name__})",
                             hint="is the stack running? see 'eolab status'") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("description") or response.text
            except ValueError:
                detail = response.text
            hint = "check the filter and search parameters" if response.status_code == 400 else None
            raise EolabError(f"the catalogue answered {response.status_code}: {str(detail)[:300]}", hint=hint)
        try:
            return response.json()
        except ValueError:
            raise EolabError(f"the catalogue at {self.url} did not answer with JSON") from None

    # -- collections
    def collections(self) -> Collections:
        body = self._send("GET", f"{self.url}/collections")
        infos = [CollectionInfo.from_stac(c) for c in body.get("collections", [])]
        return Collections(infos, list(body.get("federation:missing") or []))

    def providers(self) -> dict[str, list[CollectionInfo]]:
        return self.collections().by_provider()

    # -- search
    def search(self, collections: str | Sequence[str] | None = None, **parameters: Any) -> Page:
        """The first page of a search; parameters as :func:`search_body`."""
        request = {"method": "POST", "href": f"{self.url}/search", "body": search_body(collections, **parameters)}
        return self.request_page(request, number=1)

    def request_page(self, request: dict, number: int) -> Page:
        """Fetch one page for a stored request (the first one or a broker ``next`` link)."""
        method = (request.get("method") or "GET").upper()
        body = self._send(method, request["href"], request.get("body"))
        nxt = next((ln for ln in body.get("links", []) if ln.get("rel") == "next"), None)
        next_request = None
        if nxt:
            next_request = {"method": (nxt.get("method") or "GET").upper(), "href": nxt["href"],
                            "body": nxt.get("body")}
            if next_request["method"] == "POST" and nxt.get("merge") and request.get("body"):
                next_request["body"] = {**request["body"], **(nxt.get("body") or {})}
        context = body.get("context") or {}
        return Page(items=list(body.get("features", [])), number=number, request=request,
                    next_request=next_request, missing=list(body.get("federation:missing") or []),
                    number_matched=body.get("numberMatched", context.get("matched")),
                    member_errors=dict(body.get("eolab:member_errors") or {}))

    def next_page(self, page: Page) -> Page | None:
        if page.next_request is None:
            return None
        return self.request_page(page.next_request, page.number + 1)

    def pages(self, collections: str | Sequence[str] | None = None, **parameters: Any) -> Iterator[Page]:
        page: Page | None = self.search(collections, **parameters)
        while page is not None:
            yield page
            page = self.next_page(page)

    def items(self, collections: str | Sequence[str] | None = None, max_items: int | None = None,
              **parameters: Any) -> list[dict]:
        """Every item of a search (following the tokens), at most ``max_items``."""
        out: list[dict] = []
        for page in self.pages(collections, **parameters):
            out += page.items
            if max_items is not None and len(out) >= max_items:
                return out[:max_items]
        return out


# --------------------------------------------------------------------------- loading

def plain_collections(items: Iterable[Any]) -> list[str]:
    names = set()
    for item in items:
        collection = item.collection_id if hasattr(item, "collection_id") else item.get("collection")
        names.add((collection or "").rpartition("|")[2])
    return sorted(names)


def load(items: Iterable[Any], bands: Sequence[str] | None = None, *, resolution: float | None = 10,
         crs: str | None = None, bbox: Sequence[float] | None = None, mask: str | None = "auto", **kwargs: Any):
    """A lazy cube of the selected items via :func:`eolab.load_cube`; one collection at a time."""
    from eolab.data.load import load_cube

    items = list(items.items if hasattr(items, "items") and not callable(items.items) else items)
    if not items:
        raise EolabError("nothing selected to load", hint="select result rows first")
    names = plain_collections(items)
    if len(names) > 1:
        raise EolabError(f"the selection mixes collections {', '.join(names)}",
                         hint="select items of one collection (any providers) and load it")
    return load_cube(items, bands=bands, resolution=resolution, crs=crs or None, bbox=bbox, mask=mask, **kwargs)


def size_estimate(cube) -> int:
    """Bytes the cube's data variables take once computed (from shapes and dtypes, nothing is read)."""
    return int(sum(var.nbytes for var in cube.data_vars.values()))


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover
