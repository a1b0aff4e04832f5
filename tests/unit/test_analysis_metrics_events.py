"""Accuracy measures and event detection on hand-made examples with known answers."""

import numpy as np
import pytest

from eolab import metrics
from eolab.analysis import events


def test_kappa_and_report_by_hand():
    ref = ["a"] * 50 + ["b"] * 50
    pred = ["a"] * 45 + ["b"] * 5 + ["b"] * 40 + ["a"] * 10
    r = metrics.classification_report(ref, pred)
    assert r["overall_accuracy"] == pytest.approx(0.85)
    assert r["kappa"] == pytest.approx(0.70)
    assert r["per_class"].loc["a", "f1"] == pytest.approx(2 * 45 / (2 * 45 + 10 + 5))
    assert r["per_class"].reference_count.tolist() == [50, 50]


def test_binary_f1_and_event_matching():
    f = metrics.binary_f1([1, 1, 0, 0, 1], [1, 0, 1, 0, 1])
    assert (f["tp"], f["fp"], f["fn"]) == (2, 1, 1) and f["f1"] == pytest.approx(2 / 3)
    m = metrics.match_events([["2026-05-10", "2026-06-20"], []], [["2026-05-14", "2026-06-01"], ["2026-07-01"]], 6)
    assert (m["true"], m["found"], m["matched"]) == (2, 3, 1)
    assert m["median_abs_error_days"] == 4


def test_mowing_detected_and_dated_between_observations():
    days = np.arange(0, 100, 5.0) + 20000
    ndvi = np.full((2, days.size), 0.78)
    ndvi[0, 8:] = np.linspace(0.45, 0.75, days.size - 8)  # cut between day 35 and 40 of the series
    ndvi[0, 7] = np.nan  # a cloud on the day before
    ndvi[1, 6] = 0.74  # noise only
    found = events.detect_mowing(ndvi, days)
    assert len(found[0]) == 1 and not found[1]
    e = found[0][0]
    assert days[6] < e["day"] < days[8] and e["drop"] == pytest.approx(0.33)
    bare = events.detect_bare_soil(np.array([[0.6, 0.2, 0.15, 0.18, 0.6]]), days[:5])
    assert bare[0][0]["n_obs"] == 3
    table = events.events_table(["p1", "p2"], found, [[], []])
    assert table.event.tolist() == ["mowing"]


def _s1_scene(rng, n=60):
    """VH (dB) of n parcels on a 6-day grid with a shared rain effect; parcel 0 mown on day 47."""
    s1_days = np.arange(0, 150, 6.0) + 20454  # 2026-01-01 + ...
    vh = -15 + rng.normal(0, 0.15, (n, s1_days.size))
    vh += np.where(np.arange(s1_days.size) == 10, 2.0, 0.0)  # a wet date: every parcel brighter
    k = int(np.searchsorted(s1_days, s1_days[0] + 47))  # first acquisition after the cut
    vh[0, k:k + 4] -= np.array([3.0, 2.0, 1.0, 0.3])  # cut, then regrowth
    return s1_days, vh, k


def test_fused_mowing_finds_a_cut_hidden_from_the_optical_sensor():
    rng = np.random.default_rng(1)
    s1_days, vh, k = _s1_scene(rng)
    days = np.arange(0, 150, 5.0) + 20454
    ndvi = np.full((vh.shape[0], days.size), 0.75) + rng.normal(0, 0.01, (vh.shape[0], days.size))
    ndvi[0, 8:14] = np.nan  # clouds over the cut (day 40..65)
    # noise level given (1 dB for a date-to-date difference); fitted from the data by default
    kw = dict(noise=(1.0, 0.0), ndvi_sigma=0.045, season=None)
    found = events.detect_mowing_fused(ndvi, days, vh, s1_days, np.full(vh.shape[0], 100.0), **kw)
    assert len(found[0]) == 1
    e = found[0][0]
    assert s1_days[k - 1] <= e["day"] <= s1_days[k] and e["radar"] > 1
    # the wet date (all parcels) is normalised away: no event on the others
    assert sum(len(f) for f in found[1:]) == 0
    # outside the season nothing is reported
    assert not events.detect_mowing_fused(ndvi, days, vh, s1_days, np.full(vh.shape[0], 100.0), noise=(1.0, 0.0),
                                          season=("09-01", "09-30"))[0]


def test_fused_mowing_needs_regrowth_and_uses_the_optical_drop_for_dating():
    rng = np.random.default_rng(2)
    s1_days, vh, k = _s1_scene(rng)
    vh[1, 18:] -= 3.0  # a lasting decline (senescence): a drop without regrowth is no mowing
    days = np.arange(0, 150, 5.0) + 20454
    ndvi = np.full((vh.shape[0], days.size), 0.75)
    j = int(np.searchsorted(days, s1_days[0] + 47))
    ndvi[0, j:] = np.linspace(0.4, 0.75, days.size - j)
    found = events.detect_mowing_fused(ndvi, days, vh, s1_days, np.full(vh.shape[0], 100.0), noise=(1.0, 0.0),
                                       season=None)
    assert not found[1]
    e = found[0][0]
    # the cell is bounded by both sensors: within the optical bracket and the radar interval
    assert max(days[j - 1], s1_days[k - 1]) <= e["day"] <= min(days[j], s1_days[k])
    assert e["optical"] > 3
    table = events.events_table(["a"] + [f"p{i}" for i in range(1, vh.shape[0])], found)
    assert "radar" in table.detail.iloc[0]


def test_backscatter_noise_model_shrinks_with_pixels():
    rng = np.random.default_rng(3)
    n = np.repeat([4, 16, 64, 256], 30).astype(float)
    vh = rng.normal(0, 1, (n.size, 20)) * np.sqrt(0.25 + 8 / n)[:, None]
    a, b = events.backscatter_noise(vh, n)
    # differences of two dates have twice the variance of one
    assert a == pytest.approx(0.5, abs=0.2) and b == pytest.approx(16, rel=0.3)


def test_fused_mowing_dated_near_the_dip_in_a_long_radar_gap():
    # an 18-day radar gap and no clear optical view: a cut shows while the grass regrows, so it is dated
    # `max_offset` days before the dip (not at the gap's middle); with a 12-day gap, the middle
    rng = np.random.default_rng(4)
    s1_days = np.array([0, 12, 24, 42, 54, 66, 78, 90, 102], float) + 20454
    vh = -15 + rng.normal(0, 0.1, (30, s1_days.size))
    vh[0, 3:6] -= np.array([3.0, 1.5, 0.5])  # dip at s1_days[3], 18 days after s1_days[2]
    vh[1, 5:8] -= np.array([3.0, 1.5, 0.5])  # dip at s1_days[5], 12 days after s1_days[4]
    days = np.arange(0, 110, 5.0) + 20454
    ndvi = np.full((vh.shape[0], days.size), np.nan)
    kw = dict(noise=(0.2, 0.0), ndvi_sigma=0.05, season=None)
    found = events.detect_mowing_fused(ndvi, days, vh, s1_days, np.full(vh.shape[0], 100.0), **kw)
    assert [e["day"] for e in found[0]] == [s1_days[3] - 6]
    assert [e["day"] for e in found[1]] == [s1_days[5] - 6]
    assert found[0][0]["window"] == (events._to_date(s1_days[2]), events._to_date(s1_days[3]))
    cell = events.detect_mowing_fused(ndvi, days, vh, s1_days, np.full(vh.shape[0], 100.0), dating="cell", **kw)
    assert s1_days[2] <= cell[0][0]["day"] <= s1_days[3]
