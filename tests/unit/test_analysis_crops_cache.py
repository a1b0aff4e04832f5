"""The per-parcel series cache: the same parcels read again (another notebook, another process) find
the cache; any change of geometry, id or item does not."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

gpd = pytest.importorskip("geopandas")
from shapely.geometry import box  # noqa: E402

from eolab.analysis.crops import _cache_key  # noqa: E402

ITEMS = [SimpleNamespace(collection_id="pannonia|sentinel-2-l2a", id=f"S2_{d}") for d in ("0501", "0506")]
VARS = ["B04", "B08", "NDVI"]


@pytest.fixture
def parcels_file(tmp_path):
    parcels = gpd.GeoDataFrame({"parcel_id": ["p1", "p2", "p3"]},
                               geometry=[box(0, 0, 100, 100), box(200, 0, 260, 80), box(0, 300, 40, 390)],
                               crs="EPSG:32634")
    path = tmp_path / "parcels.gpkg"
    parcels.to_file(path)
    return path


def _read(path):
    return gpd.read_file(path).set_index("parcel_id")


def test_the_same_parcels_read_twice_and_in_another_process_have_one_key(parcels_file):
    first = _cache_key(ITEMS, _read(parcels_file), VARS, -5.0, 10)
    assert _cache_key(ITEMS, _read(parcels_file), VARS, -5.0, 10) == first
    code = ("import sys, geopandas as gpd; from types import SimpleNamespace as N; "
            "from eolab.analysis.crops import _cache_key; "
            "items = [N(collection_id='pannonia|sentinel-2-l2a', id=f'S2_{d}') for d in ('0501', '0506')]; "
            "p = gpd.read_file(sys.argv[1]).set_index('parcel_id'); "
            "print(_cache_key(items, p, ['B04', 'B08', 'NDVI'], -5.0, 10))")
    other = subprocess.run([sys.executable, "-c", code, str(parcels_file)], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert other == first


def test_a_changed_geometry_id_item_or_parameter_changes_the_key(parcels_file):
    base = _read(parcels_file)
    first = _cache_key(ITEMS, base, VARS, -5.0, 10)
    moved = base.copy()
    moved.loc["p2", "geometry"] = box(200, 0, 260, 81)  # one edge 1 m further
    renamed = base.rename(index={"p3": "p4"})
    assert _cache_key(ITEMS, moved, VARS, -5.0, 10) != first
    assert _cache_key(ITEMS, renamed, VARS, -5.0, 10) != first
    assert _cache_key(ITEMS[:1], base, VARS, -5.0, 10) != first
    assert _cache_key(ITEMS, base, VARS, -10.0, 10) != first
    assert _cache_key(ITEMS, base, VARS, -5.0, 20) != first
    # the same geometries in another order under the same ids are other parcels
    swapped = base.copy()
    swapped["geometry"] = list(base.geometry)[::-1]
    assert _cache_key(ITEMS, swapped, VARS, -5.0, 10) != first
