"""The tile service under hostile requests (in-process app, a file server on 127.0.0.1): sizes that
mean "no limit", tile addresses and boxes titiler answered with 500, one user's refusal shown to
another, DNS rebinding, slow item hosts, NO_PROXY, and quicklooks whose values differ from the cube's.
Each attack is paired with the legitimate request that must still work."""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import socket
import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning", "ignore::UserWarning:rio_tiler")


class _Files(http.server.SimpleHTTPRequestHandler):
    """Static files with byte ranges (GDAL reads COGs by range), plus a few hostile answers."""

    hits: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).hits.append(self.path)
        if self.path.startswith("/redirect"):  # to a local port the service may not read, with a signature
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/latest/x.tif?X-Amz-Signature=ALICE-SECRET")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/forbidden"):  # an expired signed URL
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/drip"):  # an item sent a byte at a time
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(60):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
            return
        path = self.translate_path(self.path)
        ranged = self.headers.get("Range", "")
        if ranged.startswith("bytes=") and os.path.isfile(path):
            data = open(path, "rb").read()
            start, _, end = ranged[6:].partition("-")
            start, end = int(start), min(int(end) if end else len(data) - 1, len(data) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            self.wfile.write(data[start:end + 1])
            return
        super().do_GET()

    do_HEAD = do_GET


@pytest.fixture(scope="module")
def www(small_demo, tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    (root / "demo").symlink_to(small_demo)
    handler = type("Files", (_Files,), {"hits": []})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}", handler
    srv.shutdown()


@pytest.fixture(scope="module", autouse=True)
def _environment():
    """create_app points this process's GDAL at its egress proxy (it is the tile service's own
    process when served): put the environment back for the tests that run after these."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def client(www, small_demo):
    from starlette.testclient import TestClient

    from eolab.tiles.app import create_app

    _, base, _ = www
    return TestClient(create_app(base_dir=str(small_demo), allow=[base]), raise_server_exceptions=False)


def _item(small_demo, collection="sentinel-2-l2a", **props):
    lines = (small_demo / "stac" / "items" / f"{collection}.ndjson").read_text().splitlines()
    item = min((json.loads(line) for line in lines), key=lambda i: i["properties"].get("eo:cloud_cover", 0))
    item["properties"].update(props)
    return item


def _centre_tile(item, z=14):
    import morecantile

    w, s, e, n = item["bbox"]
    return morecantile.tms.get("WebMercatorQuad").tile((w + e) / 2, (s + n) / 2, z)


def _png(response):
    from PIL import Image

    assert response.status_code == 200, response.text[:300]
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))


def test_sizes_of_zero_are_refused_and_real_sizes_render(client, www, small_demo):
    _, base, _ = www
    item = _item(small_demo)
    cog = {"url": f"{base}/demo/{item['assets']['B04']['href']}"}
    w, s, e, n = item["bbox"]
    # titiler reads 0 as "no limit": a full-resolution image of any size from one request
    for path, params in [("/cog/preview.png", {**cog, "max_size": 0}),
                         ("/cog/preview.png", {**cog, "width": 0, "height": 0}),
                         (f"/cog/bbox/{w},{s},{e},{n}/0x0.png", cog),
                         ("/cog/preview.png", {**cog, "max_size": -5})]:
        refused = client.get(path, params=params)
        assert refused.status_code == 400 and "is not a size" in refused.json()["detail"], (path, refused.text)
    assert _png(client.get(f"/cog/bbox/{w},{s},{e},{n}/64x64.png", params=cog)).shape == (64, 64, 4)
    assert _png(client.get("/cog/preview.png", params={**cog, "max_size": 32})).shape[:2] <= (32, 32)


def test_tile_addresses_boxes_and_ranges_titiler_answered_with_500(client, www, small_demo):
    _, base, _ = www
    item = _item(small_demo)
    cog = {"url": f"{base}/demo/{item['assets']['B04']['href']}"}
    for path, params, said in [
        ("/cog/tiles/WebMercatorQuad/-1/0/0.png", cog, "zoom -1 is outside"),
        ("/cog/tiles/WebMercatorQuad/3/9/0.png", cog, "does not exist at zoom 3"),
        ("/cog/bbox/nan,nan,nan,nan/64x64.png", cog, "has no area"),
        ("/cog/bbox/0,0,0,0/64x64.png", cog, "has no area"),
        ("/cog/statistics", {**cog, "histogram_range": "5,1"}, "histogram_range"),
        ("/stac/info", {"url": f"{base}/nothing-here.json", "assets": "B04"}, "answered 404"),
        ("/stac/info", {"url": f"{base}/demo/manifest.json", "assets": "B04"}, "is not a STAC item"),
        ("/item/14/0/0.png", {"url": f"{base}/item.json\x00"}, "not reachable"),
    ]:
        answer = client.get(path, params=params)
        assert answer.status_code == 400 and said in answer.json()["detail"], (path, answer.status_code, answer.text)
    t = _centre_tile(item)
    assert _png(client.get(f"/cog/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png", params=cog)).shape[:2] == (256, 256)
    # other grids keep their own matrices: WorldCRS84Quad is 2 × 1 tiles at zoom 0
    assert client.get("/cog/tiles/WorldCRS84Quad/0/1/0.png", params=cog).status_code in (200, 204, 404)
    refused = client.get("/cog/tiles/WorldCRS84Quad/0/2/0.png", params=cog)
    assert refused.status_code == 400 and "of WorldCRS84Quad" in refused.json()["detail"]


def test_a_refusal_explains_only_the_request_it_was_given_to(client, www):
    """A GDAL 403 was answered with the process's latest proxy refusal: another user's refused URL,
    signature and all, with a false reason."""
    _, base, _ = www
    first = client.get("/cog/info", params={"url": f"{base}/redirect/a.tif"})
    assert first.status_code == 400 and "127.0.0.1:9/latest" in first.json()["detail"]  # its own: said
    other = client.get("/cog/info", params={"url": f"{base}/forbidden/b.tif?sv=expired"})
    assert other.status_code == 502 and "403" in other.json()["detail"]
    assert "ALICE-SECRET" not in other.text and "127.0.0.1:9" not in other.text


def test_every_route_reports_what_its_reads_fetched(client, www, small_demo):
    """The hub's gate bills X-Eolab-Read to the user who asked; titiler's routes read for free before."""
    root, base, _ = www
    item = _item(small_demo)
    for a in item["assets"].values():
        a["href"] = f"{base}/demo/{a['href']}"
    (root / "counted.json").write_text(json.dumps(item))
    t = _centre_tile(item)
    for path, params in [(f"/cog/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png", {"url": item["assets"]["B02"]["href"]}),
                         ("/stac/preview.png", {"url": f"{base}/counted.json", "assets": "SCL", "max_size": 64}),
                         (f"/item/{t.z}/{t.x}/{t.y}.png", {"url": f"{base}/counted.json", "style": "ndvi"})]:
        answer = client.get(path, params=params)
        assert answer.status_code == 200, answer.text[:300]
        host, _, fetched = answer.headers["x-eolab-read"].partition("=")
        assert host == "127.0.0.1" and int(fetched) > 0, (path, answer.headers)


def test_a_quicklook_shows_the_values_the_cube_holds(client, www, small_demo):
    """Landsat C2 L2 and Planetary-Computer-like Sentinel-2 items carry no scale: the tiles showed
    raw DNs (all white) where the loader applies the convention; Landsat's nir08 was not found."""
    from eolab.data import profiles
    from eolab.tiles._render import band_sources

    root, base, _ = www
    landsat = _item(small_demo, "landsat-c2-l2")
    for a in landsat["assets"].values():
        a.pop("raster:bands", None)
    sources = band_sources(landsat, ("nir", "red"))
    assert sources["nir"][1:3] == (2.75e-05, -0.2) and landsat["assets"][profiles.resolve_band(landsat, "nir")] \
        ["href"] == sources["nir"][0]
    s2 = _item(small_demo)
    for a in s2["assets"].values():
        a.pop("raster:bands", None)
    want = profiles.band_values(s2, "B04")
    assert band_sources(s2, ("red",))["red"][1:] == (want.scale, want.offset, want.nodata)
    # rendered, with relative hrefs (a static catalogue): resolved against the item's own URL
    (root / "items").mkdir(exist_ok=True)
    for name, it in (("landsat", landsat), ("s2", s2)):
        for a in it["assets"].values():
            a["href"] = "../demo/" + a["href"]
        (root / "items" / f"{name}.json").write_text(json.dumps(it))
        t = _centre_tile(it, 13)
        rgba = _png(client.get(f"/item/{t.z}/{t.x}/{t.y}.png", params={"url": f"{base}/items/{name}.json"}))
        shown = rgba[rgba[..., 3] > 0][:, :3]
        assert shown.size and (shown == 255).all(axis=1).mean() < 0.5, name  # before: every pixel white


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_an_item_name_that_rebinds_to_loopback_is_not_fetched(client, www, monkeypatch, scheme):
    """Over https the item goes through a tunnel: the proxy's refusal came back as "not reachable
    (ProxyError)", without its reason."""
    _, base, handler = www
    port = int(base.rsplit(":", 1)[1])
    real = socket.getaddrinfo
    asked = {"n": 0}

    def rebinding(host, *args, **kwargs):
        if host == "rebind.test":  # a TTL-0 name: public to the check, loopback to the connection
            asked["n"] += 1
            return real("93.184.216.34" if asked["n"] == 1 else "127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    handler.hits.clear()
    answer = client.get("/item/14/0/0.png", params={"url": f"{scheme}://rebind.test:{port}/demo/manifest.json"})
    assert answer.status_code == 400 and "local, private or link-local" in answer.json()["detail"], answer.text
    assert "ProxyError" not in answer.text and handler.hits == []  # never reached


def test_the_item_itself_is_counted_for_the_request_that_fetched_it(client, www, small_demo):
    """The item JSON the service fetched for a tile was read for free (only the rasters were billed)."""
    root, base, _ = www
    item = _item(small_demo)
    for a in item["assets"].values():
        a["href"] = f"{base}/demo/{a['href']}"
    item["properties"]["padding"] = "x" * 600_000  # more than the tile's rasters weigh
    size = len(json.dumps(item))
    (root / "heavy.json").write_text(json.dumps(item))
    t = _centre_tile(item)

    def fetched(path, params):
        answer = client.get(path, params=params)
        assert answer.status_code == 200, answer.text[:300]
        return int(answer.headers.get("x-eolab-read", "=0").partition("=")[2])  # none: nothing read

    tile = (f"/item/{t.z}/{t.x}/{t.y}.png", {"url": f"{base}/heavy.json", "style": "ndvi"})
    assert fetched(*tile) >= size
    assert fetched(*tile) < size  # the item now comes from the cache: not fetched, not billed again
    assert fetched("/stac/preview.png", {"url": f"{base}/heavy.json?stac", "assets": "SCL", "max_size": 64}) >= size


def test_a_slow_item_host_is_given_up_on_and_health_answers(client, www, monkeypatch):
    from eolab.tiles import app as tiles_app

    _, base, _ = www
    monkeypatch.setattr(tiles_app, "ITEM_DEADLINE", 1.0)
    answer = client.get("/item/14/0/0.png", params={"url": f"{base}/drip/item.json"})
    assert answer.status_code == 400 and "took more than 1 s to arrive" in answer.json()["detail"]
    assert client.get("/_health").json()["status"] == "ok"


def test_no_proxy_in_the_environment_does_not_open_a_way_around_the_egress_proxy(www, small_demo, monkeypatch):
    from starlette.testclient import TestClient

    from eolab.tiles.app import create_app

    _, base, handler = www
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    client = TestClient(create_app(base_dir=str(small_demo), allow=[base]), raise_server_exceptions=False)
    assert "NO_PROXY" not in os.environ and "no_proxy" not in os.environ
    handler.hits.clear()
    refused = client.get("/cog/info", params={"url": f"{base}/redirect/c.tif"})  # (GDAL caches a.tif's answer)
    assert refused.status_code == 400 and "127.0.0.1:9/latest" in refused.json()["detail"]
    item = _item(small_demo)
    assert client.get("/cog/info", params={"url": f"{base}/demo/{item['assets']['B04']['href']}"}).status_code == 200
