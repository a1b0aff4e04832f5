"""The broker (real uvicorn process) over the real pgstac members of the demo stack."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack_broker(catalog_stack):
    """The broker that `eolab catalog up` starts next to the members."""
    return catalog_stack.broker_url, catalog_stack


def page_all(url: str, **params) -> list[dict]:
    items = []
    with httpx.Client(timeout=30) as client:
        response = client.get(url, params=params)
        while True:
            assert response.status_code == 200, response.text
            body = response.json()
            items += body["features"]
            nxt = [ln for ln in body["links"] if ln["rel"] == "next"]
            if not nxt:
                return items
            response = client.get(nxt[0]["href"])


def test_collections_are_prefixed_with_extents(stack_broker):
    url, config = stack_broker
    body = httpx.get(f"{url}/collections").json()
    ids = sorted(c["id"] for c in body["collections"])
    assert ids == ["danube|sentinel-2-l2a", "pannonia|cop-dem-glo-30", "pannonia|sentinel-2-l2a", "tisza|sentinel-1-grd"]
    assert body["federation:missing"] == []
    for c in body["collections"]:
        assert c["extent"]["spatial"]["bbox"] and c["extent"]["temporal"]["interval"]
        assert all(not ln["href"].startswith(config.member_url(config.demo_members[0])) for ln in c["links"])


def test_walk_equals_the_members_paged_directly(stack_broker):
    url, config = stack_broker
    direct = set()
    for member in config.demo_members:
        for item in page_all(f"{config.member_url(member)}/search", limit=50):
            direct.add((f"{member.id}|{item['collection']}", item["id"]))
    through = page_all(f"{url}/search", limit=7)
    found = [(i["collection"], i["id"]) for i in through]
    assert len(found) == len(set(found)) and set(found) == direct
    stamps = [i["properties"]["datetime"] for i in through]
    assert stamps == sorted(stamps, reverse=True)


def test_unprefixed_collection_reaches_both_sentinel2_members(stack_broker):
    url, _ = stack_broker
    items = page_all(f"{url}/search", collections="sentinel-2-l2a", limit=20)
    assert {i["collection"] for i in items} == {"pannonia|sentinel-2-l2a", "danube|sentinel-2-l2a"}
    summer = page_all(f"{url}/search", collections="sentinel-2-l2a", datetime="2026-08-01T00:00:00Z/..", limit=20)
    assert summer and {i["collection"] for i in summer} == {"danube|sentinel-2-l2a"}


def test_filter_sort_fields_query_forwarded(stack_broker):
    url, _ = stack_broker
    with httpx.Client(timeout=30) as client:
        body = client.post(f"{url}/search", json={
            "collections": ["pannonia|sentinel-2-l2a", "danube|sentinel-2-l2a"], "limit": 30,
            "filter": {"op": "<=", "args": [{"property": "eo:cloud_cover"}, 40]},
            "sortby": [{"field": "properties.eo:cloud_cover", "direction": "asc"}],
            "fields": {"include": ["properties.eo:cloud_cover"], "exclude": ["assets"]}}).json()
        clouds = [f["properties"]["eo:cloud_cover"] for f in body["features"]]
        assert clouds and clouds == sorted(clouds) and max(clouds) <= 40
        assert all("assets" not in f for f in body["features"])
        text = client.get(f"{url}/search", params={"filter": "eo:cloud_cover <= 40", "limit": 200,
                                                   "collections": "sentinel-2-l2a"}).json()
        assert all(f["properties"]["eo:cloud_cover"] <= 40 for f in text["features"])
        query = client.post(f"{url}/search", json={"query": {"eo:cloud_cover": {"lte": 40}}, "limit": 200,
                                                    "collections": ["sentinel-2-l2a"]}).json()
        assert {f["id"] for f in query["features"]} == {f["id"] for f in text["features"]}


def test_number_matched_from_the_counting_member(stack_broker):
    url, _ = stack_broker
    with httpx.Client(timeout=30) as client:
        tisza = client.get(f"{url}/search", params={"collections": "tisza|sentinel-1-grd", "limit": 2}).json()
        everyone = client.get(f"{url}/search", params={"limit": 2}).json()
    assert isinstance(tisza.get("numberMatched"), int) and tisza["numberMatched"] >= 2
    assert "numberMatched" not in everyone  # pannonia and danube do not count


def test_pystac_client_against_the_stack(stack_broker):
    from pystac_client import Client

    url, _ = stack_broker
    client = Client.open(url)
    items = list(client.search(collections=["tisza|sentinel-1-grd"], limit=5).items())
    assert items and all(i.collection_id == "tisza|sentinel-1-grd" for i in items)
    assert client.search(collections=["tisza|sentinel-1-grd"]).matched() == len(items)
    collection = client.get_collection("danube|sentinel-2-l2a")
    assert collection.id == "danube|sentinel-2-l2a"
    first = items[0]
    assert all(a.href.startswith("http://") for a in first.assets.values())


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_numeric_sort_across_members_is_exact(stack_broker, direction):
    """pgstac members sort eo:cloud_cover as numbers (`catalog up` registers the queryable), so the
    federated walk is the members' items, computed independently, in numeric order."""
    url, config = stack_broker
    s2 = [m for m in config.demo_members if "sentinel-2-l2a" in m.collections]
    direct = []
    for member in s2:
        own = page_all(f"{config.member_url(member)}/search", limit=50, collections="sentinel-2-l2a",
                       sortby=("-" if direction == "desc" else "+") + "properties.eo:cloud_cover")
        clouds = [i["properties"]["eo:cloud_cover"] for i in own]
        assert clouds == sorted(clouds, reverse=direction == "desc")  # the member itself sorts numerically
        direct += [(f"{member.id}|sentinel-2-l2a", i["id"], i["properties"]["eo:cloud_cover"]) for i in own]
    sign = "-" if direction == "desc" else "+"
    through = page_all(f"{url}/search", limit=9, collections="sentinel-2-l2a", sortby=f"{sign}properties.eo:cloud_cover")
    got = [(i["collection"], i["id"], i["properties"]["eo:cloud_cover"]) for i in through]
    assert sorted(got) == sorted(direct)
    want = sorted((c for *_, c in direct), reverse=direction == "desc")
    assert [c for *_, c in got] == want


def test_antimeridian_bbox_is_exact(stack_broker):
    """A bbox crossing the antimeridian (west > east) is the two boxes either side of it: nothing in
    170..-170; going the long way round the demo area, exactly the items that meet one of the two
    halves, computed from the members' own items."""
    url, config = stack_broker
    assert page_all(f"{url}/search", bbox="170,50,-170,60", limit=20) == []
    every = []
    for member in config.demo_members:
        every += [(f"{member.id}|{i['collection']}", i["id"], i["bbox"])
                  for i in page_all(f"{config.member_url(member)}/search", limit=50)]
    # The easternmost tiles' west edge and the westernmost tiles' east edge: west > east, a box that
    # crosses the antimeridian and holds the tiles of both sides of the area, not those in between.
    west, east = max(b[0] for *_, b in every) + 0.005, min(b[2] for *_, b in every) - 0.005
    assert west > east
    want = {(c, i) for c, i, b in every if b[2] >= west or b[0] <= east}
    assert 0 < len(want) < len(every)
    got = [(i["collection"], i["id"]) for i in page_all(f"{url}/search", bbox=f"{west},-90,{east},90", limit=11)]
    assert len(got) == len(set(got)) and set(got) == want


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_string_sort_across_members_is_code_point_order(stack_broker, direction):
    """The broker merges strings in code point order (the members' databases use C.UTF-8, which
    orders the same way): the walk is every member's items, computed independently from the members
    paged without a sort, in Python's string order."""
    url, config = stack_broker
    direct = []
    for member in config.demo_members:
        direct += [(f"{member.id}|{i['collection']}", i["id"])
                   for i in page_all(f"{config.member_url(member)}/search", limit=50)]
    sign = "-" if direction == "desc" else "+"
    through = page_all(f"{url}/search", limit=13, sortby=f"{sign}id")
    got = [(i["collection"], i["id"]) for i in through]
    assert sorted(got) == sorted(direct)
    assert [i for _, i in got] == sorted((i for _, i in direct), reverse=direction == "desc")


def test_member_databases_order_strings_by_code_point(stack_broker):
    """What makes the string merge right on this stack: every member's database orders strings as
    the broker does (case, punctuation and accents by code point, not linguistically)."""
    import psycopg

    from eolab.stack.postgres import Cluster

    _, config = stack_broker
    words = ["north", "North", "_north", "south-2", "South", "south1", "Éast", "east", "EAST-3", "ärger", "arbor"]
    cluster = Cluster(config.run_dir, config.postgres.port)
    for member in config.demo_members:
        with psycopg.connect(cluster.dsn(member.database)) as conn:
            got = [r[0] for r in conn.execute("SELECT w FROM unnest(%s::text[]) AS w ORDER BY w", (words,))]
        assert got == sorted(words), member.id


def test_a_connection_outlives_the_longest_retry_after(stack_broker):
    """A client told to come back after a Retry-After finds its kept-alive connection still open:
    with uvicorn's default 5 s keep-alive, a client waiting 5 s reused it just as the broker closed it
    (a read error that lost 3 of 200 concurrent walks). One socket, two requests 6 s apart."""
    import socket
    import time
    from urllib.parse import urlsplit

    url, _ = stack_broker
    parts = urlsplit(url)
    request = (f"GET /search?limit=1 HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: application/json\r\n\r\n").encode()

    def exchange(sock) -> bytes:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, "the broker closed the idle connection"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk, "the broker closed the connection mid-answer"
            body += chunk
        return head.split(b"\r\n")[0]

    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        assert exchange(sock).endswith(b"200 OK")
        time.sleep(6)  # past uvicorn's default keep-alive of 5 s
        assert exchange(sock).endswith(b"200 OK")  # same socket: not closed while idle


@pytest.mark.parametrize("params,field", [
    ({"filter": "eo:cloud_cover < 'abc'"}, "eo:cloud_cover"),
    ({"filter": "platform = 5"}, "platform"),
    ({"filter": "eo:cloud_cover div 0 > 1"}, "divides by zero"),
    ({"query": '{"eo:cloud_cover": {"in": ["a"]}}'}, "eo:cloud_cover"),
    ({"sortby": "properties"}, "properties"),
])
def test_a_mistyped_search_is_a_400_not_every_member_failing(stack_broker, params, field):
    """pgstac members answer these with HTTP 500 (and the broker had 200 with every member missing);
    the broker refuses them naming the field, and the same search typed right still finds items."""
    url, _ = stack_broker
    with httpx.Client(timeout=30) as client:
        refused = client.get(f"{url}/search", params={"collections": "sentinel-2-l2a", **params})
        assert refused.status_code == 400, refused.text
        assert field in refused.json()["description"]
        fixed = {"filter": "eo:cloud_cover < 101", "query": '{"eo:cloud_cover": {"in": [0, 5, 12]}}',
                 "sortby": "properties.eo:cloud_cover"}
        key = next(iter(params))
        right = client.get(f"{url}/search", params={"collections": "sentinel-2-l2a", key: fixed[key]}).json()
        assert right["eolab:member_errors"] == {} and right["features"]
        health = client.get(f"{url}/_health").json()["members"]
        assert all(m["healthy"] for m in health.values())


def test_an_unknown_field_of_the_wrong_type_is_said_not_answered_empty(stack_broker):
    """grid:code holds text in the items, but no schema tells the broker so: pgstac members answer
    `grid:code = 5` with HTTP 500. With every member failing, the broker says so (502, each member
    and the likely cause named) instead of a 200 without features; typed right, the search works."""
    url, _ = stack_broker
    with httpx.Client(timeout=60) as client:
        wrong = client.get(f"{url}/search", params={"collections": "sentinel-2-l2a", "filter": "grid:code = 5"})
        assert wrong.status_code == 502, wrong.text
        body = wrong.json()
        assert body["code"] == "EveryMemberFailed" and "another type" in body["description"]
        assert set(body["federation:missing"]) == {"pannonia", "danube"}
        code = client.get(f"{url}/search", params={"collections": "sentinel-2-l2a", "limit": 1}).json()[
            "features"][0]["properties"]["grid:code"]
        right = client.get(f"{url}/search", params={"collections": "sentinel-2-l2a",
                                                    "filter": f"grid:code = '{code}'"})
        assert right.status_code == 200 and right.json()["features"]
        assert all(m["healthy"] for m in client.get(f"{url}/_health").json()["members"].values())
