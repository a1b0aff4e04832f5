"""Winter and relief: early-winter dates (after the crop season) with snow, an iced reservoir, haze
(path radiance varying by date), a hillside with terrain shadow, and dark urban roofs.

Crop parcels keep their spectra on the crop-season dates (1 Mar - 31 Oct): snow, ice, haze and the
hillside's shading are applied on the winter dates only (the sun is 17-22° high then; in the season
all the hill's slopes are lit). Dark roofs (bitumen, slate) replace part of the grey roofs on every
date (they are not parcels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eolab.demo import _scene as S
from eolab.demo._common import RES, rng, smooth_noise
from eolab.demo._dates import WINTER_DATES, water_level

#            B02    B03    B04    B05    B08    B8A    B11    B12
SNOW = [0.880, 0.860, 0.840, 0.820, 0.780, 0.760, 0.100, 0.070]  # fresh snow: bright, dark SWIR
ICE = [0.300, 0.280, 0.260, 0.220, 0.160, 0.150, 0.030, 0.020]  # grey lake ice with thin snow
DARK_ROOF = [0.036, 0.039, 0.041, 0.043, 0.047, 0.048, 0.055, 0.050]  # bitumen / slate
WAVELENGTH = np.array([0.49, 0.56, 0.665, 0.704, 0.842, 0.865, 1.61, 2.19], np.float32)


#: truth/surface_s2.tif codes
SURFACE_CODES = {0: "none", 1: "snow_on_land", 2: "frozen_water", 3: "terrain_shadow"}
FULL_SHADOW = 0.05  # cos(incidence) below this: the slope faces away from the sun (self shadow)
DIFFUSE = 0.22  # share of diffuse sky light on a winter day


@dataclass
class Winter:
    snow: bool
    iced: bool
    haze: float


def winter_of(date) -> Winter | None:
    for d, snow, iced, haze in WINTER_DATES:
        if d == date:
            return Winter(snow, iced, haze)
    return None


def hill(n: int) -> np.ndarray:
    """Elevation (m) of a wooded hill in the north-west of the scene, slopes up to ~29°."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    return hill_at(yy, xx, n)


def hill_at(rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """The hill's elevation (m) at (fractional) pixel rows and columns of an n x n scene."""
    r0, c0, sigma = 0.17 * n, 0.16 * n, 0.075 * n
    return (0.9 * sigma * RES * np.exp(-((rows - r0) ** 2 + (cols - c0) ** 2) / (2 * sigma ** 2))).astype(np.float32)


def illumination(elev: np.ndarray, sun_el: float, sun_az: float) -> tuple[np.ndarray, np.ndarray]:
    """(reflectance factor, terrain-shadow truth) of a relief under the sun (Lambertian, with sky light)."""
    gy, gx = np.gradient(elev, RES)  # rows go south: d/dy is towards the south
    slope = np.arctan(np.hypot(gx, gy))
    # surface normal components (east, north, up); north = -row direction
    nx, ny, nz = -gx, gy, np.ones_like(gx)
    norm = np.sqrt(nx ** 2 + ny ** 2 + nz ** 2)
    z = np.radians(90 - sun_el)
    az = np.radians(sun_az)
    sx, sy, sz = np.sin(z) * np.sin(az), np.sin(z) * np.cos(az), np.cos(z)
    cos_i = (nx * sx + ny * sy + nz * sz) / norm
    direct = np.clip(cos_i, 0, None) / np.cos(z)
    sky = (1 + np.cos(slope)) / 2
    factor = ((1 - DIFFUSE) * direct + DIFFUSE * sky).astype(np.float32)
    return factor, cos_i < FULL_SHADOW


def dark_roofs(scene) -> np.ndarray:
    """Grey-roof pixels that are dark roofs (about half of them, clumped)."""
    g = rng(scene.seed, "dark-roofs")
    field = smooth_noise(g, scene.mat.shape, 4.0)
    return (scene.mat == S.ROOF_GREY) & (field < 0)


def apply(refl: np.ndarray, scene, acq, sun_el: float, sun_az: float, seed: int) -> np.ndarray:
    """Surface effects of the date on the clear-sky reflectance (in place), and the surface truth codes."""
    n = refl.shape[1]
    roofs = dark_roofs(scene)
    land_share = 1 - scene.fp  # the non-parcel part of each pixel
    for b in range(refl.shape[0]):
        refl[b] = np.where(roofs, refl[b] + land_share * (DARK_ROOF[b] - refl[b]), refl[b])
    code = np.zeros((n, n), np.uint8)
    w = winter_of(acq.date)
    if w is None:
        return code
    g = rng(seed, "winter", acq.index)
    wf = scene.water_fraction(water_level(acq.doy))
    # snow and ice
    if w.snow:
        patch = np.clip(0.85 + 0.35 * smooth_noise(g, (n, n), 12.0), 0, 1)
        canopy = np.where(scene.mat == S.CONIFER, 0.35, np.where(scene.mat == S.DECIDUOUS, 0.65, 1.0))
        canopy = np.where(scene.mat == S.ASPHALT, 0.1, canopy) * (1 - scene.fp) + scene.fp
        snow = (patch * canopy).astype(np.float32)
        land_w = 1 - wf
        for b in range(refl.shape[0]):
            refl[b] = refl[b] + land_w * snow * (SNOW[b] - refl[b])
        code[(snow > 0.5) & (wf < 0.5)] = 1
    if w.iced:
        still = scene.basin | (scene.landcover == S.LC["water"]) & ~_river(scene)
        cover = np.clip(0.6 + 0.3 * smooth_noise(g, (n, n), 20.0), 0, 1).astype(np.float32)
        ice = np.where(still, wf, 0).astype(np.float32)
        for b in range(refl.shape[0]):
            surface = ICE[b] + cover * (SNOW[b] - ICE[b])
            refl[b] = refl[b] + ice * (surface - refl[b])
        code[ice >= 0.5] = 2
    # the hillside's shading and shadow (low winter sun)
    relief = hill(n)
    factor, shadow = illumination(relief, sun_el, sun_az)
    refl *= factor[None]
    code[shadow & (relief > 5)] = 3
    # haze: path reflectance ~ wavelength^-1.5 (aerosol with some molecular part), left after correction
    path = (w.haze * (WAVELENGTH / 0.49) ** -1.5).astype(np.float32)
    refl += path[:, None, None] * np.clip(1 + 0.3 * smooth_noise(g, (n, n), 60.0), 0.4, 1.6)[None]
    return code


def _river(scene) -> np.ndarray:
    """Flowing water (the river) does not freeze: static water outside the basin with a thin shape."""
    from scipy import ndimage

    static = scene.wf_static >= 0.5
    return static & ~ndimage.binary_opening(static, iterations=6) & ~scene.basin
