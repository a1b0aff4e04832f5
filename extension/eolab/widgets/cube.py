"""One-click cube: load the browser's selection as a lazy cube, show its repr and size, plot it.

The functions at the top (``rgb``, ``ndvi``, ``point_series``, ``preview_png``, ``quick_views``)
work without widgets, so notebooks and tests can call them; :class:`CubePanel` is the view.
"""

from __future__ import annotations

import contextlib
import html
import io
from typing import Any

from eolab.data.load import load_cube as load
from eolab.errors import EolabError
from eolab.search import human_bytes, size_estimate

RGB_BANDS = ("B04", "B03", "B02")
DEFAULT_BANDS = ("B02", "B03", "B04", "B08")
NDVI_RANGE = (-0.2, 0.9)


def _need(cube, bands, what: str) -> None:
    missing = [b for b in bands if b not in cube.data_vars]
    if missing:
        raise EolabError(f"{what} needs band(s) {', '.join(missing)}", hint="add them to the bands and load again")


def ndvi(cube):
    """Lazy NDVI (B08 − B04) / (B08 + B04) of a reflectance cube."""
    _need(cube, ("B08", "B04"), "NDVI")
    out = (cube.B08 - cube.B04) / (cube.B08 + cube.B04)
    out.name = "NDVI"
    return out


def rgb(cube, brightness: float = 0.25):
    """Lazy true-colour array (time, y, x, band) scaled to 0–1 (reflectance / ``brightness``)."""
    _need(cube, RGB_BANDS, "true colour")
    stacked = cube[list(RGB_BANDS)].to_array("band").transpose("time", "y", "x", "band")
    return (stacked / brightness).clip(0, 1)


def point_series(cube, lon: float, lat: float, variable: str = "NDVI"):
    """The time series of ``variable`` (a band or 'NDVI') at the pixel nearest to lon/lat (computed)."""
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", cube.odc.crs, always_xy=True).transform(lon, lat)
    data = ndvi(cube) if variable == "NDVI" else cube[variable]
    return point_series_xy(data, x, y)


def point_series_xy(data, x: float, y: float):
    xs, ys = data.x.values, data.y.values
    if not (min(xs) - abs(xs[1] - xs[0]) <= x <= max(xs) + abs(xs[1] - xs[0])
            and min(ys) - abs(ys[1] - ys[0]) <= y <= max(ys) + abs(ys[1] - ys[0])):
        raise EolabError(f"point ({x:.0f}, {y:.0f}) is outside the cube", hint="click inside the image")
    return data.sel(x=x, y=y, method="nearest").compute()


def preview_png(cube, time_index: int = -1, kind: str = "auto", width: float = 5.0) -> bytes:
    """A PNG of one date (matplotlib, no browser needed): true colour if the bands are there, else NDVI."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if kind == "auto":
        kind = "rgb" if all(b in cube.data_vars for b in RGB_BANDS) else "ndvi"
    stamp = str(cube.time.values[time_index])[:10]
    fig, ax = plt.subplots(figsize=(width, width), dpi=80)
    if kind == "rgb":
        ax.imshow(rgb(cube).isel(time=time_index).fillna(0).values)
        ax.set_title(f"true colour {stamp}")
    else:
        image = ax.imshow(ndvi(cube).isel(time=time_index).values, cmap="RdYlGn", vmin=NDVI_RANGE[0],
                          vmax=NDVI_RANGE[1])
        fig.colorbar(image, ax=ax, shrink=0.7, label="NDVI")
        ax.set_title(f"NDVI {stamp}")
    ax.set_axis_off()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def quick_views(cube, variable: str = "auto"):
    """hvplot views: an image with a time slider, and an NDVI time series at the clicked point.

    Returns ``(image, series)``; ``image + series`` is the linked layout (click the image).
    """
    import holoviews as hv
    import hvplot.xarray  # noqa: F401  (registers .hvplot)

    if variable == "auto":
        variable = "NDVI" if {"B04", "B08"} <= set(cube.data_vars) else "RGB"
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
        data = ndvi(cube) if {"B04", "B08"} <= set(cube.data_vars) else cube[next(iter(cube.data_vars))]
    x0, y0 = float(data.x[len(data.x) // 2]), float(data.y[len(data.y) // 2])
    tap = hv.streams.Tap(source=image, x=x0, y=y0)

    def series(x, y):
        x = x0 if x is None else x
        y = y0 if y is None else y
        values = point_series_xy(data, x, y)
        return values.hvplot.line(x="time", title=f"{data.name or 'value'} at x={x:.0f}, y={y:.0f}",
                                  frame_width=360)

    return image, hv.DynamicMap(series, streams=[tap]), tap


def offline_plots(tiles_url: str | None = None) -> None:
    """Set up HoloViews/Bokeh for notebooks that cannot reach a CDN.

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
    hv.extension("bokeh", inline=True)


def _crs_name(cube) -> str:
    epsg = cube.odc.crs.epsg
    return f"EPSG:{epsg}" if epsg else str(cube.odc.crs)[:60]


class CubePanel:
    """Bands, resolution, CRS and cloud-mask options; "Load" shows the lazy cube's repr, size and plots."""

    def __init__(self, browser: Any, *, bands=DEFAULT_BANDS, resolution: float = 20, plots: bool = True,
                 tiles_url: str | None = None):
        import ipywidgets as w

        self.browser = browser
        self.state = browser.state if hasattr(browser, "state") else browser
        self.cube = None
        self.plots = plots
        self.tiles_url = tiles_url or getattr(browser, "tiles_url", None)
        self.bands = w.SelectMultiple(options=list(dict.fromkeys(list(bands) + ["B05", "B8A", "B11", "B12", "SCL"])),
                                      value=tuple(bands), description="bands", rows=5)
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
        self.output = w.Output()
        self.output.add_class("eolab-cube-plot")
        self.widget = w.VBox([w.HBox([self.bands, w.VBox([self.resolution, self.crs, self.mask])]),
                              w.HBox([self.load_button, self.plot_button]), self.message, self.size, self.repr,
                              self.image, self.output])
        self.widget.add_class("eolab-cube")

    def load(self):
        """Load the browser's selection (lazily) with the panel's options; the cube is also ``panel.cube``."""
        bbox = self.state.picker.bbox
        items = self.state.item_collection()
        self.cube = load(items, bands=list(self.bands.value) or None, resolution=self.resolution.value,
                         crs=self.crs.value.strip() or None, bbox=list(bbox) if bbox else None, mask=self.mask.value)
        return self.cube

    def _on_load(self) -> None:
        self.message.value = "loading (lazily: nothing is read yet) ..."
        self.size.value = ""
        self.repr.clear_output()
        self.image.value = b""
        self.output.clear_output()
        try:
            cube = self.load()
        except EolabError as exc:
            self.message.value = f"<span style='color:#b00020'>{html.escape(str(exc))}</span>"
            return
        dims = ", ".join(f"{k}: {v}" for k, v in cube.sizes.items())
        self.size.value = (f"<b>{human_bytes(size_estimate(cube))}</b> once computed ({dims}; "
                           f"{len(cube.data_vars)} variables, {_crs_name(cube)})")
        from IPython.display import display

        with self.repr:
            display(cube)
        self.message.value = "cube ready (lazy); plotting reads the data"
        self.plot_button.disabled = False
        if self.plots:
            self._on_plot()

    def _on_plot(self) -> None:
        from IPython.display import display

        if self.cube is None:
            return
        try:
            self.image.value = preview_png(self.cube)
            from IPython import get_ipython

            shell = get_ipython()
            # A button click runs outside any cell, where IPython has not put get_ipython() into
            # builtins; HoloViews' display hooks need it.
            trap = shell.builtin_trap if shell is not None else contextlib.nullcontext()
            with self.output, trap:
                offline_plots(self.tiles_url)
                image, curve, _ = quick_views(self.cube)
                display(image + curve)
            self.message.value = "cube ready; click the image for the time series at that point"
        except EolabError as exc:
            self.message.value = f"<span style='color:#b00020'>{html.escape(str(exc))}</span>"

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
