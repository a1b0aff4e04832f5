"""The CAP results table built part by part (cap.result_parts / write_results): the same rows and
files as the table built whole, parcels the screen set aside are yellow with its reason, and each
parcel's source items are those of the dates its series used."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from shapely.geometry import box

from eolab import provenance
from eolab.analysis import cap, outputs
from eolab.errors import EolabError
from tests.unit._cap_scene import DATES, X0, Y0, make_scene


@pytest.fixture
def scene(tmp_path):
    (tmp_path / "scene").mkdir()
    run, _, items = make_scene(tmp_path / "scene")
    run.info["observed"][1, 0] = False  # GREEN-2's first date was cloudy
    claims = run.screen.join(run.checks[[]])  # only to get the ids in the run's order
    declared = gpd.GeoDataFrame(
        {"farmer_id": ["F1", "F2", "F3"], "crop_code": ["201", "201", "301"],
         "crop_name": ["maize", "maize", "grassland"], "area_declared_ha": [0.01, 4.0, 4.0]},
        geometry=[box(X0 + 10, Y0 - 20, X0 + 20, Y0 - 10),  # 10 × 10 m: set aside by the screen
                  box(X0 + 100, Y0 - 400, X0 + 300, Y0 - 200), box(X0 + 350, Y0 - 350, X0 + 550, Y0 - 150)],
        index=pd.Index(["TINY-0", *claims.index], name="parcel_id"), crs="EPSG:32634")
    screen = cap.screen_parcels(declared)
    assert screen.monitorable.tolist() == [False, True, True]
    prov = provenance.record(items, workflow="cap-parcel-checks", parameters={"min_pixels": 8})
    dates = np.array(DATES, dtype="datetime64[ns]")
    return declared, screen, run, prov, dates


def test_the_results_table_has_every_claim_in_order_with_its_light_and_items(scene):
    declared, screen, run, prov, dates = scene
    result = cap.result_table(declared, run, prov, screen=screen, dates=dates)
    assert result.parcel_id.tolist() == ["TINY-0", "RED-1", "GREEN-2"]
    assert list(result.columns[:6]) == ["parcel_id", "farmer_id", "crop_code", "crop_name", "area_declared_ha",
                                        "geometry"]
    assert result.light.tolist() == ["yellow", "red", "green"]
    tiny = result.iloc[0]
    assert tiny.reasons == screen.loc["TINY-0", "screen_reason"] + " — check by field visit or VHR image"
    assert "declared_crop" not in result and np.isnan(tiny.p_declared) and tiny.n_clear_observations == 0
    # a concat of the run's table and the set-aside rows would type them so
    assert result.declaration_suspect.dtype == bool and result.n_clear_observations.dtype == np.int64
    assert result.p_declared.dtype == float and result.p_declared.iloc[1] == pytest.approx(0.2)
    # the items of the dates each parcel's series used; none for a parcel not judged from the images
    assert result.source_items.tolist() == ["", ",".join(f"S2_{d}" for d in DATES),
                                            ",".join(f"S2_{d}" for d in DATES[1:])]


@pytest.mark.parametrize("rows_per_part", [1, 2, 25_000])
def test_results_written_part_by_part_equal_the_table_written_whole(scene, tmp_path, rows_per_part):
    declared, screen, run, prov, dates = scene
    whole = outputs.write_table(cap.result_table(declared, run, prov, screen=screen, dates=dates),
                                tmp_path / "whole" / "cap_checks.gpkg", prov)
    seen = []
    parts = cap.write_results(declared, run, prov, tmp_path / "parts" / "cap_checks.gpkg", screen=screen,
                              dates=dates, rows_per_part=rows_per_part, on_part=lambda p: seen.append(p.index))
    # on_part saw each part once, in order, before it was written
    assert [len(i) for i in seen] == [min(rows_per_part, len(declared) - k) for k in range(0, len(declared), rows_per_part)]
    assert np.concatenate([np.asarray(i) for i in seen]).tolist() == list(range(len(declared)))
    pd.testing.assert_frame_equal(gpd.read_parquet(whole[1]), gpd.read_parquet(parts[1]))
    assert pq.read_schema(whole[1]).equals(pq.read_schema(parts[1]), check_metadata=True)
    pd.testing.assert_frame_equal(gpd.read_file(whole[0], layer="cap_checks"),
                                  gpd.read_file(parts[0], layer="cap_checks"))
    # one row group per part, except that the first part (the set-aside parcel alone: its model
    # columns are empty, so untyped) waited for the next one
    assert pq.ParquetFile(parts[1]).metadata.num_row_groups == {1: 2, 2: 2, 25_000: 1}[rows_per_part]
    assert provenance.read(parts[0])["items"] == provenance.read(whole[0])["items"]


def test_what_the_results_need_is_asked_for(scene):
    declared, screen, run, prov, dates = scene
    with pytest.raises(EolabError, match="rows_per_part must be at least 1"):
        next(cap.result_parts(declared, run, prov, screen=screen, dates=dates, rows_per_part=0))
    with pytest.raises(EolabError, match="1 parcels have no screen row, e.g. \\['TINY-0'\\]") as err:
        cap.result_table(declared, run, prov, dates=dates)  # run.screen has only the judged parcels
    assert "screen=" in err.value.hint
    with pytest.raises(EolabError, match="does not say its series' dates") as err:
        cap.result_table(declared, run, prov, screen=screen)
    assert "dates=" in err.value.hint


def test_no_claims_give_an_empty_table_with_its_columns(scene, tmp_path):
    declared, screen, run, prov, dates = scene
    whole = cap.result_table(declared, run, prov, screen=screen, dates=dates)
    empty = cap.result_table(declared.iloc[:0], run, prov, screen=screen, dates=dates)
    assert len(empty) == 0 and list(empty.columns) == list(whole.columns)
    files = cap.write_results(declared.iloc[:0], run, prov, tmp_path / "none.gpkg", screen=screen, dates=dates)
    assert list(gpd.read_parquet(files[1]).columns) == list(whole.columns)
