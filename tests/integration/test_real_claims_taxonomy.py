"""Real national claim files (../shared/data/parcels): every crop maps to HCAT3, and the CAP checks
recognise each file's grassland (the mowing check runs on it) and its crop groups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eolab.analysis import cap, claims, taxonomy

SHARED = Path(__file__).parents[2].parent / "shared" / "data"
PARCELS = SHARED / "parcels"
pytestmark = pytest.mark.skipif(not PARCELS.is_dir(), reason=f"real parcel files not present at {PARCELS}")

COUNTRIES = ["at", "de_bb", "dk", "ec_si", "fi", "nl"]
#: crop groups each sample file must show (read from its HCAT3 codes, not from names)
GROUPS = {"at": {"grassland", "winter cereals", "summer crops", "fallow"},
          "de_bb": {"grassland", "fallow"},
          "dk": {"grassland", "spring cereals", "winter cereals", "oilseed rape", "fallow", "permanent crops"},
          "ec_si": {"grassland", "summer crops", "winter cereals", "spring cereals"},
          "fi": {"grassland", "spring cereals", "winter cereals"},
          "nl": {"grassland", "summer crops"}}


def _file(country: str) -> Path:
    return next(p for p in sorted((PARCELS / country).iterdir()) if p.is_file())


@pytest.mark.parametrize("country", COUNTRIES)
def test_real_claims_map_to_hcat3_and_the_cap_checks_see_grassland_and_crop_groups(country):
    c = claims.read_claims(_file(country))
    share = float((c.hcat3_code != "").mean())
    print(f"{country}: {len(c)} claims, {share:.1%} mapped to HCAT3 ({c.attrs['eolab:ingest']['taxonomy']})")
    assert share >= 0.98
    assert set(c.hcat3_name[c.hcat3_code != ""]) <= set(taxonomy.hcat3_names().values())

    # the CAP checks on the file's own crop names: classes are the declared names, the model agrees
    # with every declaration, no mowing was found anywhere → exactly the grassland parcels get the
    # mowing reason (the mowing check runs on them), and the groups come from HCAT3
    c = c.reset_index(drop=True)
    screen = cap.screen_parcels(c).assign(monitorable=True)
    classes = sorted(set(c.crop_name))
    proba = np.full((len(c), len(classes)), 0.01)
    proba[np.arange(len(c)), [classes.index(n) for n in c.crop_name]] = 0.9
    out = cap.check_parcels(c, screen, proba, classes, n_observations=[20] * len(c), mowing=[[]] * len(c),
                            bare_soil=[[]] * len(c))
    grass = cap.grassland_mask(c)
    no_mowing = out.reasons.str.contains("declared grassland, no mowing detected").values
    assert grass.any() and (no_mowing == grass).all()
    assert (out.declared_group[grass] == "grassland").all()
    groups = set(out.declared_group)
    assert GROUPS[country] <= groups, groups
    assert (out.declared_group != "other").mean() >= 0.98
    print(f"{country}: grassland {grass.mean():.0%} of claims; groups "
          + ", ".join(f"{g} {n}" for g, n in out.declared_group.value_counts().items()))
    # and the crop-group red rule fires on them: every parcel predicted as the first grassland crop
    grass_name = c.crop_name[grass].iloc[0]
    flipped = np.full_like(proba, 0.01)
    flipped[:, classes.index(grass_name)] = 0.9
    red = cap.check_parcels(c, screen, flipped, classes, n_observations=[20] * len(c))
    arable = out.declared_group.isin(["winter cereals", "spring cereals", "cereals", "summer crops", "oilseed rape"])
    assert (red.light[arable.values] == "red").all()
