"""Publishing results into the writable `workspace` member and finding them again through the broker.

A stack of its own (a demo member for real source items, the workspace, the broker), so what is
published here does not show up in the shared `catalog_stack` that other tests count collections of.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import httpx
import pystac
import pytest

from eolab import _services, provenance
from eolab.analysis import publish
from eolab.catalog import _federation
from eolab.config import StackConfig
from eolab.errors import EolabError
from eolab.search import Catalogue
from eolab.stack import core as stack
from eolab.stack import workspace as _workspace
from eolab.testing.stack import make_stack_config, running_stack
from eolab.widgets import BrowserState, PickerState

pytestmark = pytest.mark.integration

USER = "tester"
COLLECTION = f"{publish.WORKSPACE}|results-{USER}"
PERIOD = ("2026-04-01", "2026-06-30")


@pytest.fixture(scope="module")
def ws_stack(small_demo, tmp_path_factory):
    base = make_stack_config(tmp_path_factory.mktemp("ws-run"), small_demo)
    raw = base.model_dump()
    raw["members"] = [m for m in raw["members"] if m["id"] in ("pannonia", "workspace")]
    with running_stack(StackConfig.model_validate(raw)) as config:
        yield config


@pytest.fixture(scope="module")
def sources(ws_stack):
    """Two real source items, as the broker serves them (collection 'pannonia|…', broker self links)."""
    with Catalogue(ws_stack.broker_url) as cat:
        page = cat.search(["pannonia|sentinel-2-l2a"], datetime=PERIOD, limit=2, sortby="properties.datetime")
    assert len(page.items) == 2
    return [pystac.Item.from_dict(f) for f in page.items]


@pytest.fixture(scope="module")
def result(sources, tmp_path_factory):
    """A result file with its provenance sidecar, made from the source items."""
    out = tmp_path_factory.mktemp("result")
    rec = provenance.record(sources, workflow="water-monitoring", parameters={"threshold": 0.0})
    f = out / "water_area.csv"
    f.write_text("date,area_ha\n2026-04-05,12.5\n")
    provenance.write(f, rec)
    box = [min(s.bbox[0] for s in sources), min(s.bbox[1] for s in sources),
           max(s.bbox[2] for s in sources), max(s.bbox[3] for s in sources)]
    return {"files": [f, provenance.sidecar_path(f)], "provenance": rec, "bbox": box}


@pytest.fixture(autouse=True)
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EOLAB_RESULTS_CATALOG", str(tmp_path / "results"))
    return tmp_path / "results"


def ws_url(config):
    return config.member_url(config.member(publish.WORKSPACE))


def do_publish(config, result, **kw):
    args = dict(workflow="water-monitoring", provenance=result["provenance"], bbox=result["bbox"],
                start=PERIOD[0], end=PERIOD[1], title="Reservoir water area", user=USER)
    args.update(kw)
    return publish.publish_to_provider(result["files"], config=config, **args)


def search(config, **kw):
    with Catalogue(config.broker_url) as cat:
        return cat.items([COLLECTION], **kw)


def test_workspace_is_writable_and_the_broker_is_not(ws_stack):
    landing = httpx.get(ws_url(ws_stack) + "/").raise_for_status().json()
    assert publish.TRANSACTION_CONFORMANCE in landing["conformsTo"]
    demo = httpx.get(ws_stack.member_url(ws_stack.member("pannonia")) + "/").json()
    assert publish.TRANSACTION_CONFORMANCE not in demo["conformsTo"]
    broker = httpx.get(ws_stack.broker_url + "/conformance").json()["conformsTo"]
    assert not any("transaction" in c for c in broker)
    refused = httpx.post(ws_stack.broker_url + "/collections", json=publish.results_collection("x", USER))
    assert refused.status_code in (404, 405)


def test_published_result_is_found_through_the_broker(ws_stack, result, sources, results_dir):
    item = do_publish(ws_stack, result)
    assert item.collection_id == f"results-{USER}"

    found = search(ws_stack, bbox=result["bbox"], datetime=PERIOD)
    assert [f["id"] for f in found] == [item.id]
    got = found[0]
    assert got["collection"] == COLLECTION
    props = got["properties"]
    assert props["start_datetime"].startswith(PERIOD[0]) and props["end_datetime"].startswith(PERIOD[1])
    assert props["eolab:workflow"] == "water-monitoring" and props["title"] == "Reservoir water area"
    prov = props["eolab:provenance"]
    assert prov["parameters"] == {"threshold": 0.0} and prov["created"] == result["provenance"]["created"]
    assert prov["source_items"] == [{"id": s.id, "collection": "sentinel-2-l2a", "provider": "pannonia"}
                                    for s in sources]
    derived = [ln for ln in got["links"] if ln["rel"] == "derived_from"]
    assert sorted(ln["href"] for ln in derived) == sorted(s.get_self_href() for s in sources)
    # Each derived_from link leads back to its source item through the broker.
    for ln in derived:
        assert httpx.get(ln["href"]).raise_for_status().json()["id"] in {s.id for s in sources}
    # Assets: the copied files, readable where the item says.
    assert set(got["assets"]) == {"water_area_csv", "water_area_csv_provenance_json"}
    for asset in got["assets"].values():
        path = Path(asset["href"])
        assert path.is_absolute() and path.exists() and results_dir in path.parents
    assert got["assets"]["water_area_csv_provenance_json"]["roles"] == ["metadata"]
    assert got["bbox"] == pytest.approx(result["bbox"])

    # Outside the area or the period: not found.
    west, south, east, north = result["bbox"]
    assert search(ws_stack, bbox=[east + 1, south, east + 2, north]) == []
    assert search(ws_stack, datetime=("2025-01-01", "2025-12-31")) == []
    assert [f["id"] for f in search(ws_stack, datetime=("2026-06-01", "2026-12-31"))] == [item.id]

    # Unqualified searches reach it too, and eolab's helper finds it by workflow.
    with Catalogue(ws_stack.broker_url) as cat:
        everything = cat.items(None, bbox=result["bbox"], datetime=PERIOD, max_cloud=30)
    assert (COLLECTION, item.id) in {(f["collection"], f["id"]) for f in everything}
    mine = publish.find_published(USER, catalog_url=ws_stack.broker_url, workflow="water-monitoring")
    assert [f["id"] for f in mine] == [item.id]
    assert publish.find_published(USER, catalog_url=ws_stack.broker_url, workflow="crop-type-map") == []


def test_the_browser_lists_and_finds_the_result(ws_stack, result):
    item = do_publish(ws_stack, result)
    time.sleep(_federation.WRITABLE_INFO_TTL + 0.5)  # how long the broker keeps a writable member's list
    browser = BrowserState(ws_stack.broker_url, picker=PickerState(today=dt.date(2026, 11, 22)))
    try:
        browser.refresh_collections()
        assert browser.groups[publish.WORKSPACE] == [COLLECTION] and browser.missing == []
        info = next(c for c in browser.collections if c.id == COLLECTION)
        assert info.title == f"Results of {USER}"
        browser.picker.set_bbox(*result["bbox"])
        browser.picker.set_time_range(dt.date(2026, 4, 1), dt.date(2026, 6, 30))
        browser.chosen = [COLLECTION]
        browser.search()
        assert [r["id"] for r in browser.rows] == [item.id]
        assert browser.rows[0]["provider"] == publish.WORKSPACE
        browser.toggle(browser.rows[0]["key"], True)
        chosen = browser.item_collection()
        assert [i.id for i in chosen] == [item.id]
        assert chosen.items[0].properties["eolab:provenance"]["workflow"] == "water-monitoring"
    finally:
        browser.catalogue.close()


def test_republishing_replaces_the_item(ws_stack, result):
    first = do_publish(ws_stack, result)
    again = do_publish(ws_stack, result, title="Reservoir water area (v2)")
    assert again.id == first.id
    found = search(ws_stack)
    assert [f["id"] for f in found] == [first.id]
    assert found[0]["properties"]["title"] == "Reservoir water area (v2)"
    # Straight from the member as well: one item, one collection.
    direct = httpx.get(f"{ws_url(ws_stack)}/collections/results-{USER}/items").json()
    assert [f["id"] for f in direct["features"]] == [first.id]
    collections = httpx.get(f"{ws_url(ws_stack)}/collections").json()["collections"]
    assert [c["id"] for c in collections] == [f"results-{USER}"]


def test_a_bad_item_writes_nothing(ws_stack, result):
    good = publish.build_item(result["files"], workflow="water-monitoring", provenance=result["provenance"],
                              bbox=result["bbox"], start=PERIOD[0], end=PERIOD[1], item_id="good-one")
    bad = good.clone()
    bad.id = "bad/one"
    with pytest.raises(EolabError, match=r"nothing was written.*'bad/one': id contains /"):
        publish.upsert_items([good, bad], user=USER, config=ws_stack)
    broken = good.to_dict(include_self_link=False)
    broken.update(id="broken-one", geometry=None)
    with pytest.raises(EolabError, match=r"'broken-one': no geometry"):
        publish.upsert_items([good, broken], user=USER, config=ws_stack)
    assert httpx.get(f"{ws_url(ws_stack)}/collections/results-{USER}/items/good-one").status_code == 404

    # What only the provider can judge comes back with its answer, and nothing is written either.
    with pytest.raises(EolabError, match=r"provider 'workspace' refused creating collection 'bad:name'"
                                         r": HTTP 400: .*cannot contain"):
        publish.upsert_items([good], collection="bad:name", config=ws_stack)
    ids = [c["id"] for c in httpx.get(f"{ws_url(ws_stack)}/collections").json()["collections"]]
    assert "bad:name" not in ids
    assert httpx.get(f"{ws_url(ws_stack)}/collections/results-{USER}/items/good-one").status_code == 404


def test_a_read_only_provider_is_named(ws_stack, result):
    with pytest.raises(EolabError, match="provider 'pannonia' is not writable"):
        do_publish(ws_stack, result, to="pannonia")
    pannonia = ws_stack.member_url(ws_stack.member("pannonia"))
    with pytest.raises(EolabError, match=r"at http://.* is not writable \(its STAC API has no Transactions"):
        do_publish(ws_stack, result, to=pannonia)
    with pytest.raises(EolabError, match="not writable"):
        do_publish(ws_stack, result, to=ws_stack.broker_url)


def test_up_again_keeps_the_published_results(ws_stack, result):
    item = do_publish(ws_stack, result)
    stack.up(ws_stack, progress=False)
    assert [f["id"] for f in search(ws_stack)] == [item.id]


# --------------------------------------------------------------------------- the workspace token

@pytest.fixture
def no_token_env(monkeypatch):
    for name in ("EOLAB_WORKSPACE_TOKEN", "EOLAB_WORKSPACE_URL", "JUPYTERHUB_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def _collection_ids(config):
    return [c["id"] for c in httpx.get(f"{ws_url(config)}/collections").json()["collections"]]


def test_writes_need_the_workspace_token_and_reads_do_not(ws_stack, no_token_env):
    path = _workspace.token_file(ws_stack.run_dir)
    assert path.stat().st_mode & 0o777 == 0o600
    token = path.read_text().strip()
    body = publish.results_collection("token-check", USER)
    url = ws_url(ws_stack)

    missing = httpx.post(f"{url}/collections", json=body)
    assert missing.status_code == 401
    assert "Bearer <workspace token>" in missing.json()["description"] and "Traceback" not in missing.text
    wrong = httpx.post(f"{url}/collections", json=body, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 403 and wrong.json()["description"] == "wrong workspace token"
    hub_style = httpx.post(f"{url}/collections", json=body, headers={"Authorization": f"token {token}"})
    assert hub_style.status_code == 401
    items = {"items": {}, "method": "upsert"}
    assert httpx.post(f"{url}/collections/token-check/bulk_items", json=items).status_code == 401
    assert "token-check" not in _collection_ids(ws_stack)
    assert httpx.get(f"{url}/collections/token-check").status_code == 404

    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.post(f"{url}/collections", json=body, headers=bearer).status_code in (200, 201)
    try:
        assert "token-check" in _collection_ids(ws_stack)
        assert httpx.delete(f"{url}/collections/token-check").status_code == 401
        assert httpx.delete(f"{url}/collections/token-check",
                            headers={"Authorization": "Bearer x"}).status_code == 403
        assert "token-check" in _collection_ids(ws_stack)
        # Reads stay open, the read-only POST /search included, and the broker reads as before.
        assert httpx.get(f"{url}/collections/token-check").status_code == 200
        assert httpx.post(f"{url}/search", json={"collections": ["token-check"], "limit": 1}).status_code == 200
        assert httpx.get(f"{url}/search", params={"collections": "token-check"}).status_code == 200
        assert httpx.post(ws_stack.broker_url + "/search",
                          json={"collections": ["pannonia|sentinel-2-l2a"], "limit": 1}).status_code == 200
    finally:
        assert httpx.delete(f"{url}/collections/token-check", headers=bearer).status_code == 200
    assert "token-check" not in _collection_ids(ws_stack)


def test_publishing_without_a_credential_is_refused_with_a_hint(ws_stack, result, no_token_env, tmp_path):
    elsewhere = ws_stack.model_copy(update={"run_dir": tmp_path / "no-token-here"})
    item = publish.build_item(result["files"], workflow="water-monitoring", provenance=result["provenance"],
                              bbox=result["bbox"], start=PERIOD[0], end=PERIOD[1], item_id="no-credential")
    with pytest.raises(EolabError, match=r"provider 'workspace' refused creating collection 'results-nobody': "
                                         r"HTTP 401: .*Bearer") as err:
        publish.upsert_items([item], user="nobody", config=elsewhere)
    assert "EOLAB_WORKSPACE_TOKEN" in err.value.hint
    assert "results-nobody" not in _collection_ids(ws_stack)
    # The token by environment is enough.
    token = _workspace.read_token(ws_stack.run_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EOLAB_WORKSPACE_TOKEN", "wrong")
        with pytest.raises(EolabError, match="HTTP 403: wrong workspace token"):
            publish.upsert_items([item], user=USER, config=elsewhere)
        mp.setenv("EOLAB_WORKSPACE_TOKEN", token)
        publish.upsert_items([item], user=USER, config=elsewhere)
    got = httpx.get(f"{ws_url(ws_stack)}/collections/results-{USER}/items/no-credential")
    assert got.status_code == 200
    bearer = {"Authorization": f"Bearer {token}"}
    httpx.delete(f"{ws_url(ws_stack)}/collections/results-{USER}/items/no-credential",
                 headers=bearer).raise_for_status()


def test_the_token_survives_a_restart_of_the_workspace(ws_stack, result, no_token_env):
    token = _workspace.read_token(ws_stack.run_dir)
    assert _services.stop(Path(ws_stack.run_dir), "member-workspace")
    stack.up(ws_stack, progress=False)
    assert _workspace.read_token(ws_stack.run_dir) == token
    item = do_publish(ws_stack, result)
    assert [f["id"] for f in search(ws_stack)] == [item.id]


def test_up_restarts_a_workspace_running_without_the_token_check(ws_stack, no_token_env):
    run_dir, member = Path(ws_stack.run_dir), ws_stack.member(publish.WORKSPACE)
    cluster = stack.Cluster(run_dir, ws_stack.postgres.port, ws_stack.host)
    legacy = stack._member_service(ws_stack, member, cluster)
    legacy.cmd[legacy.cmd.index("eolab.stack.workspace:create_app")] = "eolab.stack.member:create_app"
    _services.stop(run_dir, legacy.name)
    _services.start(run_dir, legacy)
    body = publish.results_collection("unguarded", USER)
    url = ws_url(ws_stack)
    try:
        stack.up(ws_stack, progress=False)
        assert httpx.post(f"{url}/collections", json=body).status_code == 401
        assert _services.running_pid(run_dir, legacy.name)
    finally:
        if "unguarded" in _collection_ids(ws_stack):
            token = _workspace.read_token(run_dir)
            httpx.delete(f"{url}/collections/unguarded", headers={"Authorization": f"Bearer {token}"})


def test_what_one_writer_stores_cannot_break_what_others_find(ws_stack, result, no_token_env):
    """Writes the workspace (stac-fastapi) did not check: bulk items (a link without href made every
    search meeting the item fail, HTTP 500), PATCH (a patched collection broke every collection
    listing), control characters (500), items starting in the future (first in everyone's newest-first
    search) or of many megabytes. All are refused naming the problem, with the token; another
    user's published result is found as before."""
    mine = do_publish(ws_stack, result)
    token = _workspace.token_file(ws_stack.run_dir).read_text().strip()
    bearer = {"Authorization": f"Bearer {token}"}
    url, other = ws_url(ws_stack), "results-other"
    assert httpx.post(f"{url}/collections", json=publish.results_collection(other, "other"),
                      headers=bearer).status_code in (200, 201, 409)
    good = publish.build_item(result["files"], workflow="water-monitoring", provenance=result["provenance"],
                              bbox=result["bbox"], start=PERIOD[0], end=PERIOD[1],
                              item_id="fine").to_dict(include_self_link=False)
    good["collection"] = other

    def bulk(item):
        return httpx.post(f"{url}/collections/{other}/bulk_items", headers=bearer, timeout=60,
                          json={"items": {item["id"]: item}, "method": "upsert"})

    big = "x" * 140_000  # over the 128 kB an item may take
    hostile = [
        (dict(good, id="no-href", links=[{"rel": "license"}]), 400, "link 0 needs 'rel' and 'href'"),
        (dict(good, id="nul", properties=dict(good["properties"], title="a\x00b")), 400, "control character"),
        (dict(good, id="future", properties=dict(good["properties"], start_datetime="9999-01-01T00:00:00Z",
                                                 end_datetime="9999-12-31T00:00:00Z")), 400, "in the future"),
        (dict(good, id="huge", properties=dict(good["properties"], junk=big)), 400, "kB as JSON"),
    ]
    try:
        for item, status, words in hostile:
            answer = bulk(item)
            assert answer.status_code == status and words in answer.json()["description"], answer.text[:300]
        patched = httpx.patch(f"{url}/collections/{other}", headers=bearer,
                              json=[{"op": "replace", "path": "/links", "value": [{"rel": "x"}]}])
        assert patched.status_code == 405 and "PUT" in patched.json()["description"]
        broken = publish.results_collection(other, "other")
        broken["links"] = [{"rel": "x"}]
        put = httpx.put(f"{url}/collections/{other}", headers=bearer, json=broken)
        assert put.status_code == 400 and "href" in put.json()["description"]
        # nothing of it was stored; the listing and the other user's result are as before
        assert httpx.get(f"{url}/collections").status_code == 200
        stored = httpx.get(f"{url}/collections/{other}/items").json()["features"]
        assert stored == []
        assert bulk(good).status_code == 200  # the same item made right is written
        assert [f["id"] for f in search(ws_stack)] == [mine.id]
        with Catalogue(ws_stack.broker_url) as cat:
            everything = cat.items([f"{publish.WORKSPACE}|{other}", COLLECTION])
        assert sorted(f["id"] for f in everything) == sorted(["fine", mine.id])
        with pytest.raises(EolabError, match="link 0 needs 'rel' and 'href'"):  # the kernel checks first
            publish.upsert_items([dict(good, id="no-href-2", links=[{"rel": "license"}])], user=USER,
                                 config=ws_stack)
    finally:
        assert httpx.delete(f"{url}/collections/{other}", headers=bearer).status_code == 200
