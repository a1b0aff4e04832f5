"""Sentinel-1 GRD-like VV/VH backscatter (linear sigma0, 20 m) with gamma speckle.

Water is dark (wind roughening on some dates), bare soil ~-12 dB VV, VH rises with crop biomass
(~-22 dB bare -> ~-14 dB full canopy), forest ~-7/-12 dB, urban bright.  Clouds do not matter.
"""

from __future__ import annotations

import numpy as np

from eolab.demo import _scene as S
from eolab.demo._common import block_mean, rng
from eolab.demo._parcels import CROP_NAMES
from eolab.demo._phenology import Cover
from eolab.demo._spectra import aquatic_growth

ENL = 4.5

#: (VV, VH) dB per background material.
MATERIAL_DB = {
    S.MARGIN: (-11.0, -18.0), S.DECIDUOUS: (-7.0, -12.0), S.CONIFER: (-7.5, -12.0),
    S.ROOF_RED: (1.0, -8.0), S.ROOF_GREY: (2.0, -8.0), S.ASPHALT: (-19.0, -26.0), S.GARDEN: (-9.0, -15.0),
    S.TREE_ROW: (-7.5, -13.0), S.SHORE: (-10.0, -19.0), S.WATER: (-11.0, -18.0), S.TRACK: (-13.0, -21.0),
}
VEG_VV_DB = {"winter_wheat": -11.0, "winter_barley": -11.0, "rapeseed": -10.0, "maize": -9.0,
             "sunflower": -9.0, "soybean": -10.0, "grassland": -11.5}


def _lin(db):
    return np.power(np.float32(10.0), np.asarray(db, np.float32) / np.float32(10.0))


def wind(seed: int, index: int) -> float:
    """Wind speed (m/s) over the reservoir at the acquisition."""
    return float(rng(seed, "s1-wind", index).gamma(2.0, 1.8))


def backscatter(scene, cov: Cover, level: float, doy: float, seed: int, index: int) -> np.ndarray:
    """(2, n/2, n/2) float32 linear sigma0 (VV, VH) with speckle."""
    g = rng(seed, "s1", index)
    gs = rng(seed, "s1-static")  # static per-pixel variability (urban targets, soil roughness)
    n = scene.grid.n
    P = scene.parcels
    pid = scene.pid
    moist = float(g.normal(0, 1.2))
    rough = gs.normal(0, 1.0, len(P)).astype(np.float32) + 2.0 * cov.tilled
    soil_vv = P.lookup((-12.0 + moist + rough).astype(np.float32))[pid]
    veg_vv = P.lookup(np.array([VEG_VV_DB[CROP_NAMES[c]] for c in P.crop], np.float32))[pid]
    standing = np.where(cov.harvested, 0.1, 0.6)
    bio = np.clip(cov.green + standing * cov.straw + 0.3 * cov.flower, 0, 1).astype(np.float32)
    b = P.lookup(bio)[pid] * np.clip(scene.vigour, 0, 1.2)
    b = np.clip(b, 0, 1)
    vv_p = (1 - b) * _lin(soil_vv) + b * _lin(veg_vv)
    vh_p = _lin(-22.0 + 8.0 * b + 0.3 * moist)

    urb = gs.normal(0, 3.0, (n, n)).astype(np.float32)
    isurb = np.isin(scene.mat, [S.ROOF_RED, S.ROOF_GREY])
    vv_db_t = np.array([MATERIAL_DB[k][0] for k in range(len(S.MATERIALS))], np.float32)
    vh_db_t = np.array([MATERIAL_DB[k][1] for k in range(len(S.MATERIALS))], np.float32)
    if doy < 110 or doy > 300:  # leaf-off: less volume scattering in deciduous canopies
        vh_db_t[S.DECIDUOUS] -= 1.0
        vh_db_t[S.TREE_ROW] -= 1.0
    vv_b = _lin(vv_db_t[scene.mat] + np.where(isurb, urb, 0))
    vh_b = _lin(vh_db_t[scene.mat] + np.where(isurb, 0.7 * urb, 0))

    w = wind(seed, index)
    rough_w = min(6.5, 1.5 * max(0.0, w - 2.5))
    wmod = g.normal(0, 0.8, (n, n)).astype(np.float32)
    sheltered = np.where(scene.basin, 1.0, 0.5).astype(np.float32)
    vv_w = _lin(-23.5 + rough_w * sheltered + wmod)
    vh_w = _lin(-30.0 + 0.5 * rough_w * sheltered + wmod)
    a = scene.aqveg * np.float32(aquatic_growth(doy))
    vv_w = (1 - a) * vv_w + a * _lin(-8.0)
    vh_w = (1 - a) * vh_w + a * _lin(-15.0)

    wf = scene.water_fraction(level)
    fp = scene.fp
    out = np.empty((2, n, n), np.float32)
    out[0] = wf * vv_w + (1 - wf) * (fp * vv_p + (1 - fp) * vv_b)
    out[1] = wf * vh_w + (1 - wf) * (fp * vh_p + (1 - fp) * vh_b)
    out = block_mean(out, 2).astype(np.float32)
    out *= g.gamma(ENL, 1.0 / ENL, out.shape).astype(np.float32)
    return out
