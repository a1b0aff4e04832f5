"""Load STAC items from any STAC API into a lazy xarray/dask cube, in physical units, cloud-masked.

The cube is built by odc-stac; eolab adds what every analysis then needs: the raster extension's
scale/offset applied, nodata as NaN, an SCL-based cloud/shadow mask, and a provenance record of
the items behind every value.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from eolab import ids, provenance
from eolab.errors import EolabError

# Sentinel-2 L2A scene classification (Sen2Cor) codes.
SCL_CLASSES = {
    0: "no data", 1: "saturated or defective", 2: "dark area / cast shadow", 3: "cloud shadow",
    4: "vegetation", 5: "not vegetated", 6: "water", 7: "unclassified",
    8: "cloud medium probability", 9: "cloud high probability", 10: "thin cirrus", 11: "snow or ice",
}
DEFAULT_MASK_CLASSES = (0, 1, 3, 8, 9, 10)
SCL_BAND = "SCL"

# GDAL lists a remote "directory" on every open unless told not to.
_GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
             "GDAL_HTTP_MULTIPLEX": "YES", "VSI_CACHE": "TRUE"}


# Default dask chunks: one date × 1024² px (4 MiB as float32), a multiple of common COG tile sizes.
# Smaller chunks cost more in odc-stac's per-task planning and dask overhead than they save.
DEFAULT_CHUNKS = {"x": 1024, "y": 1024}


def _as_entries(items: Any) -> list:
    """``items`` as a list of pystac Items and/or STAC item dicts (not yet converted)."""
    import pystac

    if hasattr(items, "items") and callable(items.items) and not isinstance(items, dict):
        items = items.items()  # an ItemSearch
    out = [item if isinstance(item, (pystac.Item, dict)) else pystac.Item.from_dict(item) for item in items]
    if not out:
        raise EolabError("no items to load", hint="widen the area, time range or collections of the search")
    return out


def _asset_keys(entry: Any) -> dict[str, list[str]]:
    """Asset key -> roles of a pystac Item or STAC item dict."""
    if isinstance(entry, dict):
        return {key: asset.get("roles") or [] for key, asset in (entry.get("assets") or {}).items()}
    return {key: asset.roles or [] for key, asset in entry.assets.items()}


def _lean_item(entry: Any, keep: Sequence[str]):
    """A pystac Item with only the assets in ``keep``: odc-stac parses every asset of every item,
    and converting a dict deep-copies all of it, so dropping unused assets saves most of that."""
    import pystac

    if isinstance(entry, dict):
        assets = entry.get("assets") or {}
        return pystac.Item.from_dict({**entry, "assets": {key: assets[key] for key in keep}})
    common = entry.common_metadata
    lean = pystac.Item(
        id=entry.id, geometry=entry.geometry, bbox=entry.bbox, datetime=entry.datetime,
        properties=dict(entry.properties), start_datetime=common.start_datetime,
        end_datetime=common.end_datetime, stac_extensions=list(entry.stac_extensions),
        href=entry.get_self_href(), collection=entry.collection_id, extra_fields=dict(entry.extra_fields))
    for key in keep:  # new Asset objects: adding the originals would re-parent them
        asset = entry.assets[key]
        lean.add_asset(key, pystac.Asset(asset.href, asset.title, asset.description, asset.media_type,
                                         asset.roles, dict(asset.extra_fields)))
    return lean


def _check_one_collection(entries: list) -> None:
    """Items of one collection (from any providers): bands of two collections do not line up."""
    names = sorted({ids.plain(ids.item_collection(entry)) for entry in entries})
    if len(names) > 1:
        raise EolabError(f"the selection mixes collections {', '.join(names)}",
                         hint="select items of one collection (any providers) and load it")


def _check_assets(entries: list, bands: Sequence[str]) -> None:
    for entry in entries:
        keys = _asset_keys(entry)
        for band in bands:
            if band not in keys:
                item_id = entry.get("id") if isinstance(entry, dict) else entry.id
                raise EolabError(f"item {item_id} has no asset {band!r}", hint=f"its assets are: {', '.join(keys)}")


def _band_info(items: list, band: str) -> dict:
    """The raster:bands entry of ``band`` (scale, offset, nodata, data_type); the same in every item."""
    seen = {}
    for item in items:
        asset = item.assets[band]
        info = (asset.extra_fields.get("raster:bands") or [{}])[0]
        key = (info.get("scale", 1.0), info.get("offset", 0.0), info.get("nodata"))
        seen.setdefault(key, item.id)
    if len(seen) > 1:
        details = "; ".join(f"{k} in {v}" for k, v in seen.items())
        raise EolabError(f"band {band!r} has different scale/offset/nodata across items: {details}",
                         hint="load such items separately and combine the cubes")
    scale, offset, nodata = next(iter(seen))
    return {"scale": float(scale), "offset": float(offset), "nodata": nodata}


def _default_bands(entries: list) -> list[str]:
    return [key for key, roles in _asset_keys(entries[0]).items() if "data" in roles and key != SCL_BAND]


def _to_physical(dn, scl=None, *, scale, offset, nodata, masked, out_dtype):
    """One chunk in physical units: dn * scale + offset, nodata (and masked SCL classes) -> NaN."""
    out = np.multiply(dn, out_dtype.type(scale), dtype=out_dtype)
    out += out_dtype.type(offset)
    if nodata is not None and not np.isnan(nodata):
        np.copyto(out, np.nan, where=dn == nodata)
    if scl is not None:
        np.copyto(out, np.nan, where=np.isin(scl, masked))
    return out


def load_cube(
    items: Any,
    bands: Sequence[str] | None = None,
    *,
    resolution: float | None = 10,
    crs: str | None = None,
    bbox: Sequence[float] | None = None,
    mask: str | None = "auto",
    mask_classes: Iterable[int] = DEFAULT_MASK_CLASSES,
    chunks: dict[str, int] | None = None,
    groupby: str = "solar_day",
    dtype: str = "float32",
    progress: bool = False,
):
    """A lazy cube (xarray Dataset of dask arrays) of ``items`` in physical units.

    items: an ItemSearch, ItemCollection, or list of pystac Items / STAC item dicts.
    bands: asset keys (default: every data asset but SCL).
    mask: "scl" masks pixels whose SCL class is in ``mask_classes`` (default: no data, defective,
        cloud shadow, medium/high-probability cloud, cirrus); "auto" does so when items have SCL;
        None keeps every pixel. Nodata is always NaN.
    resolution, crs, bbox (lon/lat), chunks, groupby: passed to ``odc.stac.load``; chunks default to
        ``DEFAULT_CHUNKS`` (one date, 1024 × 1024 px).
    """
    import dask.array
    import odc.stac
    import pystac
    import xarray as xr

    if mask not in ("auto", "scl", None):
        raise EolabError(f"mask={mask!r} is not known", hint="use 'scl', 'auto' or None")
    entries = _as_entries(items)
    _check_one_collection(entries)
    bands = list(bands) if bands else _default_bands(entries)
    has_scl = all(SCL_BAND in _asset_keys(entry) for entry in entries)
    use_scl = mask == "scl" or (mask == "auto" and has_scl)
    if use_scl and not has_scl:
        missing = [(e.get("id") if isinstance(e, dict) else e.id) for e in entries
                   if SCL_BAND not in _asset_keys(e)][:3]
        raise EolabError(f"mask='scl' needs an SCL asset, missing in items {missing}", hint="use mask=None")
    _check_assets(entries, bands)
    to_read = bands + ([SCL_BAND] if use_scl and SCL_BAND not in bands else [])
    items = [_lean_item(entry, to_read) for entry in entries]
    infos = {band: _band_info(items, band) for band in bands}
    mask_classes = tuple(int(c) for c in mask_classes)
    dtype = np.dtype(dtype)

    for key, value in _GDAL_ENV.items():
        os.environ.setdefault(key, value)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Supplied chunks.*")
        raw = odc.stac.load(
            items, bands=to_read, resolution=resolution, crs=crs, bbox=bbox, groupby=groupby,
            chunks=chunks or dict(DEFAULT_CHUNKS), fail_on_error=True, progress=None,
        )

    cube = raw[bands].copy()
    scl = raw[SCL_BAND].data if use_scl else None
    for band in bands:
        if band == SCL_BAND:
            continue
        info = infos[band]
        # One fused pass per chunk (scale, offset, nodata and clouds -> NaN) instead of a chain of
        # dask element-wise ops, each allocating a full-size temporary.
        args = (raw[band].data,) + ((scl,) if scl is not None else ())
        data = dask.array.map_blocks(
            _to_physical, *args, dtype=dtype, scale=info["scale"], offset=info["offset"],
            nodata=info["nodata"], masked=mask_classes if scl is not None else None, out_dtype=dtype)
        cube[band] = xr.DataArray(data, dims=raw[band].dims, coords=raw[band].coords,
                                  attrs={"scale_applied": info["scale"], "offset_applied": info["offset"],
                                         "nodata": info["nodata"]})
    if use_scl:
        cloudy = raw[SCL_BAND].isin(list(mask_classes))
        cube["clear"] = ~cloudy
        cube["clear"].attrs = {"description": "pixel not masked by SCL", "masked_scl_classes": list(mask_classes)}
    if SCL_BAND in bands:
        cube[SCL_BAND] = raw[SCL_BAND]  # class codes stay integers
    # Provenance from the caller's items (self links etc.), not the lean copies.
    records = [entry if isinstance(entry, pystac.Item) else item for entry, item in zip(entries, items)]
    cube.attrs["eolab:provenance"] = provenance.for_cube(
        records, bands=bands, resolution=resolution, crs=str(cube.odc.crs), mask=("scl" if use_scl else None),
        mask_classes=list(mask_classes) if use_scl else [], groupby=groupby)
    cube.attrs["crs"] = str(cube.odc.crs)
    return cube


def lonlat_bounds(cube: Any) -> list[float]:
    """[west, south, east, north] of a cube's grid in WGS84."""
    bb = cube.odc.geobox.extent.to_crs("EPSG:4326").boundingbox
    return [round(bb.left, 6), round(bb.bottom, 6), round(bb.right, 6), round(bb.top, 6)]
