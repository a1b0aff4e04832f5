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
from eolab.data import profiles as profiles_mod
from eolab.errors import EolabError

# Sentinel-2 L2A scene classification (Sen2Cor) codes.
SCL_CLASSES = {
    0: "no data", 1: "saturated or defective", 2: "dark area / cast shadow", 3: "cloud shadow",
    4: "vegetation", 5: "not vegetated", 6: "water", 7: "unclassified",
    8: "cloud medium probability", 9: "cloud high probability", 10: "thin cirrus", 11: "snow or ice",
}
DEFAULT_MASK_CLASSES = (0, 1, 3, 8, 9, 10)
SCL_BAND = "SCL"
# Landsat Collection 2 QA_PIXEL bits, in the order they decide the SCL class a pixel is given
# (fill first, then cloud over cirrus over shadow over snow over water); clear land has no SCL
# class of its own in QA_PIXEL (no vegetation test) and becomes 7 "unclassified".
QA_TO_SCL = ((0, 0), (3, 9), (1, 8), (2, 10), (4, 3), (5, 11), (7, 6))
QA_CLEAR_SCL = 7


def qa_pixel_to_scl(qa: Any) -> np.ndarray:
    """Landsat C2 QA_PIXEL bit fields as the Sen2Cor SCL codes they mean (uint8), so one mask, snow
    and shadow logic serves both sensors: fill (bit 0, or the value 0 outside the scene) -> 0,
    cloud (bit 3) -> 9, dilated cloud (1) -> 8, cirrus (2) -> 10, cloud shadow (4) -> 3,
    snow (5) -> 11, water (7) -> 6, anything else -> 7."""
    qa = np.asarray(qa)
    if qa.dtype.kind == "f":  # read without a stated data type: float, NaN where nothing was read
        qa = np.nan_to_num(qa, nan=0.0)
    qa = qa.astype(np.uint16, copy=False)
    out = np.full(qa.shape, QA_CLEAR_SCL, np.uint8)
    decided = np.zeros(qa.shape, bool)
    for bit, code in QA_TO_SCL:
        hit = ((qa >> bit) & 1).astype(bool) & ~decided
        out[hit] = code
        decided |= hit
    out[qa == 0] = 0
    return out

# GDAL lists a remote "directory" on every open unless told not to.
_GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
             "GDAL_HTTP_MULTIPLEX": "YES", "VSI_CACHE": "TRUE"}


# odc-stac reprojects each source window into a numpy array; rasterio wraps that array in an in-memory
# dataset that has no transform until the warp sets it, and warns (once per kernel, in a notebook as
# a red box) although the pixels land right. Only this message from rasterio's warp is silenced.
warnings.filterwarnings("ignore", message="Dataset has no geotransform, gcps, or rpcs", module="rasterio.warp")

# Default dask chunks: one date × 1024² px (4 MiB as float32), a multiple of common COG tile sizes.
# Smaller chunks cost more in odc-stac's per-task planning and dask overhead than they save.
DEFAULT_CHUNKS = {"x": 1024, "y": 1024}


def _as_entries(items: Any) -> list:
    """``items`` as a list of pystac Items and/or STAC item dicts (not yet converted)."""
    import pystac

    if items is None:
        raise EolabError("items is None: nothing to load", hint="pass the items of a search (its .items)")
    if isinstance(items, pystac.Item) or (isinstance(items, dict) and items.get("type") == "Feature"):
        items = [items]  # one item
    elif isinstance(items, dict) and isinstance(items.get("features"), list):
        items = items["features"]  # an ItemCollection as JSON
    elif hasattr(items, "items") and not isinstance(items, dict):
        # an ItemSearch (items()), or a page of eolab.search (.items, a list)
        items = items.items() if callable(items.items) else items.items
    try:
        entries = list(items)
    except TypeError:
        raise EolabError(f"items is a {type(items).__name__}, not a list of STAC items",
                         hint="pass a search's items: a list, an ItemCollection or an ItemSearch") from None
    out = []
    for item in entries:
        if isinstance(item, (pystac.Item, dict)):
            out.append(item)
        elif isinstance(item, str):
            raise EolabError(f"items holds the text {item[:60]!r}, not a STAC item",
                             hint="load the items of a search, not their ids")
        else:
            try:
                out.append(pystac.Item.from_dict(item))
            except Exception as exc:  # pystac raises several types for what is not an item
                raise EolabError(f"items holds a {type(item).__name__}, not a STAC item ({exc})"[:300]) from None
    if not out:
        raise EolabError("no items to load", hint="widen the area, time range or collections of the search")
    return out


_GROUPS = ("solar_day", "time", "id")


def _check_arguments(views: list[dict], *, resolution, crs, bbox, groupby, dtype, geobox, chunks) -> None:
    """Refuse what odc-stac would take and answer with a library error, or worse an empty or
    wrong cube: a bbox away from every item (swapped lon/lat), a resolution of no size, an unknown
    CRS, a grouping by a property the items lack (everything in one layer)."""
    import math
    import numbers

    _check_times(views)
    if geobox is None and resolution is not None and not hasattr(resolution, "xy"):  # odc.geo Resolution: as is
        if isinstance(resolution, bool) or not isinstance(resolution, numbers.Real) or not math.isfinite(resolution) \
                or resolution <= 0:
            raise EolabError(f"resolution={resolution!r} is not a positive number",
                             hint="the pixel size in the CRS's units: 10 (metres) for Sentinel-2's UTM grid")
    if crs is not None and not (isinstance(crs, str) and crs.lower().startswith("utm")):  # odc-stac's "utm"
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            CRS.from_user_input(crs)
        except CRSError as exc:
            raise EolabError(f"crs={crs!r} is not a coordinate reference system ({exc})"[:300],
                             hint="e.g. 'EPSG:32634'") from None
    if np.dtype(dtype).kind != "f":
        raise EolabError(f"dtype={dtype!r}: the cube holds physical values with NaN where nothing is known",
                         hint="use 'float32' or 'float64'")
    for axis, size in (chunks or {}).items():
        if size == "auto":
            continue
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or (size <= 0 and size != -1):  # -1: all
            raise EolabError(f"chunks={chunks!r}: {axis} must be a positive number of pixels",
                             hint=f"e.g. chunks={DEFAULT_CHUNKS}")
    if isinstance(groupby, str) and groupby not in _GROUPS:
        lacking = [v.get("id") for v in views if groupby not in (v.get("properties") or {})]
        if lacking:
            raise EolabError(f"groupby={groupby!r} is neither {', '.join(_GROUPS)} nor a property of every item "
                             f"(items {lacking[:3]} lack it): all of them would be merged into one layer",
                             hint="groupby='solar_day' (one layer per day) or 'time'")
    if bbox is None or geobox is not None:
        return
    try:
        west, south, east, north = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise EolabError(f"bbox {bbox!r} is not four numbers",
                         hint="west, south, east, north in degrees (longitude first)") from None
    if not all(math.isfinite(v) for v in (west, south, east, north)) or not (
            -180 <= west <= 180 and -180 <= east <= 180 and -90 <= south < north <= 90):
        raise EolabError(f"bbox {list(bbox)} is not west, south, east, north in degrees",
                         hint="longitudes -180..180, latitudes -90..90, south below north")
    if west >= east:
        raise EolabError(f"bbox {list(bbox)} has its west edge east of its east edge (across the antimeridian?)",
                         hint="load each side of the antimeridian separately, or swap west and east")
    boxes = _footprints(views)
    if boxes and not any(b[0] <= east and west <= b[2] and b[1] <= north and south <= b[3] for b in boxes):
        extent = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                  max(b[3] for b in boxes)]
        swapped = any(b[0] <= north and south <= b[2] and b[1] <= east and west <= b[3] for b in boxes)
        raise EolabError(f"bbox {list(bbox)} overlaps none of the {len(views)} items (they cover "
                         f"{[round(v, 4) for v in extent]}): the cube would hold nothing",
                         hint="bbox is west, south, east, north in degrees" + (
                             " — with latitude and longitude swapped it would overlap them" if swapped else ""))


def _when(value: Any) -> bool:
    """Whether ``value`` is an RFC 3339 date-time pystac reads."""
    import datetime as dt

    if not isinstance(value, str):
        return False
    try:
        dt.datetime.fromisoformat(value)  # fast: most items
    except ValueError:
        from dateutil.parser import isoparse  # pystac's parser, which takes more spellings

        try:
            isoparse(value)
        except (ValueError, OverflowError):
            return False
    return True


def _check_times(views: list[dict]) -> None:
    """Every item has a time (else pystac stops the load with "Invalid Item")."""
    for view in views:
        props = view.get("properties") or {}
        when = props.get("datetime")
        if when is None and _when(props.get("start_datetime")) and _when(props.get("end_datetime")):
            continue
        if when is None or not _when(when):
            got = "no datetime" if when is None else f"datetime {str(when)[:40]!r}, not an RFC 3339 date-time"
            raise EolabError(f"item {view.get('id')!r} has {got}" + (" and no start_datetime/end_datetime"
                                                                      if when is None else ""),
                             hint="every item needs properties.datetime (e.g. '2026-05-01T10:00:00Z'), or null "
                                  "with start_datetime and end_datetime; leave that item out")


def _footprints(views: list[dict]) -> list[tuple[float, float, float, float]]:
    """Every item's lon/lat box (3-D boxes as 2-D; one across the antimeridian as its two halves);
    empty unless every item has one (an item without a box may lie anywhere)."""
    out = []
    for view in views:
        b = view.get("bbox")
        if not isinstance(b, (list, tuple)) or len(b) not in (4, 6):
            return []
        try:
            west, south, east, north = (float(v) for v in ((b[0], b[1], b[3], b[4]) if len(b) == 6 else b))
        except (TypeError, ValueError):
            return []
        if west > east:
            out += [(west, south, 180.0, north), (-180.0, south, east, north)]
        else:
            out.append((west, south, east, north))
    return out


# A graph of more chunks than this takes minutes and gigabytes before the first pixel is read.
MAX_CHUNKS = 200_000


def _item_crs(view: dict) -> str | None:
    """The item's CRS from the projection extension (properties, else its first asset that has one)."""
    for where in [view.get("properties") or {}, *(view.get("assets") or {}).values()]:
        if not isinstance(where, dict):
            continue
        if where.get("proj:code"):
            return str(where["proj:code"])
        if where.get("proj:epsg"):
            return f"EPSG:{where['proj:epsg']}"
    return None


def _check_size(raw, chunks) -> None:
    """After odc-stac has planned the cube: warn on a cube of no size (a resolution in other units)."""
    ny, nx = raw.odc.geobox.shape
    if ny * nx <= 4:
        crs = raw.odc.crs
        name = f"EPSG:{crs.epsg}" if crs is not None and crs.epsg else str(crs)[:40]
        warnings.warn(f"the cube is {ny} × {nx} pixels: is the resolution in the CRS's units "
                      f"({name}: degrees for EPSG:4326)?", stacklevel=3)


def _check_plan(views: list[dict], *, resolution, crs, bbox, chunks, geobox) -> None:
    """Before odc-stac builds the graph: the number of chunks the load would have."""
    if geobox is not None or resolution is None:
        return
    from odc.geo.geom import BoundingBox, bbox_union

    if not isinstance(resolution, (int, float)) or isinstance(crs, str) and crs.lower().startswith("utm"):
        return  # a Resolution object, or a CRS odc-stac picks itself: not estimated here
    target = crs or next((c for c in (_item_crs(v) for v in views) if c), None)
    boxes = _footprints(views)
    if target is None or not boxes:
        return
    box = BoundingBox(*bbox, crs="EPSG:4326") if bbox is not None else bbox_union(
        BoundingBox(*b, crs="EPSG:4326") for b in boxes)
    try:
        extent = box.to_crs(target)
    except Exception:  # an extent the target CRS cannot hold: odc-stac will say so
        return
    size = dict(DEFAULT_CHUNKS, **(chunks or {}))
    ny, nx = extent.height / resolution, extent.width / resolution
    size = {k: (v if isinstance(v, int) and v > 0 else 1024) for k, v in size.items()}  # "auto", -1: as big
    dates = len({str((v.get("properties") or {}).get("datetime"))[:10] for v in views})
    per_chunk = size.get("time", 1)
    dates = dates if not isinstance(per_chunk, int) or per_chunk <= 0 else -(-dates // per_chunk)
    count = dates * max(1.0, ny / max(1, size.get("y", 1024))) * max(1.0, nx / max(1, size.get("x", 1024)))
    if count > MAX_CHUNKS:
        raise EolabError(f"at resolution {resolution} the cube would be ~{nx:,.0f} × {ny:,.0f} pixels per date, "
                         f"{count:,.0f} chunks over {dates} dates: building its graph alone would take minutes and "
                         "gigabytes", hint="a coarser resolution (in the CRS's units), a smaller bbox or fewer dates")


def _view(entry: Any) -> dict:
    """A STAC item dict of ``entry`` for reading metadata (a pystac Item's assets as dicts)."""
    if isinstance(entry, dict):
        return entry
    self_link = entry.get_single_link("self")
    properties = entry.properties
    if "datetime" not in properties:  # pystac keeps an Item's datetime apart until to_dict()
        from pystac.utils import datetime_to_str

        properties = {**properties, "datetime": datetime_to_str(entry.datetime) if entry.datetime else None}
    return {"type": "Feature", "stac_version": "1.0.0", "id": entry.id, "collection": entry.collection_id,
            "geometry": entry.geometry, "bbox": entry.bbox, "properties": properties,
            "stac_extensions": list(entry.stac_extensions),
            "links": ([{"rel": "self", "href": self_link.get_href(transform_href=False)}] if self_link else []),
            "assets": {key: asset.to_dict() for key, asset in entry.assets.items()}}


def item_view(entry: Any) -> dict:
    """A STAC item dict of a pystac Item or dict, for reading its metadata (assets as dicts)."""
    return _view(entry)


def item_provider(view: dict) -> str | None:
    """The member id of an item (its provider property), else the host of its assets."""
    return _provider(view)


def member_profile(provider: str | None) -> Any:
    """The configured member's profile of ``provider`` (look-alike endpoints filled in), or None."""
    return _profile_for(provider, None)


# Data types of the DNs of products whose scaling eolab takes from their convention.
_CONVENTION_DTYPES = {"sentinel-2 convention": "uint16", "landsat c2 l2 convention": "uint16"}


def _native_values(info: dict) -> dict | None:
    """Data type and nodata of a band's DNs where the metadata does not state them but the band's
    convention does (Sentinel-2 L2A, Landsat C2 L2: uint16, nodata 0). Told to odc-stac, which
    otherwise reads such assets as float32 (GDAL converting every pixel, nodata rewritten to NaN,
    twice the memory per read and per chunk) before eolab scales them to float anyway."""
    dtype = _CONVENTION_DTYPES.get(info["source"])
    if dtype is None or info["nodata"] is None:
        return None
    return {"data_type": dtype, "nodata": info["nodata"]}


def _lean_asset(asset: dict, native: dict | None) -> dict:
    out = dict(asset)
    if native and not any(k in out for k in ("raster:bands", "bands", "data_type", "nodata")):
        out.update(native)  # STAC 1.1 asset fields, as odc-stac reads them
    return out


def _lean_item(view: dict, keys: dict[str, str], native: dict[str, dict | None] | None = None):
    """A pystac Item with only the assets to read, renamed to the names asked for (``keys``:
    name -> asset key), and no links but ``self``: odc-stac parses every asset of every item, and
    pystac resolves root/collection links (a network fetch) when it meets them."""
    import pystac

    assets = view.get("assets") or {}
    links = [link for link in view.get("links") or [] if link.get("rel") == "self"]
    # Fresh containers for everything pystac may change (it sets the datetime in properties,
    # migration rewrites extension lists): its deep copy of each item was a third of building a
    # load's graph.
    return pystac.Item.from_dict({**view, "links": links, "properties": dict(view.get("properties") or {}),
                                  "stac_extensions": list(view.get("stac_extensions") or []),
                                  "assets": {name: _lean_asset(assets[key], (native or {}).get(name))
                                             for name, key in keys.items()}},
                                 preserve_dict=False)


def _check_one_collection(entries: list) -> None:
    """Items of one collection (from any providers): bands of two collections do not line up."""
    names = sorted({ids.plain(ids.item_collection(entry)) for entry in entries})
    if len(names) > 1:
        raise EolabError(f"the selection mixes collections {', '.join(names)}",
                         hint="select items of one collection (any providers) and load it")


def _provider(view: dict) -> str | None:
    provider = ids.item_provider(view)
    if provider:
        return provider
    from urllib.parse import urlsplit

    hrefs = [a.get("href", "") for a in (view.get("assets") or {}).values()]
    hosts = sorted({urlsplit(h).netloc for h in hrefs if "://" in h})
    return hosts[0] if hosts else None


def _profile_for(provider: str | None, profile: Any):
    """The member profile to use: the caller's, else the configured member's, else None."""
    from eolab.config import ProviderProfile

    if isinstance(profile, ProviderProfile):
        return profile
    if isinstance(profile, dict):
        return ProviderProfile.model_validate(profile)
    member_id = profile if isinstance(profile, str) else provider
    if not member_id:
        return None
    from eolab.config import load_config

    try:
        config = load_config()
        return config.member_profile(config.member(member_id))
    except EolabError:  # no such member (e.g. assets of a plain STAC API), or no readable configuration
        if isinstance(profile, str):
            raise
        return None


def _band_info(views: list, keys: list[dict], band: str, profiles: list) -> dict:
    """Scale, offset, nodata of ``band`` in each item; nodata must agree, scale/offset may differ
    (a time series across Sentinel-2 processing baseline 04.00): they are then applied per date."""
    per_item = [profiles_mod.band_values(view, key[band], profile)
                for view, key, profile in zip(views, keys, profiles)]
    nodatas = {repr(v.nodata) for v in per_item}
    if len(nodatas) > 1:
        raise EolabError(f"band {band!r} has different nodata values across items: {', '.join(sorted(nodatas))}",
                         hint="load such items separately and combine the cubes")
    first = per_item[0]
    return {"scale": float(first.scale), "offset": float(first.offset), "nodata": first.nodata,
            "source": ", ".join(sorted({v.source for v in per_item})), "per_item": per_item,
            "uniform": len({(v.scale, v.offset) for v in per_item}) == 1}


def _per_date(times, views: list, per_item: list, band: str) -> tuple[np.ndarray, np.ndarray]:
    """Scale and offset per time step of the cube, from the items grouped into each step."""
    import pandas as pd

    stamps = pd.to_datetime(times)
    scales = np.full(len(stamps), np.nan)
    offsets = np.full(len(stamps), np.nan)
    for view, values in zip(views, per_item):
        props = view.get("properties") or {}
        when = pd.Timestamp(props.get("datetime") or props.get("start_datetime"))
        when = when.tz_convert(None) if when.tzinfo is not None else when
        step = int(np.argmin(np.abs((stamps - when).total_seconds())))
        if not np.isnan(scales[step]) and (scales[step], offsets[step]) != (values.scale, values.offset):
            raise EolabError(f"band {band!r}: items of the same date {stamps[step].date()} need different "
                             f"scale/offset (e.g. {view.get('id')})",
                             hint="load such items separately and combine the cubes")
        scales[step], offsets[step] = values.scale, values.offset
    return np.nan_to_num(scales, nan=1.0), np.nan_to_num(offsets, nan=0.0)


def _to_physical(dn, scl=None, *, scale, offset, nodata, masked, out_dtype, block_info=None):
    """One chunk in physical units: dn * scale + offset, nodata (and masked SCL classes) -> NaN.

    ``scale``/``offset`` are numbers, or arrays with one value per date of the whole cube."""
    if isinstance(scale, np.ndarray):
        start, stop = block_info[0]["array-location"][0]
        scale = scale[start:stop].astype(out_dtype)[:, None, None]
        offset = offset[start:stop].astype(out_dtype)[:, None, None]
        out = np.multiply(dn, scale, dtype=out_dtype)
        out += offset
    else:
        out = np.multiply(dn, out_dtype.type(scale), dtype=out_dtype)
        out += out_dtype.type(offset)
    if nodata is not None and not np.isnan(nodata):
        np.copyto(out, np.nan, where=dn == nodata)
    if scl is not None:
        np.copyto(out, np.nan, where=np.isin(scl, masked))
    return out


def _scl_key(view: dict, profile: Any) -> str | None:
    """The item's SCL asset (by the profile, by key or by role), None if its mask is not SCL."""
    key = getattr(profile, "mask", None) or profiles_mod.mask_asset(view)
    if not key or key not in (view.get("assets") or {}):
        return None
    if profiles_mod.is_qa_pixel(key, view["assets"][key]):
        return key  # read as the SCL classes it means (qa_pixel_to_scl)
    classes = {c.get("name") for c in view["assets"][key].get("classification:classes") or []}
    return key if key.split("_")[0].lower() == "scl" or "cloud_high_probability" in classes else None


def _profiles(views: list[dict], profile: Any) -> list:
    """Each item's profile, looked up once per provider (a lookup may read the catalogue configuration)."""
    by_provider: dict = {}
    out = []
    for view in views:
        provider = _provider(view)
        if provider not in by_provider:
            by_provider[provider] = _profile_for(provider, profile)
        out.append(by_provider[provider])
    return out


def carries_scl(items: Any, profile: Any = None) -> bool:
    """True when every item has an SCL asset (or Landsat's QA_PIXEL, read as SCL classes): what
    ``mask="auto"`` masks clouds with."""
    views = [_view(entry) for entry in _as_entries(items)]
    return all(_scl_key(view, prof) for view, prof in zip(views, _profiles(views, profile)))


def has_bands(items: Any, bands: Sequence[str], profile: Any = None) -> bool:
    """True when every item has an asset for each of ``bands`` (names as :func:`load_cube` takes them)."""
    views = [_view(entry) for entry in _as_entries(items)]
    return all(profiles_mod.resolve_band(view, band, prof) is not None
               for view, prof in zip(views, _profiles(views, profile)) for band in bands)


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
    profile: Any = None,
    geobox: Any = None,
    resampling: str = "nearest",
):
    """A lazy cube (xarray Dataset of dask arrays) of ``items`` in physical units.

    items: an ItemSearch, ItemCollection, or list of pystac Items / STAC item dicts, from any provider.
    bands: what to load, by meaning or by key: common names (``blue``, ``green``, ``red``,
        ``rededge1``, ``nir``, ``nir08``, ``swir16``, ``swir22``), Sentinel-2 band names (``B04``),
        the mask (``SCL``/``scl``) or any provider's asset key. Variables are named as asked.
        Default: every single-band reflectance asset (by asset key).
    mask: "scl" masks pixels whose SCL class is in ``mask_classes`` (default: no data, defective,
        cloud shadow, medium/high-probability cloud, cirrus); "auto" does so when items have SCL;
        None keeps every pixel. Nodata is always NaN.
    profile: a member id, a :class:`eolab.config.ProviderProfile` (or dict) for items whose metadata
        lacks band names or scaling; default: the profile of each item's member in the configuration.
    resolution, crs, bbox (lon/lat), chunks, groupby: passed to ``odc.stac.load``; chunks default to
        ``DEFAULT_CHUNKS`` (one date, 1024 × 1024 px).
    geobox: an ``odc.geo`` GeoBox to load onto instead of ``resolution``, ``crs`` and ``bbox`` (e.g.
        one whose chunks fall on the images' own blocks, so no block is decoded twice).
    resampling: passed to ``odc.stac.load`` (e.g. "bilinear" for an elevation model, whose slopes
        nearest-neighbour copies would turn into steps).

    Values: DN × scale + offset from the items' metadata (``raster:bands`` or STAC 1.1
    ``raster:scale``/``raster:offset``), else the profile, else the Sentinel-2 L2A convention
    (× 0.0001, −0.1 from processing baseline 04.00 on); each variable's attrs say which.
    """
    import dask.array
    import odc.stac
    import pystac
    import xarray as xr

    from eolab.data import access

    if mask not in ("auto", "scl", None):
        raise EolabError(f"mask={mask!r} is not known", hint="use 'scl', 'auto' or None")
    entries = _as_entries(items)
    _check_one_collection(entries)
    views = [_view(entry) for entry in entries]
    providers = [_provider(view) for view in views]
    profiles = _profiles(views, profile)

    _check_arguments(views, resolution=resolution, crs=crs, bbox=bbox, groupby=groupby, dtype=dtype, geobox=geobox,
                     chunks=chunks)
    if isinstance(bands, str):
        bands = [bands]  # one band by name, not its letters
    if bands:
        bands = list(bands)
    else:
        bands = profiles_mod.default_bands(views[0])
        if not bands:
            raise EolabError(f"item {views[0].get('id')} (provider {providers[0]!r}) has no asset recognised "
                             "as a reflectance band", hint="name the bands (bands=['red', 'nir']) or map them "
                                                            "in the member's 'profile: bands:'")
    scl_keys = [_scl_key(view, prof) for view, prof in zip(views, profiles)]
    has_scl = all(scl_keys)
    use_scl = mask == "scl" or (mask == "auto" and has_scl)
    if use_scl and not has_scl:
        missing = [v.get("id") for v, k in zip(views, scl_keys) if not k][:3]
        raise EolabError(f"mask='scl' needs an SCL asset, missing in items {missing}", hint="use mask=None")
    if mask == "auto" and not has_scl and any(scl_keys):
        lacking = [v.get("id") for v, k in zip(views, scl_keys) if not k]
        warnings.warn(f"{len(lacking)} of {len(views)} items have no cloud mask (e.g. {lacking[:3]}): mask='auto' "
                      "masks no clouds in any of them; pass mask='scl' without those items, or mask=None to "
                      "keep every pixel knowingly", stacklevel=2)
    mask_names = {b for b in bands if b.lower() in ("scl", "mask", "qa_pixel")}
    qa_masks = {profiles_mod.is_qa_pixel(k, v["assets"][k]) for v, k in zip(views, scl_keys) if k}
    if len(qa_masks) > 1:
        raise EolabError("the items mix SCL and Landsat QA_PIXEL masks", hint="load each sensor's items separately")
    from_qa = qa_masks == {True}
    keys = []  # per item: variable name -> asset key
    for view, prof, provider, scl_key in zip(views, profiles, providers, scl_keys):
        chosen = {}
        for band in bands:
            key = scl_key if band in mask_names and scl_key else profiles_mod.resolve_band(view, band, prof)
            if key is None:
                raise profiles_mod.missing_band_error(view, band, provider)
            chosen[band] = key
        if use_scl and not mask_names:
            chosen[SCL_BAND] = scl_key
        keys.append(chosen)
    to_read = list(keys[0])
    data_bands = [b for b in bands if b not in mask_names]
    infos = {band: _band_info(views, keys, band, profiles) for band in data_bands}
    # (nearest only: another resampling would round interpolated values to whole DNs)
    native = {band: _native_values(infos[band]) for band in data_bands} if resampling == "nearest" else {}
    scl_name = sorted(mask_names)[0] if mask_names else SCL_BAND
    if native and not from_qa and scl_name in keys[0] and \
            all(infos[b]["source"] == "sentinel-2 convention" for b in data_bands):
        native[scl_name] = {"data_type": "uint8", "nodata": 0}  # Sen2Cor's SCL (0: no data)
    items = [_lean_item(view, chosen, native) for view, chosen in zip(views, keys)]
    if isinstance(mask_classes, str):
        mask_classes = [c for c in mask_classes.replace(",", " ").split() if c]
    try:
        mask_classes = tuple(int(c) for c in (mask_classes if isinstance(mask_classes, Iterable) else [mask_classes]))
    except (TypeError, ValueError):
        raise EolabError(f"mask_classes={mask_classes!r} are not class numbers", hint="e.g. [3, 8, 9, 10]") from None
    dtype = np.dtype(dtype)

    for key, value in _GDAL_ENV.items():
        os.environ.setdefault(key, value)
    driver = access.reader_driver(views, providers, profiles)
    _check_plan(views, resolution=resolution, crs=crs, bbox=bbox, chunks=chunks, geobox=geobox)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Supplied chunks.*")
        where = ({"geobox": geobox} if geobox is not None
                 else {"resolution": resolution, "crs": crs, "bbox": bbox})
        raw = odc.stac.load(
            items, bands=to_read, groupby=groupby, **where,
            chunks=chunks or dict(DEFAULT_CHUNKS), fail_on_error=True, progress=None, resampling=resampling,
            **({"driver": driver} if driver is not None else {}),
        )

    _check_size(raw, chunks)
    cube = raw[bands].copy()
    mask_var = raw[scl_name] if (use_scl or mask_names) else None
    if from_qa and mask_var is not None:
        mask_var = mask_var.copy(data=mask_var.data.map_blocks(qa_pixel_to_scl, dtype=np.uint8))
        mask_var.attrs = {"description": "Landsat QA_PIXEL bits as Sen2Cor SCL classes (eolab.data.load.qa_pixel_to_scl)",
                          "asset": keys[0][scl_name] if scl_name in keys[0] else None}
    scl = mask_var.data if use_scl else None
    for band in data_bands:
        info = infos[band]
        # One fused pass per chunk (scale, offset, nodata and clouds -> NaN) instead of a chain of
        # dask element-wise ops, each allocating a full-size temporary.
        args = (raw[band].data,) + ((scl,) if scl is not None else ())
        scale, offset = info["scale"], info["offset"]
        if not info["uniform"]:
            scale, offset = _per_date(raw.time.values, views, info["per_item"], band)
        data = dask.array.map_blocks(
            _to_physical, *args, dtype=dtype, scale=scale, offset=offset,
            nodata=info["nodata"], masked=mask_classes if scl is not None else None, out_dtype=dtype)
        cube[band] = xr.DataArray(data, dims=raw[band].dims, coords=raw[band].coords,
                                  attrs={"scale_applied": scale if info["uniform"] else scale.tolist(),
                                         "offset_applied": offset if info["uniform"] else offset.tolist(),
                                         "nodata": info["nodata"], "values_from": info["source"],
                                         "asset": keys[0][band]})
    if use_scl:
        cloudy = mask_var.isin(list(mask_classes))
        cube["clear"] = ~cloudy
        cube["clear"].attrs = {"description": "pixel not masked by " + ("QA_PIXEL (as SCL)" if from_qa else "SCL"),
                               "masked_scl_classes": list(mask_classes)}
    for name in mask_names:
        # class codes stay integers; a QA_PIXEL asked for by that name keeps its bits (uint16: read
        # without a stated data type it comes as float, NaN where nothing was read, i.e. fill = 1)
        if from_qa and name.lower() == "qa_pixel":
            cube[name] = raw[name].fillna(1).astype("uint16") if raw[name].dtype.kind == "f" else raw[name]
        else:
            cube[name] = mask_var if from_qa else raw[name]
    # Provenance from the caller's items (self links etc.), not the lean copies.
    records = [entry if isinstance(entry, pystac.Item) else item for entry, item in zip(entries, items)]
    cube.attrs["eolab:provenance"] = provenance.for_cube(
        records, bands=bands, resolution=resolution if geobox is None else abs(geobox.resolution.x),
        crs=str(cube.odc.crs),
        mask=(("qa_pixel" if from_qa else "scl") if use_scl else None),
        mask_classes=list(mask_classes) if use_scl else [], groupby=groupby)
    cube.attrs["crs"] = str(cube.odc.crs)
    cube.attrs["eolab:read"] = _read_plan(raw, to_read, providers, profiles)
    return cube


def _read_plan(raw, to_read: list[str], providers: list, profiles: list) -> dict:
    """What computing the cube will read: assets, decoded pixels and bytes, per provider."""
    per_provider: dict[str, dict] = {}
    for provider, profile in zip(providers, profiles):
        entry = per_provider.setdefault(str(provider), {"assets": 0, "rate_mb_s": getattr(profile, "rate_mb_s", None),
                                                        "monthly_quota_gb": getattr(profile, "monthly_quota_gb", None),
                                                        "max_connections": getattr(profile, "max_connections", None)})
        entry["assets"] += len(to_read)
    ny, nx = raw.odc.geobox.shape
    pixels = int(raw.sizes.get("time", 1)) * ny * nx
    decoded = sum(pixels * raw[band].dtype.itemsize for band in to_read)
    tasks = sum(int(np.prod(raw[band].data.numblocks)) for band in to_read)
    return {"assets": sum(e["assets"] for e in per_provider.values()), "chunk_reads": tasks,
            "pixels": pixels * len(to_read), "bytes_decoded": int(decoded), "providers": per_provider}


def read_estimate(cube: Any) -> dict:
    """Before computing ``cube``: assets, chunk reads and bytes it will read (decoded size: an upper
    bound of the transfer for compressed COGs), and per provider the time at its ``rate_mb_s`` and
    the share of its ``monthly_quota_gb`` (from the member profile) where those are known."""
    plan = dict(cube.attrs.get("eolab:read") or {})
    if not plan:
        raise EolabError("this cube carries no read plan", hint="make it with eolab.load_cube")
    total_assets = max(plan["assets"], 1)
    out = {k: plan[k] for k in ("assets", "chunk_reads", "pixels", "bytes_decoded")}
    out["providers"] = {}
    for provider, entry in plan["providers"].items():
        share = plan["bytes_decoded"] * entry["assets"] / total_assets
        info = {"assets": entry["assets"], "bytes_decoded": int(share)}
        if entry.get("rate_mb_s"):
            info["seconds_at_rate"] = round(share / (entry["rate_mb_s"] * 1e6), 1)
        if entry.get("monthly_quota_gb"):
            info["share_of_monthly_quota"] = round(share / (entry["monthly_quota_gb"] * 1e9), 4)
        out["providers"][provider] = info
    return out


def lonlat_bounds(cube: Any) -> list[float]:
    """[west, south, east, north] of a cube's grid in WGS84."""
    bb = cube.odc.geobox.extent.to_crs("EPSG:4326").boundingbox
    return [round(bb.left, 6), round(bb.bottom, 6), round(bb.right, 6), round(bb.top, 6)]
