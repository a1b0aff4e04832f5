"""The cube panel and its plots against the real stack: load options, sizes, frames and the tapped series."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from eolab.errors import EolabError
from eolab.search import human_bytes, size_estimate
from eolab.widgets import BrowserState, PickerState
from eolab.widgets.cube import (
    CubePanel,
    clear_shares,
    clearest_date,
    ndvi,
    point_series,
    point_series_xy,
    preview_png,
    quick_views,
)

# odc-stac resamples 10 m bands to 20 m through rasterio arrays without a transform; not ours.
pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")]
AREA = (20.605, 47.695, 20.630, 47.712)  # fields north-west of the lake (demo tile r00c00)


@pytest.fixture(scope="module")
def browser(catalog_stack):
    picker = PickerState()
    picker.set_bbox(*AREA)
    picker.set_time_range("2026-05-01", "2026-07-31")
    state = BrowserState(catalog_stack.broker_url, picker=picker, limit=50)
    state.chosen = ["sentinel-2-l2a"]
    state.search()
    for row in state.rows:
        state.toggle(row["key"])
    yield state
    state.catalogue.close()


@pytest.fixture(scope="module")
def cube(browser):
    panel = CubePanel(browser, bands=["B02", "B03", "B04", "B08"], resolution=20, plots=False)
    return panel.load()


def test_panel_options_reach_the_loader(browser, cube):
    n_items = len(browser.selected)
    assert cube.sizes["time"] == n_items and cube.odc.geobox.resolution.x == 20 and cube.odc.crs.epsg == 32634
    assert set(cube.data_vars) == {"B02", "B03", "B04", "B08", "clear"}  # SCL mask applied ("auto")
    panel = CubePanel(browser, bands=["B04", "B08"], resolution=30, plots=False)
    panel.crs.value, panel.mask.value = "EPSG:3857", None
    panel._on_load()
    other = panel.cube
    assert other.odc.crs.epsg == 3857 and other.odc.geobox.resolution.x == 30
    assert set(other.data_vars) == {"B04", "B08"}
    assert panel.size.value.startswith(f"<b>{human_bytes(size_estimate(other))}</b> once computed")
    assert "EPSG:3857" in panel.size.value and not panel.plot_button.disabled


def test_a_degrees_crs_nothing_ticked_and_a_tiny_cube_are_messages(browser):
    """The panel's resolution is in metres: a CRS in degrees gave a cube of one pixel elsewhere, shown
    as "cube ready"; with no row ticked it said to widen the search; load_cube's warnings were lost."""
    panel = CubePanel(browser, bands=["B04", "B08"], resolution=20, plots=False)
    panel.crs.value = "EPSG:4326"
    panel._on_load()
    assert "EPSG:4326 is in degrees, and the panel&#x27;s resolution is in metres" in panel.message.value
    assert panel.cube is None and panel.plot_button.disabled
    panel.crs.value = ""
    panel.resolution.value = 10000  # a cube of a pixel or two: loaded, and the warning is shown
    panel._on_load()
    assert panel.cube is not None and "cube ready" in panel.message.value
    assert "is the resolution in the CRS&#x27;s units" in panel.message.value
    tiny = panel.cube
    series = point_series(tiny, (AREA[0] + AREA[2]) / 2, (AREA[1] + AREA[3]) / 2)  # one pixel wide
    assert series.sizes["time"] == tiny.sizes["time"]
    saved = list(browser.selected)
    try:
        browser.selected = []
        panel._on_load()
        assert "no rows are ticked" in panel.message.value
    finally:
        browser.selected = saved


def test_mixed_selection_is_a_message_in_the_panel(catalog_stack):
    picker = PickerState()
    picker.set_bbox(*AREA)
    picker.set_time_range("2026-05-01", "2026-05-31")
    state = BrowserState(catalog_stack.broker_url, picker=picker, limit=50)
    state.search()
    state.select_all()
    panel = CubePanel(state, plots=False)
    panel._on_load()
    assert "the selection mixes collections sentinel-1-grd, sentinel-2-l2a" in panel.message.value
    assert panel.cube is None and panel.plot_button.disabled


def test_ndvi_frames_and_the_tapped_time_series(cube):
    image, curve, tap = quick_views(cube, "NDVI")
    expected = ndvi(cube).compute()
    t = 2
    frame = image[expected.time.values[t]]
    values = frame.dimension_values("NDVI", flat=False)
    # dimension_values gives rows south to north; the cube runs north to south.
    np.testing.assert_allclose(np.flipud(values), expected.isel(time=t).values, equal_nan=True, rtol=1e-6)
    x, y = float(cube.x[10]), float(cube.y[7])
    tap.event(x=x, y=y)
    series, marker = curve[()].values()
    np.testing.assert_allclose(series.dimension_values(1), expected.isel(x=10, y=7).values, equal_nan=True)
    assert f"x={x:.0f}" in series.opts.get().kwargs["title"]
    # The series marks the date the image opens at and the preview shows: the clearest one.
    best = clearest_date(cube)
    assert marker.data == cube.time.values[best] and image.kdims[0].default == cube.time.values[best]
    assert f"dashed: {str(cube.time.values[best])[:10]}" in series.opts.get().kwargs["xlabel"]
    low, high = series.opts.get().kwargs["xlim"]
    assert low < cube.time.values[0] and high > cube.time.values[-1]  # the marker is always in view
    with pytest.raises(EolabError, match="is outside the cube"):
        point_series_xy(expected, x + 1e6, y)


def test_point_series_by_lon_lat_and_previews(cube):
    lon, lat = (AREA[0] + AREA[2]) / 2, (AREA[1] + AREA[3]) / 2
    series = point_series(cube, lon, lat)
    assert series.sizes["time"] == cube.sizes["time"]
    valid = series.values[np.isfinite(series.values)]
    assert len(valid) >= 5 and np.all((valid > -1) & (valid < 1))
    rgb_png = Image.open(io.BytesIO(preview_png(cube)))
    assert rgb_png.format == "PNG" and rgb_png.size[0] > 200
    ndvi_png = Image.open(io.BytesIO(preview_png(cube[["B04", "B08"]], time_index=0)))
    assert ndvi_png.size[0] > rgb_png.size[0]  # the NDVI preview carries a colour bar
    image, _, _ = quick_views(cube, "RGB")
    assert image[cube.time.values[0]].data  # renders a frame


def test_the_preview_shows_the_clearest_date_and_says_so(browser):
    """The preview picks the date the cloud mask calls clearest (not the last one), writes its date
    next to the image, and the plot marks that same date."""
    panel = CubePanel(browser, resolution=20, plots=False)
    panel._on_load()
    panel._on_plot()
    cube = panel.cube
    shares, how = clear_shares(cube)
    assert how == "cloud mask"
    clear = cube["clear"].mean(("y", "x")).compute().values
    best = int(np.flatnonzero(clear == clear.max())[-1])
    day = str(cube.time.values[best])[:10]
    assert clear[best] > 0.95 and clear[-1] < clear[best]  # the last date (shown before) is cloudier
    assert f"preview: <b>{day}</b>, the clearest date ({clear[best]:.0%} clear by cloud mask)" in panel.image_date.value
    # The scenes' own eo:cloud_cover of that date agrees that it is (nearly) cloud-free.
    assert panel._cloud_cover()[day] < 5
    assert panel.image.value == preview_png(cube, time_index=best)
    # Without a mask: the items' eo:cloud_cover decides.
    no_mask = cube[["red", "green", "blue"]]
    cover = panel._cloud_cover()
    by_cover = clearest_date(no_mask, cover)
    assert cover[str(no_mask.time.values[by_cover])[:10]] == min(cover.values())


def test_band_selector_offers_common_names_and_keys_still_load(browser):
    panel = CubePanel(browser, bands=["B04", "nir"], resolution=40, plots=False)
    labels = dict((value, label) for label, value in panel.bands.options)
    assert labels["red"] == "red (B04)" and labels["nir"] == "nir (B08)" and labels["B04"] == "B04 (red)"
    assert panel.bands.value == ("B04", "nir")
    panel._on_load()
    assert set(panel.cube.data_vars) == {"B04", "nir", "clear"}
    assert float(ndvi(panel.cube).mean()) > 0.2  # NDVI finds red and nir under either name
    default = CubePanel(browser, resolution=40, plots=False)
    assert default.bands.value == ("blue", "green", "red", "nir")


def test_the_read_estimate_is_shown_before_anything_is_read(browser):
    from eolab.data import read_estimate

    panel = CubePanel(browser, resolution=20, plots=False)
    panel._on_load()
    est = read_estimate(panel.cube)
    assert est["assets"] == 5 * len(browser.selected)  # four bands and the mask per item
    assert (f"computing it reads <b>{est['assets']} assets</b> in {est['chunk_reads']} chunk reads, "
            f"up to <b>{human_bytes(est['bytes_decoded'])}</b> decoded") in panel.size.value


def test_cube_summary_is_short_and_provenance_stays_reachable(cube):
    text = repr(cube)
    assert len(text.splitlines()) < 20
    prov = cube.attrs["eolab:provenance"]
    assert str(prov).startswith(f"{len(prov['items'])} items from ")
    assert prov.records == prov["items"] and len(prov.records) == cube.sizes["time"]
    page = cube._repr_html_()
    assert len(page) < 60_000 and prov["items"][0]["id"] not in page
