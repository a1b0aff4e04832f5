"""Write template results (GeoTIFF, GeoPackage/GeoParquet, CSV), each with its provenance attached."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from eolab import provenance as prov_mod
from eolab.errors import EolabError

PARQUET_KEY = prov_mod.PARQUET_KEY


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
    """A GeoDataFrame as GeoPackage (always) and GeoParquet next to it (when pyarrow is installed)."""
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
    written.append(write_geoparquet(gdf, path.with_suffix(".parquet"), provenance))
    return written


def write_geoparquet(gdf: Any, path: str | Path, provenance: dict) -> Path:
    """A GeoDataFrame as GeoParquet, the provenance record in the file's key-value metadata
    (``eolab_provenance``, JSON; see :func:`read_parquet_provenance`) and in the sidecar."""
    import pyarrow.parquet as pq

    path = _prepare(path)
    if path.suffix.lower() != ".parquet":
        raise EolabError(f"{path.name}: GeoParquet files end in .parquet", hint="use a .parquet path")
    record = dict(provenance, outputs=sorted(set(provenance.get("outputs", []) + [path.name])))
    tmp = path.with_name(path.stem + ".partial.parquet")
    # what GeoDataFrame.to_parquet converts with (the public to_arrow has no 'geo' metadata)
    from geopandas.io.arrow import _geopandas_to_arrow

    table = _geopandas_to_arrow(gdf)
    meta = dict(table.schema.metadata or {})
    meta[PARQUET_KEY] = json.dumps(prov_mod._jsonable(record)).encode()
    pq.write_table(table.replace_schema_metadata(meta), tmp, compression="zstd")
    tmp.replace(path)
    prov_mod.write(path, provenance)
    return path


def read_parquet_provenance(path: str | Path) -> dict:
    """The provenance record embedded in a GeoParquet file written by :func:`write_geoparquet`."""
    return prov_mod.read_parquet(path)


def write_csv(df: Any, path: str | Path, provenance: dict, **kwargs: Any) -> Path:
    path = _prepare(path)
    df.to_csv(path, **kwargs)
    prov_mod.write(path, provenance)
    return path
