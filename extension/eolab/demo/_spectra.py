"""Spectral library (surface reflectance, bands B02 B03 B04 B05 B08 B8A B11 B12) and the rendering of
the clear-sky surface reflectance of the scene on one date."""

from __future__ import annotations

import numpy as np

from eolab.demo import _scene as S
from eolab.demo._phenology import Cover

#            B02    B03    B04    B05    B08    B8A    B11    B12
VEG = [0.030, 0.070, 0.035, 0.120, 0.420, 0.440, 0.220, 0.110]
STRAW = [0.080, 0.110, 0.140, 0.180, 0.270, 0.290, 0.340, 0.260]
SOIL_DARK = [0.050, 0.070, 0.090, 0.110, 0.150, 0.160, 0.220, 0.180]
SOIL_BRIGHT = [0.110, 0.150, 0.190, 0.220, 0.270, 0.280, 0.360, 0.300]
FLOWER = [0.045, 0.135, 0.125, 0.200, 0.380, 0.400, 0.250, 0.130]  # yellow: green + red up, blue down
WATER_CLEAR = [0.050, 0.040, 0.022, 0.014, 0.008, 0.007, 0.003, 0.002]
WATER_TURBID = [0.070, 0.095, 0.085, 0.060, 0.030, 0.025, 0.006, 0.004]
LEAF_ON = [0.025, 0.050, 0.030, 0.090, 0.350, 0.370, 0.170, 0.080]
LEAF_OFF = [0.050, 0.065, 0.075, 0.100, 0.190, 0.200, 0.250, 0.160]
AUTUMN = [0.040, 0.070, 0.080, 0.130, 0.280, 0.300, 0.250, 0.150]
CONIFER = [0.020, 0.040, 0.025, 0.070, 0.220, 0.230, 0.110, 0.050]
ROOF_RED = [0.080, 0.100, 0.170, 0.200, 0.250, 0.260, 0.310, 0.260]
ROOF_GREY = [0.150, 0.160, 0.170, 0.180, 0.200, 0.200, 0.210, 0.190]
ASPHALT = [0.042, 0.046, 0.049, 0.052, 0.056, 0.057, 0.065, 0.060]  # dark: low NIR like water
MUD = [0.045, 0.060, 0.070, 0.085, 0.120, 0.130, 0.140, 0.100]
CLOUD = [0.420, 0.410, 0.410, 0.420, 0.440, 0.440, 0.330, 0.220]

LIBRARY = {k: v for k, v in globals().items() if k.isupper() and isinstance(v, list)}


def _a(x) -> np.ndarray:
    return np.asarray(x, np.float32)


def _lg(x):
    return 1.0 / (1.0 + np.exp(-x))


def leaf_fraction(doy: float) -> float:
    """Deciduous canopy leaf-on fraction (bud burst mid-April, leaf fall late October)."""
    return float(_lg((doy - 112) / 6) * (1 - _lg((doy - 296) / 7)))


def grass_cover(doy: float) -> float:
    """Green cover of unmanaged herbaceous margins: spring flush, summer drying."""
    return float(0.3 + 0.45 * _lg((doy - 95) / 10) - 0.2 * _lg((doy - 205) / 15) - 0.15 * _lg((doy - 285) / 10))


def material_table(doy: float, soil_f: float) -> np.ndarray:
    """(n_materials, 8) reflectance of the background materials on a day of year."""
    lf = leaf_fraction(doy)
    autumn = float(_lg((doy - 275) / 6) * (1 - _lg((doy - 300) / 5)))
    gm = grass_cover(doy)
    soil_mid = (_a(SOIL_DARK) + 0.5 * (_a(SOIL_BRIGHT) - _a(SOIL_DARK))) * soil_f
    decid = lf * ((1 - autumn) * _a(LEAF_ON) + autumn * _a(AUTUMN)) + (1 - lf) * _a(LEAF_OFF)
    margin = gm * _a(VEG) + 0.5 * (1 - gm) * _a(STRAW) + 0.5 * (1 - gm) * soil_mid
    t = np.zeros((len(S.MATERIALS), 8), np.float32)
    t[S.MARGIN] = margin
    t[S.DECIDUOUS] = decid
    t[S.CONIFER] = (0.9 + 0.1 * lf) * _a(CONIFER)
    t[S.ROOF_RED] = _a(ROOF_RED)
    t[S.ROOF_GREY] = _a(ROOF_GREY)
    t[S.ASPHALT] = _a(ASPHALT)
    t[S.GARDEN] = 0.35 * decid + 0.35 * margin + 0.3 * _a(ROOF_RED)
    t[S.TREE_ROW] = 0.85 * decid + 0.15 * margin
    t[S.SHORE] = 0.85 * _a(MUD) + 0.15 * _a(VEG)
    t[S.WATER] = _a(MUD)  # land part of a pixel that is mostly river / pond
    t[S.TRACK] = 0.6 * _a(SOIL_BRIGHT) * soil_f + 0.4 * margin
    return t


def aquatic_growth(doy: float) -> float:
    """Seasonal density factor of the aquatic vegetation (June - September)."""
    return float(_lg((doy - 165) / 9) * (1 - _lg((doy - 272) / 8)))


def surface(scene, cov: Cover, doy: float, level: float, g: np.random.Generator) -> np.ndarray:
    """Clear-sky surface reflectance (8, n, n) float32 at 10 m, without sensor noise."""
    P = scene.parcels
    pid = scene.pid
    soil_f = float(g.uniform(0.85, 1.05))  # wetness of soils on this date (rain -> darker)
    turb_f = float(g.uniform(0.8, 1.1) * (1.3 if doy < 130 else 1.0))
    lk = P.lookup
    gr = np.clip(lk(cov.green)[pid] * scene.vigour, 0, 0.98)
    st = np.minimum(lk(cov.straw)[pid], 1 - gr)
    fl = np.minimum(lk(cov.flower)[pid], 1 - gr - st)
    so = 1 - gr - st - fl
    sb = lk(P.soil_b.astype(np.float32))[pid]
    sdark = lk(np.where(cov.tilled, 0.82, 1.0).astype(np.float32), 1.0)[pid] * np.float32(soil_f)
    fp = scene.fp
    wf = scene.water_fraction(level)
    table = material_table(doy, soil_f)
    mat = scene.mat
    tex = scene.tex
    a = scene.aqveg * np.float32(aquatic_growth(doy))
    turb = np.clip(scene.turb * np.float32(turb_f), 0, 1)
    out = np.empty((8, *pid.shape), np.float32)
    for b in range(8):
        parcel = gr * VEG[b] + st * STRAW[b] + fl * FLOWER[b] + so * sdark * (
            SOIL_DARK[b] + sb * (SOIL_BRIGHT[b] - SOIL_DARK[b]))
        land = fp * parcel + (1 - fp) * table[mat, b] * tex
        water = WATER_CLEAR[b] + turb * (WATER_TURBID[b] - WATER_CLEAR[b])
        water = (1 - a) * water + a * (0.8 * VEG[b])
        out[b] = (1 - wf) * land + wf * water
    return out
