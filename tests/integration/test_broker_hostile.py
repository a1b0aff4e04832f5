"""The broker process over real member processes that misbehave on purpose (issue 13).

Members (fake STAC APIs from the fault kit eolab.testing.faults, each its own uvicorn process on
127.0.0.1): healthy ``a`` and ``b``; ``p`` answers HTTP 500 to any search mentioning "poison" (a
failure one request's content causes); ``r0`` answers 429 with ``Retry-After: 0`` once on its
first page, ``r1`` the same on its second page; ``q`` keeps answering 429 (``Retry-After`` beyond
the budget) on its second page; ``h`` hangs after sending its headers; ``o`` serves one search at
a time, slowly (overloaded). Each test restricts ``collections`` to the members it is about, and
checks that the healthy members' items are all there and that a *following* search from another
client is not affected. No wall-clock assertions.
"""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest
import yaml

from eolab.testing import faults as _faults

pytestmark = pytest.mark.integration

SPECS = {
    "a": {"n_items": 45},
    "b": {"n_items": 38, "offset_minutes": 40},
    "p": {"n_items": 20, "offset_minutes": 5, "poison": "poison"},
    "r0": {"n_items": 25, "offset_minutes": 7, "rate_limit": {"pages": [0], "times": 1, "retry_after": 0}},
    "r1": {"n_items": 25, "offset_minutes": 9, "rate_limit": {"pages": [1], "times": 1, "retry_after": 0}},
    "q": {"n_items": 25, "offset_minutes": 11, "rate_limit": {"pages": [1], "times": 10 ** 6, "retry_after": 60}},
    "h": {"n_items": 20, "offset_minutes": 13, "hang_after_headers": 60},
    "o": {"n_items": 30, "offset_minutes": 17, "capacity": 1, "delay": 0.02},
}
N = {k: v["n_items"] for k, v in SPECS.items()}


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    run = tmp_path_factory.mktemp("broker-hostile")
    urls, started = {}, []
    try:
        for name, spec in SPECS.items():
            urls[name] = _faults.serve_fake(run, f"fake-{name}", {"id": name, **spec})
            started.append(f"fake-{name}")
        config = {"members": [{"id": k, "url": v} for k, v in urls.items()],
                  "broker": {"port": _faults.free_port(), "member_timeout": 1.5, "total_timeout": 4.0,
                             "health_ttl": 30.0, "member_concurrency": 4, "token_secret": "hostile"}}
        path = run / "catalog.yaml"
        path.write_text(yaml.safe_dump(config))
        started.append("broker")
        yield _faults.serve_broker(run, path, config["broker"]["port"]), urls
    finally:
        for name in started:
            _faults.stop(run, name)


def walk(url: str, limit: int, **body) -> tuple[list[dict], list[dict]]:
    items, pages = [], []
    with httpx.Client(timeout=60) as client:
        response = client.post(f"{url}/search", json={"limit": limit, **body})
        while True:
            assert response.status_code == 200, response.text
            page = response.json()
            pages.append(page)
            items += page["features"]
            nxt = [link for link in page["links"] if link["rel"] == "next"]
            if not nxt:
                return items, pages
            response = client.post(nxt[0]["href"], json=nxt[0]["body"])
            assert len(pages) < 300


def keys(items):
    return sorted((i["collection"], i["id"]) for i in items)


def every(*members):
    return sorted((f"{m}|synthetic", f"{m}-{i:06d}") for m in members for i in range(N[m]))


def cols(*members):
    return [f"{m}|synthetic" for m in members]


def followed_up(url, *members):
    """Another client, right after: every item of ``members``, nobody missing."""
    items, pages = walk(url, 17, collections=cols(*members))
    assert keys(items) == every(*members)
    assert all(p["federation:missing"] == [] for p in pages)


def test_request_caused_500_affects_that_request_only(broker):
    url, _ = broker
    for i in range(5):  # distinct requests that each break member p
        items, pages = walk(url, 10, collections=cols("a", "b", "p"),
                            filter={"op": "<>", "args": [{"property": "platform"}, f"poison-{i}"]})
        assert pages[0]["eolab:member_errors"]["p"].startswith("refused this query: HTTP 500")
        assert keys(items) == every("a", "b")
    followed_up(url, "a", "b", "p")
    health = httpx.get(f"{url}/_health").json()["members"]
    assert health["p"]["healthy"]


@pytest.mark.parametrize("member", ["r0", "r1"])
def test_429_with_retry_after_on_first_and_later_page_is_retried(broker, member):
    url, urls = broker
    items, pages = walk(url, 10, collections=cols("a", member))
    assert keys(items) == every("a", member)
    assert all(p["federation:missing"] == [] for p in pages)
    assert httpx.get(f"{urls[member]}/_stats").json()["refusals"]
    followed_up(url, "a", member)


def test_member_refusing_past_the_budget_is_named_rate_limited(broker):
    url, _ = broker
    items, pages = walk(url, 10, collections=cols("a", "b", "q"))
    assert [k for k in keys(items) if not k[0].startswith("q|")] == every("a", "b")
    assert pages[-1]["federation:missing"] == ["q"]
    assert pages[-1]["eolab:member_errors"]["q"].startswith("rate limited: HTTP 429")
    followed_up(url, "a", "b")
    assert httpx.get(f"{url}/_health").json()["members"]["q"]["healthy"]


def test_member_hanging_after_headers(broker):
    url, _ = broker
    items, pages = walk(url, 40, collections=cols("a", "b", "h"))
    assert keys(items) == every("a", "b")
    # Waited for while it might only be slow, named missing once silent for twice its budget.
    named = next(n for n, p in enumerate(pages) if p["federation:missing"])
    assert pages[named]["eolab:member_errors"]["h"].startswith("timeout")
    assert all("h" in p.get("eolab:member_waiting", {}) for p in pages[:named])
    followed_up(url, "a", "b")


def test_overloaded_member_serves_every_walk(broker):
    url, urls = broker
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        walks = list(pool.map(lambda i: walk(url, 10 + i, collections=cols("a", "o")), range(12)))
    for items, pages in walks:
        assert keys(items) == every("a", "o")
        assert all(p["federation:missing"] == [] for p in pages)
    assert httpx.get(f"{urls['o']}/_stats").json()["peak"] == 1
    followed_up(url, "a", "b", "o")


def test_one_clients_fields_do_not_strip_another_clients_items(broker):
    """Members without the fields extension: the broker applies ``fields`` to its cached member
    pages; an exclude must not delete from the pages other clients are served."""
    url, _ = broker
    plain, _ = walk(url, 10, collections=cols("a"))
    assert all("data" in i["assets"] and i["properties"].get("datetime") for i in plain)
    trimmed, _ = walk(url, 10, collections=cols("a"), fields={"include": ["assets", "properties", "id"],
                                                                  "exclude": ["assets.data", "properties.datetime"]})
    assert keys(trimmed) == every("a")
    assert all("data" not in i["assets"] and "datetime" not in i["properties"] for i in trimmed)
    again, _ = walk(url, 10, collections=cols("a"))  # within the member pages' cache lifetime
    assert keys(again) == every("a")
    assert all("data" in i["assets"] and i["properties"].get("datetime") for i in again)


def test_hostile_parameters_get_400_not_500_and_the_broker_stays_up(broker):
    url, _ = broker
    with httpx.Client(timeout=60) as client:
        cases = [("GET", {"filter": "NOT " * 500 + "true"}, "nests operators more than"),
                 ("GET", {"filter": "(" * 2000 + "a=1" + ")" * 2000}, "nests operators more than"),  # crashed the parser
                 ("GET", {"filter": "NOT " * 5000 + "a=1"}, "nests operators more than"),
                 ("GET", {"filter": "A_CONTAINS(a," + "(1," * 40 + "1" + ")" * 40 + ")"}, "nests operators more than"),
                 ("GET", {"datetime": "9999-12-31T23:59:59-01:00"}, "not a valid date-time"),
                 ("GET", {"datetime": "0001-01-01T00:00:00+01:00/.."}, "not a valid date-time"),
                 ("GET", {"token": "x.\u00e9"}, "not a paging token|signature does not match")]
        for method, params, message in cases:
            response = client.request(method, f"{url}/search", params={"collections": "a|synthetic", **params})
            assert response.status_code == 400, (params, response.status_code, response.text[:200])
            assert any(part in response.text for part in message.split("|")), response.text[:300]
        response = client.post(f"{url}/search", json={"collections": ["a|synthetic"], "token": "x.\u00e9"})
        assert response.status_code == 400
        arabic = client.get(f"{url}/search", params={"datetime": "\u0662\u0660\u0662\u0666-01-01T00:00:00Z"})
        assert arabic.status_code == 400 and "not an RFC 3339 date-time" in arabic.text
        # ids no member can hold are 404 here, not a member's landing page or error (503)
        for path in ("/collections/a|", "/collections/a|%2e%2e", "/collections/a|%00", "/collections/a|%00/items",
                     "/collections/a|synthetic/items/%00", "/collections/a|synthetic/items/%2e%2e"):
            response = client.get(url + path)
            assert response.status_code == 404, (path, response.status_code, response.text[:200])
        assert client.get(f"{url}/collections/a|synthetic").json()["id"] == "a|synthetic"
        assert client.get(f"{url}/collections/a|synthetic/items/a-000003").json()["id"] == "a-000003"
    followed_up(url, "a")
