"""Source items per parcel row (provenance.source_items_per_row): the ids of the items that cover the
row on the dates it used, as the plain definition gives them, from date lists or a boolean matrix."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from eolab import provenance
from eolab.errors import EolabError

DAYS = ["2026-05-01", "2026-05-06", "2026-05-11", "2026-05-16"]


def _world(seed=0, n_rows=300, n_items=40):
    rng = np.random.default_rng(seed)
    items = []
    for k in range(n_items):
        x, y = rng.uniform(20, 21), rng.uniform(47, 48)
        items.append({"id": f"S2_{rng.integers(0, 10**6):06d}_{k}", "bbox": [x, y, x + 0.4, y + 0.4],
                      "datetime": DAYS[k % len(DAYS)] + "T09:50:00Z"})
    items.append({"id": "no-date", "bbox": [19, 46, 22, 49]})
    x, y = rng.uniform(20, 21.3, n_rows), rng.uniform(47, 48.3, n_rows)
    gdf = gpd.GeoDataFrame({"i": range(n_rows)}, geometry=[box(a, b, a + 0.01, b + 0.01) for a, b in zip(x, y)],
                           crs="EPSG:4326")
    used = rng.random((n_rows, len(DAYS))) < 0.6
    return {"items": items}, gdf, used


def _plain(prov, gdf, used):
    """The definition, row by row and item by item."""
    out = []
    for r, geom in enumerate(gdf.geometry):
        days = None if used is None else {d for d, u in zip(DAYS, used[r]) if u}
        out.append(",".join(sorted(it["id"] for it in prov["items"] if box(*it["bbox"]).intersects(geom)
                                   and (days is None or (it.get("datetime") or "")[:10] in days))))
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_source_items_per_row_follow_the_definition(seed):
    prov, gdf, used = _world(seed)
    expected = _plain(prov, gdf, used)
    assert sum(bool(e) for e in expected) > 100  # most rows have items
    as_matrix = provenance.source_items_per_row(prov, gdf, used, dates=np.array(DAYS, dtype="datetime64[D]"))
    as_lists = provenance.source_items_per_row(prov, gdf, [[d for d, u in zip(DAYS, row) if u] for row in used])
    assert as_matrix == expected and as_lists == expected
    assert provenance.source_items_per_row(prov, gdf) == _plain(prov, gdf, None)
    # rows with the same items share one string (a country's column holds few distinct ones)
    assert len({id(s) for s in as_matrix}) == len(set(as_matrix))


@pytest.mark.parametrize("block", [1, 7, 64])
def test_rows_in_blocks_give_the_same_column(block):
    """A country's rows go block by block (bounded memory); block edges must not move any row's items."""
    prov, gdf, used = _world(3, n_rows=150)
    dates = np.array(DAYS, dtype="datetime64[D]")
    whole = provenance.source_items_per_row(prov, gdf, used, dates=dates, rows_per_block=10**6)
    assert whole == _plain(prov, gdf, used)
    assert provenance.source_items_per_row(prov, gdf, used, dates=dates, rows_per_block=block) == whole
    lists = [[d for d, u in zip(DAYS, row) if u] for row in used]
    assert provenance.source_items_per_row(prov, gdf, lists, rows_per_block=block) == whole
    assert provenance.source_items_per_row(prov, gdf, rows_per_block=block) == _plain(prov, gdf, None)
    with pytest.raises(EolabError, match="one list of dates per row"):
        provenance.source_items_per_row(prov, gdf, lists[:-1], rows_per_block=block)
    # a (rows × dates) DataFrame is a matrix, not a list of rows
    frame = pd.DataFrame(used, columns=DAYS)
    assert provenance.source_items_per_row(prov, gdf, frame, dates=dates, rows_per_block=block) == whole


def test_blocks_of_no_rows_are_refused():
    prov, gdf, used = _world(4, n_rows=10)
    with pytest.raises(EolabError, match="rows_per_block"):
        provenance.source_items_per_row(prov, gdf, rows_per_block=0)


def test_a_matrix_without_its_dates_is_refused():
    prov, gdf, used = _world()
    with pytest.raises(EolabError, match="dates"):
        provenance.source_items_per_row(prov, gdf, used)
    with pytest.raises(EolabError, match="dates"):
        provenance.source_items_per_row(prov, gdf, used[:5], dates=DAYS)


def test_two_time_steps_of_one_day_count_if_either_was_used():
    prov, gdf, used = _world(2)
    dates = DAYS + [DAYS[0]]  # a second step on the first day, used where the first was not
    doubled = np.concatenate([np.zeros((len(gdf), 1), bool), used[:, 1:], used[:, :1]], axis=1)
    assert provenance.source_items_per_row(prov, gdf, doubled.astype(int), dates=dates) == _plain(prov, gdf, used)
