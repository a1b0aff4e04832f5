"""The templates' openEO process graphs, built offline with the openeo client: structure checks."""

import json

import geopandas as gpd
import pytest
from shapely.geometry import box

from eolab.analysis import openeo_graphs as og
from eolab.errors import EolabError

BBOX = [20.60, 47.65, 20.70, 47.72]


def _nodes(flat, process_id):
    return [n for n in flat.values() if n["process_id"] == process_id]


def _parcels():
    return gpd.GeoDataFrame({"parcel_id": ["a", "b"], "crop_name": ["maize", "grassland"]},
                            geometry=[box(470000, 5280000, 470200, 5280200), box(470300, 5280000, 470500, 5280100)],
                            crs="EPSG:32634")


def test_water_graph_has_the_template_steps_and_parameters():
    graphs = og.graph("water-monitoring", {"bbox": BBOX, "datetime": "2026-04-01/2026-09-30"})
    assert set(graphs) == {"water_extent", "water_frequency", "frozen_extent"}
    for flat in graphs.values():
        load = _nodes(flat, "load_collection")[0]["arguments"]
        assert load["id"] == "SENTINEL2_L2A"
        assert load["temporal_extent"] == ["2026-04-01", "2026-09-30"]
        assert load["spatial_extent"]["west"] == BBOX[0] and load["spatial_extent"]["north"] == BBOX[3]
        assert set(load["bands"]) == {"B02", "B03", "B04", "B08", "B11", "B12", "SCL"}
        ids = og.process_ids(flat)
        # SCL mask of the eolab classes, scaling before band math, the index vote, save
        assert ids.index("mask") < ids.index("multiply") and "array_element" in ids
        scl_values = {n["arguments"]["y"] for n in _nodes(
            _nodes(flat, "reduce_dimension")[0]["arguments"]["reducer"]["process_graph"], "eq")}
        assert scl_values == {0, 1, 3, 8, 9, 10}
        assert ids.count("divide") >= 2 and "gte" in ids
        assert ids[-1] == "save_result"
    assert "aggregate_spatial" in og.process_ids(graphs["water_extent"])
    freq = graphs["water_frequency"]
    assert _nodes(freq, "reduce_dimension")[-1]["arguments"]["dimension"] == "t"
    assert _nodes(freq, "save_result")[0]["arguments"]["format"] == "GTiff"


def _constants(flat, process_id):
    """(x, y) of every ``process_id`` node in the graph's callbacks, the node references dropped."""
    found = []

    def walk(g):
        for node in g.values():
            if node["process_id"] == process_id:
                found.append(tuple(v if not isinstance(v, dict) else None for v in node["arguments"].values()))
            for arg in node.get("arguments", {}).values():
                if isinstance(arg, dict) and "process_graph" in arg:
                    walk(arg["process_graph"])
    walk(flat)
    return found


def test_water_graph_is_the_local_method_snow_shadow_nir_and_frozen(tmp_path):
    from eolab.analysis import water

    graphs = og.graph("water-monitoring", {"bbox": BBOX, "datetime": "2026-11-01/2027-01-31"})
    for name in ("water_extent", "water_frequency"):
        flat = graphs[name]
        # snow/ice: SCL 11 or NDSI > 0.4, NIR > 0.11, green > 0.10; shadow: SCL 2 -> masked, not land
        eqs = {c[1] for c in _constants(flat, "eq")}
        assert {water.SCL_SNOW, water.SCL_DARK} <= eqs
        gts = {c[1] for c in _constants(flat, "gt")}
        assert {water.SNOW_NDSI, water.SNOW_NIR, water.SNOW_GREEN, 0} <= gts
        assert (None, water.WATER_NIR) in _constants(flat, "lt")  # water is dark in the NIR
        assert _constants(flat, "gte").count((None, None)) == 0  # the spectral shadow test is opt-in, as locally
        assert og.process_ids(flat).count("mask") == 3  # clouds (bands, SCL), then snow/ice + shadow
    shaded = og.graph("water-monitoring", {"bbox": BBOX, "datetime": "2026-11-01/2027-01-31", "spectral_shadow": True})
    assert _constants(shaded["water_extent"], "gte").count((None, None)) == 2  # B08 >= B03 and B08 >= B04
    frozen = graphs["frozen_extent"]
    ids = og.process_ids(frozen)
    merges = _nodes(frozen, "merge_cubes")
    assert len(merges) == 2 and "and" in og.process_ids(merges[-1]["arguments"]["overlap_resolver"])
    assert (None, 0.5) in _constants(frozen, "gte") and ids[-1] == "save_result"
    doc = json.loads(og.export("water-monitoring", tmp_path / "w.json", {"bbox": BBOX}).read_text())
    assert list(doc["graphs"]) == ["water_extent", "water_frequency", "frozen_extent"]
    assert any("nearest open observation" in s for s in doc["not_expressed"])
    assert any("Otsu" in s for s in doc["not_expressed"])


def test_parcel_graphs_aggregate_over_the_parcels(tmp_path):
    graphs = og.graph("cap-parcel-checks", {"datetime": "2026-03-01/2026-10-31"}, parcels=_parcels())
    assert set(graphs) == {"parcel_series", "parcel_s1_series"}
    s2 = graphs["parcel_series"]
    ids = og.process_ids(s2)
    assert ["load_collection", "mask", "apply_dimension", "rename_labels", "aggregate_spatial", "save_result"] == [
        i for i in ids if i in ("load_collection", "mask", "apply_dimension", "rename_labels", "aggregate_spatial",
                                "save_result")]
    assert _nodes(s2, "rename_labels")[0]["arguments"]["target"] == ["NDVI", "NDMI", "NDRE"]
    geoms = _nodes(s2, "aggregate_spatial")[0]["arguments"]["geometries"]
    assert geoms["type"] == "FeatureCollection" and [f["properties"]["parcel_id"] for f in geoms["features"]] == ["a", "b"]
    lon, lat = geoms["features"][0]["geometry"]["coordinates"][0][0]
    assert 20 < lon < 21 and 47 < lat < 48  # WGS84
    s1 = graphs["parcel_s1_series"]
    assert _nodes(s1, "load_collection")[0]["arguments"]["id"] == "SENTINEL1_GRD"
    assert "sar_backscatter" in og.process_ids(s1)
    # export: one JSON with the parameters and every graph, ready for a back-end
    path = og.export("crop-type-map", tmp_path / "g.json", {"seed": 3}, parcels=_parcels())
    doc = json.loads(path.read_text())
    assert doc["parameters"]["seed"] == 3 and doc["parameters"]["n_estimators"] == 300  # params.yaml defaults
    assert list(doc["graphs"]) == ["parcel_series"] and "process_graph" in doc["graphs"]["parcel_series"]


def test_graph_errors_are_clear():
    with pytest.raises(EolabError, match="bounding box"):
        og.graph("water-monitoring", {"bbox": None})
    with pytest.raises(EolabError, match="vote"):
        og.graph("water-monitoring", {"bbox": BBOX, "method": "mndwi-otsu"})
    with pytest.raises(EolabError, match="no openEO graph"):
        og.graph("nope")
    with pytest.raises(EolabError, match="needs parcels"):
        og.graph("crop-type-map", {"parcels": None})


@pytest.mark.skip(reason="local openEO processing is not part of the pinned environment: `openeo[localprocessing]` "
                         "fails on Debian 12 (needs GDAL >= 3.8 bindings); the --no-deps openeo-processes-dask route "
                         "works but its load_stac validates against online JSON schemas (no internet here) and the "
                         "CDSE graphs' load_collection('SENTINEL2_L2A') has no local equivalent — see "
                         "platform-findings.md. The graphs are checked structurally above.")
def test_local_smoke_run_of_a_graph():
    pass
