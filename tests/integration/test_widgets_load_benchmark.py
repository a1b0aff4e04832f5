"""The load benchmark's two paths give the same numbers (so its ratio compares like with like)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:rasterio")]
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "load_throughput.py"


def test_eolab_load_equals_raw_windowed_reads(catalog_stack):
    spec = importlib.util.spec_from_file_location("load_throughput", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = Path(catalog_stack.data_dir)
    manifest = json.loads((data / "manifest.json").read_text())
    items = bench.items_over_http(data, catalog_stack.assets_url)
    first_days = sorted({i["properties"]["datetime"][:10] for i in items})[:2]
    items = [i for i in items if i["properties"]["datetime"][:10] in first_days]
    from eolab.demo._stac import wgs84_bbox

    left, bottom, right, top = manifest["bounds"]
    raw = bench.run_raw(items, wgs84_bbox((left + 5, bottom + 5, right - 5, top - 5)))
    assert np.isfinite(raw).mean() > 0.5
    # load_cube's default chunks (what the benchmark times) and one chunk per COG tile.
    for chunk in (None, manifest["tile_size"]):
        cube = bench.run_eolab(items, chunk)
        assert raw.shape == cube.shape == (2, 2, *manifest["shape"])
        np.testing.assert_allclose(cube, raw, rtol=1e-6, equal_nan=True)
