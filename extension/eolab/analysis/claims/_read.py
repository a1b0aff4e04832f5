"""Reading a claims file (GeoPackage, Shapefile, GeoJSON, GeoParquet, fiboa) into the common schema."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from eolab.analysis.claims._schemas import (
    COLUMNS,
    FIBOA_NAMES,
    ClaimsWarning,
    Schema,
    _schema_folders,
    detect_schema,
    schemas,
    text_column,
)
from eolab.analysis.claims._text import check_text
from eolab.errors import EolabError

_VECTOR_EXTS = (".gpkg", ".shp", ".geojson", ".json", ".fgb", ".gml")


def _open_path(path: Path, layer: str | None) -> tuple[str, str | None, bool]:
    """A GDAL path for a vector file, a zipped one or a folder; the layer to read when the choice
    was a file inside a zip; whether it is a Shapefile (the only format with a code page)."""
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile as exc:
            raise EolabError(f"{path.name} is not a readable zip file", hint="re-download the file") from exc
        # macOS archivers add __MACOSX/._NAME resource forks beside every file: not data
        data = [n for n in names if not n.startswith("__MACOSX/") and not Path(n).name.startswith("._")]
        every = [n for n in data if n.lower().endswith(_VECTOR_EXTS)]
        if not every:
            raise EolabError(f"{path.name} holds no vector file", hint=f"it contains: {', '.join(data[:10])}")
        if layer is not None:
            named = [n for n in every if layer in (Path(n).stem, Path(n).name, n)]
            if named:
                return f"/vsizip/{path}/{named[0]}", None, named[0].lower().endswith(".shp")
        # A .json beside other data files is their metadata, not data; any other two files are a choice
        # to make (a zip of this year's Shapefile and last year's GeoPackage must not be read at random).
        others = [n for n in every if not n.lower().endswith(".json")]
        hits = others or every  # .json beside other data files: metadata (portals add it to downloads)
        hits.sort(key=lambda n: next(i for i, ext in enumerate(_VECTOR_EXTS) if n.lower().endswith(ext)))
        if len(hits) > 1 and layer is None:
            raise EolabError(f"{path.name} holds {len(hits)} vector files: {', '.join(hits[:10])}",
                             hint="name the one to read: layer='NAME' (eolab claims check --layer NAME)")
        return f"/vsizip/{path}/{hits[0]}", layer, hits[0].lower().endswith(".shp")
    shapefile = path.suffix.lower() in (".shp", ".dbf") or (path.is_dir() and any(path.glob("*.shp")))
    return str(path), layer, shapefile


PARQUET = (".parquet", ".geoparquet")


def _is_parquet(path: Path) -> bool:
    if path.suffix.lower() in PARQUET:
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PAR1"  # a GeoParquet under another name
    except OSError:
        return False


def read_raw(path: str | os.PathLike, layer: str | None = None, *, encoding: str | None = None) -> Any:
    """The file as published (GeoDataFrame): GeoParquet (fiboa included) or any vector format GDAL
    reads (zip included). ``encoding``: the text encoding of a Shapefile/DBF when its .cpg is missing
    or wrong (e.g. "cp1257"). A file with several layers needs ``layer``."""
    import codecs

    import geopandas as gpd
    import pyogrio

    path = Path(path)
    if not path.exists():
        raise EolabError(f"parcel file {path} does not exist")
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise EolabError(f"unknown text encoding {encoding!r}", hint="e.g. cp1257, cp1250, latin-1, utf-8") from exc
    try:
        if path.is_file() and _is_parquet(path):
            if encoding:
                raise EolabError(f"encoding={encoding!r} applies to Shapefiles (.dbf) only; {path.name} is GeoParquet, "
                                 "whose text is UTF-8", hint="repair text garbled inside the file with ftfy.fix_text")
            gdf = gpd.read_parquet(path)
        else:
            src, layer, shapefile = _open_path(path, layer)
            if encoding and not shapefile:
                raise EolabError(f"encoding={encoding!r} applies to Shapefiles (.dbf) only; {path.name} is not one",
                                 hint="GeoPackage and GeoJSON text is UTF-8 by definition; repair text garbled "
                                      "inside the file with ftfy.fix_text")
            layers = pyogrio.list_layers(src)
            names = [str(name) for name, _ in layers]
            if layer is None:
                polys = [str(name) for name, geom in layers if geom and "polygon" in str(geom).lower()]
                if len(polys) > 1 or (not polys and len(layers) > 1):
                    raise EolabError(f"{path.name} has {len(layers)} layers: {', '.join(names)}",
                                     hint="name the one to read: layer='NAME' (eolab claims check --layer NAME)")
                layer = polys[0] if polys else names[0]
            elif layer not in names:
                raise EolabError(f"{path.name} has no layer {layer!r}", hint="its layers: " + ", ".join(names))
            gdf = gpd.read_file(src, layer=layer, **({"encoding": encoding} if encoding else {}))
    except EolabError:
        raise
    except Exception as exc:  # pyogrio/GDAL/pyarrow raise DataSourceError, ArrowInvalid, ValueError, OSError ...
        text = f"{type(exc).__name__} {exc}".lower()
        if ("decode" in text or "codec" in text) and not _is_parquet(path):  # e.g. a .cpg naming UTF-8 over cp1250
            raise EolabError(f"cannot read the text of parcel file {path.name}: {exc}".splitlines()[0],
                             hint="it is not in the code page the file names (its .cpg): pass the right one, "
                                  "e.g. encoding='cp1250' (Central European), 'cp1257' (Baltic) or 'cp1252' "
                                  "(Western); eolab claims check --encoding NAME") from exc
        raise EolabError(f"cannot read parcel file {path.name}: {exc}".splitlines()[0],
                         hint="is it a GeoPackage, GeoParquet, Shapefile (zip) or GeoJSON?") from exc
    if len(gdf) == 0:
        raise EolabError(f"{path.name} has no rows", hint="is it the right file or layer?")
    active = getattr(gdf, "_geometry_column_name", None)
    if active not in gdf or gdf.geometry.isna().all():
        raise EolabError(f"{path.name} has no geometries", hint="parcels need polygons")
    if active != "geometry" and "geometry" not in gdf:  # e.g. "geom" (DuckDB, QGIS, ogr2ogr)
        gdf = gdf.rename_geometry("geometry")
    if gdf.crs is None:
        raise EolabError(f"{path.name} has no coordinate reference system", hint="add a .prj / set the CRS")
    if gdf.crs.is_geographic:
        x0, y0, x1, y1 = gdf.total_bounds
        if not (-180.5 <= x0 <= x1 <= 360 and -90.5 <= y0 <= y1 <= 90.5):
            raise EolabError(f"{path.name} says {gdf.crs.to_string()} (longitude/latitude) but its coordinates span "
                             f"x {x0:.0f}…{x1:.0f}, y {y0:.0f}…{y1:.0f}: they are projected",
                             hint="a GeoJSON without a 'crs' member is read as WGS 84: write the file with its "
                                  "CRS, or as GeoPackage/Shapefile with a .prj")
    # Columns in the schemas' spelling before any schema is chosen (detection, schema=, the report).
    gdf, respelt = _known_spellings(gdf, schemas())
    gdf.attrs["eolab:respelt"] = respelt
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


def _schema_columns(schema: Schema) -> list[str]:
    """The file columns a schema reads."""
    cols = []
    for value in (schema.spec.get("columns") or {}).values():
        if isinstance(value, str):
            cols.append(value)
        elif isinstance(value, dict):
            cols += [v for v in value.get("join", [])] + ([value["column"]] if "column" in value else [])
    cols += [c for c in (schema.country_column, schema.taxonomy.get("hcat3_column")) if c]
    return cols + list(schema.extra.values())


def _known_spellings(gdf: Any, candidates: list) -> tuple[Any, list[str]]:
    """Columns a schema names, written with other capitals or surrounding spaces ("Crop_Code ",
    "GEWAS") or cut to a Shapefile's 10 characters ("area_decla"), renamed to the schema's spelling
    (never over a column already so spelt)."""
    exact = {str(col) for s in candidates for col in (*s.required, *_schema_columns(s))}
    known: dict[str, str | None] = {}
    cut: dict[str, str | None] = {}
    for col in sorted(exact):  # a spelling two schemas use differently ("id", "ID") is left alone (None)
        folded = col.strip().casefold()
        known[folded] = col if known.get(folded, col) == col else None
        if len(col) > 10:
            cut[folded[:10]] = col if cut.get(folded[:10], col) == col else None
    renames = {}
    for c in gdf.columns:
        if c == gdf.geometry.name or not isinstance(c, str) or c in exact:
            continue
        k = known.get(c.strip().casefold()) or (cut.get(c.strip().casefold()) if len(c.strip()) == 10 else None)
        if k and k not in gdf.columns and k not in renames.values():
            renames[c] = k
    if not renames:
        return gdf, []
    said = ", ".join(f"{c!r} as {k!r}" for c, k in list(renames.items())[:5])
    return gdf.rename(columns=renames), [f"columns read by the schema's spelling: {said}"]


def _names_filled(names: Any, codes: Any, ids: Any, column: str, notes: list[str]) -> list[str]:
    """Crop names with the blank ones filled: the CAP checks tell crops apart by name, so blank names
    would make one crop of different codes. A blank takes the name other parcels of its code carry
    (where they agree on one), else the code itself; a note says how many."""
    from collections import Counter, defaultdict

    names = [v if v is not None else "" for v in names]
    blank = [i for i, v in enumerate(names) if not v.strip()]
    if not blank:
        return names
    codes, ids = list(codes), list(ids)
    named: dict[str, Counter] = defaultdict(Counter)
    for name, code in zip(names, codes):
        if name.strip():
            named[code][name] += 1
    for i in blank:
        known = named.get(codes[i])
        names[i] = next(iter(known)) if known and len(known) == 1 else (codes[i] or "")
    first = ids[blank[0]]
    notes.append(f"{len(blank)} parcels have no crop name in {column!r} (e.g. {first}): named after their crop "
                 "code (the name other parcels of that code carry, else the code itself)")
    return names


def _polygon_area_ha(gdf: Any) -> np.ndarray:
    """Each polygon's area in ha on the ground: a CRS that is not ground metres (degrees, feet, Web
    Mercator) goes through UTM."""
    from eolab.analysis.claims._metric import in_metres

    return in_metres(gdf).geometry.area.values / 1e4


def _area_notes(declared: np.ndarray, polygon: np.ndarray, ids: Any, schema: Schema) -> list[str]:
    """Declared areas far from their polygons': a wrong unit in the schema, or rows to look at."""
    ok = polygon > 1e-4
    if not ok.any():
        return []
    ratio = declared[ok] / polygon[ok]
    notes = []
    median = float(np.median(ratio))
    unit = "m2" if schema.area_unit == "ha" else "ha"
    if median > 100 or median < 0.01:
        notes.append(f"declared areas in {schema.area!r} are typically {median:.3g} × the polygons' areas: is the "
                     f"column in {unit}? (schema {schema.name} says {schema.area_unit})")
    far = np.flatnonzero(ok)[(ratio > 10) | (ratio < 0.1)]
    if far.size and not notes:
        notes.append(f"{far.size} parcels declare an area under a tenth or over ten times their polygon's, e.g. "
                     + ", ".join(f"{ids.iloc[i]} ({declared[i]:.3g} ha declared, {polygon[i]:.3g} ha drawn)"
                                 for i in far[:3]))
    return notes


def to_common(gdf: Any, schema: Schema | None = None, *, source: str = "") -> Any:
    """Map a raw national table to the common schema; raises EolabError naming bad rows. Adds the
    crop's HCAT3 code and name (``hcat3_code``, ``hcat3_name``; '' where the list has none) and
    ``year`` where the schema gives one. Warnings (:class:`ClaimsWarning`): mis-decoded names,
    crops without an HCAT3 code; both also in ``attrs["eolab:ingest"]["warnings"]``."""
    import warnings

    import geopandas as gpd
    import pandas as pd

    from eolab.analysis import taxonomy

    gdf, respelt = _known_spellings(gdf, [schema] if schema else schemas())
    respelt = list(gdf.attrs.get("eolab:respelt") or []) + respelt
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
        if dropped and not len(gdf):
            raise EolabError(f"no claims{where}: all {dropped} rows are set aside as not claims ("
                             + "; ".join(f"{r}: {n}" for r, n in reasons.items()) + ")",
                             hint="is it the declarations layer (not the landscape elements)? nothing was written")
    out = pd.DataFrame(index=range(len(gdf)))
    found = "columns found: " + (", ".join(str(c) for c in gdf.columns if c != gdf.geometry.name) or "(none)")
    schema_file = f" (schema file {schema.source})" if schema.source else ""
    notes: list[str] = list(respelt)
    optional = set(schema.spec.get("optional") or [])  # columns the source may leave out
    try:
        ids = text_column(list(schema.parcel_id(gdf)))
    except KeyError as exc:
        raise EolabError(f"schema {schema.name}: the parcel id column {exc} is missing{where}", hint=found) from exc
    no_id = [i for i, v in enumerate(ids) if v is None or not v.strip()]
    if no_id:
        raise EolabError(f"{len(no_id)} parcels without a parcel id{where} (rows {', '.join(str(i) for i in no_id[:5])})",
                         hint="every claim needs its parcel id; nothing was written")
    out["parcel_id"] = ids
    if schema.farmer_id and schema.farmer_id not in gdf and schema.farmer_id not in optional:
        notes.append(f"the farmer id column {schema.farmer_id!r}{schema_file} is not in the file: no farmer ids")
    out["farmer_id"] = text_column(gdf[schema.farmer_id]) if schema.farmer_id and schema.farmer_id in gdf else None
    for column, what in ((schema.crop_code, "crop code"), (schema.crop_name, "crop name")):
        if column not in gdf and column not in optional:
            raise EolabError(f"schema {schema.name}: the {what} column {column!r} is missing{where}{schema_file}",
                             hint=found)
    out["crop_code"] = text_column(gdf[schema.crop_code])
    if schema.crop_name in gdf:
        out["crop_name"] = _names_filled(text_column(gdf[schema.crop_name]), out["crop_code"], out["parcel_id"],
                                         schema.crop_name, notes)
    else:
        notes.append(f"no crop name column {schema.crop_name!r}: the crop codes stand for the names")
        out["crop_name"] = [v or "" for v in out["crop_code"]]
    geoms = gdf.geometry.values
    bad_geom = np.flatnonzero(gdf.geometry.isna().values | gdf.geometry.is_empty.values)
    if bad_geom.size:
        ids = ", ".join(out["parcel_id"].iloc[bad_geom[:5]])
        raise EolabError(f"{bad_geom.size} parcels without geometry{where} (e.g. {ids})",
                         hint="fix or remove them; nothing was written")
    kinds = gdf.geometry.geom_type.values
    not_area = np.flatnonzero(~np.isin(kinds, ["Polygon", "MultiPolygon"]))
    if not_area.size:
        counts = pd.Series(kinds[not_area]).value_counts()
        raise EolabError(f"{not_area.size} parcels are not polygons{where} ("
                         + ", ".join(f"{k} ×{n}" for k, n in counts.items()) + "; e.g. "
                         + ", ".join(out["parcel_id"].iloc[not_area[:5]]) + ")",
                         hint="a parcel is an area: fix or remove them; nothing was written")
    invalid = np.flatnonzero(~gdf.geometry.is_valid.values)
    if invalid.size:
        notes.append(f"{invalid.size} parcels have invalid polygons (self-crossing or the like), e.g. "
                     + ", ".join(out["parcel_id"].iloc[invalid[:5]])
                     + ": their areas and image statistics may be wrong; repair with shapely.make_valid")
    metric_area = _polygon_area_ha(gdf)
    if schema.area and schema.area not in gdf and schema.area not in optional:
        raise EolabError(f"schema {schema.name}: the area column {schema.area!r} is missing{where}{schema_file}",
                         hint=found + " — declared areas are what the CAP area check compares against")
    if schema.area and schema.area in gdf:
        area = pd.to_numeric(gdf[schema.area], errors="coerce").values.astype(float)
        bad = np.flatnonzero(~np.isfinite(area) | (area < 0))
        if bad.size:
            ids = ", ".join(out["parcel_id"].iloc[bad[:5]])
            raise EolabError(f"{bad.size} parcels with a missing or invalid area in {schema.area!r}{where} (e.g. {ids})",
                             hint="fix the values; nothing was written")
        out["area_declared_ha"] = area / 1e4 if schema.area_unit == "m2" else area
        notes += _area_notes(out["area_declared_ha"].values, metric_area, out["parcel_id"], schema)
    else:
        if schema.area:
            notes.append(f"no area column {schema.area!r}: declared areas are the polygons' areas")
        out["area_declared_ha"] = metric_area
    missing_crop = np.flatnonzero([v is None or not v.strip() for v in out["crop_code"]])
    if missing_crop.size:
        ids = ", ".join(out["parcel_id"].iloc[missing_crop[:5]])
        raise EolabError(f"{missing_crop.size} parcels without a crop code in {schema.crop_code!r}{where} (e.g. {ids})",
                         hint="every claim needs a declared crop; nothing was written")
    dupes = out["parcel_id"][out["parcel_id"].duplicated()].unique()
    if dupes.size:
        raise EolabError(f"{dupes.size} parcel ids occur more than once{where} (e.g. {', '.join(dupes[:5])})",
                         hint="parcel ids must be unique; nothing was written")
    out["country"] = (text_column(gdf[schema.country_column])
                      if schema.country_column and schema.country_column in gdf else schema.country)
    schema_column = (schema.spec.get("columns") or {}).get("schema")
    out["schema"] = ([v or schema.name for v in text_column(gdf[schema_column])]
                     if schema_column and schema_column in gdf else schema.name)
    hcat, how = _hcat_column(gdf, schema, out["crop_code"].values, out["crop_name"].values)
    names = taxonomy.hcat3_names()
    out["hcat3_code"] = hcat
    out["hcat3_name"] = [names.get(h, "") for h in hcat]
    year = schema.year or {}
    if "value" in year:
        out["year"] = int(year["value"])
    elif year.get("column") in gdf:
        raw_year = gdf[year["column"]]
        years = pd.to_numeric(raw_year, errors="coerce")
        lost = np.flatnonzero(years.isna().values & raw_year.notna().values)
        if lost.size:
            notes.append(f"{lost.size} parcels have a year in {year['column']!r} that is not a number (e.g. "
                         f"{raw_year.iloc[lost[0]]!r} of {out['parcel_id'].iloc[lost[0]]}): they have no year")
        out["year"] = years.round().astype("Int64").values
    elif year.get("column") and year["column"] not in optional:
        notes.append(f"the year column {year['column']!r}{schema_file} is not in the file: no year")
    for common, col in schema.extra.items():
        if col in gdf:
            out[common] = text_column(gdf[col])
        elif col not in optional:
            notes.append(f"the extra column {col!r} ({common}){schema_file} is not in the file")
    if schema.spec.get("keep_other_columns"):
        # a file eolab wrote (common schema or fiboa): what it carried besides comes back too
        used = set(_schema_columns(schema)) | set(COLUMNS) | set(FIBOA_NAMES.values()) | {
            "hcat3_code", "hcat3_name", "year", gdf.geometry.name}
        for col in gdf.columns:
            if col not in used and col not in out:
                out[col] = gdf[col].values
    result = gpd.GeoDataFrame(out, geometry=geoms, crs=gdf.crs)
    notes = check_text(out["crop_name"].values, column=schema.crop_name) + notes
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
    if to_crs is not None:
        try:
            out = out.to_crs(to_crs)
        except Exception as exc:  # pyproj CRSError, a transformation that fails
            raise EolabError(f"cannot project the claims to {to_crs!r}: {exc}".splitlines()[0],
                             hint="give an EPSG code such as 'EPSG:32634'") from exc
    release_freed_memory()  # the raw table's and the readers' freed pages (a country's file: ~100 MB)
    return out

