"""Bands by meaning and values in physical units, whatever a provider calls its assets.

Pure functions over STAC item dicts. Each provider names Sentinel-2 bands its own way (the demo
and Planetary Computer ``B04``, Earth Search v1 ``red``, CDSE ``B04_10m``), writes scale and offset
in a different place (``raster:bands``, STAC 1.1 ``raster:scale`` on the asset or its ``bands``, or
nowhere) and marks the cloud mask differently. :func:`resolve_band` finds the asset for a common
name (``red``, ``nir``, ``rededge1``, ...), a Sentinel-2 band name (``B04``) or a provider asset key;
:func:`band_values` says how its numbers become physical units, reading in this order: the item's
metadata, the member's profile (``profile:`` in the catalogue configuration), then the
Sentinel-2 L2A convention (DN × 0.0001, minus 0.1 from processing baseline 04.00 on) or the
Landsat Collection 2 Level-2 one (DN × 0.0000275 − 0.2).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from eolab.errors import EolabError

# Common names (STAC eo) with their Sentinel-2 MSI band and centre wavelength (µm).
COMMON_BANDS: dict[str, tuple[str, float]] = {
    "coastal": ("B01", 0.443), "blue": ("B02", 0.49), "green": ("B03", 0.56), "red": ("B04", 0.665),
    "rededge1": ("B05", 0.704), "rededge2": ("B06", 0.74), "rededge3": ("B07", 0.783),
    "nir": ("B08", 0.842), "nir08": ("B8A", 0.865), "nir09": ("B09", 0.945),
    "swir16": ("B11", 1.61), "swir22": ("B12", 2.19),
}
S2_TO_COMMON = {s2: name for name, (s2, _) in COMMON_BANDS.items()}
# Other spellings of the same bands (eo v2 names red edge by wavelength).
ALIASES = {"rededge071": "rededge1", "rededge075": "rededge2", "rededge078": "rededge3", "nir08": "nir08"}
MASK_NAMES = ("scl", "mask", "cloud", "qa_pixel")
S2_OFFSET_BASELINE = (4, 0)
S2_OFFSET_SINCE = dt.date(2022, 1, 25)  # processing baseline 04.00 went operational
S2_SCALE, S2_OFFSET = 0.0001, -0.1
LANDSAT_SCALE, LANDSAT_OFFSET = 0.0000275, -0.2  # Collection 2 Level-2 surface reflectance
#: bands Sentinel-2 has and Landsat OLI has not (what their indices cannot be made from)
NOT_ON_LANDSAT = ("rededge1", "rededge2", "rededge3", "nir09")


@dataclass(frozen=True)
class BandValues:
    """How an asset's numbers become physical units, and where that came from."""

    scale: float
    offset: float
    nodata: float | None
    source: str  # "metadata", "profile", "sentinel-2 convention", "none"


def _assets(item: dict) -> dict[str, dict]:
    return item.get("assets") or {}


def _band_entries(asset: dict) -> list[dict]:
    """The asset's band descriptions: STAC 1.1 ``bands`` or eo ``eo:bands``."""
    return list(asset.get("bands") or asset.get("eo:bands") or [])


def _common_of(key: str, asset: dict) -> str | None:
    """The canonical common name of a single-band asset, or None."""
    entries = _band_entries(asset)
    if len(entries) > 1:
        return None  # a composite (visual/TCI)
    if entries:
        band = entries[0]
        name = band.get("eo:common_name") or band.get("common_name")
        name = ALIASES.get(name, name)
        wavelength = band.get("eo:center_wavelength") or band.get("center_wavelength")
        if name in ("rededge", "nir", None) and wavelength:
            # "rededge" names three bands (and Planetary Computer calls B8A one): the wavelength tells.
            nearest = min(COMMON_BANDS, key=lambda n: abs(COMMON_BANDS[n][1] - float(wavelength)))
            if abs(COMMON_BANDS[nearest][1] - float(wavelength)) < 0.012:
                return nearest
        if name in COMMON_BANDS:
            return name
        if name and str(name).startswith(("lwir", "tir")):
            return None  # a thermal band (Landsat's B10/B11): not Sentinel-2's B11 whatever its name
        s2 = S2_TO_COMMON.get(str(band.get("name", "")).upper())
        if s2:
            return s2
    base = key.split("_")[0]
    if base.upper() in S2_TO_COMMON:
        return S2_TO_COMMON[base.upper()]
    if base.lower() in COMMON_BANDS:
        return base.lower()
    return None


def _gsd(asset: dict) -> float:
    if asset.get("gsd"):
        return float(asset["gsd"])
    for band in asset.get("raster:bands") or []:
        if band.get("spatial_resolution"):
            return float(band["spatial_resolution"])
    match = re.search(r"_(\d+)m$", asset.get("title", "") or "")
    return float(match.group(1)) if match else 0.0


def _rank(key: str, asset: dict) -> tuple:
    """Prefer the band at its native sampling, then the finest one, then COGs over JPEG2000 copies."""
    roles = asset.get("roles") or []
    return ("sampling:original" not in roles, "-jp2" in key, _gsd(asset) or 1e9, key)


def _is_mask(key: str, asset: dict) -> bool:
    roles = set(asset.get("roles") or [])
    base = key.split("_")[0].split("-")[0].lower()
    return (base in ("scl", "fmask") or is_qa_pixel(key, asset)
            or bool(roles & {"cloud", "cloud-shadow"}) and not _band_entries(asset))


def is_qa_pixel(key: str, asset: dict) -> bool:
    """A Landsat Collection 2 QA_PIXEL bit field (by key, or by its bit-field description)."""
    names = {f.get("name") for f in asset.get("classification:bitfields") or []}
    return key.lower() in ("qa_pixel", "qa-pixel") or {"cloud", "cloud_shadow", "dilated_cloud"} <= names


def mask_asset(item: dict) -> str | None:
    """The asset key of the item's cloud/quality mask (SCL, QA_PIXEL): by key or by role; SCL and
    QA_PIXEL before masks known by role only (Landsat 4–7 items also carry SR_CLOUD_QA, a mask of
    another bit layout)."""
    assets = _assets(item)
    found = [k for k, a in assets.items() if _is_mask(k, a)]

    def order(key: str) -> tuple:
        known = key.split("_")[0].lower() == "scl" or is_qa_pixel(key, assets[key])
        return (not known, _rank(key, assets[key]))

    return min(found, key=order) if found else None


def resolve_band(item: dict, band: str, profile: Any = None) -> str | None:
    """The asset key that holds ``band`` in ``item`` (None when it has none).

    ``band``: an asset key, a common name (``red``, ``rededge1``, ``rededge071``), a Sentinel-2 band
    name (``B04``), or a mask name (``SCL``, ``scl``, ``mask``).
    """
    assets = _assets(item)
    if band in assets:
        return band
    mapped = (getattr(profile, "bands", None) or {}).get(band)
    if mapped and mapped in assets:
        return mapped
    if band.lower() in MASK_NAMES or band.upper() == "SCL":
        return mask_asset(item)
    wanted = ALIASES.get(band, band)
    wanted = S2_TO_COMMON.get(wanted.upper(), wanted) if wanted not in COMMON_BANDS else wanted
    if wanted not in COMMON_BANDS:
        lowered = {k.lower(): k for k in assets}
        return lowered.get(band.lower())
    found = [k for k, a in assets.items() if _common_of(k, a) == wanted]
    if not found and wanted == "nir":  # Landsat's only NIR band is nir08
        found = [k for k, a in assets.items() if _common_of(k, a) == "nir08"]
    return min(found, key=lambda k: _rank(k, assets[k])) if found else None


def default_bands(item: dict) -> list[str]:
    """Every spectral band of ``item``, one asset per band (by common name), named by asset key;
    items without spectral bands (SAR): every single-band data asset but the mask."""
    best: dict[str, str] = {}
    others = []
    for key, asset in _assets(item).items():
        roles = set(asset.get("roles") or [])
        if roles & {"metadata", "thumbnail", "overview", "visual", "tiles"} or _is_mask(key, asset):
            continue
        name = _common_of(key, asset)
        if name is None:
            if "data" in roles and len(_band_entries(asset)) <= 1:
                others.append(key)
            continue
        if name not in best or _rank(key, asset) < _rank(best[name], _assets(item)[best[name]]):
            best[name] = key
    return list(best.values()) if best else others


def _baseline(item: dict) -> tuple[int, int] | None:
    props = item.get("properties") or {}
    text = props.get("s2:processing_baseline") or props.get("processing:version")
    if not text:
        match = re.search(r"_N(\d\d)(\d\d)_", item.get("id", ""))
        text = f"{match.group(1)}.{match.group(2)}" if match else None
    if not text:
        return None
    try:
        major, minor = str(text).split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return None


def _item_date(item: dict) -> dt.date | None:
    props = item.get("properties") or {}
    stamp = props.get("datetime") or props.get("start_datetime")
    try:
        return dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).date()
    except ValueError:
        return None


def is_sentinel2_l2a(item: dict) -> bool:
    props = item.get("properties") or {}
    text = " ".join(str(v) for v in (item.get("collection"), props.get("s2:product_type"),
                                     props.get("product:type"), props.get("constellation"),
                                     props.get("platform"), item.get("id"))).lower()
    return ("sentinel-2" in text or "s2" in text) and ("l2a" in text or "msi2a" in text)


def is_landsat(item: dict) -> bool:
    props = item.get("properties") or {}
    text = " ".join(str(v) for v in (item.get("collection"), props.get("platform"), item.get("id"))).lower()
    return "landsat" in text or bool(re.match(r"L[COTEM]0\d_", str(item.get("id", ""))))


def sensor_name(items: Any) -> str:
    """What plots and tables call the optical sensor of ``items`` (STAC dicts or pystac Items):
    "Landsat", "Sentinel-2", else the collection's id."""
    names = set()
    for item in items:
        view = item if isinstance(item, dict) else item.to_dict(transform_hrefs=False)
        props = view.get("properties") or {}
        text = f"{view.get('collection')} {props.get('constellation')} {props.get('platform')}".lower()
        names.add("Landsat" if is_landsat(view) else "Sentinel-2" if "sentinel-2" in text
                  else str(view.get("collection")))
    return " + ".join(sorted(names)) or "optical"


def is_landsat_c2_l2(item: dict) -> bool:
    """Landsat Collection 2 Level-2 (surface reflectance): by ``landsat:`` properties, else by name."""
    props = item.get("properties") or {}
    if not is_landsat(item):
        return False
    if props.get("landsat:collection_number") is not None:
        return str(props["landsat:collection_number"]).lstrip("0") == "2" and \
            str(props.get("landsat:correction", "L2")).upper().startswith("L2")
    text = f"{item.get('collection')} {item.get('id')}".lower()
    return ("c2" in text and "l2" in text) or "_l2sp_" in text


def sentinel2_offset(item: dict) -> float:
    """-0.1 for processing baseline 04.00 and later (by the baseline, else by the acquisition date)."""
    props = item.get("properties") or {}
    if props.get("earthsearch:boa_offset_applied") is True:
        return 0.0  # Earth Search says its offset is in the data: nothing more to subtract
    baseline = _baseline(item)
    if baseline is not None:
        return S2_OFFSET if baseline >= S2_OFFSET_BASELINE else 0.0
    day = _item_date(item)
    return S2_OFFSET if day is not None and day >= S2_OFFSET_SINCE else 0.0


def _metadata_values(asset: dict) -> tuple[float | None, float | None, Any]:
    """scale, offset, nodata as the metadata states them (None: not stated)."""
    raster = (asset.get("raster:bands") or [{}])[0] or {}
    first = (asset.get("bands") or [{}])[0] or {}
    scale = asset.get("raster:scale", first.get("raster:scale", raster.get("scale")))
    offset = asset.get("raster:offset", first.get("raster:offset", raster.get("offset")))
    nodata = asset.get("nodata", first.get("nodata", raster.get("nodata")))
    return scale, offset, nodata


def band_values(item: dict, key: str, profile: Any = None) -> BandValues:
    """Scale, offset and nodata of asset ``key`` of ``item`` (see the module doc for the order)."""
    asset = _assets(item)[key]
    scale, offset, nodata = _metadata_values(asset)
    if scale is not None or offset is not None:
        return BandValues(float(1.0 if scale is None else scale), float(offset or 0.0), nodata, "metadata")
    if _is_mask(key, asset):
        return BandValues(1.0, 0.0, nodata, "none")
    p_scale = getattr(profile, "scale", None)
    if p_scale is not None:
        p_offset = getattr(profile, "offset", None)
        if p_offset is None and getattr(profile, "s2_baseline_offset", False):
            p_offset = sentinel2_offset(item)
        return BandValues(float(p_scale), float(p_offset or 0.0), nodata if nodata is not None else 0, "profile")
    if is_sentinel2_l2a(item) and _common_of(key, asset) is not None:
        return BandValues(S2_SCALE, sentinel2_offset(item), nodata if nodata is not None else 0,
                          "sentinel-2 convention")
    if is_landsat_c2_l2(item) and _common_of(key, asset) is not None:
        return BandValues(LANDSAT_SCALE, LANDSAT_OFFSET, nodata if nodata is not None else 0,
                          "landsat c2 l2 convention")
    return BandValues(1.0, 0.0, nodata, "none")


def missing_band_error(item: dict, band: str, provider: str | None) -> EolabError:
    keys = [k for k, a in _assets(item).items()
            if not set(a.get("roles") or []) & {"metadata", "thumbnail", "overview", "tiles"}]
    names = sorted({n for n in (_common_of(k, _assets(item)[k]) for k in keys) if n})
    where = f"provider {provider!r}" if provider else "its provider"
    wanted = S2_TO_COMMON.get(band.upper(), ALIASES.get(band, band))
    if is_landsat(item) and wanted in NOT_ON_LANDSAT:
        what = "red-edge bands" if wanted.startswith("rededge") else f"the {wanted} band"
        return EolabError(
            f"item {item.get('id')} ({where}) is Landsat, which has no {what} ({band!r} is a Sentinel-2 band): "
            "indices made from it (e.g. NDRE from red edge 1) cannot be computed from Landsat",
            hint="use a Sentinel-2 collection for red-edge indices; on Landsat ask for blue, green, red, nir08, "
                 "swir16, swir22 (nir08 is Landsat's near infrared)")
    return EolabError(
        f"item {item.get('id')} ({where}) has no asset for band {band!r}",
        hint=(f"its assets are: {', '.join(keys)}; common names found: {', '.join(names) or 'none'}. "
              f"Ask for one of those, or map the name in the member's 'profile: bands:' "
              f"in the catalogue configuration"))
