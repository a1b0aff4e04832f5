"""Figures for the template notebooks (matplotlib; headless-safe). Each returns the Figure."""

from __future__ import annotations

from typing import Any

import numpy as np


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _extent(da: Any) -> list[float]:
    x, y = da.x.values, da.y.values
    dx = abs(float(x[1] - x[0])) if x.size > 1 else 10.0
    return [x.min() - dx / 2, x.max() + dx / 2, y.min() - dx / 2, y.max() + dx / 2]


def water_extent(df: Any, s1: Any | None = None, title: str = "Water extent") -> Any:
    """Observed and gap-filled water area per date, with the clear-sky share as bars."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4))
    ax2 = ax.twinx()
    ax2.bar(df.index, df["clear_fraction"] * 100, width=3, color="0.85", label="clear sky (%)")
    ax2.set_ylim(0, 100)
    ax2.set_ylabel("clear sky (%)")
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.plot(df.index, df["observed_ha"], "o", color="tab:blue", ms=4, label="water seen (ha)")
    if "filled_ha" in df:
        good = df["clear_fraction"] >= 0.5
        ax.plot(df.index, df["filled_ha"], "-", color="tab:blue", alpha=0.4)
        ax.plot(df.index[good], df["filled_ha"][good], "s", color="navy", ms=5,
                label="water, gaps filled (ha; ≥ 50 % clear)")
    if s1 is not None:
        ax.plot(s1.index, s1["observed_ha"], "^", color="tab:orange", ms=5, label="Sentinel-1 water (ha)")
    ax.set_ylabel("hectares")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def raster(da: Any, *, title: str = "", cmap: str = "viridis", vmin=None, vmax=None, ax=None,
           label: str = "", categories: dict[int, tuple[str, str]] | None = None) -> Any:
    """A (y, x) map; ``categories`` {value: (label, colour)} draws a legend instead of a colour bar."""
    plt = _plt()
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 6))
    values = np.asarray(da.values, float)
    if categories:
        keys = sorted(categories)
        cm = ListedColormap([categories[k][1] for k in keys])
        norm = BoundaryNorm([k - 0.5 for k in keys] + [keys[-1] + 0.5], cm.N)
        ax.imshow(values, extent=_extent(da), cmap=cm, norm=norm, interpolation="nearest")
        ax.legend(handles=[Patch(color=categories[k][1], label=categories[k][0]) for k in keys],
                  loc="lower right", fontsize=7, framealpha=0.8)
    else:
        im = ax.imshow(values, extent=_extent(da), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig or ax.figure


def rgb(cube: Any, time_index: int, *, bands=("B04", "B03", "B02"), gain: float = 3.5, ax=None,
        title: str | None = None) -> Any:
    """True-colour quicklook of one date."""
    plt = _plt()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 6))
    layer = cube.isel(time=time_index)
    img = np.stack([np.asarray(layer[b].values, float) for b in bands], axis=-1)
    img = np.clip(np.nan_to_num(img, nan=1.0) * gain, 0, 1)
    ax.imshow(img, extent=_extent(layer))
    ax.set_title(title or str(layer.time.values)[:10])
    ax.set_xticks([])
    ax.set_yticks([])
    return fig or ax.figure


def confusion(matrix: Any, labels: list[str], *, title: str = "Confusion matrix (held-out parcels)") -> Any:
    """A confusion matrix, rows = reference, columns = prediction, counts and row shares."""
    plt = _plt()
    m = np.asarray(matrix, float)
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(labels), 0.8 + 0.7 * len(labels)))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j]:
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center",
                        color="white" if share[i, j] > 0.6 else "black", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(title)
    fig.tight_layout()
    return fig


#: Beyond this many parcels :func:`parcel_map` draws each as a dot inside it: matplotlib takes
#: minutes for the outlines of a country's claims, and at that scale they cannot be told apart.
MAX_OUTLINES = 20_000


def parcel_map(gdf: Any, column: str, *, colors: dict[str, str] | None = None, title: str = "",
               ax=None, legend: bool = True, max_outlines: int | None = None) -> Any:
    """Parcels coloured by a categorical column; more than ``max_outlines`` parcels (default
    :data:`MAX_OUTLINES`) as dots (``eolab.widgets.CountryMap`` draws any number as outlines)."""
    plt = _plt()
    from matplotlib.patches import Patch

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 7))
    limit = MAX_OUTLINES if max_outlines is None else max_outlines
    values = gdf[column].astype(str).to_numpy()
    cats = sorted(set(values))
    palette = colors or dict(zip(cats, plt.get_cmap("tab10").colors * 3))
    dots = len(gdf) > limit
    if dots:
        inside = gdf.geometry.representative_point()  # a point inside each parcel, unlike its centroid
        x, y = inside.x.to_numpy(), inside.y.to_numpy()
    for cat in cats:
        mask = values == cat
        if dots:
            ax.scatter(x[mask], y[mask], s=1, color=palette.get(cat, "0.5"), linewidths=0, rasterized=True)
        else:
            gdf[mask].plot(ax=ax, color=palette.get(cat, "0.5"), edgecolor="0.3", linewidth=0.2)
    if dots:
        geographic = gdf.crs is not None and gdf.crs.is_geographic
        ax.set_aspect(1 / np.cos(np.radians(np.nanmean(y))) if geographic else "equal")
        title = f"{title} ({len(gdf):,} parcel{'s' if len(gdf) != 1 else ''} as dots)".strip()
    if legend:
        ax.legend(handles=[Patch(color=palette.get(c, "0.5"), label=c) for c in cats], fontsize=7,
                  loc="lower right", framealpha=0.85)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig or ax.figure


def parcel_series(days: Any, series: dict[str, Any], *, events: dict[str, list] | None = None,
                  title: str = "", ax=None, ylabel: str = "NDVI") -> Any:
    """One parcel's time series (several lines), with detected events as vertical lines."""
    plt = _plt()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 3))
    for name, values in series.items():
        style = "o" if name.startswith("observed") else "-"
        ax.plot(days, values, style, ms=4, label=name)
    for name, dates in (events or {}).items():
        for k, d in enumerate(dates):
            ax.axvline(d, color="tab:red" if "mow" in name else "tab:brown", ls="--", lw=1,
                       label=name if k == 0 else None)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    if fig is not None:
        fig.autofmt_xdate()
        fig.tight_layout()
    return fig or ax.figure
