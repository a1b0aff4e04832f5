"""Talking to member STAC APIs: one shared async httpx client, per-member options, health and backpressure.

Each :class:`Member` knows its base URL, extra headers, whether it accepts POST, an optional
request-signing hook (``'module:function'``, called with each ``httpx.Request``; it may modify
it in place, return a new one, or be a coroutine function) and its time budget. Failures become
:class:`MemberError` with a reason that starts with why (``timeout``, ``rate limited``,
``refused this query``, ``down``, ``malformed answer``).

Health tells a sick member from a bad request (see :class:`HealthPolicy`, pure): what one
request's content caused (4xx, a 5xx other requests do not see) never takes the member away from
other users; it is ejected only after a connection-level failure or failures across distinct
requests, never beyond the federation's ejection cap, and a background probe brings it back.

Backpressure: at most ``concurrency`` requests are sent to a member at once, fewer while it
answers slowly (an AIMD limit, :class:`._admission.AdaptiveLimit`); the others queue in the broker.
The member's time budget starts when its request leaves that queue; a request that finds no free
slot in time is "busy", which is not a health failure. 429/503 are retried within the budget,
after the member's ``Retry-After`` when it sends one.

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

from eolab.catalog._admission import AdaptiveLimit
from eolab.catalog._fallback import Capabilities
from eolab.catalog._health import (  # noqa: F401  (re-exported: callers know them as members' errors)
    Health,
    HealthPolicy,
    MemberError,
    error_reason,
    max_ejected,
    parse_retry_after,
)
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


RETRY_STATUSES = (429, 503)

REQUEST_REFUSALS = (400, 413, 414, 422, 431)  # the member refuses the query itself
# One member page, decoded: real providers' pages of 1,000 items are ~30 MB.
MAX_ANSWER_BYTES = 128 * 1024 * 1024


class _TooLarge(Exception):
    pass




MAX_RETRIES = 3

RETRY_MARGIN = 0.05  # s kept for the retried request itself


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
    concurrency: int = 8
    policy: HealthPolicy = field(default_factory=HealthPolicy)
    may_eject: Callable[["Member"], bool] = lambda member: True
    inflight: int = 0
    queued: int = 0
    last_answer: float = float("-inf")  # when the member last answered any request
    busy_since: float = float("-inf")   # when its requests in flight went from none to some
    _info_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _slots: AdaptiveLimit | None = None
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
        if not self.health.probing:
            self._start_probe()  # e.g. the probe task was cancelled with its event loop
        return self.health.reason

    def busy(self) -> bool:
        """Loaded, not sick: other requests of the broker are in flight and the member has answered
        one recently (a member that answers nobody is hung, however many requests wait for it)."""
        return self.inflight + self.queued > 1 and self.silent_for() < 2 * self.timeout

    def silent_for(self) -> float:
        """Seconds the member has had requests in flight without answering any."""
        return self.clock() - max(self.last_answer, self.busy_since)

    def reset_slots(self) -> None:
        self._slots, self.inflight, self.queued = None, 0, 0
        self._info_lock = asyncio.Lock()

    @property
    def spare(self) -> int:
        """Free request slots under the member's current (adaptive) limit; prefetching uses only these."""
        return (self._slots.spare if self._slots is not None else self.concurrency) - self.queued

    def mark_failed(self, error: MemberError, request_key: str | None = None, busy: bool | None = None) -> bool:
        """Record a failure of one request (``request_key`` tells requests apart); True if it ejected."""
        if not self.health.ok:
            return False
        if busy is None:
            busy = getattr(error, "busy", None)
        if busy is None:
            busy = self.inflight > 0
        if not self.policy.counts(error, busy):
            return False
        self.health.failures += 1
        self.health.requests.add(request_key if request_key is not None else f"#{self.health.failures}")
        if not self.policy.ejects(error, self.health.failures, len(self.health.requests)):
            return False
        if error.kind == "unreachable":
            return self._eject(f"connection failed, last: {error.reason}")
        if not self.health.confirming:
            self._confirm(f"{self.health.failures} failures across {len(self.health.requests)} requests")
        return False

    def _eject(self, why: str) -> bool:
        if not self.may_eject(self):
            return False  # the federation keeps it: too many members are out already
        self.health = Health(ok=False, reason=f"down: {why}", until=self.clock() + self.health_ttl)
        if self.health_ttl > 0:
            self._start_probe()
        return True

    def _confirm(self, why: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.health.confirming = True

        async def confirm() -> None:
            try:
                await self.refresh_info(self.timeout, probe=True)
            except MemberError as error:
                if error.kind == "timeout" and self.busy():
                    self.mark_ok()  # it answers others: loaded, not sick
                else:
                    self._eject(f"{why} and a failed probe, last: {error.reason}")
            else:
                self.mark_ok()  # the member is fine: those requests broke it, not the member
            finally:
                self.health.confirming = False

        task = loop.create_task(confirm())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def mark_ok(self) -> None:
        if not self.health.ok or self.health.failures:
            self.health = Health()

    def _start_probe(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.health.probing = True
        task = loop.create_task(self._probe())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _probe(self) -> None:
        """Background recovery check: every ``health_ttl`` (at most 10 s) until the member answers."""
        while not self.health.ok:
            await asyncio.sleep(max(0.1, min(self.health_ttl, 10.0, self.health.until - self.clock())))
            try:
                await self.refresh_info(self.timeout, probe=True)
            except MemberError as error:
                self.health.until = self.clock() + self.health_ttl
                self.health.reason = self.health.reason.split(", last:")[0] + f", last: {error.reason}"
                continue
            break
        self.health.probing = False

    # ---- HTTP
    def _check_href(self, href: str) -> None:
        """Only follow links to the member's own host (tokens could otherwise aim the broker anywhere)."""
        h, b = urlsplit(href), urlsplit(self.base_url)
        if (h.scheme, h.netloc) != (b.scheme, b.netloc):
            raise MemberError(self.id, "malformed", error_reason("malformed", f"link to another host: {href[:120]}"))

    async def request(self, method: str, href: str, *, params: dict | None = None, body: dict | None = None,
                      timeout: float | None = None, probe: bool = False, queue_timeout: float | None = None,
                      on_sent: Callable[[], None] | None = None) -> Any:
        """Send one request (queued for a free slot, retried on 429/503 within the budget), return the JSON.

        ``timeout`` is the member's own service budget: it starts when the request leaves the
        broker's queue (time waiting for a slot is the broker's load, not the member's slowness).
        The slot wait is bounded by ``queue_timeout`` (default: the budget) and ends in a "busy"
        error, never a health failure. ``on_sent`` is called once the request has its slot.
        ``probe``: a health check, sent at once without a slot (it must not queue behind the load it judges)."""
        self._check_href(href)
        budget = max(0.05, min(2 * self.timeout, timeout if timeout is not None else self.timeout))
        if probe:
            return await self._send(method, href, params, body, budget)
        if self._slots is None:
            self._slots = AdaptiveLimit(self.concurrency)
        queue_budget = budget if queue_timeout is None else queue_timeout
        self.queued += 1
        try:
            async with asyncio.timeout(queue_budget):
                await self._slots.acquire()
        except TimeoutError:
            if self.silent_for() >= 2 * self.timeout:  # its slots are held by hung requests
                raise MemberError(self.id, "timeout", error_reason(
                    "timeout", f"no answer to any request for {2 * self.timeout:.0f} s")) from None
            raise MemberError(self.id, "busy", error_reason(
                "busy", f"member busy, no free request slot within {queue_budget:.1f} s")) from None
        finally:
            self.queued -= 1
        if on_sent is not None:
            on_sent()
        deadline = self.clock() + budget
        if self.inflight == 0:
            self.busy_since = self.clock()
        self.inflight += 1
        try:
            attempt = 0
            while True:
                left = max(0.05, deadline - self.clock())
                try:
                    answer = await self._send(method, href, params, body, left)
                except MemberError as error:
                    error.busy = self.busy()
                    if error.kind in ("timeout", "rate_limited"):
                        self._slots.overloaded()  # fewer at once until it answers in time again
                    attempt += 1
                    if getattr(error, "broken", False) and attempt == 1 and self.clock() + RETRY_MARGIN < deadline:
                        # A kept-alive connection the member closed as the request went out (the
                        # usual keep-alive race): searches only read, so send it once more.
                        continue
                    if error.kind != "rate_limited" or attempt > MAX_RETRIES:
                        raise
                    # The member's Retry-After is honoured; without one, exponential backoff.
                    wait = error.retry_after if error.retry_after is not None else 0.1 * 2 ** (attempt - 1)
                    if self.clock() + wait + RETRY_MARGIN >= deadline:
                        raise
                    await asyncio.sleep(wait)
                    continue
                self._slots.succeeded()
                return answer
        finally:
            self.inflight -= 1
            self._slots.release()

    async def _send(self, method: str, href: str, params: dict | None, body: dict | None, budget: float) -> Any:
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

        async def exchange() -> httpx.Response:
            # The whole answer, body included, inside the budget (a member may hang after the headers).
            response = await self.client.send(request, stream=True)
            try:
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():  # decoded: a compressed bomb counts as it grows
                    size += len(chunk)
                    if size > MAX_ANSWER_BYTES:  # e.g. a writable member's items, grown by one user
                        raise _TooLarge
                    chunks.append(chunk)
            finally:
                await response.aclose()
            headers = [(k, v) for k, v in response.headers.multi_items()
                       if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
            return httpx.Response(response.status_code, headers=headers, content=b"".join(chunks),
                                  request=response.request)

        try:
            response = await asyncio.wait_for(exchange(), budget)
        except _TooLarge:
            raise MemberError(self.id, "malformed", error_reason(
                "malformed", f"answer larger than {MAX_ANSWER_BYTES // 2 ** 20} MB")) from None
        except (TimeoutError, httpx.TimeoutException):
            raise MemberError(self.id, "timeout", error_reason("timeout", f"no answer within {budget:.1f} s")) from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise MemberError(self.id, "unreachable", error_reason(
                "unreachable", f"connection failed ({type(exc).__name__})")) from None
        except httpx.TransportError as exc:
            error = MemberError(self.id, "http", error_reason("http", f"answer broken off ({type(exc).__name__})"))
            error.broken = True
            raise error from None
        status = response.status_code
        if status == 404:
            raise MemberError(self.id, "not_found", error_reason("not_found", "not found"), 404)
        if status in RETRY_STATUSES and (status == 429 or "retry-after" in response.headers):
            after = parse_retry_after(response.headers.get("retry-after"))
            detail = f"HTTP {status}" + (f", retry after {after:g} s" if after is not None else "")
            raise MemberError(self.id, "rate_limited", error_reason("rate_limited", detail), status, after)
        if status in REQUEST_REFUSALS:
            raise MemberError(self.id, "rejected", error_reason("rejected", _description(response)), status)
        if status >= 400:
            kind = "http"  # 5xx, and 401/403/... that say nothing about the query's content
            raise MemberError(self.id, kind, error_reason(kind, f"HTTP {status}: {_description(response)[:120]}"),
                              status)
        self.last_answer = self.clock()
        try:
            return _loads(response.content)
        except _DECODE_ERRORS:
            raise MemberError(self.id, "malformed", error_reason("malformed", "not valid JSON")) from None

    async def get_json(self, path_or_href: str, timeout: float | None = None, params: dict | None = None,
                       probe: bool = False) -> Any:
        href = path_or_href if "://" in path_or_href else self.url(path_or_href)
        return await self.request("GET", href, params=params, timeout=timeout, probe=probe)

    # ---- conformance and collections
    def info_fresh(self) -> bool:
        return self.info is not None and self.clock() - self.info.fetched < self.info_ttl

    async def ensure_info(self, timeout: float) -> MemberInfo:
        """Cached conformance + collections; refreshed when older than ``info_ttl``. A read-only
        member's stale copy is used while a background refresh runs (a refresh waiting behind the
        load must not take the member out of a search); a writable member's is refreshed first."""
        if self.info_fresh():
            assert self.info is not None
            return self.info
        if self.info is not None and not self.config.writable:
            if not self._info_lock.locked():
                self._spawn_refresh(timeout)
            return self.info
        async with self._info_lock:
            if self.info_fresh():
                assert self.info is not None
                return self.info
            return await self.refresh_info(timeout)

    def _spawn_refresh(self, timeout: float) -> None:
        async def refresh() -> None:
            async with self._info_lock:
                if not self.info_fresh():
                    try:
                        await self.refresh_info(timeout)
                    except MemberError:
                        pass  # counted by refresh_info; the next search tries again
        task = asyncio.get_running_loop().create_task(refresh())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def refresh_info(self, timeout: float, probe: bool = False) -> MemberInfo:
        started = self.clock()
        try:
            landing = await self.get_json("/", timeout=timeout, probe=probe)
            if not isinstance(landing, dict):
                raise MemberError(self.id, "malformed", error_reason("malformed", "landing page is not a JSON object"))
            conforms_to = landing.get("conformsTo")
            if not isinstance(conforms_to, list):
                conformance = await self.get_json("/conformance", timeout=timeout, probe=probe)
                conforms_to = conformance.get("conformsTo", []) if isinstance(conformance, dict) else []
            left = max(0.05, timeout - (self.clock() - started))
            collections = await self._all_collections(left, probe)
        except MemberError as error:
            if not probe:
                self.mark_failed(error, "info")
            raise
        self.info = MemberInfo(conforms_to=conforms_to,
                               capabilities=Capabilities.from_conformance(conforms_to, self.get_only),
                               collections=collections, fetched=self.clock())
        self.mark_ok()
        return self.info

    async def _all_collections(self, timeout: float, probe: bool = False) -> dict[str, dict]:
        found: dict[str, dict] = {}
        href: str | None = self.url("/collections")
        deadline = self.clock() + timeout
        for _ in range(MAX_COLLECTION_PAGES):
            if href is None:
                break
            body = await self.get_json(href, timeout=max(0.05, deadline - self.clock()), probe=probe)
            if not isinstance(body, dict) or not isinstance(body.get("collections"), list):
                raise MemberError(self.id, "malformed", error_reason("malformed", "/collections has no 'collections' list"))
            for collection in body["collections"]:
                if isinstance(collection, dict) and isinstance(collection.get("id"), str):
                    found[collection["id"]] = collection
            nxt = [ln for ln in body.get("links") or [] if isinstance(ln, dict) and ln.get("rel") == "next"]
            href = nxt[0].get("href") if nxt and (nxt[0].get("method") or "GET").upper() == "GET" else None
        return found

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()

