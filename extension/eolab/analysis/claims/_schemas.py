"""National claims schemas as data (YAML files): loading, validating, detecting."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from eolab.errors import EolabError

COLUMNS = ["parcel_id", "farmer_id", "crop_code", "crop_name", "area_declared_ha", "country", "schema"]

# the common columns' names in fiboa GeoParquet (written by _fiboa, known to the reader)
FIBOA_NAMES = {"parcel_id": "id", "area_declared_ha": "area", "crop_code": "crop:code", "crop_name": "crop:name",
               "hcat3_code": "ec:hcat_code", "hcat3_name": "ec:hcat_name", "farmer_id": "eolab:farmer_id",
               "country": "eolab:country", "schema": "eolab:schema", "year": "eolab:year"}


#: the packaged schema files (one YAML per source); more in the folder of :func:`schema_dir_setting`
SCHEMA_DIR = Path(__file__).parent / "schemas"


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


def text_value(v: Any) -> str | None:
    """A cell as the text it was published as: None when missing (never "None"/"nan"), whole
    numbers a reader turned into floats (DBF, Excel exports) without their ".0" or exponent."""
    import math

    import pandas as pd

    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return None
        return str(int(v)) if float(v).is_integer() else repr(float(v))
    return str(v)


def text_column(values: Any) -> list:
    """:func:`text_value` of each value (one call per distinct value: national files repeat a few
    hundred crop names over a million rows)."""
    import pandas as pd

    if isinstance(values, pd.Series) and values.dtype.kind == "M":  # dates as pandas prints them ("2023-05-01")
        return [None if pd.isna(v) else t for v, t in zip(values, values.astype(str))]
    series = pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values.astype(object)
    cache: dict = {}
    out = []
    for v in series.tolist():
        try:
            out.append(cache[v] if v in cache else cache.setdefault(v, text_value(v)))
        except TypeError:  # unhashable
            out.append(text_value(v))
    return out


def _join(*names: str, sep: str = "-") -> Callable[[Any], Any]:
    def f(df):
        parts = [text_column(df[n]) for n in names]
        return [None if any(p is None for p in row) else sep.join(row) for row in zip(*parts)]
    return f


def _row_number(prefix: str) -> Callable[[Any], Any]:
    return lambda df: [f"{prefix}{i + 1:06d}" for i in range(len(df))]


def _repaired(col: Any) -> Any:
    """The text of ``col`` with mojibake repaired (ftfy, per distinct value), or None when nothing
    changes: a rule on names must not miss rows whose names were mis-decoded in the file."""
    import ftfy
    import pandas as pd

    if col.dtype != object:
        return None
    uniques = [u for u in pd.unique(col.dropna()) if isinstance(u, str)]
    if len(uniques) > 100_000:
        return None
    fixed = {u: ftfy.fix_encoding(u) for u in uniques}
    if all(k == v for k, v in fixed.items()):
        return None
    return col.map(lambda v: fixed.get(v, v) if isinstance(v, str) else v)


def _condition(column: str, test: Any) -> Callable[[Any], Any]:
    """One column test of a not-claims rule: null, a value, a list of values or {matches: regex};
    text tests also match the mojibake-repaired text. A column the file lacks makes the test
    neutral (True), so a rule still applies to files of the same source published without that column."""
    def one(col):
        if isinstance(test, dict) and "matches" in test:
            return col.astype(str).str.contains(str(test["matches"]), regex=True, na=False).values
        values = test if isinstance(test, list) else [test]
        # "110.0" in a text column is the code 110, as a float column's 110.0 is
        whole = re.compile(r"\.0$")
        return pd_isin([whole.sub("", v) if v else v for v in text_column(col)],
                       {whole.sub("", text_value(v)) for v in values if v is not None})

    def f(df):
        if column not in df:
            return np.ones(len(df), bool)
        col = df[column]
        if test is None:
            return col.isna().values
        hit = one(col)
        fixed = _repaired(col)
        return hit if fixed is None else hit | one(fixed)
    return f


def pd_isin(values: list, wanted: set) -> np.ndarray:
    return np.fromiter((v in wanted for v in values), bool, len(values))


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


_TAXONOMY_KEYS = ("code", "name", "code,name", "name,code")


def _check_shapes(spec: dict, where: str) -> None:
    """Each field of a schema file has the shape it must have (a typo must not read as something else)."""
    import re

    hint = "see the packaged examples in " + str(SCHEMA_DIR)

    def bad(field, what):
        raise EolabError(f"{where}: {field} must be {what}, not {spec_value(field)!r}", hint=hint)

    def spec_value(field):
        value = spec
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def is_name(v):
        return isinstance(v, str) and v.strip() != ""

    detect = spec.get("detect")
    if not isinstance(detect, list) or not detect or not all(is_name(c) for c in detect):
        bad("detect", "a non-empty list of column names")
    if not isinstance(spec.get("columns"), dict):
        bad("columns", "a mapping (parcel_id: ..., crop_code: ...)")
    cols = spec["columns"]
    for key in ("crop_code", "crop_name", "farmer_id"):
        if key in cols and not is_name(cols[key]):
            bad(f"columns.{key}", "a column name")
    pid = cols.get("parcel_id")
    if isinstance(pid, dict) and "join" in pid and not (isinstance(pid["join"], list) and pid["join"]
                                                         and all(is_name(c) for c in pid["join"])):
        bad("columns.parcel_id", "{join: [column, column, ...]}")
    year = cols.get("year")
    if isinstance(year, dict) and not ({"value", "column"} & set(year)):
        bad("columns.year", "a column name, a year (2024) or {value: 2024}")
    if isinstance(year, dict) and "value" in year:
        try:
            int(year["value"])
        except (TypeError, ValueError):
            bad("columns.year", "a column name, a year (2024) or {value: 2024}")
    elif year is not None and not isinstance(year, (str, int, dict)) or isinstance(year, bool):
        bad("columns.year", "a column name, a year (2024) or {value: 2024}")
    area = cols.get("area")
    if area is not None and not (is_name(area) or (isinstance(area, dict) and is_name(area.get("column")))):
        bad("columns.area", "a column name or {column: NAME, unit: ha|m2}")
    extra = spec.get("extra")
    if extra is not None and not (isinstance(extra, dict) and all(is_name(v) for v in extra.values())):
        bad("extra", "a mapping of common name -> column")
    country = spec.get("country")
    if country is not None and not isinstance(country, (str, dict)):
        bad("country", "a country code or {column: NAME, default: CODE}")
    rules = spec.get("not_claims")
    if rules is not None:
        if not isinstance(rules, list) or not all(isinstance(r, dict) and isinstance(r.get("when"), dict) and r["when"]
                                                  for r in rules):
            bad("not_claims", "a list of {when: {column: test}, reason: text}")
        for rule in rules:
            for column, test in rule["when"].items():
                if isinstance(test, dict):
                    if set(test) != {"matches"}:
                        bad("not_claims", f"a list of tests (value, [values], null or {{matches: regex}}; {column}: {test!r})")
                    try:
                        re.compile(str(test["matches"]))
                    except re.error as exc:
                        raise EolabError(f"{where}: not_claims regex {test['matches']!r} for {column}: {exc}",
                                         hint=hint) from exc
    opt = spec.get("optional")
    if opt is not None and not (isinstance(opt, list) and all(is_name(c) for c in opt)):
        bad("optional", "a list of column names")
    tax = spec.get("taxonomy")
    if not isinstance(tax, dict):
        bad("taxonomy", "{code_list: NAME, key: code|name|code,name} or {hcat3_column: NAME}")
    if "key" in tax and str(tax["key"]).replace(" ", "") not in _TAXONOMY_KEYS:
        bad("taxonomy.key", "one of " + ", ".join(_TAXONOMY_KEYS))


def schema_from_dict(spec: dict, source: str = "") -> Schema:
    """A :class:`Schema` from the content of a schema file; raises EolabError naming the file."""
    where = f"schema file {source}" if source else "schema"
    if not isinstance(spec, dict):
        raise EolabError(f"{where} is not a mapping", hint="see the packaged examples in " + str(SCHEMA_DIR))
    missing = [k for k in ("name", "detect", "columns") if k not in spec]
    cols = spec.get("columns") if isinstance(spec.get("columns"), dict) else {}
    missing += [f"columns.{k}" for k in ("parcel_id", "crop_code") if k not in cols]
    tax = spec.get("taxonomy") if isinstance(spec.get("taxonomy"), dict) else {}
    if not ({"code_list", "hcat3_column"} & set(tax)):
        missing.append("taxonomy.code_list or taxonomy.hcat3_column")
    if missing:
        raise EolabError(f"{where} lacks {', '.join(missing)}", hint="see the packaged examples in " + str(SCHEMA_DIR))
    _check_shapes(spec, where)
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
    year = {"column": year} if isinstance(year, str) else {"value": year} if isinstance(year, int) else year
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

    out: list[Schema] = []
    for path in sorted(folder.glob("*.y*ml")):
        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise EolabError(f"schema file {path} is not valid YAML: {exc}".splitlines()[0]) from exc
        schema = schema_from_dict(spec, str(path))
        twin = next((s for s in out if s.name == schema.name), None)
        if twin is not None:  # detection would take one, schema=NAME the other
            raise EolabError(f"two schema files are named {schema.name!r}: {twin.source} and {path}",
                             hint="give each schema file its own name")
        out.append(schema)
    return out


def schemas() -> list[Schema]:
    """Every known schema: the user's folder (``EOLAB_CLAIMS_SCHEMA_DIR``) first, then the packaged ones.
    A user file with a packaged schema's name replaces it."""
    user_dir = schema_dir_setting()
    user = []
    if user_dir is not None:
        if not user_dir.is_dir():
            what = "is a file, not a folder" if user_dir.exists() else "does not exist"
            raise EolabError(f"claims schema folder {user_dir} {what}", hint="check EOLAB_CLAIMS_SCHEMA_DIR")
        user = _load_folder(user_dir)
    names = {s.name for s in user}
    return user + [s for s in SCHEMAS if s.name not in names]


SCHEMAS: list[Schema] = _load_folder(SCHEMA_DIR)  # the packaged ones


def _schema_folders() -> str:
    user = schema_dir_setting()
    return (f"{user} (EOLAB_CLAIMS_SCHEMA_DIR)" if user else "a folder named by EOLAB_CLAIMS_SCHEMA_DIR") + \
        f"; packaged: {SCHEMA_DIR}"


def detect_schema(columns: Any) -> Schema:
    """The most specific known schema whose key columns are all in ``columns`` (user schemas win ties)."""
    cols = set(columns)
    known = schemas()
    fits = [s for s in known if set(s.required) <= cols]
    if fits:
        return max(fits, key=lambda s: len(s.required))  # max keeps the first of equals: user files first
    found = ", ".join(sorted(str(c) for c in cols if c != "geometry"))
    keys = "; ".join(f"{s.name} ({', '.join(s.required)})" for s in known)
    # The schema the file nearly is (most of its key columns there): name what it lacks.
    near = max(known, key=lambda s: len(set(s.required) & cols) / max(1, len(s.required)), default=None)
    closest = ""
    if near is not None and len(set(near.required) & cols) * 2 >= len(near.required) > len(set(near.required) - cols):
        closest = (f"; closest: {near.name}, which also needs "
                   + ", ".join(repr(c) for c in near.required if c not in cols))
    raise EolabError(f"unknown parcel schema; columns found: {found}{closest}",
                     hint=f"known schemas and their key columns: {keys} — describe the file in a schema YAML "
                          f"in {_schema_folders()}")

