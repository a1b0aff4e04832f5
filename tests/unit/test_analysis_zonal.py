"""Zonal statistics: rasterize once + bincount, against brute force on small synthetic rasters."""

import dask.array as da
import numpy as np
import odc.geo.xr  # noqa: F401  (registers the .odc accessor)
import pytest
import xarray as xr
from affine import Affine
from shapely.geometry import box

from eolab.analysis import zonal
from eolab.errors import EolabError

T = Affine(10, 0, 0, 0, -10, 100)  # 10 x 10 pixels of 10 m, origin (0, 100)


def test_rasterize_burns_pixel_centres_and_inner_buffer():
    geoms = [box(0, 50, 50, 100), box(50, 0, 100, 50)]
    lab = zonal.rasterize_zones(geoms, T, (10, 10))
    assert (lab[:5, :5] == 1).all() and (lab[5:, 5:] == 2).all() and (lab[:5, 5:] == 0).all()
    inner = zonal.rasterize_zones(geoms, T, (10, 10), buffer=-10)
    assert (inner == 1).sum() == 9  # 3 x 3 pixels whose centres lie 10 m inside
    assert zonal.zone_pixel_counts(inner, 2).tolist() == [9, 9]


@pytest.mark.parametrize("chunks", [(1, 10, 10), (2, 3, 4), (3, 7, 7)])
def test_sums_equal_brute_force_for_any_chunking(chunks):
    rng = np.random.default_rng(1)
    values = rng.normal(0.5, 0.2, (3, 10, 10)).astype("float32")
    values[rng.random(values.shape) < 0.2] = np.nan
    labels = rng.integers(0, 5, (10, 10)).astype("int32")
    sums = zonal.zonal_sums(da.from_array(values, chunks=chunks), labels, 4, moments=2).compute()
    for t in range(3):
        for z in range(1, 5):
            v = values[t][(labels == z) & np.isfinite(values[t])].astype(float)
            assert sums[t, z - 1, 0] == v.size
            assert sums[t, z - 1, 1] == pytest.approx(v.sum())
            assert sums[t, z - 1, 2] == pytest.approx((v ** 2).sum())


def test_zonal_stats_dataset_with_valid_fraction_and_std():
    import geopandas as gpd

    values = np.ones((2, 10, 10), "float32")
    values[0, :5, :5] = 3.0
    values[1, :2, :] = np.nan  # a cloud over the top rows on date 2
    cube = xr.Dataset({"NDVI": (("time", "y", "x"), da.from_array(values, chunks=(1, 5, 5)))},
                      coords={"time": np.array(["2026-01-01", "2026-01-06"], "datetime64[ns]"),
                              "y": 95 - 10 * np.arange(10.0), "x": 5 + 10 * np.arange(10.0)})
    cube = cube.odc.assign_crs("EPSG:32634")
    zones = gpd.GeoDataFrame({"id": ["a", "b"]}, geometry=[box(0, 50, 100, 100), box(0, 0, 100, 50)],
                             crs="EPSG:32634").set_index("id")
    z = zonal.zonal_stats(cube, zones, ["NDVI"], buffer=0, std=["NDVI"])
    assert list(z.zone.values) == ["a", "b"]
    assert z.NDVI.sel(zone="a").values.tolist() == [2.0, 1.0]  # half 3, half 1 on date 1
    assert z.NDVI_std.sel(zone="a").values[0] == pytest.approx(1.0)
    assert z.valid_fraction.sel(zone="a").values.tolist() == [1.0, 0.6]
    assert z.n_pixels.values.tolist() == [50, 50]


def test_mismatched_grid_is_an_error():
    with pytest.raises(EolabError, match="not on one grid"):
        zonal.zonal_sums(np.zeros((1, 4, 4)), np.zeros((5, 5), "int32"), 1)


def test_blocks_without_zones_are_never_read_and_tasks_hold_only_their_zones():
    labels = np.zeros((8, 8), "int32")
    labels[:3, :3] = 1  # zone 1 in the upper-left block only
    labels[2:6, 5:7] = 2  # zone 2 in the two right-hand blocks; the lower-left block has no zone
    layout = zonal.block_layout(labels, ((4, 4), (4, 4)), 2)
    assert layout[0, 0].zones.tolist() == [0, 1] and layout[0, 1].zones.tolist() == [0, 2]
    assert layout[1, 0] is None

    def refuse_empty_block(block, block_info=None):
        assert block_info[0]["chunk-location"][1:] != (1, 0), "a block without zones was read"
        return block

    values = da.map_blocks(refuse_empty_block, da.ones((2, 8, 8), chunks=(1, 4, 4)), dtype=float)
    sums = zonal.zonal_sums(values, labels, 2, layout=layout).compute()
    assert sums[:, :, 0].tolist() == [[9, 8], [9, 8]] and sums[:, :, 1].tolist() == [[9, 8], [9, 8]]
    part = zonal._block_sums(np.ones((1, 4, 4)), layout[0, 0], 1)
    assert part.shape == (1, 1, 2)  # only zone 1 of that block, not every zone of the raster


def test_each_block_layout_is_one_graph_key_shared_by_its_tasks():
    # A distributed scheduler ships (and a worker holds) every task's literal arguments with it: a
    # block's layout (8 bytes per pixel) inlined into each date's and variable's task made workers
    # pause at their memory limit on a 100,000-parcel scene.
    labels = np.zeros((8, 8), "int32")
    labels[:3, :3] = 1
    labels[2:6, 5:7] = 2
    layout = zonal.block_layout(labels, ((4, 4), (4, 4)), 2)
    values = da.ones((3, 8, 8), chunks=(1, 4, 4))
    a = zonal.zonal_sums(values, labels, 2, layout=layout)
    b = zonal.zonal_sums(values * 2, labels, 2, layout=layout)
    graph = {**dict(a.__dask_graph__()), **dict(b.__dask_graph__())}

    def holds_block(task) -> bool:
        return isinstance(task, (tuple, list)) and any(
            isinstance(x, zonal._Block) or holds_block(x) for x in task)

    shared = [key for key, value in graph.items() if isinstance(value, zonal._Block)]
    assert len(shared) == 3  # one key per block with zones, for both variables and all dates
    assert not [key for key, value in graph.items() if holds_block(value)]
    assert a.compute()[:, :, 1].tolist() == [[9, 8]] * 3 and b.compute()[:, :, 1].tolist() == [[18, 16]] * 3


def test_layout_is_rebuilt_for_other_chunks_and_out_of_range_labels_are_refused():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(2, 9, 9))
    values[0, 0, :] = np.nan
    labels = rng.integers(0, 4, (9, 9)).astype("int32")
    stale = zonal.block_layout(labels, ((9,), (9,)), 3)
    a = zonal.zonal_sums(da.from_array(values, chunks=(1, 4, 5)), labels, 3, layout=stale).compute()
    b = zonal.zonal_sums(values, labels, 3).compute()
    np.testing.assert_allclose(a, b)
    assert a[0, :, 0].sum() == (labels > 0).sum() - (labels[0] > 0).sum()  # NaN pixels do not count
    with pytest.raises(EolabError, match="labels must lie in 0..2"):
        zonal.block_layout(labels, ((9,), (9,)), 2)


@pytest.mark.parametrize("dates_per_compute", [1, 2, None])
def test_zonal_stats_in_batches_of_dates_equals_all_at_once(dates_per_compute):
    import geopandas as gpd

    rng = np.random.default_rng(5)
    values = rng.normal(0.5, 0.2, (3, 10, 10)).astype("float32")
    values[1, :3] = np.nan
    cube = xr.Dataset({"NDVI": (("time", "y", "x"), da.from_array(values, chunks=(1, 5, 5)))},
                      coords={"time": np.array(["2026-01-01", "2026-01-06", "2026-01-11"], "datetime64[ns]"),
                              "y": 95 - 10 * np.arange(10.0), "x": 5 + 10 * np.arange(10.0)})
    cube = cube.odc.assign_crs("EPSG:32634")
    zones = gpd.GeoDataFrame(geometry=[box(0, 50, 100, 100), box(0, 0, 60, 50)], crs="EPSG:32634")
    z = zonal.zonal_stats(cube, zones, ["NDVI"], buffer=0, std=["NDVI"], dates_per_compute=dates_per_compute)
    for t in range(3):
        top = values[t, :5][np.isfinite(values[t, :5])].astype(float)
        assert z.NDVI.values[0, t] == pytest.approx(top.mean())
        assert z.NDVI_std.values[0, t] == pytest.approx(top.std(), abs=1e-6)
        assert z.n_valid.values[0, t] == top.size
    assert z.n_pixels.values.tolist() == [50, 30]


def _seven_dates_64_zones(seed: int, height: float = 50):
    """A 40² px NDVI cube of 7 dates in 20² px chunks (a cloud on the third) and 64 zones of 50 m wide."""
    import geopandas as gpd

    rng = np.random.default_rng(seed)
    values = rng.uniform(0, 1, (7, 40, 40)).astype("float32")
    values[2, :10] = np.nan
    cube = xr.Dataset({"NDVI": (("time", "y", "x"), da.from_array(values, chunks=(1, 20, 20)))},
                      coords={"time": np.arange(7) * np.timedelta64(5, "D") + np.datetime64("2026-05-01"),
                              "y": 395 - 10 * np.arange(40.0), "x": 5 + 10 * np.arange(40.0)})
    zones = gpd.GeoDataFrame({"id": range(64)}, geometry=[box(50 * i, 50 * j, 50 * i + 50, 50 * j + height)
                                                           for i in range(8) for j in range(8)], crs="EPSG:32634")
    return cube.odc.assign_crs("EPSG:32634"), zones


def test_zonal_stats_in_smaller_parts_gives_the_same_means(monkeypatch):
    """Many zones: fewer dates per compute (their sums kept under a memory bound), same figures."""
    cube, zones = _seven_dates_64_zones(1)
    whole = zonal.zonal_stats(cube, zones.set_index("id"), ["NDVI"], buffer=0, std=["NDVI"])
    monkeypatch.setattr(zonal, "_PART_BYTES", 64 * 3 * 8 * 2)  # two dates' sums per compute
    parts = zonal.zonal_stats(cube, zones.set_index("id"), ["NDVI"], buffer=0, std=["NDVI"])
    xr.testing.assert_identical(whole, parts)
    assert whole.NDVI.dtype == np.float32 and whole.valid_fraction.dtype == np.float64


def test_on_a_cluster_each_block_layout_is_sent_once_not_in_every_compute(monkeypatch):
    # A distributed scheduler receives, holds and forwards every compute's graph: the layouts (8 bytes
    # per pixel) in each of the computes of each tile made graphs of tens of MB on the gateway cluster.
    import dask
    from distributed import Client, LocalCluster

    cube, zones = _seven_dates_64_zones(2, height=40)
    threaded = zonal.zonal_stats(cube, zones, ["NDVI"], buffer=0, std=["NDVI"], dates_per_compute=2)

    graphs, scattered, real_compute, real_scatter = [], [], dask.compute, zonal.scatter_layout

    def spy_compute(*args, **kwargs):
        arrays = [a for arg in args for a in (arg.values() if isinstance(arg, dict) else [arg])]
        graphs.append({k: v for a in arrays for k, v in dict(a.__dask_graph__()).items()})
        return real_compute(*args, **kwargs)

    def spy_scatter(layout, client):
        scattered.append(sum(isinstance(v, zonal._Block) for v in layout.values()))
        return real_scatter(layout, client)

    monkeypatch.setattr(dask, "compute", spy_compute)
    monkeypatch.setattr(zonal, "scatter_layout", spy_scatter)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster, Client(cluster) as client:
        assert zonal.cluster_client() is client
        with dask.config.set(scheduler="threads"):
            assert zonal.cluster_client() is None  # threads asked for: nothing is scattered
        on_cluster = zonal.zonal_stats(cube, zones, ["NDVI"], buffer=0, std=["NDVI"], dates_per_compute=2)
    xr.testing.assert_identical(on_cluster, threaded)
    assert scattered == [4]  # the four blocks' layouts, once for all computes
    assert len(graphs) == 4  # 7 dates, 2 per compute
    for graph in graphs:
        assert graph and not [k for k, v in graph.items()
                              if isinstance(v, zonal._Block) or isinstance(getattr(v, "value", None), zonal._Block)]
