"""Publish template results as STAC items into a per-user static catalogue, and find them again.

The catalogue is a self-contained pystac ``Catalog`` (default ``~/eolab-results``, or
``$EOLAB_RESULTS_CATALOG``) with one collection per workflow. Each item holds the result files as
assets, its footprint and time range, the provenance record (``eolab:provenance``: workflow,
parameters, version, the source item ids by provider and collection) and ``derived_from`` links to
the source items. Any STAC client or browser reads it (``pystac.Catalog.from_file``).
"""

from __future__ import annotations

import datetime as dt
import mimetypes
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eolab.errors import EolabError

MEDIA_TYPES = {
    ".tif": "image/tiff; application=geotiff", ".tiff": "image/tiff; application=geotiff",
    ".gpkg": "application/geopackage+sqlite3", ".parquet": "application/vnd.apache.parquet",
    ".csv": "text/csv", ".json": "application/json", ".png": "image/png", ".html": "text/html",
    ".nc": "application/netcdf",
}


def default_catalog_dir() -> Path:
    return Path(os.environ.get("EOLAB_RESULTS_CATALOG") or Path.home() / "eolab-results")


def _open_or_create(root: Path):
    import pystac

    href = root / "catalog.json"
    if href.exists():
        return pystac.Catalog.from_file(str(href))
    root.mkdir(parents=True, exist_ok=True)
    cat = pystac.Catalog(id="eolab-results", description="Results of eolab template workflows",
                         title="My eolab results")
    cat.normalize_hrefs(str(root))
    return cat


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "result"


def publish(files: Sequence[str | Path], *, workflow: str, provenance: dict, bbox: Sequence[float],
            start: str, end: str, title: str | None = None, catalog_dir: str | Path | None = None,
            item_id: str | None = None, copy: bool = True) -> Any:
    """Add one result (its files) as a STAC item; return the pystac Item.

    bbox: lon/lat of the result; start, end: the period it covers (ISO dates).
    copy: copy the files next to the item (a self-contained catalogue), else link them in place.
    Re-publishing the same item id replaces it.
    """
    import pystac
    from shapely.geometry import box, mapping

    files = [Path(f) for f in files]
    bbox = [float(v) for v in bbox]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise EolabError(f"cannot publish missing files: {', '.join(missing)}")
    if not provenance.get("items"):
        raise EolabError("a result without provenance cannot be published",
                         hint="pass the record from eolab.analysis.provenance.record")
    root = Path(catalog_dir) if catalog_dir else default_catalog_dir()
    cat = _open_or_create(root)
    cid = _slug(workflow)
    col = cat.get_child(cid)
    if col is None:
        col = pystac.Collection(
            id=cid, description=f"Results of the eolab workflow {workflow}", title=workflow,
            extent=pystac.Extent(pystac.SpatialExtent([list(bbox)]),
                                 pystac.TemporalExtent([[dt.datetime.fromisoformat(start[:10]),
                                                         dt.datetime.fromisoformat(end[:10])]])),
            license="other")
        cat.add_child(col)
    created = provenance.get("created") or dt.datetime.now(dt.timezone.utc).isoformat()
    iid = _slug(item_id or f"{workflow}-{created[:19]}")
    if col.get_item(iid) is not None:
        col.remove_item(iid)
    summary = {k: provenance.get(k) for k in ("workflow", "eolab_version", "created", "parameters", "collections")}
    summary["source_items"] = [{"id": i["id"], "collection": i.get("collection"), "provider": i.get("provider")}
                               for i in provenance["items"]]
    item = pystac.Item(
        id=iid, geometry=mapping(box(*bbox)), bbox=list(bbox), datetime=None,
        start_datetime=dt.datetime.fromisoformat(start[:10]).replace(tzinfo=dt.timezone.utc),
        end_datetime=dt.datetime.fromisoformat(end[:10]).replace(tzinfo=dt.timezone.utc),
        properties={"title": title or workflow, "eolab:workflow": workflow, "eolab:provenance": summary,
                    "created": created})
    for src in provenance["items"]:
        if src.get("href"):
            item.add_link(pystac.Link("derived_from", src["href"], media_type="application/geo+json",
                                      title=f"{src.get('provider')}|{src.get('collection')}:{src['id']}"))
    col.add_item(item)
    # Paths are final only after normalising: copy files next to the item there.
    cat.normalize_hrefs(str(root))
    item_dir = Path(item.get_self_href()).parent
    item_dir.mkdir(parents=True, exist_ok=True)
    for f in files:
        target = item_dir / f.name if copy else f.resolve()
        if copy and f.resolve() != target.resolve():
            shutil.copy2(f, target)
        media = MEDIA_TYPES.get(f.suffix.lower()) or mimetypes.guess_type(f.name)[0]
        role = "metadata" if f.name.endswith(".provenance.json") else "data"
        item.add_asset(f.name.replace(".", "_"), pystac.Asset(href=str(target), media_type=media, roles=[role],
                                                             title=f.name))
    ext = col.extent
    ext.spatial = pystac.SpatialExtent([_union(ext.spatial.bboxes[0], list(bbox))])
    cat.make_all_asset_hrefs_relative()
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return item


def _union(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]


def find_results(catalog_dir: str | Path | None = None, *, workflow: str | None = None,
                 bbox: Sequence[float] | None = None) -> list:
    """Published result items (optionally of one workflow, intersecting bbox), newest first."""
    import pystac
    from shapely.geometry import box, shape

    root = Path(catalog_dir) if catalog_dir else default_catalog_dir()
    href = root / "catalog.json"
    if not href.exists():
        return []
    cat = pystac.Catalog.from_file(str(href))
    out = []
    for item in cat.get_items(recursive=True):
        if workflow and item.properties.get("eolab:workflow") != workflow:
            continue
        if bbox is not None and not shape(item.geometry).intersects(box(*bbox)):
            continue
        out.append(item)
    return sorted(out, key=lambda it: it.properties.get("created", ""), reverse=True)
