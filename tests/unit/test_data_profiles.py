"""Bands by meaning and harmonised values on real items recorded from real providers.

The items come from ../shared/data/stac-real (CDSE, Earth Search v0/v1, Planetary Computer,
Landsat C2); ``load_cube`` is lazy, so these build cubes without reading a pixel.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import eolab
from eolab.config import MemberConfig, ProviderProfile
from eolab.data import profiles
from eolab.errors import EolabError

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "stac-real"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"real STAC samples not found at {REAL} "
                                                          "(../shared/data/stac-real of the project)")


def _item(relative: str) -> dict:
    return json.loads((REAL / relative).read_text())


def _search_item(relative: str, collection: str = "sentinel-2-l2a") -> dict:
    response = json.loads((REAL / "search-responses" / relative).read_text())["response"]
    return next(f for f in response["features"] if f.get("collection") == collection)


@pytest.fixture
def es_v0():
    return _item("odc-stac/S2A_28QCH_20200714_0_L2A.json")


@pytest.fixture
def es_v1():
    return _search_item("test_multiple_collections-0.json")


@pytest.fixture
def pc():
    return _item("odc-stac/S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json")


@pytest.fixture
def cdse():
    return _item("cdse/S2A_MSIL2A_20220217T183431_N0510_R027_T13VEK_20240516T022440.json")


def test_earth_search_v0_default_bands_load_reflectance_not_raw_dn(es_v0):
    cube = eolab.load_cube([es_v0], resolution=60)
    assert {"B02", "B03", "B04", "B08", "B11", "B12"} <= set(cube.data_vars)
    assert cube.B04.attrs["scale_applied"] == 0.0001
    assert cube.B04.attrs["offset_applied"] == 0.0  # July 2020: before processing baseline 04.00
    assert cube.B04.attrs["values_from"] == "sentinel-2 convention"
    assert "clear" in cube  # its SCL asset (no roles at all) masks clouds
    named = eolab.load_cube([es_v0], bands=["red", "nir"], resolution=60)
    assert named.red.attrs["asset"] == "B04" and named.nir.attrs["asset"] == "B08"


def test_earth_search_v1_common_name_keys_answer_to_every_naming(es_v1):
    cube = eolab.load_cube([es_v1], bands=["B03", "nir", "rededge1", "swir16", "SCL"], resolution=60, mask=None)
    assets = {b: cube[b].attrs.get("asset") for b in ("B03", "nir", "rededge1", "swir16")}
    assert assets == {"B03": "green", "nir": "nir", "rededge1": "rededge1", "swir16": "swir16"}
    assert cube.B03.attrs["offset_applied"] == -0.1 and cube.B03.attrs["values_from"] == "metadata"
    assert str(cube.SCL.dtype) == "uint8"


def test_planetary_computer_item_loads_without_fetching_its_root(pc):
    cube = eolab.load_cube([pc], bands=["red", "nir08", "rededge1", "SCL"], resolution=60)
    assert cube.red.attrs["asset"] == "B04"
    assert cube.nir08.attrs["asset"] == "B8A"  # PC calls B8A 'rededge': the wavelength tells
    assert cube.rededge1.attrs["asset"] == "B05"
    assert cube.red.attrs["scale_applied"] == 0.0001 and cube.red.attrs["offset_applied"] == 0.0  # baseline 02.12
    record = cube.attrs["eolab:provenance"]["items"][0]
    assert record["href"].endswith(pc["id"])


def test_processing_baseline_04_offset_applied_where_metadata_does_not(pc):
    newer = copy.deepcopy(pc)
    newer["properties"]["s2:processing_baseline"] = "05.09"
    newer["properties"]["datetime"] = "2023-06-29T21:25:29Z"
    cube = eolab.load_cube([newer], bands=["red"], resolution=60)
    assert cube.red.attrs["offset_applied"] == -0.1
    assert profiles.sentinel2_offset({"id": "x", "properties": {"datetime": "2022-03-01T00:00:00Z"}}) == -0.1
    assert profiles.sentinel2_offset({"id": "x", "properties": {"datetime": "2021-03-01T00:00:00Z"}}) == 0.0
    # A time series across the baseline change: each date gets its own offset.
    series = eolab.load_cube([newer, pc], bands=["red"], resolution=60, mask=None)
    assert series.red.attrs["offset_applied"] == [0.0, -0.1]  # 2019 (02.12), 2023 (05.09)


def test_per_date_offsets_are_applied_chunk_by_chunk():
    import dask.array
    import numpy as np

    from eolab.data.load import _to_physical

    dn = dask.array.from_array(np.full((4, 2, 2), 2000, dtype="uint16"), chunks=(1, 2, 2))
    out = dask.array.map_blocks(_to_physical, dn, dtype="float32", scale=np.full(4, 1e-4),
                                offset=np.array([0.0, 0.0, -0.1, -0.1]), nodata=0, masked=None,
                                out_dtype=np.dtype("float32")).compute()
    np.testing.assert_allclose(out[:, 0, 0], [0.2, 0.2, 0.1, 0.1], atol=1e-6)


def test_cdse_stac11_item_bands_scaling_and_mask(cdse):
    cube = eolab.load_cube([cdse], bands=["red", "B08", "rededge1", "nir08", "SCL"], resolution=60)
    assets = {b: cube[b].attrs.get("asset") for b in ("red", "B08", "rededge1", "nir08")}
    assert assets == {"red": "B04_10m", "B08": "B08_10m", "rededge1": "B05_20m", "nir08": "B8A_20m"}
    assert cube.red.attrs["scale_applied"] == 0.0001 and cube.red.attrs["offset_applied"] == -0.1
    assert cube.red.attrs["values_from"] == "metadata"
    assert "clear" in cube
    assert profiles.mask_asset(cdse) == "SCL_20m"
    default = eolab.load_cube([cdse], resolution=60)
    assert "B04_10m" in default and "B04_20m" not in default and "AOT_10m" not in default


def test_landsat_nir_is_nir08():
    item = _item("odc-stac/LC08_L2SP_028030_20200114_20200824_02_T1_SR.json")
    assert profiles.resolve_band(item, "nir") == "nir08"
    assert profiles.resolve_band(item, "red") == "red"
    assert profiles.resolve_band(item, "rededge1") is None


def test_missing_band_names_provider_asset_and_setting(es_v1):
    item = dict(es_v1, collection="earth-search|sentinel-2-l2a")
    with pytest.raises(EolabError) as info:
        eolab.load_cube([item], bands=["B99"], resolution=60)
    text = str(info.value)
    assert "'earth-search'" in text and "'B99'" in text and "profile: bands:" in text and "red" in text


def test_profile_from_configuration_maps_names_and_scales(es_v0):
    bare = copy.deepcopy(es_v0)
    bare["collection"] = "demo-x"
    bare["assets"]["band_four"] = bare["assets"].pop("B04")
    profile = ProviderProfile(bands={"red": "band_four"}, scale=0.0002, offset=-0.05)
    cube = eolab.load_cube([bare], bands=["red"], resolution=60, profile=profile, mask=None)
    assert cube.red.attrs["asset"] == "band_four"
    assert (cube.red.attrs["scale_applied"], cube.red.attrs["offset_applied"]) == (0.0002, -0.05)
    assert cube.red.attrs["values_from"] == "profile"
    member = MemberConfig.model_validate({"id": "x", "url": "https://example.org/stac",
                                          "profile": {"bands": {"red": "band_four"}, "access": "sas",
                                                      "token_url": "https://example.org/token"}})
    assert member.profile.access == "sas"
    with pytest.raises(ValueError):
        MemberConfig.model_validate({"id": "x", "url": "https://e.org", "profile": {"access": "ftp"}})


def test_onboarding_report_on_recorded_real_items(cdse, es_v0):
    from eolab.data import onboarding

    report = onboarding.describe_item(cdse)
    text = report.text()
    assert "red=B04_10m" in text and "cloud/quality mask: SCL_20m" in text and "(from metadata)" in text
    assert report.passed
    old = onboarding.describe_item(es_v0).text()
    assert "red=B04" in old and "sentinel-2 convention" in old and "[warn]" in old


def test_onboarding_check_names_an_unreachable_member():
    import socket

    from eolab.data import onboarding

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    report = onboarding.check(f"http://127.0.0.1:{port}/stac")
    assert not report.passed
    assert f"127.0.0.1:{port}/stac did not answer" in report.text()


@pytest.mark.parametrize("answers, words", [
    ({"/": [1, 2]}, "landing page: http://HOST answered a JSON list, not an object"),
    ({"/collections": {"collections": [{"title": "no id"}]}}, "1 of 1 entries are not STAC objects with an id"),
    ({"/collections": {"collections": "sentinel-2"}}, "'collections' is a str, not a list"),
    ({"/collections": {"collections": [None]}}, "1 of 1 entries are not STAC objects"),
    ({"/collections": {"collections": [{"id": "s2", "extent": "world"}]}}, "its extent is not STAC's"),
    ({"/search": [1]}, "sample search: http://HOST/search answered a JSON list"),
    ({"/search": {"features": [None]}}, "sample search in s2: 1 of 1 entries are not STAC objects"),
    ({"/search": {"features": [{"id": "i1"}]}}, "item i1: 'assets' is not an object of assets with an href each"),
    ({"/search": {"features": [{"id": "i1", "assets": {"B04": "x.tif"}}]}}, "item i1: 'assets' is not an object"),
])
def test_onboarding_check_reports_a_broken_stac_api_line_by_line(answers, words):
    """Every malformed answer is a FAIL line naming it (before: AttributeError, KeyError tracebacks)."""
    import http.server
    import json
    import threading

    from eolab.data import onboarding

    good = {"/": {"conformsTo": ["https://api.stacspec.org/v1.0.0/item-search"], "links": []},
            "/collections": {"collections": [{"id": "s2", "extent": {}}]},
            "/search": {"features": [], "links": []}}
    served = {**good, **answers}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = json.dumps(served[self.path.split("?")[0].rstrip("/") or "/"]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_port}"
    try:
        report = onboarding.check(f"http://{host}", read=False)
    finally:
        server.shutdown()
    assert not report.passed
    assert words.replace("HOST", host) in report.text()


@pytest.mark.parametrize("target", ["http://[::1", "http://127.0.0.1:abc"])
def test_onboarding_check_names_a_url_that_is_not_one(target):
    from eolab.data import onboarding

    report = onboarding.check(target)
    assert not report.passed and f"{target!r} is not a URL" in report.text()


def test_read_estimate_before_computing(cdse):
    from eolab.data.load import read_estimate

    item = dict(cdse, collection="cdse|sentinel-2-l2a")
    cube = eolab.load_cube([item], bands=["red", "nir"], resolution=60)
    estimate = read_estimate(cube)
    ny, nx = cube.odc.geobox.shape
    assert estimate["assets"] == 3  # red, nir and the SCL mask
    assert estimate["bytes_decoded"] == ny * nx * (2 + 2 + 1)  # uint16, uint16, uint8
    cdse_part = estimate["providers"]["cdse"]
    assert cdse_part["seconds_at_rate"] == round(estimate["bytes_decoded"] / 20e6, 1)  # CDSE's 20 MB/s
