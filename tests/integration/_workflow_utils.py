"""Helpers for the workflow notebook tests: run a template headless, read the demo truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"


def member_urls(config, members=("pannonia", "danube", "tisza")) -> dict[str, str]:
    return {m: config.member_url(config.member(m)) for m in members}


def run_notebook(name: str, out: Path, **parameters) -> Path:
    """Execute ``workflows/<name>/<name>.ipynb`` with papermill; return the executed notebook."""
    import papermill

    out.mkdir(parents=True, exist_ok=True)
    executed = out / f"{name}.executed.ipynb"
    papermill.execute_notebook(str(WORKFLOWS / name / f"{name}.ipynb"), str(executed), parameters=parameters,
                               cwd=str(out), progress_bar=False, kernel_name="python3")
    return executed


def truth_cloud_fraction(demo: Path) -> tuple[list[str], np.ndarray]:
    """(dates, share of the scene under any cloud/haze/shadow per date) from truth/clouds.tif."""
    import rasterio

    manifest = json.loads((demo / "manifest.json").read_text())
    with rasterio.open(demo / "truth" / "clouds.tif") as src:
        codes = src.read()
    return manifest["s2_dates"], (codes != 0).mean(axis=(1, 2))


def read_truth_parcels(demo: Path):
    import geopandas as gpd

    return gpd.read_file(demo / "truth" / "parcels.gpkg").set_index("parcel_id")
