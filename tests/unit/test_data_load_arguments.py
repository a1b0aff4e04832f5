"""What a researcher gets wrong when calling load_cube, find, the templates and the analysis: a
clear error or warning naming it, not an empty cube, a merged time axis or a library's traceback.
(Found by an outside review: each case was silent or a raw library error before.)"""

from __future__ import annotations

import copy
import datetime as dt
import json
import types
import warnings

import numpy as np
import pytest

import eolab
from eolab.errors import EolabError

AREA = [20.61, 47.66, 20.66, 47.70]


@pytest.fixture(scope="module")
def items(small_demo):
    lines = (small_demo / "stac" / "items" / "sentinel-2-l2a.ndjson").read_text().splitlines()[:30]
    out = [json.loads(line) for line in lines]
    for item in out:
        for asset in item["assets"].values():
            asset["href"] = str(small_demo / asset["href"])
    return out


@pytest.mark.parametrize("kwargs, words", [
    ({"bbox": [47.66, 20.61, 47.70, 20.66]}, ["overlaps none of the 30 items", "swapped"]),
    ({"bbox": [0, 0, 0.05, 0.05]}, ["overlaps none"]),
    ({"bbox": [179.5, 47.66, -179.5, 47.70]}, ["antimeridian"]),
    ({"bbox": [1, 2, 3]}, ["not four numbers"]),
    ({"bbox": [500000, 5280000, 510000, 5290000]}, ["not west, south, east, north in degrees"]),
    ({"resolution": 0}, ["not a positive number"]),
    ({"resolution": -10}, ["not a positive number"]),
    ({"resolution": 0.01}, ["chunks", "coarser resolution"]),
    ({"crs": "EPSG:999999"}, ["not a coordinate reference system"]),
    ({"dtype": "int16"}, ["float32"]),
    ({"groupby": "day"}, ["groupby='day'", "one layer"]),
    ({"mask_classes": ["x"]}, ["not class numbers"]),
    ({"chunks": {"x": 0, "y": 0}}, ["positive number of pixels"]),
])
def test_wrong_arguments_are_named(items, kwargs, words):
    with pytest.raises(EolabError) as caught:
        eolab.load_cube(items, bands=["red"], **kwargs)
    text = f"{caught.value} {caught.value.hint}"
    for word in words:
        assert word in text, text


def test_what_odc_stac_takes_still_passes(items):
    """Inputs odc-stac itself accepts are not refused (a review found these refused at first)."""
    from odc.geo import resxy_

    assert eolab.load_cube(items, bands=["red"], crs="utm").sizes["time"] == 4
    assert eolab.load_cube(items, bands=["red"], resolution=resxy_(20, -20)).sizes["x"] == 384
    assert eolab.load_cube(items, bands=["red"], chunks={"x": np.int64(512), "y": "auto"}).sizes["time"] == 4
    three_d = copy.deepcopy(items)
    for item in three_d:
        west, south, east, north = item["bbox"]
        item["bbox"] = [west, south, 0.0, east, north, 500.0]
    assert eolab.load_cube(three_d, bands=["red"], bbox=AREA).sizes["time"] == 4
    assert eolab.load_cube(items, bands=["red"], bbox=AREA, chunks={"time": 2}).sizes["time"] == 4


def test_footprints_across_the_antimeridian_and_without_boxes():
    from eolab.data.load import _check_arguments

    when = {"datetime": "2026-05-01T10:00:00Z"}
    fiji = [{"id": "f", "bbox": [178.9, -17.2, -179.9, -16.2], "properties": when}]
    _check_arguments(fiji, resolution=10, crs=None, bbox=[179.2, -17, 179.6, -16.5], groupby="solar_day",
                     dtype="float32", geobox=None, chunks=None)
    with pytest.raises(EolabError, match="overlaps none"):
        _check_arguments(fiji, resolution=10, crs=None, bbox=[10, -17, 11, -16.5], groupby="solar_day",
                         dtype="float32", geobox=None, chunks=None)
    unboxed = fiji + [{"id": "u", "properties": when}]  # an item without a box may lie anywhere
    _check_arguments(unboxed, resolution=10, crs=None, bbox=[10, -17, 11, -16.5], groupby="solar_day",
                     dtype="float32", geobox=None, chunks=None)


def test_right_arguments_still_load(items):
    cube = eolab.load_cube(items, bands="red", bbox=AREA, mask_classes="3,8,9")  # one band by name, classes as text
    assert list(cube.data_vars) == ["red", "clear"] and cube.sizes["time"] == 4
    assert np.isfinite(cube.red.values).any(axis=0).mean() > 0.5  # the bbox holds data (some dates cloudy)
    assert eolab.load_cube(items, bands=["red"], groupby="platform").sizes["time"] == 3  # a property all have


def test_a_resolution_in_other_units_warns(items):
    with pytest.warns(UserWarning, match=r"1 × 1 pixels: is the resolution in the CRS's units \(EPSG:4326"):
        eolab.load_cube(items, bands=["red"], resolution=10, crs="EPSG:4326")


@pytest.mark.parametrize("given, words", [(None, "items is None"), (["S2A_x", "S2B_y"], "not a STAC item"),
                                          (42, "not a list of STAC items")])
def test_what_is_not_items_is_named(given, words):
    with pytest.raises(EolabError, match=words):
        eolab.load_cube(given, bands=["red"])


def test_one_item_and_a_search_page_load(items):
    assert eolab.load_cube(items[0], bands=["red"]).sizes["time"] == 1
    page = types.SimpleNamespace(items=items)  # eolab.search's Page holds its items in .items
    assert eolab.load_cube(page, bands=["red"]).sizes["time"] == 4


def test_items_without_a_time_are_named(items):
    for props, words in [({"datetime": None}, "has no datetime and no start_datetime"),
                         ({"datetime": "yesterday"}, "datetime 'yesterday', not an RFC 3339"),
                         ({"datetime": 20260301}, "not an RFC 3339")]:
        bad = copy.deepcopy(items)
        bad[3]["properties"].update(props)
        with pytest.raises(EolabError, match=words) as err:
            eolab.load_cube(bad, bands=["red"])
        assert items[3]["id"] in str(err.value)
    period = copy.deepcopy(items)  # a null datetime with a period is a valid item
    period[3]["properties"].update(datetime=None, start_datetime="2026-01-01T00:00:00Z",
                                   end_datetime="2026-01-05T00:00:00+00:00")
    assert np.datetime64("2026-01-01") in eolab.load_cube(period, bands=["red"]).time.values.astype("M8[D]")


def test_pystac_items_made_in_code_load(items):
    import pystac

    made = []
    for item in items[:4]:  # as a user builds them: pystac keeps the datetime apart from properties
        props = {k: v for k, v in item["properties"].items() if k != "datetime"}
        x = pystac.Item(item["id"], item["geometry"], item["bbox"],
                        dt.datetime.fromisoformat(item["properties"]["datetime"]), props,
                        stac_extensions=item["stac_extensions"], collection=item["collection"])
        for key, asset in item["assets"].items():
            x.add_asset(key, pystac.Asset.from_dict(asset))
        assert "datetime" not in x.properties
        made.append(x)
    cube = eolab.load_cube(made, bands=["red"])
    assert cube.sizes["time"] == len({i["properties"]["datetime"][:10] for i in items[:4]})


def test_auto_mask_warns_when_some_items_lack_it(items):
    some = copy.deepcopy(items)
    del some[0]["assets"]["SCL"]
    with pytest.warns(UserWarning, match=r"1 of 30 items have no cloud mask .* masks no clouds"):
        cube = eolab.load_cube(some, bands=["red"])
    assert "clear" not in cube
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", message=".*(shapely|matmul).*")
        eolab.load_cube(some, bands=["red"], mask=None)  # chosen knowingly: no warning


def test_a_date_is_a_whole_day():
    from eolab.search._params import datetime_interval

    assert datetime_interval("2026-04-05") == datetime_interval(dt.date(2026, 4, 5)) \
        == "2026-04-05T00:00:00Z/2026-04-05T23:59:59Z"
    assert datetime_interval("2026-04-05T10:00:00Z") == "2026-04-05T10:00:00Z"


def test_search_area_and_address_mistakes_are_named():
    from shapely.geometry import box

    from eolab.search._client import catalogue_url
    from eolab.search._params import search_body

    assert search_body(["s"], bbox=box(*AREA))["bbox"] == AREA
    with pytest.raises(EolabError, match="not four numbers"):
        search_body(["s"], bbox="20.61,47.66,20.66,47.70")
    with pytest.raises(EolabError, match="has no scheme"):
        catalogue_url("127.0.0.1:8720")


def test_find_names_a_misspelt_collection(monkeypatch):
    from eolab.errors import NoItemsError
    from eolab.search import Catalogue
    from eolab.search._params import CollectionInfo, Collections

    listed = Collections([CollectionInfo.from_stac({"id": "pannonia|sentinel-2-l2a"}),
                          CollectionInfo.from_stac({"id": "tisza|sentinel-1-grd"})])
    cat = Catalogue("http://127.0.0.1:9")
    monkeypatch.setattr(cat, "collections", lambda: listed)
    assert "did you mean 'sentinel-2-l2a'" in cat._unknown_collections(["sentinel2-l2a"])
    assert "'Sentinel-2-L2A' is not in the catalogue" in cat._unknown_collections(["Sentinel-2-L2A"])
    assert cat._unknown_collections(["sentinel-2-l2a", "pannonia|sentinel-2-l2a"]) is None
    monkeypatch.setattr(cat, "collections", lambda: Collections(listed.collections, ["danube"]))
    assert cat._unknown_collections(["sentinel2-l2a"]) is None  # a silent provider may hold it
    assert issubclass(NoItemsError, EolabError)


def test_split_share_is_checked():
    from eolab.analysis import crops

    labels = ["a", "b"] * 30
    for bad in (30, 0, 0.7, "0.3", True):
        with pytest.raises(EolabError, match="test_size"):
            crops.split_parcels(labels, test_size=bad)
    with pytest.warns(UserWarning, match="holds out 1/2"):
        crops.split_parcels(labels, test_size=0.4)
    train, test = crops.split_parcels(labels, test_size=0.3)
    assert len(test) == 20 and len(train) == 40


def test_parcel_labels_name_the_missing_column_and_leave_out_unlabelled_parcels():
    import pandas as pd

    from eolab.analysis import crops

    fields = pd.DataFrame({"crop_name": ["maize", None, "wheat", " ", "maize"], "crop_code": list("12345")},
                          index=pd.Index(["p1", "p2", "p3", "p4", "p5"], name="parcel_id"))
    with pytest.raises(EolabError, match="no column 'crop'.*crop_name, crop_code") as err:
        crops.parcel_labels(fields, "crop")
    assert "crop_name" in err.value.hint
    with pytest.warns(UserWarning, match="2 of 5 parcels have no 'crop_name'.*p2, p4"):
        labels = crops.parcel_labels(fields, "crop_name")
    assert labels.to_dict() == {"p1": "maize", "p3": "wheat", "p5": "maize"}  # no class "None" or ""
    with pytest.raises(EolabError, match="one label only"):
        crops.parcel_labels(fields.assign(crop_name="maize"), "crop_name")
    with pytest.raises(EolabError, match="no parcel has a value"):
        crops.parcel_labels(fields.assign(crop_name=None), "crop_name")
    assert crops.parcel_labels(fields, "crop_code").tolist() == list("12345")


def test_zones_without_a_crs_or_outside_the_cube():
    import geopandas as gpd
    import xarray as xr
    from shapely.geometry import box

    from eolab.analysis import zonal

    cube = xr.Dataset({"NDVI": (("time", "y", "x"), np.ones((2, 20, 20), np.float32))},
                      coords={"time": np.array(["2026-05-01", "2026-05-11"], "M8[ns]"),
                              "y": 5280000 - 10 * np.arange(20) - 5, "x": 470000 + 10 * np.arange(20) + 5})
    cube = cube.odc.assign_crs("EPSG:32634")
    lonlat = gpd.GeoDataFrame(geometry=[box(20.6, 47.69, 20.61, 47.7)])
    with pytest.raises(EolabError, match="no CRS and do not lie in the cube's coordinates"):
        zonal.zonal_stats(cube, lonlat, ["NDVI"])
    drawn = gpd.GeoDataFrame(geometry=[box(470000, 5279850, 470100, 5279950)])  # from the cube's own x/y
    with pytest.warns(UserWarning, match="no CRS: taken to be the cube's"):
        assert float(zonal.zonal_stats(cube, drawn, ["NDVI"])["NDVI"].mean()) == 1.0
    far = gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)], crs="EPSG:32634")
    with pytest.warns(UserWarning, match="none of the 1 zones covers a pixel"):
        out = zonal.zonal_stats(cube, far, ["NDVI"])
    assert np.isnan(out["NDVI"].values).all()
    inside = gpd.GeoDataFrame(geometry=[box(470000, 5279850, 470100, 5279950)], crs="EPSG:32634")
    assert float(zonal.zonal_stats(cube, inside, ["NDVI"])["NDVI"].mean()) == 1.0


def test_template_parameters_take_the_types_of_their_defaults(tmp_path, monkeypatch):
    from eolab.analysis import templates, water

    got = templates.parameters("water-monitoring", {"bbox": "[20.61, 47.66, 20.66, 47.70]", "resolution": "20",
                                                    "period_a": "2026-03-01/2026-05-31", "save_daily_maps": "false",
                                                    "out_dir": tmp_path})
    assert got["bbox"] == AREA and got["resolution"] == 20 and got["save_daily_maps"] is False
    assert got["period_a"] == ["2026-03-01", "2026-05-31"] and got["out_dir"] == tmp_path
    same = templates.parameters("water-monitoring", {"resolution": np.int64(20), "datetime": ["2026-03-01",
                                                                                             "2026-10-31"]})
    assert same["resolution"] == 20 and type(same["resolution"]) is int
    assert same["datetime"] == "2026-03-01/2026-10-31"
    for wrong in ({"resolution": "10m"}, {"min_clear_fraction": "half"}, {"method": 5}):
        with pytest.raises(EolabError, match=f"parameter {next(iter(wrong))}="):
            templates.parameters("water-monitoring", wrong)
    clone = templates.clone("water-monitoring", tmp_path / "w")
    monkeypatch.chdir(clone)
    (clone / "params.yaml").write_text("resolution: [10\n")
    with pytest.raises(EolabError, match="params.yaml is not valid YAML"):
        templates.parameters("water-monitoring", {})
    (clone / "params.yaml").write_text("- 10\n- 20\n")
    with pytest.raises(EolabError, match="holds a list"):
        templates.parameters("water-monitoring", {})
    with pytest.raises(EolabError, match="not a period"):
        water._period("2026-03-01", "period_a")
    assert water._period("2026-03-01/2026-05-31", "period_a") == ("2026-03-01", "2026-05-31")


def test_clone_into_a_file_or_an_impossible_place(tmp_path):
    from eolab.analysis import templates

    (tmp_path / "f").write_text("x")
    with pytest.raises(EolabError, match="is a file"):
        templates.clone("water-monitoring", tmp_path / "f")
    with pytest.raises(EolabError, match="cannot create"):
        templates.clone("water-monitoring", tmp_path / "f" / "below")


def test_water_areas_need_a_projected_grid():
    import xarray as xr

    from eolab.analysis import water

    lonlat = xr.DataArray(np.ones((2, 3, 3)), dims=("time", "latitude", "longitude"),
                          coords={"time": np.array(["2026-05-01", "2026-05-11"], "M8[ns]")})
    with pytest.raises(EolabError, match="not \\(time, y, x\\) of a projected grid"):
        water.extent(lonlat, pixel_area_m2=100.0)


def test_water_area_region_on_another_grid_is_named():
    import xarray as xr

    from eolab.analysis import water

    wet = xr.DataArray(np.ones((2, 4, 6), np.float32), dims=("time", "y", "x"),
                       coords={"time": np.array(["2026-05-01", "2026-05-11"], "M8[ns]"),
                               "y": 100.0 - 10 * np.arange(4), "x": 10.0 * np.arange(6)})
    half = np.zeros((4, 6), bool)
    half[:, :3] = True
    assert water.extent(wet, region=half)["observed_ha"].tolist() == [12 * 0.01] * 2  # 12 px of 100 m²
    assert water.extent(wet, region=half.astype(int))["clear_fraction"].tolist() == [1.0, 1.0]
    as_array = xr.DataArray(half.T, dims=("x", "y"), coords={"x": wet.x, "y": wet.y})  # any dim order
    assert water.extent(wet, region=as_array)["observed_ha"].tolist() == [0.12, 0.12]
    for region, words in [(half.T, r"shape \(6, 4\), the water map 4 × 6"),
                          (half[:, :5], r"shape \(4, 5\)"),
                          (half * 3, "values other than true/false"),
                          (as_array.isel(x=slice(1, None)), "x coordinates are not those of the water map"),
                          (as_array.assign_coords(y=as_array.y + 5), "y coordinates are not those"),
                          (wet.isel(y=0), r"dimensions \('time', 'x'\), not \(y, x\)")]:
        with pytest.raises(EolabError, match=words):
            water.extent(wet, region=region)


def test_dns_without_metadata_are_read_as_their_convention_says(items):
    """Planetary Computer's Sentinel-2 items carry no raster:bands: eolab scales their DNs by the
    Sentinel-2 convention and tells odc-stac they are uint16 with nodata 0 (before, every pixel was
    read as float32: twice the memory and the read estimate). The values are the same."""
    bare = copy.deepcopy(items[:9])
    for item in bare:
        for asset in item["assets"].values():
            asset.pop("raster:bands", None)
    full = eolab.load_cube(items[:9], bands=["red", "nir"], resolution=20)
    plain = eolab.load_cube(bare, bands=["red", "nir"], resolution=20)
    assert plain.red.attrs["values_from"] == "sentinel-2 convention" and full.red.attrs["values_from"] == "metadata"
    assert plain.attrs["eolab:read"]["bytes_decoded"] == full.attrs["eolab:read"]["bytes_decoded"]
    for band in ("red", "nir"):
        assert plain[band].dtype == np.float32
        np.testing.assert_array_equal(plain[band].values, full[band].values)
    np.testing.assert_array_equal(plain.clear.values, full.clear.values)  # the SCL too, read as Sen2Cor's uint8
    scl = eolab.load_cube(bare, bands=["red", "SCL"], resolution=20)
    assert scl.SCL.dtype == np.uint8 == eolab.load_cube(items[:9], bands=["red", "SCL"], resolution=20).SCL.dtype
    bilinear = eolab.load_cube(bare, bands=["red"], resolution=20, resampling="bilinear")
    assert np.isfinite(bilinear.red.values).any()
