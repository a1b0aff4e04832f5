"""Gap filling, haze flags and spike removal on small synthetic series."""

import numpy as np
import pytest

from eolab.analysis import timeseries as ts
from eolab.errors import EolabError


def test_interpolate_fills_gaps_linearly_and_holds_the_ends():
    days = np.array([0.0, 10, 20, 30])
    v = np.array([[np.nan, 0.2, np.nan, 0.6], [np.nan] * 4])
    out = ts.interpolate(v, days, np.array([-5.0, 10, 15, 20, 40]))
    np.testing.assert_allclose(out[0], [0.2, 0.2, 0.3, 0.4, 0.6])
    assert np.isnan(out[1]).all()
    gapped = ts.interpolate(v, days, np.array([20.0]), max_gap=15)
    assert np.isnan(gapped[0, 0])


def test_interpolate_matches_numpy_on_random_series():
    rng = np.random.default_rng(3)
    days = np.cumsum(rng.integers(1, 9, 30)).astype(float)
    v = rng.random((50, 30))
    v[rng.random(v.shape) < 0.4] = np.nan
    v[:, 0] = 0.5  # every series has an observation
    target = np.linspace(days[0], days[-1], 17)
    out = ts.interpolate(v, days, target)
    for i in range(50):
        ok = np.isfinite(v[i])
        np.testing.assert_allclose(out[i], np.interp(target, days[ok], v[i, ok]))


def test_interpolate_rejects_unsorted_dates():
    with pytest.raises(EolabError, match="increasing"):
        ts.interpolate(np.zeros((1, 3)), np.array([0.0, 2, 1]))


def test_haze_flags_catch_a_blue_rise_not_a_red_one():
    rng = np.random.default_rng(0)
    blue = 0.04 + rng.normal(0, 0.002, (200, 20))
    red = 0.05 + rng.normal(0, 0.002, (200, 20))
    blue[5, 7] += 0.08  # haze: blue up much more than red
    red[6, 3] += 0.08  # bare soil: red up, HOT down
    flags = ts.haze_flags(blue, red)
    assert flags[5, 7] and not flags[6, 3]
    assert flags.sum() <= 3


def test_haze_margin_fitted_on_parts_gives_the_flags_of_the_whole():
    # the tiled CAP run computes anomalies tile by tile and fits one margin on all of them
    rng = np.random.default_rng(1)
    blue = (0.04 + rng.normal(0, 0.003, (300, 24))).astype("float32")
    red = (0.05 + rng.normal(0, 0.003, (300, 24))).astype("float32")
    blue[rng.random(blue.shape) < 0.2] = np.nan  # unobserved parcel-dates
    blue[rng.integers(0, 300, 15), rng.integers(0, 24, 15)] += 0.07
    whole = ts.haze_flags(blue, red)
    parts = [ts.haze_anomaly(blue[r], red[r]) for r in np.array_split(rng.permutation(300), 7)]
    margin = ts.haze_margin(np.concatenate([a[np.isfinite(a)] for a in parts]))
    np.testing.assert_array_equal(ts.haze_flags(blue, red, margin=margin), whole)
    assert 10 <= whole.sum() <= 20
    # a margin fitted on one part alone is another margin: the parts are not judged alone
    assert ts.haze_margin(parts[0]) != margin
    assert ts.haze_margin(np.full(5, np.nan)) is None


def test_despike_removes_a_one_date_dip_but_keeps_a_lasting_drop():
    days = np.arange(0, 60, 5.0)
    dip = np.full(12, 0.8)
    dip[5] = 0.4  # back to 0.8 five days later: a cloud residue
    mow = np.full(12, 0.8)
    mow[5:] = [0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]  # slow regrowth
    flags = ts.despike(np.stack([dip, mow]), days)
    assert flags[0, 5] and not flags[1].any()


def test_row_nanpercentile_equals_numpy():
    from eolab.analysis.timeseries import row_nanpercentile

    rng = np.random.default_rng(5)
    values = rng.normal(size=(500, 37))
    values[rng.random(values.shape) < 0.4] = np.nan
    values[3] = np.nan  # a zone never observed
    values[4, 1:] = np.nan  # observed once
    for q in (0, 25, 50, 90, 100):
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
            expected = np.nanpercentile(values, q, axis=1)
        np.testing.assert_allclose(row_nanpercentile(values, q), expected, equal_nan=True, rtol=0, atol=1e-12)


def test_clean_series_tests_haze_once_per_series_and_keeps_float32(monkeypatch):
    import gc

    import xarray as xr

    rng = np.random.default_rng(0)
    blue, red = rng.uniform(0.02, 0.06, (50, 12)), rng.uniform(0.02, 0.1, (50, 12))
    blue[3, 4] += 0.2  # one hazy zone-date
    z = xr.Dataset({"B02": (("parcel", "time"), blue.astype("float32")),
                    "B04": (("parcel", "time"), red.astype("float32")),
                    "NDVI": (("parcel", "time"), rng.uniform(0.2, 0.8, (50, 12)).astype("float32")),
                    "NDMI": (("parcel", "time"), rng.uniform(0.0, 0.4, (50, 12)).astype("float32")),
                    "valid_fraction": (("parcel", "time"), np.ones((50, 12)))},
                   coords={"time": np.arange(12) * np.timedelta64(5, "D") + np.datetime64("2026-04-01")})
    calls = []
    real = ts.haze_flags
    monkeypatch.setattr(ts, "haze_flags", lambda b, r, **kw: calls.append(1) or real(b, r, **kw))
    ndvi = ts.clean_series(z, "NDVI", spikes=False)
    ndmi = ts.clean_series(z, "NDMI", spikes=False)
    assert len(calls) == 1  # both indices used the same flags
    assert ndvi.dtype == np.float32 and np.isnan(ndvi[3, 4]) and np.isnan(ndmi[3, 4])
    assert np.isfinite(ndvi).sum() == ndvi.size - 1
    # Other values of the same shape: tested anew; the first series' entry goes with its arrays.
    z2 = z.copy(deep=True)
    ts.clean_series(z2, "NDVI", spikes=False)
    assert len(calls) == 2
    held = len(ts._HAZE)
    del z, z2
    gc.collect()
    assert len(ts._HAZE) < held
