"""The demo STAC metadata is complete and loads with odc-stac and stackstac without workarounds."""

import json

import numpy as np
import pystac
import pytest
import rasterio


def _items(root, cid, n=None, date=None):
    out = []
    with open(root / "stac" / "items" / f"{cid}.ndjson") as f:
        for line in f:
            d = json.loads(line)
            if date and not d["properties"]["datetime"].startswith(date):
                continue
            for a in d["assets"].values():
                a["href"] = str(root / a["href"])  # what the catalogue server does (with http URLs)
            out.append(d)
            if n and len(out) == n:
                break
    return out


def test_collections(small_demo):
    cols = json.loads((small_demo / "stac" / "collections.json").read_text())
    assert [c["id"] for c in cols] == ["sentinel-2-l2a", "sentinel-1-grd", "landsat-c2-l2", "cop-dem-glo-30"]
    for c in cols[:3]:  # (the surface model: its own test below)
        for key in ("title", "description", "license", "providers", "keywords", "summaries", "item_assets"):
            assert c[key], key
        (bbox,) = c["extent"]["spatial"]["bbox"]
        assert 20.0 < bbox[0] < bbox[2] < 21.0 and 47.0 < bbox[1] < bbox[3] < 48.0
        assert c["extent"]["temporal"]["interval"][0][0].startswith("2026-03")
        pystac.Collection.from_dict(c)
    s2 = cols[0]
    assert {b["name"] for b in s2["summaries"]["eo:bands"]} >= {"B02", "B03", "B04", "B08", "B11"}
    assert set(s2["summaries"]["platform"]) == {"sentinel-2a", "sentinel-2b", "sentinel-2c"}


def test_item_metadata(small_demo):
    it = _items(small_demo, "sentinel-2-l2a", 1)[0]
    p = it["properties"]
    assert it["stac_version"] == "1.0.0" and it["links"] == []
    assert "https://stac-extensions.github.io/projection/v2.0.0/schema.json" in it["stac_extensions"]
    assert p["proj:code"] == "EPSG:32634" and p["proj:epsg"] == 32634
    assert p["datetime"].startswith("2026-03-01T09:") and 0 <= p["eo:cloud_cover"] <= 100
    assert it["assets"]["B02"]["proj:shape"] == [256, 256] and it["assets"]["B11"]["proj:shape"] == [128, 128]
    assert it["assets"]["B02"]["proj:transform"][0] == 10 and it["assets"]["B11"]["proj:transform"][0] == 20
    rb = it["assets"]["B04"]["raster:bands"][0]
    assert (rb["scale"], rb["offset"], rb["nodata"], rb["data_type"]) == (0.0001, -0.1, 0, "uint16")
    with rasterio.open(it["assets"]["B11"]["href"]) as d:
        assert list(d.transform)[:6] == it["assets"]["B11"]["proj:transform"]
        assert list(d.shape) == it["assets"]["B11"]["proj:shape"]
    item = pystac.Item.from_dict(it)
    assert item.ext.proj.epsg == 32634
    s1 = _items(small_demo, "sentinel-1-grd", 1)[0]
    assert s1["properties"]["datetime"][11:13] in ("04", "16")
    assert s1["assets"]["vv"]["raster:bands"][0]["nodata"] == -32768


def test_odc_stac_loads(small_demo):
    import odc.stac

    m = json.loads((small_demo / "manifest.json").read_text())
    dates = m["s2_dates"][:2]
    items = [pystac.Item.from_dict(d) for date in dates for d in _items(small_demo, "sentinel-2-l2a", date=date)]
    ds = odc.stac.load(items, bands=["B04", "B11", "SCL"], resolution=10, groupby="solar_day", chunks={})
    assert ds.odc.crs.epsg == 32634
    assert ds.sizes == {"time": 2, "y": 768, "x": 768}
    assert ds["B04"].dtype == np.uint16 and ds["SCL"].dtype == np.uint8
    b04 = ds["B04"].isel(time=0).values
    with rasterio.open(items[0].assets["B04"].href) as d:  # tile r00c00 is the upper-left corner
        assert np.array_equal(b04[:256, :256], d.read(1))
    s1 = [pystac.Item.from_dict(d) for d in _items(small_demo, "sentinel-1-grd", date=m["s1_dates"][0])]
    ds1 = odc.stac.load(s1, bands=["vv", "vh"], chunks={})
    assert ds1.sizes == {"time": 1, "y": 384, "x": 384} and ds1["vv"].dtype == np.float32
    assert float(ds1["vv"].isel(time=0).min()) > 0


def test_stackstac_loads(small_demo):
    stackstac = pytest.importorskip("stackstac")
    m = json.loads((small_demo / "manifest.json").read_text())
    items = _items(small_demo, "sentinel-2-l2a", date=m["s2_dates"][3])
    da = stackstac.stack(items, assets=["B04", "B08"], epsg=32634, resolution=10,
                         fill_value=np.uint16(0), dtype="uint16", rescale=False)
    assert da.shape == (9, 2, 768, 768)
    assert da.attrs["crs"].upper() == "EPSG:32634"
    assert float(da.x.min()) == 470000.0 and float(da.y.max()) == 5285000.0  # stackstac: pixel corners
    mosaic = stackstac.mosaic(da, nodata=0).compute()
    assert mosaic.shape == (2, 768, 768) and int((mosaic == 0).sum()) == 0


def test_the_surface_model_is_a_glo30_look_alike_of_the_scene_relief(small_demo):
    """cop-dem-glo-30: two abutting EPSG:4326 tiles at 1 arc second covering the scene, metres, no
    scaling; mosaicked onto the scene's grid, its slope is steep on the hill and gentle around the
    reservoir, with no seam between the tiles."""
    import warnings

    from odc.geo.geobox import GeoBox

    from eolab.analysis import water
    from eolab.data.load import load_cube

    cols = {c["id"]: c for c in json.loads((small_demo / "stac" / "collections.json").read_text())}
    assert cols["cop-dem-glo-30"]["extent"]["temporal"]["interval"] == [["2021-04-22T00:00:00Z"] * 2]
    west, east = items = _items(small_demo, "cop-dem-glo-30")
    assert west["bbox"][2] == east["bbox"][0]  # abutting
    heights = []
    for item in items:
        pystac.Item.from_dict(item)
        assert item["properties"]["proj:epsg"] == 4326 and item["properties"]["gsd"] == 30
        assert list(item["assets"]) == ["data"]
        with rasterio.open(item["assets"]["data"]["href"]) as src:
            assert src.crs.to_epsg() == 4326 and np.allclose(src.res, 1 / 3600) and src.dtypes[0] == "float32"
            heights.append(src.read(1))
    assert 80 < float(min(z.min() for z in heights)) and float(max(z.max() for z in heights)) > 300
    with rasterio.open(small_demo / "truth" / "surface_s2.tif") as src:
        geobox = GeoBox((src.height, src.width), src.transform, src.crs.to_string())
        shadow = (src.read() == 3).any(0)
    s2 = _items(small_demo, "sentinel-2-l2a", date="2026-12-10")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cube = load_cube(s2, bands=["B03"], geobox=geobox)
    slope = water.terrain_slope(items, cube)
    assert slope.attrs["coverage"] == 1.0 and len(slope.attrs["items"]) == 2
    slope = slope.values
    with rasterio.open(small_demo / "truth" / "water_s2.tif") as src:
        ever_water = src.read().any(0)
    assert np.median(slope[shadow]) > 40  # the shaded hillside is steep
    assert np.quantile(slope[ever_water], 0.999) < water.MAX_WATER_SLOPE  # water lies on flat ground
