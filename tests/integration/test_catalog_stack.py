"""The catalogue stack for real: pgstac members in PostgreSQL, the asset server, idempotent up."""

import datetime as dt
import json

import httpx
import pytest
import rasterio
from rasterio.windows import Window

from eolab import _services
from eolab.stack import core as stack


def all_items(url, **params):
    """Every item of a member's /search, following its own next links."""
    items, link = [], f"{url}/search"
    params = {"limit": 200, **params}
    while link:
        page = httpx.get(link, params=params, timeout=30).raise_for_status().json()
        items += page["features"]
        link = next((lk["href"] for lk in page["links"] if lk["rel"] == "next"), None)
        params = None  # the next link carries them
    return items


def day(item):
    return dt.date.fromisoformat(item["properties"]["datetime"][:10])


def manifest(config):
    return json.loads((config.data_dir / "manifest.json").read_text())


def test_members_hold_their_configured_share(catalog_stack):
    config = catalog_stack
    expected = manifest(config)["collections"]
    s2_ids = []
    for member in config.demo_members:
        url = config.member_url(member)
        collections = httpx.get(f"{url}/collections").raise_for_status().json()["collections"]
        assert sorted(c["id"] for c in collections) == sorted(member.collections)
        for collection_id, window in member.collections.items():
            items = all_items(url, collections=collection_id)
            assert items, f"{member.id} serves no {collection_id}"
            assert all(window.contains(day(i)) for i in items)
            if collection_id == "sentinel-2-l2a":
                s2_ids += [i["id"] for i in items]
            else:
                assert len(items) == expected[collection_id]
            # The collection's temporal extent is what this member really holds.
            collection = next(c for c in collections if c["id"] == collection_id)
            start, end = collection["extent"]["temporal"]["interval"][0]
            assert start[:10] == min(day(i) for i in items).isoformat()
            assert end[:10] == max(day(i) for i in items).isoformat()
    # Two members share sentinel-2-l2a without overlap and without losing an item.
    assert len(s2_ids) == len(set(s2_ids)) == expected["sentinel-2-l2a"]


def test_only_the_counting_member_reports_number_matched(catalog_stack):
    config = catalog_stack
    for member in config.demo_members:
        page = httpx.get(f"{config.member_url(member)}/search", params={"limit": 1}).json()
        if member.number_matched:
            assert page["numberMatched"] == len(all_items(config.member_url(member)))
        else:
            assert "numberMatched" not in page


def test_members_filter_sort_and_select_fields(catalog_stack):
    config = catalog_stack
    url = config.member_url(config.member("pannonia"))
    body = {"collections": ["sentinel-2-l2a"], "limit": 50,
            "filter": {"op": "<", "args": [{"property": "eo:cloud_cover"}, 10]}, "filter-lang": "cql2-json",
            "sortby": [{"field": "properties.eo:cloud_cover", "direction": "asc"}],
            "fields": {"include": ["properties.eo:cloud_cover"], "exclude": ["assets"]}}
    page = httpx.post(f"{url}/search", json=body).raise_for_status().json()
    covers = [f["properties"]["eo:cloud_cover"] for f in page["features"]]
    assert covers and all(c < 10 for c in covers)
    assert covers == sorted(covers)
    assert all("assets" not in f for f in page["features"])


def test_assets_are_served_with_byte_ranges_and_read_by_gdal(catalog_stack):
    config = catalog_stack
    item = all_items(config.member_url(config.member("danube")), collections="sentinel-2-l2a")[0]
    href = item["assets"]["B04"]["href"]
    assert href.startswith(config.assets_url + "/")
    response = httpx.get(href, headers={"Range": "bytes=0-15"})
    assert response.status_code == 206
    assert response.headers["content-range"].startswith("bytes 0-15/")
    assert len(response.content) == 16
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(href) as src:
        assert src.crs.to_epsg() == 32634
        assert src.res == (10.0, 10.0)
        block = src.read(1, window=Window(0, 0, 64, 64))
        assert block.shape == (64, 64) and block.max() > 0


def test_up_again_changes_nothing(catalog_stack):
    config = catalog_stack
    names = ["assets"] + [f"member-{m.id}" for m in config.demo_members]
    before = {n: _services.running_pid(config.run_dir, n) for n in names}
    assert all(before.values())
    statuses = stack.up(config, progress=False)
    assert {s.state for s in statuses} == {"running"}
    assert {n: _services.running_pid(config.run_dir, n) for n in names} == before
    assert {s.name: s.state for s in stack.status(config)}["postgres"] == "running"


@pytest.mark.parametrize("member_id", ["pannonia", "tisza"])
def test_item_links_point_back_to_the_member(catalog_stack, member_id):
    config = catalog_stack
    url = config.member_url(config.member(member_id))
    item = httpx.get(f"{url}/search", params={"limit": 1}).json()["features"][0]
    own = httpx.get(f"{url}/collections/{item['collection']}/items/{item['id']}").raise_for_status().json()
    assert own["assets"] == item["assets"]
    assert any(link["rel"] == "self" and link["href"].startswith(url) for link in own["links"])
