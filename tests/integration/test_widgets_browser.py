"""The catalogue browser's state against the real broker over the real pgstac members.

Searches, pages with the broker's tokens, sorts, highlights, selects across pages, loads a cube,
and reports a provider that does not answer.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pystac_client
import pytest
import yaml

from eolab.data.load import load_cube as load
from eolab.errors import EolabError
from eolab.search import Catalogue, item_key, size_estimate
from eolab.testing import faults as _faults
from eolab.widgets import BrowserState, PickerState

pytestmark = pytest.mark.integration

APRIL_TO_JUNE = (dt.date(2026, 4, 1), dt.date(2026, 6, 30))
JUNE_TO_AUGUST = (dt.date(2026, 6, 1), dt.date(2026, 8, 31))


def centre_box(manifest, half=0.012):
    from pyproj import Transformer

    left, bottom, right, top = manifest["bounds"]
    lon, lat = Transformer.from_crs(manifest["crs"], "EPSG:4326", always_xy=True).transform(
        (left + right) / 2, (bottom + top) / 2)
    return lon - half, lat - half * 0.7, lon + half, lat + half * 0.7


@pytest.fixture(scope="module")
def manifest(catalog_stack):
    return json.loads((catalog_stack.data_dir / "manifest.json").read_text())


@pytest.fixture
def browser(catalog_stack, manifest):
    picker = PickerState(today=dt.date(2026, 11, 22))
    picker.set_bbox(*centre_box(manifest))
    state = BrowserState(catalog_stack.broker_url, picker=picker)
    yield state
    state.catalogue.close()


def direct(config, bbox, time_range, max_cloud=None):
    """(provider|collection, id) of every matching item, asking each member directly."""
    found = set()
    interval = f"{time_range[0]}T00:00:00Z/{time_range[1]}T23:59:59Z"
    for member in config.demo_members:
        client = pystac_client.Client.open(config.member_url(member))
        for item in client.search(bbox=bbox, datetime=interval, limit=100).items_as_dicts():
            cloud = item["properties"].get("eo:cloud_cover")
            if max_cloud is None or cloud is None or cloud <= max_cloud:
                found.add((f"{member.id}|{item['collection']}", item["id"]))
    return found


def test_collections_are_grouped_by_provider(browser):
    browser.refresh_collections()
    assert browser.groups == {"danube": ["danube|sentinel-2-l2a"],
                              "pannonia": ["pannonia|cop-dem-glo-30", "pannonia|sentinel-2-l2a"],
                              "tisza": ["tisza|sentinel-1-grd"]}
    assert browser.missing == [] and browser.error == ""
    s2 = next(c for c in browser.collections if c.id == "danube|sentinel-2-l2a")
    assert s2.interval[0].startswith("2026-07") and s2.bbox[0] == pytest.approx(20.6, abs=0.01)
    assert browser.status == "4 collections from 3 providers"


def test_paging_with_tokens_returns_every_item_once_in_order(browser, catalog_stack, manifest):
    browser.picker.set_time_range(*JUNE_TO_AUGUST)
    browser.max_cloud = 60
    browser.limit = 7
    pages = [browser.search()]
    assert browser.page_number == 1 and not browser.has_previous
    while browser.has_next:
        pages.append(browser.next_page())
        assert browser.has_previous
    got = [(i["collection"], i["id"]) for p in pages for i in p.items]
    assert all(len(p.items) <= 7 for p in pages) and len(pages) >= 3
    assert len(got) == len(set(got))
    assert set(got) == direct(catalog_stack, list(browser.picker.bbox), JUNE_TO_AUGUST, max_cloud=60)
    # Three providers in one answer: June at pannonia, July-August at danube, radar at tisza.
    assert {c.split("|")[0] for c, _ in got} == {"pannonia", "danube", "tisza"}
    stamps = [i["properties"]["datetime"] for p in pages for i in p.items]
    assert stamps == sorted(stamps, reverse=True)
    assert all(i["properties"].get("eo:cloud_cover", 0) <= 60 for p in pages for i in p.items)

    # Back to page 2 re-sends page 2's token: the same items again.
    last = browser.page_number
    browser.previous_page()
    assert browser.page_number == last - 1
    assert [i["id"] for i in browser.page.items] == [i["id"] for i in pages[last - 2].items]


def test_sort_highlight_and_select_across_pages(browser):
    browser.picker.set_time_range(*APRIL_TO_JUNE)
    browser.chosen = ["pannonia|sentinel-2-l2a"]
    browser.limit = 10
    browser.search()
    browser.sort("cloud_cover")
    clouds = [r["cloud_cover"] for r in browser.rows]
    assert clouds == sorted(clouds) and len(clouds) == 10
    browser.sort("cloud_cover")  # again: descending
    assert [r["cloud_cover"] for r in browser.rows] == sorted(clouds, reverse=True)

    first_key = browser.rows[0]["key"]
    browser.highlight(browser.rows[0]["id"])  # a unique id is enough
    flags = {f["properties"]["key"]: f["properties"]["highlighted"] for f in browser.footprints["features"]}
    assert flags[first_key] is True and sum(flags.values()) == 1 and len(flags) == 10

    browser.toggle(first_key)
    browser.next_page()
    second_key = browser.rows[-1]["key"]
    browser.toggle(second_key)
    assert browser.selected == [first_key, second_key]
    collection = browser.item_collection()
    assert [item_key(i.to_dict()) for i in collection] == [first_key, second_key]
    frame = browser.geodataframe()
    assert frame.id.tolist() == [k.split("/")[1] for k in (first_key, second_key)]
    assert frame.crs.to_epsg() == 4326 and set(frame.provider) == {"pannonia"}
    browser.toggle(first_key)
    assert browser.selected == [second_key]
    # A new search starts a new selection.
    browser.search()
    assert browser.selected == []


def test_selection_loads_into_a_cube(browser, manifest):
    browser.picker.set_time_range(dt.date(2026, 6, 1), dt.date(2026, 7, 15))
    browser.chosen = ["sentinel-2-l2a"]  # plain id: every provider holding it
    browser.limit = 50
    browser.search()
    centre = [r for r in browser.rows if r["id"].endswith("r01c01")]
    assert {r["provider"] for r in centre} == {"pannonia", "danube"}
    for row in centre:
        browser.toggle(row["key"])
    bbox = list(browser.picker.bbox)
    cube = load(browser.item_collection(), bands=["B04", "B08"], resolution=20, bbox=bbox)
    days = [str(t)[:10] for t in cube.time.values]
    assert days == sorted({r["datetime"][:10] for r in centre})
    assert cube.odc.crs.epsg == 32634 and cube.odc.geobox.resolution.x == 20
    assert {r["id"] for r in cube.attrs["eolab:provenance"]["items"]} == {r["id"] for r in centre}
    assert size_estimate(cube) == sum(v.size * v.dtype.itemsize for v in cube.data_vars.values())
    values = cube.B08.isel(time=0).values
    assert np.isfinite(values).any() and np.nanmax(values) < 1.5


def test_mixed_collections_and_bad_filter_are_one_line_errors(browser):
    browser.picker.set_time_range(*APRIL_TO_JUNE)
    browser.limit = 40
    browser.search()
    kinds = {}
    for row in browser.rows:
        kinds.setdefault(row["collection"], row["key"])
    for key in kinds.values():
        browser.toggle(key)
    with pytest.raises(EolabError, match="the selection mixes collections sentinel-1-grd, sentinel-2-l2a"):
        load(browser.item_collection())

    browser.filter_text = "eo:cloud_cover <<< 3"
    with pytest.raises(EolabError):
        browser.search()
    assert browser.error.startswith("the catalogue answered 400") and "\n" not in browser.error
    assert not browser.busy


@pytest.fixture(scope="module")
def ghost_broker(catalog_stack, tmp_path_factory):
    """A second broker over the same members plus one provider that is down."""
    run_dir = tmp_path_factory.mktemp("ghost-broker")
    raw = catalog_stack.model_dump(mode="json")
    raw["members"].append({"id": "ghost", "title": "A provider that is down",
                           "url": f"http://127.0.0.1:{_faults.free_port()}"})
    raw["broker"]["port"] = _faults.free_port()
    path = run_dir / "catalog.yaml"
    path.write_text(yaml.safe_dump(raw))
    url = _faults.serve_broker(run_dir, path, raw["broker"]["port"], name="broker-ghost",
                               env={"EOLAB_PORT_OFFSET": "0"})
    yield url
    _faults.stop(run_dir, "broker-ghost")


def test_missing_provider_is_reported_with_the_rest_of_the_answer(ghost_broker, manifest):
    picker = PickerState()
    picker.set_bbox(*centre_box(manifest))
    picker.set_time_range(*APRIL_TO_JUNE)
    state = BrowserState(Catalogue(ghost_broker), picker=picker)
    state.refresh_collections()
    assert state.missing == ["ghost"] and set(state.groups) == {"danube", "pannonia", "tisza"}
    state.search()
    assert state.missing == ["ghost"]
    assert state.rows and {r["provider"] for r in state.rows} <= {"pannonia", "tisza"}
    page = Catalogue(ghost_broker).search("sentinel-2-l2a", bbox=list(picker.bbox), limit=3)
    assert page.missing == ["ghost"] and len(page.items) == 3


def test_missing_notice_stays_with_its_search_until_one_answers_without_it(ghost_broker, manifest, monkeypatch):
    """The browser view names the provider that did not answer and the search it belongs to; paging
    keeps it, and only a search that answers without that provider missing clears it."""
    from eolab.widgets import AreaTimePicker, CatalogueBrowser

    monkeypatch.delenv("EOLAB_TILES_URL", raising=False)
    picker = AreaTimePicker(today=dt.date(2026, 11, 22))
    picker.state.set_bbox(*centre_box(manifest))
    picker.state.set_time_range(*APRIL_TO_JUNE)
    view = CatalogueBrowser(picker, ghost_broker, tiles_url="http://127.0.0.1:9", limit=3)
    state = view.state
    assert "<b>ghost</b> in the collection listing" in view.missing.value

    state.search()
    notice = "<b>ghost</b> in search 1 (all collections; 2026-04-01T00:00:00Z/2026-06-30T23:59:59Z), page 1"
    assert notice in view.missing.value and "listing" not in view.missing.value
    assert state.has_next
    state.next_page()
    state.next_page()
    assert state.page_number == 3 and notice in view.missing.value
    state.previous_page()
    assert notice in view.missing.value

    state.chosen = ["pannonia|sentinel-2-l2a"]  # the ghost holds nothing asked for: it is not missing
    state.search()
    assert state.page.missing == [] and state.missing == [] and view.missing.value == ""
    assert state.rows and {r["provider"] for r in state.rows} == {"pannonia"}
