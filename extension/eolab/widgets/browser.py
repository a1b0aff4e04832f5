"""The federated catalogue browser view: collections by provider, search form, result table, footprints.

All logic is in :class:`BrowserState`; this view forwards clicks to it and redraws on its traits.
"""

from __future__ import annotations

import html
from typing import Any

from eolab.errors import EolabError
from eolab.search import Catalogue
from eolab.widgets._browser_state import BrowserState
from eolab.widgets._display import NotebookView, mark_live
from eolab.widgets._picker_state import PickerState

COLUMNS = (("provider", "provider", "90px"), ("collection", "collection", "120px"),
           ("datetime", "date / time (UTC)", "150px"), ("cloud_cover", "cloud %", "70px"), ("id", "id", "260px"))
# Outlines only: results often share one footprint (same tile, many dates), fills would stack up.
FOOTPRINT = {"color": "#3182bd", "weight": 1, "fillOpacity": 0.0}
SELECTED = {"color": "#31a354", "weight": 2, "fillOpacity": 0.0}
HIGHLIGHT = {"color": "#ff7f00", "weight": 3, "fillOpacity": 0.0}


def _cell(row: dict, column: str) -> str:
    value = row.get(column)
    if value is None:
        return "–"
    if column == "datetime":
        return str(value).replace("T", " ").rstrip("Z")[:19]
    if column == "cloud_cover":
        return f"{value:.1f}"
    return str(value)


def missing_notice(missing_from: dict[str, str]) -> str:
    """HTML naming each provider that did not answer and the search it did not answer."""
    by_answer: dict[str, list[str]] = {}
    for provider, where in missing_from.items():
        by_answer.setdefault(where, []).append(provider)
    lines = [f"⚠ no answer from provider(s) <b>{html.escape(', '.join(providers))}</b> in {html.escape(where)}"
             " — its results may be incomplete" for where, providers in by_answer.items()]
    return "<div style='color:#8a5300'>" + "<br>".join(lines) + "</div>" if lines else ""


def _guard(method):
    """Run a state action from a click; its EolabError is already in ``state.error`` for the view."""
    def run(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except EolabError:
            return None
    return run


class CatalogueBrowser(NotebookView):
    """Browse the federated catalogue for the picker's area and time range.

    ``browser.item_collection()`` / ``browser.geodataframe()`` give the selected rows;
    ``browser.state`` is the scriptable :class:`BrowserState`.
    """

    def __init__(self, picker: Any = None, catalogue: Catalogue | str | None = None, *, tiles_url: str | None = None,
                 map: Any = None, limit: int = 20):
        import ipyleaflet
        import ipywidgets as w

        picker_state = picker.state if hasattr(picker, "state") else (picker or PickerState())
        self.picker = picker
        self.state = BrowserState(catalogue, picker=picker_state, limit=limit)
        self.tiles_url = tiles_url
        self.map = map if map is not None else getattr(picker, "map", None)

        # ---- collections
        self.collections = w.SelectMultiple(description="Collections", rows=5, layout=w.Layout(width="520px"))
        self.collections.add_class("eolab-collections")
        self.collections.observe(lambda c: setattr(self.state, "chosen", list(c["new"])), names="value")
        self.catalogue_info = w.HTML()
        self.catalogue_info.add_class("eolab-catalogue-info")
        # ---- search form
        self.cloud = w.IntSlider(value=100, min=0, max=100, step=5, description="max cloud %")
        self.cloud.add_class("eolab-cloud")
        w.link((self.cloud, "value"), (self.state, "max_cloud"))
        self.filter = w.Text(description="filter", placeholder="CQL2, e.g. platform = 'sentinel-2a'",
                             layout=w.Layout(width="420px"))
        self.filter.add_class("eolab-filter")
        w.link((self.filter, "value"), (self.state, "filter_text"))
        self.limit = w.Dropdown(options=sorted({10, 20, 50, 100, limit}), value=limit, description="per page",
                                layout=w.Layout(width="160px"))
        self.limit.observe(lambda c: setattr(self.state, "limit", c["new"]), names="value")
        self.state.observe(self._show_limit, names="limit")
        self.search_button = w.Button(description="Search", button_style="primary", icon="search")
        self.search_button.add_class("eolab-search")
        self.search_button.on_click(lambda _: _guard(self.state.search)())
        self.progress = w.IntProgress(value=0, min=0, max=1, bar_style="info", layout=w.Layout(width="120px"))
        self.progress.add_class("eolab-progress")
        self.status = w.HTML()
        self.status.add_class("eolab-status")
        self.missing = w.HTML()
        self.missing.add_class("eolab-missing")
        self.error = w.HTML()
        self.error.add_class("eolab-browser-error")
        # ---- table
        header = []
        for column, label, width in COLUMNS:
            button = w.Button(description=label, layout=w.Layout(width=width), tooltip=f"sort by {label}")
            button.add_class(f"eolab-sort-{column}")
            button.on_click(lambda _, c=column: _guard(self.state.sort)(c))
            header.append(button)
        self.all_box = w.Checkbox(value=False, indent=False, layout=w.Layout(width="30px"), tooltip="select page")
        self.all_box.observe(self._on_all, names="value")
        self.header = w.HBox([self.all_box] + header)
        self.table = w.VBox()
        self.table.add_class("eolab-results")
        self.previous = w.Button(description="◀ previous", disabled=True)
        self.previous.add_class("eolab-previous")
        self.previous.on_click(lambda _: _guard(self.state.previous_page)())
        self.next = w.Button(description="next ▶", disabled=True)
        self.next.add_class("eolab-next")
        self.next.on_click(lambda _: _guard(self.state.next_page)())
        self.page_label = w.HTML()
        self.selection = w.HTML()
        self.selection.add_class("eolab-selection")
        # ---- quicklook
        styles = [("true colour", "truecolor"), ("NDVI", "ndvi"), ("false colour", "falsecolor")]
        self.style = w.Dropdown(options=styles, value="truecolor", description="quicklook", layout=w.Layout(width="220px"))
        self.style.add_class("eolab-style")
        self.show_button = w.Button(description="Show on map", icon="image", disabled=True)
        self.show_button.add_class("eolab-quicklook")
        self.show_button.on_click(lambda _: _guard(self.show_quicklook)())
        self.hide_button = w.Button(description="Hide", disabled=True)
        self.hide_button.on_click(lambda _: self.hide_quicklook())
        self.quicklook_layer = None

        self.footprints = None
        if self.map is not None:
            self.footprints = ipyleaflet.GeoJSON(data={"type": "FeatureCollection", "features": []},
                                                 style_callback=self._footprint_style, name="search results",
                                                 hover_style={"weight": 3})
            self.footprints.on_click(self._on_footprint_click)
            self.map.add(self.footprints)

        s = self.state
        s.observe(self._show_collections, names=["collections"])
        s.observe(self._show_progress, names=["busy", "status", "error", "missing", "missing_from"])
        s.observe(self._show_rows, names=["rows", "selected", "highlighted"])
        s.observe(self._show_paging, names=["page_number", "has_next", "has_previous"])
        s.observe(self._show_footprints, names=["footprints"])
        self._rows_by_key: dict[str, Any] = {}

        self.widget = w.VBox([
            w.HBox([self.collections, self.catalogue_info]),
            w.HBox([self.cloud, self.limit]), w.HBox([self.filter, self.search_button, self.progress]),
            self.status, self.missing, self.error, self.header, self.table,
            w.HBox([self.previous, self.page_label, self.next]), self.selection,
            w.HBox([self.style, self.show_button, self.hide_button]),
        ])
        self.widget.add_class("eolab-browser")
        mark_live(self.widget)
        _guard(self.state.refresh_collections)()

    # ------------------------------------------------------------ scripted access
    def search(self):
        return self.state.search()

    def item_collection(self):
        return self.state.item_collection()

    def geodataframe(self):
        return self.state.geodataframe()

    def show_quicklook(self, key: str | None = None, style: str | None = None):
        """Render a result on the map through the tile service (default: the highlighted row)."""
        import ipyleaflet

        from eolab.tiles import item_tiles

        key = key or self.state.highlighted
        if not key:
            self.state.error = "click a result row first, then show its quicklook"
            return None
        item = self.state.item(key)
        try:
            from eolab.tiles._render import band_assets
            from eolab.tiles._render import style as get_style

            # The tile service would answer every tile with this 400, and the map would stay blank.
            chosen = get_style(style or self.style.value)
            band_assets(item, chosen.bands)
            url = item_tiles(item, chosen.name, url=self.tiles_url)
            _tile_service_answers(self.tiles_url)  # down: every tile would fail, and the map stay blank
        except EolabError as exc:
            self.state.error = f"no quicklook of {item['id']}: {exc}"
            return None
        self.state.error = ""
        self.hide_quicklook()
        self.quicklook_layer = ipyleaflet.TileLayer(url=url, name=f"quicklook {item['id']}", max_zoom=19,
                                                    max_native_zoom=17, opacity=0.9)
        if self.map is not None:
            # Below the footprints, above the base layer.
            layers = list(self.map.layers)
            index = layers.index(self.footprints) if self.footprints in layers else len(layers)
            self.map.layers = tuple(layers[:index] + [self.quicklook_layer] + layers[index:])
        self.hide_button.disabled = False
        return url

    def hide_quicklook(self) -> None:
        if self.quicklook_layer is not None and self.map is not None and self.quicklook_layer in self.map.layers:
            self.map.remove(self.quicklook_layer)
        self.quicklook_layer = None
        self.hide_button.disabled = True

    # ------------------------------------------------------------ events in
    def _on_all(self, change) -> None:
        if getattr(self, "_syncing_all", False):
            return
        if change["new"]:
            self.state.select_all()
        else:
            page_keys = {r["key"] for r in self.state.rows}
            self.state.selected = [k for k in self.state.selected if k not in page_keys]

    def _on_footprint_click(self, feature=None, **kwargs) -> None:
        key = (feature or {}).get("properties", {}).get("key")
        if key:
            _guard(self.state.highlight)(key)

    # ------------------------------------------------------------ state out
    def _show_collections(self, change) -> None:
        options, lines = [], []
        for provider, ids in self.state.groups.items():
            lines.append(f"<b>{html.escape(provider)}</b>")
            for info in (c for c in self.state.collections if c.id in ids):
                options.append((f"{provider} │ {info.title} ({info.collection})", info.id))
                who = ", ".join(info.data_providers) or "–"
                lines.append(f"&nbsp;&nbsp;{html.escape(info.title)} <code>{html.escape(info.collection)}</code>"
                             f" — {html.escape(info.extent_text)} — {html.escape(who)}")
        self.collections.options = options
        self.catalogue_info.value = "<div style='font-size:90%;line-height:1.3'>" + "<br>".join(lines) + "</div>"

    def _show_progress(self, change) -> None:
        s = self.state
        self.progress.value = 0 if not s.busy else 1
        self.progress.bar_style = "info" if s.busy else ""
        self.progress.layout.visibility = "visible" if s.busy else "hidden"
        self.search_button.disabled = s.busy
        self.status.value = html.escape(s.status)
        self.error.value = f"<span style='color:#b00020'>{html.escape(s.error)}</span>" if s.error else ""
        self.missing.value = missing_notice(s.missing_from)

    def _show_rows(self, change) -> None:
        import ipywidgets as w

        if change is None or change["name"] == "rows":
            rows = []
            self._rows_by_key = {}
            for row in self.state.rows:
                box = w.Checkbox(value=row["key"] in self.state.selected, indent=False, layout=w.Layout(width="30px"))
                box.add_class("eolab-row-select")
                box.observe(lambda c, k=row["key"]: _guard(self.state.toggle)(k, c["new"]), names="value")
                cells = []
                for column, _, width in COLUMNS:
                    if column == "id":
                        cell = w.Button(description=_cell(row, column), layout=w.Layout(width=width),
                                        tooltip="highlight on the map")
                        cell.add_class("eolab-row-id")
                        cell.on_click(lambda _, k=row["key"]: _guard(self.state.highlight)(k))
                    else:
                        cell = w.Label(_cell(row, column), layout=w.Layout(width=width))
                    cell.add_class(f"eolab-cell-{column}")
                    cells.append(cell)
                line = w.HBox([box] + cells)
                line.add_class("eolab-row")
                rows.append(line)
                self._rows_by_key[row["key"]] = (line, box, cells[-1])
            self.table.children = rows
        for key, (line, box, button) in self._rows_by_key.items():
            if box.value != (key in self.state.selected):
                box.value = key in self.state.selected
            button.button_style = "warning" if key == self.state.highlighted else ""
            if key == self.state.highlighted:
                line.add_class("eolab-row-highlighted")
            else:
                line.remove_class("eolab-row-highlighted")
        n = len(self.state.selected)
        self.selection.value = f"{n} item{'s' if n != 1 else ''} selected" if n else "no items selected"
        self.show_button.disabled = not self.state.highlighted
        # The page box says whether this page is all selected (it stayed ticked on the next page).
        whole = bool(self._rows_by_key) and all(k in self.state.selected for k in self._rows_by_key)
        if self.all_box.value != whole:
            self._syncing_all = True
            try:
                self.all_box.value = whole
            finally:
                self._syncing_all = False

    def _show_limit(self, change) -> None:
        if change["new"] not in self.limit.options:
            self.limit.options = sorted(set(self.limit.options) | {change["new"]})
        self.limit.value = change["new"]

    def _show_paging(self, change) -> None:
        self.previous.disabled = not self.state.has_previous
        self.next.disabled = not self.state.has_next
        self.page_label.value = f"&nbsp;page {self.state.page_number}&nbsp;" if self.state.page_number else ""

    def _show_footprints(self, change) -> None:
        if self.footprints is not None:
            self.footprints.data = self.state.footprints

    @staticmethod
    def _footprint_style(feature: dict) -> dict:
        props = feature.get("properties", {})
        if props.get("highlighted"):
            return HIGHLIGHT
        return SELECTED if props.get("selected") else FOOTPRINT


def _tile_service_answers(url: str | None) -> None:
    """Raise where this kernel finds the tile service not answering. Only an absolute URL is asked
    (behind the hub the browser's URL is a path the kernel cannot reach); any HTTP answer counts."""
    import httpx

    from eolab.tiles import request_headers, tiles_url

    try:
        base = tiles_url(url)
    except EolabError:
        return
    if not base.startswith(("http://", "https://")):
        return
    try:
        httpx.get(f"{base}/_health", headers=request_headers(base), timeout=3.0)
    except (httpx.ConnectError, httpx.TimeoutException) as exc:
        raise EolabError(f"the tile service at {base} is not answering ({type(exc).__name__})",
                         hint="is the stack running? see 'eolab status'") from None
    except httpx.HTTPError:
        return
