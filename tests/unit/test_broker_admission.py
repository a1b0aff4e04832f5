"""Back-pressure: the broker's admission limit (503 + Retry-After at the door) and the adaptive
per-member concurrency limit (AIMD), in-process against fault members."""

from __future__ import annotations

import asyncio

import httpx

from eolab.catalog._admission import AdaptiveLimit, Admission, Overloaded
from tests.unit.test_broker_app import client_for, ids_of, make_broker, walk

SLOW = {"a": {"n_items": 30, "delay": 1.0}, "b": {"n_items": 20, "offset_minutes": 7, "delay": 1.0}}


async def _retrying_walk(client: httpx.AsyncClient, limit: int) -> tuple[list, int]:
    """A well-behaved client: on 503 it waits Retry-After and sends the same request again."""
    items, refusals = [], 0
    request = ("GET", "/search", {"params": {"limit": limit}})
    while request:
        response = await client.request(request[0], request[1], **request[2])
        if response.status_code == 503:
            refusals += 1
            assert refusals < 50
            await asyncio.sleep(int(response.headers["Retry-After"]))
            continue
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["federation:missing"] == []
        items += body["features"]
        nxt = [link for link in body["links"] if link["rel"] == "next"]
        request = ("GET", nxt[0]["href"], {}) if nxt else None
    return items, refusals


def test_over_the_limit_a_search_gets_503_with_retry_after_and_admitted_ones_are_complete():
    app = make_broker(SLOW, max_searches=2, max_queued=1, member_timeout=5.0, total_timeout=10.0)

    async def go(c):
        burst = await asyncio.gather(*(c.get("/search", params={"limit": 10}) for _ in range(10)))
        after = await c.get("/search", params={"limit": 10})
        return burst, after

    async def main():
        async with client_for(app) as c:
            return await go(c)
    burst, after = asyncio.run(main())
    admitted = [r for r in burst if r.status_code == 200]
    refused = [r for r in burst if r.status_code != 200]
    assert len(admitted) == 3  # two at once and one waiting at the door
    assert len(refused) == 7 and {r.status_code for r in refused} == {503}
    for response in refused:
        body = response.json()
        assert body["code"] == "Overloaded"
        seconds = int(response.headers["Retry-After"])
        assert seconds >= 1 and body["retry_after"] == seconds
        assert f"retry after {seconds} s" in body["description"]
    # Admitted pages are whole: the same ten items as the first page asked alone, nobody missing.
    assert after.status_code == 200 and after.json()["federation:missing"] == []
    reference = ids_of(after.json()["features"])
    assert len(reference) == 10
    for response in admitted:
        body = response.json()
        assert body["federation:missing"] == [] and ids_of(body["features"]) == reference
    assert app.state.federation._admission.active == 0


def test_a_search_waiting_longer_than_the_total_budget_is_refused_not_lost():
    app = make_broker(SLOW, max_searches=1, max_queued=10, member_timeout=5.0, total_timeout=10.0)
    app.state.federation.door_wait = 0.3  # total_timeout by default

    async def main():
        async with client_for(app) as c:
            return await asyncio.gather(c.get("/search", params={"limit": 5}),
                                        c.get("/search", params={"limit": 5}))
    first, second = asyncio.run(main())
    assert first.status_code == 200 and len(first.json()["features"]) == 5
    assert second.status_code == 503 and "no turn within 0.3 s" in second.json()["description"]
    assert int(second.headers["Retry-After"]) >= 1


def test_clients_honouring_retry_after_all_complete_their_walks():
    specs = {"a": {"n_items": 30, "delay": 0.2}, "b": {"n_items": 20, "offset_minutes": 7, "delay": 0.2}}
    app = make_broker(specs, max_searches=2, max_queued=0, member_timeout=5.0, total_timeout=10.0)

    async def main():
        async with client_for(app) as c:
            walks = await asyncio.gather(*(_retrying_walk(c, 15) for _ in range(6)))
            return walks, await walk(c, limit=15)
    walks, (reference, _) = asyncio.run(main())
    assert sum(refusals for _, refusals in walks) > 0  # the limit did refuse some pages
    for items, _ in walks:
        assert ids_of(items) == ids_of(reference) and len(reference) == 50


def test_admission_passes_a_cancelled_waiters_turn_on():
    async def main():
        door = Admission(limit=1, queue=5, max_wait=5.0)
        await door.__aenter__()
        cancelled = asyncio.ensure_future(door.__aenter__())
        waiting = asyncio.ensure_future(door.__aenter__())
        await asyncio.sleep(0)
        cancelled.cancel()
        await door.__aexit__(None, None, None)
        await asyncio.wait_for(waiting, 1.0)  # the turn went to the live waiter
        assert door.active == 1
        await door.__aexit__(None, None, None)
        assert door.active == 0
        full = Admission(limit=1, queue=0, max_wait=5.0)
        await full.__aenter__()
        try:
            await full.__aenter__()
        except Overloaded as exc:
            return exc.retry_after
    assert asyncio.run(main()) >= 1


def test_adaptive_limit_backs_off_on_overload_and_recovers_with_answers():
    limit = AdaptiveLimit(8)
    for _ in range(3):
        limit.overloaded()
    assert int(limit.limit) == 2  # 8 × 0.7³
    for _ in range(200):
        limit.succeeded()
    assert limit.limit == 8
    for _ in range(50):
        limit.overloaded()
    assert limit.limit == 1  # never below one request at a time


def test_adaptive_limit_queues_over_the_limit_in_order():
    async def main():
        limit = AdaptiveLimit(2)
        await limit.acquire()
        await limit.acquire()
        order = []

        async def user(n):
            await limit.acquire()
            order.append(n)
        users = [asyncio.ensure_future(user(n)) for n in range(3)]
        await asyncio.sleep(0)
        assert order == [] and limit.inflight == 2
        limit.release()
        await asyncio.sleep(0)
        assert order == [0]
        limit.release()
        limit.release()
        await asyncio.gather(*users)
        return order, limit.inflight
    assert asyncio.run(main()) == ([0, 1, 2], 2)


def test_time_in_the_brokers_own_queue_is_not_the_members_budget():
    """One request at a time to a member that needs 0.4 s each, budget 1 s: the fifth of five
    concurrent searches waits ~1.6 s in the broker's queue, yet its member answered within its own
    budget, so every page is whole: nobody missing, nobody left waiting, the member still healthy."""
    specs = {"a": {"n_items": 30, "delay": 0.4}, "b": {"n_items": 20, "offset_minutes": 7}}
    app = make_broker(specs, member_concurrency=1, member_timeout=1.0, total_timeout=2.0)

    async def main():
        async with client_for(app) as c:
            return await asyncio.gather(*(c.get("/search", params={"limit": 10}) for _ in range(5)))
    pages = [r.json() for r in asyncio.run(main())]
    for body in pages:
        assert body["federation:missing"] == [] and "eolab:member_waiting" not in body
        assert ids_of(body["features"]) == ids_of(pages[0]["features"]) and len(body["features"]) == 10
    assert app.state.federation.members["a"].health.ok


def test_admission_never_loses_a_place_when_turns_and_timeouts_meet():
    """Turns given just as a waiter's time runs out (or its client goes) must come back: after many
    such races the door is empty and admits again."""
    import random

    async def main():
        rng = random.Random(13)
        door = Admission(limit=3, queue=40, max_wait=0.004)

        async def user():
            try:
                async with door:
                    await asyncio.sleep(rng.choice((0, 0.001, 0.003)))
            except Overloaded:
                pass

        for _ in range(40):
            tasks = [asyncio.ensure_future(user()) for _ in range(30)]
            await asyncio.sleep(rng.choice((0.001, 0.002)))
            for task in rng.sample(tasks, 5):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert door.active == 0 and not door._waiters
        async with door:
            assert door.active == 1
    asyncio.run(main())
