"""Look-alike members: the demo scene in Earth Search's and Planetary Computer's conventions.

The same pixels must come out of ``load_cube`` whichever member serves them: common-name keys with
offsets in raster:bands (Earth-Search-like), B04/SCL keys with no scale or offset and assets behind
20-second SAS tokens (Planetary-Computer-like), and the native demo members.
"""

from __future__ import annotations

import json
import os
import socket

import httpx
import numpy as np
import pystac_client
import pytest

import eolab
from eolab.config import StackConfig
from eolab.data import access, onboarding
from tests.integration.test_load_cube import scene_window_bbox

LOOKALIKES = ("earth-search-like", "pc-like")
ALL_LOOKALIKES = LOOKALIKES + ("cdse-like",)


@pytest.fixture(scope="module")
def lookalike_stack(small_demo, tmp_path_factory):
    from eolab.testing.stack import make_stack_config, running_stack

    saved = {k: os.environ.get(k) for k in ("EOLAB_LOOKALIKES", "EOLAB_CATALOG_CONFIG")}
    os.environ["EOLAB_LOOKALIKES"] = "1"
    try:
        base = make_stack_config(tmp_path_factory.mktemp("lookalike-run"), small_demo)
        raw = base.model_dump(mode="json")
        raw["members"] = [dict(m, sas_lifetime=20.0) if m["id"] == "pc-like" else m for m in raw["members"]
                          if m["id"] in ("pannonia", "danube") + ALL_LOOKALIKES]
        config = StackConfig.model_validate(raw)
        with running_stack(config) as running:
            # Kernels find the members' profiles (the pc-like token endpoint) in the effective configuration.
            os.environ["EOLAB_CATALOG_CONFIG"] = str(running.run_dir.resolve() / "catalog.effective.yaml")
            yield running
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _items(config, member_ids, bbox):
    items = []
    for member_id in member_ids:
        client = pystac_client.Client.open(config.member_url(config.member(member_id)))
        items += list(client.search(collections=["sentinel-2-l2a"], bbox=bbox).items())
    return items


@pytest.fixture(scope="module")
def native_cube(lookalike_stack):
    manifest = json.loads((lookalike_stack.data_dir / "manifest.json").read_text())
    bbox = scene_window_bbox(manifest)
    items = _items(lookalike_stack, ("pannonia", "danube"), bbox)
    cube = eolab.load_cube(items, bands=["green", "nir", "swir16", "SCL"], bbox=bbox, resolution=20)
    return bbox, cube.compute()


@pytest.mark.parametrize("member_id", ALL_LOOKALIKES)
def test_lookalike_gives_the_native_reflectance(lookalike_stack, native_cube, member_id):
    bbox, native = native_cube
    items = _items(lookalike_stack, (member_id,), bbox)
    keys = set(items[0].assets)
    expected_key = {"earth-search-like": "red", "pc-like": "B04", "cdse-like": "B04_10m"}[member_id]
    assert expected_key in keys
    access.reset()
    cube = eolab.load_cube(items, bands=["green", "nir", "swir16", "SCL"], bbox=bbox, resolution=20).compute()
    for band in ("green", "nir", "swir16"):
        np.testing.assert_allclose(cube[band].values, native[band].values, atol=1e-4, equal_nan=True)
    np.testing.assert_array_equal(cube.clear.values, native.clear.values)
    assert access.stats().get(f"{member_id}:failures", 0) == 0
    if member_id == "cdse-like":
        # More threads than the provider's 4 connections: the server never saw more than 4 at once.
        access.reset()
        again = eolab.load_cube(items, bands=["nir"], bbox=bbox, resolution=10, chunks={"x": 64, "y": 64})
        again.nir.compute(scheduler="threads", num_workers=12)
        stats = httpx.get(f"{lookalike_stack.member_assets_url(lookalike_stack.member('cdse-like'))}/_stats").json()
        assert stats["max_in_flight"] <= 4 and stats["throttled"] == 0
        assert access.stats().get("cdse-like:failures", 0) == 0
    if member_id == "pc-like":
        assert cube.green.attrs["values_from"] == "sentinel-2 convention"
        assert access.stats()["pc-like:tokens"] >= 1
        href = items[0].assets["B04"].href
        assert httpx.get(href).status_code == 403  # unsigned reads are refused


@pytest.fixture(scope="module")
def water_runs(lookalike_stack, tmp_path_factory):
    """The water template, unchanged, on the native members and on each look-alike (only the collection differs)."""
    from tests.integration._workflow_utils import run_notebook

    runs = {}
    for name, collection in (("native", ["pannonia|sentinel-2-l2a", "danube|sentinel-2-l2a"]),
                             ("earth-search-like", "earth-search-like|sentinel-2-l2a"),
                             ("pc-like", "pc-like|sentinel-2-l2a"),
                             ("cdse-like", "cdse-like|sentinel-2-l2a")):
        out = tmp_path_factory.mktemp(f"water-{name}")
        run_notebook("water-monitoring", out, catalog=lookalike_stack.broker_url, s2_collection=collection,
                     s1_collection=None, out_dir=str(out / "results"), save_daily_maps=False)
        runs[name] = out / "results"
    return runs


@pytest.mark.parametrize("member_id", ALL_LOOKALIKES)
def test_water_template_gives_the_native_result_on_a_lookalike(water_runs, member_id):
    import pandas as pd
    import rasterio

    native, other = water_runs["native"], water_runs[member_id]
    for name in ("water_extent.csv", "reservoir_extent.csv"):
        a = pd.read_csv(native / name, comment="#")
        b = pd.read_csv(other / name, comment="#")
        assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
        numeric = a.select_dtypes("number").columns
        # Water areas equal to within 0.1 % (reflectance agrees to 1e-4; a threshold may flip a pixel).
        np.testing.assert_allclose(b[numeric].to_numpy(float), a[numeric].to_numpy(float), rtol=1e-3, atol=1e-6)
    with rasterio.open(native / "water_frequency.tif") as fa, rasterio.open(other / "water_frequency.tif") as fb:
        np.testing.assert_allclose(fb.read(1), fa.read(1), atol=1e-3)


@pytest.mark.parametrize("member_id", ("pannonia",) + ALL_LOOKALIKES)
def test_members_check_passes_on_every_lookalike(lookalike_stack, member_id, capsys):
    from eolab import cli

    code = cli.main(["members", "check", member_id, "--config", os.environ["EOLAB_CATALOG_CONFIG"]])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "sample search in sentinel-2-l2a" in text and "paging: next page" in text or "items" in text
    assert "red=" in text and "read asset" in text
    if member_id == "pc-like":
        assert "with access 'sas'" in text and "(from sentinel-2 convention)" in text


def test_catalog_up_checks_enabled_remote_members_and_names_what_to_set(lookalike_stack, monkeypatch, capsys):
    """What ``eolab catalog up`` runs for remote members: the cheap check (no pixel read). A member
    that answers passes; one that does not, and one whose S3 credentials are not set, are warned
    about with the provider, the asset and the setting named."""
    from eolab import cli
    monkeypatch.delenv("EOLAB_S3_CREDENTIALS", raising=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens once the socket is closed
    es_url = lookalike_stack.member_url(lookalike_stack.member("earth-search-like"))
    raw = lookalike_stack.model_dump(mode="json")
    raw["members"] += [
        {"id": "remote-es", "url": es_url},
        {"id": "remote-down", "url": f"http://127.0.0.1:{closed}"},
        {"id": "remote-s3", "url": es_url, "profile": {"access": "s3", "s3_endpoint": "127.0.0.1:9"}},
        {"id": "remote-off", "url": f"http://127.0.0.1:{closed}", "enabled": False},
    ]
    config = StackConfig.model_validate(raw)
    reports = {r.target.split()[0]: r for r in onboarding.check_remote_members(config)}
    assert set(reports) == {"remote-es", "remote-down", "remote-s3"}
    assert reports["remote-es"].passed, reports["remote-es"].text()
    assert not any("read asset" in text for _, text in reports["remote-es"].lines)  # cheap: no pixel read
    assert not reports["remote-down"].passed and "did not answer" in reports["remote-down"].text()
    s3 = reports["remote-s3"]
    assert not s3.passed
    line = next(text for status, text in s3.lines if status == onboarding.FAIL)
    assert "'remote-s3'" in line and "asset red of item" in line and "EOLAB_S3_CREDENTIALS" in line

    cli._check_remote_members(config)
    out = capsys.readouterr()
    assert "remote member remote-es" in out.out and "ok" in out.out
    assert "warning: remote member remote-down" in out.err and "EOLAB_S3_CREDENTIALS" in out.err
