"""The broker as a real uvicorn process over real member processes that misbehave on purpose.

Members (fake STAC APIs from eolab.testing.faults, each its own uvicorn process on 127.0.0.1):
healthy ``a``, ``b`` with pages that end early, ``c`` ignoring ``limit``, ``d`` answering HTTP 500
after two searches, ``e`` with malformed JSON, ``f`` slower than the broker's budget, ``g`` down
(nothing listens on its port), and ``real`` serving real provider items from ../shared/data.
Each test restricts ``collections`` to the members it is about, so one set of processes serves all.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from eolab.testing import faults as _faults

pytestmark = pytest.mark.integration

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "stac-real"
REAL_FILES = sorted(str(p) for p in (REAL / "search-responses").glob("*.json")) + \
    sorted(str(p) for p in (REAL / "odc-stac").glob("*.json") if "collection" not in p.name and "raster_ext" not in p.name)

SPECS = {
    "a": {"n_items": 45},
    "b": {"n_items": 38, "offset_minutes": 40, "short_pages": True, "number_matched": True},
    "c": {"n_items": 29, "offset_minutes": 10, "page_size": 25},
    "d": {"n_items": 30, "offset_minutes": 20, "fault": "http500", "fault_after": 2},
    "e": {"n_items": 30, "fault": "malformed"},
    "f": {"n_items": 30, "fault": "slow", "fault_delay": 20},
}


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    run = tmp_path_factory.mktemp("broker-faults")
    urls = {}
    started = []
    try:
        for name, spec in SPECS.items():
            urls[name] = _faults.serve_fake(run, f"fake-{name}", {"id": name, **spec})
            started.append(f"fake-{name}")
        if REAL.exists():
            urls["real"] = _faults.serve_fake(run, "fake-real", {"id": "real", "items_files": REAL_FILES})
            started.append("fake-real")
        urls["g"] = f"http://127.0.0.1:{_faults.free_port()}"  # down: nothing listens there
        config = {"members": [{"id": k, "url": v} for k, v in urls.items()],
                  "broker": {"port": _faults.free_port(), "member_timeout": 1.0, "total_timeout": 3.0,
                             "health_ttl": 1.0, "token_secret": "integration"}}
        path = run / "catalog.yaml"
        path.write_text(yaml.safe_dump(config))
        url = _faults.serve_broker(run, path, config["broker"]["port"])
        started.append("broker")
        yield url
    finally:
        for name in started:
            _faults.stop(run, name)


def walk(url: str, method: str, limit: int, **params) -> tuple[list[dict], list[dict]]:
    items, pages = [], []
    with httpx.Client(timeout=30) as client:
        if method == "GET":
            response = client.get(f"{url}/search", params={"limit": limit, **params})
        else:
            response = client.post(f"{url}/search", json={"limit": limit, **params})
        while True:
            assert response.status_code == 200, response.text
            body = response.json()
            pages.append(body)
            items += body["features"]
            nxt = [link for link in body["links"] if link["rel"] == "next"]
            if not nxt:
                return items, pages
            if nxt[0].get("method") == "POST":
                response = client.post(nxt[0]["href"], json=nxt[0]["body"])
            else:
                response = client.get(nxt[0]["href"])
            assert len(pages) < 300


def keys(items):
    return [(i["collection"], i["id"]) for i in items]


@pytest.mark.parametrize("bad", ["d", "e", "f", "g"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_healthy_items_exactly_once_and_failing_member_named(broker, bad, method):
    collections = ",".join(f"{m}|synthetic" for m in ("a", "b", "c", bad))
    param = collections if method == "GET" else collections.split(",")
    items, pages = walk(broker, method, 10, collections=param)
    found = keys(items)
    assert len(found) == len(set(found))
    healthy = [k for k in found if k[0] != f"{bad}|synthetic"]
    assert sorted(healthy) == sorted([(f"{m}|synthetic", f"{m}-{i:06d}") for m, n in (("a", 45), ("b", 38), ("c", 29))
                                      for i in range(n)])
    named = [n for n, p in enumerate(pages) if bad in p["federation:missing"]]
    assert named, f"member {bad} never reported missing"
    assert named == list(range(named[0], len(pages)))       # from its failure on, on every page
    assert all(set(p["federation:missing"]) <= {bad} for p in pages)


def test_everything_at_once(broker):
    items, pages = walk(broker, "POST", 13)
    found = keys(items)
    assert len(found) == len(set(found))
    assert {"a|synthetic", "b|synthetic", "c|synthetic"} <= {k[0] for k in found}
    assert {"e", "f", "g"} <= set(pages[-1]["federation:missing"])
    stamps = [i["properties"].get("datetime") for i in items if i["collection"].endswith("|synthetic")]
    assert stamps == sorted(stamps, reverse=True)


def test_pystac_client_works_unchanged(broker):
    from pystac_client import Client

    client = Client.open(broker)
    search = client.search(collections=["a|synthetic", "b|synthetic"], max_items=None, limit=9)
    items = list(search.items())
    assert len(items) == 45 + 38 == len({(i.collection_id, i.id) for i in items})
    pages = list(client.search(collections=["c|synthetic"], limit=10).pages())
    assert [len(p.items) for p in pages] == [10, 10, 9]
    assert client.search(collections=["b|synthetic"], limit=5).matched() == 38
    with pytest.warns(UserWarning, match="numberMatched"):
        assert client.search(collections=["a|synthetic"], limit=5).matched() is None
    collection = client.get_collection("b|synthetic")
    assert collection.id == "b|synthetic" and collection.extent.temporal.intervals[0][0] is not None
    assert any(c.id == "a|synthetic" for c in client.get_collections())
    first = next(client.search(collections=["a|synthetic"], max_items=1,
                               filter={"op": "<", "args": [{"property": "eo:cloud_cover"}, 50]}).items())
    assert first.properties["eo:cloud_cover"] < 50
    fetched = collection.get_item(items[-1].id) if items[-1].collection_id == "b|synthetic" else None
    assert fetched is None or fetched.id == items[-1].id


@pytest.mark.skipif(not REAL.exists(), reason="../shared/data/stac-real is not present")
def test_real_provider_items_come_back_intact(broker):
    originals = {}
    for path in REAL_FILES:
        data = json.loads(Path(path).read_text())
        data = data.get("response", data)
        for item in data.get("features", [data]):
            originals[(item["collection"], item["id"])] = item
    collections = sorted({f"real|{c}" for c, _ in originals})
    items, pages = walk(broker, "POST", 20, collections=collections)
    assert pages[-1]["federation:missing"] == []
    assert len(items) == len(originals)
    for item in items:
        member, _, local = item["collection"].partition("|")
        assert member == "real"
        original = originals[(local, item["id"])]
        assert {k: v for k, v in item.items() if k not in ("collection", "links")} == \
            {k: v for k, v in original.items() if k not in ("collection", "links")}
        assert item["assets"] == original["assets"]
        external = [ln for ln in original.get("links", []) if not ln["href"].startswith("http://127.0.0.1")
                    and ln["rel"] not in ("self", "parent", "collection", "root")]
        for link in external:
            assert link in item["links"]
        rels = {ln["rel"]: ln["href"] for ln in item["links"]}
        assert rels["self"].startswith(broker) and rels["collection"].startswith(broker)
