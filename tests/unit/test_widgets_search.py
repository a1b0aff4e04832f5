"""The scriptable search API's pure parts: request bodies, rows, sorting, selection, conversions."""

from __future__ import annotations

import datetime as dt

import pytest

from eolab.errors import EolabError
from eolab.search import (
    CollectionInfo,
    Collections,
    cloud_filter,
    datetime_interval,
    human_bytes,
    item_key,
    item_row,
    search_body,
    select,
    sort_rows,
    to_geodataframe,
    to_item_collection,
)


def item(provider, item_id, stamp, cloud=None, collection="sentinel-2-l2a"):
    props = {"datetime": stamp}
    if cloud is not None:
        props["eo:cloud_cover"] = cloud
    return {"type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": f"{provider}|{collection}",
            "bbox": [20.6, 47.6, 20.7, 47.7], "properties": props, "links": [], "assets": {},
            "geometry": {"type": "Polygon", "coordinates": [[[20.6, 47.6], [20.7, 47.6], [20.7, 47.7], [20.6, 47.6]]]}}


ITEMS = [item("pannonia", "a", "2026-04-01T09:00:00Z", 12.5), item("danube", "b", "2026-08-01T09:00:00Z", 3.0),
         item("tisza", "c", "2026-05-01T05:00:00Z", collection="sentinel-1-grd"),
         item("danube", "a", "2026-07-01T09:00:00Z", 40.0)]


def test_datetime_interval_counts_whole_days():
    assert datetime_interval((dt.date(2026, 4, 1), dt.date(2026, 6, 30))) == "2026-04-01T00:00:00Z/2026-06-30T23:59:59Z"
    assert datetime_interval(("2026-04-01", None)) == "2026-04-01T00:00:00Z/.."
    assert datetime_interval("2026-04-01/2026-04-02") == "2026-04-01T00:00:00Z/2026-04-02T23:59:59Z"
    assert datetime_interval(dt.date(2026, 4, 1)) == "2026-04-01T00:00:00Z/2026-04-01T23:59:59Z"
    cet = dt.timezone(dt.timedelta(hours=1))
    assert datetime_interval((dt.datetime(2026, 4, 1, 1, 0, tzinfo=cet), None)) == "2026-04-01T00:00:00Z/.."
    assert datetime_interval(None) is None
    with pytest.raises(EolabError, match=r"starts \(2026-05-01\) after it ends \(2026-04-01\)"):
        datetime_interval(("2026-05-01", "2026-04-01"))
    with pytest.raises(EolabError, match="is not a date"):
        datetime_interval(("April", None))


def test_cloud_filter_lets_radar_through_and_combines_free_text():
    assert cloud_filter(None) is None and cloud_filter(100) is None
    assert cloud_filter(30) == "(eo:cloud_cover <= 30 OR eo:cloud_cover IS NULL)"
    assert cloud_filter(12.5, "platform = 'sentinel-2a'") == (
        "(eo:cloud_cover <= 12.5 OR eo:cloud_cover IS NULL) AND (platform = 'sentinel-2a')")
    assert cloud_filter(None, "  ") is None
    with pytest.raises(EolabError, match="max_cloud=120 is not a percentage"):
        cloud_filter(120)


def test_search_body():
    body = search_body("sentinel-2-l2a", bbox=(20.6, 47.6, 20.7, 47.7), datetime=("2026-04-01", "2026-04-30"),
                       max_cloud=20, limit=5, sortby="-properties.datetime,+id")
    assert body == {"limit": 5, "collections": ["sentinel-2-l2a"], "bbox": [20.6, 47.6, 20.7, 47.7],
                    "datetime": "2026-04-01T00:00:00Z/2026-04-30T23:59:59Z",
                    "filter": "(eo:cloud_cover <= 20 OR eo:cloud_cover IS NULL)", "filter-lang": "cql2-text",
                    "sortby": [{"field": "properties.datetime", "direction": "desc"}, {"field": "id", "direction": "asc"}]}
    from shapely.geometry import box

    assert search_body(intersects=box(0, 0, 1, 1), sortby=None)["intersects"]["type"] == "Polygon"
    for kwargs, message in [({"bbox": (1, 1, 0, 0)}, "is not west, south, east, north"),
                            ({"limit": 0}, "limit=0 is out of range"),
                            ({"bbox": (0, 0, 1, 1), "intersects": box(0, 0, 1, 1)}, "either bbox or intersects")]:
        with pytest.raises(EolabError, match=message):
            search_body(**kwargs)


def test_rows_split_provider_and_keep_radar_cloud_empty():
    row = item_row(ITEMS[0])
    assert row == {"provider": "pannonia", "collection": "sentinel-2-l2a", "datetime": "2026-04-01T09:00:00Z",
                   "cloud_cover": 12.5, "id": "a", "key": "pannonia|sentinel-2-l2a/a"}
    assert item_row(ITEMS[2])["cloud_cover"] is None


def test_sort_rows_missing_values_last_in_both_directions():
    rows = [item_row(i) for i in ITEMS]
    assert [r["cloud_cover"] for r in sort_rows(rows, "cloud_cover")] == [3.0, 12.5, 40.0, None]
    assert [r["cloud_cover"] for r in sort_rows(rows, "cloud_cover", descending=True)] == [40.0, 12.5, 3.0, None]
    assert [r["provider"] for r in sort_rows(rows, "provider")] == ["danube", "danube", "pannonia", "tisza"]
    assert [r["id"] for r in sort_rows(rows, "datetime")] == ["a", "c", "a", "b"]
    with pytest.raises(EolabError, match="cannot sort by 'size'"):
        sort_rows(rows, "size")


def test_select_by_key_or_unique_id():
    chosen = select(ITEMS, ["b", "pannonia|sentinel-2-l2a/a"])
    assert [(i.id, i.collection_id) for i in chosen] == [("b", "danube|sentinel-2-l2a"), ("a", "pannonia|sentinel-2-l2a")]
    with pytest.raises(EolabError, match="item id 'a' exists at several providers"):
        select(ITEMS, ["a"])
    with pytest.raises(EolabError, match="not among the results: zzz"):
        select(ITEMS, ["zzz"])


def test_item_collection_and_geodataframe():
    collection = to_item_collection(ITEMS)
    assert [i.id for i in collection] == ["a", "b", "c", "a"]
    frame = to_geodataframe(ITEMS)
    assert list(frame.columns) == ["provider", "collection", "datetime", "cloud_cover", "id", "item", "geometry"]
    assert frame.crs.to_epsg() == 4326 and len(frame) == 4
    assert str(frame.datetime.dtype).startswith("datetime64") and frame.cloud_cover.isna().sum() == 1
    assert frame.geometry.iloc[0].bounds == (20.6, 47.6, 20.7, 47.7)
    assert to_geodataframe(collection).id.tolist() == ["a", "b", "c", "a"]
    assert item_key(frame.item.iloc[3]) == "danube|sentinel-2-l2a/a"


def test_collections_group_by_provider():
    bodies = [{"id": "danube|sentinel-2-l2a", "title": "S2", "providers": [{"name": "ESA"}],
               "extent": {"spatial": {"bbox": [[20.6, 47.6, 20.7, 47.7]]},
                          "temporal": {"interval": [["2026-07-04T09:41:30Z", None]]}}},
              {"id": "pannonia|sentinel-2-l2a", "extent": {}}, {"id": "danube|sentinel-1-grd"}]
    listing = Collections([CollectionInfo.from_stac(b) for b in bodies], missing=["cdse"])
    groups = listing.by_provider()
    assert list(groups) == ["danube", "pannonia"]
    assert [c.collection for c in groups["danube"]] == ["sentinel-1-grd", "sentinel-2-l2a"]
    s2 = groups["danube"][1]
    assert s2.extent_text == "2026-07-04 – ..; 20.60, 47.60, 20.70, 47.70" and s2.data_providers == ("ESA",)
    assert groups["pannonia"][0].title == "sentinel-2-l2a" and groups["pannonia"][0].bbox is None


def test_human_bytes():
    assert human_bytes(512) == "512 B" and human_bytes(1_500_000) == "1.5 MB" and human_bytes(2.5e12) == "2.5 TB"


def test_catalogue_is_one_url_and_a_list_gets_a_clear_error(monkeypatch):
    from eolab.search import Catalogue

    monkeypatch.setenv("EOLAB_CATALOG_URL", "http://127.0.0.1:9/")
    assert Catalogue().url == "http://127.0.0.1:9"  # no request is made until a search
    assert Catalogue("http://127.0.0.1:8/stac/").url == "http://127.0.0.1:8/stac"
    with pytest.raises(EolabError, match="one STAC API URL, not list") as err:
        Catalogue(["http://127.0.0.1:8711", "http://127.0.0.1:8712"])
    assert "broker" in err.value.hint
