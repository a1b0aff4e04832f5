"""STAC 1.0.0 Collections and Items (projection v2.0.0, eo v1.1.0, raster v1.1.0, grid, sat, sar, view).

Asset hrefs are relative to the output directory; the catalogue server makes them absolute.
"""

from __future__ import annotations

from pyproj import Transformer

from eolab.demo._common import (
    DN_OFFSET,
    DN_SCALE,
    EPSG,
    RES,
    S1_NODATA,
    S2_BANDS,
    TILE,
    Grid,
)

EXT = {
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "grid": "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
    "sat": "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
    "sar": "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
    "view": "https://stac-extensions.github.io/view/v1.0.0/schema.json",
}
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
S2_ID, S1_ID = "sentinel-2-l2a", "sentinel-1-grd"
SCL_CLASSES = [
    {"value": 0, "name": "no_data"}, {"value": 1, "name": "saturated_or_defective"},
    {"value": 2, "name": "dark_area_pixels"}, {"value": 3, "name": "cloud_shadows"},
    {"value": 4, "name": "vegetation"}, {"value": 5, "name": "not_vegetated"}, {"value": 6, "name": "water"},
    {"value": 7, "name": "unclassified"}, {"value": 8, "name": "cloud_medium_probability"},
    {"value": 9, "name": "cloud_high_probability"}, {"value": 10, "name": "thin_cirrus"},
    {"value": 11, "name": "snow"},
]

_TO_WGS84 = Transformer.from_crs(EPSG, 4326, always_xy=True)


def wgs84_bbox(bounds) -> list[float]:
    x0, y0, x1, y1 = bounds
    xs, ys = _TO_WGS84.transform([x0, x1, x1, x0], [y0, y0, y1, y1])
    return [round(min(xs), 7), round(min(ys), 7), round(max(xs), 7), round(max(ys), 7)]


def _footprint(bounds) -> dict:
    x0, y0, x1, y1 = bounds
    xs, ys = _TO_WGS84.transform([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0])
    return {"type": "Polygon", "coordinates": [[[round(x, 7), round(y, 7)] for x, y in zip(xs, ys)]]}


def _eo_band(name):
    common, wl, gsd = S2_BANDS[name]
    return {"name": name, "common_name": common, "center_wavelength": wl}


def _tile_geo(grid: Grid, r: int, c: int, res: float) -> dict:
    t = grid.tile_transform(r, c, res)
    k = int(TILE * RES / res)
    return {"proj:shape": [k, k], "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f]}


def _common_props(acq, grid, r, c, gid):
    b = grid.tile_bounds(r, c)
    return {
        "datetime": acq.datetime.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "platform": acq.platform,
        "proj:code": f"EPSG:{EPSG}",
        "proj:epsg": EPSG,
        "proj:bbox": list(b),
        "grid:code": f"EOLAB-{gid}",
    }, b


def s2_item_id(acq, gid: str) -> str:
    return f"S2{acq.platform[-1].upper()}_MSIL2A_{acq.date:%Y%m%d}_{gid}"


def s1_item_id(acq, gid: str) -> str:
    return f"S1{acq.platform[-1].upper()}_IW_GRDH_{acq.date:%Y%m%d}_{gid}"


def s2_item(acq, grid: Grid, r: int, c: int, gid: str, cloud_cover: float, sun: tuple[float, float]) -> dict:
    iid = s2_item_id(acq, gid)
    props, b = _common_props(acq, grid, r, c, gid)
    props.update({
        "constellation": "sentinel-2", "instruments": ["msi"], "gsd": 10,
        "eo:cloud_cover": round(float(cloud_cover), 2),
        "view:sun_elevation": round(sun[0], 2), "view:sun_azimuth": round(sun[1], 2),
        "s2:processing_baseline": "05.11", "s2:product_type": "S2MSI2A",
    })
    assets = {}
    for name, (common, wl, gsd) in S2_BANDS.items():
        assets[name] = {
            "href": f"s2/{iid}/{name}.tif", "type": COG, "title": f"{name} ({common}) - {gsd} m",
            "roles": ["data", "reflectance"], "gsd": gsd, "eo:bands": [_eo_band(name)],
            "raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": DN_SCALE, "offset": DN_OFFSET,
                              "spatial_resolution": gsd, "unit": "1"}],
            **_tile_geo(grid, r, c, gsd),
        }
    assets["SCL"] = {
        "href": f"s2/{iid}/SCL.tif", "type": COG, "title": "Scene classification map (SCL)",
        "roles": ["data", "cloud"], "gsd": 20,
        "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20,
                          "classification:classes": SCL_CLASSES}],
        **_tile_geo(grid, r, c, 20.0),
    }
    return {
        "type": "Feature", "stac_version": "1.0.0",
        "stac_extensions": [EXT[k] for k in ("proj", "eo", "raster", "grid", "view")],
        "id": iid, "collection": S2_ID, "bbox": wgs84_bbox(b), "geometry": _footprint(b),
        "properties": props, "assets": assets, "links": [],
    }


def s1_item(acq, grid: Grid, r: int, c: int, gid: str) -> dict:
    iid = s1_item_id(acq, gid)
    props, b = _common_props(acq, grid, r, c, gid)
    props.update({
        "constellation": "sentinel-1", "instruments": ["c-sar"], "gsd": 20,
        "sat:orbit_state": acq.orbit_state,
        "sar:instrument_mode": "IW", "sar:frequency_band": "C", "sar:center_frequency": 5.405,
        "sar:polarizations": ["VV", "VH"], "sar:product_type": "GRD", "sar:looks_equivalent_number": 4.4,
    })
    assets = {}
    for pol in ("vv", "vh"):
        assets[pol] = {
            "href": f"s1/{iid}/{pol}.tif", "type": COG, "title": f"{pol.upper()} backscatter (sigma0, linear)",
            "roles": ["data", "backscatter"], "gsd": 20, "sar:polarizations": [pol.upper()],
            "raster:bands": [{"nodata": S1_NODATA, "data_type": "float32", "scale": 1.0, "offset": 0.0,
                              "spatial_resolution": 20, "unit": "1"}],
            **_tile_geo(grid, r, c, 20.0),
        }
    return {
        "type": "Feature", "stac_version": "1.0.0",
        "stac_extensions": [EXT[k] for k in ("proj", "raster", "grid", "sat", "sar")],
        "id": iid, "collection": S1_ID, "bbox": wgs84_bbox(b), "geometry": _footprint(b),
        "properties": props, "assets": assets, "links": [],
    }


SYNTHETIC = {"name": "eolab demo generator (synthetic data)", "roles": ["producer", "processor", "host"]}


def demo_collection(cid: str, title: str, description: str, keywords: list[str], bbox: list[float],
                    interval: list[str], summaries: dict, item_assets: dict, extensions: tuple = ()) -> dict:
    """A demo collection (CC0, made by the generator) with the given extent and summaries."""
    return {
        "type": "Collection", "stac_version": "1.0.0", "stac_extensions": list(extensions),
        "id": cid, "title": title, "description": description,
        "license": "CC0-1.0", "providers": [SYNTHETIC], "keywords": keywords,
        "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [interval]}},
        "summaries": summaries, "item_assets": item_assets, "links": [],
    }


def collections(grid: Grid, s2_dates, s1_dates) -> list[dict]:
    bbox = wgs84_bbox(grid.bounds)

    def interval(ds):
        return [ds[0].datetime.strftime("%Y-%m-%dT%H:%M:%SZ"), ds[-1].datetime.strftime("%Y-%m-%dT%H:%M:%SZ")]

    s2_assets = {name: {"type": COG, "title": f"{name} ({c}) - {gsd} m", "roles": ["data", "reflectance"],
                        "gsd": gsd, "eo:bands": [_eo_band(name)],
                        "raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": DN_SCALE,
                                          "offset": DN_OFFSET, "spatial_resolution": gsd}]}
                 for name, (c, wl, gsd) in S2_BANDS.items()}
    s2_assets["SCL"] = {"type": COG, "title": "Scene classification map (SCL)", "roles": ["data", "cloud"],
                        "gsd": 20, "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}]}
    s1_assets = {p: {"type": COG, "title": f"{p.upper()} backscatter (sigma0, linear)", "roles": ["data"],
                     "gsd": 20, "raster:bands": [{"nodata": S1_NODATA, "data_type": "float32",
                                                  "spatial_resolution": 20}]} for p in ("vv", "vh")}
    return [
        demo_collection(
            S2_ID, "Sentinel-2 Level-2A (synthetic demo)",
            "Synthetic, physically plausible Sentinel-2 L2A-like surface reflectance over a "
            "Lake Tisza-like reservoir landscape (Hungary), season 2026, with SCL. Generated by "
            "eolab.demo; not real Copernicus data. DN to reflectance: DN * 0.0001 - 0.1.",
            ["sentinel-2", "l2a", "synthetic", "demo", "agriculture", "water"], bbox, interval(s2_dates),
            {"platform": sorted({a.platform for a in s2_dates}), "constellation": ["sentinel-2"],
             "instruments": ["msi"], "gsd": [10, 20], "eo:bands": [_eo_band(b) for b in S2_BANDS],
             "proj:code": [f"EPSG:{EPSG}"]},
            s2_assets, (EXT["eo"], EXT["raster"], EXT["proj"])),
        demo_collection(
            S1_ID, "Sentinel-1 GRD, sigma0 (synthetic demo)",
            "Synthetic Sentinel-1 IW GRD-like VV/VH backscatter (linear sigma0, 20 m, speckled) "
            "over the same scene and season. Generated by eolab.demo; not real Copernicus data.",
            ["sentinel-1", "sar", "grd", "synthetic", "demo"], bbox, interval(s1_dates),
            {"platform": sorted({a.platform for a in s1_dates}), "constellation": ["sentinel-1"],
             "instruments": ["c-sar"], "gsd": [20], "sar:instrument_mode": ["IW"],
             "sar:polarizations": ["VV", "VH"], "sat:orbit_state": sorted({a.orbit_state for a in s1_dates}),
             "proj:code": [f"EPSG:{EPSG}"]},
            s1_assets, (EXT["sar"], EXT["sat"], EXT["raster"], EXT["proj"])),
    ]
