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
hcat3_code          str, the crop's EuroCrops HCAT3 code ('' where its code list has none)
hcat3_name          str, the HCAT3 name
year                int, where the schema gives one
=================== =========================================================

Schemas are data: one YAML file per source (``claims_schemas/`` in the package: the eolab demo and
common schema, fiboa, Slovenia (EuroCrops), Austria (INSPIRE Schläge), the Netherlands (BRP
gewaspercelen), Denmark (Marker), Finland (kasvulohko), Brandenburg (antrag)); more in the folder
``EOLAB_CLAIMS_SCHEMA_DIR``. A file names the key columns that detect it, the columns of the common
schema, the rows that are not claims (e.g. landscape elements) and the crop-code list that maps the
crops to HCAT3 (:mod:`eolab.analysis.taxonomy`). GeoParquet and fiboa GeoParquet are read, and
:func:`ingest` / :func:`write_fiboa` write fiboa-compatible GeoParquet. Names are checked for
mis-decoded text (:func:`check_text`). An unknown schema raises an error that lists the columns
found and the schema folders; a malformed file raises before anything is written.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from eolab.errors import EolabError

COLUMNS = ["parcel_id", "farmer_id", "crop_code", "crop_name", "area_declared_ha", "country", "schema"]


#: the packaged schema files (one YAML per source); more in the folder of :func:`schema_dir_setting`
SCHEMA_DIR = Path(__file__).parent / "claims_schemas"


def schema_dir_setting() -> Path | None:
    """The user's folder of extra claim schemas: ``EOLAB_CLAIMS_SCHEMA_DIR`` (None when unset).
    Read through :mod:`eolab.settings`."""
    from eolab import settings

    value = settings.client().claims_schema_dir
    return Path(value).expanduser() if value else None


class ClaimsWarning(UserWarning):
    """Something in a claims file a user should look at (mis-decoded text, unmapped crops)."""


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
    # rows of the file that are not claims by the format's own rules (e.g. landscape elements)
    not_claims: Callable[[Any], Any] | None = None
    not_claims_reason: str = ""
    # from the schema file
    year: Any = None  # {"column": ...} or {"value": ...}
    country_column: str | None = None
    taxonomy: dict = field(default_factory=dict)  # code_list + key, or hcat3_column
    not_claims_rules: tuple = ()  # ((reason, mask function), ...)
    description: str = ""
    source: str = ""  # the schema file
    spec: dict = field(default_factory=dict)  # the file's content (for `eolab claims check`)


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


def _condition(column: str, test: Any) -> Callable[[Any], Any]:
    """One column test of a not-claims rule: null, a value, a list of values or {matches: regex}.
    A column the file lacks makes the test neutral (True), so a rule still applies to files of the
    same source published without that column."""
    def f(df):
        if column not in df:
            return np.ones(len(df), bool)
        col = df[column]
        if test is None:
            return col.isna().values
        if isinstance(test, dict) and "matches" in test:
            return col.astype(str).str.contains(str(test["matches"]), regex=True, na=False).values
        values = test if isinstance(test, list) else [test]
        return col.astype(str).str.replace(r"\.0$", "", regex=True).isin([str(v) for v in values]).values
    return f


def _rule(when: dict) -> Callable[[Any], Any]:
    tests = [_condition(c, t) for c, t in when.items()]
    known = list(when)

    def f(df):
        if not any(c in df for c in known):
            return np.zeros(len(df), bool)
        out = np.ones(len(df), bool)
        for t in tests:
            out &= np.asarray(t(df), bool)
        return out
    return f


def schema_from_dict(spec: dict, source: str = "") -> Schema:
    """A :class:`Schema` from the content of a schema file; raises EolabError naming the file."""
    where = f"schema file {source}" if source else "schema"
    if not isinstance(spec, dict):
        raise EolabError(f"{where} is not a mapping", hint="see the packaged examples in " + str(SCHEMA_DIR))
    missing = [k for k in ("name", "detect", "columns") if k not in spec]
    cols = spec.get("columns") or {}
    missing += [f"columns.{k}" for k in ("parcel_id", "crop_code") if k not in cols]
    tax = spec.get("taxonomy") or {}
    if not ({"code_list", "hcat3_column"} & set(tax)):
        missing.append("taxonomy.code_list or taxonomy.hcat3_column")
    if missing:
        raise EolabError(f"{where} lacks {', '.join(missing)}", hint="see the packaged examples in " + str(SCHEMA_DIR))
    pid = cols["parcel_id"]
    if isinstance(pid, str):
        parcel_id = _col(pid)
    elif isinstance(pid, dict) and "join" in pid:
        parcel_id = _join(*pid["join"], sep=str(pid.get("sep", "-")))
    elif isinstance(pid, dict) and "row_number" in pid:
        parcel_id = _row_number(str(pid["row_number"]))
    else:
        raise EolabError(f"{where}: columns.parcel_id must be a column, {{join: [...]}} or {{row_number: prefix}}")
    area = cols.get("area")
    area_col, unit = (area.get("column"), area.get("unit", "ha")) if isinstance(area, dict) else (area, "ha")
    if unit not in ("ha", "m2"):
        raise EolabError(f"{where}: area unit {unit!r} is not 'ha' or 'm2'")
    year = cols.get("year")
    year = {"column": year} if isinstance(year, str) else year
    country = spec.get("country", "")
    rules = tuple((str(r.get("reason", "not a claim")), _rule(r.get("when") or {})) for r in spec.get("not_claims") or [])

    def not_claims(df):
        out = np.zeros(len(df), bool)
        for _, f in rules:
            out |= f(df)
        return out

    return Schema(
        name=str(spec["name"]), country=str(country.get("default", "")) if isinstance(country, dict) else str(country),
        required=tuple(str(c) for c in spec["detect"]), parcel_id=parcel_id, crop_code=str(cols["crop_code"]),
        crop_name=str(cols.get("crop_name", cols["crop_code"])), farmer_id=cols.get("farmer_id"), area=area_col,
        area_unit=unit, extra=dict(spec.get("extra") or {}), not_claims=not_claims if rules else None,
        not_claims_reason="; ".join(r for r, _ in rules), year=year,
        country_column=country.get("column") if isinstance(country, dict) else None, taxonomy=dict(tax),
        not_claims_rules=rules, description=str(spec.get("description", "")), source=source, spec=spec)


def _load_folder(folder: Path) -> list[Schema]:
    import yaml

    out = []
    for path in sorted(folder.glob("*.y*ml")):
        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise EolabError(f"schema file {path} is not valid YAML: {exc}".splitlines()[0]) from exc
        out.append(schema_from_dict(spec, str(path)))
    return out


def schemas() -> list[Schema]:
    """Every known schema: the user's folder (``EOLAB_CLAIMS_SCHEMA_DIR``) first, then the packaged ones.
    A user file with a packaged schema's name replaces it."""
    user_dir = schema_dir_setting()
    user = []
    if user_dir is not None:
        if not user_dir.is_dir():
            raise EolabError(f"claims schema folder {user_dir} does not exist", hint="check EOLAB_CLAIMS_SCHEMA_DIR")
        user = _load_folder(user_dir)
    names = {s.name for s in user}
    return user + [s for s in SCHEMAS if s.name not in names]


SCHEMAS: list[Schema] = _load_folder(SCHEMA_DIR)  # the packaged ones


def _schema_folders() -> str:
    user = schema_dir_setting()
    return (f"{user} (EOLAB_CLAIMS_SCHEMA_DIR)" if user else "a folder named by EOLAB_CLAIMS_SCHEMA_DIR") + \
        f"; packaged: {SCHEMA_DIR}"


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


def detect_schema(columns: Any) -> Schema:
    """The most specific known schema whose key columns are all in ``columns`` (user schemas win ties)."""
    cols = set(columns)
    known = schemas()
    fits = [s for s in known if set(s.required) <= cols]
    if fits:
        return max(fits, key=lambda s: len(s.required))  # max keeps the first of equals: user files first
    found = ", ".join(sorted(str(c) for c in cols if c != "geometry"))
    keys = "; ".join(f"{s.name} ({', '.join(s.required)})" for s in known)
    raise EolabError(f"unknown parcel schema; columns found: {found}",
                     hint=f"known schemas and their key columns: {keys} — describe the file in a schema YAML "
                          f"in {_schema_folders()}")


# ---------------------------------------------------------------------------- text encoding checks
#: letters of the cp1252 reading that are where cp1257 (Baltic) / cp1250 (Central European) keep
#: their own letters (Ž ž Š š → Þ þ Ð ð, ą → à, ė → ë, ų → ø, ū → û, ł → ³, ą → ¹ ...). Þ/Ð are
#: Icelandic only and the symbols never occur inside a word, so they flag a wrong code page.
_SUSPECT = set("ÞþÐð¹³¾¼½ºª¿¤¦")
_LETTERS = {  # frequent letters of the languages written in each code page (for naming the repair)
    "cp1257": set("ąčęėįšųūžĄČĘĖĮŠŲŪŽāēģīķļņōĀĒĢĪĶĻŅŌõÕ"),
    "cp1250": set("čćďěňřšťůžźżłńśąęőűĺľŕČĆĎĚŇŘŠŤŮŽŹŻŁŃŚĄĘŐŰĹĽŔđĐ"),
}


def check_text(values: Any, *, column: str = "") -> list[str]:
    """Warnings about mis-decoded text in ``values`` (a column of names), each naming the repair:
    UTF-8 read as a single-byte code page (mojibake, found by ftfy), a Baltic or Central European
    code page read as cp1252/Latin-1, and characters already lost at export ('?' inside a word)."""
    import ftfy

    texts = sorted({str(v) for v in values if isinstance(v, str) and v})
    what = f"column {column!r}" if column else "names"
    out = []
    mojibake = []
    for t in texts:
        fixed, steps = ftfy.fix_encoding_and_explain(t)
        if fixed != t and steps and any(op == "decode" for op, _ in steps):
            mojibake.append((t, fixed, steps))
    if mojibake:
        t, fixed, steps = mojibake[0]
        enc = next((arg for op, arg in steps if op == "encode"), "latin-1")
        dec = next((arg for op, arg in steps if op == "decode"), "utf-8")
        out.append(f"{len(mojibake)} values of {what} look mis-decoded ({dec} text read as {enc}), e.g. {t!r} → "
                   f"{fixed!r}: re-read with encoding='{dec}' (or repair with ftfy.fix_text)")
    garbled = {t for t, _, _ in mojibake}
    suspect = [t for t in texts if _SUSPECT & set(t) and t not in garbled]
    if suspect:
        joined = " ".join(suspect)
        best, score = None, 0
        for cand, letters in _LETTERS.items():
            try:
                redone = joined.encode("cp1252").decode(cand)
            except (UnicodeEncodeError, UnicodeDecodeError):
                continue
            n = sum(ch in letters for ch in redone) - sum(ch in _SUSPECT for ch in redone)
            if n > score:
                best, score = cand, n
        if best:
            example = suspect[0]
            out.append(f"{len(suspect)} values of {what} look like {best} text read as cp1252, e.g. {example!r} → "
                       f"{example.encode('cp1252').decode(best)!r}: re-read with encoding='{best}' "
                       f"(read_claims(..., encoding='{best}'), eolab claims check --encoding {best}, or a .cpg file)")
    lost = [t for t in texts if re.search(r"\?(?=[^\W\d_])", t)]  # a "?" before a letter: "je?men"
    if lost:
        out.append(f"{len(lost)} values of {what} hold '?' inside a word, e.g. {lost[0]!r}: characters were lost "
                   "when the file was exported (not repairable here; the crop codes are used for the taxonomy)")
    return out


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
    raw = read_raw(path, layer, encoding=encoding)
    out = to_common(raw, _choose_schema(raw, schema, path), source=Path(path).name)
    return out.to_crs(to_crs) if to_crs is not None else out


# fiboa (https://fiboa.org) GeoParquet: core fields id/area(ha)/geometry, the crop extension's
# crop:code/crop:name and the EuroCrops HCAT extension's ec:hcat_code/ec:hcat_name; the other columns
# keep their names. The version/extension list goes into the Parquet metadata key "fiboa" as the
# spec asks; geopandas writes the GeoParquet "geo" metadata.
FIBOA_VERSION = "0.2.0"
FIBOA_EXTENSIONS = ["https://fiboa.github.io/crop-extension/v0.1.0/schema.yaml",
                    "https://fiboa.github.io/hcat-extension/v0.1.0/schema.yaml"]
_FIBOA_NAMES = {"parcel_id": "id", "area_declared_ha": "area", "crop_code": "crop:code", "crop_name": "crop:name",
                "hcat3_code": "ec:hcat_code", "hcat3_name": "ec:hcat_name", "farmer_id": "eolab:farmer_id",
                "country": "eolab:country", "schema": "eolab:schema", "year": "eolab:year"}


def write_fiboa(table: Any, out: str | os.PathLike) -> Path:
    """Write claims (or a result table with the common columns) as fiboa-compatible GeoParquet,
    atomically (a partial file never appears under ``out``)."""
    import json

    import pyarrow.parquet as pq

    out = Path(out)
    df = table.reset_index() if table.index.name == "parcel_id" else table
    df = df.rename(columns={k: v for k, v in _FIBOA_NAMES.items() if k in df})
    if "id" not in df:
        raise EolabError("a fiboa file needs parcel ids", hint="the table has no parcel_id column")
    if "ec:hcat_code" in df:
        df["ec:hcat_code"] = df["ec:hcat_code"].astype(str)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    try:
        df.to_parquet(tmp, index=False)
        t = pq.read_table(tmp)
        meta = dict(t.schema.metadata or {})
        meta[b"fiboa"] = json.dumps({"fiboa_version": FIBOA_VERSION, "fiboa_extensions": FIBOA_EXTENSIONS}).encode()
        pq.write_table(t.replace_schema_metadata(meta), tmp)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def ingest(path: str | os.PathLike, out: str | os.PathLike, **kwargs: Any) -> Path:
    """Read ``path`` into the common schema and write it to ``out`` atomically: .gpkg (layer
    "claims") or .parquet (fiboa GeoParquet). On any error nothing is written."""
    out = Path(out)
    common = read_claims(path, **kwargs)
    if out.suffix.lower() in PARQUET:
        return write_fiboa(common, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    tmp.unlink(missing_ok=True)
    try:
        common.to_file(tmp, layer="claims", driver="GPKG")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        if "join" in value:
            return f"{value.get('sep', '-')!r}.join({', '.join(value['join'])})"
        if "row_number" in value:
            return f"row number, prefix {value['row_number']!r}"
        if "value" in value:
            return f"constant {value['value']}"
        if "column" in value:
            return f"{value['column']}" + (f" [{value['unit']}]" if "unit" in value else "")
    return str(value)


def check_report(path: str | os.PathLike, *, layer: str | None = None, schema: str | None = None,
                 encoding: str | None = None, top: int = 15) -> str:
    """What ``eolab claims check FILE`` prints: the columns found, the schema chosen and how each
    common field maps, rows set aside, the crops with their HCAT3 codes and CAP groups, warnings."""
    import warnings

    from eolab.analysis import taxonomy

    raw = read_raw(path, layer, encoding=encoding)
    chosen = _choose_schema(raw, schema, path) or detect_schema(raw.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClaimsWarning)
        c = to_common(raw, chosen, source=Path(path).name)
    info = c.attrs["eolab:ingest"]
    lines = [f"file: {path}", f"rows: {len(raw)}, CRS {raw.crs.to_string() if raw.crs else '?'}",
             "columns found: " + ", ".join(str(x) for x in raw.columns if x != "geometry"),
             f"schema: {chosen.name} ({chosen.description or chosen.country}) from {chosen.source or 'the package'}",
             "mapping:"]
    for key, value in (chosen.spec.get("columns") or {}).items():
        lines.append(f"  {key:<10} <- {_describe(value)}")
    lines.append(f"  {'hcat3':<10} <- {info['taxonomy']}")
    lines.append(f"claims: {info['claims']}; not claims: {info['not_claims']}"
                 + "".join(f"\n  {n:>5}  {r}" for r, n in info["not_claims_by_reason"].items()))
    lines.append(f"crops mapped to HCAT3: {info['hcat3_share']:.1%} of claims")
    counts = (c.assign(group=[taxonomy.crop_group(h) for h in c.hcat3_code])
              .groupby(["crop_code", "crop_name", "hcat3_code", "hcat3_name", "group"], dropna=False)
              .size().sort_values(ascending=False))
    lines.append(f"crops ({len(counts)} kinds; top {min(top, len(counts))}): code, name → HCAT3, CAP group, claims")
    for (code, name, h, hname, group), n in counts.head(top).items():
        lines.append(f"  {code:>8}  {str(name)[:40]:<40} → {h or '-':>10} {hname or '(none)':<32} {group:<16} {n}")
    groups = c.hcat3_code.map(taxonomy.crop_group).value_counts()
    lines.append("CAP groups: " + ", ".join(f"{g} {n}" for g, n in groups.items()))
    lines += [f"warning: {w}" for w in info["warnings"]]
    return "\n".join(lines)
