"""Area-of-interest and time-range state of the picker: pure Python (traitlets), no widgets.

The map's DrawControl only reports events (created / edited / deleted, each with one GeoJSON
feature and no id) and its own feature list is not reliably synced back to the kernel
(jupyter-widgets/ipyleaflet#68, #1119). So this class keeps the shapes itself, keyed by its own
ids, and matches edit/delete events to them by geometry.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

from traitlets import Dict, HasTraits, Instance, Int, List, Tuple, Unicode, observe

from eolab.errors import EolabError

PRESETS = ("last-month", "season", "year")
# Growing season used by the "season" preset (agricultural monitoring: March to October).
SEASON = ((3, 1), (10, 31))
MAX_UPLOAD_FEATURES = 20000
SEARCH_MAX_VERTICES = 500
SEARCH_TOLERANCE = 0.001  # degrees, ~100 m at these latitudes


class PickerError(EolabError):
    """A shape or date the picker cannot use; the message says which and why."""


def preset_range(name: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """``last-month``: the previous calendar month; ``season``: 1 March–31 October of the latest
    season that has started; ``year``: the last 365 days up to ``today``."""
    if name == "last-month":
        end = today.replace(day=1) - dt.timedelta(days=1)
        return end.replace(day=1), end
    if name == "season":
        year = today.year if (today.month, today.day) >= SEASON[0] else today.year - 1
        return dt.date(year, *SEASON[0]), dt.date(year, *SEASON[1])
    if name == "year":
        return today - dt.timedelta(days=364), today
    raise PickerError(f"unknown time preset {name!r}", hint=f"presets are: {', '.join(PRESETS)}")


def _as_date(value: Any, what: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise PickerError(f"{what} {value!r} is not a date", hint="use YYYY-MM-DD") from None


def _wrapped(geom, name: str):
    """A shape drawn on a repeated copy of the world (leaflet gives longitudes such as 380) moved
    onto -180..180; one across the antimeridian refused (its box would span the other way round)."""
    from shapely import affinity

    x0, _, x1, _ = geom.bounds
    shift = -360.0 * round((x0 + x1) / 2 / 360.0)
    geom = affinity.translate(geom, xoff=shift) if shift else geom
    x0, _, x1, _ = geom.bounds
    if x0 < -180 or x1 > 180:
        raise PickerError(f"{name} crosses the antimeridian (longitude ±180)",
                          hint="draw the parts on each side of it as separate shapes")
    return geom


def check_geometry(geometry: Any, name: str, *, drawn: bool = False):
    """A valid shapely polygon/multipolygon in lon/lat from GeoJSON or shapely, or PickerError naming the problem.
    ``drawn``: from the map, whose longitudes go on past ±180."""
    import shapely
    from shapely.geometry import shape
    from shapely.validation import explain_validity

    try:
        geom = geometry if isinstance(geometry, shapely.Geometry) else shape(geometry)
    except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.GeometryTypeError) as exc:
        raise PickerError(f"{name} is not a GeoJSON geometry ({exc})".replace("\n", " "),
                          hint="give a Polygon or MultiPolygon") from None
    if geom.is_empty:
        raise PickerError(f"{name} is empty", hint="draw or upload a polygon with an area")
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise PickerError(f"{name} is a {geom.geom_type}, not an area",
                          hint="an area of interest needs polygons or rectangles")
    if drawn:
        geom = _wrapped(geom, name)
    x0, y0, x1, y1 = geom.bounds
    for part in getattr(geom, "geoms", [geom]):
        # GeoJSON reads a polygon from 170 to -170 the long way round (RFC 7946 §3.1.9: split it at
        # the antimeridian, as a MultiPolygon of parts on either side)
        p0, _, p1, _ = part.bounds
        if p1 - p0 > 180 and p0 >= -180 and p1 <= 180:
            raise PickerError(f"{name} spans {p1 - p0:.0f}° of longitude ({p0:.6g} to {p1:.6g})",
                              hint="if it crosses the antimeridian, split it there into two shapes")
    if x0 < -180 or x1 > 180 or y0 < -90 or y1 > 90:
        raise PickerError(f"{name} has coordinates outside longitude/latitude ({x0:.6g}, {y0:.6g}, {x1:.6g}, {y1:.6g})",
                          hint="GeoJSON must be in WGS84 degrees; upload a GeoPackage to have it reprojected")
    if not geom.is_valid:
        raise PickerError(f"{name} is not a valid polygon: {explain_validity(geom)}",
                          hint="redraw it without crossing edges, or fix the file")
    if geom.area == 0:
        raise PickerError(f"{name} has no area", hint="draw or upload a polygon with an area")
    return geom


def _distance(a, b) -> float:
    return a.hausdorff_distance(b)


class PickerState(HasTraits):
    """The area of interest (union of drawn and uploaded shapes) and the time range.

    ``shapes`` maps this state's own ids to ``{"geometry": GeoJSON, "source": "draw"|"upload"|"api",
    "name": ...}``; ``aoi`` is their union (shapely), ``bbox`` its bounds; ``time_range`` a pair of
    dates. ``error`` holds the last problem as one line ("" when the last action succeeded).
    """

    shapes = Dict(help="id -> {'geometry': GeoJSON geometry, 'source': str, 'name': str}")
    aoi = Instance("shapely.Geometry", allow_none=True, help="union of all shapes (lon/lat), or None")
    bbox = Tuple(allow_none=True, default_value=None, help="(west, south, east, north) of aoi, or None")
    time_range = Tuple(allow_none=True, default_value=None, help="(start date, end date) inclusive")
    preset = Unicode("", help="the preset that set time_range, '' after a manual change")
    error = Unicode("", help="the last problem, one line")
    log = List(help="accepted actions, newest last: (action, shape id)")
    _next_id = Int(1)

    def __init__(self, today: dt.date | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.today = today or dt.date.today()

    # ---------------------------------------------------------------- observers
    def on_change(self, callback, remove: bool = False) -> None:
        """Call ``callback(state)`` whenever the area or the time range changes."""
        def handler(change, _cb=callback):
            _cb(self)
        if remove:
            for h in [h for h in getattr(self, "_change_handlers", []) if h[0] is callback]:
                self.unobserve(h[1], names=["aoi", "time_range"])
                self._change_handlers.remove(h)
            return
        self.__dict__.setdefault("_change_handlers", []).append((callback, handler))
        self.observe(handler, names=["aoi", "time_range"])

    @observe("shapes")
    def _recompute(self, change) -> None:
        from shapely.geometry import shape
        from shapely.ops import unary_union

        geoms = [shape(s["geometry"]) for s in self.shapes.values()]
        aoi = unary_union(geoms) if geoms else None
        self.bbox = tuple(float(v) for v in aoi.bounds) if aoi is not None else None
        self.aoi = aoi

    # ---------------------------------------------------------------- shapes
    @property
    def aoi_geojson(self) -> dict | None:
        from shapely.geometry import mapping

        return mapping(self.aoi) if self.aoi is not None else None

    def _store(self, geom, source: str, name: str) -> str:
        from shapely.geometry import mapping

        shape_id = f"s{self._next_id}"
        self._next_id += 1
        self.shapes = {**self.shapes, shape_id: {"geometry": mapping(geom), "source": source, "name": name}}
        self.log = self.log + [("add", shape_id)]
        return shape_id

    def add(self, geometry: Any, source: str = "api", name: str = "") -> str:
        """Add a shape (GeoJSON geometry/feature or shapely); returns its id. Raises PickerError."""
        if isinstance(geometry, dict) and geometry.get("type") == "Feature":
            geometry = geometry.get("geometry")
        geom = check_geometry(geometry, name or "the shape", drawn=source == "draw")
        self.error = ""
        return self._store(geom, source, name or source)

    def replace(self, shape_id: str, geometry: Any) -> None:
        if shape_id not in self.shapes:
            raise PickerError(f"no shape {shape_id!r}", hint=f"shapes are: {', '.join(self.shapes) or 'none'}")
        from shapely.geometry import mapping

        geom = check_geometry(geometry, f"edited shape {shape_id}", drawn=self.shapes[shape_id]["source"] == "draw")
        self.error = ""
        self.shapes = {**self.shapes, shape_id: {**self.shapes[shape_id], "geometry": mapping(geom)}}
        self.log = self.log + [("edit", shape_id)]

    def remove(self, shape_id: str) -> None:
        if shape_id not in self.shapes:
            raise PickerError(f"no shape {shape_id!r}", hint=f"shapes are: {', '.join(self.shapes) or 'none'}")
        self.error = ""
        self.shapes = {k: v for k, v in self.shapes.items() if k != shape_id}
        self.log = self.log + [("delete", shape_id)]

    def clear(self) -> None:
        self.error = ""
        self.shapes = {}
        self.log = self.log + [("clear", "")]

    def set_bbox(self, west: float, south: float, east: float, north: float) -> str:
        """Replace everything with one rectangle (scripting shortcut)."""
        from shapely.geometry import box

        if not (west < east and south < north):
            raise PickerError(f"bbox ({west}, {south}, {east}, {north}) is not west < east, south < north")
        geom = check_geometry(box(west, south, east, north), "the bbox")
        self.clear()
        return self._store(geom, "api", "bbox")

    def _match(self, geometry: dict, sources=("draw",)) -> str | None:
        """The drawn shape closest (Hausdorff) to ``geometry``, same vertex count preferred."""
        from shapely.geometry import shape

        try:
            target = shape(geometry)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        candidates = [(k, shape(v["geometry"])) for k, v in self.shapes.items() if v["source"] in sources]
        if not candidates:
            return None
        n = len(target.exterior.coords) if target.geom_type == "Polygon" else None
        same = [(k, g) for k, g in candidates if g.geom_type == "Polygon" and len(g.exterior.coords) == n]
        pool = same or candidates
        return min(pool, key=lambda kg: _distance(kg[1], target))[0]

    def handle_draw(self, action: str, geo_json: dict) -> str | None:
        """Apply one DrawControl event; problems go to ``error`` (never raise into the widget)."""
        geometry = (geo_json or {}).get("geometry") if (geo_json or {}).get("type") == "Feature" else geo_json
        try:
            if action == "created":
                return self.add(geometry, source="draw", name=f"drawn shape {self._next_id}")
            if action == "edited":
                shape_id = self._match(geometry)
                if shape_id is None:
                    raise PickerError("an edited shape is not one the picker knows", hint="delete it and draw it again")
                self.replace(shape_id, geometry)
                return shape_id
            if action == "deleted":
                shape_id = self._match(geometry)
                if shape_id is not None:
                    self.remove(shape_id)
                return shape_id
            return None  # drawstart, editstart, ... carry nothing for the state
        except PickerError as exc:
            self.error = str(exc)
            return None

    # ---------------------------------------------------------------- upload
    def upload(self, filename: str, content: bytes) -> list[str]:
        """Add every polygon of a GeoJSON or GeoPackage file (reprojected to lon/lat). Raises PickerError."""
        import geopandas as gpd

        suffix = Path(filename).suffix.lower()
        if suffix not in (".geojson", ".json", ".gpkg"):
            raise self._fail(PickerError(f"cannot read {filename}: only GeoJSON (.geojson, .json) and "
                                         "GeoPackage (.gpkg)",
                                         hint="convert the file, e.g. with ogr2ogr"))
        if not content:
            raise self._fail(PickerError(f"{filename} is empty"))
        try:
            if suffix == ".gpkg":
                with tempfile.TemporaryDirectory() as tmp:  # GDAL wants a .gpkg name for GeoPackages
                    path = Path(tmp) / "upload.gpkg"
                    path.write_bytes(content)
                    frame = gpd.read_file(path)
            else:
                frame = self._read_geojson(filename, content)
        except PickerError as exc:
            raise self._fail(exc) from None
        except Exception as exc:  # pyogrio/fiona raise many kinds of errors for unreadable files
            raise self._fail(PickerError(f"cannot read {filename}: {str(exc).splitlines()[0][:200]}",
                                         hint="is it a GeoJSON or GeoPackage file?")) from None
        if frame.empty:
            raise self._fail(PickerError(f"{filename} holds no features"))
        if len(frame) > MAX_UPLOAD_FEATURES:
            raise self._fail(PickerError(f"{filename} holds {len(frame)} features, more than {MAX_UPLOAD_FEATURES}",
                                         hint="upload a smaller selection of parcels"))
        if frame.crs is not None and not frame.crs.equals("EPSG:4326"):
            frame = frame.to_crs("EPSG:4326")
        import shapely

        geoms = []
        for n, geom in enumerate(frame.geometry):
            label = f"feature {n + 1} of {filename}"
            try:
                geoms.append(check_geometry(geom if geom is not None else shapely.Polygon(), label))
            except PickerError as exc:
                raise self._fail(exc) from None
        # One shape per file: a parcels file is one area of interest, and delete removes it whole.
        merged = shapely.union_all(geoms)
        self.error = ""
        return [self._store(merged, "upload", filename)]

    def _read_geojson(self, filename: str, content: bytes):
        import geopandas as gpd

        try:
            data = json.loads(content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PickerError(f"{filename} is not valid JSON ({exc})".splitlines()[0]) from None
        if isinstance(data, dict) and data.get("type") in ("Polygon", "MultiPolygon", "LineString", "Point",
                                                             "MultiLineString", "MultiPoint"):
            data = {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": data, "properties": {}}]}
        elif isinstance(data, dict) and data.get("type") == "Feature":
            data = {"type": "FeatureCollection", "features": [data]}
        if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
            raise PickerError(f"{filename} is JSON but not GeoJSON",
                              hint="expected a FeatureCollection, Feature or geometry")
        features = data.get("features") or []
        for n, feature in enumerate(features):
            if not isinstance(feature, dict) or not feature.get("geometry"):
                raise PickerError(f"feature {n + 1} of {filename} has no geometry")
        crs = "EPSG:4326"
        named = ((data.get("crs") or {}).get("properties") or {}).get("name")
        if named:
            crs = named  # old-style GeoJSON crs member (e.g. EPSG:32634 exports)
        return gpd.GeoDataFrame.from_features(features, crs=crs)

    def _fail(self, exc: PickerError) -> PickerError:
        self.error = str(exc)
        return exc

    # ---------------------------------------------------------------- time
    def set_time_range(self, start: Any, end: Any) -> None:
        start, end = _as_date(start, "start date"), _as_date(end, "end date")
        if start > end:
            raise self._fail(PickerError(f"the time range starts ({start}) after it ends ({end})",
                                         hint="pick an end date on or after the start date"))
        self.error = ""
        self.preset = ""
        self.time_range = (start, end)

    def clear_time_range(self, *, one_left: bool = False) -> None:
        """No time range (searches of any date); ``one_left``: only one date was cleared, say so."""
        self.preset = ""
        self.time_range = None
        self.error = "pick both dates, or clear both to search any date" if one_left else ""

    def apply_preset(self, name: str) -> tuple[dt.date, dt.date]:
        try:
            start, end = preset_range(name, self.today)
        except PickerError as exc:
            raise self._fail(exc) from None
        self.error = ""
        self.time_range = (start, end)
        self.preset = name
        return start, end

    # ---------------------------------------------------------------- for searches
    def search_geometry(self):
        """The area to search with: ``aoi`` itself, or — for a parcels file with thousands of
        vertices — a simpler shape that contains it (grown ~200 m, then simplified), so requests
        and paging tokens stay small. Items are footprints kilometres wide; the few extra matches
        near the edge are harmless."""
        import shapely

        geom = self.aoi
        if geom is None or shapely.get_num_coordinates(geom) <= SEARCH_MAX_VERTICES:
            return geom
        cover = geom.buffer(2 * SEARCH_TOLERANCE).simplify(SEARCH_TOLERANCE)
        if shapely.get_num_coordinates(cover) > SEARCH_MAX_VERTICES:
            cover = geom.convex_hull
        return cover

    def search_parameters(self) -> dict:
        """``intersects`` and ``datetime`` for :meth:`eolab.search.Catalogue.search` (None where unset)."""
        from shapely.geometry import mapping

        geom = self.search_geometry()
        return {"intersects": mapping(geom) if geom is not None else None, "datetime": self.time_range}
