"""Spectral indices of Sentinel-2 surface reflectance (numpy arrays or lazy xarray objects alike).

Band names are Sentinel-2 asset keys: B02 blue, B03 green, B04 red, B05 red edge 1, B08 NIR,
B8A narrow NIR, B11 SWIR 1.6 µm, B12 SWIR 2.2 µm.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eolab.errors import EolabError


def normalized_difference(a: Any, b: Any) -> Any:
    """(a - b) / (a + b); NaN where a + b is 0 or either input is NaN."""
    den = a + b
    if isinstance(den, np.ndarray) or np.isscalar(den):
        with np.errstate(divide="ignore", invalid="ignore"):
            out = (a - b) / den
        return np.where(den == 0, np.nan, out)
    return ((a - b) / den.where(den != 0))


#: name -> (bands, function of a band mapping, reference)
INDICES: dict[str, tuple[tuple[str, ...], Any, str]] = {
    "NDVI": (("B08", "B04"), lambda b: normalized_difference(b["B08"], b["B04"]), "Rouse et al. 1974"),
    "NDWI": (("B03", "B08"), lambda b: normalized_difference(b["B03"], b["B08"]), "McFeeters 1996"),
    "MNDWI": (("B03", "B11"), lambda b: normalized_difference(b["B03"], b["B11"]), "Xu 2006"),
    "NDMI": (("B8A", "B11"), lambda b: normalized_difference(b["B8A"], b["B11"]), "Gao 1996 (NDWI of leaves)"),
    "NDRE": (("B8A", "B05"), lambda b: normalized_difference(b["B8A"], b["B05"]), "Barnes et al. 2000"),
    "NBR2": (("B11", "B12"), lambda b: normalized_difference(b["B11"], b["B12"]), "bare soil / residue"),
    "AWEI_SH": (("B02", "B03", "B08", "B11", "B12"),
                lambda b: b["B02"] + 2.5 * b["B03"] - 1.5 * (b["B08"] + b["B11"]) - 0.25 * b["B12"],
                "Feyisa et al. 2014 (with shadows)"),
}


def bands_for(names: list[str] | tuple[str, ...]) -> list[str]:
    """The reflectance bands the indices ``names`` need (sorted, unique)."""
    out: set[str] = set()
    for name in names:
        if name not in INDICES:
            raise EolabError(f"unknown index {name!r}", hint="known: " + ", ".join(INDICES))
        out.update(INDICES[name][0])
    return sorted(out)


def index(bands: Any, name: str) -> Any:
    """One index from a mapping of band arrays (an xarray Dataset works)."""
    if name not in INDICES:
        raise EolabError(f"unknown index {name!r}", hint="known: " + ", ".join(INDICES))
    need, fn, _ = INDICES[name]
    missing = [b for b in need if b not in bands]
    if missing:
        raise EolabError(f"index {name} needs bands {', '.join(missing)}", hint="load them into the cube")
    out = fn(bands)
    if hasattr(out, "attrs"):
        out.attrs = {"long_name": name, "reference": INDICES[name][2]}
    if hasattr(out, "name"):
        try:
            out.name = name
        except AttributeError:
            pass
    return out


def add_indices(ds: Any, names: list[str] | tuple[str, ...]) -> Any:
    """``ds`` (an xarray Dataset of bands) with the indices added as variables (lazy stays lazy)."""
    out = ds.copy()
    for name in names:
        out[name] = index(ds, name)
    return out
