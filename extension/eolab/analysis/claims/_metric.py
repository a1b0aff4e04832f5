"""Whether parcels' coordinates can be measured as metres on the ground (areas, widths, buffers).

A projected CRS in metres is not enough: Web Mercator (EPSG:3857), common in files exported from web
maps, scales areas by 1/cos²(latitude) — 2.1× at 46° N — and a CRS in feet gives areas in ft². The
projection's own areal scale at the parcels (pyproj's factors) tells; 1 % is the tolerance (a UTM
zone used 6° beyond its meridian is within 0.5 %, national grids within 0.2 %).
"""

from __future__ import annotations

from typing import Any

from eolab.errors import EolabError

MAX_AREA_DISTORTION = 0.01


def metric_problem(gdf: Any) -> str | None:
    """Why ``gdf``'s coordinates are not ground metres where its parcels are, or None."""
    crs = gdf.crs
    if crs is None:
        return "it has no CRS"
    name = crs.to_string()
    if crs.is_geographic:
        return f"{name} is longitude/latitude, in degrees"
    units = {a.unit_name for a in crs.axis_info} if crs.axis_info else set()
    if not units or not units <= {"metre", "meter"}:
        return f"{name} measures in {', '.join(sorted(units)) or 'unknown units'}, not metres"
    scale = _areal_scale(gdf)
    if scale is not None and abs(scale - 1) > MAX_AREA_DISTORTION:
        return f"{name} ({crs.name}) scales areas by {scale:.2f} where the parcels are"
    return None


def _areal_scale(gdf: Any) -> float | None:
    from pyproj import Proj, Transformer

    geoms = gdf.geometry
    if geoms.isna().all() or geoms.is_empty.all():
        return None
    x0, y0, x1, y1 = geoms.total_bounds
    try:
        lon, lat = Transformer.from_crs(gdf.crs, "EPSG:4326", always_xy=True).transform((x0 + x1) / 2, (y0 + y1) / 2)
        scale = float(Proj(gdf.crs).get_factors(lon, lat).areal_scale)
    except Exception:  # a CRS pyproj cannot give factors for: judged by its units alone
        return None
    return scale if scale == scale and scale > 0 else None


def in_metres(gdf: Any) -> Any:
    """``gdf`` itself where its CRS measures ground metres, else reprojected to its UTM zone."""
    if gdf.crs is None:
        raise EolabError("the parcels have no CRS", hint="set the CRS the file was written in (gdf.set_crs(...))")
    return gdf if metric_problem(gdf) is None else gdf.to_crs(gdf.estimate_utm_crs())


def require_metres(gdf: Any, what: str) -> None:
    """Raise where ``what`` would measure ``gdf``'s coordinates as ground metres and they are not."""
    problem = metric_problem(gdf)
    if problem:
        raise EolabError(f"{what} needs parcels in a CRS of ground metres: {problem}",
                         hint="parcels = claims.in_metres(parcels) reprojects them to their UTM zone")
