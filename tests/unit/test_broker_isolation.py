"""Property: no request content changes what the next, unrelated request returns.

Hypothesis sends the broker sequences of arbitrary searches (GET parameters and POST bodies with
control characters, odd numbers, deep JSON, CQL2 with unknown functions, 3D boxes, strings that
make one member fail with HTTP 500) and then one ordinary search; its answer must be exactly the
answer the same search gets from a fresh broker. Members are in-process fakes (no network).
"""

from __future__ import annotations

import asyncio
import json

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from eolab.catalog.broker import create_app
from eolab.config import BrokerConfig, MemberConfig, StackConfig
from eolab.testing.faults import HostRouter
from eolab.testing.faults import create_app as fake_member

POISON = "zq"  # member p answers HTTP 500 to any search that mentions it
SPECS = {"a": {"n_items": 20}, "b": {"n_items": 15, "offset_minutes": 7},
         "p": {"n_items": 12, "offset_minutes": 3, "poison": POISON}}
REFERENCE = {"limit": 100, "sortby": "-properties.datetime"}


def new_app():
    hosts = {f"{k}.test": fake_member({"id": k, **v}) for k, v in SPECS.items()}
    config = StackConfig(members=[MemberConfig(id=k, url=f"http://{k}.test") for k in SPECS],
                         broker=BrokerConfig(member_timeout=2.0, total_timeout=4.0, health_ttl=30))
    return create_app(config, transport=HostRouter(hosts), secret="iso")


def _essence(body: dict) -> tuple:
    return ([(f["collection"], f["id"]) for f in body["features"]], body["federation:missing"],
            body.get("numberMatched"))


async def reference(client: httpx.AsyncClient) -> tuple:
    response = await client.get("/search", params=REFERENCE)
    assert response.status_code == 200, response.text
    return _essence(response.json())


def baseline() -> tuple:
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=new_app()), base_url="http://x") as c:
            return await reference(c)
    return asyncio.run(go())


BASELINE = baseline()

text = st.one_of(st.text(max_size=12), st.sampled_from([POISON, "a|synthetic", "a\x00", "b|synthetic", "\x1b[0m"]),
                 st.text(alphabet=st.characters(max_codepoint=0x20), max_size=4).map(lambda t: POISON + t))
numbers = st.one_of(st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([180, -180, 90, 10 ** 400]))
literal = st.one_of(text, numbers, st.booleans())
cql = st.recursive(
    st.fixed_dictionaries({"op": st.sampled_from(["=", "<", "like", "in", "nope", "s_crosses3", "isNull"]),
                           "args": st.lists(st.one_of(literal, st.just({"property": "platform"}),
                                                      st.just({"property": "collection"}),
                                                      st.just({"property": "eo:cloud_cover"})), max_size=3)}),
    lambda inner: st.fixed_dictionaries({"op": st.sampled_from(["and", "or", "not"]),
                                         "args": st.lists(inner, min_size=1, max_size=3)}),
    max_leaves=6)
post_body = st.fixed_dictionaries({}, optional={
    "ids": st.lists(text, max_size=3), "collections": st.lists(text, max_size=3),
    "bbox": st.lists(numbers, min_size=3, max_size=7), "limit": st.one_of(st.integers(-5, 50), text),
    "filter": st.one_of(cql, text), "query": st.dictionaries(text, st.dictionaries(
        st.sampled_from(["eq", "lt", "in", "bad"]), literal, max_size=2), max_size=2),
    "sortby": st.one_of(text, st.lists(st.fixed_dictionaries({"field": text}), max_size=2)),
    "datetime": text, "intersects": st.fixed_dictionaries({"type": st.sampled_from(["Point", "Polygon"]),
                                                           "coordinates": st.lists(numbers, max_size=3)}),
})
get_params = st.dictionaries(st.sampled_from(["ids", "collections", "bbox", "filter", "limit", "datetime",
                                              "sortby", "fields", "query", "token", "filter-lang"]),
                             st.one_of(text, numbers.map(str)), max_size=4)
raw_body = st.one_of(st.just(b"[" * 5000 + b"]" * 5000), st.just(b'{"bbox": [0, 0, 1' + b"0" * 500 + b", 1]}"),
                     st.binary(max_size=40))
request = st.one_of(st.tuples(st.just("GET"), get_params), st.tuples(st.just("POST"), post_body),
                    st.tuples(st.just("RAW"), raw_body))


@given(st.lists(request, min_size=1, max_size=4))
@example([("POST", {"ids": [POISON + str(i), "a-000001"]}) for i in range(4)])  # distinct requests breaking p
@example([("GET", {"filter": f"platform = '{POISON}'"}), ("POST", {"filter": {"op": "=", "args": [
    {"property": "collection"}, "a|synthetic"]}}), ("GET", {"ids": POISON})])
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_changes_the_next_unrelated_answer(requests):
    async def go():
        app = new_app()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as hostile, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as other:
            for kind, content in requests:
                if kind == "GET":
                    response = await hostile.get("/search", params=content)
                elif kind == "POST":
                    try:
                        data = json.dumps(content).encode()
                    except ValueError:
                        continue
                    response = await hostile.post("/search", content=data,
                                                  headers={"content-type": "application/json"})
                else:
                    response = await hostile.post("/search", content=content)
                assert response.status_code < 500, (kind, content, response.text[:300])
            return await reference(other)
    assert asyncio.run(go()) == BASELINE
