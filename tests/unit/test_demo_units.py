"""Fast checks of the demo generator's parts (no full generation)."""

import datetime as dt

import numpy as np
import pytest

from eolab.demo import SIZES, generate
from eolab.demo._clouds import cloud_plan
from eolab.demo._common import rng, smooth_noise
from eolab.demo._dates import LEVEL_MAX, LEVEL_MIN, WINTER_DATES, s1_dates, s2_dates, sun_angles, water_level
from eolab.errors import EolabError

SEED = 20260301


def test_unknown_size_is_an_eolab_error(tmp_path):
    with pytest.raises(EolabError) as e:
        generate(tmp_path / "x", "huge", progress=False)
    assert e.value.message == "unknown demo size 'huge'"
    assert e.value.hint == "choose one of: small, default"
    assert not (tmp_path / "x").exists()


def test_unwritable_output_names_the_path(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(EolabError) as e:
        generate(blocker / "sub", "small", progress=False)
    assert str(blocker / "sub") in str(e.value)


def test_sizes():
    assert SIZES == {"small": 768, "default": 2048}
    assert all(n % 256 == 0 for n in SIZES.values())


def test_calendars_are_seeded_and_plausible():
    s2, s1 = s2_dates(SEED), s1_dates(SEED)
    assert [a.date for a in s2] == [a.date for a in s2_dates(SEED)]
    assert [a.date for a in s2] != [a.date for a in s2_dates(SEED + 1)]
    assert len(s2) >= 36 and len(s1) >= 18
    season = [a for a in s2 if a.date <= dt.date(2026, 10, 31)]
    assert [a.date for a in s2[len(season):]] == [d for d, *_ in WINTER_DATES]  # then the winter dates
    for ds in (season, s1):
        assert all(dt.date(2026, 3, 1) <= a.date <= dt.date(2026, 10, 31) for a in ds)
    for ds in (s2, s1):
        assert all(b.date > a.date for a, b in zip(ds, ds[1:]))
        assert [a.index for a in ds] == list(range(len(ds)))
    gaps = {(b.date - a.date).days for a, b in zip(season, season[1:])}
    assert min(gaps) == 5 and max(gaps) > 5  # 5-day revisit, irregularly subsampled
    assert {a.platform for a in s2} == {"sentinel-2a", "sentinel-2b", "sentinel-2c"}
    assert all(9 <= a.datetime.hour <= 9 and 35 <= a.datetime.minute <= 45 for a in s2)
    assert {a.orbit_state for a in s1} == {"ascending", "descending"}
    assert all((a.datetime.hour, a.orbit_state) in {(4, "descending"), (16, "ascending")} for a in s1)


def test_regulation_curve():
    assert water_level(70) < LEVEL_MIN + 0.15  # low in March
    assert water_level(110) > LEVEL_MAX - 0.2  # filled by mid/late April
    assert min(water_level(d) for d in range(120, 260)) > LEVEL_MAX - 0.2
    assert water_level(300) < water_level(260) - 0.5  # drawn down in October


def test_sun_from_the_south_east_at_overpass():
    el, az = sun_angles(dt.datetime(2026, 6, 21, 9, 40, tzinfo=dt.timezone.utc))
    assert 60 < el < 66 and 140 < az < 175
    el, az = sun_angles(dt.datetime(2026, 3, 1, 9, 40, tzinfo=dt.timezone.utc))
    assert 25 < el < 35 and 140 < az < 175


def test_cloud_plan_shares():
    plan = cloud_plan(SEED, 40)
    assert np.array_equal(plan, cloud_plan(SEED, 40))
    assert 0.28 <= plan.mean() <= 0.42
    assert (plan < 0.05).sum() >= 8 and (plan > 0.85).sum() >= 4
    assert ((plan > 0.05) & (plan < 0.85)).sum() >= 20


def test_streams_do_not_depend_on_draw_order():
    a = rng(SEED, "clouds", 3).random(5)
    rng(SEED, "scene").random(1000)  # unrelated draws in between
    assert np.array_equal(a, rng(SEED, "clouds", 3).random(5))
    assert not np.array_equal(a, rng(SEED, "clouds", 4).random(5))


def test_smooth_noise_is_smooth_and_normalised():
    z = smooth_noise(rng(SEED, "t"), (300, 300), 20)
    assert abs(float(z.mean())) < 1e-3 and abs(float(z.std()) - 1) < 1e-3
    lag1 = np.corrcoef(z[:, :-1].ravel(), z[:, 1:].ravel())[0, 1]
    assert lag1 > 0.95
