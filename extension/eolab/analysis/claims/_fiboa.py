"""fiboa-compatible GeoParquet out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from eolab.analysis.claims._read import PARQUET, read_claims
from eolab.analysis.claims._schemas import FIBOA_NAMES as _FIBOA_NAMES
from eolab.errors import EolabError

# fiboa (https://fiboa.org) GeoParquet: core fields id/area(ha)/geometry, the crop extension's
# crop:code/crop:name and the EuroCrops HCAT extension's ec:hcat_code/ec:hcat_name; the other columns
# keep their names. The version/extension list goes into the Parquet metadata key "fiboa" as the
# spec asks; geopandas writes the GeoParquet "geo" metadata.
FIBOA_VERSION = "0.2.0"


FIBOA_EXTENSIONS = ["https://fiboa.github.io/crop-extension/v0.1.0/schema.yaml",
                    "https://fiboa.github.io/hcat-extension/v0.1.0/schema.yaml"]




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
    if out.suffix.lower() not in PARQUET + (".gpkg",):
        raise EolabError(f"cannot write claims as {out.name}: the formats are GeoPackage (.gpkg) and fiboa "
                         "GeoParquet (.parquet)", hint="name the output .gpkg or .parquet")
    if out.is_dir():
        raise EolabError(f"{out} is a folder", hint="name the output file, e.g. claims.parquet")
    common = read_claims(path, **kwargs)
    try:
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
    except EolabError:
        raise
    except Exception as exc:  # OSError (no space, no permission), pyogrio/pyarrow write errors
        raise EolabError(f"cannot write {out}: {exc}".splitlines()[0],
                         hint="check that the folder is writable and has space; nothing was written") from exc
    return out

