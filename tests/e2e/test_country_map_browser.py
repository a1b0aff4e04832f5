"""The country map in JupyterLab in chromium: 100,000 parcels drawn by lonboard (WebGL), coloured by
light, and a click on a parcel shows that parcel's dossier below the map.

The 100,000 parcels are a synthetic grid around the two parcels of the small CAP scene, whose checks
and dossier are real (tests/unit/_cap_scene.py). The grid's lights follow the table's order in three
bands (north red, middle yellow, south green), so the drawn colours show that the first and the last
rows of the table were drawn.

lonboard 0.17's front end would fetch its Parquet decoder (parquet-wasm) and its polygon
triangulation worker from cdn.jsdelivr.net (developmentseed/lonboard#457); eolab inlines both
(eolab.widgets._lonboard_offline), and the loopback-only guard fails the test on any request that
leaves 127.0.0.1. Chromium draws with its software renderer here, so each frame of 100,000 polygons
takes seconds: the waits are long, and nothing here measures time."""

from __future__ import annotations

import io
import time

import geopandas as gpd
import nbformat
import numpy as np
import pytest
import shapely

from tests.e2e._lab import HAVE_CHROMIUM
from tests.unit._cap_scene import make_scene

CDN = "lonboard's front end left the machine: are its decoder and worker inlined (eolab.widgets._lonboard_offline)?"
pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(1200),
              pytest.mark.skipif(not HAVE_CHROMIUM, reason="no chromium: apt-get install -y chromium")]

N = 100_000
HEIGHT = 600
FILL = {"red": (214, 39, 40), "yellow": (255, 191, 0), "green": (44, 160, 44)}


def country(root):
    """100,000 parcels: the scene's two real ones (with RED-1's real dossier) inside a grid of boxes."""
    from eolab.analysis import dossier

    run, result, items = make_scene(root)
    dossier.write(run, result, items, "RED-1", root / "dossiers")
    real = gpd.GeoDataFrame(result[["parcel_id", "light"]], geometry=result.geometry.values, crs=result.crs)
    x0, y0 = real.total_bounds[[0, 3]]
    side = 330  # 330² > N cells of 120 m: a ~40 km square, centred on the real parcels
    cells = np.arange(side * side)
    x = x0 - side * 60 + (cells % side) * 120.0
    y = y0 + side * 60 - (cells // side) * 120.0
    grid = shapely.box(x, y - 100, x + 100, y)
    keep = ~shapely.intersects(grid, shapely.box(*real.total_bounds).buffer(300))
    grid = grid[keep][: N - len(real)]
    band = np.arange(len(grid)) * 3 // len(grid)  # table order = north to south
    synthetic = gpd.GeoDataFrame({"parcel_id": [f"SYN-{i}" for i in range(len(grid))],
                                  "light": np.array(["red", "yellow", "green"])[band]}, geometry=grid, crs=real.crs)
    table = gpd.GeoDataFrame(np.concatenate([synthetic.values, real.values]), columns=["parcel_id", "light", "geometry"],
                             geometry="geometry", crs=real.crs)
    assert len(table) == N
    table.to_parquet(root / "cap_checks.parquet")


CELLS = [
    "from eolab.widgets.country_map import CountryMap\n"
    f"m = CountryMap('cap_checks.parquet', dossiers='dossiers', height={HEIGHT})\n"
    "display(m.widget)",
    "m.focus('RED-1', fill=0.6)",
]


def canvas_rgb(page):
    """The map's rendered pixels (deck.gl's WebGL canvas composited by the page)."""
    from PIL import Image

    # a frame can take long while the page decodes and triangulates 100,000 polygons in software
    png = page.locator(".eolab-country-map canvas").first.screenshot(timeout=240_000)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def nearest_light(rgb) -> str:
    mean = np.asarray(rgb, float).reshape(-1, 3).mean(0)
    return min(FILL, key=lambda k: np.abs(mean - FILL[k]).sum())


def run_cell(page, index: int, count: int) -> None:
    page.evaluate("i => { const nb = window.jupyterapp.shell.currentWidget.content; nb.activeCellIndex = i;"
                  " window.jupyterapp.commands.execute('notebook:run-cell'); }", index)
    page.wait_for_function(
        "n => [...document.querySelectorAll('.jp-InputPrompt')].filter(p => /\\[\\d+\\]/.test(p.textContent))"
        ".length === n", arg=count, timeout=120_000)


def test_country_map_renders_100k_parcels_and_a_click_opens_that_dossier(page, jupyter_lab, local_only, artifacts):
    root = jupyter_lab["root"]
    country(root)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "country.ipynb")
    page.set_default_timeout(60_000)
    page.goto(f"{jupyter_lab['url']}/lab/tree/country.ipynb?token={jupyter_lab['token']}")
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    page.wait_for_function(
        "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " return w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.status === 'idle'; }")
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"[:300]) if m.type in ("error", "warning") else None)
    base_tiles: list[int] = []  # the base layer's tiles (the project's tile service) as they arrive
    page.on("response", lambda r: base_tiles.append(r.status) if "/base/" in r.url else None)
    run_cell(page, 0, 1)

    # The whole grid in view: wait until deck.gl has drawn it, then the three bands of the table.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if local_only:
            pytest.fail(f"the map requested {local_only[0]}: {CDN}")
        canvas = page.locator(".eolab-country-map canvas")
        if canvas.count() and canvas.first.is_visible():  # there, empty, before deck.gl starts
            break
        page.wait_for_timeout(500)
    try:
        page.wait_for_selector(".eolab-country-map canvas", timeout=60_000)  # the page may be busy decoding
    except Exception:
        page.screenshot(path=str(artifacts / "country-00-failed.png"))
        print(page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea')].map(o => o.innerText).join('\\n')"))
        print(page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerHTML.slice(0, 1500))"))
        print("\n".join(console[-30:]))
        raise
    page.wait_for_function(
        "() => { const c = document.querySelector('.eolab-country-map canvas'); return c && c.width > 200; }")
    box = page.locator(".eolab-country-map canvas").first.bounding_box()
    # the grid spans 0.9 of the map's height (CountryMap.focus), north at the top; sample beside the
    # middle, where the real parcels sit in a gap of the grid
    rows = {"red": 0.5 - 0.3, "yellow": 0.5 - 0.05, "green": 0.5 + 0.3}

    def bands_drawn() -> dict:
        img = canvas_rgb(page)
        cx = img.shape[1] // 2 + 60
        return {k: nearest_light(img[int(f * img.shape[0]) - 8: int(f * img.shape[0]) + 8, cx - 8: cx + 8])
                for k, f in rows.items()}

    deadline = time.monotonic() + 300  # a few frames: each takes seconds in the software renderer
    while time.monotonic() < deadline:
        drawn = bands_drawn()
        if drawn == {k: k for k in rows}:
            break
        page.wait_for_timeout(1000)
    page.locator(".eolab-country-map").first.screenshot(path=str(artifacts / "country-01-all.png"), timeout=240_000)
    assert drawn == {k: k for k in rows}, f"bands drawn as {drawn}"
    img = canvas_rgb(page)
    drawn_px = (np.abs(img - img[2, 2]).sum(-1) > 40).sum()  # anything but the background in the corner
    assert drawn_px > 0.5 * img.shape[0] ** 2  # the grid fills most of the map's middle square
    assert 200 in base_tiles, f"no base tile was served: {base_tiles[:10]}"  # the tile layer under the parcels

    # Zoom onto the red parcel (it fills the middle of the map), click it: its dossier shows below.
    run_cell(page, 1, 2)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        img = canvas_rgb(page)
        cy, cx = img.shape[0] // 2, img.shape[1] // 2
        if nearest_light(img[cy - 10: cy + 10, cx - 10: cx + 10]) == "red":  # yellow before the zoom
            break
        page.wait_for_timeout(1000)
    page.locator(".eolab-country-map").first.screenshot(path=str(artifacts / "country-02-focus.png"), timeout=240_000)
    assert nearest_light(img[cy - 10: cy + 10, cx - 10: cx + 10]) == "red"
    # deck.gl picks the clicked parcel with a render of its own (seconds for 100,000 polygons in the
    # software renderer); a click that lands while a frame is still drawn is clicked again
    frame = page.locator(".eolab-country-dossier iframe[title='dossier RED-1']")
    deadline = time.monotonic() + 360
    while True:
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        try:
            frame.wait_for(timeout=90_000)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
    body = page.frame_locator(".eolab-country-dossier iframe").locator("body")
    body.wait_for()
    text = body.inner_text()
    assert "RED-1" in text and "GREEN-2" not in text and "SYN-" not in text
    assert page.frame_locator(".eolab-country-dossier iframe").locator("img").count() >= 2  # its image chips
    page.locator(".eolab-country-dossier").first.screenshot(path=str(artifacts / "country-03-dossier.png"))
    assert local_only == [], f"requests left 127.0.0.1: {local_only[:5]}"
    assert not [c for c in console if "offline Parquet decoder" in c]  # no stubbed import was called
