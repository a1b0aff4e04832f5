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
