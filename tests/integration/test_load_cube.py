"""Loading a cube from two real providers over HTTP: values, CRS, dates and masking."""

import copy
import datetime as dt
import json

import dask.array
import httpx
import numpy as np
import pystac_client
import pytest
import rasterio
from pyproj import Transformer

import eolab
from eolab.data.load import DEFAULT_CHUNKS, DEFAULT_MASK_CLASSES
from eolab.errors import EolabError


def scene_window_bbox(manifest, size_m=1200.0):
    """A lon/lat box of ``size_m`` in the middle of the scene (it spans a tile corner)."""
    left, bottom, right, top = manifest["bounds"]
    cx, cy = (left + right) / 2, (bottom + top) / 2
    to_wgs84 = Transformer.from_crs(manifest["crs"], "EPSG:4326", always_xy=True)
    (x0, x1), (y0, y1) = (cx - size_m / 2, cx + size_m / 2), (cy - size_m / 2, cy + size_m / 2)
    lons, lats = to_wgs84.transform([x0, x1, x0, x1], [y0, y0, y1, y1])
    return [min(lons), min(lats), max(lons), max(lats)]


@pytest.fixture(scope="module")
def two_provider_items(catalog_stack):
    config = catalog_stack
    manifest = json.loads((config.data_dir / "manifest.json").read_text())
    bbox = scene_window_bbox(manifest)
    items = []
    for member_id in ("pannonia", "danube"):
        client = pystac_client.Client.open(config.member_url(config.member(member_id)))
        found = list(client.search(collections=["sentinel-2-l2a"], bbox=bbox).items())
        assert found, member_id
        items += found
    return config, manifest, bbox, items


@pytest.fixture(scope="module")
def cubes(two_provider_items):
    config, manifest, bbox, items = two_provider_items
    masked = eolab.load_cube(items, bands=["B04", "B08"], bbox=bbox, resolution=10)
    raw = eolab.load_cube(items, bands=["B04", "B08", "SCL"], bbox=bbox, resolution=10, mask=None)
    return masked, raw


def test_cube_is_lazy_in_the_scene_crs_with_every_date_of_both_providers(two_provider_items, cubes):
    _, manifest, _, items = two_provider_items
    masked, _ = cubes
    assert isinstance(masked.B04.data, dask.array.Array)
    assert masked.odc.crs.epsg == 32634
    assert masked.odc.geobox.resolution.x == 10
    days = [str(t)[:10] for t in masked.time.values]
    assert days == sorted(manifest["s2_dates"])
    july = dt.date(2026, 7, 1).isoformat()
    assert min(days) < july <= max(days)
    ids = {record["id"] for record in masked.attrs["eolab:provenance"]["items"]}
    assert ids == {item.id for item in items}


def test_values_are_reflectance_read_straight_from_the_cog(two_provider_items, cubes):
    config, _, _, items = two_provider_items
    masked, raw = cubes
    item = items[0]
    t = np.datetime64(item.datetime.replace(tzinfo=None))
    day_cube = raw.sel(time=t, method="nearest")
    relative = item.assets["B08"].href.split(config.assets_url + "/", 1)[1]
    with rasterio.open(config.data_dir / relative) as src:
        x = float(day_cube.x[len(day_cube.x) // 3])
        y = float(day_cube.y[len(day_cube.y) // 3])
        if not (src.bounds.left < x < src.bounds.right and src.bounds.bottom < y < src.bounds.top):
            x = (src.bounds.left + src.bounds.right) / 2
            y = (src.bounds.bottom + src.bounds.top) / 2
        dn = next(src.sample([(x, y)]))[0]
    expected = dn * 0.0001 - 0.1  # the item's raster:bands scale and offset
    value = float(day_cube.B08.sel(x=x, y=y, method="nearest"))
    assert value == pytest.approx(expected, abs=1e-6)
    reflectance = raw.B08.values
    # DN 0 is nodata: had it not become NaN it would read as exactly -0.1.
    assert -0.1 < np.nanmin(reflectance) and np.nanmax(reflectance) < 1.2


def test_scl_masking_removes_exactly_the_masked_classes(cubes):
    masked, raw = cubes
    cloudy = np.isin(raw.SCL.values, DEFAULT_MASK_CLASSES)
    assert 0.02 < cloudy.mean() < 0.9  # the season has clouds, and clear views
    b04 = masked.B04.values
    assert np.isnan(b04[cloudy]).all()
    assert not np.isnan(b04[~cloudy]).any()
    np.testing.assert_array_equal(masked.clear.values, ~cloudy)
    assert masked.attrs["eolab:provenance"]["parameters"]["mask_classes"] == list(DEFAULT_MASK_CLASSES)


def test_bad_requests_name_the_problem(two_provider_items):
    _, _, bbox, items = two_provider_items
    with pytest.raises(EolabError, match="has no asset for band 'B99'"):
        eolab.load_cube(items, bands=["B99"], bbox=bbox)
    with pytest.raises(EolabError, match="no items to load"):
        eolab.load_cube([], bands=["B04"])
    with pytest.raises(EolabError, match="mask='clouds' is not known"):
        eolab.load_cube(items, bands=["B04"], mask="clouds")


def test_cube_through_the_broker_names_each_items_provider(catalog_stack, two_provider_items):
    config, manifest, bbox, items = two_provider_items
    first = httpx.get(f"{config.broker_url}/search", params={"collections": "sentinel-2-l2a",
                                                            "bbox": ",".join(map(str, bbox))}, timeout=60).json()
    assert first["federation:missing"] == []
    catalog = eolab.open_catalog(config.broker_url)
    federated = list(catalog.search(collections=["sentinel-2-l2a"], bbox=bbox).items())
    assert sorted(i.id for i in federated) == sorted(i.id for i in items)
    cube = eolab.load_cube(federated, bands=["B04"], bbox=bbox, resolution=20)
    assert [str(t)[:10] for t in cube.time.values] == sorted(manifest["s2_dates"])
    providers = {r["provider"] for r in cube.attrs["eolab:provenance"]["items"]}
    assert providers == {"pannonia", "danube"}
    assert {r["collection"] for r in cube.attrs["eolab:provenance"]["items"]} == {"sentinel-2-l2a"}


def test_callers_items_stay_untouched_and_dicts_load_like_items(two_provider_items, cubes):
    # load_cube hands odc-stac lean copies (only the assets it reads): the caller's objects must not change.
    _, _, bbox, items = two_provider_items
    masked, _ = cubes
    before = [item.to_dict() for item in items]
    owners = [{key: asset.owner for key, asset in item.assets.items()} for item in items]
    dicts = [item.to_dict() for item in items]
    dicts_before = copy.deepcopy(dicts)
    from_items = eolab.load_cube(items, bands=["B04", "B08"], bbox=bbox, resolution=10)
    from_dicts = eolab.load_cube(dicts, bands=["B04", "B08"], bbox=bbox, resolution=10)
    assert [item.to_dict() for item in items] == before
    assert all(asset.owner is owners[i][key] for i, item in enumerate(items) for key, asset in item.assets.items())
    assert dicts == dicts_before
    for band in ("B04", "B08", "clear"):
        np.testing.assert_array_equal(from_items[band].values, masked[band].values)
        np.testing.assert_array_equal(from_dicts[band].values, masked[band].values)
    hrefs = {r["id"]: r["href"] for r in from_items.attrs["eolab:provenance"]["items"]}
    assert hrefs == {item.id: item.get_self_href() for item in items}
    assert from_dicts.attrs["eolab:provenance"]["items"] == from_items.attrs["eolab:provenance"]["items"]


def test_default_chunks_are_one_date_and_bounded_in_space(two_provider_items, cubes):
    masked, _ = cubes
    time_chunks, y_chunks, x_chunks = masked.B04.chunks
    assert set(time_chunks) == {1}
    assert max(y_chunks) <= DEFAULT_CHUNKS["y"] and max(x_chunks) <= DEFAULT_CHUNKS["x"]
    assert masked.B04.dtype == np.float32 and masked.clear.dtype == bool
