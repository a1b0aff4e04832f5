"""The CAP checks in tiles of parcels (country scale): the same lights as one pass over all parcels."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pystac
import pytest
from shapely.geometry import box

from eolab.analysis import cap, claims, crops, dossier
from eolab.errors import EolabError


def _grid_parcels(n_side: int, crs: str = "EPSG:32634") -> gpd.GeoDataFrame:
    xs, ys = np.meshgrid(np.arange(n_side) * 120.0 + 500000, np.arange(n_side) * 120.0 + 5000000)
    geoms = [box(x, y, x + 100, y + 100) for x, y in zip(xs.ravel(), ys.ravel())]
    return gpd.GeoDataFrame({"crop_name": "maize"}, geometry=geoms, crs=crs,
                            index=pd.Index([f"P{i}" for i in range(len(geoms))], name="parcel_id"))


def test_parcel_tiles_cover_every_parcel_once_in_compact_cells():
    parcels = _grid_parcels(40)  # 1,600 parcels on a square
    tiles = cap.parcel_tiles(parcels, 200)
    rows = np.concatenate(tiles)
    assert sorted(rows) == list(range(len(parcels)))  # each parcel in exactly one tile
    assert all((np.diff(t) > 0).all() for t in tiles)  # in the claims' order within a tile
    assert 6 <= len(tiles) <= 12 and max(len(t) for t in tiles) <= 2 * 200
    # square cells: their bounding boxes together barely exceed the parcels' extent (no long strips
    # whose boxes overlap, as runs of a space-filling curve would have)
    boxes = [parcels.iloc[t].total_bounds for t in tiles]
    covered = sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes)
    x0, y0, x1, y1 = parcels.total_bounds
    assert covered <= 1.05 * (x1 - x0) * (y1 - y0)
    assert [len(t) for t in cap.parcel_tiles(parcels, 5000)] == [1600]
    with pytest.raises(EolabError, match="tile_parcels"):
        cap.parcel_tiles(parcels, 0)


def test_tiles_on_the_images_grid_read_whole_blocks():
    parcels = _grid_parcels(40)  # 4,800 m a side from (500000, 5000000)
    # an image whose grid starts 1,000 m west and 700 m north of the parcels; chunks of 64 px (640 m)
    image = (499000.0, 5005500.0, 510000.0, 4990000.0)
    unit = 640.0
    tiles = cap.parcel_tiles(parcels, 200, grid=(image[0], image[1], unit))
    assert sorted(np.concatenate(tiles)) == list(range(len(parcels)))
    for rows in tiles:
        tile = parcels.iloc[rows]
        gb = cap._tile_geobox(tile, [image], unit, 10.0)
        t = gb.transform
        # west and north edges on the image's chunk grid: chunks fall on the image's blocks
        assert (t.c - image[0]) % unit == 0 and (image[1] - t.f) % unit == 0
        assert t.a == 10.0 and t.e == -10.0
        # the tile's parcels are inside, with less than one chunk to spare west and north
        x0, y0, x1, y1 = tile.total_bounds
        gx0, gy0, gx1, gy1 = gb.extent.boundingbox
        assert gx0 <= x0 < gx0 + unit and gy1 - unit < y1 <= gy1 and gx1 >= x1 and gy0 <= y0


def test_a_tile_reads_from_the_chunk_its_parcels_start_in(small_demo, monkeypatch):
    # With an inward buffer a tile's grid needs no margin: one more pixel west or north would start
    # it a whole chunk further out (a row and a column of chunks more to decode per tile).
    items, declared = _demo(small_demo)
    unit = 2560.0
    seen = []

    class Seen(Exception):
        pass

    def record(items_, parcels, **kw):
        seen.append(kw["geobox"])
        raise Seen

    monkeypatch.setattr(crops, "parcel_series", record)
    with pytest.raises(Seen):
        cap.run_checks_tiled(declared, items, tile_parcels=300, chunks={"x": 256, "y": 256}, progress=False)
    first = declared.iloc[cap.parcel_tiles(declared, 300, grid=(*cap._native_grids(items, declared.crs, 10)[0][:2],
                                                                 unit))[0]]
    x0, y0, x1, y1 = first.total_bounds
    gx0, gy0, gx1, gy1 = seen[0].extent.boundingbox
    assert gx0 <= x0 < gx0 + unit and gy1 - unit < y1 <= gy1 and gx1 >= x1 and gy0 <= y0


@pytest.mark.parametrize("buffer", [-5.0, 0.0, 5.0, 10.0, 23.0])
def test_a_tile_grid_holds_every_pixel_of_its_parcels(buffer):
    # Parcels whose edges lie on, or a hair off, chunk lines and pixel centres: rasterised on the
    # tile's grid (padded by the outward buffer only), each gets the pixels it gets on a grid
    # 20 pixels larger on every side with the same alignment.
    from affine import Affine

    from eolab.analysis import zonal

    rng = np.random.default_rng(int(buffer * 10) + 100)
    image, unit, res = (499960.0, 5300040.0, 609760.0, 5190240.0), 2560.0, 10.0
    for _ in range(12):
        n = 30
        x = image[0] + unit * 6 + rng.choice([0.0, 0.3, -0.3, 4.999, 5.0, 5.001, 9.99, 15.0], n) + rng.integers(0, 3, n) * res
        y = image[1] - unit * 6 - rng.choice([0.0, 0.3, -0.3, 4.999, 5.0, 5.001, 15.0], n) - rng.integers(0, 3, n) * res
        w, h = rng.uniform(12, 120, n), rng.uniform(12, 120, n)
        tile = gpd.GeoDataFrame(geometry=[box(a, b - d, a + c, b) for a, b, c, d in zip(x, y, w, h)], crs="EPSG:32634")
        gb = cap._tile_geobox(tile, [image], unit, res, pad=max(buffer, 0.0))
        t, (ny, nx) = gb.transform, tuple(gb.shape)
        on_tile = zonal.rasterize_zones(tile, t, (ny, nx), buffer=buffer)
        wider = zonal.rasterize_zones(tile, Affine(res, 0, t.c - 20 * res, 0, -res, t.f + 20 * res), (ny + 40, nx + 40),
                                      buffer=buffer)
        counts = np.bincount(on_tile.ravel(), minlength=n + 1)[1:]
        assert counts.sum() > 0
        np.testing.assert_array_equal(counts, np.bincount(wider.ravel(), minlength=n + 1)[1:])


def test_a_geographic_crs_is_refused_with_a_hint():
    parcels = _grid_parcels(4).to_crs("EPSG:4326")
    with pytest.raises(EolabError, match="CRS of ground metres: EPSG:4326 is longitude/latitude") as err:
        cap.run_checks_tiled(parcels, [], tile_parcels=2)
    assert "UTM" in err.value.hint


def _demo(root: Path, collection: str = "sentinel-2-l2a"):
    items = []
    for line in (root / "stac" / "items" / f"{collection}.ndjson").open():
        d = json.loads(line)
        for a in d["assets"].values():
            a["href"] = str(root / a["href"])
        items.append(pystac.Item.from_dict(d))
    return items, claims.read_claims(root / "claims" / "claims.gpkg").set_index("parcel_id")


def _double_declaration(declared, items, unit):
    """The claims plus a second claim on most of a parcel whose west edge lies just east of a cell
    line, moved 10 m past the line: the two overlap and fall into neighbouring tiles."""
    gx = cap._native_grids(items, declared.crs, 10)[0][0]
    b = declared.bounds
    off = (b.minx - gx) % unit
    pid = b[(off > 15) & (off < 80) & (b.maxx - b.minx > 150)].index[0]
    dup = declared.loc[[pid]].copy()
    dup.index = pd.Index(["DOUBLE-" + pid], name=declared.index.name)
    dup["geometry"] = dup.geometry.translate(-(off[pid] + 10), 0)
    return pd.concat([declared, dup]), pid


def _mapped(a) -> bool:
    """Whether an array's memory is a file's mapping (or a view of one)."""
    import mmap

    while a is not None:
        if isinstance(a, mmap.mmap):
            return True
        a = a.obj if isinstance(a, memoryview) else getattr(a, "base", None)
    return False


@pytest.fixture(scope="module")
def both_runs(small_demo, tmp_path_factory):
    items, declared = _demo(small_demo)
    declared, _ = _double_declaration(declared, items, 2560.0)
    bbox = [float(v) for v in declared.to_crs("EPSG:4326").total_bounds]
    whole = cap.run_checks(declared, crops.parcel_series(items, declared, bbox=bbox))
    work = tmp_path_factory.mktemp("cap-tiles")
    # chunks of 256 px: the demo's images are 256 px tiles, so the reads are aligned on them
    tiled = cap.run_checks_tiled(declared, items, tile_parcels=300, work_dir=work, progress=False,
                                 chunks={"x": 256, "y": 256})
    return items, declared, whole, tiled, work


def test_tiles_give_the_lights_features_and_events_of_one_pass(both_runs):
    items, declared, whole, tiled, work = both_runs
    assert tiled.info["tiles"] >= 3 and len(tiled.checks) == len(declared)
    assert len(cap._native_grids(items, declared.crs, 10)) == 9  # read on the demo's nine image grids
    pd.testing.assert_frame_equal(tiled.checks, whole.checks)
    # the series are bit for bit the same; numpy's row means may differ in the last bit (its SIMD
    # sums depend on where a row lies in memory), hence 1e-12, not equality, for the features
    pd.testing.assert_frame_equal(tiled.X, whole.X, check_exact=False, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(tiled.ndvi, whole.ndvi)
    np.testing.assert_array_equal(tiled.info["observed"], whole.info["observed"])
    # (a last-bit difference in one feature moves the fitted logistic regression by ~1e-9)
    np.testing.assert_allclose(tiled.proba, whole.proba, rtol=0, atol=1e-6)
    assert tiled.mowing == whole.mowing and tiled.bare_soil == whole.bare_soil
    assert tiled.growth_threshold == whole.growth_threshold
    assert [[f.reason for f in fs] for fs in tiled.findings] == [[f.reason for f in fs] for fs in whole.findings]
    # the run found something to judge: not all one light, mowing on some grassland
    assert set(tiled.checks["light"]) == {"green", "yellow", "red"}
    assert sum(bool(m) for m in tiled.mowing) > 10
    # the series stayed per tile, on disk in the given folder
    assert len(list(work.glob("parcel-series-*.nc"))) == tiled.info["tiles"]
    assert "series" not in tiled.info and set(tiled.info["seconds"]) == {"series", "features_events", "model_lights"}
    # the features and the NDVI series are mapped from a file whose name is already gone
    assert _mapped(tiled.ndvi) and _mapped(tiled.X.to_numpy()) and not _mapped(whole.X.to_numpy())
    assert not list(work.glob("eolab-array-*"))
    # the features carry the claims' own id strings (no second copy per parcel)
    assert tiled.X.index.values[0] is declared.index.values[0]


def test_a_dossier_reads_a_tiled_run_as_a_whole_one(both_runs):
    items, declared, whole, tiled, work = both_runs
    pid = whole.checks.index[whole.checks["light"] == "red"][0]
    result = declared.join(whole.checks.drop(columns=["declared_crop"])).rename_axis("parcel_id").reset_index()
    assert dossier.evidence(tiled, result, pid) == dossier.evidence(whole, result, pid)


def test_a_rerun_reads_the_tiles_series_from_the_work_folder(both_runs, monkeypatch):
    items, declared, whole, tiled, work = both_runs
    import eolab.data.load as load

    def no_reading(*a, **k):
        raise AssertionError("the images were read again")

    monkeypatch.setattr(load, "load_cube", no_reading)
    again = cap.run_checks_tiled(declared, items, tile_parcels=300, work_dir=work, progress=False,
                                 chunks={"x": 256, "y": 256})
    pd.testing.assert_frame_equal(again.checks, tiled.checks)


def test_overlapping_and_outward_buffered_parcels_keep_the_pixels_of_one_pass(small_demo):
    # Where parcels overlap, one pass gives a pixel to the later parcel; a tile must do the same
    # even when the other parcel lies in another tile (double declarations; outward buffers).
    items, declared = _demo(small_demo)
    c = declared.geometry.centroid
    part = declared[(c.x < 473500) & (c.y > 5281500)]
    part, pid = _double_declaration(part, items, 2560.0)
    chunks = {"x": 256, "y": 256}
    tiles = cap.parcel_tiles(part, 20, grid=(*cap._native_grids(items, part.crs, 10)[0][:2], 2560.0))
    where = {part.index[r]: k for k, t in enumerate(tiles) for r in t}
    assert where[pid] != where["DOUBLE-" + pid]  # the two claims are read in different tiles
    bbox = [float(v) for v in part.to_crs("EPSG:4326").total_bounds]
    whole = cap.run_checks(part, crops.parcel_series(items, part, bbox=bbox, buffer=10.0, chunks=chunks))
    tiled = cap.run_checks_tiled(part, items, tile_parcels=20, buffer=10.0, chunks=chunks, progress=False)
    assert tiled.info["tiles"] == len(tiles) > 3
    pd.testing.assert_frame_equal(tiled.X, whole.X, check_exact=False, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(tiled.ndvi, whole.ndvi)
    np.testing.assert_array_equal(tiled.info["observed"], whole.info["observed"])
    pd.testing.assert_frame_equal(tiled.checks, whole.checks)


def test_parcels_without_outline_are_named_and_dense_cells_are_split():
    parcels = _grid_parcels(10)
    parcels.loc["P3", "geometry"] = None
    with pytest.raises(EolabError, match="no geometry.*P3"):
        cap.parcel_tiles(parcels, 10)
    # a dense village of 400 parcels and one field 200 km away: tiles of about 50, not one of 400
    village = _grid_parcels(20)
    far = _grid_parcels(1)
    far["geometry"] = far.geometry.translate(200_000, 0)
    far.index = pd.Index(["FAR"], name="parcel_id")
    tiles = cap.parcel_tiles(pd.concat([village, far]), 50)
    assert sorted(np.concatenate(tiles)) == list(range(401))
    assert max(len(t) for t in tiles) <= 100


def test_radar_in_tiles_gives_the_fused_mowing_and_features_of_one_pass(small_demo, monkeypatch):
    # S1+S2 mowing normalises VH by each date's median over all parcels and fits its noise on all of
    # them: the tiles must use the scene's, not their own (a tile's medians would move the scores)
    items, declared = _demo(small_demo)
    s1_items, _ = _demo(small_demo, "sentinel-1-grd")
    c = declared.geometry.centroid
    part = declared[c.y > c.y.quantile(0.7)]
    chunks = {"x": 256, "y": 256}
    bbox = [float(v) for v in part.to_crs("EPSG:4326").total_bounds]
    z1 = crops.s1_parcel_series(s1_items, part, bbox=bbox)
    whole = cap.run_checks(part, crops.parcel_series(items, part, bbox=bbox, chunks=chunks), z1)
    tiled = cap.run_checks_tiled(part, items, s1_items=s1_items, tile_parcels=60, chunks=chunks, progress=False)
    assert tiled.info["tiles"] >= 3
    for v in z1.data_vars:  # every radar variable, for every parcel, bit for bit
        np.testing.assert_array_equal(tiled.s1[v].transpose(*z1[v].dims).values, z1[v].values)
    assert _mapped(tiled.s1["vh_db"].values)
    pd.testing.assert_frame_equal(tiled.X, whole.X, check_exact=False, rtol=1e-12, atol=0)
    assert any(col.startswith("VH_") for col in tiled.X.columns)  # the radar features are the model's too
    assert tiled.mowing == whole.mowing and sum(bool(m) for m in tiled.mowing) > 5
    assert any(e["radar"] > 0 for m in tiled.mowing for e in m)  # fused: radar evidence is in the scores
    pd.testing.assert_frame_equal(tiled.checks, whole.checks)
    pid = next(p for p, m in zip(part.index, tiled.mowing) if m)
    result = part.join(whole.checks.drop(columns=["declared_crop"])).rename_axis("parcel_id").reset_index()
    assert dossier.evidence(tiled, result, pid) == dossier.evidence(whole, result, pid)
    # the dossier's radar series is read by parcel id, as from one pass's
    np.testing.assert_array_equal(tiled.s1["vh_db"].sel(parcel=pid).values, whole.s1["vh_db"].sel(parcel=pid).values)

    # tiles whose radar dates differ (items that miss part of the area) are refused with a hint
    real = crops.s1_parcel_series
    calls = []

    def fewer_dates(*a, **k):
        calls.append(1)
        z = real(*a, **k)
        return z.isel(time=slice(1, None)) if len(calls) > 1 else z

    monkeypatch.setattr(crops, "s1_parcel_series", fewer_dates)
    with pytest.raises(EolabError, match="different Sentinel-1 dates") as err:
        cap.run_checks_tiled(part, items, s1_items=s1_items, tile_parcels=60, chunks=chunks, progress=False)
    assert "whole area" in err.value.hint
