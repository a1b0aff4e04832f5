"""A cloud mask for Sentinel-2 items that carry none (no SCL: L1C products, some archives).

Uses s2cloudless (CC BY 4.0; Sentinel Hub's single-scene pixel classifier, a LightGBM model shipped in the
package; Zupanc 2017) on top-of-atmosphere reflectance of its ten bands B01 B02 B04 B05 B08 B8A B09
B10 B11 B12 — the input it was trained on, so it runs before any atmospheric correction. Its
probability is smoothed over a disk and the mask dilated, with the package's default disk sizes
(4 and 2 pixels at the 160 m it works at) kept in metres at the cube's resolution.

:func:`mask_clouds` sets cloudy pixels to NaN in every band, adds a ``clear`` variable and records
the detector in the cube's ``eolab:cloud_mask`` attribute (what :mod:`eolab.analysis.water` reads
to know a mask exists).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eolab.errors import EolabError

BANDS = ["B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12"]
THRESHOLD = 0.4  # the package's default probability threshold
#: the package's post-processing at its 160 m working resolution: averaging disk 4 px, dilation 2 px
AVERAGE_M, DILATION_M = 4 * 160.0, 2 * 160.0


def has_bands(cube: Any) -> bool:
    return all(b in cube for b in BANDS)


def _pixel_size(cube: Any) -> float:
    try:
        return abs(float(cube.x[1] - cube.x[0]))
    except (AttributeError, IndexError, KeyError):
        raise EolabError("cannot tell the pixel size from the cube's x coordinates",
                         hint="the cloud detector needs a projected cube with x/y coordinates") from None


def cloud_probability(cube: Any) -> Any:
    """s2cloudless cloud probability (time, y, x) in [0, 1], NaN where a band is missing."""
    import xarray as xr
    from s2cloudless import S2PixelCloudDetector

    from eolab.analysis import atmosphere

    missing = [b for b in BANDS if b not in cube]
    if missing:
        raise EolabError(f"the s2cloudless cloud detector needs bands {', '.join(missing)}",
                         hint="load all of " + ", ".join(BANDS) + " (top-of-atmosphere, e.g. sentinel-2-l1c)")
    if atmosphere.processing_level(cube) in ("L2A", "L1C+rayleigh"):
        raise EolabError("s2cloudless works on top-of-atmosphere (L1C) reflectance, not on corrected data",
                         hint="use the SCL band of L2A items, or run the detector before any correction")
    detector = S2PixelCloudDetector(threshold=THRESHOLD, average_over=0, dilation_size=0, all_bands=False)
    stack = xr.concat([cube[b].astype("float32") for b in BANDS], dim="band").transpose("time", "y", "x", "band")

    def per_date(block):
        bad = np.isnan(block).any(-1)
        prob = detector.get_cloud_probability_maps(np.nan_to_num(block), num_threads=1).astype("float32")
        prob[bad] = np.nan
        return prob

    if hasattr(stack.data, "dask"):
        stack = stack.chunk({"time": 1, "band": -1})
    out = xr.apply_ufunc(per_date, stack, input_core_dims=[["band"]], dask="parallelized",
                         output_dtypes=[np.float32])
    out.name = "cloud_probability"
    return out


def cloud_mask(cube: Any, *, threshold: float = THRESHOLD) -> Any:
    """Cloudy pixels (time, y, x) bool: probability averaged over a 640 m disk above ``threshold``,
    dilated by 320 m (s2cloudless' defaults at 160 m, kept in metres)."""
    import cv2

    res = _pixel_size(cube)
    average = max(1, int(round(AVERAGE_M / res)))
    dilation = max(1, int(round(DILATION_M / res)))
    prob = cloud_probability(cube)

    def disk(r):
        return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))

    conv, grow = disk(average).astype("float32"), disk(dilation)
    conv /= conv.sum()

    def post(p):
        out = np.zeros(p.shape, bool)
        for t in range(p.shape[0]):
            smooth = cv2.filter2D(np.nan_to_num(p[t]), -1, conv, borderType=cv2.BORDER_REFLECT)
            out[t] = cv2.dilate((smooth > threshold).astype(np.uint8), grow).astype(bool)
        return out

    data = prob.data
    if hasattr(data, "map_blocks"):
        mask = data.rechunk({0: 1, 1: -1, 2: -1}).map_blocks(post, dtype=bool)
    else:
        mask = post(np.asarray(data))
    return prob.copy(data=mask).rename("cloud")


def mask_clouds(cube: Any, *, threshold: float = THRESHOLD) -> Any:
    """The cube with s2cloudless clouds set to NaN in every reflectance band, a ``clear`` variable and
    ``eolab:cloud_mask`` in its attributes."""
    cloudy = cloud_mask(cube, threshold=threshold)
    out = cube.copy()
    for name, var in cube.data_vars.items():
        if name.upper() not in ("SCL", "CLEAR") and {"y", "x"} <= set(var.dims) and var.dtype.kind == "f":
            out[name] = var.where(~cloudy)
    out["clear"] = ~cloudy & cube[BANDS[0]].notnull()
    out.attrs["eolab:cloud_mask"] = {"detector": "s2cloudless", "threshold": threshold,
                                     "average_m": AVERAGE_M, "dilation_m": DILATION_M}
    return out
