"""The widget views headless: kernel-side messages as the browser sends them, against the real stack."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from eolab.widgets import AreaTimePicker, CatalogueBrowser

pytestmark = pytest.mark.integration


def upload(name: str, content: bytes) -> tuple:
    """The value ipywidgets' FileUpload holds after the browser sent one file."""
    return ({"name": name, "type": "", "size": len(content), "content": memoryview(content),
             "last_modified": dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)},)


def leaflet_rect(x0, y0, x1, y1) -> dict:
    ring = [[x0, y0], [x0, y1], [x1, y1], [x1, y0], [x0, y0]]
    return {"type": "Feature", "properties": {"style": {"color": "#d7301f"}},
            "geometry": {"type": "Polygon", "coordinates": [ring]}}


@pytest.fixture(autouse=True)
def kernel_event_loop():
    """The thread's event loop, as in a kernel: ipyleaflet's fit_bounds schedules its work on it. (Without
    it these views depended on which earlier test in the process had left a loop set.)"""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)
    loop.close()


@pytest.fixture
def views(catalog_stack, monkeypatch):
    import http.server
    import threading

    class Health(http.server.BaseHTTPRequestHandler):  # stands for the tile service the kernel asks
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    tiles = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=tiles.serve_forever, daemon=True).start()
    monkeypatch.delenv("EOLAB_TILES_URL", raising=False)
    picker = AreaTimePicker(today=dt.date(2026, 11, 22))
    browser = CatalogueBrowser(picker, catalog_stack.broker_url, tiles_url=f"http://127.0.0.1:{tiles.server_port}")
    yield picker, browser
    browser.state.catalogue.close()
    tiles.shutdown()


def test_offline_defaults_no_request_leaves_the_machine(views):
    picker, _ = views
    # No tile service configured: a blank data: tile, never OpenStreetMap or another CDN.
    urls = [layer.url for layer in picker.map.layers if hasattr(layer, "url")]
    assert urls and all(u.startswith("data:image/png") for u in urls)


def test_draw_messages_edit_delete_and_search(views):
    picker, browser = views
    send = picker.draw._handle_leaflet_event
    send(None, {"event": "draw:created", "geo_json": leaflet_rect(20.60, 47.69, 20.62, 47.70)}, None)
    send(None, {"event": "draw:created", "geo_json": leaflet_rect(20.66, 47.66, 20.68, 47.67)}, None)
    send(None, {"event": "draw:edited", "geo_json": leaflet_rect(20.605, 47.695, 20.63, 47.712)}, None)
    send(None, {"event": "draw:deleted", "geo_json": leaflet_rect(20.66, 47.66, 20.68, 47.67)}, None)
    # The DrawControl's own list is not what the picker uses (it is empty here: no browser).
    assert picker.draw.data == []
    assert picker.bbox == pytest.approx((20.605, 47.695, 20.63, 47.712))
    assert "1 shape" in picker.summary.value

    picker.presets.value = "season"
    assert picker.time_range == (dt.date(2026, 3, 1), dt.date(2026, 10, 31))
    assert (picker.start.value, picker.end.value) == picker.time_range
    picker.start.value = dt.date(2026, 5, 1)
    picker.end.value = dt.date(2026, 7, 31)
    assert picker.time_range == (dt.date(2026, 5, 1), dt.date(2026, 7, 31)) and picker.presets.value is None
    # Clearing the dates clears the range (before, the old range stayed in force behind empty fields).
    picker.end.value = None
    assert picker.time_range is None and "pick both dates, or clear both" in picker.message.value
    picker.start.value = None
    assert picker.time_range is None and picker.message.value == "" and "no time range" in picker.summary.value
    picker.start.value = dt.date(2026, 5, 1)
    picker.end.value = dt.date(2026, 7, 31)
    assert picker.time_range == (dt.date(2026, 5, 1), dt.date(2026, 7, 31)) and picker.message.value == ""

    browser.collections.value = ("pannonia|sentinel-2-l2a",)
    browser.search_button.click()
    rows = browser.table.children
    assert rows and browser.status.value.startswith("page 1:") and browser.error.value == ""
    assert {r.children[1].value for r in rows} == {"pannonia"}
    assert len(browser.footprints.data["features"]) == len(rows)

    # A footprint click (as ipyleaflet delivers it) highlights the row; a row click does too.
    feature = browser.footprints.data["features"][0]
    browser.footprints._handle_mouse_events(None, {"event": "click", "feature": feature,
                                                   "properties": feature["properties"]}, None)
    assert browser.state.highlighted == feature["properties"]["key"]
    highlighted = [r for r in rows if "eolab-row-highlighted" in r._dom_classes]
    assert len(highlighted) == 1 and highlighted[0].children[-1].button_style == "warning"
    rows[1].children[-1].click()
    assert browser.state.highlighted == browser.state.rows[1]["key"]
    top = browser.footprints.data["features"][-1]["properties"]
    assert top["highlighted"] and top["style"]["color"] == "#ff7f00"  # drawn last, on top

    browser.show_button.click()
    assert browser.quicklook_layer.url.startswith(f"{browser.tiles_url}/item/{{z}}/{{x}}/{{y}}.png?url=")
    assert browser.quicklook_layer in picker.map.layers
    browser.hide_button.click()
    assert browser.quicklook_layer is None
    answering, browser.tiles_url = browser.tiles_url, "http://127.0.0.1:9"  # the tile service down
    browser.show_button.click()
    assert browser.quicklook_layer is None and "the tile service at http://127.0.0.1:9 is not answering" \
        in browser.error.value  # before: a layer of failing tiles, a blank map and no word
    browser.tiles_url = answering
    radar = dict(browser.state.item(browser.state.highlighted), id="S1_like", assets={"vv": {"href": "x.tif"}})
    browser.state._seen["radar"] = radar  # a Sentinel-1 row: no bands for true colour
    assert browser.show_quicklook("radar") is None and browser.quicklook_layer is None
    assert "no quicklook of S1_like: item S1_like has no red or green or blue band" in browser.error.value
    browser.show_button.click()  # the optical row still renders, and the message goes
    assert browser.quicklook_layer is not None and browser.error.value == ""
    browser.hide_button.click()

    browser.all_box.value = True
    assert len(browser.state.selected) == len(rows) and browser.selection.value == f"{len(rows)} items selected"
    assert len(browser.item_collection()) == len(rows)
    rows[0].children[0].value = False  # one row unticked: the page box follows, the others stay selected
    assert browser.all_box.value is False and len(browser.state.selected) == len(rows) - 1
    rows[0].children[0].value = True
    assert browser.all_box.value is True and len(browser.state.selected) == len(rows)


def test_upload_widget_and_error_message(views, small_demo):
    picker, _ = views
    parcels = (small_demo / "truth" / "parcels.gpkg").read_bytes()
    picker.upload.value = upload("parcels.gpkg", parcels)
    west, south, east, north = picker.bbox
    assert 20.59 < west < east < 20.71 and 47.64 < south < north < 47.72
    assert picker.upload_layer.data["features"][0]["properties"]["name"] == "parcels.gpkg"
    bad = json.dumps({"type": "Point", "coordinates": [20.6, 47.6]}).encode()
    picker.upload.value = upload("well.geojson", bad)
    assert "is a Point, not an area" in picker.message.value
    assert picker.bbox == (west, south, east, north)
    picker.clear_button.click()
    assert picker.aoi is None and picker.upload_layer.data["features"] == []


def test_search_again_after_ticking_rows(views):
    picker, browser = views
    picker.draw._handle_leaflet_event(None, {"event": "draw:created",
                                             "geo_json": leaflet_rect(20.60, 47.65, 20.70, 47.72)}, None)
    browser.search_button.click()
    first = [r.children[0] for r in browser.table.children]
    assert len(first) >= 2
    first[0].value = True  # the user ticks two rows, as the browser sends it
    first[1].value = True
    assert len(browser.state.selected) == 2 and browser.selection.value == "2 items selected"
    browser.limit.value = 10
    browser.search_button.click()  # and searches again
    assert browser.error.value == "" and browser.status.value.startswith("page 1: 10 items")
    assert browser.state.selected == [] and browser.selection.value == "no items selected"
    assert not any(r.children[0].value for r in browser.table.children)
    browser.table.children[0].children[0].value = True  # the new rows can be ticked
    assert browser.state.selected == [browser.state.rows[0]["key"]]
