"""Landsat Collection 2 Level-2: its scaling, its QA_PIXEL bits and its missing red edge, on the real
USGS item recorded in ../shared/data/stac-real, and the demo's Landsat look-alike (eolab.demo._landsat)
checked against the Sentinel-2 data it was made from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

import eolab
from eolab.data import load, profiles
from eolab.demo import _landsat
from eolab.errors import EolabError

REAL_ITEM = (Path(__file__).resolve().parents[3] / "shared" / "data" / "stac-real" / "odc-stac"
             / "LC08_L2SP_028030_20200114_20200824_02_T1_SR.json")
needs_real = pytest.mark.skipif(not REAL_ITEM.exists(), reason=f"recorded USGS Landsat item not found at {REAL_ITEM}")

# QA_PIXEL values of Landsat 8/9 Collection 2 (the USGS Level-2 Science Product Guide's table)
USGS_VALUES = {1: 0, 21824: 7, 21952: 6, 22280: 9, 23888: 3, 30048: 11, 54596: 10}


@pytest.fixture
def usgs_item():
    return json.loads(REAL_ITEM.read_text())


@needs_real
def test_usgs_item_reads_by_meaning_with_the_collection_2_scaling(usgs_item):
    assert profiles.is_landsat_c2_l2(usgs_item)
    # Sentinel-2 names and common names find Landsat's assets; nir is nir08 (OLI has one NIR band)
    assert [profiles.resolve_band(usgs_item, b) for b in ("B02", "green", "B04", "nir", "B8A", "B11", "swir22")] == \
        ["blue", "green", "red", "nir08", "nir08", "swir16", "swir22"]
    assert profiles.mask_asset(usgs_item) == "qa_pixel"
    values = profiles.band_values(usgs_item, "red")
    assert (values.scale, values.offset, values.nodata) == (0.0000275, -0.2, 0)
    assert values.source == "landsat c2 l2 convention"  # the USGS item states no scale
    cube = eolab.load_cube([usgs_item], bands=["red", "nir", "SCL"], resolution=300)
    assert cube.red.attrs["values_from"] == "landsat c2 l2 convention" and cube.nir.attrs["asset"] == "nir08"
    assert "clear" in cube and cube.attrs["eolab:provenance"]["parameters"]["mask"] == "qa_pixel"
    # items whose metadata states the scaling (Planetary Computer's) are read by it
    stated = json.loads(json.dumps(usgs_item))
    stated["assets"]["red"]["raster:bands"] = [{"scale": 0.0000275, "offset": -0.2, "nodata": 0}]
    assert profiles.band_values(stated, "red").source == "metadata"


@needs_real
def test_red_edge_on_landsat_names_the_sensor_and_the_index(usgs_item):
    with pytest.raises(EolabError) as info:
        eolab.load_cube([usgs_item], bands=["rededge1", "nir08"], resolution=300)
    text = str(info.value)
    assert "is Landsat" in text and "red-edge" in text and "NDRE" in text and "Sentinel-2" in text
    with pytest.raises(EolabError, match="is Landsat"):
        eolab.load_cube([usgs_item], bands=["B05"], resolution=300)


def test_qa_pixel_bits_become_the_scl_classes_they_mean():
    qa = np.array(list(USGS_VALUES), dtype=np.uint16)
    assert load.qa_pixel_to_scl(qa).tolist() == list(USGS_VALUES.values())
    # outside the scene (nothing read: 0 or NaN) is no data; cloud wins over the other bits
    assert load.qa_pixel_to_scl(np.array([0.0, np.nan, 1 << 3 | 1 << 4 | 1 << 5])).tolist() == [0, 0, 9]
    # the classes the default mask removes: cloud, dilated cloud, cirrus, shadow, fill
    masked = np.isin(load.qa_pixel_to_scl(qa), load.DEFAULT_MASK_CLASSES)
    assert masked.tolist() == [True, False, False, True, True, False, True]


def test_demo_qa_pixel_says_what_the_scl_said():
    # medium-probability cloud is Landsat's dilated cloud (8), and Landsat has no dark-area class (2)
    expected = {0: 0, 3: 3, 4: 7, 5: 7, 6: 6, 8: 8, 9: 9, 10: 10, 11: 11, 2: 7}
    for code, scl_class in expected.items():
        qa = _landsat.qa_pixel(np.full((2, 2), code, np.uint8), 1)  # one 30 m pixel of 20 m SCL
        assert load.qa_pixel_to_scl(qa).tolist() == [[scl_class]], code
    qa = _landsat.qa_pixel(np.full((2, 2), 9, np.uint8), 1)
    assert qa[0, 0] & _landsat.CLOUD and not qa[0, 0] & _landsat.CLEAR
    qa = _landsat.qa_pixel(np.full((2, 2), 6, np.uint8), 1)
    assert qa[0, 0] & _landsat.WATER and qa[0, 0] & _landsat.CLEAR
    # one cloudy part makes the 30 m pixel cloud; four snowy 10 m parts of nine do not make it snow
    part = np.full((6, 6), 4, np.uint8)  # 20 m SCL under four 30 m pixels (and more)
    part[0, 0] = 8
    part[2, 2] = 11
    assert load.qa_pixel_to_scl(_landsat.qa_pixel(part, 2)).tolist() == [[8, 7], [7, 7]]
    # as in real QA: bit 3 only with high confidence; cirrus and shadow pixels are "clear" (bit 6)
    medium = _landsat.qa_pixel(np.full((2, 2), 8, np.uint8), 1)[0, 0]
    assert not medium & _landsat.CLOUD and medium & _landsat.DILATED and (medium >> 8) & 3 == 2
    assert _landsat.qa_pixel(np.full((2, 2), 3, np.uint8), 1)[0, 0] & _landsat.CLEAR


def test_demo_landsat_is_the_sentinel2_scene_at_30_m(small_demo):
    manifest = json.loads((small_demo / "manifest.json").read_text())
    items = [json.loads(line) for line in (small_demo / "stac" / "items" / "landsat-c2-l2.ndjson").open()]
    assert len(items) == len(manifest["s2_dates"]) == manifest["collections"]["landsat-c2-l2"]
    item = items[7]
    assert set(item["assets"]) == {"blue", "green", "red", "nir08", "swir16", "swir22", "qa_pixel"}
    assert not any("raster:bands" in a for a in item["assets"].values())  # as the USGS items: no scaling stated
    assert profiles.is_landsat_c2_l2(item)
    day = item["properties"]["datetime"][:10].replace("-", "")
    n = manifest["shape"][0]
    m = n // 3
    for key, s2_band in (("blue", "B02"), ("green", "B03"), ("red", "B04")):
        mosaic = np.zeros((n, n))
        for gid in manifest["tiles"]:
            r, c = int(gid[1:3]), int(gid[4:6])
            tile = small_demo / "s2" / f"{next(p.name for p in (small_demo / 's2').glob(f'S2?_MSIL2A_{day}_{gid}'))}"
            with rasterio.open(tile / f"{s2_band}.tif") as src:
                mosaic[r * 256:(r + 1) * 256, c * 256:(c + 1) * 256] = src.read(1) * 0.0001 - 0.1
        with rasterio.open(small_demo / item["assets"][key]["href"]) as src:
            assert src.res == (30.0, 30.0) and src.shape == (m, m)
            assert src.transform.c == manifest["transform"][2] and src.transform.f == manifest["transform"][5]
            landsat = src.read(1) * _landsat.SCALE + _landsat.OFFSET
        block_mean = mosaic[: m * 3, : m * 3].reshape(m, 3, m, 3).mean(axis=(1, 3))
        # the same surface: equal within both quantisations (1e-4 and 2.75e-5 steps)
        np.testing.assert_allclose(landsat, block_mean, atol=1e-4)
    with rasterio.open(small_demo / item["assets"]["qa_pixel"]["href"]) as src:
        qa = src.read(1)
    assert src.nodata == 1 and (qa & _landsat.CLEAR).any()


@needs_real
def test_qa_pixel_wins_over_other_quality_bands_and_thermal_bands_stay_thermal(usgs_item):
    """Landsat 4-7 items also carry SR_CLOUD_QA (another bit layout, roles cloud/cloud-shadow): the
    mask is still QA_PIXEL. A thermal band named B11 (Landsat 8/9 Level-1) is not Sentinel-2's B11."""
    item = json.loads(json.dumps(usgs_item))
    item["id"] = item["id"].replace("LC08", "LE07")
    item["assets"]["cloud_qa"] = {"href": item["assets"]["qa_pixel"]["href"].replace("QA_PIXEL", "SR_CLOUD_QA"),
                                  "type": "image/vnd.stac.geotiff; cloud-optimized=true",
                                  "roles": ["metadata", "cloud", "cloud-shadow", "snow-ice", "water-mask"]}
    assert profiles.mask_asset(item) == "qa_pixel" and load.carries_scl([item])
    thermal = json.loads(json.dumps(usgs_item))
    del thermal["assets"]["swir16"]
    thermal["assets"]["lwir12"] = {"href": "x_B11.TIF", "roles": ["data"],
                                   "eo:bands": [{"name": "B11", "common_name": "lwir12", "center_wavelength": 12.0}]}
    assert profiles.resolve_band(thermal, "swir16") is None and profiles.resolve_band(thermal, "B11") is None
    assert "lwir12" not in profiles.default_bands(thermal)


def test_qa_pixel_asked_by_name_keeps_its_bits(small_demo):
    items = [json.loads(line) for line in (small_demo / "stac" / "items" / "landsat-c2-l2.ndjson").open()][:2]
    for item in items:
        for asset in item["assets"].values():
            asset["href"] = str(small_demo / asset["href"])
    cube = eolab.load_cube(items, bands=["red", "qa_pixel", "SCL"], resolution=30, crs="EPSG:32634").compute()
    assert cube.qa_pixel.dtype == np.uint16 and cube.SCL.dtype == np.uint8
    cloud = (cube.qa_pixel & _landsat.CLOUD) > 0
    assert bool(cloud.any()) and bool((cube.SCL.where(cloud) == 9).sum() == cloud.sum())
    assert cube.red.where(cloud).isnull().all()  # masked in the reflectance


def test_stack_makes_demo_data_anew_when_an_enabled_member_needs_a_collection_it_lacks(tmp_path, monkeypatch):
    """Demo data made before the Landsat look-alike: with look-alikes on, the stack regenerates them
    with the same size and seed (seeded, so the other collections come out the same) instead of
    failing to load the member."""
    import eolab.demo
    from eolab.stack import core
    from eolab.testing.stack import make_stack_config

    data = tmp_path / "data"
    data.mkdir()
    old = {"generator": "eolab.demo", "size": "small", "seed": 7,
           "collections": {"sentinel-2-l2a": 1, "sentinel-1-grd": 1, "cop-dem-glo-30": 1}}
    (data / "manifest.json").write_text(json.dumps(old))
    calls = []

    def fake_generate(out, size, seed=0, progress=True):
        calls.append((str(out), size, seed))
        (data / "manifest.json").write_text(json.dumps(dict(old, collections={**old["collections"],
                                                                              "landsat-c2-l2": 1})))

    monkeypatch.setattr(eolab.demo, "generate", fake_generate)
    monkeypatch.delenv("EOLAB_LOOKALIKES", raising=False)
    assert core.ensure_demo_data(make_stack_config(tmp_path / "run", data, offset=0), progress=False) == old
    assert calls == []  # look-alikes off: nothing wants the new collection
    monkeypatch.setenv("EOLAB_LOOKALIKES", "1")
    manifest = core.ensure_demo_data(make_stack_config(tmp_path / "run", data, offset=0), progress=False)
    assert calls == [(str(data), "small", 7)] and "landsat-c2-l2" in manifest["collections"]


@needs_real
def test_sensor_name_for_titles(usgs_item):
    s2 = {"collection": "sentinel-2-l2a", "properties": {"platform": "sentinel-2a"}, "assets": {}}
    assert profiles.sensor_name([usgs_item]) == "Landsat"
    assert profiles.sensor_name([s2, s2]) == "Sentinel-2"
    assert profiles.sensor_name([s2, usgs_item]) == "Landsat + Sentinel-2"
