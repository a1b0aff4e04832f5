"""The training notebooks 02–04 run headless (papermill) against the demo catalogue.

Each notebook's last cell writes a small JSON summary of what it computed; the tests check it.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.integration
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def run(name: str, out: Path, **parameters) -> tuple[dict, nbformat.NotebookNode]:
    import papermill

    out.mkdir(parents=True, exist_ok=True)
    executed = out / f"{name}.executed.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(executed), cwd=str(out), progress_bar=False,
                               kernel_name="python3", parameters={"summary_file": "summary.json", **parameters})
    nb = nbformat.read(executed, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    return json.loads((out / "summary.json").read_text()), nb


@pytest.fixture
def catalogue_env(catalog_stack, monkeypatch):
    """The notebooks read EOLAB_CATALOG_URL, as on the hub and on Binder; no gateway here."""
    monkeypatch.setenv("EOLAB_CATALOG_URL", catalog_stack.broker_url)
    monkeypatch.delenv("DASK_GATEWAY__ADDRESS", raising=False)
    monkeypatch.delenv("EOLAB_COMPUTE_BACKEND", raising=False)
    return catalog_stack.broker_url


def stderr_of(nb) -> list[str]:
    """What JupyterLab would show as warning boxes."""
    return [o.text for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "stream" and o.name == "stderr"]


def output_kinds(nb) -> set[str]:
    return {key for c in nb.cells if c.cell_type == "code" for o in c.outputs for key in o.get("data", {})}


def test_02_cubes_and_plots(catalogue_env, tmp_path):
    summary, nb = run("02_cubes_and_plots", tmp_path)
    assert summary["bands"] == ["B02", "B03", "B04", "B08"]
    assert summary["resolution"] == 20 and summary["crs"] == "EPSG:32634"
    assert summary["items"] >= summary["dates"] >= 5
    assert summary["provenance_items"] == summary["items"]
    # ~1.9 x 1.9 km at 20 m
    assert all(60 <= n <= 160 for n in summary["shape"])
    assert summary["clear_dates"] >= 3
    # Fields in spring and summer: vegetation, and greener at the season's peak than on average.
    values = list(summary["mean_ndvi"].values())
    assert all(-0.2 < v < 0.95 for v in values) and max(values) > 0.4
    assert max(values) <= summary["max_ndvi_mean"] < 0.95
    assert "image/png" in output_kinds(nb)
    assert stderr_of(nb) == []  # the notebook's own code gives the libraries no reason to warn


def test_03_scaling_out_with_dask(catalogue_env, tmp_path):
    summary, nb = run("03_scaling_out_with_dask", tmp_path, workers=2)
    assert summary["backend"] == "local" and summary["workers"] == 2
    assert summary["months"] == ["2026-04", "2026-05", "2026-06", "2026-07", "2026-08", "2026-09"]
    assert summary["items"] >= summary["dates"] >= 20
    assert summary["shape"] == [192, 192]         # 7.68 km at 40 m
    assert summary["tasks"] > 100
    ndvi = summary["monthly_mean_ndvi"]
    assert len(ndvi) == 6 and all(0.0 < v < 0.9 for v in ndvi)
    assert "image/png" in output_kinds(nb)


def test_04_from_template_to_your_workflow(catalogue_env, tmp_path):
    summary, _ = run("04_from_template_to_your_workflow", tmp_path)
    assert {"water-monitoring", "crop-type-map", "cap-parcel-checks"} <= set(summary["templates"])
    assert {"water-monitoring.ipynb", "README.md", "params.yaml"} <= set(summary["cloned"])
    assert {"water_extent.csv", "water_extent.csv.provenance.json", "water_frequency.tif"} <= set(summary["outputs"])
    assert (tmp_path / "my-workflows" / "water-monitoring" / "water-monitoring.executed.ipynb").exists()
    n = summary["template_dates"]
    assert n >= 5 and summary["provenance_items"] >= n
    mine, theirs, clear = summary["mine_observed_ha"], summary["template_observed_ha"], summary["clear_share"]
    assert len(mine) == len(theirs) == len(clear) == n
    # On mostly clear dates the single index and the template's vote agree on the water area.
    pairs = [(a, b) for a, b, c in zip(mine, theirs, clear) if c > 0.9 and b > 0]
    assert pairs, "the period should have clear dates"
    assert all(abs(a - b) / b < 0.05 for a, b in pairs)


def test_training_notebooks_are_committed_without_outputs():
    for path in sorted(NOTEBOOKS.glob("0[2-4]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), path.name
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name
