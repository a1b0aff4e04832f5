"""Write template results (GeoTIFF, GeoPackage/GeoParquet, CSV), each with its provenance attached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eolab.analysis import provenance as prov_mod
from eolab.errors import EolabError


def _prepare(path: str | Path) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EolabError(f"cannot write {path}: {exc.strerror}", hint="choose a writable output directory") from exc
    return path


def _crs(crs: Any) -> str:
    """An EPSG code or WKT1 string any GDAL reads, from odc/pyproj CRS objects or strings."""
    import pyproj

    epsg = getattr(crs, "epsg", None)
    if epsg:
        return f"EPSG:{epsg}"
    parsed = pyproj.CRS.from_user_input(crs if isinstance(crs, str) else crs.to_wkt())
    epsg = parsed.to_epsg()
    return f"EPSG:{epsg}" if epsg else parsed.to_wkt("WKT1_GDAL")


def _grid(da: Any, crs: Any = None) -> tuple[Any, str]:
    """(transform, crs) of a DataArray with x/y pixel-centre coordinates."""
    from affine import Affine

    crs = crs or getattr(da.odc, "crs", None) or da.attrs.get("crs")
    if crs is None:
        raise EolabError(f"{da.name or 'the array'} has no CRS", hint="pass crs= (e.g. cube.attrs['crs'])")
    x, y = da.x.values, da.y.values
    dx = float(x[1] - x[0]) if x.size > 1 else 10.0
    dy = float(y[1] - y[0]) if y.size > 1 else -10.0
    transform = Affine(dx, 0.0, float(x[0]) - dx / 2, 0.0, dy, float(y[0]) - dy / 2)
    return transform, _crs(crs)


def write_geotiff(da: Any, path: str | Path, provenance: dict, *, nodata: float | int | None = None,
                  dtype: str = "float32", band_names: list[str] | None = None, crs: Any = None) -> Path:
    """A (y, x) or (band/time, y, x) DataArray on an odc geobox as a tiled, compressed GeoTIFF."""
    import rasterio

    path = _prepare(path)
    transform, crs = _grid(da, crs)
    values = np.asarray(da.values)
    if values.ndim == 2:
        values = values[None]
    if nodata is not None:
        values = np.where(np.isfinite(values), values, nodata)
    values = values.astype(dtype)
    tmp = path.with_name(path.name + ".partial")
    profile = dict(driver="GTiff", width=values.shape[2], height=values.shape[1], count=values.shape[0],
                   dtype=dtype, crs=crs, transform=transform, nodata=nodata, tiled=True,
                   blockxsize=256, blockysize=256, compress="deflate")
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(values)
        names = band_names
        if names is None and da.ndim == 3:
            names = [str(v)[:10] for v in da[da.dims[0]].values]
        for k, name in enumerate(names or []):
            dst.set_band_description(k + 1, name)
    tmp.replace(path)
    prov_mod.write(path, provenance)
    return path


def write_table(gdf: Any, path: str | Path, provenance: dict, *, layer: str | None = None) -> list[Path]:
    """A GeoDataFrame as GeoPackage (always) and GeoParquet (when pyarrow is installed)."""
    path = _prepare(path)
    if path.suffix.lower() != ".gpkg":
        raise EolabError(f"{path.name}: tables are written as .gpkg (plus .parquet)", hint="use a .gpkg path")
    tmp = path.with_name(path.stem + ".partial.gpkg")
    tmp.unlink(missing_ok=True)
    gdf.to_file(tmp, layer=layer or path.stem, driver="GPKG")
    tmp.replace(path)
    prov_mod.write(path, provenance)
    written = [path]
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return written
    pq = path.with_suffix(".parquet")
    gdf.to_parquet(pq)
    prov_mod.write(pq, provenance)
    written.append(pq)
    return written


def write_csv(df: Any, path: str | Path, provenance: dict, **kwargs: Any) -> Path:
    path = _prepare(path)
    df.to_csv(path, **kwargs)
    prov_mod.write(path, provenance)
    return path
