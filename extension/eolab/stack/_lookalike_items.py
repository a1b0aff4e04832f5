"""Demo items rewritten in the conventions of real providers (look-alike members).

The same demo scene, the same COGs, but named, scaled and linked the way each provider's items
are (after the recorded real items in ../shared/data/stac-real):

- ``earth-search`` (Earth Search v1): asset keys are common names (``red``, ``nir``, ``scl``), the
  band's ``eo:bands`` name is that key, scale and offset in ``raster:bands``; public http(s).
- ``planetary-computer``: ``B04``/``SCL`` keys, ``eo:bands`` with common names, no scale or offset
  anywhere (readers must know the Sentinel-2 convention and the baseline 04.00 offset); assets on
  blob-like storage that needs a SAS token.

- ``cdse`` (CDSE's STAC 1.1 layout, after eu-cdse/eometadatatool): keys carry the resolution
  (``B04_10m``, ``SCL_20m``), each asset has STAC 1.1 ``bands`` with ``eo:common_name`` and
  ``raster:scale``/``raster:offset``/``nodata``/``data_type`` on the asset itself, roles with
  ``sampling:original`` and ``gsd:NNm``, ``auth:refs``, ``processing:version`` instead of
  ``s2:processing_baseline``. (CDSE serves ``s3://eodata``; here the assets stay on http, behind
  the member's look-alike asset server with its connection cap.)

- ``landsat`` (the USGS Landsat Collection 2 Level-2 layout): the demo's ``landsat-c2-l2`` items are
  already written that way by the generator (eolab.demo._landsat: 30 m, ``blue`` … ``swir22`` keys,
  no scale or offset in the items, a QA_PIXEL bit mask), so they are served as they are.

Other items are left as they are (with the member's asset URL).
"""

from __future__ import annotations

import copy

from eolab.ids import PROVIDER_PROPERTY

STYLES = ("earth-search", "planetary-computer", "cdse", "landsat")
_ES_KEYS = {"B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
            "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B09": "nir09", "B11": "swir16", "B12": "swir22",
            "SCL": "scl"}


def _earth_search(item: dict) -> dict:
    assets = {}
    for key, asset in item["assets"].items():
        new_key = _ES_KEYS.get(key, key.lower())
        asset = copy.deepcopy(asset)
        for band in asset.get("eo:bands") or []:
            band["name"] = new_key
        if new_key == "scl":
            asset["roles"] = ["data", "reflectance"]  # as Earth Search labels it
        assets[new_key] = asset
    item["assets"] = assets
    item["properties"]["earthsearch:boa_offset_applied"] = True
    return item


def _planetary_computer(item: dict) -> dict:
    for asset in item["assets"].values():
        asset["roles"] = ["data"]
        for band in asset.get("raster:bands") or []:
            band.pop("scale", None)
            band.pop("offset", None)
        asset.pop("raster:bands", None)
    return item


def _cdse(item: dict) -> dict:
    assets = {}
    for key, asset in item["assets"].items():
        raster = (asset.pop("raster:bands", None) or [{}])[0]
        gsd = int(asset.get("gsd") or raster.get("spatial_resolution") or 10)
        new = {k: v for k, v in asset.items() if k != "eo:bands"}
        new["roles"] = [r for r in asset.get("roles") or [] if r != "cloud"] + ["sampling:original", f"gsd:{gsd}m"]
        bands = []
        for band in asset.get("eo:bands") or []:
            bands.append({"name": band["name"], "eo:common_name": band.get("common_name"),
                          "eo:center_wavelength": band.get("center_wavelength")})
        if bands:
            new["bands"] = bands
        for field in ("nodata", "data_type"):
            if field in raster:
                new[field] = raster[field]
        if "scale" in raster:
            new["raster:scale"] = raster["scale"]
            new["raster:offset"] = raster.get("offset", 0.0)
        if "classification:classes" in raster:
            new["classification:classes"] = raster["classification:classes"]
        new["auth:refs"] = ["s3"]
        assets[f"{key}_{gsd}m"] = new
    item["assets"] = assets
    item["stac_version"] = "1.1.0"
    props = item["properties"]
    props["processing:version"] = props.pop("s2:processing_baseline", "05.11")
    props["product:type"] = props.pop("s2:product_type", "S2MSI2A")
    return item


def restyle(item: dict, style: str, member_id: str) -> dict:
    """``item`` (a demo item with absolute hrefs) as ``style``'s provider would publish it."""
    if style not in STYLES:
        raise ValueError(f"look-alike style {style!r} is not known (known: {', '.join(STYLES)})")
    item = copy.deepcopy(item)
    item["properties"][PROVIDER_PROPERTY] = member_id
    if not str(item.get("collection", "")).startswith("sentinel-2"):
        return item
    if style == "landsat":
        return item  # only the demo's landsat-c2-l2 items are Landsat; Sentinel-2 items stay as they are
    return {"earth-search": _earth_search, "planetary-computer": _planetary_computer, "cdse": _cdse}[style](item)
