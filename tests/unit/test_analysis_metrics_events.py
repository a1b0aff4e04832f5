"""Accuracy measures and event detection on hand-made examples with known answers."""

import numpy as np
import pytest

from eolab.analysis import events, metrics


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
