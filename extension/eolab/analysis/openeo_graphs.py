"""The templates as openEO process graphs for a real back-end (Copernicus Data Space Ecosystem).

eolab runs its templates in xarray/dask next to the data (platform findings: openEO's local processing
is slow and does not install cleanly here). For users who want to run the same analysis at a
back-end, every template can build the **equivalent openEO process graph** with the template's own
parameters (``params.yaml`` defaults, overridden by the notebook's values). Graphs are built offline
with the ``openeo`` client (no connection) and follow CDSE conventions:

- ``load_collection("SENTINEL2_L2A")`` with spatial/temporal extent and the bands by name, plus
  ``SCL``; the time dimension is ``t``; values are digital numbers, so the graph scales them to
  reflectance (× 0.0001) before any band math (the local raster scale is not applied by openEO);
- cloud mask from SCL: the classes eolab masks (no data, saturated, cloud shadow, medium/high
  cloud probability, cirrus: 0 1 3 8 9 10);
- band math as in :mod:`eolab.analysis.indices` (NDWI, MNDWI, AWEI_sh vote for water; NDVI, NDMI,
  NDRE for crops); for water also the local method's snow/ice and shadow classes (SCL 11 or the
  spectral snow test; SCL 2, optionally the spectral shadow test), the NIR bound and frozen water by the frequency rule
  (:data:`WATER_GRAPH_LIMITS` says what is not expressed);
- ``aggregate_spatial`` for parcels (mean per parcel and date) or the area (water share per date),
  ``reduce_dimension`` over ``t`` for the water frequency;
- ``save_result`` (GTiff for rasters, Parquet or JSON for vector cubes).

``graph(template, parameters, parcels=...)`` returns ``{"process_graph": {...}}``; ``export`` writes it.
What differs from the local run (stated in every graph's ``description``): the haze test, gap filling,
the random forest, the mowing detector and the traffic light run client-side on the aggregated
series (the graph produces the per-parcel series they start from).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eolab.errors import EolabError

S2_COLLECTION = "SENTINEL2_L2A"
S1_COLLECTION = "SENTINEL1_GRD"
SCL_MASK_CLASSES = (0, 1, 3, 8, 9, 10)
SCALE = 0.0001
TEMPLATES = ("water-monitoring", "crop-type-map", "cap-parcel-checks")
GRAPHS = {"water-monitoring": ("water_extent", "water_frequency", "frozen_extent"),
          "crop-type-map": ("parcel_series",), "cap-parcel-checks": ("parcel_series", "parcel_s1_series")}


def template_parameters(template: str, overrides: Mapping[str, Any] | None = None) -> dict:
    """The template's ``params.yaml`` defaults updated with ``overrides`` (e.g. the notebook's values)."""
    import yaml

    from eolab.analysis.templates import templates_dir

    if template not in TEMPLATES:
        raise EolabError(f"no openEO graph for template {template!r}", hint="templates: " + ", ".join(TEMPLATES))
    params = yaml.safe_load((templates_dir() / template / "params.yaml").read_text()) or {}
    params.update({k: v for k, v in (overrides or {}).items()})
    return params


def _temporal(datetime: str) -> list[str]:
    parts = str(datetime).split("/")
    if len(parts) != 2 or not all(parts):
        raise EolabError(f"datetime {datetime!r} is not a 'start/end' interval", hint="e.g. 2026-03-01/2026-10-31")
    return [p[:10] for p in parts]


def _extent(bbox: Sequence[float] | None) -> dict:
    if bbox is None or len(bbox) != 4:
        raise EolabError("an openEO graph needs a bounding box [west, south, east, north] in degrees",
                         hint="set the bbox parameter (or give parcels)")
    w, s, e, n = (float(v) for v in bbox)
    if not (w < e and s < n and -180 <= w <= 180 and -90 <= s <= 90):
        raise EolabError(f"bbox {list(bbox)} is not [west, south, east, north] in degrees")
    return {"west": w, "south": s, "east": e, "north": n, "crs": "EPSG:4326"}


def _parcels_geojson(parcels: Any) -> tuple[dict, list[float]]:
    """(FeatureCollection in WGS84 with parcel_id, bbox) of a GeoDataFrame or a claims file path."""
    from eolab.analysis import claims

    if isinstance(parcels, (str, Path)):
        parcels = claims.read_claims(parcels)
    gdf = parcels.reset_index() if "parcel_id" not in parcels.columns else parcels
    gdf = gdf[["parcel_id", "geometry"]].to_crs("EPSG:4326")
    fc = json.loads(gdf.to_json(drop_id=True))
    return fc, [float(v) for v in gdf.total_bounds]


def s2_masked(bbox: Sequence[float], datetime: str, bands: Sequence[str], *, keep_scl: bool = False):
    """The masked, scaled Sentinel-2 L2A cube (DataCube, not connected) with ``bands`` (and the SCL
    band itself, unscaled, with keep_scl)."""
    from openeo.rest.datacube import DataCube

    cube = DataCube.load_collection(S2_COLLECTION, connection=None, spatial_extent=_extent(bbox),
                                    temporal_extent=_temporal(datetime), bands=list(bands) + ["SCL"],
                                    fetch_metadata=False)
    scl = cube.band("SCL")
    cloud = None
    for c in SCL_MASK_CLASSES:
        cloud = (scl == c) if cloud is None else (cloud | (scl == c))
    data = cube.filter_bands(list(bands)).mask(cloud)
    data = data.apply(lambda x: x * SCALE)  # digital numbers -> reflectance (float)
    if keep_scl:
        data = data.merge_cubes(cube.filter_bands(["SCL"]).mask(cloud))
    return data


def _nd(a, b):
    return (a - b) / (a + b)


def _index_cube(cube, names: Sequence[str]):
    """A cube whose ``bands`` are the indices ``names`` (one apply_dimension over bands)."""
    from openeo.processes import array_create, array_element

    def per_pixel(data):
        b = {k: array_element(data, label=k) for k in ("B02", "B03", "B04", "B05", "B08", "B8A", "B11", "B12")
             if k in wanted}
        formulas = {"NDVI": lambda: _nd(b["B08"], b["B04"]), "NDMI": lambda: _nd(b["B8A"], b["B11"]),
                    "NDRE": lambda: _nd(b["B8A"], b["B05"]), "NDWI": lambda: _nd(b["B03"], b["B08"]),
                    "MNDWI": lambda: _nd(b["B03"], b["B11"])}
        return array_create([formulas[n]() for n in names])

    from eolab.analysis.indices import bands_for

    wanted = set(bands_for(list(names)))
    return cube.apply_dimension(dimension="bands", process=per_pixel).rename_labels("bands", target=list(names))


#: What the water graphs cannot express of the local method (written into every water graph's export).
WATER_GRAPH_LIMITS = (
    "frozen water uses the frequency rule (snow/ice where the water frequency >= 0.5), not the local "
    "default (the nearest open observation of the pixel): openEO has no forward/backward fill along t",
    "Otsu thresholds (method mndwi-otsu / ndwi-otsu) and the Rayleigh correction of L1C input are not "
    "expressed: the graph reads L2A surface reflectance and uses the fixed thresholds",
    "the gap filling of unobserved pixels by the frequency (filled_ha) and the reservoir (largest water "
    "body) are computed client-side from the returned maps",
    "the slope rule (no water on slopes >= 30 % of the surface model, dem_collection) is not expressed: "
    "terrain shadow the SCL misses can be called water by the graph",
)


def water_graphs(params: Mapping[str, Any]) -> dict[str, dict]:
    """water-monitoring, the local method (:func:`eolab.analysis.water.surface_classes`) as far as
    openEO processes go: per date, snow/ice (SCL 11 or the SNOWMAP test NDSI > 0.4, NIR > 0.11,
    green > 0.10) and dark area / terrain shadow (SCL 2; with the parameter spectral_shadow also the
    indices' water without NIR absorption, B08 >= max(B03, B04)) are not observed; water is the vote of
    NDWI > 0, MNDWI > 0, AWEI_sh > 0 (two of three) where NIR < 0.11. Graphs: ``water_extent``
    (share of the observed area that is water, per date: aggregate_spatial mean, JSON),
    ``water_frequency`` (mean over t, GTiff) and ``frozen_extent`` (share of the area that is
    snow/ice on water, per date). What is not expressed: :data:`WATER_GRAPH_LIMITS`."""
    from shapely.geometry import box, mapping

    from eolab.analysis import water as local

    method = params.get("method", "vote")
    if method != "vote":
        raise EolabError(f"the openEO graph implements the 'vote' method, not {method!r}",
                         hint="run the template locally for the Otsu methods")
    bands = ["B02", "B03", "B04", "B08", "B11", "B12"]
    cube = s2_masked(params.get("bbox"), params["datetime"], bands, keep_scl=True)
    b2, b3, b4, b8, b11, b12 = (cube.band(b) for b in bands)
    scl = cube.band("SCL")
    ndwi = (b3 - b8) / (b3 + b8)
    mndwi = (b3 - b11) / (b3 + b11)  # also the NDSI
    awei = b2 + 2.5 * b3 - 1.5 * (b8 + b11) - 0.25 * b12
    snow = ((mndwi > local.SNOW_NDSI) & (b8 > local.SNOW_NIR) & (b3 > local.SNOW_GREEN)) | (scl == local.SCL_SNOW)
    vote = ((ndwi > 0) + (mndwi > 0) + (awei > 0)) >= 2
    wet = vote & (b8 < local.WATER_NIR)
    hidden = snow | (scl == local.SCL_DARK)
    if params.get("spectral_shadow"):  # local surface_classes(spectral_shadow=True): no NIR absorption
        hidden = hidden | (wet & (b8 >= b3) & (b8 >= b4))
    water = wet.mask(hidden)
    area = mapping(box(*[float(v) for v in params["bbox"]]))
    extent = water.aggregate_spatial(geometries=area, reducer="mean").save_result(format="JSON")
    freq = water.reduce_dimension(dimension="t", reducer="mean")
    # a (x, y) cube merged with a (t, x, y) cube applies to every date (openEO merge_cubes)
    frozen = snow.merge_cubes(freq >= 0.5, overlap_resolver="and")
    frozen_extent = frozen.aggregate_spatial(geometries=area, reducer="mean").save_result(format="JSON")
    return {"water_extent": extent.flat_graph(), "water_frequency": freq.save_result(format="GTiff").flat_graph(),
            "frozen_extent": frozen_extent.flat_graph()}


def parcel_series_graph(params: Mapping[str, Any], parcels: Any, indices: Sequence[str] = ("NDVI", "NDMI", "NDRE"),
                        out_format: str = "Parquet") -> dict:
    """Per-parcel, per-date means of the crop indices (cloud-masked): aggregate_spatial over the parcels."""
    fc, bbox = _parcels_geojson(parcels)
    from eolab.analysis.indices import bands_for

    cube = _index_cube(s2_masked(bbox, params["datetime"], bands_for(list(indices))), indices)
    return cube.aggregate_spatial(geometries=fc, reducer="mean").save_result(format=out_format).flat_graph()


def parcel_s1_graph(params: Mapping[str, Any], parcels: Any, out_format: str = "Parquet") -> dict:
    """Per-parcel, per-date mean VV and VH sigma0 (linear; dB is taken of the means client-side)."""
    from openeo.rest.datacube import DataCube

    fc, bbox = _parcels_geojson(parcels)
    cube = DataCube.load_collection(S1_COLLECTION, connection=None, spatial_extent=_extent(bbox),
                                    temporal_extent=_temporal(params["datetime"]), bands=["VV", "VH"],
                                    fetch_metadata=False)
    import logging

    log = logging.getLogger("openeo.rest.datacube")
    level = log.level
    log.setLevel(logging.ERROR)  # offline: the client cannot look up the back-end's coefficient options
    try:
        cube = cube.sar_backscatter(coefficient="sigma0-ellipsoid")
    finally:
        log.setLevel(level)
    return cube.aggregate_spatial(geometries=fc, reducer="mean").save_result(format=out_format).flat_graph()


def graph(template: str, parameters: Mapping[str, Any] | None = None, *, parcels: Any = None) -> dict[str, dict]:
    """All openEO process graphs of ``template`` ({name: flat graph}) with its parameters.

    parameters: overrides of ``params.yaml`` (the notebook's values). parcels: GeoDataFrame or claims
    file for crop-type-map / cap-parcel-checks (default: the ``parcels`` / ``claims_file`` parameter).
    """
    params = template_parameters(template, parameters)
    if template == "water-monitoring":
        return water_graphs(params)
    parcels = parcels if parcels is not None else params.get("parcels") or params.get("claims_file")
    if parcels is None:
        raise EolabError(f"{template} needs parcels for its openEO graph", hint="pass parcels= or set the parameter")
    out = {"parcel_series": parcel_series_graph(params, parcels)}
    if template == "cap-parcel-checks" and params.get("s1_collection"):
        out["parcel_s1_series"] = parcel_s1_graph(params, parcels)
    return out


def export(template: str, path: str | Path, parameters: Mapping[str, Any] | None = None, *, parcels: Any = None) -> Path:
    """Write the template's graphs as one JSON file: {"template", "parameters", "graphs": {name:
    {"process_graph": ...}}, "description"} — each graph can be sent to a back-end as is
    (``connection.create_job(g["process_graph"])``)."""
    params = template_parameters(template, parameters)
    graphs = graph(template, params, parcels=parcels)
    doc = {"template": template, "backend": "Copernicus Data Space Ecosystem (openeo.dataspace.copernicus.eu)",
           "parameters": {k: v for k, v in params.items() if isinstance(v, (str, int, float, bool, list, type(None)))},
           "graphs": {name: {"process_graph": g} for name, g in graphs.items()},
           "description": ("Cloud-masked (SCL 0 1 3 8 9 10), scaled (x 0.0001) Sentinel-2 L2A; the per-parcel or "
                           "per-area series these graphs return are what the template's client-side steps "
                           "(haze test, gap filling, random forest, events, traffic light) start from.")}
    if template == "water-monitoring":
        doc["description"] += (" Water: snow/ice (SCL 11 or NDSI > 0.4, NIR > 0.11, green > 0.10) and shadow (SCL 2; "
                               "with spectral_shadow also B08 >= max(B03, B04) where the indices say water) not "
                               "observed; vote of NDWI, "
                               "MNDWI, AWEI_sh > 0 where NIR < 0.11; frozen = snow/ice where the water frequency >= 0.5.")
        doc["not_expressed"] = list(WATER_GRAPH_LIMITS)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, default=str))
    return path


def process_ids(flat_graph: Mapping[str, Any]) -> list[str]:
    """All process ids in a flat graph, callbacks included (for checks and tests)."""
    out: list[str] = []

    def walk(g):
        for node in g.values():
            out.append(node["process_id"])
            for arg in node.get("arguments", {}).values():
                if isinstance(arg, dict) and "process_graph" in arg:
                    walk(arg["process_graph"])
    walk(flat_graph.get("process_graph", flat_graph))
    return out
