"""Find the STAC items a template needs, on one STAC API or on several, and load them with provenance.

Until the federated broker serves every provider behind one URL, a template searches each member
STAC API and combines the items here; with the broker it passes the broker URL (collection ids
``PROVIDER|collection``) and nothing else changes. Every item keeps the provider it came from in
``properties["eolab:provider"]``, so provenance records can name it either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from eolab.errors import EolabError

PROVIDER_PROPERTY = "eolab:provider"


def _catalog_list(catalogs: str | Sequence[str] | Mapping[str, str]) -> list[tuple[str | None, str]]:
    if isinstance(catalogs, str):
        return [(None, catalogs)]
    if isinstance(catalogs, Mapping):
        return [(str(k), str(v)) for k, v in catalogs.items()]
    out = [(None, str(u)) for u in catalogs]
    if not out:
        raise EolabError("no STAC API given", hint="pass a URL, a list of URLs or {provider: URL}")
    return out


def _collections_for(client, wanted: Sequence[str]) -> list[str]:
    """The collection ids of ``client`` matching ``wanted`` (plain ids match ``PROVIDER|id`` too)."""
    have = [c.id for c in client.get_collections()]
    out = []
    for want in wanted:
        for cid in have:
            if cid == want or cid.rpartition("|")[2] == want:
                out.append(cid)
    return sorted(set(out))


def search_items(
    catalogs: str | Sequence[str] | Mapping[str, str],
    collections: str | Sequence[str],
    *,
    bbox: Sequence[float] | None = None,
    datetime: str | None = None,
    query: dict | None = None,
    max_items: int | None = None,
    headers: dict[str, str] | None = None,
) -> list:
    """Items of ``collections`` from one STAC API or several, combined, sorted by time.

    catalogs: a URL (e.g. the broker's), a list of member URLs, or ``{provider: url}``. A
        collection id may be plain (``sentinel-2-l2a``) or federated (``pannonia|sentinel-2-l2a``);
        a plain id matches every provider's collection of that name.
    A catalogue that has none of the collections is skipped; an unreachable one raises EolabError
    (a template must not silently work on part of the data).
    """
    import pystac_client

    wanted = [collections] if isinstance(collections, str) else list(collections)
    if not wanted:
        raise EolabError("no collections given", hint="e.g. collections=['sentinel-2-l2a']")
    items: dict[tuple[str, str], Any] = {}
    searched = []
    for provider, url in _catalog_list(catalogs):
        try:
            client = pystac_client.Client.open(url, headers=headers)
            cols = _collections_for(client, wanted)
        except Exception as exc:  # pystac-client raises APIError, httpx/urllib errors, JSON errors
            raise EolabError(f"STAC API {url} could not be searched: {exc}".splitlines()[0],
                             hint="check the URL and that the catalogue is running (eolab status)") from exc
        provider = provider or client.id
        searched.append(f"{provider} ({url}): {', '.join(cols) or 'none of the collections'}")
        if not cols:
            continue
        search = client.search(collections=cols, bbox=bbox, datetime=datetime, query=query,
                               max_items=max_items, limit=100)
        for item in search.items():
            col = item.collection_id or ""
            item_provider = col.rpartition("|")[0] or provider
            item.properties[PROVIDER_PROPERTY] = item_provider
            items[(item_provider, item.id)] = item
    if not items:
        raise EolabError(f"no items of {', '.join(wanted)} found",
                         hint="searched " + "; ".join(searched) + " — widen the area, dates or collections")
    return sorted(items.values(), key=lambda it: (it.datetime, it.id))


def item_provider(item) -> str | None:
    """The provider an item came from: ``PROVIDER|`` of its collection, else the search's note."""
    col = item.collection_id or ""
    return col.rpartition("|")[0] or item.properties.get(PROVIDER_PROPERTY)


def fill_providers(record: dict, items: Iterable) -> dict:
    """Complete a load provenance record with the provider of every item (by id)."""
    providers = {it.id: item_provider(it) for it in items}
    for rec in record.get("items", []):
        if not rec.get("provider"):
            rec["provider"] = providers.get(rec["id"])
    return record


def load(items: Sequence, bands: Sequence[str], **kwargs: Any):
    """``eolab.load_cube`` plus the provider of every item in ``attrs['eolab:provenance']``."""
    from eolab.data.load import load_cube

    cube = load_cube(items, bands=bands, **kwargs)
    fill_providers(cube.attrs["eolab:provenance"], items)
    return cube


def resolve_catalogs(catalogs: Any = None) -> Any:
    """``catalogs`` as given, else ``$EOLAB_CATALOG_URL`` (the broker on the hub), else an EolabError."""
    import json
    import os

    if isinstance(catalogs, str) and catalogs.strip()[:1] in "[{":
        try:
            catalogs = json.loads(catalogs)
        except json.JSONDecodeError as exc:
            raise EolabError(f"catalogs {catalogs!r} is not valid JSON", hint="give a URL, a list or a mapping") from exc
    if catalogs:
        return catalogs
    url = os.environ.get("EOLAB_CATALOG_URL")
    if not url:
        raise EolabError("no STAC API given", hint="set the `catalogs` parameter or $EOLAB_CATALOG_URL")
    return url


def lonlat_bounds(cube: Any) -> list[float]:
    """[west, south, east, north] of a cube's grid in WGS84."""
    bb = cube.odc.geobox.extent.to_crs("EPSG:4326").boundingbox
    return [round(bb.left, 6), round(bb.bottom, 6), round(bb.right, 6), round(bb.top, 6)]


def summarize_items(items: Sequence) -> Any:
    """A small table: items and dates per provider and collection."""
    import pandas as pd

    rows = [{"provider": item_provider(it), "collection": (it.collection_id or "").rpartition("|")[2],
             "date": it.datetime.date() if it.datetime else None} for it in items]
    df = pd.DataFrame(rows)
    return df.groupby(["provider", "collection"]).agg(items=("date", "size"), dates=("date", "nunique"),
                                                      first=("date", "min"), last=("date", "max"))
