"""Landsat Collection 2 Level-2 look-alike of the demo scene (the ``landsat-like`` member).

The same rendered surface as each Sentinel-2 date (same clouds, snow, shadow and noise), seen the
way Landsat 8/9 OLI products are published by the USGS (after the recorded real item
``../shared/data/stac-real/odc-stac/LC08_L2SP_..._SR.json``):

- one scene per date (a WRS-2 path/row covers the whole demo area), 30 m pixels: each the mean of
  the 3 × 3 rendered 10 m pixels (the demo's edge beyond a whole 30 m pixel is left out);
- bands blue, green, red, nir08 (OLI B5 ≈ Sentinel-2 B8A), swir16, swir22 as uint16 DN with the
  Collection 2 Level-2 scaling (reflectance = DN × 0.0000275 − 0.2, nodata 0), which the items do
  not state (no ``raster:bands``, as the USGS items): readers must know the convention;
- ``qa_pixel``: the Collection 2 QA bit field (bit 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud,
  4 cloud shadow, 5 snow, 6 clear, 7 water, 8–15 confidences) made from that date's Sentinel-2
  SCL, errors included, so Landsat's mask misses and invents what the SCL does: a 30 m pixel is
  cloud (high-probability SCL 9: bit 3; medium SCL 8: the dilated-cloud bit 1), cirrus or shadow
  where any of its 10 m parts is; snow or water where most are.

The asset keys, ``eo:bands`` (``B2`` … with common names), roles and ``landsat:*`` properties are
the USGS item's; the coastal band and the thermal (ST) bands are not rendered.
"""

from __future__ import annotations

import numpy as np

from eolab.demo._common import EPSG, RES, Grid

LANDSAT_ID = "landsat-c2-l2"
SCALE, OFFSET = 0.0000275, -0.2  # Collection 2 Level-2 surface reflectance
K = 3  # 10 m pixels per 30 m pixel edge
WRS_PATH, WRS_ROW = 187, 27  # the Tisza reservoir's path/row
#: asset key -> (OLI band, Sentinel-2 band it is rendered from, centre wavelength µm)
BANDS = {"blue": ("B2", "B02", 0.48), "green": ("B3", "B03", 0.56), "red": ("B4", "B04", 0.65),
         "nir08": ("B5", "B8A", 0.86), "swir16": ("B6", "B11", 1.6), "swir22": ("B7", "B12", 2.2)}
#: QA_PIXEL bits (Landsat Collection 2 Level-2 Science Product Guide)
FILL, DILATED, CIRRUS, CLOUD, SHADOW, SNOW, CLEAR, WATER = (1 << b for b in range(8))
CONF_HIGH = {"cloud": 3 << 8, "shadow": 3 << 10, "snow": 3 << 12, "cirrus": 3 << 14}
CONF_LOW = {"cloud": 1 << 8, "shadow": 1 << 10, "snow": 1 << 12, "cirrus": 1 << 14}
BITFIELDS = [
    {"name": "fill", "offset": 0, "length": 1}, {"name": "dilated_cloud", "offset": 1, "length": 1},
    {"name": "cirrus", "offset": 2, "length": 1}, {"name": "cloud", "offset": 3, "length": 1},
    {"name": "cloud_shadow", "offset": 4, "length": 1}, {"name": "snow", "offset": 5, "length": 1},
    {"name": "clear", "offset": 6, "length": 1}, {"name": "water", "offset": 7, "length": 1},
]


def size(grid: Grid) -> int:
    return grid.n // K


def transform(grid: Grid):
    from affine import Affine

    t = grid.transform
    return Affine(RES * K, 0.0, t.c, 0.0, -RES * K, t.f)


def _blocks(a: np.ndarray, m: int) -> np.ndarray:
    """(..., m, K, m, K) view of the top-left m*K × m*K pixels."""
    *lead, _, _ = a.shape
    return a[..., : m * K, : m * K].reshape(*lead, m, K, m, K)


def reflectance_dn(refl10: dict[str, np.ndarray], m: int) -> np.ndarray:
    """(6, m, m) uint16 DN of the 30 m means of the rendered 10 m reflectance (``refl10``: S2 band -> array)."""
    out = np.empty((len(BANDS), m, m), np.uint16)
    for k, (_, s2, _) in enumerate(BANDS.values()):
        mean = _blocks(refl10[s2], m).mean(axis=(-3, -1), dtype=np.float64)
        out[k] = np.clip(np.rint((mean - OFFSET) / SCALE), 1, 65535).astype(np.uint16)
    return out


def qa_pixel(scl20: np.ndarray, m: int) -> np.ndarray:
    """(m, m) uint16 QA_PIXEL from the 20 m SCL (each 20 m class repeated onto its 10 m pixels)."""
    scl10 = np.repeat(np.repeat(scl20, 2, axis=0), 2, axis=1)
    parts = _blocks(scl10, m).transpose(0, 2, 1, 3).reshape(m, m, K * K)

    def share(*codes):
        return np.isin(parts, codes).mean(-1)

    fill = share(0) > 0
    cloud, cirrus, shadow = share(8, 9) > 0, share(10) > 0, share(3) > 0
    high = share(9) > 0
    snow, water = share(11) > 0.5, share(6) > 0.5
    u16 = np.uint16
    qa = np.zeros((m, m), u16)
    # high-probability cloud (SCL 9) is CFMask's cloud (bit 3, high confidence); medium probability
    # (SCL 8) only its dilated edge (bit 1, medium confidence): real QA never sets bit 3 at medium
    qa |= np.where(high, CLOUD | CONF_HIGH["cloud"], np.where(cloud, DILATED | 2 << 8, CONF_LOW["cloud"])).astype(u16)
    qa |= np.where(cirrus, CIRRUS | CONF_HIGH["cirrus"], CONF_LOW["cirrus"]).astype(u16)
    qa |= np.where(shadow, SHADOW | CONF_HIGH["shadow"], CONF_LOW["shadow"]).astype(u16)
    qa |= np.where(snow, SNOW | CONF_HIGH["snow"], CONF_LOW["snow"]).astype(u16)
    qa |= np.where(water & ~cloud, WATER, 0).astype(u16)
    # clear: neither cloud nor dilated cloud (the guide's definition; cirrus and shadow may be clear)
    qa |= np.where(~cloud, CLEAR, 0).astype(u16)
    qa[fill] = FILL
    return qa


def item_id(acq) -> str:
    sensor = "LC09" if acq.index % 2 == 0 else "LC08"
    return f"{sensor}_L2SP_{WRS_PATH:03d}{WRS_ROW:03d}_{acq.date:%Y%m%d}_{acq.date:%Y%m%d}_02_T1"


def item(acq, grid: Grid, cloud_cover: float, sun: tuple[float, float]) -> dict:
    from eolab.demo._stac import _footprint, wgs84_bbox

    iid = item_id(acq)
    m = size(grid)
    t = transform(grid)
    x0, y1 = t.c, t.f
    bounds = (x0, y1 - m * t.a, x0 + m * t.a, y1)
    geo = {"proj:shape": [m, m], "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f]}
    assets = {}
    for key, (oli, _, wl) in BANDS.items():
        roles = ["data"] + (["reflectance"] if key in ("nir08", "swir16", "swir22") else [])
        assets[key] = {"href": f"landsat/{iid}/{iid}_SR_{oli}.TIF",
                       "type": "image/vnd.stac.geotiff; cloud-optimized=true",
                       "title": f"{key.capitalize()} Band ({oli}) Surface Reflectance", "roles": roles,
                       "eo:bands": [{"name": oli, "common_name": key, "gsd": 30, "center_wavelength": wl}], **geo}
    assets["qa_pixel"] = {"href": f"landsat/{iid}/{iid}_QA_PIXEL.TIF",
                          "type": "image/vnd.stac.geotiff; cloud-optimized=true",
                          "title": "Pixel Quality Assessment Band", "roles": ["cloud", "cloud-shadow", "snow-ice",
                                                                            "water-mask"], **geo}
    sensor = iid[:4]
    props = {
        "datetime": acq.datetime.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "platform": "LANDSAT_9" if sensor == "LC09" else "LANDSAT_8", "instruments": ["OLI", "TIRS"],
        "eo:cloud_cover": round(float(cloud_cover), 2), "landsat:cloud_cover_land": round(float(cloud_cover), 2),
        "view:sun_elevation": round(sun[0], 2), "view:sun_azimuth": round(sun[1], 2), "view:off_nadir": 0,
        "landsat:wrs_type": "2", "landsat:wrs_path": f"{WRS_PATH:03d}", "landsat:wrs_row": f"{WRS_ROW:03d}",
        "landsat:scene_id": f"{sensor[:2]}{sensor[3]}{WRS_PATH:03d}{WRS_ROW:03d}{acq.date:%Y%j}LGN00",
        "landsat:collection_category": "T1", "landsat:collection_number": "02", "landsat:correction": "L2SP",
        "proj:epsg": EPSG, "proj:shape": [m, m], "proj:transform": geo["proj:transform"],
    }
    return {
        "type": "Feature", "stac_version": "1.0.0",
        "stac_extensions": ["https://landsat.usgs.gov/stac/landsat-extension/v1.1.1/schema.json",
                            "https://stac-extensions.github.io/view/v1.0.0/schema.json",
                            "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
                            "https://stac-extensions.github.io/eo/v1.0.0/schema.json"],
        "id": iid, "collection": LANDSAT_ID, "bbox": wgs84_bbox(bounds), "geometry": _footprint(bounds),
        "properties": props, "assets": assets, "links": [],
    }


def collection(grid: Grid, dates) -> dict:
    from eolab.demo._stac import demo_collection, wgs84_bbox

    def stamp(acq):
        return acq.datetime.strftime("%Y-%m-%dT%H:%M:%SZ")

    return demo_collection(
        LANDSAT_ID, "Landsat Collection 2 Level-2 (synthetic demo look-alike)",
        "The demo scene's Sentinel-2 dates seen as Landsat 8/9 OLI Collection 2 Level-2 surface "
        "reflectance (30 m, QA_PIXEL bit mask), in the USGS item layout. Generated by eolab.demo; "
        "not real USGS data. DN to reflectance: DN * 0.0000275 - 0.2 (not stated in the items).",
        ["landsat", "c2", "l2", "synthetic", "demo"], wgs84_bbox(grid.bounds), [stamp(dates[0]), stamp(dates[-1])],
        {"platform": ["LANDSAT_8", "LANDSAT_9"], "instruments": ["OLI", "TIRS"], "gsd": [30],
         "eo:bands": [{"name": oli, "common_name": key, "center_wavelength": wl}
                      for key, (oli, _, wl) in BANDS.items()]},
        {**{key: {"type": "image/vnd.stac.geotiff; cloud-optimized=true", "roles": ["data"],
                  "eo:bands": [{"name": oli, "common_name": key, "center_wavelength": wl}]}
            for key, (oli, _, wl) in BANDS.items()},
         "qa_pixel": {"type": "image/vnd.stac.geotiff; cloud-optimized=true",
                      "roles": ["cloud", "cloud-shadow", "snow-ice", "water-mask"],
                      "classification:bitfields": BITFIELDS}})
