"""The water-monitoring template, run headless against the real member STAC APIs, vs. the demo truth.

The notebook never sees the truth; only this test reads it.
"""

from __future__ import annotations

import json

import numpy as np
import pystac
import pytest
import rasterio

from eolab import provenance
from eolab.analysis import publish
from eolab.demo import evaluate
from tests.integration._workflow_utils import member_urls, run_notebook

# Notebook runs of several minutes; make test runs two test processes side by side on 2 cores.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def water_run(catalog_stack, small_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("water-run")
    executed = run_notebook("water-monitoring", out, catalog=catalog_stack.broker_url,
                            out_dir=str(out / "results"), publish_to=str(out / "catalog"))
    return out, executed


def test_area_on_cloud_free_dates_within_5_percent_of_truth(water_run, small_demo):
    out, _ = water_run
    area = evaluate.water_area(out / "results", small_demo)
    print("water area error on cloud-free dates (%):", {d: round(100 * e, 2) for d, e in area["errors"].items()})
    assert len(area["dates"]) >= 4, "the demo season should have several (nearly) cloud-free dates"
    assert area["max_abs_error"] <= 0.05
    assert area["all_reliable"]


def test_snow_shadow_and_the_iced_lake(water_run, small_demo):
    """Winter dates: snow and terrain shadow are not water; the iced reservoir is frozen water."""
    out, _ = water_run
    w = evaluate.water_winter(out / "results", small_demo)
    print(f"false water: snow {100 * w['snow_false_water']:.3f} %, shadow {100 * w['shadow_false_water']:.3f} %, "
          f"both {100 * w['snow_shadow_false_water']:.3f} % of {w['pixels']}; frozen water reported "
          f"{100 * w['frozen_reported']:.1f} %; per date {w['dates']}")
    assert w["pixels"]["snow"] > 0 and w["pixels"]["shadow"] > 0 and w["pixels"]["frozen"] > 0
    assert w["snow_shadow_false_water"] <= 0.01
    # terrain shadow alone too: the surface model's slope rule (measured 0.03 %; 4.4 % without it)
    assert w["shadow_false_water"] <= 0.01
    assert w["frozen_reported"] >= 0.9
    for row in w["dates"].values():
        if "frozen_true_ha" in row:
            # frozen where the pixel's nearest open view saw water: not the bed the draw-down left dry
            # (by the water frequency alone the area was 32 % too high)
            assert 0.9 * row["frozen_true_ha"] <= row["frozen_reported_ha"] <= 1.1 * row["frozen_true_ha"]


def test_per_pixel_water_on_truly_clear_pixels(water_run, small_demo):
    """Per-pixel check on every date, on the pixels the truth says are clear: area and IoU."""
    out, _ = water_run
    pixels = evaluate.water_pixels(out / "results", small_demo)
    print(f"per-pixel IoU median {pixels['iou_median']:.3f} min {pixels['iou_min']:.3f}; "
          f"area error median {pixels['area_error_median']:+.3f} worst {pixels['area_error_worst']:+.3f}")
    assert pixels["band_dates_match"]
    assert pixels["iou_median"] >= 0.93
    assert pixels["iou_min"] >= 0.85  # summer: vegetated water is partly missed (documented limit)


def test_sentinel1_path_tracks_the_truth(water_run, small_demo):
    out, _ = water_run
    s1 = evaluate.water_s1(out / "results", small_demo)
    print(f"Sentinel-1 water area error: median |e| {s1['median_abs_error']:.3f}, max |e| {s1['max_abs_error']:.3f}")
    assert s1["dates"] == s1["truth_dates"]
    assert s1["median_abs_error"] <= 0.08


def test_every_output_names_its_items_and_providers(water_run, catalog_stack):
    out, _ = water_run
    res = out / "results"
    files = ["water_extent.csv", "reservoir_extent.csv", "water_frequency.tif", "water_change.tif",
             "water_daily.tif"]
    for name in files:
        record = provenance.read(res / name)
        providers = {(i["provider"], i["collection"]) for i in record["items"]}
        # the images, and the surface model of the slope rule
        assert providers == {("pannonia", "sentinel-2-l2a"), ("danube", "sentinel-2-l2a"),
                             ("pannonia", "cop-dem-glo-30")}, name
        assert record["parameters"]["method"] == "vote"
        assert record["parameters"]["slope_rule"] == "no water on slopes >= 30 %"
        assert record["eolab_version"]
    with rasterio.open(res / "water_frequency.tif") as src:  # embedded too, not only the sidecar
        embedded = json.loads(src.tags()[provenance.TIFF_TAG])
        freq = src.read(1)
    assert len(embedded["items"]) == len(provenance.read(res / "water_frequency.tif")["items"])
    # the default period runs into December, when the reservoir is below its season minimum
    assert np.nanmax(freq) <= 1 and (freq >= 0.9).mean() > 0.05
    s1 = provenance.read(res / "water_extent_s1.csv")
    assert {i["provider"] for i in s1["items"]} == {"tisza"}
    # the recorded ids are real items of the members
    import pystac_client

    first = record["items"][0]
    client = pystac_client.Client.open(member_urls(catalog_stack)[first["provider"]])
    assert client.get_collection(first["collection"]).get_item(first["id"]) is not None


def test_results_are_published_and_found_again(water_run):
    out, _ = water_run
    found = publish.find_results(out / "catalog", workflow="water-monitoring")
    assert len(found) == 1
    item = found[0]
    assets = {a.title for a in item.assets.values()}
    assert {"water_extent.csv", "water_frequency.tif", "water_frequency.tif.provenance.json"} <= assets
    assert item.properties["eolab:provenance"]["source_items"]
    derived = [link for link in item.links if link.rel == "derived_from"]
    assert len(derived) == len(item.properties["eolab:provenance"]["source_items"])
    cat = pystac.Catalog.from_file(str(out / "catalog" / "catalog.json"))
    assert [c.id for c in cat.get_children()] == ["water-monitoring"]
    href = item.assets["water_frequency_tif"].get_absolute_href()
    with rasterio.open(href) as src:
        assert src.count == 1


def test_notebook_is_a_parameterised_template_ending_in_a_summary(water_run):
    import nbformat

    _, executed = water_run
    nb = nbformat.read(executed, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    figures = sum(1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    assert figures >= 4
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert any("text/html" in o.get("data", {}) for o in last.outputs)  # the summary table


def test_openeo_graph_exported(water_run):
    from eolab.analysis import openeo_graphs

    out, _ = water_run
    doc = json.loads((out / "results" / "openeo_graph.json").read_text())
    assert set(doc["graphs"]) == {"water_extent", "water_frequency", "frozen_extent"}
    assert doc["not_expressed"]  # what the graphs cannot say of the local method
    flat = doc["graphs"]["water_extent"]["process_graph"]
    assert {"load_collection", "mask", "aggregate_spatial", "save_result"} <= set(openeo_graphs.process_ids(flat))
    load = next(n for n in flat.values() if n["process_id"] == "load_collection")["arguments"]
    assert load["temporal_extent"] == ["2026-03-01", "2026-12-31"] and load["spatial_extent"]["west"] < 20.7
