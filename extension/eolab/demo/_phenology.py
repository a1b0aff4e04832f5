"""Per-parcel cover fractions on a day of year: green vegetation, senescent/straw, flowers, soil.

Double-logistic green cover (emergence/green-up, senescence), straw from senesced biomass, an abrupt
drop to stubble at harvest, tillage to bare soil, flowering (rapeseed, sunflower), mowing of
grassland with regrowth over ~3-4 weeks, failed and resown parcels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eolab.demo._parcels import CROP_NAMES, SPRING, WINTER, Parcels


def _lg(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


@dataclass
class Cover:
    green: np.ndarray  # fraction of green vegetation
    straw: np.ndarray  # senescent vegetation / stubble / cut hay
    flower: np.ndarray  # yellow flowers (rapeseed, sunflower)
    soil: np.ndarray  # bare soil (rest)
    tilled: np.ndarray  # bool: freshly tilled (darker, rougher soil)
    harvested: np.ndarray  # bool: harvested (straw is stubble, not standing biomass)


def cover(parcels: Parcels, doy: float) -> Cover:
    p = parcels.p
    names = parcels.crop_names
    t = float(doy)
    n = len(parcels)
    green = np.zeros(n)
    straw = np.zeros(n)
    flower = np.zeros(n)

    winter = np.isin(names, list(WINTER))
    spring = np.isin(names, list(SPRING))
    grass = names == "grassland"
    up = _lg((t - p["t_up"]) / p["k_up"])
    down = _lg((t - p["t_down"]) / p["k_down"])

    # winter crops and grassland: green cover from the winter level g0 up to gmax, then senescence
    gw = (p["g0"] + (p["gmax"] - p["g0"]) * up) * (1 - down)
    green = np.where(winter | grass, gw, green)
    straw = np.where(winter, 0.85 * p["gmax"] * down, straw)
    # spring crops: bare soil until emergence, then the same shape from zero
    gs = p["gmax"] * up * (1 - down)
    green = np.where(spring, gs, green)
    straw = np.where(spring, 0.8 * p["gmax"] * up * down + 0.08, straw)  # residues before sowing
    # resown: the first emergence is destroyed at the resowing date
    first = np.where(np.isnan(p["resow"]), 0.0,
                     0.18 * _lg((t - (p["sow"] + 22)) / 3.0) * (t < np.nan_to_num(p["resow"], nan=-1e9)))
    green = green + first
    # grassland: dries a little in summer heat, browns in autumn (straw)
    straw = np.where(grass, 0.25 * down + 0.05, straw)

    # flowering (yellow petals hide the green canopy: NDVI dips, B03/B04 rise)
    fl = p["f_amp"] * np.exp(-0.5 * ((t - p["t_flower"]) / 9.0) ** 2)
    flower = np.where(p["f_amp"] > 0, fl, 0.0)
    green = green - flower

    # grassland mowing: cover cut to ~25 %, hay on the ground for a few days, regrowth tau = 8 d
    for k in range(parcels.mow.shape[1]):
        m = parcels.mow[:, k]
        dtm = t - np.nan_to_num(m, nan=1e9)
        cut = dtm >= 0
        fac = np.where(cut, 1 - 0.75 * np.exp(-np.maximum(dtm, 0) / 8.0), 1.0)
        green = green * fac
        straw = straw + np.where(cut, 0.35 * np.exp(-np.maximum(dtm, 0) / 4.0), 0.0)

    # harvest: abrupt drop to stubble, volunteer regrowth, then tillage to bare soil
    harvested = (t >= p["harvest"]) & ~grass
    tilled = harvested & (t >= p["till"])
    regrow = 0.12 * np.clip((t - p["harvest"] - 20) / 40, 0, 1)
    green = np.where(harvested, 0.02 + regrow, green)
    straw = np.where(harvested, np.where(names == "maize", 0.5, 0.42), straw)
    green = np.where(tilled, 0.02 + 0.5 * regrow * np.clip((t - p["till"] - 25) / 20, 0, 1), green)
    straw = np.where(tilled, 0.05, straw)

    green = np.clip(green, 0.0, 0.98)
    straw = np.clip(straw, 0.0, 1.0 - green)
    flower = np.clip(flower, 0.0, 1.0 - green - straw)
    soil = 1.0 - green - straw - flower
    return Cover(green.astype(np.float32), straw.astype(np.float32), flower.astype(np.float32),
                 soil.astype(np.float32), tilled, harvested)


def class_means(parcels: Parcels, doy: float) -> dict[str, float]:
    """Mean green cover per crop class (for the manifest / quick checks)."""
    c = cover(parcels, doy)
    return {k: float(c.green[parcels.crop_names == k].mean()) for k in CROP_NAMES
            if (parcels.crop_names == k).any()}
