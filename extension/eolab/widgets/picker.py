"""The area/time picker view: an ipyleaflet map with draw tools, file upload and date pickers.

All state lives in :class:`PickerState`; this class only forwards user events to it and observes
it. The base layer is the project's own tile service (offline), never a CDN.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from eolab.errors import EolabError
from eolab.widgets._display import NotebookView, mark_live
from eolab.widgets._picker_state import PRESETS, PickerError, PickerState

DEMO_CENTER = (47.683, 20.651)  # Lake Tisza, the demo area
# A transparent 1×1 PNG: the base layer when no tile service is configured (no request leaves the page).
BLANK_TILE = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChw"
              "GA60e6kgAAAABJRU5ErkJggg==")
DRAW_STYLE = {"color": "#d7301f", "weight": 2, "fillOpacity": 0.08}
PRESET_LABELS = {"last-month": "last month", "season": "season", "year": "year"}


def base_layer(basemap: Any = None, tiles_url: str | None = None):
    """An ipyleaflet TileLayer: ``basemap`` (URL template or layer), else the eolab tile service's base layer."""
    import ipyleaflet

    if isinstance(basemap, ipyleaflet.TileLayer):
        return basemap
    if isinstance(basemap, str):
        return ipyleaflet.TileLayer(url=basemap, name="base", max_zoom=19, attribution="")
    from eolab.tiles import base_tiles

    try:
        url = base_tiles(tiles_url)
    except EolabError:
        url = BLANK_TILE
    return ipyleaflet.TileLayer(url=url, name="eolab quicklook (demo area)", max_zoom=19, max_native_zoom=17,
                                attribution="eolab demo data")


def _base_center(tiles_url: str | None) -> tuple[float, float]:
    import httpx

    from eolab.tiles import request_headers
    from eolab.tiles import tiles_url as get_url

    try:
        url = f"{get_url(tiles_url)}/base/info"
        info = httpx.get(url, headers=request_headers(url), timeout=3).json()
        return tuple(info["center"]) if info.get("center") else DEMO_CENTER
    except (EolabError, httpx.HTTPError, ValueError, KeyError, TypeError):
        return DEMO_CENTER


class AreaTimePicker(NotebookView):
    """Draw, edit, delete or upload the area of interest; pick the time range.

    ``picker.aoi`` (shapely), ``picker.aoi_geojson``, ``picker.bbox``, ``picker.time_range`` and
    ``picker.on_change(callback)`` read the Python-side state, which stays right after edits and
    deletes whatever the map's own feature list says.
    """

    def __init__(self, state: PickerState | None = None, *, basemap: Any = None, tiles_url: str | None = None,
                 center: tuple[float, float] | None = None, zoom: int = 13, today: dt.date | None = None):
        import ipyleaflet
        import ipywidgets as w

        self.state = state or PickerState(today=today)
        self.map = ipyleaflet.Map(basemap=base_layer(basemap, tiles_url), center=center or _base_center(tiles_url),
                                  zoom=zoom, scroll_wheel_zoom=True, layout=w.Layout(height="420px"))
        self.map.add_class("eolab-map")
        self.draw = ipyleaflet.DrawControl(
            rectangle={"shapeOptions": DRAW_STYLE}, polygon={"shapeOptions": DRAW_STYLE, "allowIntersection": False},
            polyline={}, circlemarker={}, circle={}, marker={}, edit=True, remove=True)
        self.draw.on_draw(self._on_draw)
        self.map.add(self.draw)
        # Uploaded shapes (drawn ones are shown by the DrawControl itself).
        self.upload_layer = ipyleaflet.GeoJSON(data={"type": "FeatureCollection", "features": []},
                                               style={"color": "#756bb1", "weight": 2, "fillOpacity": 0.1},
                                               name="uploaded area")
        self.map.add(self.upload_layer)
        self.map.add(ipyleaflet.ScaleControl(position="bottomleft"))

        self.upload = w.FileUpload(accept=".geojson,.json,.gpkg", multiple=False, description="Upload area")
        self.upload.add_class("eolab-upload")
        self.upload.observe(self._on_upload, names="value")
        self.clear_button = w.Button(description="Clear area", icon="trash")
        self.clear_button.add_class("eolab-clear")
        self.clear_button.on_click(lambda _: self.clear())
        self.start = w.DatePicker(description="From")
        self.start.add_class("eolab-start")
        self.end = w.DatePicker(description="To")
        self.end.add_class("eolab-end")
        for picker in (self.start, self.end):
            picker.observe(self._on_dates, names="value")
        self.presets = w.ToggleButtons(options=[(PRESET_LABELS[p], p) for p in PRESETS], value=None,
                                       style={"button_width": "90px"})
        self.presets.add_class("eolab-presets")
        self.presets.observe(self._on_preset, names="value")
        self.summary = w.HTML()
        self.summary.add_class("eolab-aoi")
        self.message = w.HTML()
        self.message.add_class("eolab-picker-error")

        self._syncing = False
        self.state.observe(self._show_state, names=["aoi", "time_range", "error"])
        self.state.observe(self._show_uploads, names="shapes")
        self._show_state(None)
        self.widget = w.VBox([self.map, w.HBox([self.upload, self.clear_button]),
                              w.HBox([self.start, self.end, self.presets]), self.summary, self.message])
        self.widget.add_class("eolab-picker")
        mark_live(self.widget)

    # ------------------------------------------------------------ the state, for scripts
    aoi = property(lambda self: self.state.aoi)
    aoi_geojson = property(lambda self: self.state.aoi_geojson)
    bbox = property(lambda self: self.state.bbox)
    time_range = property(lambda self: self.state.time_range)

    def on_change(self, callback, remove: bool = False) -> None:
        self.state.on_change(callback, remove=remove)

    def observe(self, handler, names=("aoi", "time_range")) -> None:
        self.state.observe(handler, names=list(names))

    def set_time_range(self, start, end) -> None:
        self.state.set_time_range(start, end)

    def set_bbox(self, west: float, south: float, east: float, north: float) -> None:
        self.draw.clear()
        self.state.set_bbox(west, south, east, north)
        self.fit()

    def clear(self) -> None:
        self.draw.clear()
        self.state.clear()

    def fit(self) -> None:
        if self.state.bbox:
            w_, s, e, n = self.state.bbox
            self.map.fit_bounds([[s, w_], [n, e]])

    # ------------------------------------------------------------ events in
    def _on_draw(self, control, action: str, geo_json: dict) -> None:
        self.state.handle_draw(action, geo_json)

    def _on_upload(self, change) -> None:
        for upload in change["new"] or ():
            try:
                self.state.upload(upload["name"], bytes(upload["content"]))
            except PickerError:
                pass  # the state's error trait shows it
            else:
                self.fit()

    def _on_dates(self, change) -> None:
        if self._syncing:
            return
        if self.start.value is None or self.end.value is None:
            # A cleared date must not leave the old range in force behind empty fields.
            self.state.clear_time_range(one_left=self.start.value is not None or self.end.value is not None)
        else:
            try:
                self.state.set_time_range(self.start.value, self.end.value)
            except PickerError:
                pass
        self._syncing = True
        self.presets.value = None
        self._syncing = False

    def _on_preset(self, change) -> None:
        if self._syncing or not change["new"]:
            return
        self.state.apply_preset(change["new"])

    # ------------------------------------------------------------ state out
    def _show_state(self, change) -> None:
        if self.state.time_range:
            self._syncing = True
            self.start.value, self.end.value = self.state.time_range
            self._syncing = False
        n = len(self.state.shapes)
        if self.state.bbox:
            box = ", ".join(f"{v:.4f}" for v in self.state.bbox)
            area = f"{n} shape{'s' if n != 1 else ''}, bbox [{box}]"
        else:
            area = "no area yet: draw a rectangle or polygon, or upload a GeoJSON/GeoPackage file"
        time = " – ".join(str(d) for d in self.state.time_range) if self.state.time_range else "no time range"
        self.summary.value = f"<b>Area</b>: {area}<br><b>Time</b>: {time}"
        self.message.value = (f"<span style='color:#b00020'>{_escape(self.state.error)}</span>"
                              if self.state.error else "")

    def _show_uploads(self, change) -> None:
        features = [{"type": "Feature", "geometry": s["geometry"], "properties": {"name": s["name"]}}
                    for s in self.state.shapes.values() if s["source"] != "draw"]
        self.upload_layer.data = {"type": "FeatureCollection", "features": features}



def _escape(text: str) -> str:
    import html

    return html.escape(text)
