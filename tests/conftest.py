"""Shared pytest fixtures."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory) -> Path:
    """The `small` demo data set (default seed), generated once per session.

    Set EOLAB_TEST_DEMO_DIR to reuse a directory across runs: it is generated there unless it
    already holds a complete small data set (manifest.json is written last).
    """
    import json

    from eolab.demo import generate

    env = os.environ.get("EOLAB_TEST_DEMO_DIR")
    out = Path(env) if env else tmp_path_factory.mktemp("demo-small")
    manifest = out / "manifest.json"
    if manifest.exists():
        m = json.loads(manifest.read_text())
        # (a data set from before the Landsat look-alike lacks its collection: made anew)
        if m.get("size") == "small" and m.get("seed") == 20260301 and "landsat-c2-l2" in m.get("collections", {}):
            return out
    generate(out, "small", progress=False)
    return out


@pytest.fixture(scope="session")
def catalog_stack(small_demo, tmp_path_factory):
    """The catalogue stack (PostgreSQL/pgstac members, asset server, broker) serving the small demo data."""
    from eolab.testing.stack import make_stack_config, running_stack

    with running_stack(make_stack_config(tmp_path_factory.mktemp("stack-run"), small_demo)) as config:
        yield config
