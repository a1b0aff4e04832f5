"""The templates' methods, unchanged, on real data nobody here designed (../shared/data):

- water: the water-monitoring vote (NDWI, MNDWI, AWEI_sh > 0, two of three) on the real Berlin
  Sentinel-2 L1C winter scene vs. the OpenStreetMap water polygons;
- land use: the crop-type template's features (cloud-masked, despiked, 10-day gap-filled NDVI + season
  statistics) and forest (with label cleaning) on the real Slovenian NDVI series vs. the RABA land-use
  reference, polygon-grouped 5-fold cross-validation.

Figures are reported as they are (benchmarks/RESULTS.md), compared with the reference points of
science-standards.md computed with plain standard methods on the same data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eolab import metrics
from eolab.analysis import crops, indices, water
from eolab.analysis import timeseries as ts

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BERLIN = DATA / "berlin-s2l1c"
SLOVENIA = DATA / "eolearn-slovenia"

# reference points (science-standards.md)
BERLIN_NDWI_IOU, BERLIN_MNDWI_OTSU_IOU = 0.395, 0.418
SLOVENIA_OA, SLOVENIA_KAPPA, SLOVENIA_MACRO_F1 = 0.863, 0.625, 0.364


def _iou(pred, ref, region):
    p, r = pred & region, ref & region
    return float((p & r).sum() / (p | r).sum()), float((p & r).sum() / max(p.sum(), 1)), float((p & r).sum() / r.sum())


@pytest.fixture(scope="module")
def berlin():
    if not BERLIN.is_dir():
        pytest.skip(f"real data folder {BERLIN} is absent (../shared/data is only on developer/CI machines)")
    import geopandas as gpd
    import rasterio
    import xarray as xr
    from rasterio.enums import Resampling
    from rasterio.features import rasterize
    from shapely.geometry import box

    jp2 = {p.stem.rsplit("_", 1)[1]: p for p in (BERLIN / "IMG_DATA").glob("*.jp2")}
    with rasterio.open(jp2["B03"]) as src:
        transform, shape = src.transform, src.shape
    bands = {}
    for b in ("B02", "B03", "B04", "B08", "B11", "B12"):
        with rasterio.open(jp2[b]) as src:  # 20 m bands repeated onto the 10 m grid (nearest)
            bands[b] = src.read(1, out_shape=shape, resampling=Resampling.nearest).astype("float32") / 10000.0
    cube = xr.Dataset({b: (("time", "y", "x"), v[None]) for b, v in bands.items()})
    osm = gpd.read_file(next(BERLIN.glob("gis_osm_landuse-water*.gpkg")))
    osm = osm[osm.fclass == "water"].to_crs(32633)
    ref = rasterize(((g, 1) for g in osm.geometry), out_shape=shape, transform=transform, fill=0).astype(bool)
    covered = rasterize([(box(*osm.total_bounds), 1)], out_shape=shape, transform=transform, fill=0).astype(bool)
    return cube, ref, covered, len(osm)


def _scope(pred, covered):
    """The reference's scope: its extent, without predicted water bodies > 50 ha (the OSM file holds only
    1-50 ha polygons, so big lakes are absent from it by construction — neither right nor wrong there)."""
    from scipy import ndimage

    lab, _ = ndimage.label(pred)
    size_ha = np.bincount(lab.ravel()) * 100 / 1e4
    big = np.isin(lab, np.flatnonzero(size_ha > 50)) & (lab > 0)
    return covered & ~big


def test_berlin_water_vote_vs_osm_lakes(berlin):
    cube, ref, covered, n_polygons = berlin
    vote = water.classify_water(cube, "vote").values[0] == 1  # the template's method, unchanged
    ndwi = indices.index(cube, "NDWI").values[0]
    mndwi = indices.index(cube, "MNDWI").values[0]
    results = {}
    for name, pred in (("vote (template)", vote), ("NDWI > 0", ndwi > 0),
                       ("MNDWI > Otsu", mndwi > water.otsu_threshold(mndwi))):
        results[name] = _iou(pred, ref, _scope(pred, covered))
    print(f"Berlin L1C 2017-02-16 vs {n_polygons} OSM water polygons (1-50 ha), on the OSM extent without "
          "predicted water bodies > 50 ha: " + "; ".join(f"{k}: IoU {v[0]:.3f} P {v[1]:.3f} R {v[2]:.3f}"
                                                          for k, v in results.items()))
    for iou, precision, recall in results.values():
        assert 0 < iou < 1 and 0 < precision <= 1 and 0 < recall <= 1
    # our evaluation reproduces the reference points of the plain methods (within 0.05) ...
    assert results["NDWI > 0"][0] == pytest.approx(BERLIN_NDWI_IOU, abs=0.05)
    assert results["MNDWI > Otsu"][0] == pytest.approx(BERLIN_MNDWI_OTSU_IOU, abs=0.06)
    # ... and the template's vote does NOT beat them on this winter top-of-atmosphere scene: it finds
    # the lakes (recall ~0.9) but MNDWI and AWEI_sh at 0 also fire on dark winter land (shadows,
    # conifers, wet soil) without atmospheric correction, so precision is ~0.13. Asserted as measured.
    iou, precision, recall = results["vote (template)"]
    assert recall >= 0.55
    assert iou >= 0.10


@pytest.fixture(scope="module")
def slovenia():
    if not SLOVENIA.is_dir():
        pytest.skip(f"real data folder {SLOVENIA} is absent (../shared/data is only on developer/CI machines)")
    import geopandas as gpd
    import rasterio.features
    import rasterio.transform

    ndvi = np.load(SLOVENIA / "data" / "NDVI.npy")[..., 0]
    cloud = np.load(SLOVENIA / "mask" / "CLM.npy")[..., 0]
    valid = np.load(SLOVENIA / "mask" / "IS_VALID.npy")[..., 0]
    lulc = np.load(SLOVENIA / "mask_timeless" / "LULC.npy")
    lulc = lulc[..., 0] if lulc.ndim == 3 else lulc
    times = np.array([t[:19] for t in json.loads((SLOVENIA / "timestamps.json").read_text())], dtype="datetime64[s]")
    polygons = gpd.read_file(SLOVENIA / "vector_timeless" / "LULC.gpkg")
    bbox = gpd.read_file(SLOVENIA / "bbox.geojson").total_bounds
    transform = rasterio.transform.from_bounds(*bbox, 100, 101)
    pid = rasterio.features.rasterize(((g, i + 1) for i, g in enumerate(polygons.geometry)), out_shape=lulc.shape,
                                      transform=transform, fill=0)
    year = (times >= np.datetime64("2017-01-01")) & (times < np.datetime64("2018-01-01"))
    clear = np.where((cloud == 0) & (valid > 0), ndvi, np.nan)[year]
    days = ts.day_numbers(times[year])
    inside = (pid > 0) & (lulc > 0)
    series = clear.reshape(clear.shape[0], -1).T[inside.ravel()]
    series[ts.despike(series, days)] = np.nan  # the template's cleaning (no haze test: no blue/red bands)
    X = crops.features_from_series({"NDVI": series}, days, ts.regular_days(days, crops.STEP_DAYS), indices=("NDVI",))
    return X, lulc[inside].astype(str), pid[inside]


def test_slovenia_land_use_polygon_grouped_cv(slovenia):
    from sklearn.model_selection import StratifiedGroupKFold

    X, y, groups = slovenia
    pred = np.empty(y.size, dtype=object)
    for train, test in StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0).split(X, y, groups):
        model, _ = crops.train(X[train], y[train], n_estimators=100, seed=0, groups=groups[train])
        pred[test] = crops.predict(model, X[test])[0]
    r = metrics.classification_report(y, pred.astype(str))
    counts = {c: (int((y == c).sum()), len(set(groups[y == c]))) for c in sorted(set(y))}
    print(f"Slovenia RABA land use 2017, polygon-grouped 5-fold, {y.size} px / {len(set(groups))} polygons: "
          f"OA {r['overall_accuracy']:.3f} kappa {r['kappa']:.3f} macro F1 {r['macro_f1']:.3f} "
          f"(reference RF: {SLOVENIA_OA} / {SLOVENIA_KAPPA} / {SLOVENIA_MACRO_F1}); class: (pixels, polygons) {counts}\n"
          f"{r['per_class'].round(3)}")
    assert 0.5 < r["overall_accuracy"] <= 1 and -1 <= r["kappa"] <= 1
    # beats the plain RF reference point on OA and kappa (measured 0.88 / 0.67)
    assert r["overall_accuracy"] >= SLOVENIA_OA
    assert r["kappa"] >= SLOVENIA_KAPPA
    # classes with a handful of polygons (artificial 4, water/other few) are not learnt: macro F1 stays low
    assert r["macro_f1"] >= 0.3
