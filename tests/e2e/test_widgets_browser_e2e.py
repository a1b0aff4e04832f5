"""JupyterLab in chromium: draw an area with the mouse, set dates, search, see footprints, load a cube;
then what a user sees of it: the preview's date on the plot, no logos or warning boxes, nothing cut
off on the right, and after reopening the notebook a note to re-run each widget's cell."""

from __future__ import annotations

import re

import httpx
import nbformat
import pytest

from tests.e2e._lab import HAVE_CHROMIUM

NO_CHROMIUM = "no chromium: apt-get install -y --no-install-recommends chromium"
pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(600),
              pytest.mark.skipif(not HAVE_CHROMIUM, reason=NO_CHROMIUM)]

CELLS = [
    "import datetime as dt\n"
    "from eolab.widgets import AreaTimePicker, CatalogueBrowser, CubePanel\n"
    "picker = AreaTimePicker(today=dt.date(2026, 11, 22))\n"
    "display(picker)",
    "browser = CatalogueBrowser(picker, limit=20)\n"
    "display(browser)",
    "panel = CubePanel(browser, resolution=20)\n"
    "display(panel)",
]


def write_notebook(root) -> str:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "eolab-e2e.ipynb")
    return "eolab-e2e.ipynb"


def shot(page, artifacts, name: str, selector: str | None = None) -> None:
    if selector:
        target = page.locator(selector).first
        target.scroll_into_view_if_needed()
        target.screenshot(path=str(artifacts / f"{name}.png"))
    else:
        page.screenshot(path=str(artifacts / f"{name}.png"))


def wait_for_tiles(page, part: str) -> None:
    """Every map tile in view has loaded, and some come from ``part`` of the tile service."""
    page.wait_for_function(
        "part => { const tiles = [...document.querySelectorAll('.eolab-map img.leaflet-tile')];"
        " return tiles.some(t => t.src.includes(part))"
        " && tiles.every(t => t.complete && t.classList.contains('leaflet-tile-loaded')); }", arg=part)


def test_draw_search_footprints_load(page, jupyter_lab, local_only, artifacts):
    name = write_notebook(jupyter_lab["root"])
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"[:300]) if m.type in ("error", "warning") else None)
    page.set_default_timeout(60_000)
    page.goto(f"{jupyter_lab['url']}/lab/tree/{name}?token={jupyter_lab['token']}")
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    # Wait for the kernel, then run everything (the same command as Run ▸ Run All Cells).
    page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook')")
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " return w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.status === 'idle'; }")
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-InputPrompt')].filter(p => /\\[\\d+\\]/.test(p.textContent))"
        ".length === %d" % len(CELLS), timeout=120_000)

    # The map and its offline base layer (the project's own tiles).
    page.wait_for_selector(".eolab-map .leaflet-container")
    wait_for_tiles(page, "/base/")
    shot(page, artifacts, "01-map", ".eolab-picker")

    # Draw a rectangle with the mouse over the fields north-west of the lake.
    page.locator(".eolab-map .leaflet-draw-draw-rectangle").click()
    box = page.locator(".eolab-map .leaflet-container").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 250, cy - 185)
    page.mouse.down()
    page.mouse.move(cx - 190, cy - 150, steps=5)
    page.mouse.move(cx - 130, cy - 110, steps=5)
    page.mouse.up()
    summary = page.locator(".eolab-aoi")
    summary.filter(has_text="1 shape").wait_for()
    west, south, east, north = map(float, re.search(r"bbox \[([^\]]+)\]", summary.inner_text()).group(1).split(","))
    assert 20.60 < west < east < 20.64 and 47.69 < south < north < 47.72

    # Dates.
    page.locator(".eolab-start input").fill("2026-05-01")
    page.locator(".eolab-end input").fill("2026-07-31")
    summary.filter(has_text="2026-05-01 – 2026-07-31").wait_for()
    shot(page, artifacts, "02-drawn", ".eolab-picker")

    # Search the Sentinel-2 collections of both providers.
    collections = page.locator(".eolab-collections select")
    s2 = collections.evaluate("s => [...s.options].filter(o => o.textContent.includes('(sentinel-2-l2a)'))"
                              ".map(o => [o.value, o.textContent.split('│')[0].trim()])")
    assert [provider for _, provider in s2] == ["danube", "pannonia"]
    collections.select_option(value=[value for value, _ in s2])
    page.locator(".eolab-search").click()
    page.locator(".eolab-status").filter(has_text="page 1").wait_for()
    rows = page.locator(".eolab-row")
    n_rows = rows.count()
    assert 5 <= n_rows <= 20
    providers = set(page.locator(".eolab-row .eolab-cell-provider").all_inner_texts())
    assert providers == {"pannonia", "danube"}
    assert page.locator(".eolab-missing").inner_text().strip() == ""
    # Footprints: one path per result plus the drawn rectangle.
    page.wait_for_function("n => document.querySelectorAll('.eolab-map path.leaflet-interactive').length > n",
                           arg=n_rows)
    shot(page, artifacts, "03-footprints", ".eolab-map")
    shot(page, artifacts, "03-results", ".eolab-browser")

    # Row click highlights the footprint; the quicklook renders through the tile service.
    rows.nth(0).locator(".eolab-row-id").click()
    page.wait_for_selector(".eolab-row.eolab-row-highlighted")
    page.wait_for_selector(".eolab-map path[stroke='#ff7f00']")
    page.locator(".eolab-style select").select_option(label="NDVI")
    page.locator(".eolab-quicklook").click()
    wait_for_tiles(page, "style=ndvi")
    shot(page, artifacts, "04-quicklook", ".eolab-map")

    # Select the first rows and load the cube.
    for i in range(min(4, n_rows)):
        rows.nth(i).locator(".eolab-row-select input").check()
    page.locator(".eolab-selection").filter(has_text=f"{min(4, n_rows)} items selected").wait_for()
    page.locator(".eolab-load").click()
    page.locator(".eolab-cube-repr").filter(has_text="xarray.Dataset").wait_for(timeout=120_000)
    size = page.locator(".eolab-cube-size").inner_text()
    assert "once computed" in size and "EPSG:32634" in size
    page.wait_for_function(
        "() => { const i = document.querySelector('.eolab-cube-image img, img.eolab-cube-image');"
        " return i && i.complete && i.naturalWidth > 100; }", timeout=120_000)
    shot(page, artifacts, "05-cube", ".eolab-cube")
    # The interactive hvplot view renders too (bokeh canvas inside the output).
    try:
        page.wait_for_selector(".eolab-cube-plot .bk-Canvas, .eolab-cube-plot canvas", timeout=120_000)
    except Exception:
        print("plot output:", page.evaluate("() => document.querySelector('.eolab-cube-plot').innerText.slice(0, 2000)"))
        print("\n".join(console[-40:]))
        raise
    shot(page, artifacts, "06-plot", ".eolab-cube-plot")
    check_plot_and_outputs(page, artifacts)

    check_search_again(page)
    assert local_only == [], f"requests left 127.0.0.1: {local_only[:5]}"
    check_reopened(page, jupyter_lab, artifacts)


def check_search_again(page) -> None:
    """With rows ticked, Search again: fresh rows, nothing ticked, no error (it used to fail with
    "'…' is not among the results" and blank the status); the new rows can be ticked."""
    rows = page.locator(".eolab-row")
    assert page.locator(".eolab-row-select input:checked").count() > 0
    page.locator(".eolab-search").click()
    page.locator(".eolab-selection").filter(has_text="no items selected").wait_for()
    page.locator(".eolab-status").filter(has_text="page 1").wait_for()
    assert page.locator(".eolab-browser-error").inner_text().strip() == ""
    assert rows.count() >= 5 and page.locator(".eolab-row-select input:checked").count() == 0
    rows.nth(1).locator(".eolab-row-select input").check()
    page.locator(".eolab-selection").filter(has_text="1 item selected").wait_for()


# Every model of every BokehJS document on the page, and a model's class name.
MODELS = ("() => { if (!window.Bokeh) return false;"
          " const docs = new Set([...(Bokeh.documents || []), ...Object.values(Bokeh.index || {})"
          ".map(v => v.model.document)]);"
          " const models = () => [...docs].flatMap(d => [...d.all_models]);"
          " const kind = m => String(m.type || m.constructor.__name__ || m.constructor.name).split('.').pop();")


def check_plot_and_outputs(page, artifacts) -> None:
    """The preview names its date, the clearest; the image opens at it and the series marks it.
    No logo row, no stderr box, no output wider than its cell."""
    preview = page.locator(".eolab-preview-date").inner_text()
    day = re.search(r"preview: (\d{4}-\d{2}-\d{2}), the clearest date \((\d+)% clear by cloud mask\)", preview)
    assert day and int(day.group(2)) >= 90, preview
    day = day.group(1)
    # BokehJS's own documents: the dashed marker (a Span) sits at that date, the curve's title says
    # so, and the image's time slider (its label) opens at it.
    page.wait_for_function(MODELS + "return models().some(m => kind(m) === 'Span'); }")
    marks = page.evaluate(MODELS + "return models().filter(m => kind(m) === 'Span')"
                                   ".map(m => new Date(m.location).toISOString()); }")
    texts = page.evaluate(MODELS + "return models().filter(m => typeof m.text === 'string')"
                                   ".map(m => [kind(m), m.text]); }")
    assert [m[:10] for m in marks] == [day], marks
    labels = page.evaluate(MODELS + "return models().filter(m => typeof m.axis_label === 'string')"
                                    ".map(m => m.axis_label); }")
    assert f"time (dashed: {day}, the preview's date)" in labels, labels
    assert any(k != "Title" and "time" in t and day in t for k, t in texts), texts
    # The marker lies inside the series' time axis (Bokeh does not widen a range for it).
    inside = page.evaluate(MODELS + "const span = models().find(m => kind(m) === 'Span');"
                                    " return models().some(m => kind(m) === 'DataRange1d' || kind(m) === 'Range1d' ?"
                                    " m.start < span.location && span.location < m.end : false); }")
    assert inside
    # The cube summary is a few lines of attributes, not the items one by one.
    summary = page.locator(".eolab-cube-repr .xr-attrs").last.inner_text()
    provenance = re.search(r"eolab:provenance\s*:\s*(\d+ items from [^\n]*)", summary)
    assert provenance and len(provenance.group(1)) < 200 and "MSIL2A" not in summary, summary[:300]
    # Common band names in the selector; the read estimate before anything was read.
    labels = [t.replace("\xa0", " ") for t in page.locator(".eolab-bands select option").all_inner_texts()]
    assert labels[:4] == ["coastal (B01)", "blue (B02)", "green (B03)", "red (B04)"]
    assert re.search(r"computing it reads \d+ assets in \d+ chunk reads", page.locator(".eolab-cube-size").inner_text())
    # No logo row, no warning box anywhere in the notebook.
    assert page.locator(".jp-Notebook .logo-block, .jp-Notebook img[src*='logo']").count() == 0
    stderr = page.locator(".jp-Notebook [data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    assert stderr == [], stderr
    # Nothing is cut off on the right: every output fits its cell, and so do the plots.
    overflow = page.evaluate(
        "() => [...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output')]"
        ".filter(o => o.scrollWidth > o.clientWidth + 1).map(o => [o.className, o.scrollWidth, o.clientWidth])")
    assert overflow == [], overflow
    right = page.evaluate("() => document.querySelector('.jp-Notebook .jp-Cell').getBoundingClientRect().right")
    boxes = [c.bounding_box() for c in page.locator(".eolab-cube-plot canvas").all()]  # inside Bokeh's shadow DOM
    plots = [b["x"] + b["width"] for b in boxes if b and b["width"] > 0]
    assert plots and max(plots) <= right, (plots, right)
    # While the widgets are alive, their re-run notes stay hidden.
    notes = page.locator(".eolab-rerun-hint")
    assert notes.count() == len(CELLS) and not any(n.is_visible() for n in notes.all())


def check_reopened(page, jupyter_lab, artifacts) -> None:
    """Save, stop the kernel, reopen: every widget's output now says to re-run its cell."""
    page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
    kernels = httpx.get(f"{jupyter_lab['url']}/api/kernels", params={"token": jupyter_lab["token"]}).json()
    for kernel in kernels:
        httpx.delete(f"{jupyter_lab['url']}/api/kernels/{kernel['id']}", params={"token": jupyter_lab["token"]})
    page.goto(page.url)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    for name in ("AreaTimePicker", "CatalogueBrowser", "CubePanel"):  # each one scrolled to, as a reader would
        note = page.locator(".eolab-rerun-hint").filter(has_text=f"{name}: re-run this cell to show the widget")
        note.scroll_into_view_if_needed(timeout=60_000)
        note.wait_for(state="visible")
    shot(page, artifacts, "07-reopened")
