"""The broker under hostile input and misbehaving members (issue 13), without a network.

Pure parts (health policy, failure outcomes, Retry-After, validation, merge checks) are table
tests; whole-broker cases run the app in-process against fake members from the fault kit
(eolab.testing.faults) that misbehave on purpose. Every fault case checks two things: the
healthy members' items are all there, and a *following* request from another client is not
affected. No test asserts a wall-clock time.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from eolab.catalog._federation import MAX_WAITS, failure_outcome
from eolab.catalog._members import HealthPolicy, Member, MemberError, error_reason, max_ejected, parse_retry_after
from eolab.catalog._merge import Cursor, MemberPage, Merger, sort_key_function
from eolab.catalog._query import BadParameter, load_json, parse_get, parse_post
from eolab.catalog._rewrite import localize_filter
from eolab.config import MemberConfig
from eolab.testing.faults import synthetic_items
from tests.unit.test_broker_app import broker_and_members, client_for, run
from tests.unit.test_broker_app import walk as walk_pages


def make_broker(specs: dict[str, dict], down: tuple[str, ...] = (), **broker):
    return broker_and_members(specs, down, **broker)


def walk(client: httpx.AsyncClient, limit: int = 7, method: str = "POST", **params):
    """Every page of a search (POST by default here)."""
    return walk_pages(client, method, limit, **params)


def ids(items):
    return [(i["collection"], i["id"]) for i in items]


HEALTHY = {"a": {"n_items": 45}, "b": {"n_items": 38, "offset_minutes": 40}}


def expected(specs=HEALTHY):
    return sorted((f"{k}|synthetic", f"{k}-{i:06d}") for k, v in specs.items() for i in range(v["n_items"]))


# --------------------------------------------------------------------------- health: pure

def member(**kw) -> Member:
    return Member(config=MemberConfig(id="m", url="http://m.test"), base_url="http://m.test", client=None,
                  timeout=1.0, health_ttl=0, **kw)


def error(kind: str, status: int | None = None) -> MemberError:
    return MemberError("m", kind, error_reason(kind, "x"), status)


def test_request_caused_failures_never_eject():
    m = member()
    for _ in range(20):  # the same bad request again and again, and 4xx/404/429 from any request
        assert not m.mark_failed(error("http", 500), "same-query", busy=False)
    for i, kind in enumerate(["rejected", "not_found", "rate_limited", "busy"] * 5):
        assert not m.mark_failed(error(kind), f"q{i}", busy=False)
    assert m.health.ok


def test_connection_failure_ejects_at_once_within_the_cap():
    m = member()
    assert m.mark_failed(error("unreachable"), "q1")
    assert not m.health.ok and m.health.reason.startswith("down: connection failed")
    capped = member(may_eject=lambda _: False)
    assert not capped.mark_failed(error("unreachable"), "q1")
    assert capped.health.ok


def test_timeouts_under_load_do_not_count():
    m = member()
    for i in range(10):
        m.mark_failed(error("timeout"), f"q{i}", busy=True)
    assert m.health.ok and m.health.failures == 0


def test_failures_across_requests_need_a_failed_probe():
    policy = HealthPolicy()
    assert not policy.ejects(error("http"), 5, 1)         # one request, many times
    assert not policy.ejects(error("http"), 2, 2)         # not enough in a row
    assert policy.ejects(error("http"), 3, 2)             # → a probe decides (see _members._confirm)
    assert policy.ejects(error("unreachable"), 1, 1)


def test_ejection_cap_never_takes_every_member():
    assert [max_ejected(n) for n in range(1, 7)] == [0, 1, 1, 2, 2, 3]


def test_retry_after_seconds_and_dates():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 10) == 10.0


@pytest.mark.parametrize("kind, busy, first, waits, outcome", [
    ("rejected", None, True, 0, "reject"),
    ("rejected", None, False, 0, "missing"),
    ("not_found", None, True, 0, "empty"),
    ("http", None, True, 0, "missing"),
    ("rate_limited", None, False, 0, "missing"),
    ("timeout", False, False, 0, "missing"),       # an idle member too slow: named missing
    ("timeout", True, False, 0, "wait"),           # busy under load: the walk waits for it
    ("busy", None, True, 0, "wait"),
    ("busy", None, False, MAX_WAITS, "missing"),
])
def test_failure_outcomes(kind, busy, first, waits, outcome):
    e = error(kind)
    e.busy = busy
    assert failure_outcome(e, first_page=first, waits=waits) == outcome


# --------------------------------------------------------------------------- validation before fan-out

@pytest.mark.parametrize("params", [
    {"ids": "a\x00b"}, {"collections": "a|b\x00"}, {"filter": "platform = 'x\x00'"},
    {"filter": "foo(platform, 1)"}, {"filter": "platform = 'a\x1b'"}, {"bbox": "0,0,5,1,1,1"},
    {"intersects": json.dumps({"type": "Point", "coordinates": [1, 2, 3]})},
    {"filter": "S_INTERSECTS(geometry, BBOX(0,0,0,1,1,1))"}, {"datetime": "2020-01-01T00:00:00Z\x00"},
    {"query": json.dumps({"platform": {"eq": "x\x00"}})},
])
def test_hostile_get_parameters_are_400(params):
    with pytest.raises(BadParameter):
        parse_get(params)


@pytest.mark.parametrize("body", [
    {"filter": {"op": "nope", "args": [{"property": "a"}, 1]}},
    {"filter": {"op": "=", "args": [{"property": "a\x00"}, 1]}},
    {"filter": {"op": "s_intersects", "args": [{"property": "geometry"},
                                                {"type": "Point", "coordinates": [1, 2, 3]}]}},
    {"bbox": [0, 0, 10 ** 400, 1]}, {"bbox": [0, 0, 5, 1, 1, 1]}, {"ids": ["ok", "\x07"]},
])
def test_hostile_post_bodies_are_400(body):
    with pytest.raises(BadParameter):
        parse_post(body)


def test_json_limits():
    with pytest.raises(BadParameter, match="nested deeper"):
        load_json("[" * 100_000 + "]" * 100_000, "body")
    with pytest.raises(BadParameter, match="nested deeper"):
        load_json(json.dumps({"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}), "body")
    with pytest.raises(BadParameter, match="digits"):
        load_json('{"bbox": [0, 0, ' + "9" * 5000 + ', 1]}', "body")
    with pytest.raises(BadParameter):
        load_json('{"bbox": [NaN, 0, 1, 1]}', "body")
    assert load_json('{"limit": 10}', "body") == {"limit": 10}


def test_collection_rewrite_sends_members_only_plain_strings():
    expr = {"op": "in", "args": [{"property": "collection"}, ["a|x", "b|y", "z"]]}
    for m in ("a", "b", "c"):
        out = json.dumps(localize_filter(expr, m))
        assert "\\u0000" not in out and "\x00" not in out
    assert localize_filter(expr, "a")["args"][1] == ["x", "b|y", "z"]


def test_a_3d_bbox_is_searched_by_its_footprint():
    """STAC allows six values; members only ever see the four of the footprint."""
    assert parse_get({"bbox": "16,45,-100,24,49,9000"}).bbox == parse_get({"bbox": "16,45,24,49"}).bbox
    assert parse_post({"bbox": [16, 45, 0, 24, 49, 10]}).bbox == (16.0, 45.0, 24.0, 49.0)
    app, hosts = make_broker(HEALTHY)
    flat, _ = run(app, lambda c: walk(c, 20, bbox=[16, 45, 24, 49]))
    deep, _ = run(app, lambda c: walk(c, 20, bbox=[16, 45, -100, 24, 49, 9000]))
    assert sorted(ids(deep)) == sorted(ids(flat)) and flat


def test_hostile_requests_over_http_are_400_and_members_untouched():
    app, hosts = make_broker(HEALTHY)

    async def go(c):
        out = [await c.get("/search", params={"ids": "x\x00"}),
               await c.get("/search", params={"filter": "collection = 'a|synthetic\x00'"}),
               await c.get("/search", params={"filter": "nosuch(eo:cloud_cover, 3)"}),
               await c.get("/search", params={"bbox": "0,0,10,10,10,0"}),
               await c.post("/search", content=b"[" * 50_000 + b"]" * 50_000),
               await c.post("/search", content=b'{"bbox": [0, 0, 1' + b"0" * 400 + b', 1]}'),
               await c.post("/search", content=b'{"bbox": [0, 0, 1e400, 1]}')]
        sent = sum(h.state.member.searches for h in hosts.values())
        return out, sent, await walk(c, 20)
    out, sent, (items, pages) = run(app, go)
    assert sent == 0  # none of them reached a member
    for response in out:
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "BadRequest"
    assert sorted(ids(items)) == expected() and pages[-1]["federation:missing"] == []


def test_filter_on_a_prefixed_collection_reaches_members_as_plain_strings():
    app, _ = make_broker({**HEALTHY, "p": {"n_items": 10, "poison": "\\u0000"}})

    async def go(c):
        return await walk(c, 10, filter={"op": "=", "args": [{"property": "collection"}, "a|synthetic"]})
    items, pages = run(app, go)
    assert sorted(ids(items)) == expected({"a": HEALTHY["a"]})
    assert all(p["federation:missing"] == [] for p in pages)


# --------------------------------------------------------------------------- fault cases, in-process

def _follow_up_unaffected(app):
    """A fresh walk from another client right after: every healthy item, nobody missing."""
    async def go():
        async with client_for(app) as other:
            return await walk(other, 15)
    return asyncio.run(go())


def test_request_caused_500_affects_that_request_only():
    app, _ = make_broker({**HEALTHY, "p": {"n_items": 20, "offset_minutes": 5, "poison": "poison"}}, health_ttl=30)

    async def go(c):
        bad = []
        for i in range(6):  # distinct bad requests, each breaking member p
            bad.append(await walk(c, 10, ids=[f"poison-{i}"] + [f"a-{j:06d}" for j in range(i + 3)]))
        await asyncio.sleep(0)
        for task in list(app.state.federation.members["p"]._tasks):
            await task  # the probe that decides whether p is sick
        return bad, await walk(c, 15)
    bad, (items, pages) = run(app, go)
    for i, (items_i, pages_i) in enumerate(bad):
        assert pages_i[0]["federation:missing"] == ["p"]
        assert pages_i[0]["eolab:member_errors"]["p"].startswith("refused this query: HTTP 500")
        assert sorted(ids(items_i)) == sorted(("a|synthetic", f"a-{j:06d}") for j in range(i + 3))
    assert app.state.federation.members["p"].health.ok
    assert len(items) == 45 + 38 + 20 and all(p["federation:missing"] == [] for p in pages)


@pytest.mark.parametrize("pages_limited", [[0], [1], [2]])
def test_429_with_retry_after_is_retried_within_the_budget(pages_limited):
    specs = {**HEALTHY, "r": {"n_items": 30, "offset_minutes": 7,
                              "rate_limit": {"pages": pages_limited, "times": 2, "retry_after": 0}}}
    app, hosts = make_broker(specs)
    items, pages = run(app, lambda c: walk(c, 10))
    assert sorted(ids(items)) == expected(specs) and all(p["federation:missing"] == [] for p in pages)
    assert hosts["r.test"].state.member.refusals == {pages_limited[0]: 2}


@pytest.mark.parametrize("page, status", [(0, 429), (1, 503)])
def test_retry_waits_for_the_members_retry_after(page, status):
    specs = {**HEALTHY, "r": {"n_items": 30, "offset_minutes": 7,
                              "rate_limit": {"pages": [page], "times": 1, "retry_after": 1, "status": status}}}
    app, hosts = make_broker(specs, member_timeout=3.0, total_timeout=6.0)
    items, pages = run(app, lambda c: walk(c, 10))
    assert sorted(ids(items)) == expected(specs) and all(p["federation:missing"] == [] for p in pages)
    member = hosts["r.test"].state.member
    assert member.refusals == {page: 1}
    refused, retried = member.asked_at[page][:2]
    assert retried - refused >= 0.99  # asked again only after the member's Retry-After (1 s)


def test_retry_after_beyond_the_budget_is_not_waited_for():
    specs = {**HEALTHY, "r": {"n_items": 30, "offset_minutes": 7,
                              "rate_limit": {"pages": [0], "times": 1, "retry_after": 60}}}
    app, hosts = make_broker(specs)
    items, pages = run(app, lambda c: walk(c, 10))
    assert pages[0]["eolab:member_errors"]["r"] == "rate limited: HTTP 429, retry after 60 s"
    assert len(hosts["r.test"].state.member.asked_at[0]) == 1  # not retried before its Retry-After
    assert sorted(ids(items)) == expected()


@pytest.mark.parametrize("pages_limited, status", [([0], 429), ([1], 503), ([2], 429)])
def test_member_still_refusing_is_named_rate_limited_and_search_goes_on(pages_limited, status):
    specs = {**HEALTHY, "r": {"n_items": 30, "offset_minutes": 7,
                              "rate_limit": {"pages": pages_limited, "times": 1000, "retry_after": 30,
                                             "status": status}}}
    app, _ = make_broker(specs)
    items, pages = run(app, lambda c: walk(c, 10))
    got = [i for i in ids(items) if not i[0].startswith("r|")]
    assert sorted(got) == expected()
    assert pages[-1]["federation:missing"] == ["r"]
    assert pages[-1]["eolab:member_errors"]["r"].startswith("rate limited")
    assert app.state.federation.members["r"].health.ok  # not ejected: asked again by the next request


def test_member_hanging_after_headers_is_a_timeout_for_this_request():
    specs = {**HEALTHY, "h": {"n_items": 10, "hang_after_headers": 30}}
    app, _ = make_broker(specs, member_timeout=0.3, total_timeout=1.0)
    items, pages = run(app, lambda c: walk(c, 40))
    assert sorted(ids(items)) == expected()
    # Waited for while it might only be slow (pages end early, naming it), then named missing
    # once it has been silent for twice its budget.
    named = next(n for n, p in enumerate(pages) if p["federation:missing"])
    assert pages[named]["eolab:member_errors"]["h"].startswith("timeout")
    assert all("h" in p.get("eolab:member_waiting", {}) for p in pages[:named])


def test_overloaded_member_queues_instead_of_dropping_out():
    # Member o serves one search at a time; 12 clients walk at once, the broker sends o at most 2.
    specs = {**HEALTHY, "o": {"n_items": 30, "offset_minutes": 3, "capacity": 1, "delay": 0.01}}
    app, hosts = make_broker(specs, member_timeout=2.0, total_timeout=4.0, member_concurrency=2)

    async def go(c):
        return await asyncio.gather(*(walk(c, 10 + i) for i in range(12)))
    walks = run(app, go)
    for items, pages in walks:
        assert sorted(ids(items)) == expected(specs)
        assert all(p["federation:missing"] == [] for p in pages)
    assert hosts["o.test"].state.member.peak == 1
    assert all(m.health.ok for m in app.state.federation.members.values())
    items, pages = _follow_up_unaffected(app)
    assert sorted(ids(items)) == expected(specs)


def test_busy_member_makes_pages_wait_not_lose_items():
    # With 1 slot, a tiny budget and many clients, some pages end early waiting for m: none loses it.
    specs = {"a": {"n_items": 25}, "m": {"n_items": 25, "offset_minutes": 3, "delay": 0.05}}
    app, _ = make_broker(specs, member_timeout=0.12, total_timeout=0.5, member_concurrency=1)

    async def go(c):
        return await asyncio.gather(*(walk(c, 10) for _ in range(6)))
    walks = run(app, go)
    complete = [w for w in walks if not w[1][-1]["federation:missing"]]
    for items, pages in complete:
        assert sorted(ids(items)) == expected(specs)
    for items, pages in walks:  # an incomplete walk says so, with the reason
        assert len(set(ids(items))) == len(items)
        if pages[-1]["federation:missing"]:
            assert pages[-1]["eolab:member_errors"]["m"].startswith("timeout")


def test_down_member_is_probed_back_in_the_background():
    app, hosts = make_broker(HEALTHY, health_ttl=0.2)
    federation = app.state.federation
    router = federation._transport

    async def go(c):
        saved = router.transports.pop("b.test")
        first = (await c.get("/search")).json()
        assert not federation.members["b"].health.ok
        router.transports["b.test"] = saved
        for _ in range(100):  # no user request in between: only the probe can bring it back
            if federation.members["b"].health.ok:
                break
            await asyncio.sleep(0.05)
        return first, (await c.get("/search")).json()
    first, second = run(app, go)
    assert first["eolab:member_errors"]["b"].startswith("down")
    assert second["federation:missing"] == []


def test_the_federation_never_ejects_every_member():
    app, _ = make_broker(HEALTHY, down=("a", "b"), health_ttl=30)
    body = run(app, lambda c: c.get("/search"))
    federation = app.state.federation
    assert sum(not m.health.ok for m in federation.members.values()) == 1
    assert sorted(body.json()["federation:missing"]) == ["a", "b"]


# --------------------------------------------------------------------------- antimeridian

def test_bbox_crossing_the_antimeridian_returns_exactly_the_items_inside():
    specs = {"e": {"n_items": 60, "bbox": [160.0, 40.0, 179.9, 70.0]},
             "w": {"n_items": 60, "bbox": [-179.9, 40.0, -160.0, 70.0], "offset_minutes": 5},
             "x": {"n_items": 40, "offset_minutes": 9}}
    app, _ = make_broker(specs)
    box = (170.0, 50.0, -170.0, 60.0)

    def inside(item):
        b = item["bbox"]
        lat = b[1] <= box[3] and b[3] >= box[1]
        return lat and (b[2] >= box[0] or b[0] <= box[2])  # east half [170, 180] or west half [-180, -170]
    want = sorted((f"{k}|synthetic", i["id"]) for k, v in specs.items()
                  for i in synthetic_items(k, v["n_items"], bbox=tuple(v.get("bbox") or (16.0, 45.5, 23.0, 48.5)),
                                           offset_minutes=v.get("offset_minutes", 0)) if inside(i))
    assert want and any(w[0] == "e|synthetic" for w in want) and any(w[0] == "w|synthetic" for w in want)
    for method in ("GET", "POST"):
        bbox = "170,50,-170,60" if method == "GET" else list(box)
        items, pages = run(app, lambda c: walk(c, 9, method=method, bbox=bbox))
        assert sorted(ids(items)) == want
        assert all(p["federation:missing"] == [] for p in pages)


# --------------------------------------------------------------------------- sort and exactly once

def test_member_sorting_numbers_as_text_is_reported_not_merged():
    specs = {"a": {"n_items": 40}, "t": {"n_items": 40, "offset_minutes": 3, "text_sort": True}}
    app, _ = make_broker(specs)
    items, pages = run(app, lambda c: walk(c, 8, sortby=[{"field": "properties.eo:cloud_cover", "direction": "asc"}]))
    clouds = [i["properties"]["eo:cloud_cover"] for i in items]
    assert clouds == sorted(clouds)
    assert pages[-1]["federation:missing"] == ["t"]
    assert pages[-1]["eolab:member_errors"]["t"].startswith("out of order")
    a_items = sorted(ids(i for i in items if i["collection"] == "a|synthetic"))
    assert a_items == expected({"a": specs["a"]})


def test_numeric_sort_across_members_is_exact():
    specs = {"a": {"n_items": 40}, "b": {"n_items": 33, "offset_minutes": 3, "seed": 2}}
    app, _ = make_broker(specs)
    for direction in ("asc", "desc"):
        items, pages = run(app, lambda c: walk(c, 7, sortby=[{"field": "properties.eo:cloud_cover",
                                                               "direction": direction}]))
        every = [i for k, v in specs.items() for i in synthetic_items(k, v["n_items"], seed=v.get("seed", 0),
                                                                        offset_minutes=v.get("offset_minutes", 0))]
        want = sorted(every, key=sort_key_function((("properties.eo:cloud_cover", direction),)))
        assert [i["properties"]["eo:cloud_cover"] for i in items] == [i["properties"]["eo:cloud_cover"] for i in want]
        assert sorted(ids(items)) == expected(specs)


def _labelled(specs):
    from eolab.testing.faults import label

    return [(f"{k}|synthetic", i["id"], label(n, k))
            for k, v in specs.items()
            for n, i in enumerate(synthetic_items(k, v["n_items"], offset_minutes=v.get("offset_minutes", 0)))]


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_string_sort_across_members_is_code_point_order(direction):
    specs = {"a": {"n_items": 40, "labels": True}, "b": {"n_items": 33, "offset_minutes": 3, "labels": True}}
    app, _ = make_broker(specs)
    sortby = [{"field": "properties.label", "direction": direction}]
    items, pages = run(app, lambda c: walk(c, 7, sortby=sortby))
    every = _labelled(specs)
    assert sorted(ids(items)) == sorted((c, i) for c, i, _ in every)
    want = sorted((lab for *_, lab in every), reverse=direction == "desc")  # Python: code point order
    assert [i["properties"]["label"] for i in items] == want
    assert all(p["federation:missing"] == [] for p in pages)


def test_member_with_another_string_collation_is_reported_not_merged():
    specs = {"a": {"n_items": 40, "labels": True},
             "l": {"n_items": 40, "offset_minutes": 3, "labels": True, "collation": "linguistic"}}
    app, _ = make_broker(specs)
    items, pages = run(app, lambda c: walk(c, 8, sortby=[{"field": "properties.label", "direction": "asc"}]))
    labels = [i["properties"]["label"] for i in items]
    assert labels == sorted(labels)  # what was merged is in code point order
    assert pages[-1]["federation:missing"] == ["l"]
    assert pages[-1]["eolab:member_errors"]["l"].startswith("out of order")
    assert sorted(ids(i for i in items if i["collection"] == "a|synthetic")) == expected({"a": specs["a"]})


def test_items_without_collection_get_the_members_and_repeats_are_dropped():
    specs = {"a": {"n_items": 30}, "n": {"n_items": 30, "offset_minutes": 3, "no_collection": True},
             "r": {"n_items": 30, "offset_minutes": 5, "repeat": True}}
    app, _ = make_broker(specs)
    for limit in (4, 7, 30):
        items, pages = run(app, lambda c: walk(c, limit))
        assert sorted(ids(items)) == expected(specs)
        assert all(p["federation:missing"] == [] for p in pages)


def test_merger_drops_a_repeat_across_pages_through_the_token_state():
    key = sort_key_function((("properties.datetime", "desc"), ("id", "desc")))
    fields = ("properties.datetime", "id")
    items = synthetic_items("m", 6)
    items.sort(key=key)
    first = Merger(cursors=[Cursor(member="m")], key=key, limit=3, fields=fields)
    first.load("m", MemberPage(items=items[:3], next_ref={"h": "x"}))
    first.fill()
    state = first.states()["m"]
    second = Merger(cursors=[Cursor.from_state("m", json.loads(json.dumps(state)))], key=key, limit=10,
                    fields=fields)
    second.load("m", MemberPage(items=[items[2]] + items[3:]))
    second.fill()
    assert [i["id"] for _, i in first.emitted + second.emitted] == [i["id"] for i in items]
    assert second.dropped == 1


def test_catalog_up_registers_numeric_queryables():
    from eolab.stack._load import numeric_queryables

    items = [{"properties": {"eo:cloud_cover": 12.5, "gsd": 10, "platform": "s2a", "flag": True,
                             "mixed": 1, "datetime": "2026-01-01T00:00:00Z"}},
             {"properties": {"eo:cloud_cover": 3, "mixed": "x", "view:sun_elevation": None}}]
    found = numeric_queryables(items)
    assert found["eo:cloud_cover"] == {"title": "eo:cloud_cover", "type": "number"}
    assert "gsd" in found and "view:sun_elevation" in found  # standard names, held or not
    assert not {"platform", "flag", "mixed", "datetime"} & set(found)


def test_a_connection_broken_once_is_sent_again_not_named_missing():
    """The keep-alive race (the member closes a kept-alive connection as a request goes out) is
    answered by sending the read once more; a member whose answers keep breaking is still named."""
    from eolab.catalog.broker import create_app
    from eolab.config import BrokerConfig, MemberConfig, StackConfig
    from eolab.testing.faults import HostRouter
    from eolab.testing.faults import create_app as fake_member

    def broker(breaks: int):
        specs = {**HEALTHY, "k": {"n_items": 30, "offset_minutes": 5}}
        router = HostRouter({f"{k}.test": fake_member({"id": k, **v}) for k, v in specs.items()})
        inner, left = router.handle_async_request, {"n": breaks}

        async def handle(request):
            if request.url.host == "k.test" and request.url.path == "/search" and left["n"] > 0:
                left["n"] -= 1
                raise httpx.ReadError("connection reset by peer", request=request)
            return await inner(request)
        router.handle_async_request = handle
        config = StackConfig(members=[MemberConfig(id=k, url=f"http://{k}.test") for k in specs],
                             broker=BrokerConfig(member_timeout=1.0, total_timeout=3.0))
        return create_app(config, transport=router, secret="test"), specs

    app, specs = broker(breaks=1)
    items, pages = run(app, lambda c: walk(c, 10))
    assert sorted(ids(items)) == expected(specs) and all(p["federation:missing"] == [] for p in pages)
    app, specs = broker(breaks=10 ** 6)
    items, pages = run(app, lambda c: walk(c, 10))
    assert sorted(ids(items)) == expected() and pages[0]["federation:missing"] == ["k"]
    assert pages[0]["eolab:member_errors"]["k"] == "refused this query: answer broken off (ReadError)"


def test_a_member_answer_over_the_size_cap_is_named_and_others_are_served(monkeypatch):
    """A member page larger than the cap (e.g. a writable member grown by one user's items) is not
    read whole into the broker's memory: that member is named, the others' items are all there, and
    the member is not ejected for it."""
    from eolab.catalog import _members

    # pages of 5 synthetic items take ~3 kB; member g answers 20 at once (~13 kB)
    monkeypatch.setattr(_members, "MAX_ANSWER_BYTES", 8_000)
    specs = {**HEALTHY, "g": {"n_items": 20, "offset_minutes": 5, "page_size": 20}}
    app, _ = make_broker(specs, health_ttl=30)
    items, pages = run(app, lambda c: walk(c, 5))
    assert pages[0]["eolab:member_errors"]["g"].startswith("malformed answer: answer larger than")
    assert sorted(ids(items)) == expected(HEALTHY)
    monkeypatch.setattr(_members, "MAX_ANSWER_BYTES", 128 * 2 ** 20)
    items, pages = run(app, lambda c: walk(c, 5))
    assert sorted(ids(items)) == expected(specs)
    assert app.state.federation.members["g"].health.ok


def test_a_member_page_of_the_largest_workspace_items_fits_what_the_broker_reads():
    """The workspace's item size and the broker's member page fit its cap on one member answer, so a
    page of the largest items one user may publish cannot make the workspace look malformed to all."""
    from eolab._item_checks import MAX_ITEM_BYTES
    from eolab.catalog._federation import MAX_MEMBER_PAGE
    from eolab.catalog._members import MAX_ANSWER_BYTES

    assert MAX_MEMBER_PAGE * (MAX_ITEM_BYTES + 1024) < MAX_ANSWER_BYTES  # 1 kB for the broker's additions


def test_members_are_asked_for_at_most_a_thousand_items_a_page():
    """A broker page of 2,500 items comes from member pages of at most MAX_MEMBER_PAGE items
    (a member page of 10,000 items is hundreds of MB in the broker), without losing any."""
    from eolab.catalog._federation import MAX_MEMBER_PAGE
    from tests.unit.test_broker_app import broker_and_members

    app, hosts = broker_and_members({"a": {"n_items": 2600}, "b": {"n_items": 300, "offset_minutes": 3}})

    async def go(c):
        first = (await c.post("/search", json={"limit": 2500})).json()
        rest = []
        nxt = [ln for ln in first["links"] if ln["rel"] == "next"]
        while nxt:
            page = (await c.post(nxt[0]["href"], json=nxt[0].get("body") or {})).json() \
                if nxt[0].get("method") == "POST" else (await c.get(nxt[0]["href"])).json()
            rest += page["features"]
            nxt = [ln for ln in page["links"] if ln["rel"] == "next"]
        return first, rest
    first, rest = run(app, go)
    assert len(first["features"]) == 2500 and first["federation:missing"] == []
    got = ids(first["features"] + rest)
    assert len(got) == len(set(got)) == 2900
    assert max(h.state.member.largest_limit for h in hosts.values()) == MAX_MEMBER_PAGE


def test_the_landing_page_says_how_long_a_search_may_take():
    """door + members' queues + budget: the longest a search waits for its answer (the eolab client
    takes it, plus a margin, for its read timeout)."""
    app, _ = make_broker(HEALTHY, total_timeout=7.5)
    body = run(app, lambda c: c.get("/")).json()
    federation = app.state.federation
    assert body["eolab:answer_within_s"] == federation.door_wait + federation.queue_wait + 7.5 == 6 * 7.5


def test_a_search_every_member_fails_with_a_server_error_is_a_502_not_an_empty_page():
    """pgstac answers a text field compared with a number (grid:code = 5) with HTTP 500; with every
    member failing so, a 200 without features read as "nothing found" to STAC clients."""
    app, _ = make_broker({"a": {"n_items": 20, "poison": "zq"}, "b": {"n_items": 15, "poison": "zq"},
                          "c": {"n_items": 9}})

    async def go(c):
        both = await c.get("/search", params={"collections": "a|synthetic,b|synthetic", "filter": "title = 'zq'"})
        one = await c.get("/search", params={"collections": "a|synthetic,c|synthetic", "filter": "title = 'zq'"})
        fine = await c.get("/search", params={"collections": "a|synthetic,b|synthetic"})
        return both, one, fine

    both, one, fine = run(app, go)
    assert both.status_code == 502, both.text
    body = both.json()
    assert body["code"] == "EveryMemberFailed" and body["federation:missing"] == ["a", "b"]
    assert "a: " in body["description"] and "another type" in body["description"]
    # one member answering is an answer: its items, the other named (as before)
    assert one.status_code == 200 and one.json()["federation:missing"] == ["a"]
    assert fine.status_code == 200 and len(fine.json()["features"]) == 10  # the legitimate search
    assert all(m.health.ok for m in app.state.federation.members.values())
