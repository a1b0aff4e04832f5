"""A Copernicus-DEM-GLO-30-like elevation model of the demo scene, in that product's STAC layout.

Like GLO-30 (as Planetary Computer and Earth Search serve it, collection ``cop-dem-glo-30``):
float32 COGs in geographic coordinates (EPSG:4326, 1 arc second), a single ``data`` asset in metres,
no scaling, a fixed datetime (2021-04-22), and the scene on two abutting tiles (west and east).
Like GLO-30 it is a surface model from X-band radar, so it is not the terrain the images were
rendered on: forest canopy stands partly in it, and it has the product's vertical error (relative
error a few metres LE90; here a smooth error of 1.2 m std).
The terrain is the scene's own: the reservoir's bowl (water standing at the level of the
acquisition, flat as in the edited GLO-30) and the hill (:func:`eolab.demo._winter.hill_at`).
"""

from __future__ import annotations

import math

import numpy as np
from affine import Affine
from pyproj import Transformer
from scipy import ndimage

from eolab.demo import _scene as S
from eolab.demo._common import EPSG, RES, X0, Y0, Grid, rng, smooth_noise
from eolab.demo._stac import demo_collection, wgs84_bbox
from eolab.demo._winter import hill_at

DEM_ID = "cop-dem-glo-30"
ARCSEC = 1.0 / 3600.0
DEM_WATER_LEVEL = 88.0  # m, the reservoir's level when the surface model was acquired
CANOPY_M = 14.0  # height of a closed canopy in an X-band surface model (trees ~20 m, partly penetrated)
VERTICAL_ERROR_M = 1.2  # std of the smooth error field
DATETIME = "2021-04-22T00:00:00Z"  # GLO-30's STAC items carry this fixed datetime
_TO_SCENE = Transformer.from_crs(4326, EPSG, always_xy=True)


def geo_grid(grid: Grid) -> tuple[Affine, tuple[int, int]]:
    """(transform, (height, width)) of a whole-arc-second grid in EPSG:4326 covering the scene."""
    lon0, lat0, lon1, lat1 = wgs84_bbox(grid.bounds)
    west = math.floor(lon0 / ARCSEC) * ARCSEC - 2 * ARCSEC
    north = math.ceil(lat1 / ARCSEC) * ARCSEC + 2 * ARCSEC
    width = int(math.ceil((lon1 - west) / ARCSEC)) + 2
    height = int(math.ceil((north - lat0) / ARCSEC)) + 2
    return Affine(ARCSEC, 0.0, west, 0.0, -ARCSEC, north), (height, width)


def elevation(scene, grid: Grid, seed: int) -> tuple[np.ndarray, Affine]:
    """The surface model (m, float32) on :func:`geo_grid` and its transform."""
    transform, (h, w) = geo_grid(grid)
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    lon = transform.a * cols + transform.b * rows + transform.c
    lat = transform.d * cols + transform.e * rows + transform.f
    x, y = _TO_SCENE.transform(lon, lat)
    col = (x - X0) / RES - 0.5  # fractional index of the scene's 10 m pixel centres
    row = (Y0 - y) / RES - 0.5
    n = grid.n
    bowl = ndimage.map_coordinates(scene.elev, [row.ravel(), col.ravel()], order=1, mode="nearest").reshape(h, w)
    relief = np.maximum(bowl, DEM_WATER_LEVEL) + hill_at(row.astype(np.float32), col.astype(np.float32), n)
    forest = np.isin(scene.mat, (S.CONIFER, S.DECIDUOUS)).astype(np.float32)
    cover = ndimage.uniform_filter(forest, size=3, mode="nearest")  # share of a ~30 m cell under canopy
    ri, ci = np.rint(row).astype(int), np.rint(col).astype(int)
    inside = (ri >= 0) & (ri < n) & (ci >= 0) & (ci < n)
    canopy = np.where(inside, cover[np.clip(ri, 0, n - 1), np.clip(ci, 0, n - 1)], 0.0)
    error = VERTICAL_ERROR_M * smooth_noise(rng(seed, "dem"), (h, w), 2.0)
    return (relief + CANOPY_M * canopy + error).astype(np.float32), transform


def tiles(dem: np.ndarray, transform: Affine) -> list[tuple[str, np.ndarray, Affine]]:
    """(part, array, transform) of two abutting tiles, west and east, as a scene on a tile boundary of
    the real product is covered by two items (a loader must mosaic them)."""
    half = dem.shape[1] // 2
    return [("w", dem[:, :half], transform), ("e", dem[:, half:], transform @ Affine.translation(half, 0))]


def item_id(grid: Grid, part: str) -> str:
    return f"Copernicus_DSM_COG_10_eolab_demo_{grid.size}_{part}_DEM"


def item(grid: Grid, part: str, transform: Affine, shape: tuple[int, int]) -> dict:
    iid = item_id(grid, part)
    h, w = shape
    west, north = transform.c, transform.f
    east, south = west + w * ARCSEC, north - h * ARCSEC
    bbox = [round(west, 7), round(south, 7), round(east, 7), round(north, 7)]
    ring = [[bbox[0], bbox[1]], [bbox[2], bbox[1]], [bbox[2], bbox[3]], [bbox[0], bbox[3]], [bbox[0], bbox[1]]]
    return {
        "type": "Feature", "stac_version": "1.0.0",
        "stac_extensions": ["https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                            "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
        "id": iid, "collection": DEM_ID, "bbox": bbox, "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"datetime": DATETIME, "platform": "tandem-x", "gsd": 30, "proj:epsg": 4326,
                       "proj:shape": [h, w], "proj:transform": list(transform)[:6]},
        "assets": {"data": {
            "href": f"dem/{iid}.tif", "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "title": "Elevation (m), surface model", "roles": ["data"],
            "raster:bands": [{"data_type": "float32", "spatial_resolution": 30, "unit": "metre"}]}},
        "links": [],
    }


def collection(bbox: list[float]) -> dict:
    return demo_collection(
        DEM_ID, "Copernicus DEM GLO-30 (synthetic demo look-alike)",
        "A surface model of the demo scene in the layout of the Copernicus DEM GLO-30 items: EPSG:4326, "
        "1 arc second, elevation in metres, forest canopy partly in it and a vertical error of about a metre. "
        "Generated by eolab.demo; not real Copernicus data.",
        ["dem", "elevation", "copernicus", "synthetic", "demo"], bbox, [DATETIME, DATETIME],
        {"gsd": [30], "platform": ["tandem-x"]},
        {"data": {"type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data"],
                  "title": "Elevation (m), surface model"}})
