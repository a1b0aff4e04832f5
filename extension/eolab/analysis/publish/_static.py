"""Results in a per-user static STAC catalogue (``~/eolab-results`` or ``$EOLAB_RESULTS_CATALOG``)."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eolab.analysis.publish._items import MEMBER_PREFIX, _add_asset, _slug, _union, build_item, default_catalog_dir


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


def publish(files: Sequence[str | Path], *, workflow: str, provenance: dict, bbox: Sequence[float],
            start: str, end: str, title: str | None = None, catalog_dir: str | Path | None = None,
            item_id: str | None = None, copy: bool = True, to: str | None = None,
            user: str | None = None) -> Any:
    """Add one result (its files) as a STAC item; return the pystac Item.

    bbox: lon/lat of the result; start, end: the period it covers (ISO dates).
    copy: copy the files next to the item (a self-contained catalogue), else link them in place.
    to: publish to a member provider instead of the static catalogue: a writable member's id
    (``"workspace"``) or a transactional STAC API's URL, see :func:`publish_to_provider` (``user``
    names the collection there). ``catalog_dir="member:workspace"`` or an ``http(s)://`` URL does the
    same, so a template's ``publish_to`` parameter reaches the provider too.
    Re-publishing the same item id replaces it.
    """
    if to is None and isinstance(catalog_dir, str):
        if catalog_dir.startswith(MEMBER_PREFIX):
            to = catalog_dir[len(MEMBER_PREFIX):]
        elif catalog_dir.startswith(("http://", "https://")):
            to = catalog_dir
    if to is not None:
        from eolab.analysis import publish as package  # the public name, so it can be replaced (tests)

        return package.publish_to_provider(files, workflow=workflow, provenance=provenance, bbox=bbox, start=start,
                                   end=end, title=title, item_id=item_id, copy=copy, to=to, user=user)
    import pystac

    item = build_item(files, workflow=workflow, provenance=provenance, bbox=bbox, start=start, end=end,
                      title=title, item_id=item_id)
    files = [Path(f) for f in files]
    bbox = list(item.bbox)
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
    if col.get_item(item.id) is not None:
        col.remove_item(item.id)
    col.add_item(item)
    # Paths are final only after normalising: copy files next to the item there.
    cat.normalize_hrefs(str(root))
    item_dir = Path(item.get_self_href()).parent
    item_dir.mkdir(parents=True, exist_ok=True)
    for f in files:
        target = item_dir / f.name if copy else f.resolve()
        if copy and f.resolve() != target.resolve():
            shutil.copy2(f, target)
        _add_asset(item, f, str(target))
    ext = col.extent
    ext.spatial = pystac.SpatialExtent([_union(ext.spatial.bboxes[0], list(bbox))])
    cat.make_all_asset_hrefs_relative()
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return item


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

