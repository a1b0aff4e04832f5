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


#: Rows converted and written at a time: a table of a whole country (300,000 parcels and more) is
#: written part by part, so writing it costs the memory of one part, not of a second copy of the table.
ROWS_PER_PART = 25_000


def _parts(gdf: Any):
    for start in range(0, max(len(gdf), 1), ROWS_PER_PART):
        yield gdf.iloc[start:start + ROWS_PER_PART]


def _layer_geometry(gdf: Any) -> dict:
    """The layer's geometry type from the whole table (a part alone might say Polygon where the table
    mixes Polygon and MultiPolygon): pyogrio's ``geometry_type`` and ``promote_to_multi``."""
    types = {t for t in gdf.geometry.geom_type.dropna().unique()}
    if len(types) == 1:
        return {"geometry_type": types.pop()}
    for single in ("Point", "LineString", "Polygon"):
        if types == {single, f"Multi{single}"}:
            return {"geometry_type": f"Multi{single}", "promote_to_multi": True}
    return {"geometry_type": "Unknown"}


def write_table(gdf: Any, path: str | Path, provenance: dict, *, layer: str | None = None) -> list[Path]:
    """A GeoDataFrame as GeoPackage (always) and GeoParquet next to it (when pyarrow is installed),
    each written part by part (:data:`ROWS_PER_PART`); both files replace earlier ones only when
    both were written (never a new GeoPackage beside an old GeoParquet)."""
    path = _prepare(path)
    if path.suffix.lower() != ".gpkg":
        raise EolabError(f"{path.name}: tables are written as .gpkg (plus .parquet)", hint="use a .gpkg path")
    try:
        import pyarrow  # noqa: F401
        parquet = path.with_suffix(".parquet")
    except ImportError:
        parquet = None
    tmp = path.with_name(path.stem + ".partial.gpkg")
    tmp_parquet = parquet.with_name(parquet.stem + ".partial.parquet") if parquet else None
    try:
        _write_gpkg(gdf, tmp, layer or path.stem)
        if parquet:
            _write_parquet(gdf, tmp_parquet, _parquet_record(provenance, parquet))
    except BaseException:
        for partial in (tmp, tmp_parquet):
            if partial:
                partial.unlink(missing_ok=True)
        raise
    tmp.replace(path)
    prov_mod.write(path, provenance)
    if not parquet:
        return [path]
    tmp_parquet.replace(parquet)
    prov_mod.write(parquet, provenance)
    return [path, parquet]


def _write_gpkg(gdf: Any, tmp: Path, layer: str) -> None:
    tmp.unlink(missing_ok=True)
    layout = _layer_geometry(gdf)
    for k, part in enumerate(_parts(gdf)):
        part.to_file(tmp, layer=layer, driver="GPKG", mode="w" if k == 0 else "a", **layout)


def _parquet_record(provenance: dict, path: Path) -> dict:
    return dict(provenance, outputs=sorted(set(provenance.get("outputs", []) + [path.name])))


def _parquet_schema(gdf: Any, index: bool, record: dict) -> Any:
    """The Arrow schema of ``gdf`` as GeoPandas writes it: types from one row per column's first
    value (so a column empty in the first part is still typed), object columns typed from all
    their values (one column at a time), every geometry column's bbox and geometry types of the
    whole table in the ``geo`` metadata, and the provenance record."""
    import pyarrow as pa
    from geopandas.io.arrow import _geopandas_to_arrow, _get_geometry_types

    rows = sorted({int(np.flatnonzero(gdf[c].notna().to_numpy())[0]) for c in gdf.columns if gdf[c].notna().any()})
    schema = _geopandas_to_arrow(gdf.iloc[rows or [0]], index=index).schema
    for i, field in enumerate(schema):
        if field.name in gdf.columns and gdf[field.name].dtype == object:
            schema = schema.set(i, field.with_type(pa.array(gdf[field.name], from_pandas=True).type))
    meta = dict(schema.metadata or {})
    geo = json.loads(meta[b"geo"])
    for name, column in geo["columns"].items():
        column["bbox"] = [float(v) for v in gdf[name].total_bounds]
        column["geometry_types"] = sorted(_get_geometry_types(gdf[name]))
    meta[b"geo"] = json.dumps(geo).encode()
    meta[PARQUET_KEY] = json.dumps(prov_mod._jsonable(record)).encode()
    return schema.with_metadata(meta)


def _write_parquet(gdf: Any, tmp: Path, record: dict) -> None:
    import pandas as pd
    import pyarrow.parquet as pq

    # what GeoDataFrame.to_parquet converts with (the public to_arrow has no 'geo' metadata)
    from geopandas.io.arrow import _geopandas_to_arrow

    # a default index (0..n-1, unnamed) is not data; any other is written as a column
    index = not (gdf.index.equals(pd.RangeIndex(len(gdf))) and gdf.index.name is None)
    if not len(gdf):
        table = _geopandas_to_arrow(gdf, index=index)
        meta = dict(table.schema.metadata or {})
        meta[PARQUET_KEY] = json.dumps(prov_mod._jsonable(record)).encode()
        pq.write_table(table.replace_schema_metadata(meta), tmp, compression="zstd")
        return
    schema = _parquet_schema(gdf, index, record)
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for part in _parts(gdf):
            writer.write_table(_geopandas_to_arrow(part, index=index).cast(schema))


def write_geoparquet(gdf: Any, path: str | Path, provenance: dict) -> Path:
    """A GeoDataFrame as GeoParquet, the provenance record in the file's key-value metadata
    (``eolab_provenance``, JSON; see :func:`read_parquet_provenance`) and in the sidecar; written
    part by part (one row group per :data:`ROWS_PER_PART` rows)."""
    path = _prepare(path)
    if path.suffix.lower() != ".parquet":
        raise EolabError(f"{path.name}: GeoParquet files end in .parquet", hint="use a .parquet path")
    tmp = path.with_name(path.stem + ".partial.parquet")
    try:
        _write_parquet(gdf, tmp, _parquet_record(provenance, path))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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
