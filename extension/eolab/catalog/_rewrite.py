"""Federated ids and links. Pure.

Broker collection ids are ``MEMBER|collection``. Items pass through unchanged except
``collection`` (prefixed) and links pointing into the member API (rewritten to the broker);
links elsewhere (licences, previews, other services) and every asset href are kept as they are.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import quote, urlsplit

from eolab import ids

SEP = ids.SEP
federated_id = ids.join  # 'member|collection'
split_id = ids.split  # 'm|c' -> ('m', 'c'); an unprefixed id -> (None, id)


def _q(text: str) -> str:
    return quote(text, safe="|")  # 'member|collection' stays readable (clients send it as is)


def _under(href: str, base: str) -> str | None:
    """The path of ``href`` relative to the member API root ``base``, or None if it points elsewhere."""
    if not href:
        return None
    h, b = urlsplit(href), urlsplit(base)
    if (h.scheme, h.netloc) != (b.scheme, b.netloc):
        return None
    root = b.path.rstrip("/")
    if not (h.path == root or h.path.startswith(root + "/")):
        return None
    return h.path[len(root):] or "/"


def broker_href(href: str, member: str, member_base: str, broker_base: str) -> str | None:
    """Map a member-API href to the broker; None if it is member-internal with no broker equivalent."""
    rel_path = _under(href, member_base)
    if rel_path is None:
        return href
    broker_base = broker_base.rstrip("/")
    parts = [p for p in rel_path.split("/") if p]
    if not parts:
        return broker_base + "/"
    if parts[0] == "collections" and len(parts) >= 2:
        from urllib.parse import unquote

        rest = "/".join(parts[2:])
        path = f"{broker_base}/collections/{_q(federated_id(member, unquote(parts[1])))}"
        return f"{path}/{rest}" if rest else path
    if parts == ["collections"] or parts == ["conformance"] or parts == ["queryables"]:
        return f"{broker_base}/{parts[0]}"
    return None


def rewrite_links(links: list[dict] | None, member: str, member_base: str, broker_base: str,
                  fixed: dict[str, str]) -> list[dict]:
    """Links with ``fixed`` rels replaced, member-API hrefs rewritten, external ones kept."""
    result = []
    seen = set()
    for link in links or []:
        if not isinstance(link, dict):
            continue
        rel = link.get("rel")
        if rel in fixed:
            if rel in seen:
                continue
            seen.add(rel)
            result.append({**link, "href": fixed[rel]})
            continue
        href = broker_href(str(link.get("href", "")), member, member_base, broker_base)
        if href is None:
            continue
        new = {**link, "href": href}
        if href != link.get("href"):
            new.pop("body", None)  # a member request body means nothing to the broker
        result.append(new)
    for rel, href in fixed.items():
        if rel not in seen:
            result.append({"rel": rel, "type": "application/geo+json" if rel in ("self", "items") and
                           "/items" in href else "application/json", "href": href})
    return result


def rewrite_item(item: dict, member: str, member_base: str, broker_base: str) -> dict:
    """A member item as the broker serves it (a shallow copy; assets untouched)."""
    collection = item.get("collection")
    out = dict(item)
    broker_base = broker_base.rstrip("/")
    fixed = {"root": broker_base + "/"}
    if isinstance(collection, str) and collection:
        fid = federated_id(member, collection)
        out["collection"] = fid
        coll_href = f"{broker_base}/collections/{_q(fid)}"
        fixed.update({"parent": coll_href, "collection": coll_href})
        if isinstance(item.get("id"), str):
            fixed["self"] = f"{coll_href}/items/{_q(item['id'])}"
    out["links"] = rewrite_links(item.get("links"), member, member_base, broker_base, fixed)
    return out


def rewrite_collection(collection: dict, member: str, member_base: str, broker_base: str) -> dict:
    """A member collection as the broker serves it: prefixed id, broker links, the rest intact."""
    out = copy.copy(collection)
    broker_base = broker_base.rstrip("/")
    fid = federated_id(member, str(collection.get("id")))
    out["id"] = fid
    href = f"{broker_base}/collections/{_q(fid)}"
    fixed = {"self": href, "parent": broker_base + "/", "root": broker_base + "/", "items": href + "/items"}
    out["links"] = rewrite_links(collection.get("links"), member, member_base, broker_base, fixed)
    return out


# --------------------------------------------------------------------------- CQL2 'collection' literals

def _local_literal(value: Any, member: str) -> Any:
    """The literal as ``member`` knows it. Another member's id is sent unchanged: a plain string that no
    collection of this member is called (ids never hold '|'), so it matches nothing, and every member
    database stores and compares it (no placeholder with characters such as NUL that PostgreSQL refuses)."""
    if not isinstance(value, str):
        return value
    owner, local = split_id(value)
    if owner is None:
        return value
    return local if owner == member else value


def localize_filter(expr: Any, member: str) -> Any:
    """Rewrite broker collection ids compared with ``collection`` in a CQL2 JSON filter for ``member``.

    ``collection = 'm|c'`` becomes ``collection = 'c'`` at member ``m`` and can never match at other
    members; unprefixed literals are kept (they match at every member holding that collection).
    """
    if isinstance(expr, list):
        return [localize_filter(e, member) for e in expr]
    if not isinstance(expr, dict):
        return expr
    args = expr.get("args")
    if isinstance(args, list) and any(isinstance(a, dict) and a.get("property") == "collection" for a in args):
        new_args = []
        for arg in args:
            if isinstance(arg, list):
                new_args.append([_local_literal(v, member) for v in arg])
            else:
                new_args.append(_local_literal(arg, member))
        return {**expr, "args": new_args}
    return {k: localize_filter(v, member) for k, v in expr.items()}
