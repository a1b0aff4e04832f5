"""Talking to member STAC APIs: one shared async httpx client, per-member options and health.

Each :class:`Member` knows its base URL, extra headers, whether it accepts POST, an optional
request-signing hook (``'module:function'``, called with each ``httpx.Request``; it may modify
it in place, return a new one, or be a coroutine function) and its time budget. Failures become
:class:`MemberError` with a short reason; timeouts, unreachable members, HTTP 5xx and malformed
answers also mark the member unhealthy for ``health_ttl`` seconds, during which requests skip it
at once (reported missing) while a background probe checks whether it is back.

Conformance and collections of each member are cached separately (``info_ttl``).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from eolab.catalog._fallback import Capabilities
from eolab.config import MemberConfig
from eolab.errors import ConfigError

try:  # faster JSON for large pages when available (stac-fastapi depends on it)
    import orjson as _fastjson

    def _loads(data: bytes) -> Any:
        return _fastjson.loads(data)
except ImportError:  # pragma: no cover - orjson is in the broker extra
    import json as _json

    def _loads(data: bytes) -> Any:
        return _json.loads(data)

_DECODE_ERRORS: tuple[type[Exception], ...] = (ValueError, UnicodeDecodeError)
MAX_COLLECTION_PAGES = 20


class MemberError(Exception):
    """A member did not deliver. ``kind``: timeout | unreachable | http | rejected | not_found | malformed."""

    def __init__(self, member: str, kind: str, reason: str, status: int | None = None):
        super().__init__(f"{member}: {reason}")
        self.member = member
        self.kind = kind
        self.reason = reason
        self.status = status

    @property
    def unhealthy(self) -> bool:
        return self.kind in ("timeout", "unreachable", "http", "malformed")


@dataclass
class Health:
    ok: bool = True
    reason: str = ""
    until: float = 0.0
    probing: bool = False


@dataclass
class MemberInfo:
    conforms_to: list[str]
    capabilities: Capabilities
    collections: dict[str, dict] | None      # local id → collection JSON; None if unknown
    fetched: float


def load_signer(spec: str | None) -> Callable | None:
    """Resolve a ``'module:function'`` signing hook."""
    if not spec:
        return None
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"signing hook {spec!r} must look like 'module:function'")
    try:
        func = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"signing hook {spec!r} cannot be loaded: {exc}") from None
    if not callable(func):
        raise ConfigError(f"signing hook {spec!r} is not callable")
    return func


def _description(response: httpx.Response) -> str:
    try:
        body = _loads(response.content)
    except _DECODE_ERRORS:
        return response.text[:200]
    if isinstance(body, dict):
        for key in ("description", "detail", "message"):
            if body.get(key):
                return str(body[key])[:300]
    return str(body)[:200]


@dataclass
class Member:
    config: MemberConfig
    base_url: str
    client: httpx.AsyncClient
    timeout: float
    health_ttl: float
    info_ttl: float = 60.0
    clock: Callable[[], float] = time.monotonic
    health: Health = field(default_factory=Health)
    info: MemberInfo | None = None
    signer: Callable | None = None
    _info_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _tasks: set = field(default_factory=set)

    def __post_init__(self) -> None:
        self.signer = load_signer(self.config.signing)
        self.base_url = self.base_url.rstrip("/")

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def get_only(self) -> bool:
        return self.config.get_only

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    # ---- health
    def skip_reason(self) -> str | None:
        """Why requests should not ask this member now (None: ask it)."""
        if self.health.ok or self.health_ttl <= 0:
            return None
        if self.clock() >= self.health.until and not self.health.probing:
            self._start_probe()
        return f"unhealthy: {self.health.reason}"

    def mark_failed(self, error: MemberError) -> None:
        if error.unhealthy:
            self.health = Health(ok=False, reason=error.reason, until=self.clock() + self.health_ttl)

    def mark_ok(self) -> None:
        if not self.health.ok:
            self.health = Health()

    def _start_probe(self) -> None:
        self.health.probing = True
        task = asyncio.get_running_loop().create_task(self._probe())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _probe(self) -> None:
        try:
            await self.refresh_info(self.timeout)
        except MemberError as error:
            self.health = Health(ok=False, reason=error.reason, until=self.clock() + self.health_ttl)
        finally:
            self.health.probing = False

    # ---- HTTP
    def _check_href(self, href: str) -> None:
        """Only follow links to the member's own host (tokens could otherwise aim the broker anywhere)."""
        h, b = urlsplit(href), urlsplit(self.base_url)
        if (h.scheme, h.netloc) != (b.scheme, b.netloc):
            raise MemberError(self.id, "malformed", f"link to another host: {href[:120]}")

    async def request(self, method: str, href: str, *, params: dict | None = None, body: dict | None = None,
                      timeout: float | None = None) -> Any:
        """Send one request, return the decoded JSON body."""
        self._check_href(href)
        budget = max(0.05, min(self.timeout, timeout if timeout is not None else self.timeout))
        request = self.client.build_request(
            method, href, params=params, json=body if method == "POST" else None,
            headers={"Accept": "application/geo+json, application/json", **self.config.headers},
            timeout=httpx.Timeout(budget),
        )
        if self.signer is not None:
            signed = self.signer(request)
            if inspect.isawaitable(signed):
                signed = await signed
            request = signed if isinstance(signed, httpx.Request) else request
        try:
            response = await asyncio.wait_for(self.client.send(request), budget)
        except (TimeoutError, httpx.TimeoutException):
            raise MemberError(self.id, "timeout", f"no answer within {budget:.1f} s") from None
        except httpx.TransportError as exc:
            raise MemberError(self.id, "unreachable", f"unreachable ({type(exc).__name__})") from None
        if response.status_code == 404:
            raise MemberError(self.id, "not_found", "not found", 404)
        if response.status_code in (400, 422):
            raise MemberError(self.id, "rejected", _description(response), response.status_code)
        if response.status_code >= 400:
            kind = "http" if response.status_code >= 500 else "rejected"
            raise MemberError(self.id, kind, f"HTTP {response.status_code}: {_description(response)[:120]}",
                              response.status_code)
        try:
            return _loads(response.content)
        except _DECODE_ERRORS:
            raise MemberError(self.id, "malformed", "answered with malformed JSON") from None

    async def get_json(self, path_or_href: str, timeout: float | None = None, params: dict | None = None) -> Any:
        href = path_or_href if "://" in path_or_href else self.url(path_or_href)
        return await self.request("GET", href, params=params, timeout=timeout)

    # ---- conformance and collections
    def info_fresh(self) -> bool:
        return self.info is not None and self.clock() - self.info.fetched < self.info_ttl

    async def ensure_info(self, timeout: float) -> MemberInfo:
        """Cached conformance + collections; refreshed when older than ``info_ttl``."""
        if self.info_fresh():
            assert self.info is not None
            return self.info
        async with self._info_lock:
            if self.info_fresh():
                assert self.info is not None
                return self.info
            return await self.refresh_info(timeout)

    async def refresh_info(self, timeout: float) -> MemberInfo:
        started = self.clock()
        try:
            landing = await self.get_json("/", timeout=timeout)
            if not isinstance(landing, dict):
                raise MemberError(self.id, "malformed", "landing page is not a JSON object")
            conforms_to = landing.get("conformsTo")
            if not isinstance(conforms_to, list):
                conformance = await self.get_json("/conformance", timeout=timeout)
                conforms_to = conformance.get("conformsTo", []) if isinstance(conformance, dict) else []
            left = max(0.05, timeout - (self.clock() - started))
            collections = await self._all_collections(left)
        except MemberError as error:
            self.mark_failed(error)
            raise
        self.info = MemberInfo(conforms_to=conforms_to,
                               capabilities=Capabilities.from_conformance(conforms_to, self.get_only),
                               collections=collections, fetched=self.clock())
        self.mark_ok()
        return self.info

    async def _all_collections(self, timeout: float) -> dict[str, dict]:
        found: dict[str, dict] = {}
        href: str | None = self.url("/collections")
        deadline = self.clock() + timeout
        for _ in range(MAX_COLLECTION_PAGES):
            if href is None:
                break
            body = await self.get_json(href, timeout=max(0.05, deadline - self.clock()))
            if not isinstance(body, dict) or not isinstance(body.get("collections"), list):
                raise MemberError(self.id, "malformed", "/collections has no 'collections' list")
            for collection in body["collections"]:
                if isinstance(collection, dict) and isinstance(collection.get("id"), str):
                    found[collection["id"]] = collection
            nxt = [ln for ln in body.get("links") or [] if isinstance(ln, dict) and ln.get("rel") == "next"]
            href = nxt[0].get("href") if nxt and (nxt[0].get("method") or "GET").upper() == "GET" else None
        return found

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
