"""The result item (pure, apart from reading the files): assets, footprint, time range, provenance."""

from __future__ import annotations

import datetime as dt
import json
import mimetypes
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eolab._item_checks import INVALID_ID_CHARS, MAX_ITEM_BYTES, control_text, item_problems  # noqa: F401
from eolab.errors import EolabError

MEDIA_TYPES = {
    ".tif": "image/tiff; application=geotiff", ".tiff": "image/tiff; application=geotiff",
    ".gpkg": "application/geopackage+sqlite3", ".parquet": "application/vnd.apache.parquet",
    ".csv": "text/csv", ".json": "application/json", ".png": "image/png", ".html": "text/html",
    ".nc": "application/netcdf", ".jsonl": "application/x-ndjson",
}


WORKSPACE = "workspace"                 # the writable member of the default catalogue configuration


MEMBER_PREFIX = "member:"               # catalog_dir="member:workspace" publishes to that member


TRANSACTION_CONFORMANCE = "https://api.stacspec.org/v1.0.0/ogcapi-features/extensions/transaction"




SIDECAR_SUFFIX = ".provenance.json"

# Source items named in a result's item (and derived_from links): a result of thousands of items
# would otherwise outgrow the workspace's item size; the provenance files list them all.
LISTED_SOURCES = 100


def default_catalog_dir() -> Path:
    from eolab import settings

    return Path(settings.client().results_catalog or Path.home() / "eolab-results")


def _check_inputs(files: Sequence[str | Path], provenance: dict,
                  bbox: Sequence[float]) -> tuple[list[Path], list[float]]:
    files = [Path(f) for f in files]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise EolabError(f"cannot publish missing files: {', '.join(missing)}")
    if not provenance.get("items"):
        raise EolabError("a result without provenance cannot be published",
                         hint="pass the record from eolab.provenance.record")
    try:
        box = [float(v) for v in bbox]
    except (TypeError, ValueError):
        raise EolabError(f"bbox {bbox!r} is not four numbers", hint="west, south, east, north in degrees") from None
    if len(box) != 4 or not (-180 <= box[0] <= 180 and -180 <= box[2] <= 180 and -90 <= box[1] <= box[3] <= 90):
        raise EolabError(f"bbox {list(bbox)} is not west, south, east, north in degrees")
    return files, box


def _day(text: str, what: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(str(text)[:10]).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise EolabError(f"{what} {text!r} is not a date", hint="use 'YYYY-MM-DD'") from None


def _slug(text: str) -> str:
    from eolab.stack import workspace as _workspace  # imported when used: the package imports the stack

    return _workspace.slug(text)


def item_id_for(workflow: str, provenance: dict, item_id: str | None = None) -> str:
    """The id a result gets: ``item_id``, else workflow and creation time of its provenance (stable)."""
    created = provenance.get("created") or dt.datetime.now(dt.timezone.utc).isoformat()
    return _slug(item_id or f"{workflow}-{created[:19]}")


def build_item(files: Sequence[str | Path], *, workflow: str, provenance: dict, bbox: Sequence[float],
               start: str, end: str, title: str | None = None, item_id: str | None = None) -> Any:
    """The STAC item of one result, without assets (pure): footprint, time range, provenance, links.

    Both destinations publish this item; they differ only in where the files (assets) live.
    """
    import pystac
    from shapely.geometry import box, mapping

    _, bbox = _check_inputs(files, provenance, bbox)
    begin, finish = _day(start, "start"), _day(end, "end")
    if finish < begin:
        raise EolabError(f"the result's period ends ({end}) before it starts ({start})")
    created = provenance.get("created") or dt.datetime.now(dt.timezone.utc).isoformat()
    summary = {k: provenance.get(k) for k in ("workflow", "eolab_version", "created", "parameters", "collections")}
    sources = provenance["items"]
    listed = sources[:LISTED_SOURCES]
    summary["source_count"] = len(sources)
    summary["source_items"] = [{"id": i["id"], "collection": i.get("collection"), "provider": i.get("provider")}
                               for i in listed]
    if len(listed) < len(sources):
        # The whole list lives in the result's provenance files, published with it as assets.
        sidecars = [Path(f).name for f in files if str(f).endswith(SIDECAR_SUFFIX)]
        if not sidecars:
            raise EolabError(f"the result comes from {len(sources):,} source items; the item lists the first "
                             f"{LISTED_SOURCES} and needs the provenance files to hold them all",
                             hint="publish the provenance files too: files + [eolab.provenance.sidecar_path(f) "
                                  "for f in files]")
        summary["source_items_in"] = [asset_key(name) for name in sidecars]
    item = pystac.Item(
        id=item_id_for(workflow, provenance, item_id), geometry=mapping(box(*bbox)), bbox=list(bbox),
        datetime=None, start_datetime=begin, end_datetime=finish,
        properties={"title": title or workflow, "eolab:workflow": workflow, "eolab:provenance": summary,
                    "created": created})
    for src in listed:
        if src.get("href"):
            item.add_link(pystac.Link("derived_from", src["href"], media_type="application/geo+json",
                                      title=f"{src.get('provider')}|{src.get('collection')}:{src['id']}"))
    return item


def asset_key(name: str) -> str:
    """The key of a result file's asset."""
    return name.replace(".", "_")


def _add_asset(item: Any, f: Path, href: str) -> None:
    import pystac

    media = MEDIA_TYPES.get(f.suffix.lower()) or mimetypes.guess_type(f.name)[0]
    role = "metadata" if f.name.endswith(SIDECAR_SUFFIX) else "data"
    item.add_asset(asset_key(f.name), pystac.Asset(href=href, media_type=media, roles=[role], title=f.name))


def _union(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]


def _as_dict(item: Any) -> dict:
    if hasattr(item, "to_dict"):
        item = item.to_dict(include_self_link=False, transform_hrefs=False)
    if not isinstance(item, dict):
        raise EolabError(f"cannot publish {type(item).__name__}: not a STAC item",
                         hint="pass pystac Items or item dicts")
    return json.loads(json.dumps(item, default=str))  # a deep copy, JSON only



