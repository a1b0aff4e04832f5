"""The Fields extension (v1.0.0 include/exclude semantics) as the broker applies it.

The cases are the ones stac-api-validator 0.6.8 checks (validations.py ``validate_fields``) plus the
spec's own examples; every rule is checked through both parsers (GET string, POST object) and
``apply_fields``, and the member request is checked to keep what the broker needs.
"""

from __future__ import annotations

import copy

import pytest

from eolab.catalog._fallback import ALWAYS_FIELDS, apply_fields, member_fields
from eolab.catalog._query import DEFAULT_FIELDS, BadParameter, parse_get, parse_post
from tests.unit.test_broker_app import make_broker, run

ITEM = {
    "type": "Feature", "stac_version": "1.0.0", "stac_extensions": ["https://example.org/eo.json"],
    "id": "S2B_1", "collection": "m|s2",
    "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]},
    "bbox": [0, 0, 1, 1],
    "properties": {"datetime": "2026-05-01T10:00:00Z", "eo:cloud_cover": 12.5, "platform": "sentinel-2b"},
    "links": [{"rel": "self", "href": "http://broker/collections/m|s2/items/S2B_1"}],
    "assets": {"B04": {"href": "http://assets/B04.tif"}, "B08": {"href": "http://assets/B08.tif"}},
}
DEFAULT_KEYS = {"type", "stac_version", "id", "geometry", "bbox", "links", "assets", "properties", "collection"}


def post(fields) -> dict:
    return apply_fields(copy.deepcopy(ITEM), *parse_post({"fields": fields}).fields)


def get(fields: str) -> dict:
    return apply_fields(copy.deepcopy(ITEM), *parse_get({"fields": fields}).fields)


# --- rule 1: empty fields → the default set ---------------------------------------------------------

@pytest.mark.parametrize("fields", [{}, {"include": None, "exclude": None}, {"include": [], "exclude": []},
                                    {"include": []}, {"exclude": None}])
def test_empty_fields_give_the_default_set(fields):
    item = post(fields)
    assert set(item) == DEFAULT_KEYS
    assert item["properties"] == {"datetime": "2026-05-01T10:00:00Z"}
    assert item["geometry"] == ITEM["geometry"] and item["assets"] == ITEM["assets"]


def test_empty_get_fields_give_the_default_set():
    assert get("") == post({})


def test_default_set_keeps_start_and_end_for_range_items():
    ranged = copy.deepcopy(ITEM)
    ranged["properties"].update(datetime=None, start_datetime="2026-05-01T00:00:00Z",
                                end_datetime="2026-05-02T00:00:00Z")
    out = apply_fields(ranged, (), ())
    assert out["properties"] == {"datetime": None, "start_datetime": "2026-05-01T00:00:00Z",
                                 "end_datetime": "2026-05-02T00:00:00Z"}


def test_post_fields_null_is_refused():
    with pytest.raises(BadParameter) as err:
        parse_post({"fields": None})
    assert err.value.parameter == "fields"


# --- rule 2: only include → those fields (plus id, type, stac_version, collection) -----------------

@pytest.mark.parametrize("name", ["type", "stac_version", "id", "geometry", "bbox", "links", "assets"])
def test_only_include_gives_those_fields_and_the_simple_strings(name):
    for item in (post({"include": [name]}), get(name), get("+" + name)):
        assert set(item) == {name, *ALWAYS_FIELDS}
        assert item[name] == ITEM[name]
        assert len(item) <= 5  # the validator's limit for a one-field include


def test_include_a_property_by_path_or_bare_name():
    for item in (post({"include": ["properties.eo:cloud_cover"]}), get("eo:cloud_cover")):
        assert set(item) == {"properties", *ALWAYS_FIELDS}
        assert item["properties"] == {"eo:cloud_cover": 12.5}


# --- rule 3: only exclude → the whole item minus those ---------------------------------------------

def test_only_exclude_gives_the_whole_item_minus_those():
    for item in (post({"exclude": ["geometry"]}), get("-geometry")):
        expected = copy.deepcopy(ITEM)
        del expected["geometry"]
        assert item == expected  # eo:cloud_cover, platform, stac_extensions all still there


def test_only_exclude_nested():
    item = get("-assets.B04,-properties.platform")
    assert set(item["assets"]) == {"B08"} and "platform" not in item["properties"]
    assert item["properties"]["eo:cloud_cover"] == 12.5


# --- rule 4: exclude with include null or [] → the default set minus those --------------------------

@pytest.mark.parametrize("include", [[], None])
def test_exclude_with_empty_include_is_taken_from_the_default_set(include):
    item = post({"include": include, "exclude": ["geometry"]})
    assert set(item) == DEFAULT_KEYS - {"geometry"}
    assert item["properties"] == {"datetime": "2026-05-01T10:00:00Z"}  # no eo:cloud_cover
    assert item["assets"] == ITEM["assets"] and item["id"] == ITEM["id"]


def test_exclude_with_empty_include_nested_and_bare_names():
    item = post({"include": [], "exclude": ["datetime", "assets"]})  # bare name = properties.datetime
    assert "properties" not in item and "assets" not in item
    assert {"geometry", "bbox", "links", "id", "type"} <= set(item)
    item = post({"include": [], "exclude": ["properties"]})
    assert "properties" not in item and "geometry" in item


def test_exclude_everything_default_with_empty_include_is_not_the_whole_item():
    item = post({"include": [], "exclude": [d.split(".")[0] for d in DEFAULT_FIELDS]})
    assert set(item) <= set(ALWAYS_FIELDS) and item["id"] == ITEM["id"]


def test_rule_4_is_only_for_an_explicit_empty_include():
    assert parse_post({"fields": {"exclude": ["geometry"]}}).fields == ((), ("geometry",))
    include, exclude = parse_post({"fields": {"include": None, "exclude": ["geometry"]}}).fields
    assert "geometry" not in include and "assets" in include and exclude == ("geometry",)


# --- nesting and conflicts ---------------------------------------------------------------------------

def test_nested_include_survives_an_excluded_parent():
    for item in (post({"include": ["properties.eo:cloud_cover"], "exclude": ["properties"]}),
                 get("-properties,+properties.eo:cloud_cover")):
        assert item["properties"] == {"eo:cloud_cover": 12.5}
        assert "geometry" not in item and "assets" not in item
        assert len(item) == 5  # the validator wants exactly 5 top-level members here


def test_same_field_in_include_and_exclude_is_included():
    for item in (post({"include": ["geometry"], "exclude": ["geometry"]}), get("+geometry,-geometry")):
        assert item["geometry"] == ITEM["geometry"] and set(item) == {"geometry", *ALWAYS_FIELDS}


def test_include_parent_exclude_child():
    item = post({"include": ["properties"], "exclude": ["properties.platform"]})
    assert item["properties"] == {"datetime": "2026-05-01T10:00:00Z", "eo:cloud_cover": 12.5}


def test_excluding_an_always_field_is_honoured_except_id():
    item = post({"include": ["bbox"], "exclude": ["stac_version", "id"]})
    assert "stac_version" not in item and item["id"] == ITEM["id"]


# --- what members are asked for ---------------------------------------------------------------------

def test_member_request_keeps_sort_keys_links_and_identity():
    inc, exc = parse_post({"fields": {"include": [], "exclude": ["geometry"]}}).fields
    sent = member_fields(inc, exc, ("properties.eo:cloud_cover",))
    assert {"properties.eo:cloud_cover", "links", "id", "collection", "assets"} <= set(sent["include"])
    assert "geometry" not in sent["include"] and sent["exclude"] == ["geometry"]
    sent = member_fields(("properties.eo:cloud_cover",), ("properties",), ("properties.datetime",))
    assert "properties" not in sent["exclude"]  # would drop the include and the sort key
    assert member_fields((), (), ())["include"][:len(DEFAULT_FIELDS)] == list(DEFAULT_FIELDS)


def test_fingerprints_tell_rule_3_from_rule_4():
    only_exclude = parse_post({"fields": {"exclude": ["geometry"]}})
    empty_include = parse_post({"fields": {"include": [], "exclude": ["geometry"]}})
    assert only_exclude.fingerprint() != empty_include.fingerprint()
    assert parse_post({"fields": {"include": None, "exclude": ["geometry"]}}).fingerprint() == \
        empty_include.fingerprint()
    # the broker's own next links carry the explicit form, which parses to the same query
    assert parse_post(empty_include.to_post_body()).fingerprint() == empty_include.fingerprint()


# --- through the broker app (fake members) ----------------------------------------------------------

def test_fields_rules_through_the_broker():
    app = make_broker({"a": {"n_items": 3}})

    async def go(c):
        out = {}
        for name, body in [("rule4", {"fields": {"include": [], "exclude": ["geometry"]}}),
                           ("rule3", {"fields": {"exclude": ["geometry"]}}),
                           ("nested", {"fields": {"include": ["properties.eo:cloud_cover"],
                                                  "exclude": ["properties"]}})]:
            response = await c.post("/search", json={**body, "limit": 2})
            assert response.status_code == 200, response.text
            out[name] = response.json()["features"]
        return out

    out = run(app, go)
    for item in out["rule4"]:
        assert "geometry" not in item and "eo:cloud_cover" not in item["properties"]
        assert {"id", "assets", "bbox", "links", "stac_version"} <= set(item)
    for item in out["rule3"]:
        assert "geometry" not in item and "eo:cloud_cover" in item["properties"]
    for item in out["nested"]:
        assert set(item) == {"properties", *ALWAYS_FIELDS} and set(item["properties"]) == {"eo:cloud_cover"}


def test_fields_never_change_the_item_they_are_applied_to():
    """The item is the broker's cached member page: one client's fields must not alter it."""
    item = copy.deepcopy(ITEM)
    item["properties"]["s2.tile"] = "T34TDT"  # a property name with a dot in it
    before = copy.deepcopy(item)
    for include, exclude in [(("properties", "properties.s2.tile"), ()), (("assets", "properties"), ("assets.B04",)),
                             ((), ("properties.datetime", "assets.B08")), (("properties.platform",), ())]:
        apply_fields(item, include, exclude)
        assert item == before, (include, exclude)
