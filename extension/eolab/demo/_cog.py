"""Raster and vector writers: per-tile COGs, multi-band truth rasters, GeoPackages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from eolab.demo._common import CRS


def write_cog(path: Path, data: np.ndarray, transform: Affine, nodata, blocksize: int, crs: str = CRS) -> None:
    """One single-band Cloud-Optimized GeoTIFF (DEFLATE, horizontal/float predictor)."""
    pred = 3 if data.dtype.kind == "f" else 2
    with rasterio.open(path, "w", driver="COG", width=data.shape[1], height=data.shape[0], count=1,
                       dtype=data.dtype.name, crs=crs, transform=transform, nodata=nodata,
                       blocksize=blocksize, compress="DEFLATE", predictor=pred, overviews="NONE") as dst:
        dst.write(data, 1)


def open_stack(path: Path, n: int, count: int, transform: Affine, dtype="uint8", nodata=None):
    """A tiled, compressed multi-band GeoTIFF for truth layers (one band per date)."""
    return rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=count, dtype=dtype, crs=CRS,
                         transform=transform, nodata=nodata, tiled=True, blockxsize=256, blockysize=256,
                         compress="DEFLATE", predictor=2, interleave="band")


def write_gpkg(gdf, path: Path, layer: str) -> None:
    """GeoPackage with a fixed 'last_change' timestamp, so reruns give the same content."""
    import pyogrio

    key = "OGR_CURRENT_DATE"
    old = pyogrio.get_gdal_config_option(key)
    pyogrio.set_gdal_config_options({key: "2026-03-01T00:00:00.000Z"})
    try:
        gdf.to_file(path, layer=layer, driver="GPKG", engine="pyogrio")
    finally:
        pyogrio.set_gdal_config_options({key: old})
