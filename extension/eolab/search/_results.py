"""Pure parts of a search's results: table rows, sorting, pages, selection, conversions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from eolab import ids
from eolab.errors import EolabError

ROW_COLUMNS = ("provider", "collection", "datetime", "cloud_cover", "id")


# --------------------------------------------------------------------------- results (pure)

def item_row(item: dict) -> dict:
    """One table row: provider, collection, datetime, cloud cover (None for radar), id."""
    provider, plain = ids.split(item.get("collection"))
    props = item.get("properties") or {}
    cloud = props.get("eo:cloud_cover")
    try:
        cloud = None if cloud is None or isinstance(cloud, bool) else float(cloud)
    except (TypeError, ValueError):
        cloud = None  # not a number ("cloudy"): unknown, as for radar
    when = props.get("datetime") or props.get("start_datetime")
    return {"provider": provider or "", "collection": plain, "datetime": when if isinstance(when, str) else None,
            "cloud_cover": cloud, "id": item["id"], "key": item_key(item)}


def item_key(item: dict) -> str:
    """Unique across the federation: the same item id can exist at two providers."""
    return f"{item.get('collection') or ''}/{item['id']}"


def sort_rows(rows: list[dict], column: str, descending: bool = False) -> list[dict]:
    """Rows sorted by ``column``; missing values (radar cloud cover) always last."""
    if column not in ROW_COLUMNS:
        raise EolabError(f"cannot sort by {column!r}", hint=f"columns are: {', '.join(ROW_COLUMNS)}")
    present = [r for r in rows if r.get(column) is not None]
    absent = [r for r in rows if r.get(column) is None]
    return sorted(present, key=lambda r: (r[column], r["key"]), reverse=descending) + absent


@dataclass
class Page:
    """One page of a federated search: items (STAC dicts), who was missing, and how to go on."""

    items: list[dict]
    number: int
    request: dict
    next_request: dict | None
    missing: list[str] = field(default_factory=list)
    number_matched: int | None = None
    member_errors: dict = field(default_factory=dict)
    waiting: dict = field(default_factory=dict)  # providers that had not answered yet: the next page asks them

    @property
    def has_next(self) -> bool:
        return self.next_request is not None

    @property
    def rows(self) -> list[dict]:
        return [item_row(i) for i in self.items]

    def item_collection(self):
        return to_item_collection(self.items)

    def to_geodataframe(self):
        return to_geodataframe(self.items)


def to_item_collection(items: Iterable[Any]):
    """A pystac ``ItemCollection`` of STAC item dicts or pystac Items."""
    import pystac

    out = [i if isinstance(i, pystac.Item) else pystac.Item.from_dict(i, preserve_dict=True) for i in items]
    return pystac.ItemCollection(out)


def to_geodataframe(items: Iterable[Any]):
    """A GeoDataFrame (EPSG:4326) with one row per item: the table columns, the footprint and the item."""
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import shape

    records, geoms = [], []
    for item in items:
        item = item.to_dict() if hasattr(item, "to_dict") else item
        row = item_row(item)
        row.pop("key")
        row["datetime"] = pd.to_datetime(row["datetime"], utc=True) if row["datetime"] else pd.NaT
        row["item"] = item
        records.append(row)
        geoms.append(shape(item["geometry"]) if item.get("geometry") else None)
    columns = list(ROW_COLUMNS) + ["item"]
    return gpd.GeoDataFrame(pd.DataFrame.from_records(records, columns=columns), geometry=geoms, crs="EPSG:4326")


def select(items: Iterable[dict], keys: Iterable[str]):
    """The items whose id or ``provider|collection/id`` key is in ``keys``, as an ItemCollection, in ``keys`` order."""
    items = list(items)
    by_key = {item_key(i): i for i in items}
    by_id: dict[str, list[dict]] = {}
    for i in items:
        by_id.setdefault(i["id"], []).append(i)
    chosen, unknown = [], []
    for key in keys:
        if key in by_key:
            chosen.append(by_key[key])
        elif len(by_id.get(key, [])) == 1:
            chosen.append(by_id[key][0])
        elif key in by_id:
            raise EolabError(f"item id {key!r} exists at several providers",
                             hint="select it by its key 'provider|collection/id'")
        else:
            unknown.append(key)
    if unknown:
        raise EolabError(f"not among the results: {', '.join(unknown[:3])}", hint="select ids of the shown results")
    return to_item_collection(chosen)


