"""Quicklook styles (band math, colours, nodata) and tile URL templates, without a server."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from eolab.config import DEFAULT_CONFIG, load_config
from eolab.errors import EolabError
from eolab.tiles import asset_tiles, base_tiles, item_tiles, panel_cdn_root, request_headers, tile_service
from eolab.tiles._render import RAMP, STYLES, band_assets, colourise, ndvi, physical


def s2_item(with_eo_bands=True, self_link=True):
    def asset(key, common):
        a = {"href": f"http://127.0.0.1:1/{key}.tif",
             "raster:bands": [{"scale": 0.0001, "offset": -0.1, "nodata": 0}]}
        if with_eo_bands:
            a["eo:bands"] = [{"name": key, "common_name": common}]
        return a
    links = [{"rel": "self", "href": "http://127.0.0.1:2/collections/p|s2/items/x"}] if self_link else []
    return {"id": "x", "links": links, "assets": {
        "B02": asset("B02", "blue"), "B03": asset("B03", "green"), "B04": asset("B04", "red"),
        "B8A": asset("B8A", "nir08"), "B08": asset("B08", "nir")}}


def test_ndvi_colours_follow_the_ramp_and_nodata_is_transparent():
    nir = np.array([[0.5, 0.3, np.nan]], "float32")
    red = np.array([[0.1, 0.3, 0.1]], "float32")
    values = ndvi(nir, red)
    assert values[0, 0] == pytest.approx(2 / 3) and values[0, 1] == 0 and np.isnan(values[0, 2])
    rgb, alpha = colourise(STYLES["ndvi"], {"nir": nir, "red": red})
    assert alpha.tolist() == [[255, 255, 0]]
    index = int((2 / 3 + 0.2) / 1.1 * 255 + 0.5)
    assert rgb[:, 0, 0].tolist() == RAMP[index].tolist()
    assert rgb[1, 0, 0] > rgb[0, 0, 0]  # dense vegetation is green, not red
    assert rgb[:, 0, 2].tolist() == [0, 0, 0]


def test_true_colour_stretch_and_physical_values():
    dn = np.array([[0, 1000, 3500, 20000]], "uint16")
    refl = physical(dn, dn != 0, 0.0001, -0.1)
    assert np.isnan(refl[0, 0]) and refl[0, 1] == pytest.approx(0.0, abs=1e-6) and refl[0, 2] == pytest.approx(0.25)
    rgb, alpha = colourise(STYLES["truecolor"], {"red": refl, "green": refl, "blue": refl})
    assert rgb[0].tolist() == [[0, 0, 255, 255]] and alpha.tolist() == [[0, 255, 255, 255]]


def test_band_assets_by_common_name_then_by_key():
    item = s2_item()
    assert band_assets(item, ("nir", "red"))["nir"]["href"].endswith("/B08.tif")  # not B8A (nir08)
    plain = s2_item(with_eo_bands=False)
    assert band_assets(plain, ("red", "green", "blue"))["blue"]["href"].endswith("/B02.tif")
    with pytest.raises(EolabError, match="item x has no nir or red band"):
        band_assets({"id": "x", "assets": {"VV": {"href": "a"}}}, ("nir", "red"))


def test_url_templates():
    tiles = "http://127.0.0.1:8730"
    url = item_tiles(s2_item(), "ndvi", url=tiles)
    assert url.startswith(f"{tiles}/item/{{z}}/{{x}}/{{y}}.png?")
    query = parse_qs(urlsplit(url).query)
    assert query == {"url": ["http://127.0.0.1:2/collections/p|s2/items/x"], "style": ["ndvi"]}
    by_href = parse_qs(urlsplit(item_tiles(s2_item(self_link=False), "falsecolor", url=tiles)).query)
    assert by_href["nir"] == ["http://127.0.0.1:1/B08.tif"] and by_href["green"] == ["http://127.0.0.1:1/B03.tif"]
    assert by_href["scale"] == ["0.0001"] and by_href["offset"] == ["-0.1"] and by_href["nodata"] == ["0"]
    assert parse_qs(urlsplit(asset_tiles({"red": "r", "green": "g", "blue": "b"}, url=tiles)).query)["style"] == ["truecolor"]
    assert base_tiles(tiles) == f"{tiles}/base/{{z}}/{{x}}/{{y}}.png"
    with pytest.raises(EolabError, match="unknown quicklook style 'infrared'"):
        item_tiles(s2_item(), "infrared", url=tiles)


def test_tiles_url_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("EOLAB_TILES_URL", raising=False)
    with pytest.raises(EolabError, match="no tile service URL given"):
        base_tiles()
    monkeypatch.setenv("EOLAB_TILES_URL", "http://127.0.0.1:9999/")
    assert base_tiles() == "http://127.0.0.1:9999/base/{z}/{x}/{y}.png"


def test_browsers_get_the_hubs_tile_address_and_the_kernel_the_service_itself(monkeypatch):
    """On the hub, map layers and Panel's files go through /services/tiles (its login decides);
    the kernel's own requests go to the service with the service token, to loopback only."""
    monkeypatch.setenv("EOLAB_TILES_URL", "http://127.0.0.1:9999")
    monkeypatch.setenv("EOLAB_TILES_BROWSER_URL", "/services/tiles/")
    monkeypatch.setenv("EOLAB_SERVICE_TOKEN", "s3cret")
    monkeypatch.delenv("EOLAB_TILES_PASS_URL", raising=False)  # not in a hub server: no map pass
    assert base_tiles() == "/services/tiles/base/{z}/{x}/{y}.png"
    assert panel_cdn_root() == "/services/tiles/static/panel/"
    assert item_tiles(s2_item(), "ndvi").startswith("/services/tiles/item/{z}/{x}/{y}.png?")
    hrefs = {"red": "http://127.0.0.1:1/a.tif", "nir": "http://127.0.0.1:1/b.tif"}
    assert asset_tiles(hrefs, "ndvi").startswith("/services/tiles/assets/")
    # An explicit address wins (a notebook pointing at another tile service).
    assert base_tiles("http://127.0.0.1:7/") == "http://127.0.0.1:7/base/{z}/{x}/{y}.png"
    assert request_headers("http://127.0.0.1:9999/base/info") == {"Authorization": "Bearer s3cret"}
    assert request_headers("https://tiles.example.org/base/info") == {}
    monkeypatch.delenv("EOLAB_SERVICE_TOKEN")
    assert request_headers("http://127.0.0.1:9999/base/info") == {}


def test_tile_service_follows_the_port_offset(tmp_path):
    config = load_config(DEFAULT_CONFIG, data_dir=str(tmp_path), port_offset=1000)
    service = tile_service(config)
    assert service.name == "tiles" and service.port == 9730 and service.ready_path == "/_health"
    assert service.cmd[service.cmd.index("--host") + 1] == "127.0.0.1" and "eolab.tiles.app:create_app" in service.cmd
    assert service.env["EOLAB_TILES_BASE_DIR"] == str(Path(tmp_path).resolve())
    # Its guard must see the real peer, not a forwarded-for header.
    assert "--no-proxy-headers" in service.cmd
    assert tile_service(config, port=12345).port == 12345


def test_a_map_pass_is_genuine_unexpired_and_its_users_own():
    from eolab.tiles import _pass

    key = _pass.key("service-token")
    value = _pass.mint(key, "alice", now=1000.0, lifetime=60)
    assert _pass.verify(key, value, now=1059.0) == "alice"
    assert _pass.verify(key, value, now=1061.0) is None  # expired
    assert _pass.verify(_pass.key("another-token"), value, now=1000.0) is None  # not this hub's
    user, expiry, signature = value.split(".")
    assert _pass.verify(key, f"bob.{expiry}.{signature}", now=1000.0) is None  # renamed
    assert _pass.verify(key, f"alice.{int(expiry) + 10**6}.{signature}", now=1000.0) is None  # extended
    for broken in (None, "", "alice", "alice.x.y", f"alice.{expiry}.", "...", "alice.².abc", f"alice.{expiry}.é",
                   f"alice.{expiry}.{signature.upper()}",
                   "alice." + expiry.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")) + f".{signature}"):
        assert _pass.verify(key, broken, now=1000.0) is None  # before: ValueError/TypeError (a 500 at the gate)
    # OIDC logins may hold dots; the pass still names them whole.
    dotted = _pass.mint(key, "eolab-jane.doe", now=1000.0, lifetime=60)
    assert _pass.verify(key, dotted, now=1000.0) == "eolab-jane.doe"
    assert _pass.verify(key, "eolab-jane." + dotted.split(".", 2)[2], now=1000.0) is None  # another user
    with pytest.raises(ValueError):
        _pass.mint(key, "")


def test_maps_in_a_hub_server_carry_one_pass_asked_once_with_the_hub_token(monkeypatch):
    """A hub kernel asks the gate once (with its hub token) and puts the pass in every tile URL."""
    import http.server
    import json
    import threading

    import eolab.tiles as tiles

    asked = []

    class Gate(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append((self.path, self.headers.get("Authorization")))
            ok = self.headers.get("Authorization") == "token hub-token"
            body = json.dumps({"pass": "alice.99999999999.abc"} if ok else {"error": "no"}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gate)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(tiles, "_pass_cache", {})
        monkeypatch.setenv("EOLAB_TILES_URL", "http://127.0.0.1:9999")
        monkeypatch.setenv("EOLAB_TILES_BROWSER_URL", "/services/tiles")
        monkeypatch.setenv("EOLAB_TILES_PASS_URL", f"http://127.0.0.1:{server.server_port}/services/tiles/_gate/pass")
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token")
        assert base_tiles() == "/services/tiles/base/{z}/{x}/{y}.png?eolab_pass=alice.99999999999.abc"
        query = parse_qs(urlsplit(item_tiles(s2_item(), "ndvi")).query)
        assert query["eolab_pass"] == ["alice.99999999999.abc"] and query["style"] == ["ndvi"]
        assert asked == [("/services/tiles/_gate/pass", "token hub-token")]  # asked once, then kept
        # Maps built at the same moment in threads still ask once.
        monkeypatch.setattr(tiles, "_pass_cache", {})
        asked.clear()
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            urls = list(pool.map(lambda _: base_tiles(), range(8)))
        assert set(urls) == {"/services/tiles/base/{z}/{x}/{y}.png?eolab_pass=alice.99999999999.abc"}
        assert len(asked) == 1
        # A refused request leaves maps without a pass and says so.
        monkeypatch.setattr(tiles, "_pass_cache", {})
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "wrong")
        with pytest.warns(UserWarning, match="no map pass"):
            assert base_tiles() == "/services/tiles/base/{z}/{x}/{y}.png"
    finally:
        server.shutdown()
