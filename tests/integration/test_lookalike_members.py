"""Look-alike members: the demo scene in Earth Search's, Planetary Computer's, CDSE's and the USGS's
(Landsat Collection 2 Level-2) conventions.

The same pixels must come out of ``load_cube`` whichever member serves them: common-name keys with
offsets in raster:bands (Earth-Search-like), B04/SCL keys with no scale or offset and assets behind
20-second SAS tokens (Planetary-Computer-like), and the native demo members. The Landsat look-alike
shows the same surface at 30 m with a QA_PIXEL mask, so its water areas are compared within a stated
tolerance, not pixel for pixel.
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

# Notebook runs of several minutes; make test runs two test processes side by side on 2 cores.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

LOOKALIKES = ("earth-search-like", "pc-like")
ALL_LOOKALIKES = LOOKALIKES + ("cdse-like",)
LANDSAT = "landsat-like"


@pytest.fixture(scope="module")
def identity_provider(tmp_path_factory):
    """The local OIDC provider the CDSE-like store trusts, and alice's access token from a login there
    (what the hub's OIDC login hands her server as EOLAB_OIDC_ACCESS_TOKEN)."""
    from eolab.testing import oidc
    from eolab.testing.stack import free_port_base

    if oidc.available():
        pytest.skip(oidc.available())
    with oidc.provider_with_user(tmp_path_factory.mktemp("idp"), "alice",
                                 port=free_port_base(width=1, start=23100)) as found:
        yield found


@pytest.fixture(scope="module")
def lookalike_stack(small_demo, identity_provider, tmp_path_factory):
    from eolab.testing.stack import make_stack_config, running_stack

    idp, _, tokens = identity_provider
    names = ("EOLAB_LOOKALIKES", "EOLAB_CATALOG_CONFIG", "EOLAB_OIDC_ACCESS_TOKEN", "EOLAB_OIDC_ISSUER",
             "EOLAB_S3_KEYS_FILE")
    saved = {k: os.environ.get(k) for k in names}
    os.environ["EOLAB_LOOKALIKES"] = "1"
    # Kernels and workers of these tests mint the CDSE-like store's S3 keys with alice's token.
    os.environ["EOLAB_OIDC_ACCESS_TOKEN"] = tokens["access_token"]
    os.environ["EOLAB_OIDC_ISSUER"] = idp.issuer
    os.environ["EOLAB_S3_KEYS_FILE"] = str(tmp_path_factory.mktemp("keys") / "s3-keys.json")
    try:
        base = make_stack_config(tmp_path_factory.mktemp("lookalike-run"), small_demo)
        raw = base.model_dump(mode="json")
        changes = {"pc-like": {"sas_lifetime": 20.0},
                   "cdse-like": {"asset_store": "s3", "oidc_issuer": idp.issuer}}
        raw["members"] = [dict(m, **changes.get(m["id"], {})) for m in raw["members"]
                          if m["id"] in ("pannonia", "danube", LANDSAT) + ALL_LOOKALIKES]
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


def _items(config, member_ids, bbox, collection="sentinel-2-l2a"):
    items = []
    for member_id in member_ids:
        client = pystac_client.Client.open(config.member_url(config.member(member_id)))
        items += list(client.search(collections=[collection], bbox=bbox).items())
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
        # Its assets are in an S3 store: unsigned requests refused; keys minted with alice's OIDC token.
        href = items[0].assets["B04_10m"].href
        store = lookalike_stack.member_asset_server(lookalike_stack.member("cdse-like"))
        assert href.startswith("s3://eodata/")
        assert httpx.get(f"{store}/{href[len('s3://'):]}").status_code == 403
        assert httpx.get(f"{store}/_stats").json()["keys_minted"] >= 1
        # More threads than the provider's 4 connections: the server never saw more than 4 at once.
        access.reset()
        again = eolab.load_cube(items, bands=["nir"], bbox=bbox, resolution=10, chunks={"x": 64, "y": 64})
        again.nir.compute(scheduler="threads", num_workers=12)
        stats = httpx.get(f"{lookalike_stack.member_asset_server(lookalike_stack.member('cdse-like'))}/_stats").json()
        assert stats["max_in_flight"] <= 4 and stats["throttled"] == 0
        assert access.stats().get("cdse-like:failures", 0) == 0
    if member_id == "pc-like":
        assert cube.green.attrs["values_from"] == "sentinel-2 convention"
        assert access.stats()["pc-like:tokens"] >= 1
        href = items[0].assets["B04"].href
        assert httpx.get(href).status_code == 403  # unsigned reads are refused


@pytest.fixture(scope="module")
def water_runs(lookalike_stack, tmp_path_factory):
    """The water template, unchanged, on the native members and on each look-alike (only the collection
    differs). March to July, for time: 28 of the demo's 44 dates; the Landsat check needs five that
    both sensors see clearly, which the cloudier summer alone does not have."""
    from tests.integration._workflow_utils import run_notebook_chains

    season = {"datetime": "2026-03-01/2026-07-31", "period_a": ["2026-03-01", "2026-04-30"],
              "period_b": ["2026-06-01", "2026-07-31"]}
    runs, chains = {}, {}
    for name, collection in (("native", ["pannonia|sentinel-2-l2a", "danube|sentinel-2-l2a"]),
                             ("earth-search-like", "earth-search-like|sentinel-2-l2a"),
                             ("pc-like", "pc-like|sentinel-2-l2a"),
                             ("cdse-like", "cdse-like|sentinel-2-l2a"),
                             (LANDSAT, f"{LANDSAT}|landsat-c2-l2")):
        out = tmp_path_factory.mktemp(f"water-{name}")
        chains[name] = [("water-monitoring", out, dict(
            catalog=lookalike_stack.broker_url, s2_collection=collection, s1_collection=None,
            out_dir=str(out / "results"), save_daily_maps=False, **season))]
        runs[name] = out / "results"
    run_notebook_chains(chains)
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


def test_landsat_lookalike_serves_its_own_pixels_in_reflectance(lookalike_stack):
    """Through the member and the asset server, in the USGS layout: each 10 m value of the cube is the
    30 m file's DN × 0.0000275 − 0.2 (the convention, not stated in the items), QA_PIXEL's cloud and
    shadow bits are masked, and the mask arrives as SCL classes."""
    import rasterio

    manifest = json.loads((lookalike_stack.data_dir / "manifest.json").read_text())
    bbox = scene_window_bbox(manifest)
    items = sorted(_items(lookalike_stack, (LANDSAT,), bbox, "landsat-c2-l2"), key=lambda i: i.datetime)
    assert len(items) == len(manifest["s2_dates"]) and "qa_pixel" in items[0].assets
    access.reset()
    cube = eolab.load_cube(items[:6], bands=["green", "nir", "SCL"], bbox=bbox, resolution=10,
                           crs=manifest["crs"]).compute()
    assert cube.nir.attrs["asset"] == "nir08" and cube.green.attrs["values_from"] == "landsat c2 l2 convention"
    x0, y0 = manifest["transform"][2], manifest["transform"][5]
    cols = ((cube.x.values - x0) // 30).astype(int)
    rows = ((y0 - cube.y.values) // 30).astype(int)
    for t, item in enumerate(items[:6]):
        with rasterio.open(item.assets["green"].href) as src:
            dn = src.read(1)[np.ix_(rows, cols)]
        with rasterio.open(item.assets["qa_pixel"].href) as src:
            qa = src.read(1)[np.ix_(rows, cols)]
        masked = (qa & 0b11111) > 0  # fill, dilated cloud, cirrus, cloud, shadow
        expected = np.where(masked, np.nan, dn * 0.0000275 - 0.2)
        np.testing.assert_allclose(cube.green.values[t], expected, atol=1e-6, equal_nan=True)
        assert np.array_equal(cube.clear.values[t], ~masked)
        assert np.array_equal(cube.SCL.values[t] == 6, ((qa >> 7) & 1).astype(bool) & ((qa & 0b111111) == 0))
    assert access.stats().get(f"{LANDSAT}:failures", 0) == 0


def test_water_template_on_landsat_measures_the_water_within_tolerance(water_runs, lookalike_stack):
    """The same notebook and parameters on Landsat (only the collection differs): on the dates both
    sensors see clearly, the water area is within 5 % of the truth (the template's goal on the native
    data) and within 3 % of the native Sentinel-2 result; its mask (QA_PIXEL) finds the same cloudy dates."""
    import pandas as pd

    truth = pd.read_csv(lookalike_stack.data_dir / "truth" / "water_area.csv")
    truth = truth[truth.sensor == "sentinel-2"].set_index("date")["area_ha"]
    native = pd.read_csv(water_runs["native"] / "water_extent.csv", comment="#", index_col=0)
    landsat = pd.read_csv(water_runs[LANDSAT] / "water_extent.csv", comment="#", index_col=0)
    assert list(landsat.index) == list(native.index) and list(landsat.columns) == list(native.columns)
    clear = (landsat.clear_fraction >= 0.9) & (native.clear_fraction >= 0.9)
    assert clear.sum() >= 5
    both = landsat[clear]
    error = (both.observed_ha - truth[both.index]) / truth[both.index]
    assert error.abs().max() <= 0.05, error
    assert ((both.observed_ha - native.observed_ha[clear]).abs() / native.observed_ha[clear]).max() <= 0.03
    np.testing.assert_allclose(landsat.clear_fraction, native.clear_fraction, atol=0.15)


@pytest.mark.parametrize("member_id", ("pannonia",) + ALL_LOOKALIKES + (LANDSAT,))
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


@pytest.fixture(scope="module")
def crop_cap_runs(lookalike_stack, tmp_path_factory):
    """The crop-type and CAP templates, unchanged, on the native members and on each Sentinel-2
    look-alike (only the collection differs; each member's CAP run reuses its crop run's parcel
    series from their cache; two members at a time)."""
    from tests.integration._workflow_utils import run_notebook_chains

    claims = str(lookalike_stack.data_dir / "claims" / "claims.gpkg")
    runs, chains = {}, {}
    for name, collection in (("native", ["pannonia|sentinel-2-l2a", "danube|sentinel-2-l2a"]),
                             *((m, f"{m}|sentinel-2-l2a") for m in ALL_LOOKALIKES)):
        out = tmp_path_factory.mktemp(f"crops-{name}")
        # this stack has no Sentinel-1 member: optical only, for the native run too
        # (May to August: the heart of the growing season, half of the template's default dates, for
        # time; the runs are compared with each other, not with the truth)
        common = {"catalog": lookalike_stack.broker_url, "s2_collection": collection, "s1_collection": None,
                  "datetime": "2026-05-01/2026-08-31", "cache_dir": str(out / "cache")}
        chains[name] = [("crop-type-map", out, dict(parcels=claims, pixel_map=False, out_dir=str(out / "crop"),
                                                    **common)),
                        ("cap-parcel-checks", out, dict(claims_file=claims, out_dir=str(out / "cap"), **common))]
        runs[name] = out
    run_notebook_chains(chains)
    return runs


@pytest.mark.parametrize("member_id", ALL_LOOKALIKES)
def test_crop_and_cap_templates_give_the_native_result_on_a_lookalike(crop_cap_runs, member_id):
    """Reflectance agrees to 1e-4, so the same parcels get the same crops and lights: the accuracy
    figures equal to 0.01 and at most 1 % of parcels with another prediction or light (a
    threshold or a tree split may flip a parcel whose value sits on it)."""
    import geopandas as gpd

    native, other = crop_cap_runs["native"], crop_cap_runs[member_id]
    a = json.loads((native / "crop" / "accuracy.json").read_text())
    b = json.loads((other / "crop" / "accuracy.json").read_text())
    assert a["held_out_parcels"] == b["held_out_parcels"] > 0
    for key in ("overall_accuracy", "kappa"):
        assert abs(a[key] - b[key]) <= 0.01, (key, a[key], b[key])
    for path, column in (("crop/crop_parcels.gpkg", "predicted"), ("cap/cap_checks.gpkg", "light")):
        layer = path.rsplit("/", 1)[1].removesuffix(".gpkg")  # (the other layer holds the provenance)
        ta = gpd.read_file(native / path, layer=layer).set_index("parcel_id")
        tb = gpd.read_file(other / path, layer=layer).set_index("parcel_id").loc[ta.index]
        assert column in ta and len(ta) > 100
        differ = (ta[column].astype(str) != tb[column].astype(str)).mean()
        assert differ <= 0.01, f"{path}: {differ:.1%} of parcels differ in {column}"
