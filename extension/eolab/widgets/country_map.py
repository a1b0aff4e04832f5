"""A whole country's CAP parcels on one map: every parcel of a run (100,000 and more) as a
GPU-rendered GeoArrow polygon layer (lonboard), coloured by its light, read from the run's
GeoParquet output; a click on a parcel shows its evidence dossier beside the map. The base layer
is the project's own tile service (offline), never a CDN, and lonboard's decoder and triangulation
worker are inlined (eolab.widgets._lonboard_offline); ipyleaflet stays for drawing.

    from eolab.widgets.country_map import CountryMap
    m = CountryMap(out / "cap_checks.parquet", dossiers=out / "dossiers")   # or dossiers=callable(pid) → HTML
    m.widget
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from eolab.widgets._display import NotebookView, mark_live

LIGHT_RGBA = {"green": (44, 160, 44, 190), "yellow": (255, 191, 0, 220), "red": (214, 39, 40, 235)}
OTHER_RGBA = (128, 128, 128, 160)


def light_colours(lights: Any) -> np.ndarray:
    """RGBA (n × 4, uint8) of each parcel's light (grey for anything else)."""
    import pandas as pd

    keys = list(LIGHT_RGBA)
    codes = pd.Categorical(pd.Series(lights, dtype=object).astype(str), categories=keys).codes
    table = np.array([LIGHT_RGBA[k] for k in keys] + [OTHER_RGBA], dtype=np.uint8)
    return table[np.where(codes < 0, len(keys), codes)]


def read_results(results: Any, columns: tuple[str, ...] = ("parcel_id", "light")) -> Any:
    """The parcels of a run (GeoParquet path or GeoDataFrame): only ``columns`` + geometry, in
    longitude/latitude, in file order."""
    import geopandas as gpd

    gdf = (gpd.read_parquet(results, columns=[*columns, "geometry"]) if isinstance(results, (str, Path))
           else results[[*columns, "geometry"]])
    return gdf.to_crs("EPSG:4326") if gdf.crs is not None and not gdf.crs.is_geographic else gdf


def _base_layer(tiles_url: str | None) -> Any:
    from lonboard import BitmapTileLayer

    from eolab.errors import EolabError
    from eolab.tiles import base_tiles

    try:
        url = base_tiles(tiles_url)
    except EolabError:
        return None
    return BitmapTileLayer(data=url, tile_size=256, max_zoom=19, min_zoom=0)


class CountryMap(NotebookView):
    """``CountryMap(results, dossiers=...).widget``: the map and, below it, the clicked parcel's
    dossier. ``dossiers``: a folder of :func:`dossier.write_all` files or a callable parcel id → HTML."""

    def __init__(self, results: Any, *, dossiers: str | Path | Callable[[str], str] | None = None,
                 tiles_url: str | None = None, height: int = 600):
        import ipywidgets as w
        from lonboard import PolygonLayer

        from eolab.widgets._lonboard_offline import map_class

        self.table = read_results(results)
        self.height = height
        self._dossiers = dossiers
        # outlines in metres, at most 2 px: at country zoom a 1 px outline would hide the fill of every parcel
        self.layer = PolygonLayer.from_geopandas(
            self.table, get_fill_color=light_colours(self.table["light"]), get_line_color=[40, 40, 40, 200],
            get_line_width=3, line_width_units="meters", line_width_min_pixels=0, line_width_max_pixels=2,
            pickable=True, auto_highlight=True)
        base = _base_layer(tiles_url)
        self.map = map_class()(layers=[base, self.layer] if base is not None else [self.layer], basemap=None,
                       height=height, show_tooltip=True)
        self.map.add_class("eolab-country-map")
        self.dossier = w.HTML()
        self.dossier.add_class("eolab-country-dossier")
        self.parcel_id = ""
        self.layer.observe(lambda change: self.select(change["new"]), names="selected_index")
        self.widget = w.VBox([self.map, self.dossier])
        mark_live(self.widget)
        self.focus()

    def focus(self, pid: str | None = None, *, fill: float = 0.9) -> None:
        """Centre the map on parcel ``pid`` (None: all parcels) so that it spans ``fill`` of the map's
        height (or of its width, whichever is larger in the map's square of that height)."""
        from eolab.errors import EolabError

        if pid is None:
            west, south, east, north = self.table.total_bounds
        else:
            rows = self.table[self.table["parcel_id"].astype(str) == str(pid)]
            if rows.empty:
                raise EolabError(f"parcel {pid!r} is not on this map")
            west, south, east, north = rows.total_bounds

        # deck.gl's Web Mercator world is 512 px wide at zoom 0; x and y here are fractions of it
        def y_of(lat: float) -> float:
            return 0.5 - math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) / (2 * math.pi)

        top, bottom = y_of(north), y_of(south)
        span = max((east - west) / 360, bottom - top, 1e-12)
        mid = (top + bottom) / 2
        latitude = math.degrees(2 * math.atan(math.exp((0.5 - mid) * 2 * math.pi)) - math.pi / 2)
        zoom = min(max(math.log2(fill * self.height / (512 * span)), 0.0), 20.0)
        self.map.set_view_state(longitude=(west + east) / 2, latitude=latitude, zoom=zoom)

    def html_of(self, pid: str) -> str:
        from eolab.analysis import dossier

        if callable(self._dossiers):
            return self._dossiers(pid)
        if self._dossiers is not None:
            path = Path(self._dossiers) / dossier.file_name(pid)
            if path.exists():
                return path.read_text(encoding="utf-8")
        return ""

    def select(self, index: int | None) -> str:
        """Show the dossier of the parcel at row ``index`` (what a click does); its id."""
        if index is None or not 0 <= int(index) < len(self.table):
            return ""
        self.parcel_id = pid = str(self.table["parcel_id"].iloc[int(index)])
        page = self.html_of(pid)
        self.dossier.value = (f"<iframe title='dossier {html.escape(pid)}' style='width:100%;height:640px;border:0' "
                              f"srcdoc=\"{html.escape(page)}\"></iframe>" if page
                              else html.escape(f"{pid}: no dossier (green parcels have none)"))
        return pid
