"""Farmers' claims (parcel declarations) from national IACS/GSAA formats, mapped to one schema.

Common schema (one row per declared parcel, geometry in the file's CRS unless ``to_crs`` is given):

=================== =========================================================
parcel_id           str, unique within the file
farmer_id           str or None (not published in every country)
crop_code           str, the national crop code
crop_name           str, the national crop name
area_declared_ha    float, the declared area (computed from the geometry where no area is given)
country             ISO code of the schema ("HU" for the eolab demo)
schema              the mapping used
=================== =========================================================

Known schemas (detected from the columns): the eolab demo, Slovenia (EuroCrops), Austria (INSPIRE
Schläge), the Netherlands (BRP gewaspercelen), Denmark (Marker), Finland (kasvulohko), Brandenburg
(antrag). An unknown schema raises an error that lists the columns found; a malformed file raises
before anything is written.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from eolab.errors import EolabError

COLUMNS = ["parcel_id", "farmer_id", "crop_code", "crop_name", "area_declared_ha", "country", "schema"]


@dataclass(frozen=True)
class Schema:
    name: str
    country: str
    required: tuple[str, ...]
    parcel_id: Callable[[Any], Any]
    crop_code: str
    crop_name: str
    farmer_id: str | None = None
    area: str | None = None  # column holding the declared area
    area_unit: str = "ha"  # "ha" or "m2"
    extra: dict[str, str] = field(default_factory=dict)  # kept columns: common name -> source column
    # rows of the file that are not claims by the format's own rules (e.g. non-eligible features)
    not_claims: Callable[[Any], Any] | None = None
    not_claims_reason: str = ""


def _col(name: str) -> Callable[[Any], Any]:
    return lambda df: df[name]


def _join(*names: str, sep: str = "-") -> Callable[[Any], Any]:
    def f(df):
        parts = [df[n].astype(str).str.replace(r"\.0$", "", regex=True) for n in names]
        out = parts[0]
        for p in parts[1:]:
            out = out + sep + p
        return out
    return f


def _row_number(prefix: str) -> Callable[[Any], Any]:
    return lambda df: [f"{prefix}{i + 1:06d}" for i in range(len(df))]


SCHEMAS: list[Schema] = [
    Schema("eolab-demo", "HU", ("parcel_id", "crop_code", "crop_name", "area_declared_ha"), _col("parcel_id"),
           "crop_code", "crop_name", farmer_id="farmer_id", area="area_declared_ha"),
    Schema("si-eurocrops", "SI", ("ID", "RASTLINA", "SIFRA_KMRS", "AREA"), _col("ID"), "SIFRA_KMRS", "RASTLINA",
           area="AREA", area_unit="m2", extra={"hcat_code": "EC_hcat_c", "hcat_name": "EC_hcat_n"}),
    Schema("at-inspire-schlaege", "AT", ("GEO_ID", "SNAR_CODE", "SNAR_BEZEICHNUNG", "SL_FLAECHE_BRUTTO_HA"),
           _col("GEO_ID"), "SNAR_CODE", "SNAR_BEZEICHNUNG", area="SL_FLAECHE_BRUTTO_HA"),
    Schema("nl-brp", "NL", ("gewas", "gewascode", "category"), _row_number("NL-"), "gewascode", "gewas",
           extra={"category": "category"}),
    Schema("dk-marker", "DK", ("Marknr", "Journalnr", "Afgkode", "Afgroede"), _join("Journalnr", "Marknr", sep="/"),
           "Afgkode", "Afgroede", farmer_id="CVR", area="IMK_areal"),
    Schema("fi-kasvulohko", "FI", ("PERUSLOHKOTUNNUS", "LOHKONUMERO", "KASVIKOODI"),
           _join("PERUSLOHKOTUNNUS", "LOHKONUMERO"), "KASVIKOODI", "KASVIKOODI_SELITE_FI", area="PINTA_ALA"),
    Schema("de-bb-antrag", "DE-BB", ("ref_ident", "gp_xx", "code", "code_bez", "groesse"),
           _join("ref_ident", "gp_xx", "tf_typ"), "code", "code_bez", area="groesse",
           not_claims=lambda df: df["code"].isna() & (df["tf_typ"] == "NBF") if "tf_typ" in df else df["code"].isna(),
           not_claims_reason="non-eligible features (tf_typ NBF) carry no crop"),
]


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


def read_raw(path: str | os.PathLike, layer: str | None = None) -> Any:
    """The file as published (GeoDataFrame), any format GDAL reads (zip included)."""
    import geopandas as gpd
    import pyogrio

    path = Path(path)
    if not path.exists():
        raise EolabError(f"parcel file {path} does not exist")
    src = _open_path(path)
    try:
        layers = pyogrio.list_layers(src)
        if layer is None:
            polys = [name for name, geom in layers if geom and "polygon" in str(geom).lower()]
            layer = polys[0] if polys else layers[0][0]
        gdf = gpd.read_file(src, layer=layer)
    except EolabError:
        raise
    except Exception as exc:  # pyogrio/GDAL raise DataSourceError, DataLayerError, OSError ...
        raise EolabError(f"cannot read parcel file {path.name}: {exc}".splitlines()[0],
                         hint="is it a GeoPackage, Shapefile (zip) or GeoJSON?") from exc
    if "geometry" not in gdf or gdf.geometry.isna().all():
        raise EolabError(f"{path.name} has no geometries", hint="parcels need polygons")
    if gdf.crs is None:
        raise EolabError(f"{path.name} has no coordinate reference system", hint="add a .prj / set the CRS")
    return gdf


def detect_schema(columns: Any) -> Schema:
    cols = set(columns)
    for schema in SCHEMAS:
        if set(schema.required) <= cols:
            return schema
    found = ", ".join(sorted(c for c in cols if c != "geometry"))
    known = "; ".join(f"{s.name} ({', '.join(s.required)})" for s in SCHEMAS)
    raise EolabError(f"unknown parcel schema; columns found: {found}",
                     hint=f"known schemas and their key columns: {known} — add a Schema to eolab.analysis.claims.SCHEMAS")


def to_common(gdf: Any, schema: Schema | None = None, *, source: str = "") -> Any:
    """Map a raw national table to the common schema; raises EolabError naming bad rows."""
    import geopandas as gpd
    import pandas as pd

    schema = schema or detect_schema(gdf.columns)
    where = f" in {source}" if source else ""
    dropped = 0
    if schema.not_claims is not None:
        skip = np.asarray(schema.not_claims(gdf), bool)
        dropped = int(skip.sum())
        gdf = gdf[~skip].reset_index(drop=True)
    out = pd.DataFrame(index=range(len(gdf)))
    out["parcel_id"] = (pd.Series(list(schema.parcel_id(gdf)), dtype=object).astype(str)
                        .str.replace(r"\.0$", "", regex=True).values)
    out["farmer_id"] = (gdf[schema.farmer_id].astype(str).str.replace(r"\.0$", "", regex=True).values
                        if schema.farmer_id and schema.farmer_id in gdf else None)
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
    out["country"] = schema.country
    out["schema"] = schema.name
    for common, col in schema.extra.items():
        if col in gdf:
            out[common] = gdf[col].astype(str).values
    result = gpd.GeoDataFrame(out, geometry=geoms, crs=gdf.crs)
    result.attrs["eolab:ingest"] = {"schema": schema.name, "rows_read": len(gdf) + dropped, "claims": len(result),
                                    "not_claims": dropped, "not_claims_reason": schema.not_claims_reason if dropped else ""}
    return result


def read_claims(path: str | os.PathLike, *, layer: str | None = None, to_crs: Any = None,
                schema: str | None = None) -> Any:
    """Read a national parcel file into the common schema (GeoDataFrame indexed 0..n-1)."""
    raw = read_raw(path, layer)
    chosen = None
    if schema is not None:
        by_name = {s.name: s for s in SCHEMAS}
        if schema not in by_name:
            raise EolabError(f"unknown schema name {schema!r}", hint="known: " + ", ".join(by_name))
        chosen = by_name[schema]
        missing = [c for c in chosen.required if c not in raw.columns]
        if missing:
            raise EolabError(f"{Path(path).name} lacks the {schema} columns {', '.join(missing)}",
                             hint="columns found: " + ", ".join(c for c in raw.columns if c != "geometry"))
    out = to_common(raw, chosen, source=Path(path).name)
    return out.to_crs(to_crs) if to_crs is not None else out


def ingest(path: str | os.PathLike, out: str | os.PathLike, **kwargs: Any) -> Path:
    """Read ``path`` into the common schema and write it to ``out`` (.gpkg) atomically: on any error
    nothing is written (a partial file never appears under ``out``)."""
    out = Path(out)
    common = read_claims(path, **kwargs)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    tmp.unlink(missing_ok=True)
    try:
        common.to_file(tmp, layer="claims", driver="GPKG")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
