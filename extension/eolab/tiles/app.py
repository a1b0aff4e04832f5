"""The quicklook tile service: a titiler (FastAPI) app rendering STAC items and the demo base layer.

Run: ``python -m uvicorn eolab.tiles.app:create_app --factory --host 127.0.0.1 --port 8730``.
Environment (:class:`eolab.settings.ServiceSettings`): ``EOLAB_TILES_BASE_DIR`` (demo data directory
for the offline base layer), ``EOLAB_TILES_ALLOW`` (comma-separated URL prefixes it always reads: the
stack sets its asset server, broker and members), ``EOLAB_TILES_PUBLIC`` (other hosts only on public
addresses; default true). Never local files, GDAL virtual paths, or loopback, link-local and private
addresses outside the allowed prefixes (:mod:`eolab.tiles._policy`).

Routes (all tiles are 256 px Web Mercator PNGs; outside the data they are transparent, not 404):

- ``/item/{z}/{x}/{y}.png?url=ITEM_URL&style=truecolor|falsecolor|ndvi`` — one STAC item, with
  its raster:bands scale/offset applied before the band math.
- ``/assets/{z}/{x}/{y}.png?style=ndvi&nir=HREF&red=HREF[&scale=..&offset=..&nodata=..]`` —
  the same from COG hrefs (bands named by common name).
- ``/base/{z}/{x}/{y}.png`` — the demo area, true colour, per demo tile the clearest date; the
  map's offline base layer. ``/base/info`` gives its bounds and dates.
- ``/cog/...`` and ``/stac/...`` — titiler's standard COG and STAC endpoints.
- ``/static/panel/{version}/dist/...`` — Panel's static files for offline notebook plots
  (``PANEL_CDN_ROOT=<this service>/static/panel/`` in the kernel's environment).
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.middleware.cors import CORSMiddleware

from eolab.errors import EolabError
from eolab.tiles import _policy, _render

if TYPE_CHECKING:
    from eolab.tiles._egress import Tally

TILE = 256
_GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
             "GDAL_HTTP_MULTIPLEX": "YES", "VSI_CACHE": "TRUE", "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff"}


def _png(rgb: np.ndarray, alpha: np.ndarray) -> bytes:
    from rio_tiler.utils import render

    return render(rgb, mask=alpha, img_format="PNG")


@functools.lru_cache(maxsize=1)
def empty_tile() -> bytes:
    return _png(np.zeros((3, TILE, TILE), "uint8"), np.zeros((TILE, TILE), "uint8"))


def read_band(href: str, z: int, x: int, y: int, scale: float, offset: float, nodata) -> np.ndarray | None:
    """Physical values of band 1 of ``href`` on tile z/x/y (NaN = no data), or None if it misses the tile."""
    from rio_tiler.errors import TileOutsideBounds
    from rio_tiler.io import Reader

    try:
        with Reader(href) as src:
            image = src.tile(x, y, z, indexes=1, tilesize=TILE)
    except TileOutsideBounds:
        return None
    dn = np.asarray(image.array.data[0])
    valid = ~np.ma.getmaskarray(image.array)[0]
    if nodata is not None:
        valid &= dn != nodata
    return _render.physical(dn, valid, scale, offset)


def render_bands(style: _render.Style, sources: dict[str, tuple[str, float, float, object]], z: int, x: int,
                 y: int) -> bytes:
    """``sources``: common name -> (href, scale, offset, nodata)."""
    bands = {}
    for name, (href, scale, offset, nodata) in sources.items():
        values = read_band(href, z, x, y, scale, offset, nodata)
        if values is None:
            return empty_tile()
        bands[name] = values
    return _png(*_render.colourise(style, bands))


class BaseLayer:
    """The demo area in true colour: for every demo grid tile, the Sentinel-2 item with least cloud."""

    def __init__(self, data_dir: Path | None):
        self.data_dir = data_dir
        self.parts: list[dict] = []
        path = data_dir / "stac" / "items" / "sentinel-2-l2a.ndjson" if data_dir else None
        if path is None or not path.exists():
            return
        best: dict[str, dict] = {}
        for line in path.read_text().splitlines():
            item = json.loads(line)
            grid = item["properties"].get("grid:code", item["id"])
            cloud = item["properties"].get("eo:cloud_cover", 100.0)
            # Ties: prefer the date nearest mid-June (full vegetation, high sun).
            key = (cloud, abs(int(item["properties"]["datetime"][5:7]) - 6))
            if grid not in best or key < best[grid]["key"]:
                best[grid] = {"key": key, "item": item}
        for grid, entry in sorted(best.items()):
            item = entry["item"]
            sources = _render.band_sources(item, ("red", "green", "blue"))
            self.parts.append({
                "grid": grid, "bbox": item["bbox"], "id": item["id"], "date": item["properties"]["datetime"][:10],
                "bands": {n: (str((data_dir / href).resolve()) if "://" not in href else href, *values)
                          for n, (href, *values) in sources.items()}})

    @property
    def bounds(self) -> list[float] | None:
        if not self.parts:
            return None
        boxes = [p["bbox"] for p in self.parts]
        return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]

    def info(self) -> dict:
        bounds = self.bounds
        center = [(bounds[1] + bounds[3]) / 2, (bounds[0] + bounds[2]) / 2] if bounds else None
        parts = [{k: p[k] for k in ("grid", "id", "date")} for p in self.parts]
        return {"bounds": bounds, "center": center, "parts": parts,
                "source": str(self.data_dir) if self.data_dir else None}

    @functools.lru_cache(maxsize=4096)
    def tile(self, z: int, x: int, y: int) -> bytes:
        import morecantile

        tms = morecantile.tms.get("WebMercatorQuad")
        west, south, east, north = tms.bounds(morecantile.Tile(x, y, z))
        rgb = np.zeros((3, TILE, TILE), "uint8")
        alpha = np.zeros((TILE, TILE), "uint8")
        style = _render.STYLES["truecolor"]
        for part in self.parts:
            b = part["bbox"]
            if b[0] > east or b[2] < west or b[1] > north or b[3] < south:
                continue
            bands = {}
            for name, (href, scale, offset, nodata) in part["bands"].items():
                values = read_band(href, z, x, y, scale, offset, nodata)
                if values is None:
                    break
                bands[name] = values
            else:
                part_rgb, part_alpha = _render.colourise(style, bands)
                fill = (part_alpha > 0) & (alpha == 0)
                rgb[:, fill] = part_rgb[:, fill]
                alpha[fill] = 255
        return _png(rgb, alpha) if alpha.any() else empty_tile()


# titiler's /cog and /stac image routes render any size asked for (one 100000 × 100000 PNG took the
# service's memory); maps need tiles of 256–512 px and previews of ~1024.
MAX_IMAGE_SIDE = 4096
MAX_TILESIZE = 1024
MAX_ZOOM = 24
MAX_BUFFER = 256
ITEM_CACHE_SECONDS = 300
ITEM_DEADLINE = 30.0  # s for a whole item to arrive (the 15 s timeout is per read)
MAX_ITEM_BYTES = 1_000_000


def check_tile(z: int, x: int, y: int) -> None:
    """A Web Mercator tile address, or a 400 naming the range."""
    if not 0 <= z <= MAX_ZOOM:
        raise EolabError(f"zoom {z} is outside 0…{MAX_ZOOM}")
    if not (0 <= x < 2 ** z and 0 <= y < 2 ** z):
        raise EolabError(f"tile {x}/{y} does not exist at zoom {z} (0…{2 ** z - 1})")


def size_problem(path: str, params) -> str | None:
    """Why a titiler image request asks for too many pixels (None: it does not)."""
    import re

    sides = {}
    match = re.search(r"/(\d+)x(\d+)(?:\.\w+)?$", path)
    if match:
        sides["width"], sides["height"] = int(match[1]), int(match[2])
    for name in ("width", "height", "max_size", "tilesize", "buffer"):
        try:
            if params.get(name) is not None:
                sides[name] = float(params[name])
        except ValueError:
            continue  # titiler answers 422 for what is not a number
    for name, value in sides.items():
        limit = {"tilesize": MAX_TILESIZE, "buffer": MAX_BUFFER}.get(name, MAX_IMAGE_SIDE)
        if value > limit:
            return f"{name} {value:g} is more than {limit} px"
        # titiler reads 0 as "no limit" (a full-resolution image of any size); a buffer may be 0
        if not value >= (0 if name == "buffer" else 1):
            return f"{name} {value:g} is not a size: give 1…{limit} px"
    return None


def area_problem(path: str) -> str | None:
    """What is wrong with the tile address or bbox in a titiler path (None: nothing): titiler
    answers z = -1 or a bbox of NaN or of no area with a 500."""
    import math
    import re

    tile = re.search(r"/tiles/(?:([^/]+)/)?(-?\d+)/(-?\d+)/(-?\d+)(?:@\d+x)?(?:\.\w+)?$", path)
    if tile:
        grid = tile[1] or "WebMercatorQuad"
        z, x, y = (int(v) for v in tile.groups()[1:])
        try:
            if grid == "WebMercatorQuad":
                check_tile(z, x, y)
            else:  # the other grids titiler serves (morecantile's), with their own matrices
                import morecantile

                try:
                    tms = morecantile.tms.get(grid)
                except Exception:
                    return None  # titiler names an unknown grid itself
                if not tms.minzoom <= z <= tms.maxzoom:
                    return f"zoom {z} is outside {tms.minzoom}…{tms.maxzoom} of {grid}"
                matrix = tms.matrix(z)
                if not (0 <= x < matrix.matrixWidth and 0 <= y < matrix.matrixHeight):
                    return f"tile {x}/{y} does not exist at zoom {z} of {grid}"
        except EolabError as exc:
            return str(exc)
    box = re.search(r"/bbox/([^/]+)/", path)
    if box:
        try:
            minx, miny, maxx, maxy = (float(v) for v in box[1].split(","))
        except ValueError:
            return f"bbox {box[1][:80]!r} is not four numbers minx,miny,maxx,maxy"
        if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)) or minx >= maxx or miny >= maxy:
            return f"bbox {box[1][:80]} has no area (give minx < maxx and miny < maxy)"
    return None


def sized_query(path: str, query: bytes, method: str = "GET") -> bytes:
    """titiler's bbox and feature images (and POSTed feature statistics) read at full resolution when
    no size is given: they get ``max_size`` = MAX_IMAGE_SIDE then (GET statistics and previews keep
    titiler's own 1024)."""
    import re
    from urllib.parse import parse_qsl

    unsized = re.search(r"/(bbox|feature)\b", path) or (method == "POST" and re.search(r"/statistics\b", path))
    if not unsized or re.search(r"/\d+x\d+(\.\w+)?$", path):
        return query
    given = {k for k, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)}
    if given & {"max_size", "width", "height"}:
        return query
    return query + (b"&" if query else b"") + f"max_size={MAX_IMAGE_SIDE}".encode()


class ItemSource:
    """STAC item JSON by URL, cached for a few minutes (items do not change while a map is open)."""

    def __init__(self, allow: list[str] | None = None, allow_public: bool = True, proxy: str | None = None,
                 tally: Tally | None = None):
        self.allow = list(allow or [])
        self.allow_public = allow_public
        # Redirects are followed by hand, each hop checked like the first URL. Through the egress
        # proxy (``proxy``: its host:port; ``tally`` its credentials) the connection goes to the very
        # address that was checked: a name that answers a public address to the check and 127.0.0.1
        # to the connection gets nowhere. The request's tag makes the proxy count the item's bytes
        # for the user who asked, and lets its refusal explain this fetch.
        self.proxy, self.tally = proxy, tally
        self._asking = threading.local()  # the tag of the request whose fetch runs in this thread
        cached = functools.lru_cache(maxsize=128)(lambda url, _period: self._get(url))

        def get(url: str, tag: str | None = None) -> dict:
            self._asking.tag = tag  # a cache hit fetches nothing, so counts nothing
            try:
                # the period in the key lets entries expire (a workspace member's items can change)
                return cached(url, int(time.monotonic() // ITEM_CACHE_SECONDS))
            finally:
                self._asking.tag = None

        self.get = get

    def check(self, url: str) -> None:
        """Refuse what the service must not read (see :mod:`eolab.tiles._policy`): never local files or
        GDAL virtual paths, never loopback, link-local or private addresses but the stack's own."""
        reason = _policy.refusal(url, self.allow, allow_public=self.allow_public)
        if reason:
            raise EolabError(reason, hint="the catalogue's hosts are allowed; operators add others with tiles.allow "
                                          "in the catalogue configuration")

    def _get(self, url: str) -> dict:
        asking = getattr(self._asking, "tag", None)
        tag = asking or uuid.uuid4().hex  # outside a request: a tag of its own, for the refusal only
        proxy = None
        if self.proxy:
            proxy = f"http://{self.tally.userpwd(tag)}@{self.proxy}" if self.tally else f"http://{self.proxy}"
        try:
            with httpx.Client(timeout=15.0, follow_redirects=False, trust_env=False, proxy=proxy) as http:
                body, url = self._fetch(http, url, tag)
        finally:
            if not asking and self.tally:
                self.tally.pop(tag)  # nobody to count it for
        return self._item(body, url)

    def _fetch(self, http: httpx.Client, url: str, tag: str) -> tuple[bytearray, str]:
        """The item's bytes and the URL they came from, redirects followed by hand."""
        from eolab.tiles._egress import last_refusal

        deadline = time.monotonic() + ITEM_DEADLINE
        for _ in range(4):
            self.check(url)
            try:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise EolabError(f"item {url} took more than {ITEM_DEADLINE:g} s to arrive")
                with http.stream("GET", url, timeout=min(15.0, left)) as response:
                    if response.status_code == 403 and response.headers.get("x-eolab-refused"):
                        raise EolabError(response.headers["x-eolab-refused"])
                    if response.is_redirect and response.headers.get("location"):
                        url = str(response.url.join(response.headers["location"]))
                        continue
                    if response.status_code != 200:
                        raise EolabError(f"item {url} answered {response.status_code}")
                    body = bytearray()
                    for chunk in response.iter_bytes():  # never more than the limit in memory
                        body += chunk
                        if time.monotonic() > deadline:  # a host sending a byte now and then
                            raise EolabError(f"item {url} took more than {ITEM_DEADLINE:g} s to arrive")
                        if len(body) > MAX_ITEM_BYTES:
                            raise EolabError(f"{url} answered more than {MAX_ITEM_BYTES:,} bytes: not a STAC item",
                                             hint="pass the URL of one item")
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                # an https tunnel the proxy refused (the name answered it another address than
                # the check above) is a ProxyError: the proxy's reason says which
                refused = last_refusal(tag) if isinstance(exc, httpx.ProxyError) else None
                raise EolabError(refused[1] if refused else
                                 f"item {url[:200]} is not reachable ({type(exc).__name__})") from None
            break
        else:
            raise EolabError(f"item {url} redirects too often")
        return body, url

    @staticmethod
    def _item(body: bytes, url: str) -> dict:
        try:
            item = json.loads(bytes(body))
        except ValueError:
            raise EolabError(f"{url} did not answer JSON", hint="pass the URL of a STAC item") from None
        assets = item.get("assets") if isinstance(item, dict) else None
        if not isinstance(item, dict) or item.get("type") != "Feature" or not isinstance(assets, dict) or not all(
                isinstance(a, dict) and isinstance(a.get("href"), str) for a in assets.values()):
            raise EolabError(f"{url} is not a STAC item (a Feature whose assets each have an href)",
                             hint="pass the URL of one item")
        return item


def _panel_dist() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("panel")  # located, not imported
    if spec is None or not spec.origin:
        return None
    dist = Path(spec.origin).parent / "dist"
    return dist if dist.is_dir() else None


def create_app(base_dir: str | os.PathLike | None = None, allow: list[str] | None = None) -> FastAPI:
    from rio_tiler.io import STACReader
    from titiler.core.errors import DEFAULT_STATUS_CODES, add_exception_handlers
    from titiler.core.factory import MultiBaseTilerFactory, TilerFactory

    for key, value in _GDAL_ENV.items():
        os.environ.setdefault(key, value)
    from eolab import settings

    conf = settings.services()
    base_dir = base_dir or conf.tiles_base_dir
    if allow is None:
        allow = conf.tiles_allow_list
    base = BaseLayer(Path(base_dir).resolve() if base_dir else None)
    allow = list(allow or [])
    # GDAL follows redirects unchecked: all its requests go through a proxy applying the same policy.
    from eolab.tiles._egress import EgressProxy, Tally, checker

    tally = Tally()
    egress = EgressProxy(checker(allow, conf.tiles_public), tally)
    os.environ["GDAL_HTTP_PROXY"] = egress.address
    os.environ["GDAL_HTTP_PROXYUSERPWD"] = tally.userpwd()  # the proxy answers this process only
    for name in ("NO_PROXY", "no_proxy"):  # curl would go around the proxy for these hosts
        os.environ.pop(name, None)
    items = ItemSource(allow, allow_public=conf.tiles_public, proxy=egress.address, tally=tally)

    def request_tag(request: Request) -> str:
        """This request's tag at the egress proxy: its reads are counted for it, and a refusal the
        proxy gave it explains its own failure only."""
        import uuid

        tag = getattr(request.state, "read_tag", None)
        if tag is None:
            tag = request.state.read_tag = uuid.uuid4().hex
        return tag

    def tagged_env(request: Request) -> dict:
        # titiler opens its datasets inside rasterio.Env(**this), in the thread that reads
        return {"GDAL_HTTP_PROXYUSERPWD": tally.userpwd(request_tag(request))}

    def counted_render(request: Request, the_style, sources, z, x, y) -> Response:
        """The tile; what reading it fetched goes into ``X-Eolab-Read`` (see ``count_reads``)."""
        import rasterio

        with rasterio.Env(**tagged_env(request)):  # thread-local: this request's reads
            image = render_bands(the_style, sources, z, x, y)
        return Response(image, media_type="image/png")

    app = FastAPI(title="eolab quicklook tiles", openapi_url="/api", docs_url=None, redoc_url=None)
    # JupyterLab pages load tiles cross-origin.
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET"], allow_headers=["*"])
    if conf.service_token:
        # Started by the stack or the hub: other local accounts need the service token (browsers on
        # the hub come through its login-checked /services/tiles gate, which runs as the stack's account).
        from eolab._guard import ServiceGuard

        app.add_middleware(ServiceGuard, tokens=[conf.service_token])
    app.state.base = base

    @app.exception_handler(EolabError)
    async def _eolab_error(request, exc: EolabError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.middleware("http")
    async def count_reads(request, call_next):
        """What a request's reads fetched, in ``X-Eolab-Read`` (host=bytes;...), on every route: the
        hub's gate counts it for the user who asked and drops the header."""
        try:
            response = await call_next(request)
        finally:
            tag = getattr(request.state, "read_tag", None)
            read = tally.pop(tag) if tag else {}
        if read:
            response.headers["X-Eolab-Read"] = ";".join(f"{h}={n}" for h, n in sorted(read.items()))
        return response

    @app.middleware("http")
    async def limit_image_size(request, call_next):
        if request.url.path.startswith(("/cog/", "/stac/")):
            problem = size_problem(request.url.path, request.query_params) or area_problem(request.url.path)
            if problem:
                return JSONResponse({"detail": problem}, status_code=400)
            request.scope["query_string"] = sized_query(request.url.path, request.scope.get("query_string", b""),
                                                      request.method)
        return await call_next(request)

    @app.get("/_health")
    async def health():  # on the event loop: answers while every worker thread waits on slow hosts
        return {"status": "ok", "base_layer": base.bounds is not None}

    @app.get("/styles")
    def styles():
        return {name: {"title": s.title, "bands": list(s.bands), "range": list(s.range)}
                for name, s in _render.STYLES.items()}

    png = {"content": {"image/png": {}}}

    @app.get("/item/{z}/{x}/{y}.png", response_class=Response, responses={200: png})
    def item_tile(request: Request, z: int, x: int, y: int, url: str = Query(..., description="STAC item URL"),
                  style: str = "truecolor"):
        check_tile(z, x, y)
        the_style = _render.style(style)
        item = items.get(url, request_tag(request))
        try:
            # relative hrefs (static catalogues) are relative to the item's own URL
            sources = _render.band_sources(item, the_style.bands, base_url=url)
        except EolabError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise EolabError(f"item {url}: the band metadata of its assets cannot be read ({exc})") from None
        for href, *_ in sources.values():
            items.check(href)
        response = counted_render(request, the_style, sources, z, x, y)
        response.headers["Cache-Control"] = "max-age=3600"
        return response

    @app.get("/assets/{z}/{x}/{y}.png", response_class=Response, responses={200: png})
    def assets_tile(request: Request, z: int, x: int, y: int, style: str = "truecolor", red: str | None = None,
                    green: str | None = None, blue: str | None = None, nir: str | None = None,
                    scale: float = 1.0, offset: float = 0.0, nodata: float | None = None):
        check_tile(z, x, y)
        the_style = _render.style(style)
        given = {"red": red, "green": green, "blue": blue, "nir": nir}
        missing = [n for n in the_style.bands if not given[n]]
        if missing:
            raise EolabError(f"style {style} needs the hrefs of {', '.join(missing)}",
                             hint=f"pass {'&'.join(f'{n}=HREF' for n in missing)}")
        for name in the_style.bands:
            items.check(given[name])
        sources = {n: (given[n], scale, offset, nodata) for n in the_style.bands}
        return counted_render(request, the_style, sources, z, x, y)

    @app.get("/base/info")
    def base_info():
        return base.info()

    @app.get("/base/{z}/{x}/{y}.png", response_class=Response, responses={200: png})
    def base_tile(z: int, x: int, y: int):
        check_tile(z, x, y)
        return Response(base.tile(z, x, y), media_type="image/png", headers={"Cache-Control": "max-age=86400"})

    # Panel's stylesheets and module shims for notebook plots, so kernels can set
    # PANEL_CDN_ROOT=<tiles>/static/panel/ instead of fetching them from cdn.holoviz.org.
    panel_dist = _panel_dist()
    if panel_dist is not None:
        from starlette.staticfiles import StaticFiles

        app.mount("/static/panel/{version}/dist", StaticFiles(directory=panel_dist), name="panel-dist")

    # titiler's own endpoints for anything the styles above do not cover (no HTML viewers: they use CDNs).
    # Every URL they open (the dataset, and each asset of a STAC item) passes the same check.
    def checked_url(url: str = Query(..., description="Dataset URL")) -> str:
        items.check(url)
        return url

    import attr

    @attr.s
    class CheckedSTACReader(STACReader):
        def __attrs_post_init__(self):
            # rio-tiler reads assets on its own threads, where this request's GDAL options (its
            # tag at the egress proxy) are not set: each asset's env carries them there.
            import rasterio

            self._request_env = {k: v for k, v in rasterio.env.getenv().items() if k == "GDAL_HTTP_PROXYUSERPWD"} \
                if rasterio.env.hasenv() else {}
            # The item through the service's own fetch (checked hops, size cap, cache that expires),
            # not rio-tiler's (unbounded, cached for the life of the process), counted for this request.
            if self.item is None:
                import pystac

                tag = self._request_env.get("GDAL_HTTP_PROXYUSERPWD", "").partition(":")[0]
                tag = tag if tag and tag != Tally.UNTAGGED else None
                self.item = pystac.Item.from_dict(items.get(self.input, tag), self.input)
            super().__attrs_post_init__()

        def _get_asset_info(self, asset):
            info = super()._get_asset_info(asset)
            items.check(info["url"])
            info["env"] = {**(info.get("env") or {}), **getattr(self, "_request_env", {})}
            return info

    cog = TilerFactory(router_prefix="/cog", add_viewer=False, path_dependency=checked_url,
                       environment_dependency=tagged_env)
    stac = MultiBaseTilerFactory(reader=CheckedSTACReader, router_prefix="/stac", add_viewer=False,
                                 path_dependency=checked_url, environment_dependency=tagged_env)
    app.include_router(cog.router, prefix="/cog", tags=["COG"])
    app.include_router(stac.router, prefix="/stac", tags=["STAC"])
    add_exception_handlers(app, DEFAULT_STATUS_CODES)

    from rasterio.errors import RasterioIOError

    from eolab.tiles._egress import last_refusal

    @app.exception_handler(RasterioIOError)
    async def _io_error(request, exc: RasterioIOError):
        # A read GDAL was refused by the egress proxy (a redirect to an address the service may not
        # read) is the request's fault, and says why; other I/O failures keep titiler's answer.
        tag = getattr(request.state, "read_tag", None)
        refused = last_refusal(tag) if tag and "403" in str(exc) else None
        if refused:
            return JSONResponse({"detail": f"{refused[1]} (reached by a redirect: {refused[0]})"}, status_code=400)
        message = str(exc).replace("/vsicurl/", "")
        if "does not exist" in message or "not recognized as" in message or "HTTP response code: 404" in message:
            return JSONResponse({"detail": f"not a readable raster: {message}"}, status_code=404)
        # the dataset's server failed to answer: not this service's fault, nor the request's
        return JSONResponse({"detail": f"reading failed: {message}"}, status_code=502)

    from rio_tiler import errors as rio_errors

    @app.exception_handler(rio_errors.PointOutsideBounds)
    @app.exception_handler(rio_errors.InvalidBounds)
    @app.exception_handler(rio_errors.InvalidGeographicBounds)
    @app.exception_handler(rio_errors.InvalidBufferSize)
    @app.exception_handler(rio_errors.MaxArraySizeError)
    async def _bad_request(request, exc):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    # rasterio and numpy raise these plain types for what the request asked; other cases of the same
    # types stay titiler's 500.
    @app.exception_handler(IndexError)
    async def _band_index(request, exc: IndexError):
        if str(exc).startswith("band index"):  # rasterio: bidx=7 or b7 in an expression on a 1-band raster
            return JSONResponse({"detail": f"{exc}: bidx and an expression's b1, b2, … must be bands the raster "
                                           f"has (see /cog/info)"}, status_code=400)
        return JSONResponse({"detail": str(exc)}, status_code=500)

    @app.exception_handler(ValueError)
    async def _histogram(request, exc: ValueError):
        if "range parameter" in str(exc):  # numpy: histogram_range=5,1
            return JSONResponse({"detail": f"histogram_range: {exc} (give min,max with min < max)"}, status_code=400)
        if str(exc).startswith("Too many bins for data range"):  # numpy, on infinite values
            return JSONResponse({"detail": "the values are not finite (an expression dividing by zero?): no "
                                           "histogram can be made of them; change the expression or give "
                                           "histogram_range"}, status_code=400)
        return JSONResponse({"detail": str(exc)}, status_code=500)
    return app
