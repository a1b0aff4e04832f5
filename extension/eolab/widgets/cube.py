"""One-click cube: load the browser's selection as a lazy cube, show its repr and size, plot it.

The functions at the top (``rgb``, ``ndvi``, ``point_series``, ``preview_png``, ``quick_views``)
work without widgets, so notebooks and tests can call them; :class:`CubePanel` is the view.
"""

from __future__ import annotations

import contextlib
import html
import io
import warnings
from typing import Any

from eolab.data.load import load_cube as load
from eolab.data.load import read_estimate
from eolab.data.profiles import COMMON_BANDS, S2_TO_COMMON
from eolab.errors import EolabError
from eolab.search import human_bytes, size_estimate
from eolab.widgets._display import NotebookView, mark_live

RGB_BANDS = ("red", "green", "blue")
DEFAULT_BANDS = ("blue", "green", "red", "nir")
NDVI_RANGE = (-0.2, 0.9)


def _band(cube, name: str) -> str | None:
    """The cube variable holding common band ``name`` (``red``): loaded as ``red``, ``B04`` or another key."""
    s2 = COMMON_BANDS[name][0]
    for var in cube.data_vars:
        if var in (name, s2) or S2_TO_COMMON.get(str(var).upper()) == name:
            return var
    return None


def _need(cube, names, what: str) -> list[str]:
    found = [_band(cube, n) for n in names]
    missing = [f"{n} ({COMMON_BANDS[n][0]})" for n, v in zip(names, found) if v is None]
    if missing:
        raise EolabError(f"{what} needs band(s) {', '.join(missing)}", hint="add them to the bands and load again")
    return found


def _has(cube, names) -> bool:
    return all(_band(cube, n) is not None for n in names)


def ndvi(cube):
    """Lazy NDVI (nir − red) / (nir + red) of a reflectance cube (bands named ``nir``/``red`` or ``B08``/``B04``)."""
    nir, red = _need(cube, ("nir", "red"), "NDVI")
    out = (cube[nir] - cube[red]) / (cube[nir] + cube[red])
    out.name = "NDVI"
    return out


def rgb(cube, brightness: float = 0.25):
    """Lazy true-colour array (time, y, x, band) scaled to 0–1 (reflectance / ``brightness``)."""
    names = _need(cube, RGB_BANDS, "true colour")
    stacked = cube[names].to_array("band").transpose("time", "y", "x", "band")
    return (stacked / brightness).clip(0, 1)


def band_options(extra=()) -> list[tuple[str, str]]:
    """(label, value) of the band selector: common names with their Sentinel-2 band, then other keys
    (a provider's asset keys are accepted as they are, e.g. ``B04`` or ``red``)."""
    options = [(f"{name} ({s2})", name) for name, (s2, _) in COMMON_BANDS.items()]
    values = {value for _, value in options}
    for key in [*extra, "SCL"]:
        if key in values:
            continue
        common = S2_TO_COMMON.get(str(key).upper())
        options.append((f"{key} ({common})" if common else str(key), key))
        values.add(key)
    return options


def clear_shares(cube, cloud_cover: dict[str, float] | None = None) -> tuple[list[float], str]:
    """Per date, the share (0–1) of the area that is clear, and how it was judged.

    By the cube's cloud mask (``clear``: reads the mask only) when it has one, else by the items'
    ``eo:cloud_cover`` (``cloud_cover``: date 'YYYY-MM-DD' -> %, for the whole scene), else by the
    share of pixels with data.
    """
    import numpy as np

    if "clear" in cube.data_vars:
        return [float(v) for v in cube["clear"].mean(("y", "x")).compute().values], "cloud mask"
    days = [str(t)[:10] for t in cube.time.values]
    if cloud_cover and all(d in cloud_cover for d in days):
        return [1 - cloud_cover[d] / 100 for d in days], "eo:cloud_cover"
    first = cube[next(v for v in cube.data_vars)]
    return [float(v) for v in np.asarray(first.notnull().mean(("y", "x")).compute())], "pixels with data"


def clearest_date(cube, cloud_cover: dict[str, float] | None = None) -> int:
    """Index of the clearest date (the latest of equally clear ones); see :func:`clear_shares`."""
    shares, _ = clear_shares(cube, cloud_cover)
    best = max(shares)
    return max(i for i, v in enumerate(shares) if v == best)


def point_series(cube, lon: float, lat: float, variable: str = "NDVI"):
    """The time series of ``variable`` (a band or 'NDVI') at the pixel nearest to lon/lat (computed)."""
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", cube.odc.crs, always_xy=True).transform(lon, lat)
    data = ndvi(cube) if variable == "NDVI" else cube[variable]
    return point_series_xy(data, x, y)


def _pixel_size(data, dim: str) -> float:
    """The pixel size along ``dim`` (from the coordinates; from the grid when it is one pixel wide)."""
    values = data[dim].values
    if values.size > 1:
        return abs(float(values[1] - values[0]))
    try:
        res = data.odc.geobox.resolution
        return abs(float(res.x if dim == "x" else res.y))
    except Exception:  # no grid attached: the pixel itself is the tolerance
        return 0.0


def point_series_xy(data, x: float, y: float):
    xs, ys = data.x.values, data.y.values
    dx, dy = _pixel_size(data, "x"), _pixel_size(data, "y")
    if not (min(xs) - dx <= x <= max(xs) + dx and min(ys) - dy <= y <= max(ys) + dy):
        raise EolabError(f"point ({x:.0f}, {y:.0f}) is outside the cube", hint="click inside the image")
    return data.sel(x=x, y=y, method="nearest").compute()


def preview_png(cube, time_index: int | None = None, kind: str = "auto", width: float = 5.0,
                cloud_cover: dict[str, float] | None = None) -> bytes:
    """A PNG of one date (matplotlib, no browser needed): true colour if the bands are there, else NDVI.

    ``time_index`` None: the clearest date (:func:`clearest_date`); the date is written on the image.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    note = ""
    if time_index is None:
        shares, how = clear_shares(cube, cloud_cover)
        time_index = clearest_date(cube, cloud_cover)
        note = f" — clearest date, {shares[time_index]:.0%} clear ({how})"
    if kind == "auto":
        kind = "rgb" if _has(cube, RGB_BANDS) else "ndvi"
    stamp = str(cube.time.values[time_index])[:10]
    fig, ax = plt.subplots(figsize=(width, width), dpi=80)
    if kind == "rgb":
        ax.imshow(rgb(cube).isel(time=time_index).fillna(0).values)
        ax.set_title(f"true colour {stamp}{note}", fontsize=9)
    else:
        image = ax.imshow(ndvi(cube).isel(time=time_index).values, cmap="RdYlGn", vmin=NDVI_RANGE[0],
                          vmax=NDVI_RANGE[1])
        fig.colorbar(image, ax=ax, shrink=0.7, label="NDVI")
        ax.set_title(f"NDVI {stamp}{note}", fontsize=9)
    ax.set_axis_off()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def quick_views(cube, variable: str = "auto", time_index: int | None = None,
                cloud_cover: dict[str, float] | None = None):
    """hvplot views: an image with a time slider, and an NDVI time series at the clicked point.

    Both start at one date, ``time_index`` (None: the clearest date, as :func:`preview_png` picks
    it): the image shows it first and the series marks it with a dashed line.
    Returns ``(image, series, tap)``; ``(image + series).cols(1)`` is the linked layout (click the
    image), one above the other so it fits a notebook's width.
    """
    import holoviews as hv
    import hvplot.xarray  # noqa: F401  (registers .hvplot)
    import numpy as np

    if time_index is None:
        time_index = clearest_date(cube, cloud_cover)
    marked = cube.time.values[time_index]
    stamp = str(marked)[:10]
    if variable == "auto":
        variable = "NDVI" if _has(cube, ("nir", "red")) else "RGB"
    options = dict(data_aspect=1, frame_width=360, tools=["tap", "hover"])
    if variable == "NDVI":
        data = ndvi(cube)
        frames = hv.Dataset(data, kdims=["time", "y", "x"], vdims=["NDVI"]).to(hv.Image, ["x", "y"], dynamic=True)
        image = frames.opts(hv.opts.Image(cmap="RdYlGn", clim=NDVI_RANGE, colorbar=True, title="NDVI", **options))
    else:
        scaled = rgb(cube)
        times = list(scaled.time.values)

        def frame(time):
            one = scaled.sel(time=time).transpose("band", "y", "x")
            return hv.RGB((one.x.values, one.y.values, *one.fillna(0).values), ["x", "y"])

        image = hv.DynamicMap(frame, kdims=[hv.Dimension("time", values=times)]).opts(
            hv.opts.RGB(title="true colour", **options))
        data = ndvi(cube) if _has(cube, ("nir", "red")) else cube[next(iter(cube.data_vars))]
    image = image.redim.default(time=marked)
    x0, y0 = float(data.x[len(data.x) // 2]), float(data.y[len(data.y) // 2])
    tap = hv.streams.Tap(source=image, x=x0, y=y0)

    # The whole period on the time axis: Bokeh leaves the marker out of the range, and the clicked
    # pixel may have no value on the first or last dates.
    first, last = cube.time.values[0], cube.time.values[-1]
    pad = max((last - first) * 0.03, np.timedelta64(1, "D"))

    def series(x, y):
        x = x0 if x is None else x
        y = y0 if y is None else y
        values = point_series_xy(data, x, y)
        curve = values.hvplot.line(x="time", title=f"{data.name or 'value'} at x={x:.0f}, y={y:.0f}",
                                   xlabel=f"time (dashed: {stamp}, the preview's date)", frame_width=360,
                                   xlim=(first - pad, last + pad))
        return curve * hv.VLine(marked).opts(color="#ff7f00", line_dash="dashed")

    return image, hv.DynamicMap(series, streams=[tap]), tap


def offline_plots(tiles_url: str | None = None) -> None:
    """Set up HoloViews/Bokeh for notebooks that cannot reach a CDN, without the logo banner.

    BokehJS is inlined from the installed package; Panel's stylesheets come from the eolab tile
    service (``PANEL_CDN_ROOT``). Panel reads that variable when it is first imported, so this
    only helps before anything imported panel (hvplot, holoviews) — the hub sets it for kernels.
    """
    import os
    import sys

    from eolab.tiles import panel_cdn_root

    if "PANEL_CDN_ROOT" not in os.environ and "panel" not in sys.modules:
        try:
            os.environ["PANEL_CDN_ROOT"] = panel_cdn_root(tiles_url)
        except EolabError:
            pass  # no tile service: plots still render, Panel's stylesheets will be missing
    import holoviews as hv
    import panel as pn

    pn.config.inline = True
    # logo=False: HoloViews otherwise prints a row of project logos above the first plot.
    hv.extension("bokeh", inline=True, logo=False)


def read_text(cube) -> str:
    """One line of HTML: what computing ``cube`` will read (:func:`eolab.data.read_estimate`)."""
    try:
        est = read_estimate(cube)
    except EolabError:
        return ""
    parts = []
    for provider, info in est["providers"].items():
        extra = [f"~{info['seconds_at_rate']:g} s at its rate"] if "seconds_at_rate" in info else []
        if "share_of_monthly_quota" in info:
            extra.append(f"{info['share_of_monthly_quota']:.2%} of its monthly quota")
        parts.append(html.escape(provider) + (f" ({', '.join(extra)})" if extra else ""))
    return (f"computing it reads <b>{est['assets']} assets</b> in {est['chunk_reads']} chunk reads, "
            f"up to <b>{human_bytes(est['bytes_decoded'])}</b> decoded, from {', '.join(parts)}")


def _crs_name(cube) -> str:
    epsg = cube.odc.crs.epsg
    return f"EPSG:{epsg}" if epsg else str(cube.odc.crs)[:60]


class CubePanel(NotebookView):
    """Bands, resolution, CRS and cloud-mask options; "Load" shows the lazy cube's repr, size and plots."""

    def __init__(self, browser: Any, *, bands=DEFAULT_BANDS, resolution: float = 20, plots: bool = True,
                 tiles_url: str | None = None):
        import ipywidgets as w

        self.browser = browser
        self.state = browser.state if hasattr(browser, "state") else browser
        self.cube = None
        self.plots = plots
        self.tiles_url = tiles_url or getattr(browser, "tiles_url", None)
        # Common names first (each provider's own key is found by load_cube); keys passed in stay offered.
        self.bands = w.SelectMultiple(options=band_options(bands), value=tuple(bands), description="bands", rows=6)
        self.bands.add_class("eolab-bands")
        self.resolution = w.BoundedFloatText(value=resolution, min=1, max=10000, step=10, description="resolution m")
        self.resolution.add_class("eolab-resolution")
        self.crs = w.Text(value="", placeholder="native (e.g. EPSG:32634)", description="CRS")
        self.crs.add_class("eolab-crs")
        self.mask = w.Dropdown(options=[("SCL cloud mask", "scl"), ("auto (SCL if present)", "auto"),
                                        ("no mask", None)], value="auto", description="mask")
        self.mask.add_class("eolab-mask")
        self.load_button = w.Button(description="Load", button_style="success", icon="cube")
        self.load_button.add_class("eolab-load")
        self.load_button.on_click(lambda _: self._on_load())
        self.plot_button = w.Button(description="Plot", icon="chart-line", disabled=True)
        self.plot_button.add_class("eolab-plot")
        self.plot_button.on_click(lambda _: self._on_plot())
        self.message = w.HTML()
        self.message.add_class("eolab-cube-message")
        self.size = w.HTML()
        self.size.add_class("eolab-cube-size")
        self.repr = w.Output()  # rendered by JupyterLab like a cell output (xarray's own styles)
        self.repr.add_class("eolab-cube-repr")
        self.image = w.Image(format="png", layout=w.Layout(max_width="420px"))
        self.image.add_class("eolab-cube-image")
        self.image_date = w.HTML()
        self.image_date.add_class("eolab-preview-date")
        self.output = w.Output()
        self.output.add_class("eolab-cube-plot")
        self.widget = w.VBox([w.HBox([self.bands, w.VBox([self.resolution, self.crs, self.mask])]),
                              w.HBox([self.load_button, self.plot_button]), self.message, self.size, self.repr,
                              self.image_date, self.image, self.output])
        self.widget.add_class("eolab-cube")
        mark_live(self.widget)

    def load(self):
        """Load the browser's selection (lazily) with the panel's options; the cube is also ``panel.cube``."""
        bbox = self.state.picker.bbox
        items = self.state.item_collection()
        crs = self.crs.value.strip() or None
        if crs is not None:
            from pyproj import CRS
            from pyproj.exceptions import CRSError

            try:
                geographic = CRS.from_user_input(crs).is_geographic
            except CRSError:
                geographic = False  # load_cube names an unknown CRS
            if geographic:
                raise EolabError(f"{crs} is in degrees, and the panel's resolution is in metres",
                                 hint="choose a projected CRS (leave it empty for the items' own UTM grid, or "
                                      "EPSG:3035), or in code load_cube(..., crs='EPSG:4326', resolution=0.0002)")
        if not items:
            raise EolabError("no rows are ticked", hint="tick the items to load in the results table")
        self.cube = load(items, bands=list(self.bands.value) or None, resolution=self.resolution.value,
                         crs=crs, bbox=list(bbox) if bbox else None, mask=self.mask.value)
        return self.cube

    def _on_load(self) -> None:
        self.message.value = "loading (lazily: nothing is read yet) ..."
        self.size.value = ""
        self.repr.clear_output()
        self.image.value = b""
        self.output.clear_output()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)
                cube = self.load()
        except EolabError as exc:
            self.message.value = f"<span style='color:#b00020'>{html.escape(str(exc))}</span>"
            return
        notes = [str(c.message) for c in caught if issubclass(c.category, UserWarning)]
        dims = ", ".join(f"{k}: {v}" for k, v in cube.sizes.items())
        self.size.value = (f"<b>{human_bytes(size_estimate(cube))}</b> once computed ({dims}; "
                           f"{len(cube.data_vars)} variables, {_crs_name(cube)})<br>{read_text(cube)}")
        from IPython.display import display

        with self.repr:
            display(cube)
        self.message.value = "cube ready (lazy); plotting reads the data" + "".join(
            f"<br><span style='color:#b36b00'>{html.escape(note)}</span>" for note in dict.fromkeys(notes))
        self.plot_button.disabled = False
        if self.plots:
            self._on_plot()

    def _cloud_cover(self) -> dict[str, float]:
        """eo:cloud_cover (%) of the selected items per date (mean of a day's scenes)."""
        per_day: dict[str, list[float]] = {}
        for item in self.state.selected_items():
            props = item.get("properties") or {}
            if props.get("eo:cloud_cover") is not None and props.get("datetime"):
                per_day.setdefault(str(props["datetime"])[:10], []).append(float(props["eo:cloud_cover"]))
        return {day: sum(v) / len(v) for day, v in per_day.items()}

    def _on_plot(self) -> None:
        from IPython.display import display

        if self.cube is None:
            return
        try:
            cloud_cover = self._cloud_cover()
            shares, how = clear_shares(self.cube, cloud_cover)
            index = clearest_date(self.cube, cloud_cover)
            self.image.value = preview_png(self.cube, time_index=index)
            self.image_date.value = (f"preview: <b>{str(self.cube.time.values[index])[:10]}</b>, the clearest date "
                                     f"({shares[index]:.0%} clear by {how}); the plot below marks the same date")
            from IPython import get_ipython

            shell = get_ipython()
            # A button click runs outside any cell, where IPython has not put get_ipython() into
            # builtins; HoloViews' display hooks need it.
            trap = shell.builtin_trap if shell is not None else contextlib.nullcontext()
            with self.output, trap:
                offline_plots(self.tiles_url)
                image, curve, _ = quick_views(self.cube, time_index=index)
                display((image + curve).cols(1))
            self.message.value = "cube ready; click the image for the time series at that point"
        except EolabError as exc:
            self.message.value = f"<span style='color:#b00020'>{html.escape(str(exc))}</span>"

