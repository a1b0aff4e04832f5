"""The templates' methods, unchanged, on real data nobody here designed (../shared/data):

- water: the water-monitoring vote (NDWI, MNDWI, AWEI_sh > 0, two of three) on the real Berlin
  Sentinel-2 L1C winter scene vs. the OpenStreetMap water polygons, on a fixed area (the labelled
  OSM polygons), through the documented Rayleigh correction and without it;
- land use: the crop-type template's features (cloud-masked, despiked, 10-day gap-filled NDVI + season
  statistics) and forest (with label cleaning) on the real Slovenian NDVI series vs. the RABA land-use
  reference, polygon-grouped 5-fold cross-validation.

Figures are reported as they are (benchmarks/RESULTS.md), compared with the reference points of
science-standards.md computed with plain standard methods on the same data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eolab import metrics
from eolab.analysis import atmosphere, clouds, crops, indices, water

# Notebook runs of several minutes; make test runs two test processes side by side on 2 cores.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

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

    jp2 = {p.stem.rsplit("_", 1)[1]: p for p in (BERLIN / "IMG_DATA").glob("*.jp2")}
    with rasterio.open(jp2["B03"]) as src:
        transform, shape, crs = src.transform, src.shape, str(src.crs)
    bands = {}
    # the water bands and the s2cloudless detector's (no SCL in L1C: it is the cloud mask)
    for b in sorted(set(water.OPTICAL_BANDS) | set(clouds.BANDS)):
        with rasterio.open(jp2[b]) as src:  # 20/60 m bands repeated onto the 10 m grid (nearest)
            bands[b] = src.read(1, out_shape=shape, resampling=Resampling.nearest).astype("float32") / 10000.0
    y = transform.f + transform.e * (np.arange(shape[0]) + 0.5)
    x = transform.c + transform.a * (np.arange(shape[1]) + 0.5)
    # the acquisition time of the granule (file names) and its level, as a STAC item would carry them
    cube = xr.Dataset({b: (("time", "y", "x"), v[None]) for b, v in bands.items()},
                      coords={"time": [np.datetime64("2017-02-16T10:21:01", "ns")], "y": y, "x": x},
                      attrs={"crs": crs, "processing:level": "L1C"})
    osm = gpd.read_file(next(BERLIN.glob("gis_osm_landuse-water*.gpkg"))).to_crs(32633)
    water_polygons = osm[osm.fclass == "water"]
    ref = rasterize(((g, 1) for g in water_polygons.geometry), out_shape=shape, transform=transform,
                    fill=0).astype(bool)
    labelled = rasterize(((g, 1) for g in osm.geometry), out_shape=shape, transform=transform, fill=0).astype(bool)
    return cube, ref, labelled, len(water_polygons), len(osm)


def _scores(cube, ref, area, toa):
    """Every method on the same fixed pixels: the template (vote, its default options) and the plain
    baselines NDWI > 0 and MNDWI > Otsu (Otsu of the whole image, as in science-standards.md).
    toa "rayleigh+s2cloudless": the cube also holds the detector's bands, so the template masks clouds
    with s2cloudless first (masked pixels count as not water: the area stays fixed)."""
    if toa.startswith("rayleigh"):
        corrected = atmosphere.rayleigh_correct(cube)
        given = cube if toa.endswith("s2cloudless") else cube[water.OPTICAL_BANDS].assign_attrs(cube.attrs)
        template = water.classify_water(given, "vote", toa="rayleigh").values[0] == 1
    else:  # the same data read as if it were surface reflectance (no detector: it needs L1C): uncorrected
        corrected = cube.assign_attrs({"processing:level": "L2A"})
        template = water.classify_water(corrected, "vote").values[0] == 1
    ndwi = indices.index(corrected, "NDWI").values[0]
    mndwi = indices.index(corrected, "MNDWI").values[0]
    return {"vote (template)": _iou(template, ref, area), "NDWI > 0": _iou(ndwi > 0, ref, area),
            "MNDWI > Otsu": _iou(mndwi > water.otsu_threshold(mndwi), ref, area)}


def test_berlin_l1c_is_refused_without_a_correction(berlin):
    from eolab.errors import EolabError

    cube = berlin[0]
    assert atmosphere.processing_level(cube) == "L1C"
    with pytest.raises(EolabError, match="top-of-atmosphere"):
        water.classify_water(cube)


def test_berlin_water_vote_vs_osm_lakes_on_a_fixed_area(berlin):
    """Fixed evaluation area, independent of any prediction: every pixel inside an OSM land-use polygon
    of the file (water = water; meadow, wetland, farm, scrub, forest, residential, grass = not water).
    The file holds only 1-50 ha polygons, so the big lakes are outside the area by construction."""
    cube, ref, labelled, n_water, n_polygons = berlin
    cloudy = clouds.cloud_mask(cube).values[0]
    print(f"s2cloudless: {cloudy.mean():.1%} of the scene cloudy, {cloudy[labelled].mean():.1%} of the evaluation "
          f"area, {cloudy[ref & labelled].mean():.1%} of its water")
    results = {toa: _scores(cube, ref, labelled, toa) for toa in ("none", "rayleigh", "rayleigh+s2cloudless")}
    for toa, res in results.items():
        print(f"Berlin L1C 2017-02-16, {n_water} OSM water polygons in {n_polygons} labelled polygons "
              f"({int(labelled.sum())} px), correction {toa}: "
              + "; ".join(f"{k}: IoU {v[0]:.3f} P {v[1]:.3f} R {v[2]:.3f}" for k, v in res.items()))
        for iou, precision, recall in res.values():
            assert 0 < iou < 1 and 0 < precision <= 1 and 0 < recall <= 1
    raw, corrected = results["none"], results["rayleigh"]
    # the plain methods on uncorrected data reproduce the reference points (science-standards.md)
    assert raw["NDWI > 0"][0] == pytest.approx(BERLIN_NDWI_IOU, abs=0.02)
    assert raw["MNDWI > Otsu"][0] == pytest.approx(BERLIN_MNDWI_OTSU_IOU, abs=0.02)
    # read as if it were surface reflectance, the vote loses to both (measured 0.350; 0.288 without the
    # NIR bound): the zero thresholds sit where molecular scattering moves MNDWI and AWEI_sh on dark
    # winter land
    assert raw["vote (template)"][0] < raw["NDWI > 0"][0]
    # through the documented Rayleigh correction the template's vote, unchanged, beats both baselines
    # on the same pixels (measured 0.550 vs 0.410 and 0.492)
    assert corrected["vote (template)"][0] >= 0.50
    # with the s2cloudless mask (18.8 % of the scene, 17.7 % of the OSM water flagged) the fixed-area IoU is
    # lower (measured 0.485, P 0.640, R 0.668): reported, not a goal (benchmarks/RESULTS.md)
    assert corrected["vote (template)"][0] > max(corrected["NDWI > 0"][0], corrected["MNDWI > Otsu"][0])
    assert corrected["vote (template)"][0] > max(raw["NDWI > 0"][0], raw["MNDWI > Otsu"][0])


@pytest.fixture(scope="module")
def slovenia():
    """(features, class, polygon id) per labelled pixel, as benchmarks/slovenia_nested.py builds them."""
    import importlib.util

    if not SLOVENIA.is_dir():
        pytest.skip(f"real data folder {SLOVENIA} is absent (../shared/data is only on developer/CI machines)")
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "slovenia_nested.py"
    spec = importlib.util.spec_from_file_location("slovenia_nested", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.features(SLOVENIA)


def test_slovenia_land_use_polygon_grouped_cv(slovenia):
    from sklearn.model_selection import StratifiedGroupKFold

    X, y, groups = slovenia
    pred = np.empty(y.size, dtype=object)
    for train, test in StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0).split(X, y, groups):
        # the crop-type template's forest with label cleaning grouped by polygon; 100 trees instead of the
        # template's 300 to keep the test short (300 measured once: kappa 0.691 vs 0.697, RESULTS.md)
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
