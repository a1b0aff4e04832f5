"""K-way merge of member result pages into one broker page. Pure: no I/O, no clock.

Each member is a cursor ``(ref, skip)``: ``ref`` says how to fetch the member page being read
(``None``: the first page, else the member's own ``next`` link in compact form) and ``skip`` how
many items of that page the broker has already emitted. A broker page is built by repeatedly
emitting the smallest head (by the sort key) among all live members; when a member's page is used
up the merger asks the caller for that member's next page before it emits anything else, so no
item can be overtaken. The caller may instead end the page early: the cursors it saves are exact,
so walking every page yields every item exactly once, whatever the members' page sizes (short
pages, pages longer than asked, empty pages with a ``next`` link).

Strings are ordered by Unicode code point. Members are not trusted to be right: each cursor
remembers the sort key of the last item it emitted (and the ids emitted with that key), also across pages through the token. An item a
member sends again is dropped; a member whose items come back out of order for the requested
sort leaves the walk with that reason (merging its items would put them in the wrong places).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_EMPTY_PAGES = 8  # consecutive empty member pages followed in one broker request
MAX_TIE_IDS = 64     # ids remembered per cursor among items sharing the last emitted sort key

_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?$")


# --------------------------------------------------------------------------- sort keys

def field_value(item: dict, name: str) -> Any:
    """The value an item has for a sort/filter field name (``properties.`` prefix optional)."""
    if name.startswith("properties."):
        props = item.get("properties") or {}
        name = name[len("properties."):]
        value = props.get(name)
    elif name in ("id", "collection", "geometry", "bbox"):
        value = item.get(name)
    else:
        props = item.get("properties") or {}
        value = props.get(name) if name in props else item.get(name)
    if value is None and name == "datetime":
        value = (item.get("properties") or {}).get("start_datetime")
    return value


def _rank(value: Any) -> tuple:
    """A totally ordered stand-in for a JSON value: null < bool < number/time < string < other."""
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, (int, float)):
        return (2, float(value))
    if isinstance(value, str):
        if _STAMP.match(value):
            try:
                stamp = dt.datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
            except ValueError:
                return (3, value)
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=dt.timezone.utc)
            return (2, stamp.timestamp())
        return (3, value)
    return (4, repr(value))


@functools.total_ordering
class _Desc:
    __slots__ = ("key",)

    def __init__(self, key: tuple):
        self.key = key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.key == other.key

    def __lt__(self, other: "_Desc") -> bool:
        return other.key < self.key


def sort_key_function(sortby: tuple[tuple[str, str], ...]) -> Callable[[dict], tuple]:
    """item → key such that the wanted order is ascending key order."""

    def key(item: dict) -> tuple:
        parts = []
        for name, direction in sortby:
            rank = _rank(field_value(item, name))
            parts.append(_Desc(rank) if direction == "desc" else rank)
        return tuple(parts)

    return key


# --------------------------------------------------------------------------- member pages and cursors

@dataclass
class MemberPage:
    """One page as a member returned it (items untouched, in member order)."""

    items: list[dict]
    next_ref: Any = None          # compact form of the member's 'next' link, None at the end
    number_matched: int | None = None


def order_key(key: tuple) -> tuple:
    """What the order check compares: the whole sort key. The broker's order for strings is
    Unicode code point order (Python's, and PostgreSQL's ``C``/``C.UTF-8`` collations, which the
    demo stack's databases use); a member whose database orders strings by another collation
    (e.g. ``en_US``: case and punctuation ignored first) is found out of order like one sorting
    numbers as text, and reported instead of merged into the wrong places."""
    return key


def sort_stub(item: dict, fields: tuple[str, ...]) -> dict:
    """The smallest item with the same sort key as ``item`` for ``fields`` (kept in paging tokens)."""
    props = {}
    stub: dict[str, Any] = {}
    for name in fields:
        value = field_value(item, name)
        if name in ("id", "collection"):
            stub[name] = value
        else:
            props[name[len("properties."):] if name.startswith("properties.") else name] = value
    stub["properties"] = props
    return stub


def item_ident(item: dict) -> str:
    collection = item.get("collection")
    return f"{collection if isinstance(collection, str) else ''}\x1f{item.get('id')}"


@dataclass
class Cursor:
    member: str
    ref: Any = None               # how to fetch the page being read (None: first page)
    skip: int = 0                 # items of that page already consumed
    waits: int = 0                # broker pages in a row that ended waiting for this member
    last: dict | None = None      # sort stub of the last item emitted from this member
    ties: list[str] = field(default_factory=list)  # idents emitted with that same sort key
    # run-time state, not saved in tokens
    page: MemberPage | None = None
    pos: int = 0
    done: bool = False
    empty_pages: int = 0
    last_key: tuple | None = None

    def state(self) -> dict:
        """What the paging token stores for this cursor."""
        if self.page is not None and self.pos >= len(self.page.items) and self.page.next_ref is not None:
            out = {"r": self.page.next_ref, "s": 0}
        else:
            out = {"r": self.ref, "s": self.pos if self.page is not None else self.skip}
        if self.waits:
            out["w"] = self.waits
        if self.last is not None:
            out["p"] = self.last
            out["t"] = self.ties[-MAX_TIE_IDS:]
        return out

    @classmethod
    def from_state(cls, member: str, saved: dict) -> "Cursor":
        last = saved.get("p")
        ties = saved.get("t")
        return cls(member=member, ref=saved.get("r"), skip=int(saved.get("s") or 0), waits=int(saved.get("w") or 0),
                   last=last if isinstance(last, dict) else None,
                   ties=[t for t in ties if isinstance(t, str)] if isinstance(ties, list) else [])


@dataclass
class Merger:
    """Builds one broker page. The caller loops: fetch ``wanted()`` pages, ``load`` them, ``fill()``."""

    cursors: list[Cursor]
    key: Callable[[dict], tuple]
    limit: int
    accept: Callable[[str, dict], bool] = lambda member, item: True
    fields: tuple[str, ...] = ()  # the sort fields (for the stubs in tokens); empty: no order checks
    emitted: list[tuple[str, dict]] = field(default_factory=list)
    dropped: int = 0              # duplicates a member sent, left out
    failed: dict[str, str] = field(default_factory=dict)
    _order: dict[str, int] = field(default_factory=dict)
    _heads: dict[str, tuple] = field(default_factory=dict)
    _matched: dict[str, int | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._order = {c.member: i for i, c in enumerate(self.cursors)}
        for cursor in self.cursors:
            if cursor.last is not None and self.fields:
                try:
                    cursor.last_key = self.key(cursor.last)
                except (TypeError, AttributeError):
                    cursor.last, cursor.ties = None, []

    # ---- state
    @property
    def live(self) -> list[Cursor]:
        return [c for c in self.cursors if not c.done and c.member not in self.failed]

    @property
    def full(self) -> bool:
        return len(self.emitted) >= self.limit

    @property
    def finished(self) -> bool:
        """No live member is left: nothing more to emit, ever."""
        return not self.live

    def wanted(self) -> list[Cursor]:
        """Cursors whose page must be fetched before the next item can be emitted."""
        if self.full:
            return []
        return [c for c in self.live if c.page is None]

    # ---- feeding pages
    def load(self, member: str, page: MemberPage) -> None:
        cursor = self._cursor(member)
        if cursor.page is not None:
            raise ValueError(f"member {member!r} already has a page loaded")
        cursor.page = page
        cursor.waits = 0
        self._matched.setdefault(member, page.number_matched)  # what the first page loaded said
        cursor.pos = min(cursor.skip, len(page.items))
        self._settle(cursor)

    def fail(self, member: str, reason: str) -> None:
        """The member could not deliver: it leaves the walk (the caller reports it missing)."""
        self.failed[member] = reason
        self._heads.pop(member, None)

    def wait(self, member: str) -> int:
        """The member did not answer in time but may later: this page ends, the walk keeps its cursor.

        Returns how many broker pages in a row have now waited for it."""
        cursor = self._cursor(member)
        cursor.waits += 1
        return cursor.waits

    def _cursor(self, member: str) -> Cursor:
        for cursor in self.cursors:
            if cursor.member == member:
                return cursor
        raise KeyError(member)

    def _settle(self, cursor: Cursor) -> None:
        """Skip items the broker filters out; at the end of a page move on to the next page or finish."""
        page = cursor.page
        assert page is not None
        while cursor.pos < len(page.items):
            item = page.items[cursor.pos]
            if not self.accept(cursor.member, item):
                cursor.pos += 1
                continue
            head = self.key(item)
            if self.fields and cursor.last_key is not None:
                if order_key(head) < order_key(cursor.last_key):
                    self.fail(cursor.member, "out of order: its items do not come back in the requested sort "
                                             "order, so they cannot be merged")
                    return
                if head == cursor.last_key and item_ident(item) in cursor.ties:
                    self.dropped += 1  # the member sent this item again
                    cursor.pos += 1
                    continue
            self._heads[cursor.member] = head
            return
        self._heads.pop(cursor.member, None)
        if page.next_ref is None or page.next_ref == cursor.ref and cursor.ref is not None:
            cursor.done = True  # the end (a next link pointing at this very page would loop)
            return
        cursor.empty_pages = cursor.empty_pages + 1 if not page.items or cursor.skip >= len(page.items) else 0
        cursor.ref, cursor.skip, cursor.page, cursor.pos = page.next_ref, 0, None, 0

    def stalled(self) -> bool:
        """A member keeps answering empty pages: end this broker page early (its cursor is kept)."""
        return any(c.empty_pages >= MAX_EMPTY_PAGES for c in self.wanted())

    # ---- emitting
    def fill(self) -> None:
        """Emit items while every live member has a head and the page is not full."""
        while not self.full:
            live = self.live
            if not live or any(c.page is None for c in live):
                return
            best = min(live, key=lambda c: (self._heads[c.member], self._order[c.member]))
            page = best.page
            assert page is not None
            item = page.items[best.pos]
            self.emitted.append((best.member, item))
            if self.fields:
                head = self._heads[best.member]
                if head != best.last_key:
                    best.last_key, best.ties = head, []
                    best.last = sort_stub(item, self.fields)
                best.ties.append(item_ident(item))
                del best.ties[:-MAX_TIE_IDS]
            best.pos += 1
            self._settle(best)

    def states(self) -> dict[str, dict]:
        """Cursor states of members still live (for the next token)."""
        return {c.member: c.state() for c in self.live}

    def number_matched(self) -> dict[str, int | None]:
        return dict(self._matched)
