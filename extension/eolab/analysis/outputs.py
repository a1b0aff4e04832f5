"""Write template results (GeoTIFF, GeoPackage/GeoParquet, CSV), each with its provenance attached."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

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


#: Rows :class:`TableWriter` holds at most while it waits for a value in every column (to type them)
MAX_HELD_ROWS = 100_000

#: Rows converted and written at a time: a table of a whole country (300,000 parcels and more) is
#: written part by part, so writing it costs the memory of one part, not of a second copy of the table.
ROWS_PER_PART = 25_000


def _parts(gdf: Any):
    for start in range(0, max(len(gdf), 1), ROWS_PER_PART):
        yield gdf.iloc[start:start + ROWS_PER_PART]


def geometry_summary(geoms: Any) -> tuple[list[str], list[float]]:
    """(geometry types, bbox) of a GeoSeries as GeoParquet's ``geo`` metadata states them: what
    :class:`TableWriter` needs before the rows when a table is built and written part by part
    (e.g. from the claims, whose outlines the results carry)."""
    from geopandas.io.arrow import _get_geometry_types

    return sorted(_get_geometry_types(geoms)), [float(v) for v in geoms.total_bounds]


def _layer_geometry(types: Iterable[str]) -> dict:
    """The GeoPackage layer's geometry type from the whole table's (a part alone might say Polygon
    where the table mixes Polygon and MultiPolygon): pyogrio's ``geometry_type`` and ``promote_to_multi``."""
    types = {t.split(" ")[0] for t in types if t}  # "Polygon Z": pyogrio writes the Z itself
    if len(types) == 1:
        return {"geometry_type": types.pop()}
    for single in ("Point", "LineString", "Polygon"):
        if types == {single, f"Multi{single}"}:
            return {"geometry_type": f"Multi{single}", "promote_to_multi": True}
    return {"geometry_type": "Unknown"}


def _default_index(gdf: Any) -> bool:
    """A default index (0..n-1, or a slice of one, unnamed) is not data; any other is written.
    The one rule of every table writer here."""
    import pandas as pd

    index = gdf.index
    if index.name is not None or index.nlevels != 1:
        return False
    if isinstance(index, pd.RangeIndex):
        return index.step == 1
    return index.equals(pd.RangeIndex(len(index)))


class TableWriter:
    """A table given part by part, written as GeoPackage (always) and GeoParquet beside it (when
    pyarrow is installed): for results too large to build whole (a country's parcels), each part is
    converted and written, then dropped. Both files replace earlier ones only when both were
    written, at :meth:`close` (a ``with`` block closes it, or removes the partial files on error).
    With ``gpkg=False`` and a ``.parquet`` path, the GeoParquet file alone.

    ``geometry_types`` and ``bbox`` are the whole table's (see :func:`geometry_summary`): the
    GeoPackage layer and the GeoParquet ``geo`` metadata are fixed before the first row (pyarrow
    writes a file's schema first); a part outside them is refused. Column types are those of the
    first rows in which every column has a value (parts are held until then, usually the first
    one; at most :data:`MAX_HELD_ROWS` rows), or of ``schema_from``; ``null_columns`` names columns
    known to be empty in the whole table (e.g. no farmer ids in a country's claims), which are not
    waited for. Every part must have the same columns and index name.
    """

    def __init__(self, path: str | Path, provenance: dict, *, geometry_types: Iterable[str],
                 bbox: Sequence[float], layer: str | None = None, schema_from: Any = None,
                 index: bool | None = None, null_columns: Iterable[str] = (), gpkg: bool = True) -> None:
        path = _prepare(path)
        if gpkg and path.suffix.lower() != ".gpkg":
            raise EolabError(f"{path.name}: tables are written as .gpkg (plus .parquet)", hint="use a .gpkg path")
        if not gpkg and path.suffix.lower() != ".parquet":
            raise EolabError(f"{path.name}: GeoParquet files end in .parquet", hint="use a .parquet path")
        try:
            import pyarrow  # noqa: F401
            self.parquet = path.with_suffix(".parquet")
        except ImportError:
            if not gpkg:
                raise EolabError("GeoParquet needs pyarrow", hint="pip install pyarrow") from None
            self.parquet = None
        self.path, self.provenance, self.layer = path, provenance, layer or path.stem
        self.geometry_types, self.bbox = sorted(set(geometry_types)), [float(v) for v in bbox]
        self.tmp = path.with_name(path.stem + ".partial.gpkg") if gpkg else None
        self.tmp_parquet = self.parquet.with_name(self.parquet.stem + ".partial.parquet") if self.parquet else None
        self.rows, self.paths = 0, None
        self._schema_from, self._index, self._columns = schema_from, index, None
        self._pending: list = []
        self._schema = self._writer = None
        self._typed = schema_from is not None  # column types known: parts are written as they come
        self._null_columns, self._empty, self._failed = set(null_columns), None, None
        for partial in (self.tmp, self.tmp_parquet):
            if partial:
                partial.unlink(missing_ok=True)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self.close()
        else:
            self._failed = self._failed or value
            self.abort()

    def write(self, part: Any) -> None:
        """Add ``part`` (a GeoDataFrame with the table's columns) after the rows written so far."""
        self._check_usable()
        if self.paths is not None:
            raise EolabError(f"{self.path.name} is already closed")
        try:
            self._add(part)
        except BaseException as exc:
            self._failed = exc
            self.abort()
            raise

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise EolabError(f"{self.path.name} was abandoned after an error: {self._failed}",
                             hint="nothing was written; start a new TableWriter") from self._failed

    def _add(self, part: Any) -> None:
        if self._columns is None:
            self._columns, self._index_names = list(part.columns), list(part.index.names)
            self._empty = part.iloc[:0]  # what an empty table is written as
            if self._index is None:
                self._index = not _default_index(part)
        elif list(part.columns) != self._columns:
            raise EolabError(f"{self.path.name}: a part has the columns {list(part.columns)}, the table "
                             f"{self._columns}", hint="give every part the same columns in the same order")
        elif self._index and list(part.index.names) != self._index_names:
            raise EolabError(f"{self.path.name}: a part's index is named {list(part.index.names)}, the table's "
                             f"{self._index_names}", hint="give every part the same index")
        if not len(part):
            return
        self._check_geometry(part)
        if not self._typed:
            self._pending.append(part)
            typed = {c for p in self._pending for c in p.columns if p[c].notna().any()} | self._null_columns
            if len(typed) == len(self._columns) or sum(len(p) for p in self._pending) >= MAX_HELD_ROWS:
                self._flush()  # (past MAX_HELD_ROWS, a column still empty is typed as empty)
            return
        self._write(part)

    def _check_geometry(self, part: Any) -> None:
        types, bbox = geometry_summary(part.geometry)
        outside = set(types) - set(self.geometry_types)
        if outside:
            raise EolabError(f"{self.path.name}: rows with geometry types {sorted(outside)} in a table "
                             f"declared as {self.geometry_types}", hint="give geometry_types= of the whole table")
        if len(part) and part.geometry.notna().any():
            if (bbox[0] < self.bbox[0] or bbox[1] < self.bbox[1] or bbox[2] > self.bbox[2]
                    or bbox[3] > self.bbox[3]):
                raise EolabError(f"{self.path.name}: rows reach {bbox}, outside the declared bbox {self.bbox}",
                                 hint="give bbox= of the whole table (e.g. its total_bounds)")

    def _flush(self) -> None:
        import pandas as pd

        if not self._pending:
            return
        part = self._pending[0] if len(self._pending) == 1 else pd.concat(self._pending)
        self._pending, self._typed = [], True
        self._write(part)

    def _write(self, part: Any) -> None:
        from eolab._memory import release_freed_memory

        table = None
        if self.parquet:  # converted first: a part that does not fit is refused before either file has it
            if self._schema is None:
                import pyarrow as pa

                try:
                    self._schema = _parquet_schema(self._schema_from if self._schema_from is not None else part,
                                                   self._index, _parquet_record(self.provenance, self.parquet),
                                                   self.geometry_types, self.bbox)
                except (pa.ArrowException, TypeError, ValueError) as exc:
                    raise EolabError(f"{self.path.name}: the table's column types cannot be made: {exc}",
                                     hint="give each column values of one type") from exc
            table = self._arrow(part)
        # the index goes into both files or neither
        if self.tmp:
            part.to_file(self.tmp, layer=self.layer, driver="GPKG", mode="w" if self.rows == 0 else "a",
                         index=bool(self._index), **_layer_geometry(self.geometry_types))
        if table is not None:
            if self._writer is None:
                import pyarrow.parquet as pq

                self._writer = pq.ParquetWriter(self.tmp_parquet, self._schema, compression="zstd")
            self._writer.write_table(table)
        self.rows += len(part)
        del table
        release_freed_memory()  # the part's conversion buffers, freed, would stay resident

    def _arrow(self, part: Any) -> Any:
        """``part`` as an Arrow table of the table's schema, or an error naming the columns that do
        not fit."""
        import pyarrow as pa
        from geopandas.io.arrow import _geopandas_to_arrow

        rows = f"rows {self.rows}–{self.rows + len(part) - 1}"
        try:
            table = _geopandas_to_arrow(part, index=self._index)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise EolabError(f"{self.path.name}: {rows} cannot be converted: {exc}",
                             hint="give each column values of one type") from exc
        try:
            return table.cast(self._schema)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            bad = []
            for field in self._schema:
                if field.name in table.column_names:
                    try:
                        table.column(field.name).cast(field.type)
                    except (pa.ArrowException, TypeError, ValueError):
                        bad.append(f"{field.name} ({table.schema.field(field.name).type}, the table's {field.type})")
            raise EolabError(f"{self.path.name}: in {rows}, " + (", ".join(bad) or str(exc))
                             + " cannot take the table's column types",
                             hint="give every part the same column types (a column empty in the first "
                                  "parts: name it in null_columns= only if it is empty in all)") from exc

    def close(self) -> list[Path]:
        """Write what is held, finish both files and put them in place (with their provenance)."""
        self._check_usable()
        if self.paths is not None:
            return self.paths
        try:
            self._flush()
            if self._columns is None:
                raise EolabError(f"{self.path.name}: no rows or columns were given", hint="write at least one part")
            if self.rows == 0:  # no rows: the files still say which columns the table has
                self._write_empty()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        except BaseException as exc:
            self._failed = exc
            self.abort()
            raise
        moves = ([(self.tmp, self.path)] if self.tmp else []) + ([(self.tmp_parquet, self.parquet)] if self.parquet else [])
        try:
            _replace_together(moves)
        except BaseException as exc:
            self._failed = exc
            self.abort()
            raise
        self.paths = []
        for _, final in moves:
            prov_mod.write(final, self.provenance)
            self.paths.append(final)
        return self.paths

    def _write_empty(self) -> None:
        empty = self._schema_from if self._schema_from is not None else self._empty
        if self.tmp:
            empty.to_file(self.tmp, layer=self.layer, driver="GPKG", index=bool(self._index),
                          **_layer_geometry(self.geometry_types))
        if self.parquet:
            import pyarrow.parquet as pq
            from geopandas.io.arrow import _geopandas_to_arrow

            table = _geopandas_to_arrow(empty, index=self._index)
            meta = dict(table.schema.metadata or {})
            meta[PARQUET_KEY] = json.dumps(prov_mod._jsonable(_parquet_record(self.provenance, self.parquet))).encode()
            pq.write_table(table.replace_schema_metadata(meta), self.tmp_parquet, compression="zstd")

    def abort(self) -> None:
        """Drop the partial files (the earlier outputs, if any, stay as they were)."""
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - the partial file is removed anyway
                pass
            self._writer = None
        self._pending = []
        self.paths = self.paths or []
        for partial in (self.tmp, self.tmp_parquet):
            if partial:
                partial.unlink(missing_ok=True)


def _replace_together(moves: list[tuple[Path, Path]]) -> None:
    """Move each new file onto its final path, all or none: the earlier files are set aside first,
    and put back if a move fails (never a new GeoPackage beside an old GeoParquet)."""
    aside: list[tuple[Path, Path]] = []
    done: list[Path] = []
    try:
        for _, final in moves:
            if final.exists():
                kept = final.with_name(final.name + ".previous")
                final.replace(kept)
                aside.append((kept, final))
        for new, final in moves:
            new.replace(final)
            done.append(final)
    except BaseException:
        for final in done:
            final.unlink(missing_ok=True)
        for kept, final in aside:
            kept.replace(final)
        raise
    for kept, _ in aside:
        kept.unlink(missing_ok=True)


def write_table(gdf: Any, path: str | Path, provenance: dict, *, layer: str | None = None) -> list[Path]:
    """A GeoDataFrame as GeoPackage (always) and GeoParquet next to it (when pyarrow is installed),
    each written part by part (:data:`ROWS_PER_PART`); both files replace earlier ones only when
    both were written (never a new GeoPackage beside an old GeoParquet). For a table too large to
    build whole, give it part by part to a :class:`TableWriter`."""
    types, bbox = geometry_summary(gdf.geometry)
    with TableWriter(path, provenance, geometry_types=types, bbox=bbox, layer=layer, schema_from=gdf,
                     index=not _default_index(gdf)) as writer:
        for part in _parts(gdf):
            writer.write(part)
    return writer.paths


def _parquet_record(provenance: dict, path: Path) -> dict:
    return dict(provenance, outputs=sorted(set(provenance.get("outputs", []) + [path.name])))


def _parquet_schema(gdf: Any, index: bool, record: dict, geometry_types: list[str], bbox: list[float]) -> Any:
    """The Arrow schema of ``gdf`` as GeoPandas writes it: types from one row per column's first
    value (so a column empty in the first part is still typed), object columns typed from all
    their values (one column at a time), the active geometry column's bbox and geometry types
    as given (the whole table's), other geometry columns' from ``gdf``, and the provenance record."""
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
        if name == gdf.geometry.name:
            column["bbox"], column["geometry_types"] = list(bbox), list(geometry_types)
        else:
            column["bbox"] = [float(v) for v in gdf[name].total_bounds]
            column["geometry_types"] = sorted(_get_geometry_types(gdf[name]))
    meta[b"geo"] = json.dumps(geo).encode()
    meta[PARQUET_KEY] = json.dumps(prov_mod._jsonable(record)).encode()
    return schema.with_metadata(meta)


def write_geoparquet(gdf: Any, path: str | Path, provenance: dict) -> Path:
    """A GeoDataFrame as GeoParquet, the provenance record in the file's key-value metadata
    (``eolab_provenance``, JSON; see :func:`read_parquet_provenance`) and in the sidecar; written
    part by part (one row group per :data:`ROWS_PER_PART` rows); an earlier file is replaced only
    when the new one is whole (:class:`TableWriter` without its GeoPackage)."""
    types, bbox = geometry_summary(gdf.geometry)
    with TableWriter(path, provenance, geometry_types=types, bbox=bbox, schema_from=gdf,
                     index=not _default_index(gdf), gpkg=False) as writer:
        for part in _parts(gdf):
            writer.write(part)
    return writer.paths[0]


def read_parquet_provenance(path: str | Path) -> dict:
    """The provenance record embedded in a GeoParquet file written by :func:`write_geoparquet`."""
    return prov_mod.read_parquet(path)


def write_csv(df: Any, path: str | Path, provenance: dict, **kwargs: Any) -> Path:
    path = _prepare(path)
    df.to_csv(path, **kwargs)
    prov_mod.write(path, provenance)
    return path
