"""State of the catalogue browser: collections, search, pages, sorting, selection. No widgets.

Bound to a :class:`PickerState`: a search uses the picker's area and time range. Paging uses the
broker's own ``next`` requests (composite tokens); going back re-sends the stored request of that
page, so every page is exactly what the broker returned for it.
"""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Dict, Float, HasTraits, Instance, Int, List, Unicode, observe

from eolab.errors import EolabError
from eolab.search import Catalogue, Page, item_key, search_body, select, sort_rows, to_geodataframe
from eolab.widgets._picker_state import PickerState


class BrowserState(HasTraits):
    """What the browser shows; every action is a method, so tests and notebooks drive it headless."""

    collections = List(help="CollectionInfo of every collection the broker lists")
    groups = Dict(help="provider -> [collection ids]")
    chosen = List(help="collection ids to search (empty: all)")
    max_cloud = Float(100.0, help="maximum eo:cloud_cover in %; items without it (radar) always pass")
    filter_text = Unicode("", help="extra CQL2 text filter, e.g. platform = 'sentinel-2a'")
    limit = Int(20, help="items per page")
    sortby = Unicode("-properties.datetime", help="server-side order of the search")

    page = Instance(Page, allow_none=True)
    page_number = Int(0)
    has_next = Bool(False)
    has_previous = Bool(False)
    rows = List(help="table rows of the current page, in display order")
    sort_column = Unicode("", help="client-side sort of the shown page ('' = server order)")
    sort_descending = Bool(False)
    missing = List(help="providers missing from an answer, until a search answers without them missing")
    missing_from = Dict(help="provider -> which answer it was missing from (e.g. 'search 2, page 1: ...')")
    busy = Bool(False)
    status = Unicode("")
    error = Unicode("")
    selected = List(help="keys ('provider|collection/id') of rows chosen for loading")
    highlighted = Unicode("", help="key of the row/footprint highlighted on the map")
    footprints = Dict(help="GeoJSON FeatureCollection of the current page (properties.key, .highlighted)")

    def __init__(self, catalogue: Catalogue | str | None = None, picker: PickerState | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.catalogue = catalogue if isinstance(catalogue, Catalogue) else Catalogue(catalogue)
        self.picker = picker or PickerState()
        self._requests: list[dict] = []  # request of page 1, 2, ... (what the broker's tokens say)
        self._seen: dict[str, dict] = {}  # key -> item, every item shown in this search (for selection)
        self._searches = 0  # numbered, so a missing-provider notice can say which search it belongs to
        self._search_label = ""

    # ---------------------------------------------------------------- collections
    def refresh_collections(self) -> None:
        with self._working("listing collections"):
            listing = self.catalogue.collections()
            self.groups = {p: [c.id for c in cs] for p, cs in listing.by_provider().items()}
            self.collections = listing.collections  # last: views observe it and read groups
            self._note_missing(listing.missing, "the collection listing", fresh=False)
            self.status = f"{len(listing)} collections from {len(self.groups)} providers"

    # ---------------------------------------------------------------- search and paging
    def query(self) -> dict:
        """The search body for the current picker and filters (raises EolabError naming a bad value)."""
        params = self.picker.search_parameters()
        return search_body(self.chosen or None, intersects=params["intersects"], datetime=params["datetime"],
                           max_cloud=self.max_cloud, filter=self.filter_text or None, limit=self.limit,
                           sortby=self.sortby or None)

    def search(self) -> Page:
        with self._working("searching"):
            body = self.query()
            request = {"method": "POST", "href": f"{self.catalogue.url}/search", "body": body}
            page = self.catalogue.request_page(request, number=1)
            # Clear the selection while its items are still known: views untick their rows in
            # answer, and unticking must find them.
            self.selected = []
            self._requests = [request]
            self._seen = {}
            self._searches += 1
            self._search_label = f"search {self._searches} ({self._describe(body)})"
            self._show(page, fresh=True)
            return page

    def next_page(self) -> Page | None:
        if self.page is None or not self.page.has_next:
            self.error = "there is no next page"
            return None
        with self._working("loading the next page"):
            page = self.catalogue.request_page(self.page.next_request, self.page.number + 1)
            self._requests = self._requests[: self.page.number] + [self.page.next_request]
            self._show(page)
            return page

    def previous_page(self) -> Page | None:
        if self.page is None or self.page.number <= 1:
            self.error = "there is no previous page"
            return None
        with self._working("loading the previous page"):
            number = self.page.number - 1
            page = self.catalogue.request_page(self._requests[number - 1], number)
            self._show(page)
            return page

    @staticmethod
    def _describe(body: dict) -> str:
        what = ", ".join(body.get("collections") or []) or "all collections"
        return f"{what}; {body['datetime']}" if body.get("datetime") else what

    def _note_missing(self, missing: list[str], where: str, *, fresh: bool) -> None:
        """Keep each missing provider's notice until a new search answers without it missing.

        Paging never clears a notice: a later page says nothing about what an earlier one lacked.
        """
        if fresh:
            notes = {provider: where for provider in missing}
        else:
            notes = dict(self.missing_from)
            for provider in missing:
                notes.setdefault(provider, where)
        self.missing_from = notes
        self.missing = list(notes)

    def _show(self, page: Page, fresh: bool = False) -> None:
        for item in page.items:
            self._seen[item_key(item)] = item
        self.page = page
        self.page_number = page.number
        self.has_next = page.has_next
        self.has_previous = page.number > 1
        self._note_missing(page.missing, f"{self._search_label}, page {page.number}", fresh=fresh)
        self.highlighted = ""
        self._refresh_rows()
        self._refresh_footprints()
        more = " (more pages)" if page.has_next else ""
        late = ""
        if page.waiting:  # not missing (yet): the broker asks them again for the next page
            late = (f"; not answered yet: {', '.join(sorted(page.waiting))} — their items may come on the "
                    "next page")
        self.status = f"page {page.number}: {len(page.items)} items{more}{late}"

    # ---------------------------------------------------------------- table
    def sort(self, column: str, descending: bool | None = None) -> None:
        """Sort the shown page by ``column``; sorting the same column again reverses it."""
        if descending is None:
            descending = not self.sort_descending if column == self.sort_column else False
        sort_rows([], column)  # validates the column name
        self.sort_column, self.sort_descending = column, descending
        self._refresh_rows()

    def _refresh_rows(self) -> None:
        rows = self.page.rows if self.page else []
        if self.sort_column:
            rows = sort_rows(rows, self.sort_column, self.sort_descending)
        self.rows = rows

    # ---------------------------------------------------------------- selection and highlight
    def highlight(self, key: str) -> None:
        """Highlight a row and its footprint ('' clears); accepts an item id when it is unique."""
        key = self._key(key) if key else ""
        self.highlighted = key
        self._refresh_footprints()

    def toggle(self, key: str, on: bool | None = None) -> None:
        if on is False and key not in self._seen and key not in self.selected:
            return  # unticking a row of an earlier search: nothing to do
        key = self._key(key)
        now = key in self.selected
        want = (not now) if on is None else on
        if want and not now:
            self.selected = self.selected + [key]
        elif now and not want:
            self.selected = [k for k in self.selected if k != key]

    def select_all(self) -> None:
        keys = [r["key"] for r in self.rows]
        self.selected = self.selected + [k for k in keys if k not in self.selected]

    def clear_selection(self) -> None:
        self.selected = []

    def _key(self, key: str) -> str:
        if key in self._seen:
            return key
        matches = [k for k, item in self._seen.items() if item["id"] == key]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise EolabError(f"item id {key!r} exists at several providers",
                             hint="use its key 'provider|collection/id'")
        raise EolabError(f"{key!r} is not among the results", hint="search first, then pick a shown row")

    def selected_items(self) -> list[dict]:
        return [self._seen[k] for k in self.selected]

    def item_collection(self):
        """The selected items (every page of this search) as a pystac ItemCollection."""
        return select(self._seen.values(), self.selected)

    def geodataframe(self):
        """The selected items as a GeoDataFrame (EPSG:4326)."""
        return to_geodataframe(self.selected_items())

    def item(self, key: str) -> dict:
        return self._seen[self._key(key)]

    @observe("selected")
    def _selected_changed(self, change) -> None:
        self._refresh_footprints()

    def _refresh_footprints(self) -> None:
        features = []
        for item in (self.page.items if self.page else []):
            if not item.get("geometry"):
                continue
            key = item_key(item)
            features.append({"type": "Feature", "geometry": item["geometry"], "id": key,
                             "properties": {"key": key, "id": item["id"], "collection": item.get("collection"),
                                            "highlighted": key == self.highlighted,
                                            "selected": key in self.selected}})
        # The highlighted footprint last, so it is drawn on top of identical ones (other dates).
        features.sort(key=lambda f: f["properties"]["highlighted"])
        self.footprints = {"type": "FeatureCollection", "features": features}

    # ---------------------------------------------------------------- errors and progress
    def _working(self, what: str):
        state = self

        class _Busy:
            def __enter__(self):
                state.error = ""
                state.status = f"{what} ..."
                state.busy = True

            def __exit__(self, kind, exc, tb):
                state.busy = False
                if isinstance(exc, EolabError):
                    state.error = str(exc)  # shown by the view; the caller still gets the exception
                    state.status = ""
                return False

        return _Busy()
