"""The quicklook tile service as a real uvicorn process, rendering items served by the real stack."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import morecantile
import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.warp import transform_bounds
from rasterio.windows import from_bounds

from eolab.search import Catalogue
from eolab.tiles import item_tiles
from eolab.tiles._render import RAMP, STYLES

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:rasterio")]
TMS = morecantile.tms.get("WebMercatorQuad")
ZOOM = 14


@pytest.fixture(scope="module")
def tiles(catalog_stack):
    """The tile service the stack runs (``eolab.tiles.tile_service(config)``)."""
    return catalog_stack.tiles_url


@pytest.fixture(scope="module")
def centre_item(catalog_stack):
    """The clearest Sentinel-2 item of the centre demo tile, as the broker returns it."""
    with Catalogue(catalog_stack.broker_url) as cat:
        items = cat.items("sentinel-2-l2a", filter="\"grid:code\" = 'EOLAB-r01c01'", limit=100)
    return min(items, key=lambda i: i["properties"]["eo:cloud_cover"])


def fetch(address: str, **params) -> Image.Image:
    response = httpx.get(address, params=params or None, timeout=60)  # {} would drop the query
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content)).convert("RGBA")


def item_tile(item) -> morecantile.Tile:
    west, south, east, north = item["bbox"]
    return TMS.tile((west + east) / 2, (south + north) / 2, ZOOM)


def cog_window(config, href: str, tile: morecantile.Tile) -> np.ndarray:
    """DN of the COG (read from disk) inside the tile's bounds."""
    path = Path(config.data_dir) / href.split(config.assets_url + "/", 1)[1]
    with rasterio.open(path) as src:
        bounds = transform_bounds("EPSG:4326", src.crs, *TMS.bounds(tile))
        return src.read(1, window=from_bounds(*bounds, transform=src.transform), boundless=True, fill_value=0)


def test_ndvi_tile_matches_the_cog_values(tiles, centre_item, catalog_stack):
    tile = item_tile(centre_item)
    self_href = next(ln["href"] for ln in centre_item["links"] if ln["rel"] == "self")
    image = np.asarray(fetch(f"{tiles}/item/{tile.z}/{tile.x}/{tile.y}.png", url=self_href, style="ndvi"))
    opaque = image[..., 3] == 255
    assert opaque.mean() > 0.5
    # Invert the colour ramp pixel by pixel, then compare the tile's NDVI with the COG's.
    ramp = RAMP.astype(int)
    index = np.abs(image[opaque][:, None, :3].astype(int) - ramp[None]).sum(-1).argmin(-1)
    low, high = STYLES["ndvi"].range
    tile_ndvi = low + index / 255 * (high - low)
    nir = cog_window(catalog_stack, centre_item["assets"]["B08"]["href"], tile) * 1e-4 - 0.1
    red = cog_window(catalog_stack, centre_item["assets"]["B04"]["href"], tile) * 1e-4 - 0.1
    valid = (nir > -0.1) & (red > -0.1)
    cog_ndvi = np.clip((nir - red)[valid] / (nir + red)[valid], low, high)
    assert tile_ndvi.mean() == pytest.approx(cog_ndvi.mean(), abs=0.02)
    assert np.percentile(tile_ndvi, 90) == pytest.approx(np.percentile(cog_ndvi, 90), abs=0.03)


def test_true_and_false_colour_stretch_the_cog_reflectances(tiles, centre_item, catalog_stack):
    tile = item_tile(centre_item)
    by_url = item_tiles(centre_item, "truecolor", url=tiles).format(z=tile.z, x=tile.x, y=tile.y)
    hrefs = {k: v for k, v in centre_item.items() if k != "links"}  # no self link: rendered from hrefs
    by_hrefs = item_tiles(hrefs, "truecolor", url=tiles).format(z=tile.z, x=tile.x, y=tile.y)
    assert "/item/" in by_url and "/assets/" in by_hrefs
    true, again = np.asarray(fetch(by_url)), np.asarray(fetch(by_hrefs))
    assert np.array_equal(true, again)
    false = np.asarray(fetch(item_tiles(centre_item, "falsecolor", url=tiles).format(z=tile.z, x=tile.x, y=tile.y)))
    for image, band, style in ((true, "B04", "truecolor"), (false, "B08", "falsecolor")):
        dn = cog_window(catalog_stack, centre_item["assets"][band]["href"], tile)
        low, high = STYLES[style].range
        expected = np.clip((dn[dn > 0] * 1e-4 - 0.1 - low) / (high - low), 0, 1) * 255
        red_channel = image[..., 0][image[..., 3] == 255]
        assert red_channel.mean() == pytest.approx(expected.mean(), abs=3), style


def test_tile_beside_the_item_is_transparent(tiles, centre_item):
    tile = item_tile(centre_item)
    far = morecantile.Tile(tile.x + 40, tile.y, tile.z)
    url = item_tiles(centre_item, "ndvi", url=tiles).format(z=far.z, x=far.x, y=far.y)
    assert np.asarray(fetch(url))[..., 3].max() == 0


def test_base_layer_covers_the_demo_area_with_the_clearest_dates(tiles, catalog_stack):
    info = httpx.get(f"{tiles}/base/info").json()
    items = [json.loads(line) for line in
             (Path(catalog_stack.data_dir) / "stac/items/sentinel-2-l2a.ndjson").read_text().splitlines()]
    assert len(info["parts"]) == 9
    for part in info["parts"]:
        same_tile = [i for i in items if i["properties"]["grid:code"] == part["grid"]]
        chosen = next(i for i in same_tile if i["id"] == part["id"])
        assert chosen["properties"]["eo:cloud_cover"] == min(i["properties"]["eo:cloud_cover"] for i in same_tile)
    lat, lon = info["center"]
    tile = TMS.tile(lon, lat, 13)
    centre = np.asarray(fetch(f"{tiles}/base/{tile.z}/{tile.x}/{tile.y}.png"))
    assert (centre[..., 3] == 255).mean() > 0.9 and centre[..., :3].std() > 5
    world = np.asarray(fetch(f"{tiles}/base/2/1/1.png"))
    assert world[..., 3].max() == 0


def test_errors_are_clear_and_titiler_endpoints_work(tiles, centre_item, catalog_stack):
    tile = item_tile(centre_item)
    path = f"{tiles}/item/{tile.z}/{tile.x}/{tile.y}.png"
    self_href = next(ln["href"] for ln in centre_item["links"] if ln["rel"] == "self")
    bad = httpx.get(path, params={"url": self_href, "style": "thermal"})
    assert bad.status_code == 400 and "unknown quicklook style 'thermal'" in bad.json()["detail"]
    gone = httpx.get(path, params={"url": f"{catalog_stack.assets_url}/no-such-item.json"})
    assert gone.status_code == 400 and "no-such-item.json answered 404" in gone.json()["detail"]
    missing = httpx.get(f"{tiles}/assets/{tile.z}/{tile.x}/{tile.y}.png", params={"style": "ndvi", "red": "x"})
    assert missing.status_code == 400 and "needs the hrefs of nir" in missing.json()["detail"]
    cog = httpx.get(f"{tiles}/cog/info", params={"url": centre_item["assets"]["B04"]["href"]}, timeout=30)
    assert cog.status_code == 200 and cog.json()["width"] == centre_item["assets"]["B04"]["proj:shape"][1]
    styles = httpx.get(f"{tiles}/styles").json()
    assert set(styles) == {"truecolor", "falsecolor", "ndvi"}


def test_local_files_are_never_read(tiles, centre_item, catalog_stack, tmp_path):
    """Only http(s) URLs, also for the assets a STAC item names (the service may run as root)."""

    for url in ("/etc/passwd", "file:///etc/passwd", "/vsicurl/http://127.0.0.1/x.tif"):
        refused = httpx.get(f"{tiles}/cog/info", params={"url": url}, timeout=30)
        assert refused.status_code == 400 and "http(s) URLs only" in refused.json()["detail"], url
    item = json.loads(json.dumps(centre_item))
    item["assets"]["B04"]["href"] = "file:///etc/passwd"  # relative hrefs resolve against the item's URL
    item["links"] = []
    # served by the stack's own asset server, which the tile service trusts
    path = Path(catalog_stack.data_dir) / f"test-item-{tmp_path.name}.json"
    path.write_text(json.dumps(item))
    try:
        url = f"{catalog_stack.assets_url}/{path.name}"
        refused = httpx.get(f"{tiles}/stac/info", params={"url": url, "assets": "B04"}, timeout=30)
        assert refused.status_code == 400 and "/etc/passwd" in refused.json()["detail"]
        allowed = httpx.get(f"{tiles}/stac/info", params={"url": url, "assets": "B08"}, timeout=30)
        assert allowed.status_code == 200 and "B08" in allowed.json()
    finally:
        path.unlink()


def test_other_local_services_are_never_read(tiles, centre_item, catalog_stack, tmp_path):
    """A user cannot make the tile service read loopback ports outside the catalogue (PostgreSQL, a
    dashboard, another user's server), directly, as an asset of an item, or through a redirect."""
    import functools
    import http.server
    import threading

    tile = item_tile(centre_item)
    (tmp_path / "secret.json").write_text(json.dumps({"type": "Feature", "secret": "of another account"}))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        other = f"http://127.0.0.1:{server.server_address[1]}/secret.json"
        for target in (other, f"http://127.0.0.1:{catalog_stack.postgres.port}/", f"http://localhost:{server.server_address[1]}/"):
            for route, params in ((f"/item/{tile.z}/{tile.x}/{tile.y}.png", {"url": target}), ("/cog/info", {"url": target}),
                                  ("/stac/info", {"url": target, "assets": "B04"}),
                                  (f"/assets/{tile.z}/{tile.x}/{tile.y}.png", {"style": "ndvi", "nir": target, "red": target})):
                refused = httpx.get(f"{tiles}{route}", params=params, timeout=30)
                assert refused.status_code == 400, (route, target, refused.text[:200])
                assert "local, private or link-local address" in refused.json()["detail"], refused.text[:200]
        item = json.loads(json.dumps(centre_item))
        item["assets"]["B04"]["href"] = other
        item["links"] = []
        path = Path(catalog_stack.data_dir) / f"test-item-{tmp_path.name}.json"
        path.write_text(json.dumps(item))
        try:
            url = f"{catalog_stack.assets_url}/{path.name}"
            refused = httpx.get(f"{tiles}/item/{tile.z}/{tile.x}/{tile.y}.png", params={"url": url, "style": "truecolor"})
            assert refused.status_code == 400 and "local, private or link-local" in refused.json()["detail"]
        finally:
            path.unlink()
    finally:
        server.shutdown()
    # and the legitimate path still works: the catalogue's own item renders
    self_href = next(ln["href"] for ln in centre_item["links"] if ln["rel"] == "self")
    assert fetch(f"{tiles}/item/{tile.z}/{tile.x}/{tile.y}.png", url=self_href, style="ndvi").getextrema()[3][1] > 0


def test_a_redirect_from_an_allowed_host_to_another_local_port_is_not_followed(catalog_stack, tmp_path):
    """GDAL follows redirects itself; the tile service sends its requests through a proxy that checks
    every hop. An allowed host redirecting to another loopback port gets no bytes from there, while
    the allowed hosts still read."""
    import functools
    import http.server
    import threading

    from eolab import _services
    from eolab.tiles import serve

    hits = []

    class Other(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            return super().do_GET()

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    cog = next(Path(catalog_stack.data_dir).resolve().rglob("*.tif"))
    (tmp_path / "cog.tif").write_bytes(cog.read_bytes())
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Other, directory=str(tmp_path)))
    secret = f"http://127.0.0.1:{other.server_address[1]}/cog.tif"

    class Redirector(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", secret)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    redirector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirector)
    for server in (other, redirector):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    allowed = f"http://127.0.0.1:{redirector.server_address[1]}"
    run_dir = tmp_path / "run"
    service = serve(run_dir, allow=[allowed, catalog_stack.assets_url], name="tiles-redirect")
    try:
        refused = httpx.get(f"{service.url}/cog/info", params={"url": f"{allowed}/cog.tif"}, timeout=60)
        assert refused.status_code == 400, refused.text[:300]
        assert "local, private or link-local address" in refused.json()["detail"] and secret in refused.json()["detail"]
        assert hits == [], f"the tile service reached the redirect's target: {hits}"
        # The legitimate path: an allowed host's COG is read as before (through the same proxy).
        href = f"{catalog_stack.assets_url}/{cog.relative_to(Path(catalog_stack.data_dir).resolve()).as_posix()}"
        info = httpx.get(f"{service.url}/cog/info", params={"url": href}, timeout=60)
        assert info.status_code == 200 and info.json()["width"] > 0, info.text[:300]
    finally:
        _services.stop(run_dir, "tiles-redirect")
        for server in (other, redirector):
            server.shutdown()


def test_hostile_requests_get_4xx_and_the_service_stays_up(tiles, centre_item, catalog_stack):
    """What a caller gets wrong is a 4xx naming it; sizes that would take the service's memory are
    refused before anything is read; and the same requests done right still work."""
    href = centre_item["assets"]["B04"]["href"]
    self_href = next(ln["href"] for ln in centre_item["links"] if ln["rel"] == "self")
    west, south, east, north = centre_item["bbox"]
    huge = [(f"{tiles}/cog/bbox/{west},{south},{east},{north}/100000x100000.png", {"url": href}, "more than 4096"),
            (f"{tiles}/cog/preview.png", {"url": href, "width": 100000, "height": 100000}, "more than 4096"),
            (f"{tiles}/cog/preview.png", {"url": href, "max_size": 50000}, "max_size 50000 is more than"),
            (f"{tiles}/cog/tiles/WebMercatorQuad/14/9132/5754.png", {"url": href, "tilesize": 20000}, "tilesize")]
    for address, params, message in huge:
        response = httpx.get(address, params=params, timeout=60)
        assert response.status_code == 400 and message in response.json()["detail"], (address, response.text[:200])
    small = httpx.get(f"{tiles}/cog/bbox/{west},{south},{east},{north}/256x256.png", params={"url": href}, timeout=60)
    assert small.status_code == 200 and Image.open(io.BytesIO(small.content)).size == (256, 256)

    for address, params in [(f"{tiles}/base/-1/0/0.png", {}), (f"{tiles}/base/99999999/0/0.png", {}),
                            (f"{tiles}/base/3/8/0.png", {}),
                            (f"{tiles}/item/-1/0/0.png", {"url": self_href})]:
        response = httpx.get(address, params=params, timeout=60)
        assert response.status_code in (400, 422), (address, response.status_code, response.text[:200])
    tile = item_tile(centre_item)
    not_item = httpx.get(f"{tiles}/item/{tile.z}/{tile.x}/{tile.y}.png", params={"url": href}, timeout=60)
    assert not_item.status_code == 400 and "did not answer JSON" in not_item.json()["detail"]
    for url in ("http://[zz]/x.tif", f"{catalog_stack.assets_url}/manifest.json", f"{catalog_stack.assets_url}/nope.tif"):
        response = httpx.get(f"{tiles}/cog/info", params={"url": url}, timeout=60)
        assert 400 <= response.status_code < 500, (url, response.status_code, response.text[:200])
        assert "/vsicurl/" not in response.text
    outside = httpx.get(f"{tiles}/cog/point/0,0", params={"url": href}, timeout=60)
    assert outside.status_code == 400, outside.text[:200]
    # bands the raster lacks, and an expression whose values are infinite (titiler answered 500)
    for path, params, message in [("cog/statistics", {"bidx": 7}, "band index 7"),
                                  ("cog/statistics", {"expression": "b99"}, "band index 99"),
                                  ("cog/preview.png", {"bidx": 0}, "band index 0"),
                                  ("cog/statistics", {"expression": "b1/0"}, "not finite")]:
        response = httpx.get(f"{tiles}/{path}", params={"url": href, **params}, timeout=60)
        assert response.status_code == 400 and message in response.json()["detail"], (params, response.text[:200])
    stats = httpx.get(f"{tiles}/cog/statistics", params={"url": href, "expression": "b1/2"}, timeout=60)
    assert stats.status_code == 200 and stats.json()["b1"]["count"] > 0, stats.text[:200]
    fetch(f"{tiles}/item/{tile.z}/{tile.x}/{tile.y}.png", url=self_href)  # the right request still works
