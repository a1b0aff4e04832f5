"""Claims ingestion (schema detection, clear errors, no partial output) and CAP screening/light."""

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from eolab.analysis import cap, claims
from eolab.errors import EolabError


def _write(tmp_path, df, name="x.gpkg"):
    path = tmp_path / name
    gpd.GeoDataFrame(df, geometry=[box(0, 0, 100, 100 + i) for i in range(len(df))], crs="EPSG:25832").to_file(path)
    return path


def test_danish_schema_maps_to_common(tmp_path):
    path = _write(tmp_path, pd.DataFrame({"Marknr": ["1-0", "1-1"], "Journalnr": ["26-1", "26-1"],
                                          "CVR": [42.0, 42.0], "Afgkode": [1.0, 593.0],
                                          "Afgroede": ["Vårbyg", "Poppel"], "IMK_areal": [1.0, 1.01]}))
    c = claims.read_claims(path)
    assert c.schema.tolist() == ["dk-marker"] * 2
    assert c.parcel_id.tolist() == ["26-1/1-0", "26-1/1-1"]
    assert c.crop_code.tolist() == ["1", "593"] and c.farmer_id.tolist() == ["42", "42"]
    assert list(c.columns[:7]) == claims.COLUMNS


def test_unknown_schema_lists_the_columns_found(tmp_path):
    path = _write(tmp_path, pd.DataFrame({"foo": [1], "Bar": ["x"]}))
    with pytest.raises(EolabError, match="unknown parcel schema; columns found: Bar, foo"):
        claims.read_claims(path)


def test_malformed_file_raises_and_writes_nothing(tmp_path):
    path = _write(tmp_path, pd.DataFrame({"parcel_id": ["a", "b"], "crop_code": [1, 2], "crop_name": ["x", "y"],
                                          "area_declared_ha": [1.0, "lots"]}))
    out = tmp_path / "out" / "claims.gpkg"
    with pytest.raises(EolabError, match="invalid area in 'area_declared_ha'.*e.g. b"):
        claims.ingest(path, out)
    assert not out.exists() and not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True
    dup = _write(tmp_path, pd.DataFrame({"parcel_id": ["a", "a"], "crop_code": [1, 2], "crop_name": ["x", "y"],
                                         "area_declared_ha": [1.0, 1.0]}), "dup.gpkg")
    with pytest.raises(EolabError, match="occur more than once"):
        claims.ingest(dup, out)
    (tmp_path / "junk.gpkg").write_text("not a geopackage")
    with pytest.raises(EolabError, match="cannot read parcel file junk.gpkg"):
        claims.ingest(tmp_path / "junk.gpkg", out)
    assert not out.exists()


def test_screening_flags_small_and_thin_parcels():
    g = gpd.GeoDataFrame({"id": ["big", "strip", "tiny"]},
                         geometry=[box(0, 0, 200, 200), box(0, 0, 1000, 15), box(0, 0, 30, 30)], crs="EPSG:32634")
    s = cap.screen_parcels(g)
    assert s.monitorable.tolist() == [True, False, False]
    assert "thin" in s.screen_reason[1] and "small" in s.screen_reason[2]
    assert s.width_m[0] == pytest.approx(100.0)


def test_traffic_light_rules():
    g = gpd.GeoDataFrame({"crop_name": ["maize", "maize", "maize", "grassland"],
                          "area_declared_ha": [4.0, 4.0, 4.0, 4.0]},
                         geometry=[box(0, 0, 200, 200)] * 4, crs="EPSG:32634")
    s = cap.screen_parcels(g)
    classes = ["grassland", "maize", "soybean"]
    proba = np.array([[0.0, 0.9, 0.1], [0.0, 0.1, 0.9], [0.0, 0.4, 0.6], [0.9, 0.1, 0.0]])
    out = cap.check_parcels(g, s, proba, classes, n_observations=[20, 20, 20, 20], mowing=[[], [], [], []])
    assert out.light.tolist() == ["green", "red", "yellow", "yellow"]
    assert "look like soybean" in out.reasons[1] and "no mowing" in out.reasons[3]
    assert out.declaration_suspect.tolist() == [False, True, False, False]


def test_failed_crop_is_yellow_not_a_false_declaration():
    g = gpd.GeoDataFrame({"crop_name": ["maize", "maize"], "area_declared_ha": [4.0, 4.0]},
                         geometry=[box(0, 0, 200, 200)] * 2, crs="EPSG:32634")
    s = cap.screen_parcels(g)
    proba = np.array([[0.0, 0.1, 0.9], [0.0, 0.1, 0.9]])
    out = cap.check_parcels(g, s, proba, ["grassland", "maize", "soybean"], n_observations=[20, 20],
                            ndvi_max=[0.8, 0.35], min_growth=0.5)
    assert out.light.tolist() == ["red", "yellow"]
    assert "failed or very weak crop" in out.reasons[1] and out.declaration_suspect.tolist() == [True, False]


def test_growth_threshold_separates_two_modes_without_labels():
    rng = np.random.default_rng(0)
    v = np.r_[rng.normal(0.78, 0.03, 200), rng.normal(0.35, 0.05, 15)]
    t = cap.growth_threshold(v)
    assert 0.42 < t < 0.7
    assert cap.growth_threshold([0.8] * 5) == pytest.approx(0.5)  # too few parcels: middle of the bounds


def test_red_rule_compares_the_declared_crop_with_the_predicted_one():
    g = gpd.GeoDataFrame({"crop_name": ["maize"] * 3, "area_declared_ha": [4.0] * 3},
                         geometry=[box(0, 0, 200, 200)] * 3, crs="EPSG:32634")
    s = cap.screen_parcels(g)
    classes = ["grassland", "maize", "soybean"]
    proba = np.array([[0.0, 0.3, 0.7], [0.0, 0.4, 0.6], [0.05, 0.3, 0.65]])
    out = cap.check_parcels(g, s, proba, classes, n_observations=[20] * 3)
    # 0.3 < 0.5 × 0.7 and 0.3 < 0.5 × 0.65: red; 0.4 ≥ 0.5 × 0.6: yellow
    assert out.light.tolist() == ["red", "yellow", "red"]
    # the former absolute rule is still available
    old = cap.check_parcels(g, s, proba, classes, n_observations=[20] * 3, red_probability=0.25, red_ratio=None)
    assert old.light.tolist() == ["yellow", "yellow", "yellow"]


def test_cross_fitted_probabilities_forest_plus_linear_model():
    rng = np.random.default_rng(0)
    y = np.repeat(["maize", "soybean", "winter_wheat"], 40)
    X = rng.normal(0, 1, (y.size, 12)) + 2.0 * (y[:, None] == np.array(["maize", "soybean", "winter_wheat"])).repeat(4, 1)
    X[::7, 3] = np.nan  # gaps are imputed
    p, classes = cap.cross_fit_crop_probabilities(X, y, n_estimators=50, n_jobs=1)
    assert classes == ["maize", "soybean", "winter_wheat"]
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
    assert (np.array(classes)[p.argmax(1)] == y).mean() > 0.9
    forest_only, _ = cap.cross_fit_crop_probabilities(X, y, n_estimators=50, n_jobs=1, linear_weight=0.0)
    assert not np.allclose(p, forest_only)


def test_cross_fit_learns_from_a_bounded_sample():
    from eolab.analysis import cap

    rng = np.random.default_rng(3)
    n = 900
    y = rng.choice(["maize", "soybean", "winter_wheat"], size=n)
    X = rng.normal(size=(n, 6))
    X[:, 0] += (y == "maize") * 3.0
    X[:, 1] += (y == "soybean") * 3.0
    full, classes = cap.cross_fit_crop_probabilities(X, y, n_estimators=30, max_train=None)
    capped, same = cap.cross_fit_crop_probabilities(X, y, n_estimators=30, max_train=150)
    assert classes == same and capped.shape == full.shape == (n, 3)
    np.testing.assert_allclose(capped.sum(axis=1), 1.0)
    accuracy = lambda p: (np.array(classes)[p.argmax(1)] == y).mean()  # noqa: E731
    assert accuracy(full) > 0.85 and accuracy(capped) > 0.8  # still learns from 150 parcels per fold
    assert not np.allclose(capped, full)  # the cap did change what the models saw
    small, _ = cap.cross_fit_crop_probabilities(X[:400], y[:400], n_estimators=30)
    uncapped, _ = cap.cross_fit_crop_probabilities(X[:400], y[:400], n_estimators=30, max_train=None)
    np.testing.assert_array_equal(small, uncapped)  # below the default cap nothing changes
