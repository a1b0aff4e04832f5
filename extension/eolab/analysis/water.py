"""Surface water from Sentinel-2 (and Sentinel-1): per-date maps, extent time series, frequency, change.

Optical method, per pixel and date, on cloud-masked surface reflectance: a majority vote of three
standard water indices, each at its published threshold of 0 —
NDWI (McFeeters 1996), MNDWI (Xu 2006) and AWEI_sh (Feyisa et al. 2014). One index alone fails in
known ways (NDWI on vegetated/turbid water, MNDWI and AWEI under thin haze and on dark built-up
surfaces); two of three agreeing is robust to each of these. ``method`` selects a single index or
an Otsu threshold instead (Donchyts et al. 2016). Nothing is fitted on reference data.

Radar method (cloudy dates): VV backscatter in dB, 3×3 median speckle filter, Otsu threshold per date
(water is the dark mode; Martinis et al. 2015).

Maps are lazy xarray objects: 1 water, 0 not water, NaN not observed (cloud, shadow, nodata).
Frequency = water observations / valid observations (as DEA Water Observations, Mueller et al. 2016).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eolab.analysis.indices import index
from eolab.errors import EolabError

OPTICAL_BANDS = ["B02", "B03", "B08", "B11", "B12"]
METHODS = ("vote", "ndwi", "mndwi", "awei", "mndwi-otsu", "ndwi-otsu")


def otsu_threshold(values: Any, *, bins: int = 256, value_range: tuple[float, float] | None = None) -> float:
    """Otsu's (1979) threshold maximising the between-class variance of a 1-D sample (NaN ignored)."""
    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v)]
    if v.size < 2 or np.ptp(v) == 0:
        raise EolabError("Otsu's threshold needs at least two distinct finite values",
                         hint="the area may be fully clouded on this date")
    hist, edges = np.histogram(v, bins=bins, range=value_range or (float(v.min()), float(v.max())))
    return otsu_from_histogram(hist, edges)


def otsu_from_histogram(hist: np.ndarray, edges: np.ndarray) -> float:
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist, dtype=float)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        between = w0 * w1 * (m0 / w0 - (m0[-1] - m0) / w1) ** 2
    between[~np.isfinite(between)] = -1
    return float(edges[int(np.argmax(between)) + 1])


def _per_date_otsu(da: Any, bins: int = 200, value_range=(-1.0, 1.0)) -> np.ndarray:
    """Otsu threshold of every time slice of a (time, y, x) DataArray (one lazy pass)."""
    import dask
    import dask.array as darr

    data = da.data
    hists = []
    for k in range(da.sizes["time"]):
        layer = data[k]
        if isinstance(layer, darr.Array):
            h, _ = darr.histogram(layer[darr.isfinite(layer)], bins=bins, range=value_range)
        else:
            h, _ = np.histogram(layer[np.isfinite(layer)], bins=bins, range=value_range)
        hists.append(h)
    hists = dask.compute(*hists)
    edges = np.linspace(value_range[0], value_range[1], bins + 1)
    out = []
    for h in hists:
        out.append(otsu_from_histogram(np.asarray(h), edges) if np.count_nonzero(h) > 1 else np.nan)
    return np.array(out)


def classify_water(cube: Any, method: str = "vote") -> Any:
    """Per-date water map (time, y, x): 1 water, 0 land, NaN unobserved. Lazy for a lazy cube.

    cube: Dataset with B02 B03 B08 B11 B12 reflectance, cloud-masked (NaN where masked).
    """
    import xarray as xr

    if method not in METHODS:
        raise EolabError(f"unknown water method {method!r}", hint="choose one of " + ", ".join(METHODS))
    missing = [b for b in OPTICAL_BANDS if b not in cube]
    if missing:
        raise EolabError(f"water classification needs bands {', '.join(missing)}", hint="load them into the cube")
    valid = cube["B03"].notnull() & cube["B08"].notnull() & cube["B11"].notnull()
    if method == "vote":
        votes = ((index(cube, "NDWI") > 0).astype("int8") + (index(cube, "MNDWI") > 0).astype("int8")
                 + (index(cube, "AWEI_SH") > 0).astype("int8"))
        wet = votes >= 2
    elif method in ("ndwi", "mndwi"):
        wet = index(cube, method.upper()) > 0
    elif method == "awei":
        wet = index(cube, "AWEI_SH") > 0
    else:
        name = method.split("-")[0].upper()
        idx = index(cube, name)
        thr = _per_date_otsu(idx)
        thr = np.where(np.isfinite(thr), thr, 0.0)
        wet = idx > xr.DataArray(thr, dims=["time"], coords={"time": idx.time})
    out = wet.astype("float32").where(valid)
    out.name = "water"
    out.attrs = {"method": method, "values": "1 water, 0 not water, NaN not observed"}
    return out


def frequency(water: Any, min_observations: int = 1) -> Any:
    """Share of valid observations that saw water, per pixel (NaN with fewer than min_observations)."""
    n = water.notnull().sum("time")
    wet = water.sum("time", skipna=True)
    freq = (wet / n.where(n >= min_observations)).astype("float32")
    freq.name = "water_frequency"
    freq.attrs = {"description": "water observations / valid observations"}
    return freq


def pixel_area(da: Any) -> float:
    """Area of one pixel in m² from the (x, y) coordinate spacing of a projected cube."""
    try:
        dx = abs(float(da.x[1] - da.x[0]))
        dy = abs(float(da.y[1] - da.y[0]))
    except (AttributeError, IndexError, KeyError):
        raise EolabError("cannot tell the pixel size from the array's x/y coordinates",
                         hint="pass pixel_area_m2") from None
    return dx * dy


def extent(water: Any, freq: Any | None = None, *, pixel_area_m2: float | None = None,
           region: Any | None = None, fill_threshold: float = 0.5) -> Any:
    """Water extent per date (pandas DataFrame indexed by date).

    pixel_area_m2: area of a pixel; by default taken from the x/y coordinate spacing, so the
    hectares are right at any resolution.

    Columns: ``observed_ha`` (water seen), ``clear_fraction`` (share of the region observed),
    ``filled_ha`` (observed water plus unobserved pixels whose long-term frequency ≥ fill_threshold —
    the gap filling of Global Water Watch / AquaMonitor), ``filled_share`` (share of filled_ha that is
    filled rather than seen). region: optional boolean (y, x) mask of the area to count.
    """
    import dask
    import pandas as pd

    w = water if region is None else water.where(region)
    n_region = float(np.asarray(region).sum()) if region is not None else float(water.sizes["y"] * water.sizes["x"])
    seen = w.sum(("y", "x"))
    observed = w.notnull().sum(("y", "x"))
    parts = [seen, observed]
    if freq is not None:
        likely = (freq >= fill_threshold)
        if region is not None:
            likely = likely & region
        filled = (water.isnull() & likely).sum(("y", "x"))
        parts.append(filled)
    values = dask.compute(*[p.data if hasattr(p.data, "dask") else p for p in parts])
    values = [np.asarray(v, float) for v in values]
    ha = (pixel_area(water) if pixel_area_m2 is None else pixel_area_m2) / 1e4
    df = pd.DataFrame({"date": pd.to_datetime(water.time.values).normalize(),
                       "observed_ha": values[0] * ha, "clear_fraction": values[1] / n_region})
    if freq is not None:
        df["filled_ha"] = df["observed_ha"] + values[2] * ha
        with np.errstate(invalid="ignore", divide="ignore"):
            df["filled_share"] = np.where(df["filled_ha"] > 0, values[2] * ha / df["filled_ha"], 0.0)
    return df.set_index("date")


def change(water: Any, period_a: tuple[str, str], period_b: tuple[str, str], *,
           wet: float = 0.5, min_observations: int = 2) -> Any:
    """Change between two periods from their water frequencies: a Dataset with ``frequency_a``,
    ``frequency_b``, ``difference`` (b − a) and ``change_class``: 0 dry in both, 1 water in both,
    2 new water (dry in a, water in b), 3 lost water, NaN too few observations in either period."""
    import xarray as xr

    fa = frequency(water.sel(time=slice(*period_a)), min_observations)
    fb = frequency(water.sel(time=slice(*period_b)), min_observations)
    if water.sel(time=slice(*period_a)).sizes["time"] == 0 or water.sel(time=slice(*period_b)).sizes["time"] == 0:
        raise EolabError(f"no dates in period {period_a} or {period_b}", hint="choose periods inside the time series")
    a, b = fa >= wet, fb >= wet
    cls = xr.where(a & b, 1, xr.where(~a & b, 2, xr.where(a & ~b, 3, 0))).astype("float32")
    cls = cls.where(fa.notnull() & fb.notnull())
    out = xr.Dataset({"frequency_a": fa, "frequency_b": fb, "difference": fb - fa, "change_class": cls})
    out["change_class"].attrs = {"classes": "0 dry, 1 permanent water, 2 new water, 3 lost water"}
    out.attrs["periods"] = {"a": list(period_a), "b": list(period_b)}
    return out


def largest_water_body(freq: Any, min_frequency: float = 0.5) -> np.ndarray:
    """Boolean (y, x) mask of the largest connected area with frequency ≥ min_frequency (the reservoir)."""
    from scipy import ndimage

    f = np.asarray(freq)
    labels, n = ndimage.label(np.nan_to_num(f, nan=0.0) >= min_frequency)
    if n == 0:
        raise EolabError("no water body found", hint="lower min_frequency or check the area")
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def encode(water: Any) -> Any:
    """uint8 codes of a water map (0 land, 1 water, 255 not observed): a quarter of float32's memory."""
    return water.fillna(255).astype("uint8").assign_attrs(water.attrs)


def decode(codes: Any) -> Any:
    """The float water map (NaN not observed) of :func:`encode` codes (lazy)."""
    out = codes.where(codes != 255).astype("float32")
    out.attrs = dict(codes.attrs)
    return out


# ------------------------------------------------------------------------------------ Sentinel-1


def to_db(linear: Any) -> Any:
    """Backscatter in dB (NaN for non-positive values)."""
    return 10 * np.log10(linear.where(linear > 0))


def classify_water_s1(cube: Any, band: str = "vv", *, filter_size: int = 3,
                      value_range: tuple[float, float] = (-35.0, 5.0)) -> Any:
    """Per-date radar water map from sigma0 (linear): dB, median filter, Otsu threshold per date.

    Returns (time, y, x) float32: 1 water, 0 not water, NaN nodata; ``attrs['thresholds_db']``.
    """
    import xarray as xr
    from scipy import ndimage

    if band not in cube:
        raise EolabError(f"no band {band!r} in the Sentinel-1 cube", hint=f"bands: {', '.join(cube.data_vars)}")
    db = to_db(cube[band])

    def _median(block):
        out = np.empty_like(block)
        for k in range(block.shape[0]):
            b = block[k]
            fill = np.where(np.isfinite(b), b, np.nanmedian(b) if np.isfinite(b).any() else 0)
            out[k] = np.where(np.isfinite(b), ndimage.median_filter(fill, size=filter_size), np.nan)
        return out

    if filter_size > 1:
        data = db.data
        if hasattr(data, "map_overlap"):
            filtered = data.map_overlap(_median, depth=(0, filter_size, filter_size), boundary="none",
                                        dtype=data.dtype)
        else:
            filtered = _median(np.asarray(data))
        db = db.copy(data=filtered)
    thr = _per_date_otsu(db, bins=200, value_range=value_range)
    thr_da = xr.DataArray(np.where(np.isfinite(thr), thr, -18.0), dims=["time"], coords={"time": db.time})
    out = (db < thr_da).astype("float32").where(db.notnull())
    out.name = "water"
    out.attrs = {"method": f"{band} dB, {filter_size}x{filter_size} median, Otsu per date",
                 "thresholds_db": [float(t) for t in thr]}
    return out
