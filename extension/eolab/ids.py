"""Federated ids: ``PROVIDER|collection`` (the broker's collection ids). Pure.

The one place that joins and splits them; an unprefixed id (``sentinel-2-l2a``) has no provider.
"""

from __future__ import annotations

from typing import Any

SEP = "|"
# Set on items that came from a plain (unfederated) STAC API, so provenance can still name the provider.
PROVIDER_PROPERTY = "eolab:provider"


def join(provider: str, collection: str) -> str:
    return f"{provider}{SEP}{collection}"


def split(collection_id: str | None) -> tuple[str | None, str]:
    """``'m|c'`` → ``('m', 'c')``; an unprefixed id → ``(None, id)``; None → ``(None, '')``."""
    collection_id = collection_id or ""
    if SEP in collection_id:
        provider, _, plain = collection_id.partition(SEP)
        return provider, plain
    return None, collection_id


def plain(collection_id: str | None) -> str:
    """The collection id without its provider prefix."""
    return split(collection_id)[1]


def provider(collection_id: str | None) -> str | None:
    return split(collection_id)[0]


def matches(collection_id: str, wanted: str) -> bool:
    """A plain ``wanted`` matches every provider's collection of that name; a prefixed one only itself."""
    return collection_id == wanted or (SEP not in wanted and plain(collection_id) == wanted)


def item_collection(item: Any) -> str:
    """The collection id of a pystac Item or a STAC item dict ('' when it has none)."""
    if isinstance(item, dict):
        return item.get("collection") or ""
    return item.collection_id or ""


def item_provider(item: Any) -> str | None:
    """The provider of an item: the prefix of its collection, else its ``eolab:provider`` property."""
    props = item.get("properties") or {} if isinstance(item, dict) else item.properties
    return provider(item_collection(item)) or props.get(PROVIDER_PROPERTY)
