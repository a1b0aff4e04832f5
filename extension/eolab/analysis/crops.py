"""Crop-type classification from cloud-masked, gap-filled Sentinel-2 time series (per parcel and per pixel).

Pipeline (in the spirit of WorldCereal and the DE Africa crop-type pipeline):

1. per-parcel, per-date zonal means of bands and indices (rasterize once + bincount, 5 m inner
   buffer), cached so that several templates share one pass over the images;
2. cleaning: dates with < 60 % clear pixels in the parcel, hazy dates (HOT anomaly) and isolated
   dips are dropped; gaps are filled by linear interpolation onto a regular 10-day grid;
3. features: NDVI, NDMI, NDRE on the grid plus seasonal NDVI statistics — the same definitions per
   parcel (means) and per pixel;
4. a random forest (scikit-learn) trained on a parcel-grouped part of the labelled parcels; label
   noise (farmers' declarations are not ground truth) is reduced by dropping training parcels whose
   own label gets a very low out-of-fold probability; accuracy on held-out parcels only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eolab.analysis import timeseries as ts
from eolab.errors import EolabError

ZONAL_BANDS = ["B02", "B03", "B04", "B05", "B08", "B8A", "B11", "B12"]
FEATURE_INDICES = ("NDVI", "NDMI", "NDRE")
STEP_DAYS = 10.0


# ------------------------------------------------------------------------------ parcel series


def _cache_key(items: Sequence, parcels: Any, variables: Sequence[str], buffer: float, resolution: float) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(sorted(f"{it.collection_id}/{it.id}" for it in items)).encode())
    h.update(json.dumps([list(variables), buffer, resolution]).encode())
    # The WKB bytes themselves (an object array's tobytes() would hash pointers, new in every process).
    for wkb in parcels.geometry.to_wkb():
        h.update(len(wkb).to_bytes(8, "little"))
        h.update(wkb)
    h.update(json.dumps([str(x) for x in parcels.index]).encode())
    return h.hexdigest()[:16]


def parcel_series(items: Sequence, parcels: Any, *, resolution: float = 10, buffer: float = -5.0,
                  bbox: Sequence[float] | None = None, cache_dir: str | Path | None = None,
                  chunks: dict | None = None, geobox: Any = None) -> Any:
    """Per-parcel (zone × time) means of the S2 bands and indices, with provenance; cached on disk.

    parcels: GeoDataFrame indexed by parcel id. The cache file name is a hash of the item ids, the
    parcel geometries and the parameters, so a changed input never reads a stale cache. geobox: the
    grid to read (see :func:`eolab.data.load.load_cube`) instead of ``resolution`` and ``bbox``; it
    must hold the parcels, on the ``resolution`` grid the cache key assumes.
    """
    import xarray as xr

    from eolab.analysis import indices, zonal
    from eolab.data.load import load_cube

    variables = ZONAL_BANDS + ["NDVI", "NDMI", "NDRE"]
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"parcel-series-{_cache_key(items, parcels, variables, buffer, resolution)}.nc"
        if cache.exists():
            ds = xr.open_dataset(cache).load()
            ds.attrs["eolab:provenance"] = json.loads(ds.attrs.pop("eolab_provenance_json"))
            ds.attrs["eolab:zonal"] = json.loads(ds.attrs.pop("eolab_zonal_json"))
            return ds
    cube = load_cube(items, bands=ZONAL_BANDS, resolution=resolution, bbox=bbox, geobox=geobox,
                     chunks=chunks or {"x": 1024, "y": 1024})
    cube = indices.add_indices(cube, ["NDVI", "NDMI", "NDRE"])
    z = zonal.zonal_stats(cube, parcels, variables, buffer=buffer, std=["NDVI"], zone_ids=list(parcels.index))
    z = z.rename({"zone": "parcel"})
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        out = z.copy()
        out.attrs = {"eolab_provenance_json": json.dumps(z.attrs["eolab:provenance"], default=str),
                     "eolab_zonal_json": json.dumps(z.attrs["eolab:zonal"])}
        tmp = cache.with_name(cache.name + ".partial")
        out.to_netcdf(tmp)
        tmp.replace(cache)
    return z


# ------------------------------------------------------------------------------ features


def feature_names(grid_days: np.ndarray, indices: Sequence[str] = FEATURE_INDICES) -> list[str]:
    doy = [str(np.datetime64("1970-01-01") + np.timedelta64(int(round(d)), "D"))[5:] for d in grid_days]
    names = [f"{idx}_{d}" for idx in indices for d in doy]
    return names + ["NDVI_max", "NDVI_mean", "NDVI_std", "NDVI_peak_day", "NDVI_green_days"]


def features_from_series(series: dict[str, np.ndarray], days: np.ndarray, grid_days: np.ndarray,
                         indices: Sequence[str] = FEATURE_INDICES) -> np.ndarray:
    """Feature matrix (n, f) from cleaned (n, time) series with gaps: interpolated on the grid + stats."""
    cols = []
    filled = {}
    for idx in indices:
        if idx not in series:
            raise EolabError(f"no {idx} series for the features")
        filled[idx] = ts.interpolate(series[idx], days, grid_days)
        cols.append(filled[idx])
    ndvi = filled["NDVI"]
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            peak = np.nanargmax(np.where(np.isfinite(ndvi), ndvi, -np.inf), axis=1)
            stats = np.stack([np.nanmax(ndvi, 1), np.nanmean(ndvi, 1), np.nanstd(ndvi, 1),
                              grid_days[peak] - grid_days[0], (ndvi > 0.5).sum(1) * (grid_days[1] - grid_days[0])],
                             axis=1)
    return np.concatenate(cols + [stats], axis=1)


def parcel_features(z: Any, *, indices: Sequence[str] = FEATURE_INDICES, step: float = STEP_DAYS,
                    min_valid_fraction: float = 0.6, haze: bool = True,
                    haze_margin: float | None = None) -> tuple[Any, dict]:
    """(DataFrame parcel × feature, info) from :func:`parcel_series` output.

    info: grid_days, the cleaned series per index, days (and their time values, ``times``), and per
    parcel the dates used.
    haze_margin: the haze test's margin fitted on more parcels than these (one tile of many, see
    :func:`eolab.analysis.timeseries.haze_margin`); None: fitted on these.
    """
    import pandas as pd

    days = ts.day_numbers(z.time.values)
    grid = ts.regular_days(days, step)
    series = {idx: ts.clean_series(z, idx, min_valid_fraction=min_valid_fraction, haze=haze, haze_margin=haze_margin)
              for idx in indices}
    X = features_from_series(series, days, grid, indices)
    df = pd.DataFrame(X, index=z.parcel.values, columns=feature_names(grid, indices))
    observed = np.isfinite(series["NDVI"])
    info = {"grid_days": grid, "days": days, "times": z.time.values, "series": series, "observed": observed,
            "n_observations": observed.sum(1)}
    return df, info


# ------------------------------------------------------------------------------ training


def parcel_labels(parcels: Any, column: str) -> Any:
    """The training labels: ``parcels[column]`` as text, for the parcels that have one.

    A column the table lacks is an error naming the columns it has; parcels without a label (null
    or blank) are left out with a warning, since as text they would become a class "nan" or "None".
    """
    import difflib
    import warnings

    columns = [str(c) for c in parcels.columns if c != "geometry"]
    if column not in parcels.columns:
        near = difflib.get_close_matches(str(column), columns, n=2, cutoff=0.6)
        raise EolabError(f"the parcels have no column {column!r} to take the labels from (columns: "
                         f"{', '.join(columns)})",
                         hint=f"label_column={near[0]!r}?" if near else "set label_column to one of those columns")
    values = parcels[column]
    text = values.astype(str).str.strip()
    missing = values.isna().to_numpy() | (text == "").to_numpy()
    if missing.all():
        raise EolabError(f"no parcel has a value in column {column!r}", hint="choose another label_column")
    if missing.any():
        warnings.warn(f"{int(missing.sum())} of {missing.size} parcels have no {column!r} and are left out "
                      f"(e.g. {', '.join(map(str, parcels.index[missing][:3]))})", stacklevel=2)
    labels = text[~missing]
    if labels.nunique() < 2:
        raise EolabError(f"column {column!r} holds one label only ({labels.iloc[0]!r}): nothing to tell apart",
                         hint="a crop map needs parcels of at least two crops")
    return labels


def split_parcels(labels: Sequence, test_size: float = 0.3, seed: int = 0, groups: Sequence | None = None):
    """Indices (train, test) of a stratified split in which every parcel (or group, e.g. farm) lies
    wholly on one side. Classes with fewer than 2 parcels go to training only. The split is one fold
    of ``round(1 / test_size)``: the test share is 1/2, 1/3, 1/4 … of the parcels (0.3 → one third)."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)) or not 0 < test_size <= 0.5:
        raise EolabError(f"test_size={test_size!r} is not a share of the parcels between 0 and 0.5",
                         hint="e.g. 0.3 (a share, not a percentage)")
    y = np.asarray(labels).astype(str)
    g = np.arange(y.size) if groups is None else np.asarray(groups)
    n_splits = max(2, int(round(1 / test_size)))
    if abs(1 / n_splits - test_size) > 0.05:
        warnings.warn(f"test_size={test_size} holds out 1/{n_splits} of the parcels (one fold of {n_splits})",
                      stacklevel=2)
    counts = {c: int((y == c).sum()) for c in set(y)}
    rare = np.array([counts[c] < n_splits for c in y])
    idx = np.flatnonzero(~rare)
    sgkf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train_i, test_i = next(sgkf.split(np.zeros(idx.size), y[idx], g[idx]))
    train = np.sort(np.concatenate([idx[train_i], np.flatnonzero(rare)]))
    return train, np.sort(idx[test_i])


def _forest(n_estimators: int, seed: int, n_jobs: int, class_weight: str | None = "balanced_subsample"):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=n_estimators, min_samples_leaf=1, max_features="sqrt",
                                  class_weight=class_weight, n_jobs=n_jobs, random_state=seed)


def _impute(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, float)
    return np.where(np.isfinite(X), X, -1.0)


def out_of_fold_proba(X: Any, y: Sequence, *, folds: int = 5, seed: int = 0, n_estimators: int = 200,
                      n_jobs: int = 2, groups: Sequence | None = None,
                      class_weight: str | None = "balanced_subsample") -> tuple[np.ndarray, list[str]]:
    """Class probabilities of every sample from a forest that never saw it (grouped k-fold)."""
    from sklearn.model_selection import StratifiedGroupKFold

    X = _impute(X)
    y = np.asarray(y).astype(str)
    classes = sorted(set(y))
    g = np.arange(y.size) if groups is None else np.asarray(groups)
    proba = np.zeros((y.size, len(classes)))
    for tr, te in StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(X, y, g):
        rf = _forest(n_estimators, seed, n_jobs, class_weight).fit(X[tr], y[tr])
        cols = [classes.index(c) for c in rf.classes_]
        proba[np.ix_(te, cols)] = rf.predict_proba(X[te])
    return proba, classes


def train(X: Any, y: Sequence, *, n_estimators: int = 300, seed: int = 0, n_jobs: int = 2,
          clean_labels: bool = True, min_own_proba: float = 0.15, groups: Sequence | None = None,
          class_weight: str | None = "balanced_subsample") -> tuple[Any, dict]:
    """A random forest on (X, y); with ``clean_labels`` first drop samples whose own label gets an
    out-of-fold probability below ``min_own_proba`` (likely wrong labels), then refit.
    ``class_weight`` (scikit-learn's; default: balanced per bootstrap sample) applies to every forest.

    Returns (model, info) with the kept mask and the number of labels dropped per class.
    """
    Xi = _impute(X)
    y = np.asarray(y).astype(str)
    keep = np.ones(y.size, bool)
    if clean_labels and y.size >= 25:
        proba, classes = out_of_fold_proba(Xi, y, seed=seed, n_estimators=max(100, n_estimators // 2),
                                           n_jobs=n_jobs, groups=groups, class_weight=class_weight)
        own = proba[np.arange(y.size), [classes.index(c) for c in y]]
        keep = own >= min_own_proba
        # never drop a whole class
        for c in set(y):
            if not keep[y == c].any():
                keep[y == c] = True
    model = _forest(n_estimators, seed, n_jobs, class_weight).fit(Xi[keep], y[keep])
    dropped = {c: int(((y == c) & ~keep).sum()) for c in sorted(set(y))}
    return model, {"kept": keep, "dropped_per_class": dropped, "n_train": int(keep.sum())}


def predict(model: Any, X: Any) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class, probabilities (n, classes in model.classes_))."""
    proba = model.predict_proba(_impute(X))
    return model.classes_[np.argmax(proba, axis=1)], proba


# ------------------------------------------------------------------------------ pixels


def pixel_training_samples(cube_idx: Any, labels_raster: np.ndarray, parcel_labels: Sequence[str],
                           parcel_rows: Sequence[int], grid_days: np.ndarray, *, per_parcel: int = 20,
                           seed: int = 0, indices: Sequence[str] = FEATURE_INDICES):
    """(X, y, groups) of up to ``per_parcel`` random inner pixels of each parcel row in ``parcel_rows``.

    labels_raster: (y, x) int raster, value row + 1 for parcel ``row``; cube_idx: Dataset with the
    index variables (time, y, x). Only the sampled pixels are read into memory.
    """
    rng = np.random.default_rng(seed)
    lab = labels_raster.ravel()
    chosen = []
    wanted = set(int(r) + 1 for r in parcel_rows)
    order = np.argsort(lab, kind="stable")
    sorted_lab = lab[order]
    for code in sorted(wanted):
        lo, hi = np.searchsorted(sorted_lab, code), np.searchsorted(sorted_lab, code, side="right")
        if hi > lo:
            pix = order[lo:hi]
            chosen.append(rng.choice(pix, size=min(per_parcel, pix.size), replace=False))
    if not chosen:
        raise EolabError("no pixels inside the training parcels", hint="check parcels and area overlap")
    flat = np.concatenate(chosen)
    ny, nx = labels_raster.shape
    yy, xx = np.unravel_index(flat, (ny, nx))
    import xarray as xr

    sel = cube_idx[list(indices)].isel(y=xr.DataArray(yy, dims="s"), x=xr.DataArray(xx, dims="s")).compute()
    days = ts.day_numbers(cube_idx.time.values)
    series = {idx: np.asarray(sel[idx].transpose("s", "time").values, float) for idx in indices}
    X = features_from_series(series, days, grid_days, indices)
    rows = lab[flat] - 1
    return X, np.asarray(parcel_labels)[rows], rows


def predict_pixels(cube_idx: Any, model: Any, grid_days: np.ndarray, *,
                   indices: Sequence[str] = FEATURE_INDICES, block: int = 256) -> Any:
    """Lazy per-pixel map: Dataset with ``class_index`` (int16 into model.classes_, -1 unobserved) and
    ``probability`` (of the predicted class), computed block by block (dask map_blocks)."""
    import dask.array as da
    import xarray as xr

    days = ts.day_numbers(cube_idx.time.values)
    arrays = [cube_idx[idx].data for idx in indices]
    if not isinstance(arrays[0], da.Array):
        arrays = [da.from_array(np.asarray(a)) for a in arrays]
    stacked = da.stack(arrays, axis=0).rechunk({0: -1, 1: -1, 2: block, 3: block})

    def _block(values: np.ndarray) -> np.ndarray:
        k, t, ny, nx = values.shape
        series = {idx: values[i].reshape(t, -1).T.astype(float) for i, idx in enumerate(indices)}
        seen = np.isfinite(series[indices[0]]).any(axis=1)
        out = np.full((2, ny * nx), -1.0, dtype=np.float32)
        if seen.any():
            X = features_from_series({i: s[seen] for i, s in series.items()}, days, grid_days, indices)
            proba = model.predict_proba(_impute(X))
            out[0, seen] = np.argmax(proba, axis=1)
            out[1, seen] = proba.max(axis=1)
        return out.reshape(2, ny, nx)[:, None]

    res = da.map_blocks(_block, stacked, dtype=np.float32,
                        chunks=((2,), (1,), stacked.chunks[2], stacked.chunks[3]))[:, 0]
    coords = {"y": cube_idx.y, "x": cube_idx.x}
    out = xr.Dataset({"class_index": (("y", "x"), res[0].astype("int16")),
                      "probability": (("y", "x"), res[1])}, coords=coords)
    out.attrs["classes"] = [str(c) for c in model.classes_]
    return out


# ------------------------------------------------------------------------------ Sentinel-1 (optional)


def s1_parcel_series(items: Sequence, parcels: Any, *, resolution: float = 10, buffer: float = -5.0,
                     bbox: Sequence[float] | None = None, cache_dir: str | Path | None = None) -> Any:
    """Per-parcel (parcel × time) mean VV and VH backscatter in dB (of linear means), cached.

    Sampled on the 10 m grid with the optical 5 m inner buffer (the 20 m pixels are repeated), so that
    small and narrow parcels keep enough pixels; ``n_pixels`` counts 10 m pixels (÷ 4 for 20 m looks)."""
    import xarray as xr

    from eolab.analysis import zonal
    from eolab.data.load import load_cube

    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"parcel-s1-{_cache_key(items, parcels, ['vv', 'vh'], buffer, resolution)}.nc"
        if cache.exists():
            ds = xr.open_dataset(cache).load()
            ds.attrs["eolab:provenance"] = json.loads(ds.attrs.pop("eolab_provenance_json"))
            return ds
    cube = load_cube(items, bands=["vv", "vh"], resolution=resolution, bbox=bbox, mask=None,
                       chunks={"x": 1024, "y": 1024})
    z = zonal.zonal_stats(cube, parcels, ["vv", "vh"], buffer=buffer, zone_ids=list(parcels.index))
    z = z.rename({"zone": "parcel"})
    for pol in ("vv", "vh"):
        z[f"{pol}_db"] = 10 * np.log10(z[pol].where(z[pol] > 0))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        out = z.copy()
        out.attrs = {"eolab_provenance_json": json.dumps(z.attrs["eolab:provenance"], default=str)}
        tmp = cache.with_name(cache.name + ".partial")
        out.to_netcdf(tmp)
        tmp.replace(cache)
    return z


def s1_features(z1: Any, grid_days: np.ndarray) -> Any:
    """VV, VH and VH−VV (dB) per parcel interpolated onto the optical grid (DataFrame)."""
    import pandas as pd

    days = ts.day_numbers(z1.time.values)
    cols, names = [], []
    doy = [str(np.datetime64("1970-01-01") + np.timedelta64(int(round(d)), "D"))[5:] for d in grid_days]
    for name, values in (("VV", z1["vv_db"].values), ("VH", z1["vh_db"].values),
                         ("VHVV", (z1["vh_db"] - z1["vv_db"]).values)):
        cols.append(ts.interpolate(values, days, grid_days))
        names += [f"{name}_{d}" for d in doy]
    return pd.DataFrame(np.concatenate(cols, axis=1), index=z1.parcel.values, columns=names)


def provenance_of(*datasets: Any) -> list[dict]:
    """The item records behind parcel series (their ``eolab:provenance``)."""
    return [d.attrs.get("eolab:provenance", {}) for d in datasets if d is not None]
