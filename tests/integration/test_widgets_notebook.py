"""The getting-started notebook runs headless (papermill) against the demo catalogue and tile service."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.integration
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_catalogue_and_map.ipynb"


@pytest.fixture(scope="module")
def tiles(catalog_stack):
    """The tile service the stack runs (``eolab.tiles.tile_service(config)``)."""
    return catalog_stack.tiles_url


def test_getting_started_notebook_runs_headless(catalog_stack, tiles, tmp_path, monkeypatch):
    import papermill

    # The notebook must not need the environment: the parameters carry both URLs.
    monkeypatch.delenv("EOLAB_CATALOG_URL", raising=False)
    monkeypatch.delenv("EOLAB_TILES_URL", raising=False)
    out = tmp_path / "01.executed.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), cwd=str(tmp_path), progress_bar=False, kernel_name="python3",
                               parameters={"catalog_url": catalog_stack.broker_url, "tiles_url": tiles})
    nb = nbformat.read(out, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert "providers missing from the answer: none" in text
    assert re.search(r"page 1: 8 items \(more pages\)", text)
    assert f"{tiles}/item/{{z}}/{{x}}/{{y}}.png?url=" in text
    found = re.search(r"(\d+) items, (\d+) dates, mean NDVI (0\.\d+)", text)
    assert found and found.group(1) == found.group(2) and int(found.group(1)) >= 5
    # Fields in late spring: vegetation, not water or bare soil.
    assert 0.3 < float(found.group(3)) < 0.9
    kinds = {key for c in nb.cells if c.cell_type == "code" for o in c.outputs for key in o.get("data", {})}
    assert {"application/vnd.jupyter.widget-view+json", "image/png", "application/vnd.holoviews_exec.v0+json"} <= kinds
    # What a user sees besides: no warning boxes (stderr), no row of logos above the plots.
    stderr = [o.text for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "stream" and o.name == "stderr"]
    assert stderr == []
    html_out = "".join(o.get("data", {}).get("text/html", "") for c in nb.cells if c.cell_type == "code"
                       for o in c.outputs)
    assert "logo-block" not in html_out
    # Each widget is followed by the note a reopened notebook shows in its place.
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        views = [i for i, o in enumerate(cell.outputs) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        for i in views:
            note = cell.outputs[i + 1]["data"]
            assert "re-run this cell to show the widget" in note["text/plain"]
            assert "eolab-rerun-hint" in note["text/html"]
    assert len([c for c in nb.cells if "eolab-rerun-hint" in str(c.get("outputs"))]) == 3
    # The preview and the plot show one date, written on both.
    preview = next(c for c in nb.cells if "Image(preview_png(cube))" in c.source)
    plot = next(c for c in nb.cells if "quick_views(cube)" in c.source)
    marked = re.search(r"dashed: (\d{4}-\d{2}-\d{2}), the preview's date", json.dumps(plot.outputs))
    assert marked and "image/png" in preview.outputs[-1]["data"]
    # ... a date the pixel series printed above has a value for (a clear one, not a masked one).
    printed = "".join(o.get("text", "") for o in preview.outputs)
    assert re.search(rf"{marked.group(1)} \S+\s+0\.\d+", printed), printed
    # Notebooks are committed without outputs; CI regenerates them.
    source = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in source.cells if c.cell_type == "code")
