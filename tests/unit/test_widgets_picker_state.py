"""The picker's state machine: draw, edit, delete, upload, time presets, invalid input → one-line message."""

from __future__ import annotations

import datetime as dt
import json

import geopandas as gpd
import pytest
from shapely.geometry import box, shape

from eolab.widgets import PickerError, PickerState, preset_range

TODAY = dt.date(2026, 11, 22)


def rect(x0, y0, x1, y1) -> dict:
    """A rectangle as Leaflet.draw reports it: a Feature with a style property and 5 coordinates."""
    ring = [[x0, y0], [x0, y1], [x1, y1], [x1, y0], [x0, y0]]
    return {"type": "Feature", "properties": {"style": {"color": "#3388ff"}},
            "geometry": {"type": "Polygon", "coordinates": [ring]}}


def poly(*points) -> dict:
    ring = [list(p) for p in points] + [list(points[0])]
    return {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}


@pytest.fixture
def state():
    return PickerState(today=TODAY)


def test_created_rectangle_sets_aoi_bbox_and_notifies(state):
    seen = []
    state.on_change(lambda s: seen.append(s.bbox))
    shape_id = state.handle_draw("created", rect(20.61, 47.66, 20.63, 47.67))
    assert shape_id == "s1" and state.error == ""
    assert state.bbox == pytest.approx((20.61, 47.66, 20.63, 47.67))
    assert state.aoi.equals(box(20.61, 47.66, 20.63, 47.67))
    assert state.aoi_geojson["type"] == "Polygon"
    assert seen and seen[-1] == state.bbox


def test_edit_goes_to_the_edited_shape_and_leaves_the_other(state):
    a = state.handle_draw("created", rect(20.60, 47.60, 20.62, 47.62))
    b = state.handle_draw("created", poly((20.70, 47.70), (20.72, 47.70), (20.71, 47.72)))
    # Leaflet reports only the new geometry of the edited layer: move one vertex of the triangle.
    state.handle_draw("edited", poly((20.70, 47.70), (20.73, 47.70), (20.71, 47.72)))
    assert shape(state.shapes[b]["geometry"]).bounds[2] == pytest.approx(20.73)
    assert shape(state.shapes[a]["geometry"]).equals(box(20.60, 47.60, 20.62, 47.62))
    # Dragging the rectangle as a whole still finds it (nearest shape with the same vertex count).
    state.handle_draw("edited", rect(20.64, 47.60, 20.66, 47.62))
    assert shape(state.shapes[a]["geometry"]).equals(box(20.64, 47.60, 20.66, 47.62))
    assert state.bbox == pytest.approx((20.64, 47.60, 20.73, 47.72))
    assert [action for action, _ in state.log] == ["add", "add", "edit", "edit"]


def test_delete_removes_exactly_the_deleted_shape(state):
    state.handle_draw("created", rect(20.60, 47.60, 20.62, 47.62))
    keep = state.handle_draw("created", rect(20.65, 47.65, 20.67, 47.67))
    state.handle_draw("deleted", rect(20.60, 47.60, 20.62, 47.62))
    assert list(state.shapes) == [keep]
    assert state.bbox == pytest.approx((20.65, 47.65, 20.67, 47.67))
    state.handle_draw("deleted", rect(20.65, 47.65, 20.67, 47.67))
    assert state.shapes == {} and state.aoi is None and state.bbox is None
    # A late or repeated delete event (the browser and kernel disagree) changes nothing.
    assert state.handle_draw("deleted", rect(20.65, 47.65, 20.67, 47.67)) is None
    assert state.error == ""


def test_events_without_state_meaning_are_ignored(state):
    state.handle_draw("created", rect(20.60, 47.60, 20.62, 47.62))
    before = dict(state.shapes)
    for action in ("drawstart", "editstart", "editstop"):
        assert state.handle_draw(action, {"type": "Feature", "geometry": None}) is None
    assert state.shapes == before


def test_self_intersecting_polygon_gives_one_line_and_keeps_the_state(state):
    good = state.handle_draw("created", rect(20.60, 47.60, 20.62, 47.62))
    assert state.handle_draw("created", poly((20.0, 47.0), (20.1, 47.1), (20.1, 47.0), (20.0, 47.1))) is None
    assert "not a valid polygon" in state.error and "Self-intersection" in state.error
    assert "\n" not in state.error
    assert list(state.shapes) == [good]
    # The next successful action clears the message.
    state.handle_draw("created", rect(20.65, 47.65, 20.67, 47.67))
    assert state.error == ""


def test_shapes_on_another_copy_of_the_world_and_across_the_antimeridian(state):
    # Leaflet gives longitudes past 180 on a repeated copy of the world: moved back, not refused.
    assert state.handle_draw("created", rect(380.61, 47.66, 380.63, 47.67)) == "s1" and state.error == ""
    assert state.bbox == pytest.approx((20.61, 47.66, 20.63, 47.67))
    assert state.handle_draw("created", rect(175, 0, 190, 5)) is None  # drawn across ±180
    assert "crosses the antimeridian" in state.error and len(state.shapes) == 1
    # GeoJSON reads this box the long way round (340° wide): before, a search of nearly every longitude.
    with pytest.raises(PickerError, match="spans 340° of longitude"):
        state.add(poly((170, 0), (-170, 0), (-170, 10), (170, 10))["geometry"])
    split = {"type": "MultiPolygon", "coordinates": [rect(170, 0, 180, 5)["geometry"]["coordinates"],
                                                     rect(-180, 0, -170, 5)["geometry"]["coordinates"]]}
    assert state.add(split) == "s2" and len(state.shapes) == 2  # split at the antimeridian as RFC 7946 asks


def test_line_and_point_are_not_areas(state):
    line = {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[20.6, 47.6], [20.7, 47.7]]}}
    state.handle_draw("created", line)
    assert state.error.startswith("drawn shape 1 is a LineString, not an area")
    with pytest.raises(PickerError, match="is a Point, not an area"):
        state.add({"type": "Point", "coordinates": [20.6, 47.6]})
    assert state.shapes == {}


def test_edit_into_an_invalid_shape_is_refused(state):
    a = state.handle_draw("created", poly((20.0, 47.0), (20.2, 47.0), (20.2, 47.2), (20.0, 47.2)))
    state.handle_draw("edited", poly((20.0, 47.0), (20.2, 47.2), (20.2, 47.0), (20.0, 47.2)))
    assert "not a valid polygon" in state.error
    assert shape(state.shapes[a]["geometry"]).equals(box(20.0, 47.0, 20.2, 47.2))


def test_upload_geojson_feature_collection(state):
    fc = {"type": "FeatureCollection", "features": [rect(20.60, 47.60, 20.61, 47.61), rect(20.62, 47.62, 20.63, 47.63)]}
    ids = state.upload("fields.geojson", json.dumps(fc).encode())
    assert len(ids) == 1 and state.shapes[ids[0]]["source"] == "upload"
    assert state.aoi.geom_type == "MultiPolygon" and len(state.aoi.geoms) == 2
    assert state.bbox == pytest.approx((20.60, 47.60, 20.63, 47.63))
    state.remove(ids[0])
    assert state.aoi is None


def test_upload_geopackage_in_utm_is_reprojected(state, tmp_path):
    # Parcels in the demo's UTM zone 34N, as a paying agency would deliver them.
    parcels = gpd.GeoDataFrame({"parcel": [1, 2]}, geometry=[box(471000, 5280000, 471200, 5280150),
                                                              box(472000, 5281000, 472300, 5281200)], crs=32634)
    path = tmp_path / "parcels.gpkg"
    parcels.to_file(path, driver="GPKG")
    state.upload("parcels.gpkg", path.read_bytes())
    west, south, east, north = state.bbox
    expected = parcels.to_crs(4326).total_bounds
    assert (west, south, east, north) == pytest.approx(tuple(expected), abs=1e-9)
    assert 20.6 < west < east < 20.7 and 47.6 < south < north < 47.8
    assert state.aoi.area == pytest.approx(parcels.to_crs(4326).union_all().area, rel=1e-9)


@pytest.mark.parametrize("name, content, message", [
    ("fields.shp", b"xx", "only GeoJSON (.geojson, .json) and GeoPackage (.gpkg)"),
    ("empty.geojson", b"", "empty.geojson is empty"),
    ("broken.geojson", b"{not json", "broken.geojson is not valid JSON"),
    ("other.json", b'{"hello": 1}', "other.json is JSON but not GeoJSON"),
    ("none.geojson", b'{"type": "FeatureCollection", "features": []}', "none.geojson holds no features"),
    ("utm.geojson", json.dumps({"type": "Polygon", "coordinates": [[[471000, 5280000], [471200, 5280000],
                                                                     [471200, 5280150], [471000, 5280000]]]}).encode(),
     "outside longitude/latitude"),
    ("points.geojson", json.dumps({"type": "Point", "coordinates": [20.6, 47.6]}).encode(), "is a Point, not an area"),
    ("bow.geojson", json.dumps(poly((20.0, 47.0), (20.1, 47.1), (20.1, 47.0), (20.0, 47.1))).encode(),
     "feature 1 of bow.geojson is not a valid polygon"),
    ("junk.gpkg", b"SQLite format 3\x00 but not really", "cannot read junk.gpkg"),
])
def test_upload_problems_are_one_line_errors(state, name, content, message):
    state.handle_draw("created", rect(20.60, 47.60, 20.62, 47.62))
    with pytest.raises(PickerError) as info:
        state.upload(name, content)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert state.error == str(info.value)
    assert len(state.shapes) == 1  # nothing half-added


def test_time_range_and_presets(state):
    seen = []
    state.on_change(lambda s: seen.append(s.time_range))
    state.set_time_range("2026-04-01", dt.date(2026, 6, 30))
    assert state.time_range == (dt.date(2026, 4, 1), dt.date(2026, 6, 30)) and state.preset == ""
    assert state.apply_preset("last-month") == (dt.date(2026, 10, 1), dt.date(2026, 10, 31))
    assert state.apply_preset("season") == (dt.date(2026, 3, 1), dt.date(2026, 10, 31))
    assert state.apply_preset("year") == (dt.date(2025, 11, 23), TODAY)
    assert state.preset == "year" and len(seen) == 4
    with pytest.raises(PickerError, match=r"starts \(2026-07-01\) after it ends \(2026-06-01\)"):
        state.set_time_range("2026-07-01", "2026-06-01")
    assert state.time_range == (dt.date(2025, 11, 23), TODAY)
    with pytest.raises(PickerError, match="'2026-13-01' is not a date"):
        state.set_time_range("2026-13-01", "2026-12-01")
    with pytest.raises(PickerError, match="unknown time preset 'decade'"):
        state.apply_preset("decade")


def test_presets_across_year_ends():
    assert preset_range("last-month", dt.date(2026, 1, 15)) == (dt.date(2025, 12, 1), dt.date(2025, 12, 31))
    assert preset_range("season", dt.date(2026, 2, 10)) == (dt.date(2025, 3, 1), dt.date(2025, 10, 31))
    assert preset_range("year", dt.date(2024, 12, 31))[0] == dt.date(2024, 1, 2)


def test_set_bbox_and_search_parameters(state):
    state.handle_draw("created", rect(1, 1, 2, 2))
    state.set_bbox(20.6, 47.65, 20.7, 47.72)
    assert list(state.shapes) == ["s2"] and state.bbox == (20.6, 47.65, 20.7, 47.72)
    state.set_time_range("2026-04-01", "2026-04-30")
    params = state.search_parameters()
    assert shape(params["intersects"]).equals(box(20.6, 47.65, 20.7, 47.72))
    assert params["datetime"] == (dt.date(2026, 4, 1), dt.date(2026, 4, 30))
    with pytest.raises(PickerError, match="is not west < east"):
        state.set_bbox(20.7, 47.65, 20.6, 47.72)


def test_observer_can_be_removed(state):
    seen = []

    def callback(s):
        seen.append(1)
    state.on_change(callback)
    state.set_bbox(0, 0, 1, 1)
    state.on_change(callback, remove=True)
    state.set_bbox(0, 0, 2, 2)
    assert seen == [1]


def test_many_parcels_search_with_a_small_cover_that_contains_them(state):
    import shapely

    # 900 small parcels (3,600+ vertices): the search geometry must stay small and cover them all.
    parcels = [box(20.60 + 0.002 * i, 47.65 + 0.002 * j, 20.60 + 0.002 * i + 0.0015, 47.65 + 0.002 * j + 0.001)
               for i in range(30) for j in range(30)]
    fc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                                                     "geometry": shapely.geometry.mapping(p)} for p in parcels]}
    state.upload("parcels.geojson", json.dumps(fc).encode())
    assert shapely.get_num_coordinates(state.aoi) > 3000
    cover = shape(state.search_parameters()["intersects"])
    assert shapely.get_num_coordinates(cover) <= 500
    assert cover.contains(state.aoi)
    assert cover.area < 1.5 * box(*state.aoi.bounds).area
    state.set_bbox(20.6, 47.6, 20.7, 47.7)  # a simple area is searched as it is
    assert shape(state.search_parameters()["intersects"]).equals(state.aoi)
