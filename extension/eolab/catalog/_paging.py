"""Composite paging tokens: every member's own continuation state in one signed, opaque string.

Pure. A token is ``base64url(zlib(json)) + "." + base64url(hmac_sha256)[:22]``. It holds:

- ``f``: the fingerprint of the query it belongs to (a token replayed with other search
  parameters is rejected: it would skip or repeat items),
- ``c``: per live member its cursor ``{"r": ref, "s": skip}`` (see :mod:`eolab.catalog._merge`),
- ``x``: members that failed earlier in the walk, ``{id: reason}``, so every later page still
  names them in ``federation:missing``,
- ``n``: per member the ``numberMatched`` it reported on the first page (absent if unknown),
- ``l``: the page size members are asked for.

Member ``next`` links are stored compactly: only what differs from the member request the
broker would send anyway (usually just the member's token).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from eolab.catalog._query import BadParameter

VERSION = 1
MAX_TOKEN_CHARS = 64_000


@dataclass
class TokenState:
    fingerprint: str
    cursors: dict[str, dict]                       # member id → {"r": ref, "s": skip}
    missing: dict[str, str] = field(default_factory=dict)
    matched: dict[str, int | None] = field(default_factory=dict)
    member_limit: int = 10


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())[:22]


def encode_token(state: TokenState, key: bytes) -> str:
    data = {"v": VERSION, "f": state.fingerprint, "c": state.cursors, "l": state.member_limit}
    if state.missing:
        data["x"] = state.missing
    if state.matched:
        data["n"] = state.matched
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    payload = _b64(zlib.compress(raw, 6))
    return f"{payload}.{_sign(key, payload)}"


def decode_token(token: str, key: bytes, fingerprint: str) -> TokenState:
    """Verify and unpack ``token``; any problem is a :class:`BadParameter` on ``token``."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise BadParameter("token", "is not a paging token of this broker",
                           hint="use the 'next' link of a previous page unchanged")
    payload, signature = token.split(".")
    if not (payload.isascii() and signature.isascii()) or not hmac.compare_digest(_sign(key, payload), signature):
        raise BadParameter("token", "signature does not match (altered, or issued by another broker instance)",
                           hint="start the search again without a token")
    try:
        data = json.loads(zlib.decompress(_unb64(payload)))
    except (ValueError, zlib.error, binascii.Error):
        raise BadParameter("token", "cannot be decoded") from None
    if not isinstance(data, dict) or data.get("v") != VERSION or not isinstance(data.get("c"), dict):
        raise BadParameter("token", "has an unknown format")
    if data.get("f") != fingerprint:
        raise BadParameter("token", "belongs to a search with other parameters",
                           hint="send the same collections/bbox/datetime/filter/sortby/fields/query with a token")
    return TokenState(fingerprint=data["f"], cursors=data["c"], missing=data.get("x") or {},
                      matched=data.get("n") or {}, member_limit=int(data.get("l") or 10))


# --------------------------------------------------------------------------- compact member next links

def compact_next(link: dict, request: dict, method: str) -> dict:
    """A member's ``next`` link → what the token stores: only the parts that differ from ``request``.

    ``request`` is the member request the broker sends for the first page (a POST body, or the GET
    parameters as a dict of strings); ``method`` is how it was sent.
    """
    link_method = (link.get("method") or "GET").upper()
    href = link.get("href") or ""
    ref: dict[str, Any] = {}
    if link_method == "POST":
        body = link.get("body")
        if isinstance(body, dict) and link.get("merge"):
            body = {**request, **body} if method == "POST" else body
        if not isinstance(body, dict):
            body = request if method == "POST" else {}
        base = request if method == "POST" else {}
        ref["m"] = "POST"
        ref["b"] = {k: v for k, v in body.items() if base.get(k) != v}
        dropped = sorted(k for k in base if k not in body)
        if dropped:
            ref["d"] = dropped
        ref["h"] = href
        return ref
    parts = urlsplit(href)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    base = request if method == "GET" else {}
    ref["q"] = {k: v for k, v in query.items() if base.get(k) != v}
    dropped = sorted(k for k in base if k not in query)
    if dropped:
        ref["d"] = dropped
    ref["h"] = parts._replace(query="", fragment="").geturl()
    return ref


def expand_next(ref: dict, request: dict, method: str) -> tuple[str, str, dict]:
    """Inverse of :func:`compact_next`: ``(method, href, body_or_params)``."""
    if not isinstance(ref, dict) or "h" not in ref:
        raise BadParameter("token", "holds a malformed member reference")
    dropped = set(ref.get("d") or [])
    if ref.get("m") == "POST":
        base = request if method == "POST" else {}
        body = {k: v for k, v in base.items() if k not in dropped}
        body.update(ref.get("b") or {})
        return "POST", ref["h"], body
    base = request if method == "GET" else {}
    params = {k: v for k, v in base.items() if k not in dropped}
    params.update(ref.get("q") or {})
    return "GET", ref["h"], params
