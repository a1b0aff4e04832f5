"""Shared pieces of the demo generator: sizes, the grid, band list, seeded streams, smooth noise."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from affine import Affine

#: Scene edge length in 10 m pixels per size name.
SIZES: dict[str, int] = {"small": 768, "default": 2048}

TILE = 256  # 10 m pixels per tile edge (128 px at 20 m)
RES = 10.0
X0, Y0 = 470000.0, 5285000.0  # upper-left corner, EPSG:32634
CRS = "EPSG:32634"
EPSG = 32634
YEAR = 2026

#: Sentinel-2 bands written, with (common name, centre wavelength µm, gsd m).
S2_BANDS: dict[str, tuple[str, float, int]] = {
    "B02": ("blue", 0.49, 10),
    "B03": ("green", 0.56, 10),
    "B04": ("red", 0.665, 10),
    "B05": ("rededge", 0.704, 20),
    "B08": ("nir", 0.842, 10),
    "B8A": ("nir08", 0.865, 20),
    "B11": ("swir16", 1.61, 20),
    "B12": ("swir22", 2.19, 20),
}
BAND_NAMES = list(S2_BANDS)
BI = {b: i for i, b in enumerate(BAND_NAMES)}  # band index in spectra arrays

DN_SCALE, DN_OFFSET = 0.0001, -0.1  # reflectance = DN * scale + offset (L2A baseline >= 04.00)
S1_NODATA = -32768.0


@dataclass(frozen=True)
class Grid:
    """The scene grid: n x n pixels at 10 m from (X0, Y0), cut into TILE x TILE tiles."""

    size: str
    n: int

    @property
    def transform(self) -> Affine:
        return Affine(RES, 0.0, X0, 0.0, -RES, Y0)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (X0, Y0 - self.n * RES, X0 + self.n * RES, Y0)

    @property
    def ntiles(self) -> int:
        return self.n // TILE

    def tiles(self) -> list[tuple[int, int, str]]:
        """(row, col, grid id) per tile, row-major."""
        return [(r, c, f"r{r:02d}c{c:02d}") for r in range(self.ntiles) for c in range(self.ntiles)]

    def tile_transform(self, r: int, c: int, res: float = RES) -> Affine:
        return Affine(res, 0.0, X0 + c * TILE * RES, 0.0, -res, Y0 - r * TILE * RES)

    def tile_bounds(self, r: int, c: int) -> tuple[float, float, float, float]:
        x0, y1 = X0 + c * TILE * RES, Y0 - r * TILE * RES
        return (x0, y1 - TILE * RES, x0 + TILE * RES, y1)


def make_grid(size: str) -> Grid:
    return Grid(size, SIZES[size])


def rng(seed: int, component: str, *keys: int) -> np.random.Generator:
    """An independent stream per (seed, component, keys); draw order elsewhere does not matter."""
    key = (zlib.crc32(component.encode()), *[int(k) for k in keys])
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


@lru_cache(maxsize=64)
def _bspline_matrix(n_out: int, n_coarse: int, step: float) -> np.ndarray:
    """Cubic B-spline interpolation weights (n_out x n_coarse) for knots every `step` pixels."""
    x = np.arange(n_out) / step + 1.0  # coarse coordinate (1 knot of padding)
    j = np.arange(n_coarse)
    d = np.abs(x[:, None] - j[None, :])
    w = np.where(d < 1, 2 / 3 - d**2 + d**3 / 2, np.where(d < 2, (2 - d) ** 3 / 6, 0.0))
    return w.astype(np.float32)


def smooth_noise(g: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Gaussian-like smooth random field, zero mean, unit std, correlation length ~`scale` px."""
    h, w = shape
    step = max(float(scale), 1.0)
    ch, cw = int(np.ceil(h / step)) + 4, int(np.ceil(w / step)) + 4
    coarse = g.standard_normal((ch, cw), dtype=np.float32)
    out = _bspline_matrix(h, ch, step) @ coarse @ _bspline_matrix(w, cw, step).T
    out -= out.mean(dtype=np.float64)
    return (out / np.float32(out.std(dtype=np.float64) + 1e-12)).astype(np.float32)


def fractal_noise(g: np.random.Generator, shape, scales, weights) -> np.ndarray:
    """Sum of smooth_noise octaves, rescaled to unit std."""
    out = np.zeros(shape, np.float32)
    for s, wt in zip(scales, weights):
        out += np.float32(wt) * smooth_noise(g, shape, s)
    return out / np.float32(np.sqrt(np.sum(np.square(weights))))


def uniformize(z: np.ndarray) -> np.ndarray:
    """Map a ~N(0,1) field to ~U(0,1) marginals."""
    from scipy.special import ndtr

    return ndtr(z).astype(np.float32)


def block_mean(a: np.ndarray, k: int = 2) -> np.ndarray:
    """Mean over k x k blocks of the last two axes (10 m -> 20 m)."""
    *lead, h, w = a.shape
    return a.reshape(*lead, h // k, k, w // k, k).mean(axis=(-3, -1))
