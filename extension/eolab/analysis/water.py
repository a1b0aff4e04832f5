"""Surface water from Sentinel-2 (and Sentinel-1): per-date maps, extent time series, frequency, change.

Optical method, per pixel and date, on cloud-masked surface reflectance: a majority vote of three
standard water indices, each at its published threshold of 0 —
NDWI (McFeeters 1996), MNDWI (Xu 2006) and AWEI_sh (Feyisa et al. 2014). One index alone fails in
known ways (NDWI on vegetated/turbid water, MNDWI and AWEI under thin haze and on dark built-up
surfaces); two of three agreeing is robust to each of these. Water must also be dark in the NIR
(B08 < 0.11, the bound of Fmask's water test, Zhu & Woodcock 2012), which rejects the bright-NIR
snow mixtures (snowy forest, snow patches) where MNDWI and AWEI_sh fire. ``method`` selects a single index or
an Otsu threshold instead (Donchyts et al. 2016: Otsu on pixels sampled along the water edges,
used only where that sample is bimodal, Ashman's D ≥ 2; else the fixed threshold 0). Nothing is
fitted on reference data.

Before any index, every pixel is classed (:func:`surface_classes`): snow and ice (SCL 11 where
the cube has an SCL band, and everywhere the spectral snow test of Hall et al. 1995/2002:
NDSI > 0.4, NIR > 0.11, green > 0.10 — MNDWI *is* the NDSI, so snow would otherwise be water)
and dark-area / terrain shadow (SCL 2) are not water and not land: they are "not observed"
in the water map, and snow/ice on pixels that were water at their nearest open observation is reported as frozen water
(:func:`frozen`, ``extent(..., frozen=...)``). The processing level is read from the cube's
metadata (:func:`eolab.analysis.atmosphere.processing_level`): top-of-atmosphere (L1C) input is
refused unless ``toa="rayleigh"`` asks for the documented Rayleigh correction. An L1C cube without a
cloud mask but with the detector's ten bands is masked by s2cloudless (:mod:`eolab.analysis.clouds`);
any other cube without a cloud mask gives a warning.

Standing water is flat: with a surface model (``slope=``, from :func:`terrain_slope`, e.g. the
Copernicus DEM GLO-30), no pixel on a slope of 30 % or more is water (the percent-slope rule of
USGS DSWE for its high- and moderate-confidence water: the DSWE algorithm description's
percent_slope_high/_moderate; Jones 2019 describes DSWE). This removes terrain shadow on hillsides that the
SCL misses, which the indices otherwise call water; it needs no sun geometry and no threshold of
its own.

Radar method (cloudy dates): VV backscatter in dB, 3×3 median speckle filter, Otsu threshold per date
(water is the dark mode; Martinis et al. 2015).

Maps are lazy xarray objects: 1 water, 0 not water, NaN not observed (cloud, shadow, snow, nodata).
Frequency = water observations / valid observations (as DEA Water Observations, Mueller et al. 2016).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from eolab.analysis import atmosphere, clouds
from eolab.analysis.indices import index
from eolab.errors import EolabError, EolabWarning

OPTICAL_BANDS = ["B02", "B03", "B04", "B08", "B11", "B12"]
METHODS = ("vote", "ndwi", "mndwi", "awei", "mndwi-otsu", "ndwi-otsu")
TOA_OPTIONS = ("refuse", "rayleigh")

#: Spectral snow test (MODIS SNOWMAP, Hall et al. 1995, 2002): NDSI = (green - SWIR1) / (green + SWIR1)
#: above 0.4, NIR above 0.11 (water also has a high NDSI but a dark NIR), green above 0.10.
SNOW_NDSI, SNOW_NIR, SNOW_GREEN = 0.4, 0.11, 0.10
SCL_SNOW, SCL_DARK = 11, 2
#: Water is dark in the NIR: NIR < 0.11, the bound of Fmask's water test (Zhu & Woodcock 2012) and
#: the snow/water separator of SNOWMAP (Hall et al. 1995). Required of every index's water: it
#: rejects the bright-NIR snow mixtures (snowy forest, snow patches) where MNDWI and AWEI_sh fire.
#: (Fmask's NDVI conditions are not used: they reject sparse floating vegetation on water.)
WATER_NIR = 0.11
#: classes of :func:`surface_classes`
SURFACE = {0: "land", 1: "open water", 2: "snow or ice", 3: "dark area / terrain shadow"}
#: Otsu bimodality guard: Ashman's D of the two classes (Ashman et al. 1994; D > 2 separates them)
MIN_ASHMAN_D = 2.0
MIN_EDGE_PIXELS = 50
#: Water is not found on slopes of 30 % or more (USGS DSWE's percent-slope rule for high- and
#: moderate-confidence water), read from a surface model such as the Copernicus DEM.
MAX_WATER_SLOPE = 30.0
#: The slope is that of the terrain averaged over 90 m (GLO-90's cells): a 30 m surface model has
#: tree lines in it, whose 10-15 m steps along a shore would otherwise read as steep slopes.
SLOPE_BASELINE_M = 90.0


def otsu_threshold(values: Any, *, bins: int = 256, value_range: tuple[float, float] | None = None) -> float:
    """Otsu's (1979) threshold maximising the between-class variance of a 1-D sample (NaN ignored)."""
    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v)]
    if v.size < 2 or np.ptp(v) == 0:
        raise EolabError("Otsu's threshold needs at least two distinct finite values",
                         hint="the area may be fully clouded on this date")
    hist, edges = np.histogram(v, bins=bins, range=value_range or (float(v.min()), float(v.max())))
    return otsu_from_histogram(hist, edges)


def otsu_from_histogram(hist: np.ndarray, edges: np.ndarray) -> float:
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist, dtype=float)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        between = w0 * w1 * (m0 / w0 - (m0[-1] - m0) / w1) ** 2
    between[~np.isfinite(between)] = -1
    return float(edges[int(np.argmax(between)) + 1])


def ashman_d(values: Any, threshold: float) -> float:
    """Ashman's D of the two classes a threshold makes: sqrt(2)|m1 - m2| / sqrt(s1² + s2²)."""
    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v)]
    a, b = v[v <= threshold], v[v > threshold]
    if a.size < 2 or b.size < 2:
        return 0.0
    spread = np.sqrt(a.var() + b.var())
    return float(np.sqrt(2) * abs(a.mean() - b.mean()) / spread) if spread > 0 else float("inf")


def edge_otsu(values: Any, *, initial: float = 0.0, fallback: float = 0.0, buffer: int = 2,
              min_edge_pixels: int = MIN_EDGE_PIXELS, min_d: float = MIN_ASHMAN_D) -> tuple[float, bool]:
    """(threshold, used Otsu?) of a 2-D index image, after Donchyts et al. (2016).

    Pixels within ``buffer`` pixels of the edges of the ``initial``-threshold water map are sampled
    (so water and land are about equally represented), Otsu splits the sample, and the split is
    kept only if the sample is bimodal (Ashman's D ≥ ``min_d``) and has enough edge pixels; else
    ``fallback`` (the published fixed threshold) is returned. Donchyts et al. take Canny edges of
    the index; the edges of the thresholded map are used here (no image-processing dependency).
    """
    from scipy import ndimage

    v = np.asarray(values, float)
    finite = np.isfinite(v)
    wet0 = np.where(finite, v, -np.inf) > initial
    if not wet0.any() or wet0[finite].all():
        return fallback, False
    near = ndimage.binary_dilation(wet0, iterations=buffer) & ~ndimage.binary_erosion(wet0, iterations=buffer)
    sample = v[near & finite]
    if sample.size < min_edge_pixels or np.ptp(sample) == 0:
        return fallback, False
    thr = otsu_threshold(sample, bins=200, value_range=(-1.0, 1.0))
    if ashman_d(sample, thr) < min_d:
        return fallback, False
    return thr, True


def _per_date_otsu(da: Any, bins: int = 200, value_range=(-1.0, 1.0)) -> np.ndarray:
    """Otsu threshold of every time slice of a (time, y, x) DataArray (one lazy pass)."""
    import dask
    import dask.array as darr

    data = da.data
    hists = []
    for k in range(da.sizes["time"]):
        layer = data[k]
        if isinstance(layer, darr.Array):
            h, _ = darr.histogram(layer[darr.isfinite(layer)], bins=bins, range=value_range)
        else:
            h, _ = np.histogram(layer[np.isfinite(layer)], bins=bins, range=value_range)
        hists.append(h)
    hists = dask.compute(*hists)
    edges = np.linspace(value_range[0], value_range[1], bins + 1)
    out = []
    for h in hists:
        out.append(otsu_from_histogram(np.asarray(h), edges) if np.count_nonzero(h) > 1 else np.nan)
    return np.array(out)


def snow_ice(cube: Any) -> Any:
    """Spectral snow/ice test (Hall et al. 1995, 2002): NDSI > 0.4 and NIR > 0.11 and green > 0.10."""
    ndsi = index(cube, "MNDWI")  # (green - SWIR1) / (green + SWIR1): the same formula
    return (ndsi > SNOW_NDSI) & (cube["B08"] > SNOW_NIR) & (cube["B03"] > SNOW_GREEN)


def dark_nir(cube: Any) -> Any:
    """The NIR bound every water pixel meets: B08 < 0.11 (Zhu & Woodcock 2012; Hall et al. 1995)."""
    return cube["B08"] < WATER_NIR


def nir_absorbed(cube: Any) -> Any:
    """Water absorbs the NIR: its B08 lies below its green or red (NDWI > 0 or NDVI < 0). Shadowed
    land keeps its own spectral shape, only darker (vegetation and soil brighter in the NIR than in
    the visible, snow about as bright), so a dark pixel the indices call water without this
    absorption is shadow (terrain or cloud shadow), not water."""
    return cube["B08"] < np.maximum(cube["B03"], cube["B04"])


def _check_input(cube: Any, toa: str, sun_zenith: Any) -> Any:
    """The cube as surface (or Rayleigh-corrected) reflectance; refuses or corrects L1C; warns."""
    if toa not in TOA_OPTIONS:
        raise EolabError(f"toa={toa!r} is not known", hint="use 'refuse' or 'rayleigh'")
    level = atmosphere.processing_level(cube)
    if level == "L1C" and not _has_cloud_mask(cube) and clouds.has_bands(cube):
        cube = clouds.mask_clouds(cube)  # no SCL: s2cloudless, on the top-of-atmosphere data it was trained on
    if level == "L1C":
        if toa == "refuse":
            raise EolabError(
                "the cube is top-of-atmosphere reflectance (L1C): the water indices' thresholds are defined "
                "on surface reflectance, and molecular scattering shifts NDWI/MNDWI right across them",
                hint="load a surface-reflectance collection (e.g. sentinel-2-l2a), or pass toa='rayleigh' "
                     "to remove the Rayleigh term computed from the sun geometry (eolab.analysis.atmosphere)")
        cube = atmosphere.rayleigh_correct(cube, sun_zenith=sun_zenith)
    elif level is None:
        warnings.warn("the cube's processing level is unknown (no processing:level or collection in its "
                      "metadata): it is taken as surface reflectance", EolabWarning, stacklevel=3)
    if not _has_cloud_mask(cube):
        warnings.warn("no cloud mask: the cube has no SCL band or mask, so clouds and their shadows are "
                      "classified like the surface (cloud shadow over land can be called water); for L1C "
                      "items load " + ", ".join(clouds.BANDS) + " and the s2cloudless detector masks clouds",
                      EolabWarning, stacklevel=3)
    return cube


def _has_cloud_mask(cube: Any) -> bool:
    mask = ((cube.attrs.get("eolab:provenance") or {}).get("parameters") or {}).get("mask")
    return bool("clear" in cube or "SCL" in cube or mask or cube.attrs.get("eolab:cloud_mask"))


def item_level(item: Any) -> str | None:
    """'L1C', 'L2A' or None for one STAC item (dict or pystac Item): its ``processing:level`` or
    ``s2:product_type``, else its collection's name, read as :func:`atmosphere.processing_level` does."""
    from types import SimpleNamespace

    view = item if isinstance(item, dict) else item.to_dict(transform_hrefs=False)
    props = view.get("properties") or {}
    attrs = {key: props.get(key) for key in ("processing:level", "s2:product_type")}
    attrs["eolab:provenance"] = {"items": [{"collection": view.get("collection")}]}
    return atmosphere.processing_level(SimpleNamespace(attrs=attrs))


def input_bands(items: Any) -> list[str]:
    """The bands to load from ``items`` for :func:`surface_classes`: the six optical bands, plus SCL
    where every item carries it (its cloud mask, snow and shadow classes). Top-of-atmosphere items
    without SCL (L1C) bring the bands of the s2cloudless detector instead, which then masks their
    clouds; items with neither get the optical bands only (the classification warns: no cloud mask)."""
    from eolab.data import load

    entries = load._as_entries(items)
    if load.carries_scl(entries):
        return OPTICAL_BANDS + ["SCL"]
    with_detector = OPTICAL_BANDS + [b for b in clouds.BANDS if b not in OPTICAL_BANDS]
    if any(item_level(e) == "L1C" for e in entries) and load.has_bands(entries, with_detector):
        return with_detector
    return list(OPTICAL_BANDS)


def surface_classes(cube: Any, method: str = "vote", *, snow: bool = True, shadow: bool = True,
                    spectral_shadow: bool = False, water_test: bool = True, toa: str = "refuse", sun_zenith: Any = None,
                    slope: Any = None) -> Any:
    """Per-date surface classes (time, y, x): 0 land, 1 open water, 2 snow/ice, 3 dark-area/terrain
    shadow, NaN not observed. Lazy for a lazy cube (the Otsu methods compute one date at a time).

    cube: Dataset with B02 B03 B04 B08 B11 B12 reflectance, cloud-masked (NaN where masked); an
        ``SCL`` variable (load it as a band) adds Sen2Cor's snow (11) and dark-area (2) classes.
    snow / shadow: class snow/ice and SCL dark areas apart from water and land (default).
    spectral_shadow: also class as shadow what the indices call water without NIR absorption
        (:func:`nir_absorbed`); off by default: it cut terrain-shadow false water on the demo but set
        aside vegetated water there and much real water on the Berlin L1C scene (benchmarks/RESULTS.md).
    water_test: water must also be dark in the NIR (:func:`dark_nir`; default).
    slope: terrain slope (%) on the cube's grid (:func:`terrain_slope`): no water where it is
        ``MAX_WATER_SLOPE`` (30 %) or more; None (default): no slope rule.
    toa: what to do with top-of-atmosphere (L1C) input: "refuse" (default) or "rayleigh"
        (:func:`eolab.analysis.atmosphere.rayleigh_correct`; sun_zenith in degrees, default from
        the time and the scene centre).
    """
    import xarray as xr

    if method not in METHODS:
        raise EolabError(f"unknown water method {method!r}", hint="choose one of " + ", ".join(METHODS))
    missing = [b for b in OPTICAL_BANDS if b not in cube]
    if missing:
        raise EolabError(f"water classification needs bands {', '.join(missing)}", hint="load them into the cube")
    cube = _check_input(cube, toa, sun_zenith)
    valid = cube["B03"].notnull() & cube["B08"].notnull() & cube["B11"].notnull()
    scl = cube["SCL"] if "SCL" in cube else None
    snowy = None
    if snow:
        snowy = snow_ice(cube)
        if scl is not None:
            snowy = snowy | (scl == SCL_SNOW)
    dark = (scl == SCL_DARK) if (shadow and scl is not None) else None
    if slope is not None:
        slope = _on_grid(slope, cube)
    steep = (slope >= MAX_WATER_SLOPE) if slope is not None else None  # NaN (unknown) is not steep
    thresholds, otsu_used = None, None
    if method == "vote":
        votes = ((index(cube, "NDWI") > 0).astype("int8") + (index(cube, "MNDWI") > 0).astype("int8")
                 + (index(cube, "AWEI_SH") > 0).astype("int8"))
        wet = votes >= 2
    elif method in ("ndwi", "mndwi"):
        wet = index(cube, method.upper()) > 0
    elif method == "awei":
        wet = index(cube, "AWEI_SH") > 0
    else:
        idx = index(cube, method.split("-")[0].upper())
        screened = idx
        if snowy is not None:
            screened = screened.where(~snowy)
        if dark is not None:
            screened = screened.where(~dark)
        if steep is not None:
            screened = screened.where(~steep)
        thresholds, otsu_used = [], []
        for k in range(idx.sizes["time"]):
            thr, used = edge_otsu(np.asarray(screened.isel(time=k).values))
            thresholds.append(thr)
            otsu_used.append(used)
        wet = idx > xr.DataArray(np.array(thresholds), dims=["time"], coords={"time": idx.time})
    if water_test:
        wet = wet & dark_nir(cube)
    if steep is not None:
        wet = wet & ~steep
    shaded = None
    if shadow and spectral_shadow:  # "water" by the indices, without water's NIR absorption
        shaded = wet & ~nir_absorbed(cube)
        wet = wet & ~shaded
        dark = shaded if dark is None else (dark | shaded)
    cls = wet.astype("float32")
    if dark is not None:
        cls = xr.where(dark, np.float32(3), cls)
    if snowy is not None:
        cls = xr.where(snowy, np.float32(2), cls)
    out = cls.astype("float32").where(valid)
    out.name = "surface"
    out.attrs = {"method": method, "values": "0 land, 1 open water, 2 snow or ice, 3 dark area / terrain shadow, "
                                             "NaN not observed",
                 "processing_level": atmosphere.processing_level(cube) or "unknown",
                 "water_test": f"NIR < {WATER_NIR}" if water_test else "off",
                 "snow_test": f"SCL {SCL_SNOW} or NDSI > {SNOW_NDSI}, NIR > {SNOW_NIR}, green > {SNOW_GREEN}"
                 if snow else "off",
                 "shadow": ("off" if not shadow else f"SCL {SCL_DARK}" + (
                     " or the indices' water without NIR absorption (B08 >= max(B03, B04))" if spectral_shadow else "")),
                 "slope_rule": _slope_rule(slope)}
    if thresholds is not None:
        out.attrs["thresholds"] = [round(float(t), 4) for t in thresholds]
        out.attrs["otsu_used"] = [bool(u) for u in otsu_used]
    return out


def _slope_rule(slope: Any) -> str:
    if slope is None:
        return "off"
    coverage = slope.attrs.get("coverage", 1.0)
    where = f" (the surface model covers {100 * coverage:.1f} % of the area)" if coverage < 1 else ""
    return f"no water on slopes >= {MAX_WATER_SLOPE:g} %{where}"


def _on_grid(slope: Any, cube: Any) -> Any:
    """``slope`` as a (y, x) DataArray on the cube's pixels (an error naming the mismatch, never a
    silently shifted mask: coordinates must agree to 1 % of a pixel)."""
    import xarray as xr

    if not isinstance(slope, xr.DataArray) or set(slope.dims) != {"y", "x"}:
        raise EolabError("slope must be a (y, x) DataArray of percent slope", hint="make it with water.terrain_slope")
    tolerance = 0.01 * min(abs(float(cube.x[1] - cube.x[0])), abs(float(cube.y[1] - cube.y[0])))
    if slope.sizes["y"] != cube.sizes["y"] or slope.sizes["x"] != cube.sizes["x"] or not (
            np.allclose(slope.x.values, cube.x.values, rtol=0, atol=tolerance)
            and np.allclose(slope.y.values, cube.y.values, rtol=0, atol=tolerance)):
        raise EolabError("the slope is not on the cube's grid",
                         hint="make it with water.terrain_slope(dem_items, cube), which loads onto the cube's pixels")
    crs_s, crs_c = slope.attrs.get("crs"), cube.attrs.get("crs")
    if crs_s and crs_c and crs_s != crs_c:
        raise EolabError(f"the slope is in {crs_s}, the cube in {crs_c}", hint="make it with water.terrain_slope")
    return slope.assign_coords(x=cube.x, y=cube.y)


def _window_slope(a: np.ndarray, size: int, dy: float, dx: float) -> np.ndarray:
    """Slope (%) of ``a`` averaged over a size x size window; voids (NaN) do not spread: the average
    is over the window's valid pixels, and only pixels with none stay NaN."""
    from scipy import ndimage

    a = np.asarray(a, dtype=np.float64)
    valid = np.isfinite(a)
    if size > 1:
        total = ndimage.uniform_filter(np.where(valid, a, 0.0), size=size, mode="nearest")
        share = ndimage.uniform_filter(valid.astype(np.float64), size=size, mode="nearest")
        with np.errstate(invalid="ignore", divide="ignore"):
            a = np.where(share > 0, total / share, np.nan)
    gy, gx = np.gradient(a, dy, dx)
    return (100.0 * np.hypot(gx, gy)).astype(np.float32)


def slope_percent(elevation: Any, baseline: float = SLOPE_BASELINE_M) -> Any:
    """Slope (%, 100 × rise over run) of an elevation grid (y, x) in metres on a projected grid, of
    the terrain averaged over about ``baseline`` metres (a square window of an odd number of pixels;
    0: the grid's own pixels). Voids stay local (NaN where the window holds no elevation, and at most
    one pixel beyond). Lazy for a dask-backed grid (blocks overlap by the window)."""
    import dask.array
    import xarray as xr

    dy = abs(float(elevation.y[1] - elevation.y[0]))
    dx = abs(float(elevation.x[1] - elevation.x[0]))
    if max(dx, dy) < 0.01:
        raise EolabError(f"the elevation grid's pixels are {dx:g} x {dy:g}: degrees, not metres",
                         hint="load the surface model onto a projected grid (water.terrain_slope does)")
    size = max(1, int(round(baseline / max(dx, dy))) | 1) if baseline else 1
    depth = size // 2 + 1
    data = elevation.data
    if isinstance(data, dask.array.Array) and min(data.shape) > depth:
        out = data.map_overlap(_window_slope, depth=depth, boundary="nearest", dtype=np.float32,
                               size=size, dy=dy, dx=dx)
    else:  # the same edges as the blocks': the grid extended by its edge values
        padded = np.pad(np.asarray(data, dtype=np.float64), depth, mode="edge")
        out = _window_slope(padded, size, dy, dx)[depth:-depth, depth:-depth]
    return xr.DataArray(out, coords={"y": elevation.y, "x": elevation.x}, dims=("y", "x"), name="slope",
                        attrs={"units": "%", "baseline_m": size * max(dx, dy)})


def terrain_slope(items: Any, cube: Any) -> Any:
    """Terrain slope (%) on the cube's pixels from surface-model items (e.g. ``cop-dem-glo-30``:
    Copernicus DEM GLO-30 on Planetary Computer, Earth Search, the demo), for
    ``surface_classes(slope=...)``. The model is resampled bilinearly onto the cube's grid (nearest
    copies would turn its slopes into steps); several tiles are mosaicked. Where the model has no
    elevation the slope is NaN and the rule does not apply: a warning gives the share (``coverage``
    in the attrs). None, with a warning, when ``items`` is empty."""
    import odc.geo.xr  # noqa: F401  (the .odc accessor)

    from eolab.data import load

    entries = [] if items is None or (isinstance(items, (list, tuple)) and not items) else load._as_entries(items)
    if not entries:
        warnings.warn("no surface model (DEM) items: the slope rule (no water on slopes >= "
                      f"{MAX_WATER_SLOPE:g} %) is off, so terrain shadow the SCL misses can be called water",
                      EolabWarning, stacklevel=2)
        return None
    geobox = cube.odc.geobox
    if geobox.crs is None or geobox.crs.geographic:
        raise EolabError("terrain_slope needs the cube on a projected grid (metres)",
                         hint="load the cube with a projected crs (e.g. its UTM zone) and a resolution in metres")
    view = entries[0] if isinstance(entries[0], dict) else entries[0].to_dict(transform_hrefs=False)
    assets = view.get("assets") or {}
    key = "data" if "data" in assets else next(
        (k for k, a in assets.items() if "data" in (a.get("roles") or [])), None)
    if key is None:
        raise EolabError(f"surface-model item {view.get('id')} has no elevation asset",
                         hint=f"its assets are {', '.join(assets) or 'none'}; the DEM's asset should be 'data'")
    dem = load.load_cube(entries, bands=[key], geobox=geobox, mask=None, resampling="bilinear",
                         chunks={"x": 2048, "y": 2048})
    values = dem[key].attrs
    if values.get("scale_applied", 1.0) != 1.0 or values.get("offset_applied", 0.0) != 0.0:
        raise EolabError(f"the surface model's values were scaled ({values.get('values_from')}: x "
                         f"{values.get('scale_applied')} + {values.get('offset_applied')}), not metres",
                         hint="give the DEM's asset raster:bands scale 1, or take the member's 'profile: scale' off")
    elevation = dem[key].max("time") if "time" in dem[key].dims else dem[key]
    # read and computed once (a 2-D layer): the classes, each Otsu date and the coverage reuse it
    slope = slope_percent(elevation).persist()
    coverage = 1.0 - float(slope.isnull().mean().compute())
    slope.attrs.update(coverage=round(coverage, 6), crs=cube.attrs.get("crs"),
                       items=[str(e.get("id") if isinstance(e, dict) else e.id) for e in entries])
    if coverage < 1.0:
        warnings.warn(f"the surface model covers {100 * coverage:.1f} % of the area: the slope rule does not apply "
                      "on the rest", EolabWarning, stacklevel=2)
    return slope


def surface_model_items(catalogue: Any, collection: str | None, bbox: Any) -> list:
    """The items of surface-model ``collection`` (e.g. ``cop-dem-glo-30``) over ``bbox`` (lon/lat)
    from an :class:`eolab.search.Catalogue`, for :func:`terrain_slope` and the provenance record.
    [] when ``collection`` is None, and [] with a warning naming the collection when the catalogue
    holds none there. A provider that does not answer is an error, as in every template search."""
    from eolab.errors import NoItemsError

    if not collection:
        return []
    try:
        return catalogue.find(collection, bbox=bbox)
    except NoItemsError as e:
        warnings.warn(f"{e}: no surface model, so the slope rule is off; check dem_collection (a collection of "
                      "elevation items, e.g. cop-dem-glo-30), or set it to null", EolabWarning, stacklevel=2)
        return []


def water_from_classes(classes: Any) -> Any:
    """The water map (1 open water, 0 land, NaN not observed, snow/ice, shadow) of surface classes."""
    out = classes.where(classes <= 1)
    out.name = "water"
    out.attrs = {**classes.attrs, "values": "1 water, 0 not water, NaN not observed (cloud, snow/ice, shadow)"}
    return out


def classify_water(cube: Any, method: str = "vote", **options: Any) -> Any:
    """Per-date water map (time, y, x): 1 water, 0 land, NaN unobserved (cloud, snow/ice, shadow).

    Lazy for a lazy cube. cube and options (snow, shadow, toa, sun_zenith): see :func:`surface_classes`.
    """
    return water_from_classes(surface_classes(cube, method, **options))


def _fill_along_time(a: np.ndarray, reverse: bool = False) -> np.ndarray:
    """NaNs along axis 0 filled with the last earlier value (the next later one with reverse)."""
    if reverse:
        return _fill_along_time(a[::-1])[::-1]
    steps = np.arange(a.shape[0]).reshape((-1,) + (1,) * (a.ndim - 1))
    last = np.where(np.isnan(a), 0, steps)
    np.maximum.accumulate(last, axis=0, out=last)
    return np.take_along_axis(a, last, axis=0)


def last_open_state(classes: Any) -> Any:
    """Per date and pixel, what the nearest open (snow-free, clear) observation saw: 1 water, 0 land —
    the latest one before or on the date, else the first one after; NaN if the pixel was never seen open.
    (Written with numpy: xarray's ffill/bfill need bottleneck or numbagg, not installed here.)"""
    import xarray as xr

    open_ = water_from_classes(classes)
    if hasattr(open_.data, "dask"):
        open_ = open_.chunk({"time": -1, "y": 512, "x": 512})

    def nearest(a):
        before = _fill_along_time(a)
        return np.where(np.isnan(before), _fill_along_time(a, reverse=True), before)

    out = xr.apply_ufunc(nearest, open_, dask="parallelized", output_dtypes=[np.float32])
    out.name = "last_open_state"
    return out


def frozen(classes: Any, freq: Any, min_frequency: float = 0.5, *, recent: bool = True) -> Any:
    """Frozen water per date (time, y, x) bool: snow/ice on a pixel that is water when open.

    recent (default): "water when open" is what the nearest open observation of the pixel saw
    (:func:`last_open_state`; the latest before the date, else the first after), so a reservoir
    drawn down before it froze counts only its water, not the dry bed under the snow; pixels never
    seen open fall back to the frequency. recent=False: frequency ≥ min_frequency over all open
    dates (counts a bed that is usually, but not lately, water)."""
    ice = classes == 2
    usual = freq >= min_frequency
    if recent:
        state = last_open_state(classes)
        usual = (state == 1) | (state.isnull() & usual)
    out = ice & usual
    out.name = "frozen_water"
    return out


def frequency(water: Any, min_observations: int = 1) -> Any:
    """Share of valid observations that saw water, per pixel (NaN with fewer than min_observations)."""
    n = water.notnull().sum("time")
    wet = water.sum("time", skipna=True)
    freq = (wet / n.where(n >= min_observations)).astype("float32")
    freq.name = "water_frequency"
    freq.attrs = {"description": "water observations / valid observations"}
    return freq


def pixel_area(da: Any) -> float:
    """Area of one pixel in m² from the (x, y) coordinate spacing of a projected cube."""
    try:
        dx = abs(float(da.x[1] - da.x[0]))
        dy = abs(float(da.y[1] - da.y[0]))
    except (AttributeError, IndexError, KeyError):
        raise EolabError("cannot tell the pixel size from the array's x/y coordinates",
                         hint="pass pixel_area_m2") from None
    return dx * dy


def _region_mask(water: Any, region: Any) -> Any:
    """``region`` as a boolean (y, x) DataArray on the water map's grid; an error for a mask of
    another shape or grid (xarray would align it silently and count a smaller area)."""
    import xarray as xr

    if region is None:
        return None
    ny, nx = water.sizes["y"], water.sizes["x"]
    if isinstance(region, xr.DataArray):
        if set(region.dims) != {"y", "x"}:
            raise EolabError(f"region has dimensions {tuple(region.dims)}, not (y, x)",
                             hint="a boolean (y, x) mask on the water map's grid, e.g. one date's map.notnull()")
        for dim in ("y", "x"):
            if dim in region.coords and (region.sizes[dim] != water.sizes[dim] or not np.allclose(
                    region[dim].values, water[dim].values)):
                raise EolabError(f"region's {dim} coordinates are not those of the water map "
                                 f"({region.sizes[dim]} vs {water.sizes[dim]} values, another grid)",
                                 hint="make the mask on the water map's own grid (e.g. zonal.rasterize_zones "
                                      "with zonal.grid_of(cube))")
        values = region.transpose("y", "x").values
    else:
        values = np.asarray(region)
        if values.shape != (ny, nx):
            raise EolabError(f"region has shape {values.shape}, the water map {ny} × {nx} (y, x) pixels",
                             hint="a boolean (y, x) mask on the water map's grid")
    if values.dtype != bool:
        if not np.isin(values, (0, 1)).all():
            raise EolabError(f"region holds values other than true/false ({values.dtype})",
                             hint="a boolean mask: True where the area is counted")
        values = values.astype(bool)
    return xr.DataArray(values, dims=("y", "x"), coords={"y": water["y"], "x": water["x"]})


def extent(water: Any, freq: Any | None = None, *, pixel_area_m2: float | None = None,
           region: Any | None = None, fill_threshold: float = 0.5, frozen: Any | None = None) -> Any:
    """Water extent per date (pandas DataFrame indexed by date).

    pixel_area_m2: area of a pixel; by default taken from the x/y coordinate spacing, so the
    hectares are right at any resolution.

    Columns: ``observed_ha`` (water seen), ``clear_fraction`` (share of the region observed),
    ``filled_ha`` (observed water plus unobserved pixels whose long-term frequency ≥ fill_threshold —
    the gap filling of Global Water Watch / AquaMonitor), ``filled_share`` (share of filled_ha that is
    filled rather than seen). region: optional boolean (y, x) mask of the area to count.
    frozen: the (time, y, x) map of :func:`frozen` water; adds ``frozen_ha`` (water under snow/ice,
    part of ``filled_ha`` when it is usually water).
    """
    import dask
    import pandas as pd

    if "y" not in water.dims or "x" not in water.dims:
        raise EolabError(f"water has dimensions {tuple(water.dims)}, not (time, y, x) of a projected grid",
                         hint="load the cube in a projected CRS (the items' own UTM grid: leave crs out, or "
                              "crs='EPSG:326NN'): areas need metres")
    region = _region_mask(water, region)
    w = water if region is None else water.where(region)
    n_region = float(np.asarray(region).sum()) if region is not None else float(water.sizes["y"] * water.sizes["x"])
    seen = w.sum(("y", "x"))
    observed = w.notnull().sum(("y", "x"))
    parts = [seen, observed]
    if freq is not None:
        likely = (freq >= fill_threshold)
        if region is not None:
            likely = likely & region
        filled = (water.isnull() & likely).sum(("y", "x"))
        parts.append(filled)
    if frozen is not None:
        parts.append((frozen if region is None else frozen & region).sum(("y", "x")))
    values = dask.compute(*[p.data if hasattr(p.data, "dask") else p for p in parts])
    values = [np.asarray(v, float) for v in values]
    ha = (pixel_area(water) if pixel_area_m2 is None else pixel_area_m2) / 1e4
    df = pd.DataFrame({"date": pd.to_datetime(water.time.values).normalize(),
                       "observed_ha": values[0] * ha, "clear_fraction": values[1] / n_region})
    if freq is not None:
        df["filled_ha"] = df["observed_ha"] + values[2] * ha
        with np.errstate(invalid="ignore", divide="ignore"):
            df["filled_share"] = np.where(df["filled_ha"] > 0, values[2] * ha / df["filled_ha"], 0.0)
    if frozen is not None:
        df["frozen_ha"] = values[-1] * ha
    return df.set_index("date")


def change(water: Any, period_a: tuple[str, str], period_b: tuple[str, str], *,
           wet: float = 0.5, min_observations: int = 2) -> Any:
    """Change between two periods from their water frequencies: a Dataset with ``frequency_a``,
    ``frequency_b``, ``difference`` (b − a) and ``change_class``: 0 dry in both, 1 water in both,
    2 new water (dry in a, water in b), 3 lost water, NaN too few observations in either period."""
    import xarray as xr

    period_a, period_b = _period(period_a, "period_a"), _period(period_b, "period_b")
    fa = frequency(water.sel(time=slice(*period_a)), min_observations)
    fb = frequency(water.sel(time=slice(*period_b)), min_observations)
    if water.sel(time=slice(*period_a)).sizes["time"] == 0 or water.sel(time=slice(*period_b)).sizes["time"] == 0:
        raise EolabError(f"no dates in period {period_a} or {period_b}", hint="choose periods inside the time series")
    a, b = fa >= wet, fb >= wet
    cls = xr.where(a & b, 1, xr.where(~a & b, 2, xr.where(a & ~b, 3, 0))).astype("float32")
    cls = cls.where(fa.notnull() & fb.notnull())
    out = xr.Dataset({"frequency_a": fa, "frequency_b": fb, "difference": fb - fa, "change_class": cls})
    out["change_class"].attrs = {"classes": "0 dry, 1 permanent water, 2 new water, 3 lost water"}
    out.attrs["periods"] = {"a": list(period_a), "b": list(period_b)}
    return out


def _period(value: Any, name: str) -> tuple[str, str]:
    """(start, end) from a pair or 'start/end' (papermill's -p passes text)."""
    if isinstance(value, str):
        value = value.split("/")
    try:
        start, end = value
    except (TypeError, ValueError):
        raise EolabError(f"{name}={value!r} is not a period", hint="(start, end) or 'YYYY-MM-DD/YYYY-MM-DD'") from None
    return str(start).strip(), str(end).strip()


def largest_water_body(freq: Any, min_frequency: float = 0.5) -> np.ndarray:
    """Boolean (y, x) mask of the largest connected area with frequency ≥ min_frequency (the reservoir)."""
    from scipy import ndimage

    f = np.asarray(freq)
    labels, n = ndimage.label(np.nan_to_num(f, nan=0.0) >= min_frequency)
    if n == 0:
        raise EolabError("no water body found", hint="lower min_frequency or check the area")
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def encode(water: Any) -> Any:
    """uint8 codes of a water map (0 land, 1 water, 255 not observed): a quarter of float32's memory."""
    return water.fillna(255).astype("uint8").assign_attrs(water.attrs)


def decode(codes: Any) -> Any:
    """The float water map (NaN not observed) of :func:`encode` codes (lazy)."""
    out = codes.where(codes != 255).astype("float32")
    out.attrs = dict(codes.attrs)
    return out


# ------------------------------------------------------------------------------------ Sentinel-1


def to_db(linear: Any) -> Any:
    """Backscatter in dB (NaN for non-positive values)."""
    return 10 * np.log10(linear.where(linear > 0))


def classify_water_s1(cube: Any, band: str = "vv", *, filter_size: int = 3,
                      value_range: tuple[float, float] = (-35.0, 5.0)) -> Any:
    """Per-date radar water map from sigma0 (linear): dB, median filter, Otsu threshold per date.

    Returns (time, y, x) float32: 1 water, 0 not water, NaN nodata; ``attrs['thresholds_db']``.
    """
    import xarray as xr
    from scipy import ndimage

    if band not in cube:
        raise EolabError(f"no band {band!r} in the Sentinel-1 cube", hint=f"bands: {', '.join(cube.data_vars)}")
    db = to_db(cube[band])

    def _median(block):
        out = np.empty_like(block)
        for k in range(block.shape[0]):
            b = block[k]
            fill = np.where(np.isfinite(b), b, np.nanmedian(b) if np.isfinite(b).any() else 0)
            out[k] = np.where(np.isfinite(b), ndimage.median_filter(fill, size=filter_size), np.nan)
        return out

    if filter_size > 1:
        data = db.data
        if hasattr(data, "map_overlap"):
            filtered = data.map_overlap(_median, depth=(0, filter_size, filter_size), boundary="none",
                                        dtype=data.dtype)
        else:
            filtered = _median(np.asarray(data))
        db = db.copy(data=filtered)
    thr = _per_date_otsu(db, bins=200, value_range=value_range)
    thr_da = xr.DataArray(np.where(np.isfinite(thr), thr, -18.0), dims=["time"], coords={"time": db.time})
    out = (db < thr_da).astype("float32").where(db.notnull())
    out.name = "water"
    out.attrs = {"method": f"{band} dB, {filter_size}x{filter_size} median, Otsu per date",
                 "thresholds_db": [float(t) for t in thr]}
    return out
