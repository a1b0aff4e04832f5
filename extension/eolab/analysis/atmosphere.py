"""Processing level of an optical cube and the Rayleigh term of the atmosphere (nothing fitted).

Sentinel-2 L1C (and Landsat L1) is top-of-atmosphere (TOA) reflectance: molecular (Rayleigh)
scattering adds a path reflectance that is large in the blue and green and nearly nil in the
SWIR, so indices such as NDWI and MNDWI are shifted upwards and their published thresholds (0,
defined on surface reflectance) no longer hold. ``rayleigh_correct`` removes that term, computed
from physics only:

- sun position from the acquisition time and the scene centre (Spencer 1971 declination and
  equation of time; NOAA's formulation);
- Rayleigh optical depth per band from its central wavelength (Hansen & Travis 1974, eq. 2.29),
  scaled by surface pressure (standard atmosphere at sea level by default);
- single-scattering path reflectance ``rho_R = tau * P(Theta) / (4 mu_s mu_v)`` with the Rayleigh
  phase function ``P = 3/4 (1 + cos^2 Theta)`` (Chandrasekhar 1960), and two-way diffuse
  transmission ``T(mu) = exp(-tau / (2 mu))`` (Gordon & Wang 1994):
  ``rho_surface = (rho_TOA - rho_R) / (T(mu_s) T(mu_v))``.

Aerosols, ozone and water vapour are NOT corrected: the result is closer to surface reflectance,
not equal to it; L2A products (Sen2Cor, LaSRC) remain preferable where they exist.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from eolab.errors import EolabError

#: Sentinel-2 band central wavelengths in µm (S2A spectral response, ESA).
S2_WAVELENGTH_UM = {"B01": 0.443, "B02": 0.492, "B03": 0.560, "B04": 0.665, "B05": 0.704, "B06": 0.740,
                    "B07": 0.783, "B08": 0.833, "B8A": 0.865, "B09": 0.945, "B10": 1.374, "B11": 1.614,
                    "B12": 2.202}
TOA_LEVELS = ("L1C", "L1", "L1B", "L1TP", "L1GT", "TOA")
SURFACE_LEVELS = ("L2A", "L2", "L2SP", "SR", "BOA")


def processing_level(cube: Any) -> str | None:
    """'L1C' (top of atmosphere), 'L2A' (surface reflectance), 'L1C+rayleigh' (after
    :func:`rayleigh_correct`) or None when the metadata do not say.

    Read from the cube's attributes: ``processing:level`` (STAC processing extension) or
    ``eolab:processing_level``, else the collections of the items in ``eolab:provenance``
    (e.g. ``sentinel-2-l1c`` / ``sentinel-2-l2a``, ``landsat-c2-l2``).
    """
    attrs = getattr(cube, "attrs", {}) or {}
    if attrs.get("eolab:rayleigh"):
        return "L1C+rayleigh"
    for key in ("processing:level", "eolab:processing_level", "s2:product_type"):
        value = str(attrs.get(key) or "").upper().replace("LEVEL-", "L").replace("MSI", "")
        if any(tag in value for tag in ("L2A", "L2", "SR", "BOA")):
            return "L2A"
        if any(tag in value for tag in ("L1C", "L1", "TOA")):
            return "L1C"
    names = [str(rec.get("collection") or "").lower()
             for rec in (attrs.get("eolab:provenance") or {}).get("items", [])]
    levels = set()
    for name in names:
        if "l2" in name or "sr" in name.split("-") or "boa" in name:
            levels.add("L2A")
        elif "l1" in name or "toa" in name:
            levels.add("L1C")
    if len(levels) > 1:
        raise EolabError("the cube mixes top-of-atmosphere (L1C) and surface-reflectance (L2A) items",
                         hint="load one processing level")
    return levels.pop() if levels else None


def sun_position(when: Any, lon: float, lat: float) -> tuple[float, float]:
    """(zenith, azimuth) of the sun in degrees at a UTC time and place (NOAA / Spencer 1971, ±0.5°)."""
    t = np.datetime64(when, "s").astype(dt.datetime)
    doy = t.timetuple().tm_yday
    hour = t.hour + t.minute / 60 + t.second / 3600
    g = 2 * np.pi / 365 * (doy - 1 + (hour - 12) / 24)  # fractional year
    eqtime = 229.18 * (0.000075 + 0.001868 * np.cos(g) - 0.032077 * np.sin(g) - 0.014615 * np.cos(2 * g)
                       - 0.040849 * np.sin(2 * g))
    decl = (0.006918 - 0.399912 * np.cos(g) + 0.070257 * np.sin(g) - 0.006758 * np.cos(2 * g)
            + 0.000907 * np.sin(2 * g) - 0.002697 * np.cos(3 * g) + 0.00148 * np.sin(3 * g))
    solar_minutes = hour * 60 + eqtime + 4 * lon
    ha = np.radians(solar_minutes / 4 - 180)
    phi = np.radians(lat)
    cos_z = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(ha)
    zen = np.arccos(np.clip(cos_z, -1, 1))
    cos_az = (np.sin(decl) - np.sin(phi) * cos_z) / (np.cos(phi) * np.sin(zen))
    az = np.degrees(np.arccos(np.clip(cos_az, -1, 1)))
    return float(np.degrees(zen)), float(az if ha <= 0 else 360 - az)


def rayleigh_optical_depth(wavelength_um: float, pressure_hpa: float = 1013.25) -> float:
    """Rayleigh optical depth at a wavelength (Hansen & Travis 1974), scaled by surface pressure."""
    lam = float(wavelength_um)
    return 0.008569 * lam ** -4 * (1 + 0.0113 * lam ** -2 + 0.00013 * lam ** -4) * pressure_hpa / 1013.25


def rayleigh_reflectance(wavelength_um: float, sun_zenith: float, view_zenith: float = 0.0,
                         relative_azimuth: float = 0.0, pressure_hpa: float = 1013.25) -> tuple[float, float]:
    """(path reflectance, two-way diffuse transmission) of the Rayleigh atmosphere, single scattering.

    relative_azimuth: sun-view azimuth difference in degrees (0 for a nadir view, where it is moot).
    """
    tau = rayleigh_optical_depth(wavelength_um, pressure_hpa)
    mu_s, mu_v = np.cos(np.radians(sun_zenith)), np.cos(np.radians(view_zenith))
    if mu_s <= 0.05:
        raise EolabError(f"the sun is {sun_zenith:.1f}° from the zenith: too low to correct",
                         hint="use surface-reflectance (L2A) data for this date")
    cos_scat = (-mu_s * mu_v + np.sin(np.radians(sun_zenith)) * np.sin(np.radians(view_zenith))
                * np.cos(np.radians(relative_azimuth)))
    phase = 0.75 * (1 + cos_scat ** 2)
    path = tau * phase / (4 * mu_s * mu_v)
    trans = np.exp(-tau / (2 * mu_s)) * np.exp(-tau / (2 * mu_v))
    return float(path), float(trans)


def _centre_lonlat(cube: Any) -> tuple[float, float]:
    crs = (getattr(cube, "attrs", {}) or {}).get("crs")
    try:
        x, y = float(cube.x.mean()), float(cube.y.mean())
    except AttributeError:
        raise EolabError("the sun position needs the cube's x/y coordinates",
                         hint="pass sun_zenith (degrees) explicitly") from None
    if not crs:
        raise EolabError("the sun position needs the cube's CRS (attrs['crs'])", hint="pass sun_zenith explicitly")
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    return float(lon), float(lat)


def rayleigh_correct(cube: Any, *, sun_zenith: float | list[float] | None = None, view_zenith: float = 0.0,
                     pressure_hpa: float = 1013.25) -> Any:
    """The cube with the Rayleigh term removed from every Sentinel-2 band it holds (lazy stays lazy).

    sun_zenith: degrees, one value or one per date; by default computed per date from the time
    coordinate and the scene centre. Bands that are not Sentinel-2 reflectance (e.g. SCL) pass.
    """
    import xarray as xr

    n = cube.sizes.get("time", 1)
    if sun_zenith is None:
        lon, lat = _centre_lonlat(cube)
        zeniths = [sun_position(t, lon, lat)[0] for t in np.atleast_1d(cube.time.values)]
    else:
        zeniths = list(np.broadcast_to(np.asarray(sun_zenith, float), (n,)))
    out = cube.copy()
    applied = {}
    for band, wl in S2_WAVELENGTH_UM.items():
        if band not in cube:
            continue
        terms = [rayleigh_reflectance(wl, z, view_zenith, pressure_hpa=pressure_hpa) for z in zeniths]
        path = np.array([p for p, _ in terms], np.float32)
        trans = np.array([t for _, t in terms], np.float32)
        if "time" in cube[band].dims:
            path_da = xr.DataArray(path, dims=["time"], coords={"time": cube.time})
            trans_da = xr.DataArray(trans, dims=["time"], coords={"time": cube.time})
        else:
            path_da, trans_da = path[0], trans[0]
        out[band] = ((cube[band] - path_da) / trans_da).astype(cube[band].dtype).assign_attrs(cube[band].attrs)
        applied[band] = [round(float(p), 5) for p in path]
    out.attrs = {**cube.attrs, "eolab:processing_level": "L1C+rayleigh",
                 "eolab:rayleigh": {"sun_zenith_deg": [round(float(z), 2) for z in zeniths],
                                    "path_reflectance": applied, "pressure_hpa": pressure_hpa,
                                    "method": "single scattering, Hansen & Travis 1974 optical depth"}}
    return out
