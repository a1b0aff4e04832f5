"""The broker app in-process against in-process fake members (httpx ASGI transports, no sockets).

Real HTTP semantics (status codes, JSON bodies, next links) without processes; the same scenarios
run against real uvicorn processes in tests/integration/test_broker_faults.py.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from eolab.catalog.broker import create_app
from eolab.config import BrokerConfig, MemberConfig, StackConfig
from eolab.testing.faults import HostRouter
from eolab.testing.faults import create_app as fake_member


def broker_and_members(specs: dict[str, dict], down: tuple[str, ...] = (), **broker):
    """The broker app over in-process fault members (``down``: configured but not answering), and
    the members by host name (their state tells what reached them)."""
    hosts = {f"{k}.test": fake_member({"id": k, **v}) for k, v in specs.items() if k not in down}
    config = StackConfig(members=[MemberConfig(id=k, url=f"http://{k}.test") for k in specs],
                         broker=BrokerConfig(**{"member_timeout": 1.0, "total_timeout": 3.0, **broker}))
    return create_app(config, transport=HostRouter(hosts), secret="test"), hosts


def make_broker(specs: dict[str, dict], down: tuple[str, ...] = (), **broker):
    return broker_and_members(specs, down, **broker)[0]


async def walk(client: httpx.AsyncClient, method: str = "GET", limit: int = 7, **params):
    """Follow next links to the end: (items, pages, missing lists per page)."""
    items, pages = [], []
    if method == "GET":
        request = ("GET", "/search", {"params": {"limit": limit, **params}})
    else:
        request = ("POST", "/search", {"json": {"limit": limit, **params}})
    while request:
        verb, url, kwargs = request
        response = await client.request(verb, url, **kwargs)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["features"]
        pages.append(body)
        nxt = [link for link in body["links"] if link["rel"] == "next"]
        if not nxt:
            break
        request = (nxt[0].get("method", "GET"), nxt[0]["href"],
                   {"json": nxt[0]["body"]} if nxt[0].get("method") == "POST" else {})
        assert len(pages) < 500
    return items, pages


def client_for(app):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://broker.test")


def run(app, coro_fn):
    async def main():
        async with client_for(app) as c:
            return await coro_fn(c)
    return asyncio.run(main())


BASE = {"a": {"n_items": 45}, "b": {"n_items": 38, "offset_minutes": 40, "number_matched": True},
        "c": {"n_items": 29, "offset_minutes": 10}}


def ids_of(items):
    return [(i["collection"], i["id"]) for i in items]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_all_items_once_in_order(method):
    app = make_broker(BASE)
    items, pages = run(app, lambda c: walk(c, method, limit=9))
    assert len(items) == 45 + 38 + 29 == len(set(ids_of(items)))
    stamps = [i["properties"]["datetime"] for i in items]
    assert stamps == sorted(stamps, reverse=True)
    assert all(p["federation:missing"] == [] for p in pages)
    assert {i["collection"] for i in items} == {"a|synthetic", "b|synthetic", "c|synthetic"}


@pytest.mark.parametrize("fault, member_spec", [
    ("down", None),
    ("http500", {"fault": "http500"}),
    ("malformed", {"fault": "malformed"}),
    ("slow", {"fault": "slow", "fault_delay": 5}),
    ("not a FeatureCollection", {"fault": "not_a_collection"}),
])
def test_failing_member_is_named_and_others_complete(fault, member_spec):
    specs = dict(BASE)
    specs["c"] = {**BASE["c"], **(member_spec or {})}
    app = make_broker(specs, down=("c",) if fault == "down" else ())
    items, pages = run(app, lambda c: walk(c, "POST", limit=10))
    assert sorted(ids_of(items)) == sorted(set(ids_of(items)))
    assert {i["collection"] for i in items} == {"a|synthetic", "b|synthetic"}
    assert len(items) == 45 + 38
    # A slow member is waited for (pages end early) until it has been silent for twice its budget.
    named = next(n for n, p in enumerate(pages) if p["federation:missing"])
    assert named == 0 or fault == "slow"
    assert all(p["eolab:member_waiting"].keys() == {"c"} for p in pages[:named])
    assert all(p["federation:missing"] == ["c"] for p in pages[named:])
    assert "numberMatched" not in pages[named]


@pytest.mark.parametrize("fault", ["http500", "malformed", "slow"])
def test_member_failing_mid_walk_stays_named(fault):
    specs = dict(BASE)
    specs["a"] = {**BASE["a"], "fault": fault, "fault_after": 2, "fault_delay": 5}
    app = make_broker(specs, health_ttl=0)
    items, pages = run(app, lambda c: walk(c, "GET", limit=10))
    keys = ids_of(items)
    assert len(keys) == len(set(keys))
    assert len([k for k in keys if k[0] != "a|synthetic"]) == 38 + 29
    first = next(n for n, p in enumerate(pages) if p["federation:missing"])
    assert first > 0 and all(p["federation:missing"] == ["a"] for p in pages[first:])


def test_short_pages_and_ignored_limit_still_exactly_once():
    specs = {"a": {"n_items": 45, "short_pages": True}, "b": {"n_items": 38, "page_size": 25, "offset_minutes": 7},
             "c": {"n_items": 29, "page_size": 3, "offset_minutes": 3}}
    app = make_broker(specs)
    for method in ("GET", "POST"):
        items, pages = run(app, lambda c: walk(c, method, limit=8))
        assert len(items) == 45 + 38 + 29 == len(set(ids_of(items)))
        assert all(len(p["features"]) <= 8 for p in pages)


def test_number_matched_summed_only_when_every_member_gives_it():
    specs = {"a": {"n_items": 12, "number_matched": True}, "b": {"n_items": 8, "number_matched": True}}
    body = run(make_broker(specs), lambda c: c.get("/search", params={"limit": 5})).json()
    assert body["numberMatched"] == 20 and body["numberReturned"] == 5
    body = run(make_broker(BASE), lambda c: c.get("/search", params={"limit": 5})).json()
    assert "numberMatched" not in body


def test_filter_applied_by_broker_for_member_without_filter():
    specs = {"a": {"n_items": 40}, "b": {"n_items": 40, "conformance": "core", "offset_minutes": 5}}
    app = make_broker(specs)
    flt = {"op": "<", "args": [{"property": "eo:cloud_cover"}, 30]}
    items, _ = run(app, lambda c: walk(c, "POST", limit=6, filter=flt))
    members = {i["collection"] for i in items}
    assert members == {"a|synthetic", "b|synthetic"}
    assert all(i["properties"]["eo:cloud_cover"] < 30 for i in items)
    reference = fake_member({"id": "b", "n_items": 40, "offset_minutes": 5}).state.member.items
    assert len([i for i in items if i["collection"] == "b|synthetic"]) == \
        len([i for i in reference if i["properties"]["eo:cloud_cover"] < 30])


def test_collection_literal_in_filter_is_localised():
    app = make_broker(BASE)
    items, _ = run(app, lambda c: walk(c, "GET", limit=50, filter="collection = 'b|synthetic'"))
    assert len(items) == 38 and {i["collection"] for i in items} == {"b|synthetic"}


def test_sortby_unsupported_member_gives_400_naming_it():
    specs = {"a": {"n_items": 5}, "b": {"n_items": 5, "conformance": "core"}}
    response = run(make_broker(specs), lambda c: c.get("/search", params={"sortby": "+eo:cloud_cover"}))
    assert response.status_code == 400
    assert response.json()["parameter"] == "sortby" and "b" in response.json()["description"]


def test_integers_beyond_64_bits_in_a_body_are_no_server_error():
    """Found by the schemathesis fuzz: unknown body fields travel into the next link's body."""
    huge = -9223372036854775809
    response = run(make_broker(BASE), lambda c: c.post("/search", json={"": huge, "limit": 2}))
    assert response.status_code == 200
    follow = next(link for link in response.json()["links"] if link["rel"] == "next")
    assert follow["body"][""] == huge


def test_sortby_forwarded_and_merged():
    items, _ = run(make_broker(BASE), lambda c: walk(c, "POST", limit=11,
                                                      sortby=[{"field": "eo:cloud_cover", "direction": "asc"}]))
    clouds = [i["properties"]["eo:cloud_cover"] for i in items]
    assert len(items) == 112 and clouds == sorted(clouds)


def test_prefixed_collections_route_to_one_member_only():
    app = make_broker(BASE)
    items, _ = run(app, lambda c: walk(c, "GET", limit=20, collections="b|synthetic"))
    assert len(items) == 38
    items, _ = run(app, lambda c: walk(c, "GET", limit=50, collections="synthetic"))
    assert len(items) == 112
    response = run(app, lambda c: c.get("/search", params={"collections": "zzz|x"}))
    assert response.status_code == 400 and response.json()["parameter"] == "collections"


def test_extent_pruning_skips_members_whose_time_misses():
    specs = {"a": {"n_items": 10, "start": "2026-01-01T00:00:00Z"}, "b": {"n_items": 10, "start": "2027-01-01T00:00:00Z"}}
    app = make_broker(specs)

    async def go(c):
        await c.get("/collections")
        return await c.get("/search", params={"datetime": "2027-01-01T00:00:00Z/.."})
    body = run(app, go).json()
    assert {f["collection"] for f in body["features"]} == {"b|synthetic"}
    stats = app.state.federation  # member a got no search request at all
    assert stats.members["a"].info is not None


def test_fields_include_exclude():
    app = make_broker({"a": {"n_items": 3}})
    body = run(app, lambda c: c.post("/search", json={"fields": {"include": ["properties.eo:cloud_cover"],
                                                                 "exclude": ["links"]}})).json()
    item = body["features"][0]
    assert set(item) <= {"id", "type", "stac_version", "collection", "properties"} and \
        set(item["properties"]) == {"eo:cloud_cover"}
    body = run(app, lambda c: c.get("/search", params={"fields": "-assets,-properties.platform"})).json()
    assert "assets" not in body["features"][0] and "platform" not in body["features"][0]["properties"]


def test_collections_items_and_item_through_the_broker():
    app = make_broker(BASE, )

    async def go(c):
        cols = (await c.get("/collections")).json()
        one = (await c.get("/collections/b%7Csynthetic")).json()
        items = (await c.get("/collections/b|synthetic/items", params={"limit": 3})).json()
        item = (await c.get(f"/collections/b|synthetic/items/{items['features'][0]['id']}")).json()
        missing = await c.get("/collections/b|nope")
        unprefixed = await c.get("/collections/synthetic")
        return cols, one, items, item, missing, unprefixed
    cols, one, items, item, missing, unprefixed = run(app, go)
    assert [c["id"] for c in cols["collections"]] == ["a|synthetic", "b|synthetic", "c|synthetic"]
    assert one["id"] == "b|synthetic" and one["extent"]["temporal"]["interval"][0][0]
    assert {ln["rel"]: ln["href"] for ln in one["links"]}["items"] == "http://broker.test/collections/b|synthetic/items"
    assert {ln["rel"] for ln in one["links"]} >= {"self", "root", "parent", "items", "license"}
    assert len(items["features"]) == 3 and any(ln["rel"] == "next" for ln in items["links"])
    assert item["collection"] == "b|synthetic" and item["assets"]["data"]["href"].startswith("https://data.example.org/b/")
    assert missing.status_code == 404 and unprefixed.status_code == 404
    assert missing.json()["code"] == "NotFound"


def test_dead_member_is_skipped_from_health_cache():
    app = make_broker(BASE, down=("c",), health_ttl=60)

    async def go(c):
        first = (await c.get("/search")).json()
        federation = app.state.federation
        reason = federation.members["c"].skip_reason()
        second = (await c.get("/search")).json()
        return first, reason, second
    first, reason, second = run(app, go)
    assert first["federation:missing"] == ["c"] and reason and reason.startswith("down")
    assert second["federation:missing"] == ["c"] and second["eolab:member_errors"]["c"].startswith("down")


def test_bad_requests_are_400_with_the_parameter():
    app = make_broker({"a": {"n_items": 3}})

    async def go(c):
        out = {}
        out["token"] = await c.get("/search", params={"token": "abc.def"})
        first = (await c.get("/search", params={"limit": 1})).json()
        nxt = [ln for ln in first["links"] if ln["rel"] == "next"][0]["href"]
        out["reused"] = await c.get(nxt + "&bbox=0,0,1,1")
        out["body"] = await c.post("/search", content=b"{not json")
        out["filter"] = await c.post("/search", json={"filter": {"op": "and"}})
        return out
    out = run(app, go)
    for name, response in out.items():
        assert response.status_code == 400, (name, response.text)
        assert response.json()["code"] == "BadRequest"
    assert out["reused"].json()["parameter"] == "token"
    assert out["filter"].json()["parameter"] == "filter"
