"""Per-zone (parcel) statistics of a raster time series: rasterize the zones once, then ``bincount``.

The zones are burnt into a label raster on the cube's own grid once (pixel centres, optionally
after an inward buffer so that mixed edge pixels do not count). Statistics are then sums per label,
computed block by block with ``numpy.bincount`` over the zones present in each block and added up
per time chunk: lazy, chunked over time and space, no per-polygon loop. Memory per task is one
block of the cube plus the sums of the zones it touches; ``zonal_stats`` computes a few dates at a
time, so the data in flight does not grow with the length of the series.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from eolab.errors import EolabError


def grid_of(cube: Any) -> tuple[Any, tuple[int, int], str]:
    """(affine transform, (ny, nx), crs) of an odc-stac cube (Dataset or DataArray)."""
    try:
        gbox = cube.odc.geobox
    except Exception as exc:  # not an odc-geo aware object
        raise EolabError("the cube has no geobox", hint="load it with eolab.load_cube / odc-stac") from exc
    epsg = getattr(gbox.crs, "epsg", None)
    return gbox.affine, tuple(gbox.shape), f"EPSG:{epsg}" if epsg else gbox.crs.to_wkt()


def rasterize_zones(
    geometries: Any,
    transform: Any,
    shape: tuple[int, int],
    *,
    buffer: float = 0.0,
    all_touched: bool = False,
) -> np.ndarray:
    """A label raster (int32): 0 outside every zone, ``i + 1`` inside zone ``i`` of ``geometries``.

    geometries: a GeoSeries/GeoDataFrame already in the raster's CRS, or a list of shapely shapes.
    buffer: metres added (negative: removed) around each zone before burning, e.g. -5 to keep only
        pixels whose centre lies 5 m inside the parcel. Zones that vanish get no pixels.
    Where zones overlap, the later one wins.
    """
    from rasterio.features import rasterize

    geoms = list(getattr(geometries, "geometry", geometries))
    if buffer:
        geoms = [g.buffer(buffer) if g is not None else None for g in geoms]
    shapes = ((g, i + 1) for i, g in enumerate(geoms) if g is not None and not g.is_empty)
    if len(geoms) >= 2**31 - 1:
        raise EolabError(f"{len(geoms)} zones do not fit an int32 label raster", hint="split the zones")
    return rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="int32",
                     all_touched=all_touched)


def zone_pixel_counts(labels: np.ndarray, n_zones: int) -> np.ndarray:
    """Pixels per zone (length n_zones)."""
    return np.bincount(labels.ravel(), minlength=n_zones + 1)[1:n_zones + 1]


class _Block:
    """The zones of one spatial block: their labels, each pixel's index among them, their pixel counts.

    Sums are computed over the block's own zones only, so a task's output is as small as the number
    of zones it touches, not all zones of the scene (100,000 parcels × 16 blocks × dates would
    otherwise be held as dense arrays until summed)."""

    __slots__ = ("zones", "local", "counts", "first")

    def __init__(self, labels: np.ndarray, n_zones: int):
        flat = labels.reshape(-1)
        full = np.bincount(flat, minlength=n_zones + 1)
        self.zones = np.flatnonzero(full)  # labels present, ascending
        lookup = np.zeros(full.size, dtype=np.intp)
        lookup[self.zones] = np.arange(self.zones.size)
        self.local = lookup[flat]  # intp: bincount would convert int32 on every call
        self.counts = full[self.zones].astype(np.float64)
        self.first = 1 if self.zones.size and self.zones[0] == 0 else 0  # label 0 is outside every zone


def block_layout(labels: np.ndarray, chunks: tuple[tuple[int, ...], tuple[int, ...]], n_zones: int) -> dict:
    """Per spatial block (by, bx) of ``chunks`` (dask y/x chunks) its zones, or None if it has none.

    Computing it once and passing it to :func:`zonal_sums` (``layout=``) shares it between variables."""
    from dask.base import tokenize

    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > n_zones):
        raise EolabError(f"labels must lie in 0..{n_zones}", hint="use rasterize_zones' output and its zone count")
    y0 = np.concatenate([[0], np.cumsum(chunks[0])])
    x0 = np.concatenate([[0], np.cumsum(chunks[1])])
    out: dict = {"chunks": tuple(tuple(c) for c in chunks), "n_zones": n_zones, "token": tokenize(labels)}
    for by in range(len(chunks[0])):
        for bx in range(len(chunks[1])):
            blk = _Block(labels[y0[by]:y0[by + 1], x0[bx]:x0[bx + 1]], n_zones)
            out[by, bx] = blk if blk.zones.size > blk.first else None
    return out


def _block_sums(values: np.ndarray, blk: _Block, moments: int) -> np.ndarray:
    """(t, zones of the block, moments + 1): count of valid pixels, sum of value**k per zone."""
    t = values.shape[0]
    k = blk.zones.size
    out = np.empty((t, k, moments + 1), dtype=np.float64)
    for j in range(t):
        v = values[j].reshape(-1)
        ok = np.isfinite(v)
        if ok.all():  # cloud-free: the counts are the zones' pixel counts
            out[j, :, 0] = blk.counts
        else:
            out[j, :, 0] = blk.counts - np.bincount(blk.local[~ok], minlength=k)
            v = np.where(ok, v, 0)
        if moments >= 1:
            out[j, :, 1] = np.bincount(blk.local, weights=v, minlength=k)
        if moments >= 2:
            v64 = v.astype(np.float64)
            out[j, :, 2] = np.bincount(blk.local, weights=v64 * v64, minlength=k)
    return out[:, blk.first:, :]


def _combine(parts: list[np.ndarray], blocks: list[_Block], n_zones: int, moments: int, t: int) -> np.ndarray:
    """Scatter the blocks' per-zone sums into one (t, n_zones, moments + 1) array."""
    out = np.zeros((t, n_zones, moments + 1), dtype=np.float64)
    for part, blk in zip(parts, blocks):
        out[:, blk.zones[blk.first:] - 1, :] += part  # zones are unique within a block
    return out


def zonal_sums(data: Any, labels: np.ndarray, n_zones: int, moments: int = 1, *, layout: dict | None = None) -> Any:
    """Lazy (time, n_zones, moments + 1) array: count of valid pixels, sum, (sum of squares).

    data: a (time, y, x) dask or numpy array (NaN = not valid); labels: (y, x) from
    :func:`rasterize_zones` on the same grid. Per time chunk, one task per spatial block sums over
    the zones in that block and one task adds them up, so memory is bounded by a block of data
    plus the sums of one time chunk. layout: :func:`block_layout` of ``labels`` for data's chunks.
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    if data.ndim != 3:
        raise EolabError(f"zonal statistics need a (time, y, x) array, got {data.ndim} dimensions")
    if tuple(data.shape[1:]) != tuple(labels.shape):
        raise EolabError(f"label raster {labels.shape} and data {tuple(data.shape[1:])} are not on one grid",
                         hint="rasterize the zones with the cube's transform and shape (zonal.grid_of)")
    if not isinstance(data, da.Array):
        data = da.from_array(data, chunks=(1, -1, -1))
    chunks = tuple(tuple(c) for c in data.chunks[1:])
    if layout is None or layout["chunks"] != chunks or layout["n_zones"] != n_zones:
        layout = block_layout(labels, chunks, n_zones)
    token = tokenize(data.name, layout["token"], n_zones, moments)
    part_name, name = f"zonal-block-{token}", f"zonal-sums-{token}"
    # Each block's layout (several MB) is a key of its own, shared by every task that needs it: as a
    # literal argument a distributed scheduler would ship and hold one copy per task. A layout already
    # on the cluster (a Future, see scatter_layout) is referred to, not sent again.
    layout_name = f"zonal-layout-{tokenize(layout['token'], chunks, n_zones)}"
    dsk: dict = {}
    for i, t in enumerate(data.chunks[0]):
        keys, blocks = [], []
        for by in range(len(chunks[0])):
            for bx in range(len(chunks[1])):
                blk = layout[by, bx]
                if blk is None:  # no zone there: the block is never read
                    continue
                if isinstance(blk, _Block):
                    dsk[(layout_name, by, bx)] = blk
                    blk = (layout_name, by, bx)
                dsk[(part_name, i, by, bx)] = (_block_sums, (data.name, i, by, bx), blk, moments)
                keys.append((part_name, i, by, bx))
                blocks.append(blk)
        dsk[(name, i, 0, 0)] = (_combine, keys, blocks, n_zones, moments, t)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[data])
    return da.Array(graph, name, chunks=(data.chunks[0], (n_zones,), (moments + 1,)), dtype=np.float64)


def cluster_client() -> Any:
    """The distributed client ``dask.compute`` would use now, or None (threads, processes, sync)."""
    import sys

    import dask

    if "distributed" not in sys.modules:  # no client without it: threaded runs do not import it here
        return None
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        return None
    return client if dask.base.get_scheduler() == client.get else None


def scatter_layout(layout: dict, client: Any) -> dict:
    """``layout`` with each block's zones sent to the cluster once (Futures): every compute's graph
    then refers to them instead of carrying them (tens of MB per compute for a tile of 25,000
    parcels, received, held and forwarded by the one scheduler each time)."""
    blocks = [k for k, v in layout.items() if isinstance(v, _Block)]
    futures = client.scatter([layout[k] for k in blocks], hash=False)
    return {**layout, **dict(zip(blocks, futures))}


def _moments(sums: Any, with_std: bool) -> tuple[Any, Any, Any]:
    """(mean, std or None, valid count as int32) of (time, zone, moments + 1) sums (numpy or dask)."""
    count = sums[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums[..., 1] / np.where(count > 0, count, np.nan)
        spread = None
        if with_std:
            var = sums[..., 2] / np.where(count > 0, count, np.nan) - mean ** 2
            spread = np.sqrt(np.clip(var, 0, None))
    return mean, spread, count.astype(np.int32) if isinstance(count, np.ndarray) else count


_PART_BYTES = 128 * 2**20


def zonal_stats(
    cube: Any,
    zones: Any,
    variables: Sequence[str] | None = None,
    *,
    buffer: float = -5.0,
    std: Sequence[str] = (),
    zone_ids: Sequence[Any] | None = None,
    labels: np.ndarray | None = None,
    compute: bool = True,
    dates_per_compute: int | None = 6,
) -> Any:
    """Per-zone, per-date mean (and std) of cube variables: an xarray Dataset (zone, time).

    cube: xarray Dataset (time, y, x) on an odc geobox (e.g. from ``eolab.load_cube`` with indices).
    zones: GeoDataFrame of polygons (reprojected to the cube's CRS here) — or pass ``labels``.
    dates_per_compute: dates computed together (None: all; fewer where their sums would pass 128 MiB);
    bounds the data in flight.
    Output variables: each variable's mean, ``{var}_std`` for those in ``std``, ``n_valid``
    (valid pixels of the first variable), ``n_pixels`` (pixels of the zone) and ``valid_fraction``.
    """
    import dask
    import xarray as xr

    variables = list(dict.fromkeys(variables or [v for v in cube.data_vars if cube[v].dims == ("time", "y", "x")]))
    if not variables:
        raise EolabError("no (time, y, x) variables to summarise", hint="pass variables=[...]")
    transform, shape, crs = grid_of(cube)
    if labels is None:
        if zones is None or len(zones) == 0:
            raise EolabError("no zones given", hint="pass a GeoDataFrame of parcels")
        if getattr(zones, "crs", None) is None:
            # taken for the cube's own coordinates, as drawn from them; lon/lat parcels would land
            # nowhere and every statistic come back NaN without a word
            west, south, east, north = zones.total_bounds
            x0, y0 = transform * (0, 0)
            x1, y1 = transform * (shape[1], shape[0])
            if not (min(x0, x1) <= east and west <= max(x0, x1) and min(y0, y1) <= north and south <= max(y0, y1)):
                raise EolabError("the zones have no CRS and do not lie in the cube's coordinates",
                                 hint="set it (zones.set_crs('EPSG:4326') for lon/lat) or read them from a file "
                                      "that states it")
            import warnings

            warnings.warn(f"the zones have no CRS: taken to be the cube's ({crs})", stacklevel=2)
        else:
            zones = zones.to_crs(crs)
        labels = rasterize_zones(zones, transform, shape, buffer=buffer)
        n = len(zones)
        if n and not np.any(labels):
            import warnings

            west, south, east, north = zones.total_bounds
            warnings.warn(f"none of the {n} zones covers a pixel of the cube (zones span {west:.0f}, {south:.0f}, "
                          f"{east:.0f}, {north:.0f} in {crs}; the cube is {shape[1]} × {shape[0]} px): every "
                          "statistic is NaN; load the cube over the zones' area, or check the zones' CRS",
                          stacklevel=2)
    else:
        n = int(len(zone_ids)) if zone_ids is not None else int(labels.max())
    ids = list(zone_ids) if zone_ids is not None else (list(zones.index) if zones is not None else list(range(n)))
    first = cube[variables[0]].data
    layout = block_layout(labels, first.chunks[1:], n) if hasattr(first, "chunks") and first.chunks else None
    client = cluster_client() if compute and layout is not None else None
    if client is not None:
        layout = scatter_layout(layout, client)
    lazy = {v: zonal_sums(cube[v].data, labels, n, moments=2 if v in std else 1, layout=layout) for v in variables}
    npix = zone_pixel_counts(labels, n)
    out = xr.Dataset(coords={"zone": ids, "time": cube.time.values})
    if compute:
        # a few dates per compute: given all dates at once the scheduler reads far ahead of the sums;
        # each part's sums become means at once, so only the means of all dates are ever held (the
        # sums of all dates, and a copy to join them, would be ~4× that: GBs for a country)
        n_time = cube.sizes["time"]
        # ... and no more dates than keep one part's sums (all variables) within _PART_BYTES: at
        # country scale the sums of 6 dates alone would be GBs
        per_date = n * sum(3 if v in std else 2 for v in variables) * 8
        step = max(1, min(dates_per_compute or n_time, _PART_BYTES // max(per_date, 1)))
        # float32: the means of reflectances stored as 1e-4 steps keep all their digits, and a
        # country's series (zones × dates × variables) takes half the memory of float64
        means = {v: np.empty((n_time, n), np.float32) for v in variables}
        stds = {v: np.empty((n_time, n), np.float32) for v in variables if v in std}
        n_valid = np.empty((n_time, n), np.int32)
        for i in range(0, n_time, step):
            part = dask.compute({v: s[i:i + step] for v, s in lazy.items()})[0]
            for v in variables:
                mean, spread, count = _moments(np.asarray(part.pop(v)), v in std)
                means[v][i:i + step] = mean
                if v in std:
                    stds[v][i:i + step] = spread
                if v == variables[0]:
                    n_valid[i:i + step] = count
        for v in variables:
            out[v] = (("time", "zone"), means.pop(v))
            if v in std:
                out[f"{v}_std"] = (("time", "zone"), stds.pop(v))
            if v == variables[0]:
                out["n_valid"] = (("time", "zone"), n_valid)
    else:
        for v, sums in lazy.items():
            mean, spread, count = _moments(sums, v in std)
            out[v] = (("time", "zone"), mean)
            if v in std:
                out[f"{v}_std"] = (("time", "zone"), spread)
            if v == variables[0]:
                out["n_valid"] = (("time", "zone"), count)
    out["n_pixels"] = (("zone",), npix.astype(np.int32))
    with np.errstate(invalid="ignore", divide="ignore"):
        out["valid_fraction"] = out["n_valid"] / out["n_pixels"].where(out["n_pixels"] > 0)
    out = out.transpose("zone", "time")
    out.attrs["eolab:zonal"] = {"buffer_m": buffer, "method": "rasterize pixel centres once + numpy.bincount"}
    if "eolab:provenance" in cube.attrs:
        out.attrs["eolab:provenance"] = cube.attrs["eolab:provenance"]
    return out


def exactextract_mean(raster: Any, zones: Any, *, band_names: Sequence[str] | None = None) -> Any:
    """Area-weighted zone means by exactextract (for comparison): a DataFrame (zone × band)."""
    from exactextract import exact_extract

    df = exact_extract(raster, zones, ["mean"], output="pandas")
    if band_names is not None and len(df.columns) == len(band_names):
        df.columns = list(band_names)
    return df
