"""GeoParquet outputs of the templates: geometry, columns and CRS round-trip, provenance embedded."""

import datetime as dt

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pystac
import pytest
from shapely.geometry import box

from eolab import ids, provenance
from eolab.analysis import outputs
from eolab.errors import EolabError


def _record():
    items = []
    for i, provider in enumerate(["pannonia", "danube"]):
        item = pystac.Item(f"S2_{i}", box(20, 47, 20.1, 47.1).__geo_interface__, [20, 47, 20.1, 47.1],
                           dt.datetime(2026, 5, 1 + i), {}, collection="sentinel-2-l2a")
        item.properties[ids.PROVIDER_PROPERTY] = provider
        items.append(item)
    return provenance.record(items, workflow="cap-parcel-checks", parameters={"min_pixels": np.int64(8)})


def _parcels():
    return gpd.GeoDataFrame(
        {"parcel_id": ["a", "b", "c"], "light": ["green", "red", "yellow"], "p_declared": [0.9, 0.1, np.nan],
         "reasons": ["consistent", "images look like maize", "only 3 clear observations (< 6)"]},
        geometry=[box(0, 0, 100, 50), box(100, 0, 180, 50), box(0, 50, 20, 200)], crs="EPSG:32634")


def test_write_table_writes_geoparquet_that_round_trips_with_provenance(tmp_path):
    gdf, rec = _parcels(), _record()
    files = outputs.write_table(gdf, tmp_path / "out" / "cap_checks.gpkg", rec)
    assert [f.name for f in files] == ["cap_checks.gpkg", "cap_checks.parquet"]
    back = gpd.read_parquet(files[1])
    assert back.crs.to_epsg() == 32634
    assert back.drop(columns="geometry").equals(gdf.drop(columns="geometry"))
    assert back.geometry.geom_equals(gdf.geometry).all()
    embedded = outputs.read_parquet_provenance(files[1])
    assert [i["id"] for i in embedded["items"]] == ["S2_0", "S2_1"]
    assert embedded["parameters"] == {"min_pixels": 8} and embedded["outputs"] == ["cap_checks.parquet"]
    assert embedded["workflow"] == "cap-parcel-checks"
    side = provenance.read(files[1])  # the sidecar carries the same record
    assert side["items"] == embedded["items"] and side["outputs"] == embedded["outputs"]
    assert b"geo" in pq.read_schema(files[1]).metadata  # still GeoParquet for other readers
    assert not list((tmp_path / "out").glob("*partial*"))


def test_embedded_record_survives_without_the_sidecar(tmp_path):
    path = outputs.write_geoparquet(_parcels(), tmp_path / "checks.parquet", _record())
    provenance.sidecar_path(path).unlink()
    assert outputs.read_parquet_provenance(path)["collections"] == ["danube|sentinel-2-l2a",
                                                                     "pannonia|sentinel-2-l2a"]
    assert provenance.read(path) == outputs.read_parquet_provenance(path)  # the generic reader finds it too
    assert len(gpd.read_parquet(path)) == 3


def test_wrong_suffix_and_plain_parquet_are_errors(tmp_path):
    with pytest.raises(EolabError, match="end in .parquet"):
        outputs.write_geoparquet(_parcels(), tmp_path / "checks.gpkg", _record())
    plain = tmp_path / "plain.parquet"
    _parcels().to_parquet(plain)
    with pytest.raises(EolabError, match="no embedded eolab provenance"):
        outputs.read_parquet_provenance(plain)

