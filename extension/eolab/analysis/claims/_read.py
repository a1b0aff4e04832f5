"""Reading a claims file (GeoPackage, Shapefile, GeoJSON, GeoParquet, fiboa) into the common schema."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from eolab.analysis.claims._schemas import ClaimsWarning, Schema, _schema_folders, detect_schema, schemas
from eolab.analysis.claims._text import check_text
from eolab.errors import EolabError


def _open_path(path: Path) -> str:
    """A GDAL path for a vector file, a zipped one (first vector file inside) or a folder."""
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile as exc:
            raise EolabError(f"{path.name} is not a readable zip file", hint="re-download the file") from exc
        for ext in (".gpkg", ".shp", ".geojson", ".json", ".fgb", ".gml"):
            hits = [n for n in names if n.lower().endswith(ext)]
            if hits:
                return f"/vsizip/{path}/{hits[0]}"
        raise EolabError(f"{path.name} holds no vector file", hint=f"it contains: {', '.join(names[:10])}")
    return str(path)


PARQUET = (".parquet", ".geoparquet")


def read_raw(path: str | os.PathLike, layer: str | None = None, *, encoding: str | None = None) -> Any:
    """The file as published (GeoDataFrame): GeoParquet (fiboa included) or any vector format GDAL
    reads (zip included). ``encoding``: the text encoding of a Shapefile/DBF when its .cpg is missing
    or wrong (e.g. "cp1257")."""
    import geopandas as gpd
    import pyogrio

    path = Path(path)
    if not path.exists():
        raise EolabError(f"parcel file {path} does not exist")
    try:
        if path.suffix.lower() in PARQUET:
            gdf = gpd.read_parquet(path)
        else:
            src = _open_path(path)
            layers = pyogrio.list_layers(src)
            if layer is None:
                polys = [name for name, geom in layers if geom and "polygon" in str(geom).lower()]
                layer = polys[0] if polys else layers[0][0]
            gdf = gpd.read_file(src, layer=layer, **({"encoding": encoding} if encoding else {}))
    except EolabError:
        raise
    except Exception as exc:  # pyogrio/GDAL/pyarrow raise DataSourceError, ArrowInvalid, ValueError, OSError ...
        raise EolabError(f"cannot read parcel file {path.name}: {exc}".splitlines()[0],
                         hint="is it a GeoPackage, GeoParquet, Shapefile (zip) or GeoJSON?") from exc
    if "geometry" not in gdf or gdf.geometry.isna().all():
        raise EolabError(f"{path.name} has no geometries", hint="parcels need polygons")
    if gdf.crs is None:
        raise EolabError(f"{path.name} has no coordinate reference system", hint="add a .prj / set the CRS")
    return gdf


def _hcat_column(gdf: Any, schema: Schema, crop_code: Any, crop_name: Any) -> tuple[list[str], str]:
    """HCAT3 code per row and a description of how it was found."""
    from eolab.analysis import taxonomy

    tax = schema.taxonomy
    if tax.get("hcat3_column"):
        col = tax["hcat3_column"]
        if col not in gdf:
            return [""] * len(gdf), f"column {col!r} missing"
        return [taxonomy.clean_hcat3(v) for v in gdf[col].values], f"the file's own column {col!r}"
    key = str(tax.get("key", "code"))
    return (taxonomy.map_crops(crop_code, crop_name, list_name=tax["code_list"], key=key),
            f"EuroCrops list {tax['code_list']} by {key}")


def to_common(gdf: Any, schema: Schema | None = None, *, source: str = "") -> Any:
    """Map a raw national table to the common schema; raises EolabError naming bad rows. Adds the
    crop's HCAT3 code and name (``hcat3_code``, ``hcat3_name``; '' where the list has none) and
    ``year`` where the schema gives one. Warnings (:class:`ClaimsWarning`): mis-decoded names,
    crops without an HCAT3 code; both also in ``attrs["eolab:ingest"]["warnings"]``."""
    import warnings

    import geopandas as gpd
    import pandas as pd

    from eolab.analysis import taxonomy

    schema = schema or detect_schema(gdf.columns)
    where = f" in {source}" if source else ""
    dropped = 0
    reasons = {}
    if schema.not_claims is not None:
        skip = np.asarray(schema.not_claims(gdf), bool)
        for reason, rule in schema.not_claims_rules:
            n = int(np.asarray(rule(gdf), bool).sum())
            if n:
                reasons[reason] = n
        dropped = int(skip.sum())
        gdf = gdf[~skip].reset_index(drop=True)
    out = pd.DataFrame(index=range(len(gdf)))
    try:
        out["parcel_id"] = (pd.Series(list(schema.parcel_id(gdf)), dtype=object).astype(str)
                            .str.replace(r"\.0$", "", regex=True).values)
    except KeyError as exc:
        raise EolabError(f"schema {schema.name}: the parcel id column {exc} is missing{where}",
                         hint="columns found: " + ", ".join(str(c) for c in gdf.columns if c != "geometry")) from exc
    out["farmer_id"] = (gdf[schema.farmer_id].astype(str).str.replace(r"\.0$", "", regex=True).values
                        if schema.farmer_id and schema.farmer_id in gdf else None)
    if schema.crop_code not in gdf:
        raise EolabError(f"schema {schema.name}: the crop code column {schema.crop_code!r} is missing{where}",
                         hint="columns found: " + ", ".join(str(c) for c in gdf.columns if c != "geometry"))
    out["crop_code"] = gdf[schema.crop_code].astype(str).str.replace(r"\.0$", "", regex=True).values
    out["crop_name"] = (gdf[schema.crop_name].astype(str).values if schema.crop_name in gdf
                        else out["crop_code"].values)
    geoms = gdf.geometry.values
    bad_geom = np.flatnonzero(gdf.geometry.isna().values | gdf.geometry.is_empty.values)
    if bad_geom.size:
        ids = ", ".join(out["parcel_id"].iloc[bad_geom[:5]])
        raise EolabError(f"{bad_geom.size} parcels without geometry{where} (e.g. {ids})",
                         hint="fix or remove them; nothing was written")
    if schema.area and schema.area in gdf:
        area = pd.to_numeric(gdf[schema.area], errors="coerce").values.astype(float)
        bad = np.flatnonzero(~np.isfinite(area) | (area < 0))
        if bad.size:
            ids = ", ".join(out["parcel_id"].iloc[bad[:5]])
            raise EolabError(f"{bad.size} parcels with a missing or invalid area in {schema.area!r}{where} (e.g. {ids})",
                             hint="fix the values; nothing was written")
        out["area_declared_ha"] = area / 1e4 if schema.area_unit == "m2" else area
    else:
        metric = gdf.to_crs(gdf.estimate_utm_crs()) if gdf.crs.is_geographic else gdf
        out["area_declared_ha"] = metric.geometry.area.values / 1e4
    missing_crop = np.flatnonzero(out["crop_code"].isin(["", "nan", "None"]).values)
    if missing_crop.size:
        ids = ", ".join(out["parcel_id"].iloc[missing_crop[:5]])
        raise EolabError(f"{missing_crop.size} parcels without a crop code in {schema.crop_code!r}{where} (e.g. {ids})",
                         hint="every claim needs a declared crop; nothing was written")
    dupes = out["parcel_id"][out["parcel_id"].duplicated()].unique()
    if dupes.size:
        raise EolabError(f"{dupes.size} parcel ids occur more than once{where} (e.g. {', '.join(dupes[:5])})",
                         hint="parcel ids must be unique; nothing was written")
    out["country"] = (gdf[schema.country_column].astype(str).values
                      if schema.country_column and schema.country_column in gdf else schema.country)
    out["schema"] = schema.name
    hcat, how = _hcat_column(gdf, schema, out["crop_code"].values, out["crop_name"].values)
    names = taxonomy.hcat3_names()
    out["hcat3_code"] = hcat
    out["hcat3_name"] = [names.get(h, "") for h in hcat]
    year = schema.year or {}
    if "value" in year:
        out["year"] = int(year["value"])
    elif year.get("column") in gdf:
        out["year"] = pd.to_numeric(gdf[year["column"]], errors="coerce").round().astype("Int64").values
    for common, col in schema.extra.items():
        if col in gdf:
            out[common] = gdf[col].astype(str).values
    result = gpd.GeoDataFrame(out, geometry=geoms, crs=gdf.crs)
    notes = check_text(out["crop_name"].values, column=schema.crop_name)
    unmapped = out.loc[out["hcat3_code"] == "", ["crop_code", "crop_name"]]
    share = 1.0 - len(unmapped) / max(len(out), 1)
    if len(unmapped):
        top = unmapped.value_counts().head(5)
        notes.append(f"{len(unmapped)} of {len(out)} claims ({1 - share:.1%}) have a crop without an HCAT3 code "
                     f"({how}): " + ", ".join(f"{c} {n!r} ×{k}" for (c, n), k in top.items())
                     + " — these are judged as 'other' by the CAP rules; add them to a code list")
    for note in notes:
        warnings.warn(f"{source or 'claims'}: {note}", ClaimsWarning, stacklevel=3)
    result.attrs["eolab:ingest"] = {"schema": schema.name, "rows_read": len(gdf) + dropped, "claims": len(result),
                                    "not_claims": dropped, "not_claims_reason": "; ".join(reasons) if dropped else "",
                                    "not_claims_by_reason": reasons, "taxonomy": how, "hcat3_share": round(share, 4),
                                    "warnings": notes}
    return result


def _choose_schema(raw: Any, schema: str | None, path: Any) -> Schema | None:
    if schema is None:
        return None
    by_name = {s.name: s for s in schemas()}
    if schema not in by_name:
        raise EolabError(f"unknown schema name {schema!r}", hint="known: " + ", ".join(by_name)
                         + f" — schema files live in {_schema_folders()}")
    chosen = by_name[schema]
    missing = [c for c in chosen.required if c not in raw.columns]
    if missing:
        raise EolabError(f"{Path(path).name} lacks the {schema} columns {', '.join(missing)}",
                         hint="columns found: " + ", ".join(str(c) for c in raw.columns if c != "geometry"))
    return chosen


def read_claims(path: str | os.PathLike, *, layer: str | None = None, to_crs: Any = None,
                schema: str | None = None, encoding: str | None = None) -> Any:
    """Read a national parcel file into the common schema (GeoDataFrame indexed 0..n-1)."""
    from eolab._memory import release_freed_memory, share_strings

    raw = read_raw(path, layer, encoding=encoding)
    out = to_common(raw, _choose_schema(raw, schema, path), source=Path(path).name)
    del raw
    for c in out.columns:  # crop names, codes, countries: one string object per distinct value
        if c != out.geometry.name and out[c].dtype == object:
            out[c] = share_strings(out[c].to_numpy())
    out = out.to_crs(to_crs) if to_crs is not None else out
    release_freed_memory()  # the raw table's and the readers' freed pages (a country's file: ~100 MB)
    return out

