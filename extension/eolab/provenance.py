"""Provenance: which STAC items (id, collection, provider) made a cube or a result, with which
parameters, by which eolab version, when — attached to every cube, file and returned object.
The one provenance module (the loader, the templates and the outputs all use it).

A record is a plain dict (JSON-serialisable)::

    {"eolab_version", "created", "workflow", "parameters", "items": [{id, collection, provider,
     datetime, bbox, href}], "inputs": [...], "outputs": [...]}

Files carry it three ways: a ``<file>.provenance.json`` sidecar (always), a GeoTIFF tag
``EOLAB_PROVENANCE``, and an ``eolab_provenance`` attribute table inside a GeoPackage. Per-parcel
tables also name, per row, the items that cover the parcel on the dates used (``source_items``),
so a single red parcel leads straight back to its images.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eolab import ids
from eolab._version import __version__
from eolab.errors import EolabError

SIDECAR_SUFFIX = ".provenance.json"
PARQUET_KEY = b"eolab_provenance"  # GeoParquet key-value metadata, next to 'geo'
TIFF_TAG = "EOLAB_PROVENANCE"
GPKG_TABLE = "eolab_provenance"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.ndarray,)):
        return value.tolist()
    if isinstance(value, (dt.date, dt.datetime, np.datetime64)):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def item_records(items: Iterable) -> list[dict]:
    """id, collection, provider, datetime, bbox and self href of each pystac Item."""
    out = []
    for item in items:
        link = item.get_single_link("self")
        # As written: resolving a link against its root would fetch the root catalogue.
        href = link.get_href(transform_href=False) if link else None
        out.append({"id": item.id, "collection": ids.plain(item.collection_id), "provider": ids.item_provider(item),
                    "datetime": item.datetime.isoformat() if item.datetime else None,
                    "bbox": list(item.bbox) if item.bbox else None, "href": href})
    return out


class CubeProvenance(dict):
    """A cube's provenance record: a plain dict whose ``str``/``repr`` is one short line.

    xarray prints every attribute in full in a cube's summary (the HTML repr expands short attribute
    lists), so a record of a season's items filled screens. The record itself is unchanged:
    ``cube.attrs['eolab:provenance']['items']``, or the same through attributes (``.records``,
    ``.parameters``, ``.eolab_version``, ``.created``).
    """

    @property
    def records(self) -> list[dict]:
        return self.get("items", [])

    def __getattr__(self, name: str) -> Any:
        if name in self:
            return self[name]
        raise AttributeError(name)

    def __str__(self) -> str:
        recs = self.records
        collections = sorted({f"{r.get('provider') or '?'}|{r.get('collection')}" for r in recs})
        days = sorted(str(r.get("datetime"))[:10] for r in recs if r.get("datetime"))
        span = f", {days[0]} – {days[-1]}" if days else ""
        return (f"{len(recs)} items from {', '.join(collections) or '?'}{span}; eolab {self.get('eolab_version')}"
                " (details: .attrs['eolab:provenance']['items'])")

    __repr__ = __str__

    def _repr_html_(self) -> str:
        import html

        details = html.escape(json.dumps(dict(self), indent=1, default=str))
        return f"<details><summary>{html.escape(str(self))}</summary><pre>{details}</pre></details>"

    def __reduce__(self):  # pickles and deep-copies as itself (dask, xarray copies)
        return (CubeProvenance, (dict(self),))


def for_cube(items: Iterable, **parameters: Any) -> CubeProvenance:
    """What a cube came from: every item, the load parameters, eolab version (``attrs['eolab:provenance']``)."""
    return CubeProvenance(items=item_records(items), parameters=parameters, eolab_version=__version__,
                          created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))


def record(items: Iterable | None = None, *, workflow: str, parameters: dict | None = None,
           inputs: Sequence[str] = (), base: dict | None = None) -> dict:
    """A provenance record for a result made from ``items`` (or from the records in ``base``)."""
    recs = item_records(items) if items is not None else list((base or {}).get("items", []))
    if not recs:
        raise EolabError(f"provenance of {workflow!r} has no source items",
                         hint="pass the STAC items the result was made from")
    return {
        "workflow": workflow,
        "eolab_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "parameters": _jsonable(parameters or {}),
        "items": _jsonable(recs),
        "collections": sorted({f"{r.get('provider') or '?'}|{r['collection']}" for r in recs}),
        "inputs": [str(i) for i in inputs],
    }


def merge(*records: dict, workflow: str, parameters: dict | None = None) -> dict:
    """One record for a result made from several (items united by provider and id)."""
    seen: dict[tuple, dict] = {}
    inputs: list[str] = []
    for r in records:
        for it in r.get("items", []):
            seen.setdefault((it.get("provider"), it["id"]), it)
        inputs += r.get("inputs", [])
    out = record(None, workflow=workflow, parameters=parameters, inputs=inputs,
                 base={"items": list(seen.values())})
    out["derived_from"] = [r.get("workflow") for r in records]
    return out


def sidecar_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def write(path: str | Path, prov: dict) -> Path:
    """Attach ``prov`` to the result file ``path`` (sidecar + embedded where the format allows)."""
    path = Path(path)
    if not path.exists():
        raise EolabError(f"cannot attach provenance: {path} does not exist")
    prov = dict(prov, outputs=sorted(set(prov.get("outputs", []) + [path.name])))
    text = json.dumps(_jsonable(prov), indent=1)
    side = sidecar_path(path)
    side.write_text(text + "\n")
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import rasterio

        with rasterio.open(path, "r+") as ds:
            ds.update_tags(**{TIFF_TAG: json.dumps(_jsonable(prov), separators=(",", ":"))})
    elif suffix == ".gpkg":
        import pandas as pd
        import pyogrio

        table = pd.DataFrame({"key": ["provenance"], "value": [json.dumps(_jsonable(prov))]})
        pyogrio.write_dataframe(table, path, layer=GPKG_TABLE, driver="GPKG")
    return side


def read(path: str | Path) -> dict:
    """The provenance record of a result file (sidecar first, then embedded)."""
    path = Path(path)
    side = sidecar_path(path)
    if side.exists():
        return json.loads(side.read_text())
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import rasterio

        with rasterio.open(path) as ds:
            tag = ds.tags().get(TIFF_TAG)
        if tag:
            return json.loads(tag)
    if suffix == ".gpkg":
        import pyogrio

        if GPKG_TABLE in [name for name, _ in pyogrio.list_layers(path)]:
            table = pyogrio.read_dataframe(path, layer=GPKG_TABLE)
            return json.loads(table["value"].iloc[0])
    if suffix == ".parquet":
        return read_parquet(path)
    raise EolabError(f"{path} carries no eolab provenance", hint=f"expected {side.name} next to it")


def read_parquet(path: str | Path) -> dict:
    """The record embedded in a GeoParquet file's key-value metadata (``eolab_provenance``)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    if PARQUET_KEY not in meta:
        raise EolabError(f"{path} carries no embedded eolab provenance",
                         hint=f"expected {Path(path).name}{SIDECAR_SUFFIX} next to it")
    return json.loads(meta[PARQUET_KEY])


def items_covering(prov: dict, geometry_wgs84: Any, dates: Iterable[str] | None = None) -> list[str]:
    """Ids of the record's items whose bbox intersects ``geometry_wgs84`` (on ``dates``, YYYY-MM-DD)."""
    from shapely.geometry import box

    wanted = None if dates is None else {str(d)[:10] for d in dates}
    out = []
    for it in prov.get("items", []):
        if it.get("bbox") is None:
            continue
        if wanted is not None and (it.get("datetime") or "")[:10] not in wanted:
            continue
        if box(*it["bbox"][:2], *it["bbox"][-2:]).intersects(geometry_wgs84):
            out.append(it["id"])
    return sorted(out)


def source_items_per_row(prov: dict, gdf: Any, used_dates: Any = None, *, dates: Sequence[Any] | None = None,
                         rows_per_block: int = 20_000) -> list[str]:
    """For each row of ``gdf``: the ids of items covering it (on that row's used dates), comma-joined.

    ``used_dates``: per row the dates it used — a list of date lists, or a (rows × dates) boolean
    array with the dates in ``dates`` (what the series steps return: far less memory for a country
    than ten million date strings). Done with a spatial index query and array operations,
    ``rows_per_block`` rows at a time (the row × item pairs of a country's parcels would take
    hundreds of MB at once); rows with the same items share one string.
    """
    import shapely
    from shapely.geometry import box

    from eolab.errors import EolabError

    recs = [it for it in prov.get("items", []) if it.get("bbox")]
    if not recs:
        return [""] * len(gdf)
    if int(rows_per_block) < 1:
        raise EolabError(f"rows_per_block must be at least 1, not {rows_per_block}")
    if getattr(used_dates, "ndim", 1) == 2:  # a (rows × dates) DataFrame too
        used_dates = np.asarray(used_dates)
    matrix = isinstance(used_dates, np.ndarray) and used_dates.ndim == 2
    if matrix:
        if dates is None or used_dates.shape != (len(gdf), len(dates)):
            raise EolabError("used_dates as an array must be (rows, dates) with the dates given",
                             hint="pass dates= (e.g. the series' time values)")
        # one column per day (several time steps of one day: used if any of them was)
        days = sorted({str(d)[:10] for d in dates})
        column = {d: j for j, d in enumerate(days)}
        date_col = np.array([column[str(d)[:10]] for d in dates])
    elif used_dates is not None:
        used_dates = list(used_dates)
        if len(used_dates) != len(gdf):
            raise EolabError(f"used_dates has {len(used_dates)} rows for a table of {len(gdf)}",
                             hint="give one list of dates per row of the table")
    tree = shapely.STRtree([box(*it["bbox"][:2], *it["bbox"][-2:]) for it in recs])
    item_day = np.array([(it.get("datetime") or "")[:10] for it in recs])
    if matrix:
        day_col = np.array([column.get(d, -1) for d in item_day])
    item_ids = [it["id"] for it in recs]
    rank = np.argsort(np.argsort(item_ids, kind="stable"), kind="stable")  # each item's place among the sorted ids
    joined: dict[bytes, str] = {}
    out: list[str] = []
    step = int(rows_per_block)
    for lo in range(0, len(gdf), step):
        block = gdf.iloc[lo:lo + step]
        n = len(block)
        rows, ks = tree.query(block.to_crs("EPSG:4326").geometry.values, predicate="intersects")
        if used_dates is not None:
            if matrix:
                used = np.zeros((n, len(days)), bool)
                for j, c in enumerate(date_col):
                    used[:, c] |= np.asarray(used_dates[lo:lo + n, j], bool)
                keep = (day_col[ks] >= 0) & used[rows, np.maximum(day_col[ks], 0)]
            else:
                wanted = [{str(d)[:10] for d in row_dates} for row_dates in used_dates[lo:lo + n]]
                keep = np.array([item_day[k] in wanted[r] for r, k in zip(rows, ks)], bool)
            rows, ks = rows[keep], ks[keep]
        order = np.lexsort((rank[ks], rows))
        rows, ks = rows[order], ks[order]
        bounds = np.searchsorted(rows, np.arange(n + 1))
        for r in range(n):
            these = ks[bounds[r]:bounds[r + 1]]
            key = these.tobytes()
            text = joined.get(key)
            if text is None:
                text = joined[key] = ",".join(item_ids[k] for k in these)
            out.append(text)
    return out
