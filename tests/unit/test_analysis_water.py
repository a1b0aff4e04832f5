"""Water classification, frequency, extent and change on a small synthetic lake."""

import numpy as np
import pytest
import xarray as xr

from eolab.analysis import water
from eolab.errors import EolabError


def scene(n_dates=4, cloud_on=None):
    y, x = np.mgrid[0:20, 0:20]
    lake = (x < 8)
    refl = {"B02": 0.05, "B03": 0.06, "B08": 0.30, "B11": 0.20, "B12": 0.12}
    water_refl = {"B02": 0.06, "B03": 0.07, "B08": 0.02, "B11": 0.01, "B12": 0.01}
    data = {}
    for b in refl:
        arr = np.where(lake, water_refl[b], refl[b]).astype("float32")
        arr = np.repeat(arr[None], n_dates, 0)
        if cloud_on is not None:
            arr[cloud_on, :, :4] = np.nan
        data[b] = (("time", "y", "x"), arr)
    ds = xr.Dataset(data, coords={"time": np.arange(n_dates).astype("datetime64[D]").astype("datetime64[ns]"),
                                  "y": np.arange(20.0)[::-1] * 10, "x": np.arange(20.0) * 10})
    return ds, lake


@pytest.mark.parametrize("method", ["vote", "ndwi", "mndwi", "awei", "mndwi-otsu"])
def test_every_method_finds_the_lake(method):
    ds, lake = scene()
    w = water.classify_water(ds, method).values
    assert (w[0] == lake).all()


def test_dark_shadow_fools_mndwi_alone_but_not_the_vote():
    ds, lake = scene(1)
    # a dark, shadowed field: every band low, visible relatively less dark than SWIR
    for b, v in {"B02": 0.03, "B03": 0.035, "B08": 0.06, "B11": 0.03, "B12": 0.02}.items():
        ds[b].values[0, 15:, 15:] = v
    assert water.classify_water(ds, "mndwi").values[0, 15:, 15:].all()
    assert not water.classify_water(ds, "vote").values[0, 15:, 15:].any()


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
