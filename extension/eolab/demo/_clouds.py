"""Clouds, haze and cloud shadows per Sentinel-2 date (truth), and an SCL derived from the truth with
a stated error model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eolab.demo._common import RES, fractal_noise, rng, smooth_noise, uniformize
from eolab.demo._dates import N_WINTER
from eolab.demo._spectra import CLOUD

CLEAR, OPAQUE, THIN, SHADOW = 0, 1, 2, 3
TRUTH_CODES = {0: "clear", 1: "opaque_cloud", 2: "thin_cloud_or_haze", 3: "cloud_shadow"}

#: Intended SCL behaviour; tests compare measured rates with these.
SCL_ERROR_MODEL = {
    "opaque_detected": 0.97,  # truth 1 -> SCL 8/9 (9 where cloud alpha > 0.85)
    "thin_detected": 0.60,  # truth 2 -> SCL 8/10 (10 where the thin cloud is haze/cirrus)
    "shadow_detected": 0.70,  # truth 3 -> SCL 3
    "bright_soil_false_cloud": 0.02,  # clear bright bare pixels -> SCL 8
    "bright_soil_definition": "clear truth, NDVI < 0.25, B04 > 0.16, B02 > 0.09, NDWI < 0 (10 m bands)",
    "undetected": "labelled with the surface class of the rules below",
    "vegetation_rule": "NDVI + N(0, 0.05) > 0.35 -> 4 else 5",
    "water_rule": "NDWI + e > 0.1, or B08 < 0.06 and NDWI + e > -0.02, e ~ N(0, 0.08) -> 6",
    "spatial_structure": "detection decided by a smooth (~60 m) plus white random field: errors clump",
    "resolution": "SCL is computed at 10 m and sampled at 20 m: SCL[i, j] = scl10[2i, 2j]",
    "snow_detected": 0.85,  # truth snow on land or frozen water -> SCL 11 (else the surface rules)
    "false_snow": 0.06,  # clear bright pixels (B02 > 0.09, B04 > 0.12, not snow) on winter dates -> SCL 11
    "terrain_shadow_detected": 0.65,  # truth terrain shadow -> SCL 2
    "false_dark_area": 0.10,  # clear dark land (B08 < 0.08, NDWI < 0, not water) -> SCL 2
}

SHADOW_PAD = 130  # px of padding for cloud shadows cast from outside the scene


def cloud_plan(seed: int, n_dates: int) -> np.ndarray:
    """Target cloud cover per date: of the crop-season dates ~25 % clear, ~60 % partly cloudy, ~15 %
    overcast; the last ``N_WINTER`` (winter) dates clear or nearly (0-3 %)."""
    season = _season_plan(seed, n_dates - N_WINTER)
    winter = rng(seed, "cloud-plan-winter").uniform(0.0, 0.03, N_WINTER)
    return np.concatenate([season, winter])


def _season_plan(seed: int, n_dates: int) -> np.ndarray:
    g = rng(seed, "cloud-plan")
    n_clear = int(round(0.25 * n_dates))
    n_over = int(round(0.15 * n_dates))
    n_part = n_dates - n_clear - n_over
    targets = np.concatenate([g.uniform(0.0, 0.03, n_clear), g.uniform(0.08, 0.65, n_part),
                              g.uniform(0.86, 0.99, n_over)])
    g.shuffle(targets)
    return targets


@dataclass
class Clouds:
    alpha: np.ndarray  # float32 total cloud opacity 0..1
    code: np.ndarray  # uint8 truth codes 0..3
    shadow: np.ndarray  # float32 shadow strength 0..1
    haze: np.ndarray  # bool: thin cloud is haze / cirrus (not a cloud edge)
    bright: np.ndarray  # float32 cloud brightness factor
    shadow_k: float  # reflectance factor in full shadow
    offset_px: tuple[int, int]  # (rows, cols) from a shadow to its cloud
    surface: np.ndarray | None = None  # uint8 surface truth codes (eolab.demo._winter.SURFACE_CODES)


def make_clouds(seed: int, index: int, n: int, target: float, sun_el: float, sun_az: float) -> Clouds:
    g = rng(seed, "clouds", index)
    P = SHADOW_PAD
    m = n + 2 * P
    N = fractal_noise(g, (m, m), [max(40.0, 0.3 * n), max(20.0, 0.09 * n), 18, 6], [1.0, 0.6, 0.35, 0.15])
    centre = N[P:P + n, P:P + n]
    w = 0.6
    if target < 0.005:
        thr = float(N.max()) + 1.0
    else:
        thr = float(np.quantile(centre[::4, ::4], 1 - target)) - 0.04 * w
    ac = np.clip((N - thr) / w, 0, 1)
    # cloud height -> shadow offset away from the sun
    h = g.uniform(400, 1400)
    d = min(h / np.tan(np.radians(sun_el)), (P - 2) * RES)
    dr = int(round(-d * np.cos(np.radians(sun_az)) / RES))  # cloud is towards the sun from its shadow
    dc = int(round(d * np.sin(np.radians(sun_az)) / RES))
    src = ac[P + dr:P + dr + n, P + dc:P + dc + n]
    shadow = np.clip((src - 0.2) / 0.3, 0, 1).astype(np.float32)
    ac = ac[P:P + n, P:P + n]
    # haze / thin cirrus on about a third of the not-overcast dates
    ah = np.zeros((n, n), np.float32)
    if target < 0.8 and g.random() < 0.4:
        H = smooth_noise(g, (n, n), max(30.0, 0.2 * n))
        q = float(np.quantile(H[::4, ::4], 1 - g.uniform(0.1, 0.4)))
        ah = (0.25 * np.clip((H - q) / 1.0, 0, 1)).astype(np.float32)
    alpha = 1 - (1 - ac) * (1 - ah)
    code = np.zeros((n, n), np.uint8)
    code[shadow > 0.5] = SHADOW
    thin = alpha > 0.04
    code[thin] = THIN
    code[ac >= 0.5] = OPAQUE
    bright = (0.92 + 0.08 * centre / 3).astype(np.float32)
    return Clouds(alpha.astype(np.float32), code, shadow, thin & (ah > ac), bright,
                  float(g.uniform(0.3, 0.5)), (dr, dc))


def apply(refl: np.ndarray, c: Clouds) -> np.ndarray:
    """Darken shadows, then blend the cloud reflectance in (in place)."""
    sh = 1 - (1 - c.shadow_k) * c.shadow
    for b in range(refl.shape[0]):
        refl[b] = (1 - c.alpha) * refl[b] * sh + c.alpha * CLOUD[b] * c.bright
    return refl


def _u(g, n):
    return uniformize(0.6 * smooth_noise(g, (n, n), 6) + 0.8 * g.standard_normal((n, n), dtype=np.float32))


def scl(seed: int, index: int, obs: np.ndarray, c: Clouds) -> np.ndarray:
    """Sen2Cor-like scene classification (uint8, 20 m) from the observed 10 m reflectance
    `obs` = (B02, B03, B04, B08), as stored (quantised), and the cloud truth."""
    g = rng(seed, "scl", index)
    n = obs.shape[1]
    b02, b03, b04, b08 = obs[0], obs[1], obs[2], obs[3]
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = np.nan_to_num((b08 - b04) / (b08 + b04))
        ndwi = np.nan_to_num((b03 - b08) / (b03 + b08))
    e = g.normal(0, 0.08, (n, n)).astype(np.float32)
    out = np.where(ndvi + g.normal(0, 0.05, (n, n)).astype(np.float32) > 0.35, 4, 5).astype(np.uint8)
    water = (ndwi + e > 0.1) | ((b08 < 0.06) & (ndwi + e > -0.02))
    out[water] = 6
    M = SCL_ERROR_MODEL
    bright_soil = (c.code == CLEAR) & (ndvi < 0.25) & (b04 > 0.16) & (b02 > 0.09) & (ndwi < 0)
    out[bright_soil & (g.random((n, n)) < M["bright_soil_false_cloud"])] = 8
    surf = c.surface if c.surface is not None else np.zeros((n, n), np.uint8)
    winter = bool(surf.any())
    gw = rng(seed, "scl-winter", index)
    dark_land = (c.code == CLEAR) & (b08 < 0.08) & (ndwi < 0) & (surf == 0) & ~water
    out[dark_land & (_u(gw, n) < M["false_dark_area"])] = 2
    out[(surf == 3) & (_u(gw, n) < M["terrain_shadow_detected"])] = 2
    if winter:
        bright = (c.code == CLEAR) & (b02 > 0.09) & (b04 > 0.12) & (surf == 0)
        out[bright & (_u(gw, n) < M["false_snow"])] = 11
        out[((surf == 1) | (surf == 2)) & (_u(gw, n) < M["snow_detected"])] = 11
    shadow = (c.code == SHADOW) & (_u(g, n) < M["shadow_detected"])
    out[shadow] = 3
    thin = (c.code == THIN) & (_u(g, n) < M["thin_detected"])
    out[thin] = np.where(c.haze[thin], 10, 8)
    opq = (c.code == OPAQUE) & (_u(g, n) < M["opaque_detected"])
    out[opq] = np.where(c.alpha[opq] > 0.85, 9, 8)
    return out[0::2, 0::2].copy()
