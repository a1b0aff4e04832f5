"""The federation: concurrent fan-out to members, merging, paging, metadata. No web framework here.

:class:`Federation` is what the broker's routes call. It owns one shared ``httpx.AsyncClient``
(connection pooling/keep-alive for every member), the members with their health and metadata
caches, and a short-lived cache of member pages that only serves requests *continuing* a walk
(a new search always goes to the members).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx

from eolab.catalog._admission import Admission, Overloaded  # noqa: F401  (Overloaded: for the app)
from eolab.catalog._fallback import (
    apply_fields,
)
from eolab.catalog._members import Member, MemberError, error_reason, max_ejected
from eolab.catalog._merge import Cursor, MemberPage, Merger, sort_key_function
from eolab.catalog._metadata import (  # noqa: F401  (CONFORMANCE, NotFound, Unavailable: for the app)
    CONFORMANCE,
    STAC_VERSION,
    MetadataMixin,
    NotFound,
    Unavailable,
    _quote,
)
from eolab.catalog._paging import TokenState, decode_token, encode_token
from eolab.catalog._plan import (  # noqa: F401  (MemberRejected, MAX_WAITS, failure_outcome: re-exported)
    MAX_WAITS,
    EveryMemberFailed,
    MemberPlan,
    MemberRejected,
    PageCache,
    failure_outcome,
    member_request,
    parse_member_page,
)
from eolab.catalog._query import DEFAULT_SORTBY, BadParameter, SearchQuery
from eolab.catalog._rewrite import federated_id, rewrite_item, split_id
from eolab.catalog._routing import MemberView, plan_search
from eolab.config import StackConfig

WRITABLE_INFO_TTL = 2.0  # s

MAX_MEMBER_PAGE = 1000
QUEUE_WAITS = 4  # a page's time in members' queues, in budgets (total_timeout)


def answer_within(total_timeout: float) -> float:
    """The longest a search waits for its answer: at the door (one budget), in the members' queues
    (QUEUE_WAITS budgets in all), then its budget. Clients (and the hub's gate) wait this long."""
    return (1 + QUEUE_WAITS + 1) * total_timeout


class Federation(MetadataMixin):
    """All members of one stack configuration, ready to be searched together."""

    def __init__(self, config: StackConfig, *, transport: httpx.AsyncBaseTransport | None = None,
                 secret: str | None = None, page_cache_ttl: float = 30.0, info_ttl: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.clock = clock
        broker = config.broker
        self.member_timeout, self.total_timeout = broker.member_timeout, broker.total_timeout
        from eolab import settings

        env = settings.services()
        secret = secret or broker.token_secret or env.broker_token_secret
        self.key = (secret or secrets.token_hex(32)).encode()
        self._transport = transport
        self.client = self._new_client()
        self.members: dict[str, Member] = {
            m.id: Member(config=m, base_url=config.member_url(m), client=self.client,
                         timeout=m.timeout or broker.member_timeout, health_ttl=broker.health_ttl,
                         # Writable members gain collections at any time (published results).
                         info_ttl=min(info_ttl, WRITABLE_INFO_TTL) if m.writable else info_ttl, clock=clock,
                         concurrency=broker.member_concurrency, may_eject=self._may_eject)
            for m in config.enabled_members
        }
        self.known_ids = {m.id for m in config.members}
        self.pages = PageCache(page_cache_ttl, max_entries=1024, clock=clock)
        self._background: set[asyncio.Task] = set()
        self._inflight: dict[str, asyncio.Future] = {}
        self.max_searches = env.broker_max_searches or broker.max_searches
        self.max_queued = broker.max_queued
        self.door_wait = self.total_timeout  # longest wait at the door before a 503
        # How long a page waits for a member's request slot in the broker's own queue (not the
        # member's time budget); beyond it the member is "busy" and the walk asks again later.
        self.queue_wait = QUEUE_WAITS * self.total_timeout
        self.answer_within = answer_within(self.total_timeout)
        self._admission: Admission | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _may_eject(self, member: Member) -> bool:
        """The ejection cap: never more than half of the members out at once, never every member."""
        out = sum(1 for m in self.members.values() if not m.health.ok and m is not member)
        return out < max_ejected(len(self.members))

    def _new_client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=64)
        return httpx.AsyncClient(transport=self._transport, limits=limits, follow_redirects=True)

    def ensure_open(self) -> None:
        """A fresh HTTP client after :meth:`aclose` (an app started, stopped and started again)."""
        if self.client.is_closed:
            self.client = self._new_client()
            for member in self.members.values():
                member.client = self.client
                member.reset_slots()  # asyncio primitives belong to the event loop that made them
            self._admission = None

    async def aclose(self) -> None:
        for member in self.members.values():
            await member.aclose()
        for task in list(self._background):
            task.cancel()
        await self.client.aclose()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def warm_up(self) -> None:
        """Load every member's conformance and collections (run at start-up, in the background)."""
        await asyncio.gather(*(self._info(m, self.member_timeout) for m in self.members.values()))


    # ------------------------------------------------------------------ search
    async def search(self, query: SearchQuery, base: str, next_link: Callable[[str], dict],
                     self_href: str) -> dict:
        """One broker page. At most ``max_searches`` run at once; ``max_queued`` more wait at the door
        (up to ``total_timeout``) before their time budget starts; beyond that :class:`Overloaded`
        (503 with ``Retry-After``). An overloaded broker serves fewer searches well rather than all
        of them past their budgets, which would look like members timing out."""
        self._same_loop()
        if self._admission is None:
            self._admission = Admission(self.max_searches, self.max_queued, self.door_wait, clock=self.clock)
        async with self._admission as door:
            started = self.clock()
            result = await self._search(query, base, next_link, self_href)
            door.done(self.clock() - started)
            return result

    def _same_loop(self) -> None:
        """asyncio primitives (the door, request slots, shared member requests) belong to the loop
        that made them; an app driven by a new event loop (a test client per request) starts them
        afresh instead of waiting on another loop's futures."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._loop is not None:
                self._admission = None
                self._inflight.clear()
                for member in self.members.values():
                    member.reset_slots()
            self._loop = loop

    async def _search(self, query: SearchQuery, base: str, next_link: Callable[[str], dict],
                      self_href: str) -> dict:
        started = self.clock()
        deadline = started + self.total_timeout
        if query.token:
            state = decode_token(query.token, self.key, query.fingerprint())
            missing = dict(state.missing)
            member_limit = state.member_limit
            targets = {}
            for member_id, cursor in state.cursors.items():
                if member_id not in self.members:
                    missing[member_id] = "no longer enabled"
                    continue
                reason = self.members[member_id].skip_reason()
                if reason:
                    missing[member_id] = reason  # it leaves the walk, named on every later page
                    continue
                targets[member_id] = cursor.get("k")
            matched = dict(state.matched)
        else:
            state = None
            # Members are asked for at most MAX_MEMBER_PAGE items a page, more pages when a broker
            # page needs more: a member page of 10,000 items is hundreds of MB in the broker
            member_limit = min(query.limit, MAX_MEMBER_PAGE)
            plan = await self._plan(query, deadline)
            targets, missing, matched = plan.targets, dict(plan.missing), {}
        plans, info_missing = await self._member_plans(query, targets, member_limit, deadline)
        missing.update(info_missing)
        cursors = []
        for member_id in plans:
            saved = state.cursors.get(member_id, {}) if state else {}
            cursors.append(Cursor.from_state(member_id, saved))
        accepts = {m: p.accept for m, p in plans.items() if p.accept is not None}
        def accept(member: str, item: dict) -> bool:
            check = accepts.get(member)
            if check is None:
                return True
            local = item.get("collection")
            view = {**item, "collection": federated_id(member, local)} if isinstance(local, str) else item
            return check(view)

        merger = Merger(cursors=cursors, key=sort_key_function(query.effective_sortby), limit=query.limit,
                        accept=accept, fields=tuple(f for f, _ in query.effective_sortby))
        waiting: dict[str, str] = {}
        server_errors: dict[str, str] = {}
        await self._drive(merger, plans, deadline, first_walk_page=state is None, missing=missing,
                          waiting=waiting, server_errors=server_errors)
        missing.update(merger.failed)  # e.g. a member found out of order while merging
        if state is None and server_errors and not merger.emitted and not waiting \
                and set(plans) <= set(server_errors) | self._holding_none(plans):
            # Every member that holds the collections answered this very search with a server error
            # (the others hold none of them): a 200 without features would read as "nothing found".
            raise EveryMemberFailed(server_errors, found_nothing=sorted(set(plans) - set(server_errors)))
        if state is None:
            matched = {m: n for m, n in merger.number_matched().items()}
        features = []
        for member_id, item in merger.emitted:
            out = rewrite_item(item, member_id, self.members[member_id].base_url, base)
            if query.fields is not None:
                out = apply_fields(out, *query.fields)
            features.append(out)
        result: dict[str, Any] = {"type": "FeatureCollection", "features": features,
                                  "numberReturned": len(features)}
        if matched and not missing and all(isinstance(matched.get(m), int) for m in matched) \
                and set(plans) <= set(matched):
            result["numberMatched"] = sum(matched.values())
        links = [{"rel": "self", "type": "application/geo+json", "href": self_href},
                 {"rel": "root", "type": "application/json", "href": base.rstrip("/") + "/"}]
        live = merger.states()
        if live:
            for member_id, cursor in live.items():
                if plans[member_id].locals_ is not None:
                    cursor["k"] = plans[member_id].locals_
            token = encode_token(TokenState(fingerprint=query.fingerprint(), cursors=live, missing=missing,
                                            matched=matched, member_limit=member_limit), self.key)
            links.append(next_link(token))
        result["links"] = links
        result["federation:missing"] = sorted(missing)
        result["eolab:member_errors"] = missing
        if waiting:
            # Still in the walk: the page ended early and the next one asks them again.
            result["eolab:member_waiting"] = waiting
        self._prefetch(merger, plans, query.limit)
        return result

    async def _plan(self, query: SearchQuery, deadline: float):
        views = []
        need_info = query.collections is None or any(split_id(c)[0] is None for c in query.collections) \
            or query.bbox is not None or query.intersects is not None or query.interval is not None
        usable = [m for m in self.members.values() if not m.skip_reason()]
        if need_info:
            await self._gather_info(usable, max(0.05, deadline - self.clock()))
        for member in self.members.values():
            views.append(MemberView(id=member.id, skip_reason=member.skip_reason(),
                                    # A writable member's collections change any time: ask it, do not
                                    # plan from a cached list that may miss what was just published.
                                    collections=member.info.collections
                                    if member.info and not member.config.writable else None))
        return plan_search(query, views, self.known_ids)

    async def _member_plans(self, query: SearchQuery, targets: dict[str, list[str] | None], limit: int,
                            deadline: float) -> tuple[dict[str, MemberPlan], dict[str, str]]:
        missing: dict[str, str] = {}
        members = [self.members[m] for m in targets]
        infos = await self._gather_info(members, max(0.05, deadline - self.clock()))
        plans: dict[str, MemberPlan] = {}
        cannot_sort = []
        for member, info in zip(members, infos):
            if isinstance(info, MemberError) or info is None:
                missing[member.id] = info.reason if isinstance(info, MemberError) else "no conformance known"
                continue
            caps = info.capabilities
            if query.sortby is not None and query.sortby != DEFAULT_SORTBY and not caps.sort:
                cannot_sort.append(member.id)
            method, href, payload, accept = member_request(query, member.id, targets[member.id], caps, limit,
                                                           member.base_url)
            locals_ = targets[member.id]
            held = list(info.collections or {})
            default = locals_[0] if locals_ is not None and len(locals_) == 1 else held[0] if len(held) == 1 else None
            plans[member.id] = MemberPlan(member, locals_, method, href, payload, accept, key=query.fingerprint(),
                                          default_collection=default)
        if cannot_sort:
            raise BadParameter("sortby", f"member(s) {', '.join(cannot_sort)} cannot sort results",
                               hint="use the default order (datetime descending) or search other collections")
        return plans, missing

    async def _fetch(self, plan: MemberPlan, ref: Any, timeout: float, use_cache: bool,
                     queued: list[float] | None = None, queue_wait: float | None = None) -> MemberPage:
        """One member page: first its wait for a request slot in the broker's own queue (up to
        ``queue_wait``, default the broker's; added to ``queued``), then at most ``timeout`` of the
        member's own service time.

        The request itself runs as a background task with the member's full budget and its page is
        cached: when this caller gives up (the page ends early, waiting for a busy member), the
        member's work is not wasted, the walk's next page finds it. Identical requests share one task."""
        method, href, payload = plan.request_for(ref)
        key = json.dumps([plan.member.id, method, href, payload], sort_keys=True, default=str)
        entry = None
        if use_cache:
            hit = self.pages.get(key)
            if hit is not None:
                return hit
            entry = self._inflight.get(key)
        if entry is None:
            sent = asyncio.Event()
            task = self._spawn(self._fetch_now(plan, method, href, payload, 2 * plan.member.timeout, sent))
            entry = (task, sent)
            if use_cache or key not in self._inflight:
                self._inflight[key] = entry

            def settle(done: asyncio.Task, key=key) -> None:
                if self._inflight.get(key, (None,))[0] is done:
                    del self._inflight[key]
                if done.cancelled():
                    return
                if done.exception() is None:  # also retrieves a failure nobody waits for any more
                    self.pages.put(key, done.result())
            task.add_done_callback(settle)
        task, sent = entry
        started = self.clock()
        patience = self.queue_wait if queue_wait is None else queue_wait
        try:
            await asyncio.wait_for(asyncio.shield(sent.wait()), patience)
        except TimeoutError:
            error = MemberError(plan.member.id, "busy", error_reason(
                "busy", f"member busy, no free request slot in the broker within {patience:.0f} s"))
            error.busy = True
            raise error from None
        finally:
            if queued is not None:
                queued.append(self.clock() - started)
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            error = MemberError(plan.member.id, "timeout", error_reason("timeout", f"no answer within {timeout:.1f} s"))
            # Slow, not sick, while it answered something within twice its budget (e.g. a machine
            # short of CPU): the walk waits for it; a member silent that long is named missing.
            member = plan.member
            error.busy = member.busy() or member.spare <= 0 or member.silent_for() < 2 * member.timeout
            raise error from None

    async def _fetch_now(self, plan: MemberPlan, method: str, href: str, payload: dict,
                         timeout: float, sent: asyncio.Event) -> MemberPage:
        try:
            if method == "POST":
                body = await plan.member.request("POST", href, body=payload, timeout=timeout,
                                                 queue_timeout=self.queue_wait, on_sent=sent.set)
            else:
                body = await plan.member.request("GET", href, params=payload, timeout=timeout,
                                                 queue_timeout=self.queue_wait, on_sent=sent.set)
        finally:
            sent.set()  # failed in the queue: the caller sees the failure at once
        page = parse_member_page(plan.member.id, body, plan)
        plan.member.mark_ok()
        return page

    async def _drive(self, merger: Merger, plans: dict[str, MemberPlan], deadline: float, *,
                     first_walk_page: bool, missing: dict[str, str], waiting: dict[str, str],
                     server_errors: dict[str, str] | None = None) -> None:
        first_round = True
        extended = 0.0
        while True:
            merger.fill()
            wanted = merger.wanted()
            if merger.full or merger.finished or not wanted:
                return
            left = deadline - self.clock()
            if not first_round and (merger.stalled() or any(left < plans[c.member].member.timeout for c in wanted)):
                return  # end the page early; the token resumes exactly here
            queued: list[float] = []
            results = await asyncio.gather(*(
                self._fetch(plans[c.member], c.ref, max(0.05, min(plans[c.member].member.timeout, left)),
                            use_cache=not (first_walk_page and c.ref is None), queued=queued,
                            queue_wait=max(0.05, self.queue_wait - extended))  # the page's allowance left
                for c in wanted), return_exceptions=True)
            # The broker's own queue is not the members' budget; in all at most queue_wait is added,
            # so a page keeps to answer_within (which clients take for their timeout).
            more = min(max(queued, default=0.0), max(0.0, self.queue_wait - extended))
            deadline += more
            extended += more
            for cursor, result in zip(wanted, results):
                if isinstance(result, MemberPage):
                    merger.load(cursor.member, result)
                    continue
                if not isinstance(result, MemberError):
                    raise result
                outcome = failure_outcome(result, first_page=first_walk_page and cursor.ref is None,
                                          waits=cursor.waits)
                plans[cursor.member].member.mark_failed(result, plans[cursor.member].key)
                if outcome == "reject":
                    raise MemberRejected(f"member {cursor.member!r} rejected the search: {result.reason}",
                                         hint="leave out what it cannot do, or search other collections")
                if outcome == "empty":
                    merger.load(cursor.member, MemberPage(items=[]))  # e.g. a collection it does not hold
                elif outcome == "wait":
                    merger.wait(cursor.member)
                    waiting[cursor.member] = result.reason
                else:
                    merger.fail(cursor.member, result.reason)
                    missing[cursor.member] = result.reason
                    if server_errors is not None and result.kind == "http" and (result.status or 0) >= 500 \
                            and cursor.ref is None:
                        server_errors[cursor.member] = result.reason
            if waiting:
                return  # this page ends here; the next one asks the waiting members again
            first_round = False

    def _holding_none(self, plans: dict[str, MemberPlan]) -> set[str]:
        """Members that list none of the collections they were asked for (a writable member is asked
        always: its list changes any time)."""
        out = set()
        for member_id, plan in plans.items():
            info = self.members[member_id].info
            if plan.locals_ is not None and info is not None and not set(plan.locals_) & set(info.collections):
                out.add(member_id)
        return out

    def _prefetch(self, merger: Merger, plans: dict[str, MemberPlan], limit: int) -> None:
        """Fetch the next page of members about to run dry, so the next broker page finds it cached.

        Only with spare capacity: a member's free request slots are for users' own requests first."""
        if self.pages.ttl <= 0:
            return
        for cursor in merger.live:
            page = cursor.page
            if page is None or page.next_ref is None or len(page.items) - cursor.pos >= limit:
                continue
            plan = plans[cursor.member]
            if plan.member.spare < max(2, plan.member.concurrency // 2):
                continue

            async def fetch(plan=plan, ref=page.next_ref) -> None:
                try:
                    await self._fetch(plan, ref, plan.member.timeout, use_cache=True)
                except MemberError:
                    pass  # the next broker page will try again and report it

            self._spawn(fetch())
