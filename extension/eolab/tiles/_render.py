"""Quicklook styles: which bands, the band math and the colours. Pure numpy, no I/O.

Values are physical (reflectance after the item's raster:bands scale/offset), so the same ranges
work for any provider whose items carry the raster extension.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eolab.errors import EolabError


@dataclass(frozen=True)
class Style:
    name: str
    title: str
    bands: tuple[str, ...]  # eo:bands common names, in the order the math uses them
    kind: str  # "rgb" (three bands stretched) or "index" (normalised difference, coloured)
    range: tuple[float, float]


STYLES = {
    "truecolor": Style("truecolor", "true colour (B04, B03, B02)", ("red", "green", "blue"), "rgb", (0.0, 0.25)),
    "falsecolor": Style("falsecolor", "false colour (B08, B04, B03)", ("nir", "red", "green"), "rgb", (0.0, 0.45)),
    "ndvi": Style("ndvi", "NDVI (B08 − B04) / (B08 + B04)", ("nir", "red"), "index", (-0.2, 0.9)),
}
def style(name: str) -> Style:
    try:
        return STYLES[name]
    except KeyError:
        raise EolabError(f"unknown quicklook style {name!r}", hint=f"styles are: {', '.join(STYLES)}") from None


def band_keys(item: dict, wanted: tuple[str, ...]) -> dict[str, str]:
    """``{common name: asset key}`` for the wanted bands of a STAC item dict, found as the loader finds
    them (:func:`eolab.data.profiles.resolve_band`: eo:bands/bands common names, Sentinel-2 and
    provider keys, Landsat's nir08 for nir), so a quicklook shows the bands a cube would hold."""
    from eolab.data import profiles

    assets = item.get("assets") or {}
    found = {name: profiles.resolve_band(item, name) for name in wanted}
    missing = [n for n, key in found.items() if key is None]
    if missing:
        raise EolabError(f"item {item.get('id')} has no {' or '.join(missing)} band",
                         hint=f"its assets are: {', '.join(assets) or 'none'}")
    return found  # type: ignore[return-value]


def band_assets(item: dict, wanted: tuple[str, ...]) -> dict[str, dict]:
    """``{common name: asset}`` for the wanted bands of a STAC item dict (see :func:`band_keys`)."""
    assets = item.get("assets") or {}
    return {name: assets[key] for name, key in band_keys(item, wanted).items()}


def band_sources(item: dict, wanted: tuple[str, ...], base_url: str | None = None) -> dict[str, tuple]:
    """``{common name: (href, scale, offset, nodata)}``: the loader's values for each band (the
    item's raster metadata, else its provider's convention: Sentinel-2 L2A and Landsat C2 L2 DNs
    carry none on some providers), hrefs resolved against ``base_url`` where relative."""
    from urllib.parse import urljoin

    from eolab.data import profiles

    assets = item.get("assets") or {}
    out = {}
    for name, key in band_keys(item, wanted).items():
        values = profiles.band_values(item, key)
        href = assets[key]["href"]
        out[name] = (urljoin(base_url, href) if base_url else href, values.scale, values.offset, values.nodata)
    return out


def physical(dn: np.ndarray, valid: np.ndarray, scale: float, offset: float) -> np.ndarray:
    out = dn.astype("float32") * np.float32(scale) + np.float32(offset)
    return np.where(valid, out, np.nan).astype("float32")


def _stretch(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    scaled = (values - lo) / (hi - lo)
    return (np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0) * 255 + 0.5).astype("uint8")


def _ramp() -> np.ndarray:
    """256 × RGB, red → yellow → green (ColorBrewer RdYlGn end points), for NDVI."""
    stops = np.array([[165, 0, 38], [244, 109, 67], [254, 224, 139], [217, 239, 139], [102, 189, 99], [0, 104, 55]],
                     dtype="float64")
    positions = np.linspace(0, 1, len(stops))
    x = np.linspace(0, 1, 256)
    return np.stack([np.interp(x, positions, stops[:, c]) for c in range(3)], axis=1).round().astype("uint8")


RAMP = _ramp()


def ndvi(nir: np.ndarray, red: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (nir - red) / (nir + red)
    return np.where(np.isfinite(out), out, np.nan).astype("float32")


def colourise(the_style: Style, bands: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 array (3, h, w), alpha uint8 (h, w)) from physical band arrays (NaN = no data)."""
    lo, hi = the_style.range
    if the_style.kind == "rgb":
        stack = np.stack([bands[name] for name in the_style.bands])
        alpha = np.all(np.isfinite(stack), axis=0)
        rgb = _stretch(stack, lo, hi)
    else:
        values = ndvi(bands["nir"], bands["red"])
        alpha = np.isfinite(values)
        index = _stretch(values, lo, hi)
        rgb = np.moveaxis(RAMP[index], -1, 0)
    rgb = np.where(alpha[None], rgb, 0).astype("uint8")
    return rgb, (alpha * 255).astype("uint8")
