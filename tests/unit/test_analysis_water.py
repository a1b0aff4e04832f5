"""Water classification, frequency, extent and change on a small synthetic lake."""

import numpy as np
import pytest
import xarray as xr

from eolab.analysis import water
from eolab.errors import EolabError


def scene(n_dates=4, cloud_on=None):
    y, x = np.mgrid[0:20, 0:20]
    lake = (x < 8)
    refl = {"B02": 0.05, "B03": 0.06, "B04": 0.05, "B08": 0.30, "B11": 0.20, "B12": 0.12}
    water_refl = {"B02": 0.06, "B03": 0.07, "B04": 0.04, "B08": 0.02, "B11": 0.01, "B12": 0.01}
    data = {}
    for b in refl:
        arr = np.where(lake, water_refl[b], refl[b]).astype("float32")
        arr = np.repeat(arr[None], n_dates, 0)
        if cloud_on is not None:
            arr[cloud_on, :, :4] = np.nan
        data[b] = (("time", "y", "x"), arr)
    ds = xr.Dataset(data, coords={"time": np.arange(n_dates).astype("datetime64[D]").astype("datetime64[ns]"),
                                  "y": np.arange(20.0)[::-1] * 10, "x": np.arange(20.0) * 10},
                    attrs={"processing:level": "L2A"})
    return ds, lake


@pytest.mark.parametrize("method", ["vote", "ndwi", "mndwi", "awei", "mndwi-otsu"])
def test_every_method_finds_the_lake(method):
    ds, lake = scene()
    w = water.classify_water(ds, method).values
    assert (w[0] == lake).all()


def test_dark_shadow_fools_mndwi_alone_but_not_the_vote():
    ds, lake = scene(1)
    # a dark, shadowed field: every band low, visible relatively less dark than SWIR
    for b, v in {"B02": 0.03, "B03": 0.035, "B04": 0.03, "B08": 0.06, "B11": 0.03, "B12": 0.02}.items():
        ds[b].values[0, 15:, 15:] = v
    assert water.classify_water(ds, "mndwi").values[0, 15:, 15:].all()
    assert not water.classify_water(ds, "vote", water_test=False).values[0, 15:, 15:].any()


def test_shadow_is_found_from_the_spectrum_without_scl():
    ds, lake = scene(1)
    # shaded snowy forest under haze: dark, flat from green to NIR, dark SWIR -> MNDWI and AWEI_sh say water
    shaded = {"B02": 0.083, "B03": 0.088, "B04": 0.092, "B08": 0.096, "B11": 0.043, "B12": 0.033}
    _paint(ds, (slice(12, None), slice(12, None)), shaded)
    # turbid water: NIR above green (NDWI < 0) but below red (NDVI < 0): still water
    turbid = {"B02": 0.08, "B03": 0.10, "B04": 0.12, "B08": 0.105, "B11": 0.02, "B12": 0.01}
    _paint(ds, (slice(0, 6), slice(0, 8)), turbid)
    assert water.classify_water(ds, "vote").values[0, 12:, 12:].all()  # fooled without the test (the default)
    classes = water.surface_classes(ds, spectral_shadow=True).values[0]
    assert (classes[12:, 12:] == 3).all()  # shadow, not water and not land
    assert (classes[:, :8] == 1).all() and (classes[:12, 8:] == 0).all()
    assert "NIR absorption" in water.surface_classes(ds, spectral_shadow=True).attrs["shadow"]


def test_frequency_extent_fill_and_change():
    ds, lake = scene(4, cloud_on=2)
    w = water.classify_water(ds)
    assert np.isnan(w.values[2, :, :4]).all()
    f = water.frequency(w)
    assert float(f.values[0, 0]) == 1.0 and float(f.values[0, 10]) == 0.0
    ext = water.extent(w, f)
    assert ext.observed_ha.tolist()[2] == pytest.approx((8 - 4) * 20 * 0.01)
    assert ext.filled_ha.tolist() == pytest.approx([8 * 20 * 0.01] * 4)  # the hidden part is filled
    assert ext.clear_fraction.tolist()[2] == pytest.approx(0.8)
    # the lake shrinks in the second half
    w2 = w.copy(data=w.values.copy())
    w2.values[2:, :, 6:8] = 0
    chg = water.change(w2, ("1970-01-01", "1970-01-02"), ("1970-01-03", "1970-01-04"))
    assert set(np.unique(chg.change_class.values[:, 6:8])) == {3.0}
    assert (chg.change_class.values[:, 4:6] == 1).all()
    assert np.isnan(chg.change_class.values[:, :4]).all()  # one clear view in period b: too few
    assert (chg.change_class.values[:, 8:] == 0).all()


def test_otsu_splits_two_modes_and_rejects_constant_input():
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(-0.4, 0.05, 500), rng.normal(0.5, 0.05, 200)])
    assert -0.3 < water.otsu_threshold(v) < 0.4
    with pytest.raises(EolabError, match="two distinct"):
        water.otsu_threshold(np.ones(10))


def test_largest_water_body_and_s1_path():
    f = np.zeros((10, 10))
    f[:5, :5] = 1
    f[8:, 8:] = 1
    assert water.largest_water_body(f).sum() == 25
    rng = np.random.default_rng(0)
    vv = np.where(np.arange(40)[None, :] < 15, 0.003, 0.08) * rng.gamma(4.5, 1 / 4.5, (40, 40))
    cube = xr.Dataset({"vv": (("time", "y", "x"), vv[None].astype("float32"))},
                      coords={"time": [np.datetime64("2026-01-01", "ns")], "y": np.arange(40.0), "x": np.arange(40.0)})
    w = water.classify_water_s1(cube)
    assert w.values[0, :, :15].mean() > 0.95 and w.values[0, :, 16:].mean() < 0.05


def test_extent_takes_the_pixel_size_from_the_coordinates():
    ds, lake = scene(2)
    w = water.classify_water(ds)
    coarse = w.assign_coords(x=w.x * 2, y=w.y * 2)  # the same pixels at 20 m
    assert water.extent(coarse).observed_ha.tolist() == pytest.approx([lake.sum() * 400 / 1e4] * 2)
    assert water.extent(w).observed_ha.tolist() == pytest.approx([lake.sum() * 100 / 1e4] * 2)
    with pytest.raises(EolabError, match="pixel size"):
        water.extent(w.isel(x=[0]))


SNOW = {"B02": 0.80, "B03": 0.78, "B04": 0.76, "B08": 0.70, "B11": 0.08, "B12": 0.05}


def _paint(ds, where, refl, t=None):
    for b, v in refl.items():
        if t is None:
            ds[b].values[:, where[0], where[1]] = v
        else:
            ds[b].values[t, where[0], where[1]] = v


def test_snow_is_not_water_and_a_snow_covered_lake_is_frozen_water():
    ds, lake = scene(3)
    assert water.classify_water(ds, "vote", snow=False).values[1, 0, 15] == 0
    _paint(ds, (slice(None), slice(10, None)), SNOW, t=1)  # snow on land (right half) on date 1
    _paint(ds, (slice(None), slice(0, 8)), SNOW, t=2)  # the lake iced and snow-covered on date 2
    # without the snow and water tests the vote calls snow water (MNDWI is the NDSI)
    assert water.classify_water(ds, "vote", snow=False, water_test=False).values[1, :, 10:].all()
    assert not water.classify_water(ds, "vote", snow=False).values[1, :, 10:].any()
    classes = water.surface_classes(ds)
    assert (classes.values[1, :, 10:] == 2).all() and (classes.values[2, :, :8] == 2).all()
    w = water.water_from_classes(classes)
    assert np.isnan(w.values[1, :, 10:]).all() and np.isnan(w.values[2, :, :8]).all()
    freq = water.frequency(w)
    ice = water.frozen(classes, freq)
    assert ice.values[2, :, :8].all() and not ice.values[1].any()
    ext = water.extent(w, freq, frozen=ice)
    lake_ha = lake.sum() * 100 / 1e4
    assert ext.frozen_ha.tolist() == pytest.approx([0, 0, lake_ha])
    assert ext.filled_ha.tolist() == pytest.approx([lake_ha] * 3)  # the frozen lake is water, not land


def test_a_drawn_down_bed_under_snow_is_not_frozen_water():
    # 6 dates: the lake (x < 8) full on 0-2, drawn down to x < 4 on date 3, iced (and snow on land) on 4-5
    ds, lake = scene(6)
    land = {b: float(ds[b].values[0, 0, 15]) for b in water.OPTICAL_BANDS}
    _paint(ds, (slice(None), slice(4, 8)), land, t=3)  # the bed fell dry
    for t in (4, 5):
        _paint(ds, (slice(None), slice(None)), SNOW, t=t)
    ds = ds.chunk({"time": 1, "y": 10, "x": 10})  # lazy, as in the template
    classes = water.surface_classes(ds)
    freq = water.frequency(water.water_from_classes(classes)).compute()
    assert float(freq.values[0, 5]) == 0.75  # the bed was water on 3 of its 4 open dates
    old = water.frozen(classes, freq, recent=False).values
    assert old[4, :, :8].all()  # by frequency alone the dry bed counts as frozen water
    ice = water.frozen(classes, freq).values
    assert ice[4:, :, :4].all() and not ice[4:, :, 4:].any() and not ice[:4].any()
    state = water.last_open_state(classes).values
    assert (state[3:, :, 4:8] == 0).all() and (state[:3, :, 4:8] == 1).all() and (state[:, :, :4] == 1).all()
    # iced on the first date: the first open observation after it decides
    first_iced = water.surface_classes(ds.isel(time=[4, 0, 1]).assign_coords(time=ds.time[:3].values))
    assert water.frozen(first_iced, freq.where(False)).values[0, :, :8].all()


def test_scl_snow_and_dark_area_classes():
    ds, lake = scene(1)
    scl = np.full((1, 20, 20), 4, np.uint8)
    scl[0, :, 8:10] = 2  # dark area / terrain shadow
    scl[0, 15:, 12:] = 11  # snow the spectral test does not see (e.g. thin, patchy)
    ds["SCL"] = (("time", "y", "x"), scl)
    classes = water.surface_classes(ds).values[0]
    assert (classes[:, 8:10] == 3).all() and (classes[15:, 12:] == 2).all()
    assert (classes[:, :8] == 1).all()
    off = water.surface_classes(ds, snow=False, shadow=False).values[0]
    assert set(np.unique(off)) == {0.0, 1.0}


def test_top_of_atmosphere_input_is_refused_or_rayleigh_corrected():
    from eolab.analysis import atmosphere

    ds, lake = scene(1)
    ds.attrs.update({"processing:level": "L1C", "crs": "EPSG:32633"})
    with pytest.raises(EolabError, match="top-of-atmosphere"):
        water.classify_water(ds)
    w = water.classify_water(ds, toa="rayleigh", sun_zenith=60.0)
    assert (w.values[0] == lake).all()
    corrected = atmosphere.rayleigh_correct(ds, sun_zenith=60.0)
    path = corrected.attrs["eolab:rayleigh"]["path_reflectance"]
    assert path["B02"][0] > path["B03"][0] > path["B08"][0] > path["B11"][0] > 0  # λ^-4
    assert 0.05 < path["B02"][0] < 0.09  # blue Rayleigh path reflectance at a 60° sun
    assert atmosphere.processing_level(corrected) == "L1C+rayleigh"
    assert atmosphere.processing_level(ds.assign_attrs({"processing:level": "L2A"})) == "L2A"
    prov = {"eolab:provenance": {"items": [{"collection": "sentinel-2-l1c"}]}}
    assert atmosphere.processing_level(xr.Dataset(attrs=prov)) == "L1C"
    # the sun position: Berlin at 10:21 UTC on 16 February 2017 (NOAA calculator: ~66.5°)
    zen, az = atmosphere.sun_position("2017-02-16T10:21:01", 13.0, 52.5)
    assert zen == pytest.approx(66.5, abs=0.5) and 150 < az < 180


def test_otsu_only_where_the_edge_sample_is_bimodal():
    rng = np.random.default_rng(1)
    land = rng.normal(-0.4, 0.08, (60, 60))
    thr, used = water.edge_otsu(land)  # no water: the fixed threshold
    assert (thr, used) == (0.0, False)
    img = land.copy()
    img[:, :20] = rng.normal(0.5, 0.08, (60, 20))
    thr, used = water.edge_otsu(img)
    assert used and -0.3 < thr < 0.4
    assert water.ashman_d(img.ravel(), thr) > 2
    ds, lake = scene(2)
    out = water.surface_classes(ds, "mndwi-otsu")
    assert len(out.attrs["otsu_used"]) == 2


def test_warns_when_no_cloud_mask_is_possible():
    from eolab.errors import EolabWarning

    ds, _ = scene(1)
    with pytest.warns(EolabWarning, match="no cloud mask"):
        water.classify_water(ds)
    ds.attrs["processing:level"] = "L2A"
    ds["clear"] = ds["B03"].notnull()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        water.classify_water(ds)


REAL = __import__("pathlib").Path(__file__).resolve().parents[3] / "shared" / "data" / "stac-real"


def _real(name: str) -> dict:
    import json

    path = next(iter(sorted(REAL.glob(f"*/{name}*.json"))), None)
    if path is None:
        pytest.skip(f"real STAC item {name} is absent (../shared/data/stac-real of the project)")
    return json.loads(path.read_text())


def test_input_bands_follow_the_items_mask():
    """The water notebook loads what the items offer: SCL from L2A items (CDSE, Earth Search), and
    for CDSE's L1C item (no SCL) the s2cloudless bands instead, so the detector masks its clouds."""
    from eolab.analysis import clouds

    l2a, l1c = _real("S2A_MSIL2A_20220217"), _real("S2A_MSIL1C_20240116")
    assert water.item_level(l2a) == "L2A" and water.item_level(l1c) == "L1C"
    assert water.input_bands([l2a]) == water.OPTICAL_BANDS + ["SCL"]
    assert water.input_bands([_real("S2A_28QCH_20200714")]) == water.OPTICAL_BANDS + ["SCL"]
    bands = water.input_bands([l1c])
    assert "SCL" not in bands and set(clouds.BANDS) <= set(bands) and bands[:6] == water.OPTICAL_BANDS
    # an L2A item without SCL: no detector (it needs top-of-atmosphere input), the optical bands only
    bare = {**l2a, "assets": {k: v for k, v in l2a["assets"].items() if not k.upper().startswith("SCL")}}
    assert water.input_bands([bare]) == water.OPTICAL_BANDS


def test_band_checks_look_up_each_providers_profile_once(monkeypatch):
    """A season of items from one provider is one profile lookup (each may read the catalogue
    configuration), in carries_scl, has_bands and load_cube's planning alike."""
    from eolab.data import load

    l2a = _real("S2A_MSIL2A_20220217")
    items = [{**l2a, "id": f"{l2a['id']}-{i}", "collection": "CDSE|sentinel-2-l2a"} for i in range(30)]
    calls = []
    real = load._profile_for
    monkeypatch.setattr(load, "_profile_for", lambda provider, profile: calls.append(provider) or real(provider, profile))
    assert load.carries_scl(items)
    assert len(calls) == 1
    assert load.has_bands(items, ["red", "nir"])
    assert len(calls) == 2
    assert not load.has_bands(items, ["red", "no-such-band"])


def _dem(n=40, res=10.0, rise=0.5):
    """An elevation grid: a plain (left half) and a hillside rising ``rise`` m per m (right half)."""
    x = np.arange(n) * res
    y = np.arange(n)[::-1] * res
    z = np.where(x >= n * res / 2, (x - n * res / 2) * rise, 0.0)[None, :].repeat(n, 0)
    return xr.DataArray(z.astype("float32"), coords={"y": y, "x": x}, dims=("y", "x"))


def test_slope_percent_of_a_plain_and_a_hillside_numpy_and_dask_alike():
    dem = _dem()
    s = water.slope_percent(dem, baseline=0)
    assert s.attrs["units"] == "%"
    assert float(s.values[:, :18].max()) == 0 and np.allclose(s.values[:, 22:-1], 50)
    # averaged over 90 m: the same far from the break, and the same lazily across blocks
    s90 = water.slope_percent(dem)
    lazy = water.slope_percent(dem.chunk({"x": 7, "y": 9}))
    assert np.allclose(s90.values[:, 30:-6], 50) and float(s90.values[:, :12].max()) == 0
    assert np.allclose(lazy.compute().values, s90.values, atol=1e-4)
    # a 14 m tree line on a flat shore is a 140 % step at 10 m, and well under 30 % over 90 m
    trees = xr.zeros_like(dem) + np.where(np.arange(40) >= 20, 14.0, 0.0)[None, :].astype("float32")
    assert float(water.slope_percent(trees, baseline=0).max()) > 30
    assert float(water.slope_percent(trees).max()) < water.MAX_WATER_SLOPE


def test_no_water_on_steep_slopes_and_the_lake_is_untouched():
    ds, lake = scene(1, cloud_on=None)
    ds = ds.isel(y=slice(0, 20), x=slice(0, 20))
    shaded_forest = {"B02": 0.03, "B03": 0.04, "B04": 0.03, "B08": 0.035, "B11": 0.02, "B12": 0.012}
    _paint(ds, (slice(None), slice(14, None)), shaded_forest)  # dark and flat in the NIR: the vote says water
    assert (water.classify_water(ds).values[0][:, 14:] == 1).all()
    dem = _dem(n=20, rise=0.8)
    slope = water.slope_percent(dem.assign_coords(x=ds.x, y=ds.y), baseline=0)
    classes = water.surface_classes(ds, slope=slope)
    assert (classes.values[0][:, 14:] == 0).all()  # on a 50 % slope: land, not water
    assert (classes.values[0][lake] == 1).all()  # the lake lies on the plain
    assert classes.attrs["slope_rule"] == "no water on slopes >= 30 %"
    assert water.surface_classes(ds).attrs["slope_rule"] == "off"
    with pytest.raises(EolabError, match="not on the cube's grid"):
        water.surface_classes(ds, slope=slope.isel(x=slice(0, 10)))


def test_voids_in_the_surface_model_stay_local_and_odd_grids_are_refused():
    dem = _dem(n=60, rise=0.5)
    dem.values[:, 2] = np.nan  # a void column on the plain, far from the hillside
    s = water.slope_percent(dem)
    lazy = water.slope_percent(dem.chunk({"x": 16, "y": 16})).compute()
    assert np.allclose(s.values, lazy.values, equal_nan=True)
    assert np.isnan(s.values).sum() <= 3 * 60  # the void and at most a pixel either side
    assert np.allclose(s.values[:, 40:-6], 50)  # the hillside is still steep
    assert float(water.slope_percent(_dem(n=4)).max()) > 0  # smaller than the window: no error
    degrees = _dem(n=20).assign_coords(x=np.arange(20) / 3600, y=np.arange(20)[::-1] / 3600)
    with pytest.raises(EolabError, match="degrees"):
        water.slope_percent(degrees)


def test_a_slope_a_few_pixels_off_the_cube_is_refused():
    ds, _ = scene(1)
    slope = water.slope_percent(_dem(n=20).assign_coords(x=ds.x, y=ds.y), baseline=0)
    with pytest.raises(EolabError, match="not on the cube's grid"):
        water.surface_classes(ds, slope=slope.assign_coords(y=slope.y + 30.0))  # 3 pixels north
    with pytest.raises(EolabError, match="not on the cube's grid"):
        water.surface_classes(ds, slope=slope.assign_coords(x=slope.x + 4.0))  # 4 m east
    with pytest.raises(EolabError, match="EPSG:4326"):
        water.surface_classes(ds.assign_attrs(crs="EPSG:32634"), slope=slope.assign_attrs(crs="EPSG:4326"))


def test_steep_pixels_are_left_out_of_the_otsu_sample():
    ds, lake = scene(1)
    ds = ds.isel(time=[0])
    shade = {"B02": 0.03, "B03": 0.04, "B04": 0.03, "B08": 0.035, "B11": 0.02, "B12": 0.012}
    _paint(ds, (slice(None), slice(12, None)), shade)
    slope = water.slope_percent(_dem(n=20, rise=0.8).assign_coords(x=ds.x, y=ds.y), baseline=0)
    steep = slope.values >= water.MAX_WATER_SLOPE
    calls = []
    real = water.edge_otsu

    def spy(values, **kw):
        calls.append(np.asarray(values))
        return real(values, **kw)

    import unittest.mock

    with unittest.mock.patch.object(water, "edge_otsu", spy):
        classes = water.surface_classes(ds, "mndwi-otsu", slope=slope).values[0]
    assert np.isnan(calls[0][steep]).all() and not np.isnan(calls[0][~steep]).all()
    assert not (classes[steep] == 1).any() and (classes[lake] == 1).all()


def test_surface_model_items_from_a_catalogue():
    from eolab.errors import EolabWarning, NoItemsError

    class Catalogue:
        def __init__(self, error=None):
            self.error, self.asked = error, []

        def find(self, collection, bbox=None):
            self.asked.append(collection)
            if self.error:
                raise self.error
            return ["an item"]

    assert water.surface_model_items(Catalogue(), None, [0, 0, 1, 1]) == []  # off: nothing asked
    assert water.surface_model_items(Catalogue(), "cop-dem-glo-30", [0, 0, 1, 1]) == ["an item"]
    none = Catalogue(NoItemsError("no items of cop-dem-glo-3 found at http://127.0.0.1:1"))
    with pytest.warns(EolabWarning, match="cop-dem-glo-3 .*slope rule is off; check dem_collection"):
        assert water.surface_model_items(none, "cop-dem-glo-3", [0, 0, 1, 1]) == []
    down = Catalogue(EolabError("provider(s) pannonia did not answer the search for cop-dem-glo-30"))
    with pytest.raises(EolabError, match="did not answer"):  # a provider down is not "no surface model"
        water.surface_model_items(down, "cop-dem-glo-30", [0, 0, 1, 1])
    ds, _ = scene(1)
    with pytest.warns(EolabWarning, match="slope rule"):
        assert water.terrain_slope([], ds) is None
