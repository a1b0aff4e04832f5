"""Score template results against the demo ground truth (``truth/`` of a generated demo data set).

The templates never read the truth; these functions do, for the tests and
``benchmarks/templates_accuracy.py``. Each takes a template's output directory and the demo
directory and returns plain numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from eolab import metrics

CLOUD_FREE = 0.05  # a date counts as cloud-free when < 5 % of the scene is under cloud, haze or shadow


def cloud_fraction(demo: Path) -> tuple[list[str], np.ndarray]:
    """(dates, share of the scene under any cloud/haze/shadow per date) from truth/clouds.tif."""
    import rasterio

    manifest = json.loads((Path(demo) / "manifest.json").read_text())
    with rasterio.open(Path(demo) / "truth" / "clouds.tif") as src:
        codes = src.read()
    return manifest["s2_dates"], (codes != 0).mean(axis=(1, 2))


def truth_parcels(demo: Path):
    import geopandas as gpd

    return gpd.read_file(Path(demo) / "truth" / "parcels.gpkg").set_index("parcel_id")


def surface_truth(demo: Path) -> np.ndarray | None:
    """truth/surface_s2.tif (dates, y, x): 0 none, 1 snow on land, 2 frozen water, 3 terrain shadow
    (None for a data set made before it existed)."""
    import rasterio

    path = Path(demo) / "truth" / "surface_s2.tif"
    if not path.exists():
        return None
    with rasterio.open(path) as src:
        return src.read()


def water_area(results: Path, demo: Path) -> dict:
    """Gap-filled water area vs truth on the (nearly) cloud-free dates without snow or ice: relative
    error per date (the snow and ice dates are scored by :func:`water_winter`)."""
    import pandas as pd

    dates, cloud = cloud_fraction(demo)
    surface = surface_truth(demo)
    snowy = [False] * len(dates) if surface is None else list(((surface == 1) | (surface == 2)).any(axis=(1, 2)))
    free = [d for d, c, s in zip(dates, cloud, snowy) if c < CLOUD_FREE and not s]
    truth = pd.read_csv(Path(demo) / "truth" / "water_area.csv")
    truth = truth[truth.sensor == "sentinel-2"].set_index("date").area_ha
    extent = pd.read_csv(Path(results) / "water_extent.csv", index_col=0)
    extent.index = extent.index.str[:10]
    error = (extent.loc[free, "filled_ha"] - truth[free]) / truth[free]
    return {"dates": free, "errors": error.to_dict(), "max_abs_error": float(error.abs().max()),
            "all_reliable": bool(extent.loc[free, "reliable"].all())}


def water_pixels(results: Path, demo: Path, max_cloud: float = 0.5) -> dict:
    """Per-pixel IoU and area error on the pixels the truth says are clear, dates ≤ ``max_cloud``
    without snow or ice (those are scored by :func:`water_winter`)."""
    import rasterio

    dates, cloud = cloud_fraction(demo)
    surface = surface_truth(demo)
    with rasterio.open(Path(demo) / "truth" / "water_s2.tif") as src:
        true_water = src.read()
    with rasterio.open(Path(demo) / "truth" / "clouds.tif") as src:
        clouds = src.read()
    with rasterio.open(Path(results) / "water_daily.tif") as src:
        daily = src.read()
        band_dates = [src.descriptions[i][:10] for i in range(src.count)]
    ious, errors = [], []
    for i in range(len(dates)):
        if cloud[i] > max_cloud or (surface is not None and np.isin(surface[i], (1, 2)).any()):
            continue  # snow and ice dates: water_winter
        clear = (clouds[i] == 0) & (daily[i] <= 1)  # snow/ice, shadow, frozen (2-4): not a water/land call
        pred, true = (daily[i] == 1) & clear, (true_water[i] == 1) & clear
        ious.append((pred & true).sum() / (pred | true).sum())
        errors.append(pred.sum() / true.sum() - 1)
    return {"band_dates_match": band_dates == dates, "iou_median": float(np.median(ious)),
            "iou_min": float(min(ious)), "area_error_median": float(np.median(errors)),
            "area_error_worst": float(min(errors))}


def water_winter(results: Path, demo: Path) -> dict:
    """On the dates with snow, ice or terrain shadow (truth/surface_s2.tif), on truly clear pixels:
    the share of snow and of shadow pixels called water, and of the frozen-water pixels reported as
    frozen water (code 4 of water_daily.tif), with the frozen area (ha) against the truth."""
    import pandas as pd
    import rasterio

    dates, _ = cloud_fraction(demo)
    surface = surface_truth(demo)
    with rasterio.open(Path(demo) / "truth" / "clouds.tif") as src:
        clouds = src.read()
    with rasterio.open(Path(results) / "water_daily.tif") as src:
        daily = src.read()
    extent = pd.read_csv(Path(results) / "water_extent.csv", index_col=0)
    extent.index = extent.index.str[:10]
    per_date = {}
    totals = {"snow": [0, 0], "shadow": [0, 0], "frozen": [0, 0]}
    for i, d in enumerate(dates):
        if surface is None or not surface[i].any():
            continue
        clear = clouds[i] == 0
        row = {}
        for name, code in (("snow", 1), ("shadow", 3)):
            m = clear & (surface[i] == code)
            wrong = int((daily[i][m] == 1).sum())
            totals[name][0] += wrong
            totals[name][1] += int(m.sum())
            row[f"{name}_pixels"] = int(m.sum())
            row[f"{name}_false_water"] = wrong / m.sum() if m.sum() else float("nan")
        m = clear & (surface[i] == 2)
        if m.sum():
            hit = int((daily[i][m] == 4).sum())
            totals["frozen"][0] += hit
            totals["frozen"][1] += int(m.sum())
            row["frozen_reported"] = hit / m.sum()
            row["frozen_true_ha"] = float(m.sum()) * 0.01
            row["frozen_reported_ha"] = float(extent.loc[d, "frozen_ha"]) if "frozen_ha" in extent else 0.0
            row["frozen_as_water"] = float(np.isin(daily[i][m], (1, 4)).mean())
        per_date[d] = row
    share = {k: (v[0] / v[1] if v[1] else float("nan")) for k, v in totals.items()}
    both = (totals["snow"][0] + totals["shadow"][0]) / max(totals["snow"][1] + totals["shadow"][1], 1)
    return {"dates": per_date, "snow_false_water": share["snow"], "shadow_false_water": share["shadow"],
            "snow_shadow_false_water": both, "frozen_reported": share["frozen"],
            "pixels": {k: v[1] for k, v in totals.items()}}


def water_s1(results: Path, demo: Path) -> dict:
    import pandas as pd

    truth = pd.read_csv(Path(demo) / "truth" / "water_area.csv")
    truth = truth[truth.sensor == "sentinel-1"].set_index("date").area_ha
    s1 = pd.read_csv(Path(results) / "water_extent_s1.csv", index_col=0)
    s1.index = s1.index.str[:10]
    error = (s1.observed_ha - truth[s1.index]) / truth[s1.index]
    return {"dates": len(s1), "truth_dates": len(truth), "median_abs_error": float(error.abs().median()),
            "max_abs_error": float(error.abs().max())}


def crop_parcels(results: Path, demo: Path) -> dict:
    """Held-out parcels of the crop-type map vs the true crop (not the partly false declarations)."""
    import geopandas as gpd

    parcels = gpd.read_file(Path(results) / "crop_parcels.gpkg", layer="crop_parcels")
    truth = truth_parcels(demo).loc[parcels.parcel_id]
    test = (parcels.split == "test").values
    report = metrics.classification_report(truth.crop.values[test], parcels.predicted.values[test])
    return {**report, "held_out": int(test.sum()), "held_out_share": float(test.mean())}


def cap_declarations(results: Path, demo: Path) -> dict:
    """False-declaration detection (red) vs truth; also any crop disagreement (red or yellow)."""
    import geopandas as gpd

    result = gpd.read_file(Path(results) / "cap_checks.gpkg", layer="cap_checks")
    truth = truth_parcels(demo).loc[result.parcel_id]
    red = metrics.binary_f1(truth.declaration_false.values, result.declaration_suspect.values)
    loose = metrics.binary_f1(truth.declaration_false.values,
                              (result.predicted_crop != result.crop_name).values & result.monitorable.values)
    return {"red": red, "any_disagreement": loose, "parcels": len(result)}


def cap_mowing(results: Path, demo: Path, tolerance_days: int = 6) -> dict:
    """Detected mowing dates of (truly and declared) grassland parcels vs the true cuts."""
    import geopandas as gpd

    result = gpd.read_file(Path(results) / "cap_checks.gpkg", layer="cap_checks")
    truth = truth_parcels(demo).loc[result.parcel_id]
    grass = (truth.crop == "grassland").values & (result.crop_name == "grassland").values
    true_dates = [[d for d in s.split(",") if d] for s in truth.mowing_dates.fillna("").values[grass]]
    found = [[d for d in s.split(",") if d] for s in result.mowing_dates.fillna("").values[grass]]
    match = metrics.match_events(true_dates, found, tolerance_days=tolerance_days)
    mowed = np.array([bool(t) for t in true_dates])
    hit = np.array([bool(f) for f in found])
    not_grass = result.mowing_dates.fillna("").values[~(result.crop_name == "grassland").values]
    return {**match, "mowed_parcels_detected": float(hit[mowed].mean()) if mowed.any() else float("nan"),
            "events_outside_grassland": int(sum(bool(s) for s in not_grass))}
