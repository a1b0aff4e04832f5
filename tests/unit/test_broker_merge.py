"""Property tests of the merge and paging core (pure: no network, no clock).

Members are simulated as sorted item lists cut into pages of arbitrary sizes (short pages, empty
pages with a next link, pages longer than asked); the broker side is the real Merger plus real
signed tokens. Whatever the interleaving, walking every broker page yields each item exactly
once, in sort order; a member failing mid-walk is named on every later page.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eolab.catalog._merge import Cursor, MemberPage, Merger, sort_key_function
from eolab.catalog._paging import TokenState, compact_next, decode_token, encode_token, expand_next
from eolab.catalog._query import DEFAULT_SORTBY, BadParameter

KEY = sort_key_function(DEFAULT_SORTBY)
SECRET = b"test-secret"
FP = "fingerprint"


def make_items(member: str, stamps: list[int]) -> list[dict]:
    items = [{"id": f"{member}-{i:03d}", "collection": "c",
              "properties": {"datetime": f"2026-01-{1 + s // 24:02d}T{s % 24:02d}:00:00Z", "v": i % 5}}
             for i, s in enumerate(stamps)]
    return sorted(items, key=KEY)


class SimMember:
    """Pages by (offset, page number); page sizes cycle through ``sizes`` (0 allowed, > limit allowed)."""

    def __init__(self, items: list[dict], sizes: list[int], fail_at: int | None = None):
        self.items, self.sizes, self.fail_at, self.fetches = items, sizes, fail_at, 0

    def page(self, ref) -> MemberPage:
        self.fetches += 1
        if self.fail_at is not None and self.fetches >= self.fail_at:
            raise RuntimeError("member failed")
        offset, number = (0, 0) if ref is None else (ref["o"], ref["p"])
        size = self.sizes[number % len(self.sizes)]
        items = self.items[offset: offset + size]
        more = offset + size < len(self.items)
        return MemberPage(items=items, next_ref={"o": offset + size, "p": number + 1} if more else None)


def walk(members: dict[str, SimMember], limits: list[int], early: list[bool], accept=None):
    """Drive broker pages to the end; returns (pages of (member, item)), missing per page."""
    token = None
    pages, missing_per_page = [], []
    for page_no in range(10_000):
        if token is None and page_no > 0:
            break
        if token is None:
            cursors, missing = [Cursor(m) for m in members], {}
        else:
            state = decode_token(token, SECRET, FP)
            cursors = [Cursor(m, ref=c["r"], skip=c["s"]) for m, c in state.cursors.items()]
            missing = dict(state.missing)
        limit = limits[page_no % len(limits)]
        merger = Merger(cursors=cursors, key=KEY, limit=limit, **({"accept": accept} if accept else {}))
        first = True
        while True:
            merger.fill()
            wanted = merger.wanted()
            if merger.full or merger.finished or not wanted:
                break
            if not first and (early[page_no % len(early)] or merger.stalled()):
                break
            for cursor in wanted:
                try:
                    merger.load(cursor.member, members[cursor.member].page(cursor.ref))
                except RuntimeError:
                    merger.fail(cursor.member, "failed")
                    missing[cursor.member] = "failed"
            first = False
        pages.append(merger.emitted)
        missing_per_page.append(sorted(missing))
        live = merger.states()
        token = encode_token(TokenState(FP, live, missing), SECRET) if live else None
    else:
        pytest.fail("walk did not end")
    return pages, missing_per_page


member_strategy = st.tuples(
    st.lists(st.integers(0, 40), max_size=35),             # datetimes (hours), with ties
    st.lists(st.integers(0, 13), min_size=1, max_size=5),   # page sizes; 0 = empty page with next link
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(member_strategy, min_size=1, max_size=4), st.lists(st.integers(1, 12), min_size=1, max_size=4),
       st.lists(st.booleans(), min_size=1, max_size=4))
def test_every_item_exactly_once_in_order(specs, limits, early):
    if all(max(sizes) == 0 for _, sizes in specs):
        specs = [(stamps, sizes + [1]) for stamps, sizes in specs]
    members = {}
    for i, (stamps, sizes) in enumerate(specs):
        sizes = sizes if max(sizes) > 0 else sizes + [3]
        members[f"m{i}"] = SimMember(make_items(f"m{i}", stamps), sizes)
    pages, missing = walk(members, limits, early)
    emitted = [item for page in pages for _, item in page]
    ids = [item["id"] for item in emitted]
    expected = sorted(i["id"] for m in members.values() for i in m.items)
    assert sorted(ids) == expected                       # each exactly once
    keys = [KEY(item) for item in emitted]
    assert all(a <= b for a, b in zip(keys, keys[1:]))   # in sort order
    assert all(len(page) <= limits[n % len(limits)] for n, page in enumerate(pages))
    assert all(m == [] for m in missing)


@settings(max_examples=200, deadline=None)
@given(st.lists(member_strategy, min_size=2, max_size=4), st.integers(1, 10), st.integers(1, 6),
       st.lists(st.integers(1, 12), min_size=1, max_size=3))
def test_member_failing_mid_walk_is_named_and_others_complete(specs, fail_member_seed, fail_at, limits):
    members = {}
    for i, (stamps, sizes) in enumerate(specs):
        sizes = sizes if max(sizes) > 0 else sizes + [2]
        members[f"m{i}"] = SimMember(make_items(f"m{i}", stamps), sizes)
    bad = f"m{fail_member_seed % len(members)}"
    members[bad].fail_at = fail_at
    pages, missing = walk(members, limits, [False])
    ids = [item["id"] for page in pages for _, item in page]
    assert len(ids) == len(set(ids))                      # nothing repeated
    healthy = sorted(i["id"] for name, m in members.items() if name != bad for i in m.items)
    assert sorted(i for i in ids if not i.startswith(bad + "-")) == healthy
    if members[bad].fetches >= fail_at:                   # it did fail: named from then on, on every page
        first = next(n for n, m in enumerate(missing) if bad in m)
        assert all(bad in m for m in missing[first:])


@settings(max_examples=100, deadline=None)
@given(st.lists(member_strategy, min_size=1, max_size=3), st.integers(1, 9))
def test_broker_side_filter_keeps_exactly_the_matching_items(specs, limit):
    members = {f"m{i}": SimMember(make_items(f"m{i}", stamps), sizes if max(sizes) else sizes + [4])
               for i, (stamps, sizes) in enumerate(specs)}

    def accept(member, item):
        return item["properties"]["v"] in (1, 3)

    pages, _ = walk(members, [limit], [False], accept=accept)
    ids = sorted(item["id"] for page in pages for _, item in page)
    assert ids == sorted(i["id"] for m in members.values() for i in m.items if i["properties"]["v"] in (1, 3))


def test_ties_across_members_follow_member_order():
    # the same item id and time at two providers (one collection mirrored): member order decides
    a, b = make_items("x", [5, 5]), make_items("x", [5])
    merger = Merger([Cursor("b"), Cursor("a")], KEY, limit=10)
    merger.load("a", MemberPage(a))
    merger.load("b", MemberPage(b))
    merger.fill()
    assert [(m, i["id"]) for m, i in merger.emitted] == [("a", "x-001"), ("b", "x-000"), ("a", "x-000")]


def test_member_ignoring_limit_is_read_across_broker_pages():
    items = make_items("a", list(range(30)))
    merger = Merger([Cursor("a")], KEY, limit=4)
    merger.load("a", MemberPage(items[:25], next_ref={"o": 25, "p": 1}))
    merger.fill()
    assert merger.states() == {"a": {"r": None, "s": 4}}


# ---------------------------------------------------------------------------- tokens

def test_token_round_trip_and_rejections():
    state = TokenState("fp1", {"a": {"r": {"h": "http://a/search", "q": {"token": "x"}}, "s": 3}},
                       missing={"b": "timeout"}, matched={"a": 10}, member_limit=7)
    token = encode_token(state, SECRET)
    back = decode_token(token, SECRET, "fp1")
    assert back.cursors == state.cursors and back.missing == state.missing and back.member_limit == 7
    for bad_token, key, fp in [(token, SECRET, "other"), (token, b"other-key", "fp1"),
                               (token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], SECRET, "fp1"),
                               ("garbage", SECRET, "fp1"), ("a.b", SECRET, "fp1")]:
        with pytest.raises(BadParameter) as err:
            decode_token(bad_token, key, fp)
        assert err.value.parameter == "token"


@given(st.dictionaries(st.sampled_from(["collections", "limit", "bbox", "sortby", "token", "filter"]),
                       st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3)),
                       max_size=6),
       st.dictionaries(st.sampled_from(["limit", "token", "bbox", "extra"]),
                       st.one_of(st.integers(), st.text(max_size=5)), max_size=4),
       st.booleans())
def test_compact_next_links_expand_to_the_original(first, changes, merge):
    request = first
    body = {k: v for k, v in {**request, **changes}.items()}
    post_link = {"rel": "next", "href": "http://m/search", "method": "POST", "body": body}
    method, href, expanded = expand_next(compact_next(post_link, request, "POST"), request, "POST")
    assert (method, href, expanded) == ("POST", "http://m/search", body)
    params = {k: str(v) for k, v in request.items()}
    from urllib.parse import urlencode
    query = {**params, **{k: str(v) for k, v in changes.items()}}
    get_link = {"rel": "next", "href": "http://m/search?" + urlencode(query)}
    method, href, expanded = expand_next(compact_next(get_link, params, "GET"), params, "GET")
    assert (method, href, expanded) == ("GET", "http://m/search", query)
