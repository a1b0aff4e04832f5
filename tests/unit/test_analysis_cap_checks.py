"""CAP checks as plug-ins: the built-ins are registered checks; a check added in a test shows up in
the lights, the reasons and the findings without any edit of the pipeline."""

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from eolab.analysis import cap, cap_checks
from eolab.errors import EolabError


def _parcels():
    g = gpd.GeoDataFrame({"crop_name": ["maize", "maize", "grassland", "maize"],
                          "area_declared_ha": [4.0, 4.0, 4.0, 4.0]},
                         geometry=[box(300 * i, 0, 300 * i + 200, 200) for i in range(3)] + [box(1000, 0, 1030, 30)],
                         crs="EPSG:32634")
    proba = np.array([[0.0, 0.9, 0.1], [0.0, 0.1, 0.9], [0.9, 0.1, 0.0], [0.0, 0.9, 0.1]])
    return g, cap.screen_parcels(g), proba, ["grassland", "maize", "soybean"]


@pytest.fixture
def plugin():
    @cap_checks.register("ndvi_too_high", params={"limit": 0.9},
                         reasons={"red": "NDVI max above limit: not a crop we know"})
    def ndvi_too_high(ev, i, limit):
        if ev.ndvi_max is not None and ev.ndvi_max[i] > limit:
            return [("red", f"NDVI max {ev.ndvi_max[i]:.2f} > {limit:g}")]
        return []

    yield "ndvi_too_high"
    cap_checks.unregister("ndvi_too_high")


def test_builtins_are_registered_in_their_order():
    names = list(cap_checks.registered())
    assert names[:2] == ["monitorability", "observations"]
    assert names[2:6] == ["growth", "crop_consistency", "mowing", "bare_soil"]
    assert names[-1] == "area"
    c = cap_checks.registered()["crop_consistency"]
    assert c.params["red_ratio"] == 0.5 and "red" in c.reasons and c.doc


def test_a_plugin_shows_up_in_lights_reasons_and_findings(plugin):
    g, s, proba, classes = _parcels()
    found = []
    out = cap.check_parcels(g, s, proba, classes, n_observations=[20] * 4, mowing=[[], [], [{"date": "x"}], []],
                            ndvi_max=[0.95, 0.8, 0.8, 0.95], findings=found)
    # parcel 0 was green; the plug-in makes it red. parcel 3 is too small: gates stop image checks
    assert out.light.tolist() == ["red", "red", "green", "yellow"]
    assert out.reasons[0] == "NDVI max 0.95 > 0.9" and out.declaration_suspect[0]
    assert [f.check for f in found[0]] == ["ndvi_too_high"]
    assert [f.check for f in found[3]] == ["monitorability", "area"]  # "always" checks still run
    # its parameters are set per run like the built-ins'
    relaxed = cap.check_parcels(g, s, proba, classes, n_observations=[20] * 4, mowing=[[], [], [{"date": "x"}], []],
                                ndvi_max=[0.95, 0.8, 0.8, 0.95], check_params={"ndvi_too_high": {"limit": 0.99}})
    assert relaxed.light.tolist() == ["green", "red", "green", "yellow"]
    # and it can be left out
    only = cap.check_parcels(g, s, proba, classes, n_observations=[20] * 4, ndvi_max=[0.95, 0.8, 0.8, 0.95],
                             checks=["monitorability", "crop_consistency"])
    assert only.light.tolist() == ["green", "red", "green", "yellow"]


def test_without_plugins_the_lights_are_those_of_the_builtin_rules():
    g, s, proba, classes = _parcels()
    found = []
    out = cap.check_parcels(g, s, proba, classes, n_observations=[20, 3, 20, 20], mowing=[[], [], [], []],
                            findings=found)
    assert out.light.tolist() == ["green", "yellow", "yellow", "yellow"]
    assert out.reasons[1] == "only 3 clear observations (< 6)"
    assert out.reasons[2] == "declared grassland, no mowing detected"
    assert [f.check for f in found[2]] == ["mowing"] and out.reasons[0] == "consistent with the declaration"


def test_bad_plugins_and_parameters_are_named():
    with pytest.raises(EolabError, match="already registered"):
        cap_checks.register("mowing")(lambda ev, i: [])
    with pytest.raises(EolabError, match="unknown check stage"):
        cap_checks.register("x", stage="later")
    with pytest.raises(EolabError, match="has no parameter colour"):
        cap_checks.parameters({"mowing": {"colour": 1}})
    with pytest.raises(EolabError, match="unknown checks: nope"):
        cap_checks.parameters({"nope": {}})
    cap_checks.register("purple", params={})(lambda ev, i: [("purple", "?")])
    try:
        g, s, proba, classes = _parcels()
        with pytest.raises(EolabError, match="gave light 'purple'"):
            cap.check_parcels(g, s, proba, classes, n_observations=[20] * 4)
    finally:
        cap_checks.unregister("purple")


def test_a_misspelt_check_is_refused_not_skipped():
    """A check left out by a typo let its parcels come out green."""
    g, s, proba, classes = _parcels()
    with pytest.raises(EolabError, match=r"unknown check\(s\): 'areas' \(did you mean 'area'\?\)"):
        cap.check_parcels(g, s, proba, classes, n_observations=[20] * 4, checks=["monitorability", "areas"])
    with pytest.raises(EolabError, match="checks are a list of check names"):
        cap_checks.parameters(None, "area")  # a bare string matched by substring before
    with pytest.raises(EolabError, match="unknown check"):
        cap.run_checks(g, None, checks=["Area"])  # refused before any work
    chosen = cap.check_parcels(g, s, proba, classes, n_observations=[20] * 4, checks=["monitorability", "area"])
    assert set(cap_checks.parameters(None, ["monitorability", "area"])) == {"monitorability", "area"}
    assert len(chosen) == len(g)
