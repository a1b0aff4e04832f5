"""Search parameter parsing: canonical queries, and 400s that name the parameter."""

import datetime as dt
import json

import pytest

from eolab.catalog._query import MAX_LIMIT, BadParameter, parse_get, parse_interval, parse_post

# The validator's own lists (stac-api-validator 0.6.8, validations.py).
VALID_DATETIMES = [
    "0999-06-01T00:00:00Z",  # a year below 1000 is forwarded with its four digits
    "1985-04-12T23:20:50.52Z", "1996-12-19T16:39:57-00:00", "1996-12-19T16:39:57+08:00",
    "../1985-04-12T23:20:50.52Z", "1985-04-12T23:20:50.52Z/..", "/1985-04-12T23:20:50.52Z",
    "1985-04-12T23:20:50.52Z/", "1985-04-12T23:20:50.52Z/1986-04-12T23:20:50.52Z",
    "1985-04-12T23:20:50.52+01:00/1986-04-12T23:20:50.52+01:00", "1937-01-01T12:00:27.8710+01:00",
    "1985-04-12t23:20:50.000z", "2020-07-23T00:00:00.012345678Z", "1990-12-31T23:59:60Z",
]
INVALID_DATETIMES = [
    "/", "../..", "/..", "../", "/1984-04-12T23:20:50.52Z/1985-04-12T23:20:50.52Z",
    "1984-04-12T23:20:50.52Z/1985-04-12T23:20:50.52Z/", "1985-04-12", "1937-01-01T12:00:27.87+0100",
    "37-01-01T12:00:27.87Z", "1985-12-12T23:20:50.52", "21985-12-12T23:20:50.52Z", "1985-13-12T23:20:50.52Z",
    "1985-12-32T23:20:50.52Z", "1985-12-01T25:20:50.52Z", "1985-12-01T00:60:50.52Z", "1985-12-01T00:06:61.52Z",
    "1985-04-12T23:20:50.Z", "1985-04-12T23:20:50,Z", "1990-12-31T23:59:61Z",
    "1986-04-12T23:20:50.52Z/1985-04-12T23:20:50.52Z", "1985-04-12T23:20:50,52Z",
    "\u0662\u0660\u0662\u0666-01-01T00:00:00Z",  # Arabic-Indic digits: a regex's \d takes them, members do not
]


@pytest.mark.parametrize("text", VALID_DATETIMES)
def test_valid_datetimes(text):
    start, end = parse_interval(text)
    assert start is not None or end is not None
    # members get what was parsed, in one plain form, which parses back to the same interval
    forwarded = parse_get({"datetime": text}).datetime
    assert parse_interval(forwarded) == (start, end)
    assert forwarded.replace("..", "").replace("/", "").replace(".", "").replace(":", "").replace("-", "").replace(
        "T", "").replace("Z", "").isdigit()


@pytest.mark.parametrize("text", INVALID_DATETIMES)
def test_invalid_datetimes_name_the_parameter(text):
    with pytest.raises(BadParameter) as err:
        parse_get({"datetime": text})
    assert err.value.parameter == "datetime"
    assert str(err.value).startswith("datetime:")


def test_interval_is_utc_and_open_ends():
    start, end = parse_interval("2026-05-01T02:00:00+02:00/..")
    assert start == dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc) and end is None


@pytest.mark.parametrize("params, parameter", [
    ({"bbox": "1,2,3"}, "bbox"), ({"bbox": "a,b,c,d"}, "bbox"), ({"bbox": "0,50,1,40"}, "bbox"),
    ({"bbox": "0,0,200,1"}, "bbox"), ({"bbox": "nan,0,1,1"}, "bbox"), ({"bbox": "0,0,1,1", "intersects": json.dumps(
        {"type": "Point", "coordinates": [0, 0]})}, "bbox"),
    ({"intersects": "{nope"}, "intersects"), ({"intersects": '{"type": "Circle"}'}, "intersects"),
    ({"intersects": '{"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1]]]}'}, "intersects"),
    ({"limit": "0"}, "limit"), ({"limit": "-3"}, "limit"), ({"limit": "ten"}, "limit"),
    ({"filter": "eo:cloud_cover <<< 3"}, "filter"), ({"filter": "{", "filter-lang": "cql2-json"}, "filter"),
    ({"filter": "a = 1", "filter-lang": "cql3"}, "filter-lang"),
    ({"filter": "a = 1", "filter-crs": "EPSG:3857"}, "filter-crs"),
    ({"sortby": "-"}, "sortby"), ({"sortby": "bad field!"}, "sortby"),
    ({"fields": "a b"}, "fields"), ({"query": "[1]"}, "query"), ({"query": '{"a": {"like": 1}}'}, "query"),
])
def test_bad_get_parameters(params, parameter):
    with pytest.raises(BadParameter) as err:
        parse_get(params)
    assert err.value.parameter == parameter


@pytest.mark.parametrize("body, parameter", [
    ([1, 2], "body"), ({"bbox": [0, 0, 1]}, "bbox"), ({"bbox": "x"}, "bbox"), ({"limit": True}, "limit"),
    ({"limit": 1.5}, "limit"), ({"collections": [1]}, "collections"), ({"ids": {"a": 1}}, "ids"),
    ({"datetime": 5}, "datetime"), ({"filter": {"op": "=", "args": 3}}, "filter"),
    ({"sortby": [{"field": "x", "direction": "up"}]}, "sortby"), ({"sortby": [{}]}, "sortby"),
    ({"fields": {"include": "id"}}, "fields"), ({"token": 5}, "token"),
    ({"intersects": {"type": "Point", "coordinates": [0, "x"]}}, "intersects"),
])
def test_bad_post_bodies(body, parameter):
    with pytest.raises(BadParameter) as err:
        parse_post(body)
    assert err.value.parameter == parameter


def test_get_and_post_spellings_give_the_same_query():
    get = parse_get({"collections": "a|x,y", "bbox": "16,45,23,49", "datetime": "2026-01-01T00:00:00Z/..",
                     "limit": "5", "filter": "eo:cloud_cover < 10", "sortby": "-properties.datetime,+id",
                     "fields": "id,-assets", "query": '{"platform": {"eq": "sat-1"}}'})
    post = parse_post({"collections": ["a|x", "y"], "bbox": [16, 45, 23, 49], "datetime": "2026-01-01T00:00:00Z/..",
                       "limit": 5, "filter": {"op": "<", "args": [{"property": "eo:cloud_cover"}, 10]},
                       "sortby": [{"field": "properties.datetime", "direction": "desc"},
                                  {"field": "id", "direction": "asc"}],
                       "fields": {"include": ["id"], "exclude": ["assets"]},
                       "query": {"platform": {"eq": "sat-1"}}})
    assert get.fingerprint() == post.fingerprint()
    assert get.limit == post.limit == 5
    assert get.collections == ("a|x", "y")


def test_limit_is_capped_and_fingerprint_ignores_limit_and_token():
    q = parse_get({"limit": str(MAX_LIMIT * 3)})
    assert q.limit == MAX_LIMIT
    assert parse_get({"limit": "3", "token": "x"}).fingerprint() == parse_get({"limit": "9"}).fingerprint()
    assert parse_get({"bbox": "0,0,1,1"}).fingerprint() != parse_get({"bbox": "0,0,1,2"}).fingerprint()


def test_lenient_post_strings_for_lists():
    # stac-api-validator's sort check posts collections as a string; we read it as one id.
    assert parse_post({"collections": "m|c"}).collections == ("m|c",)


def test_cql2_text_becomes_json():
    q = parse_get({"filter": "id = 'a' AND eo:cloud_cover BETWEEN 1 AND 5"})
    assert q.filter["op"] == "and"
