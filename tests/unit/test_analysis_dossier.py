"""Evidence dossier per parcel: chips of the deciding dates read from the parcel's own items (pixels
checked against the rasters), its series, reasons and item ids; nothing of another parcel; no
external asset (every src/href is a data: URI)."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import from_origin

from eolab.analysis import dossier
from eolab.errors import EolabError
from tests.unit._cap_scene import CRS, DATES, RES, X0, Y0, _dn, make_scene


@pytest.fixture
def scene(tmp_path):
    return make_scene(tmp_path)


class _Attrs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.imgs = [], {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.refs += [(tag, k, v) for k, v in attrs if k in ("src", "href", "action", "poster", "data")]
        if tag == "img":
            self.imgs[a.get("alt")] = a["src"]


def test_dossier_of_a_red_parcel(scene, tmp_path):
    run, result, items = scene
    assert run.checks.light.tolist() == ["red", "green"]
    paths = dossier.write_all(run, result, items, tmp_path / "dossiers")
    assert [p.name for p in paths] == ["RED-1.html"]
    page = paths[0].read_text()
    # reasons, declared crop (national code, name, HCAT3), probabilities, item ids, version
    assert "images look like soybean (p=0.80), declared maize (p=0.20)" in page
    assert "crop_consistency" in page and "3301010699" in page and "grain_maize_corn_popcorn" in page
    assert all(f"S2_{d}" in page for d in DATES) and "http://stac.example/collections" in page
    assert "eolab " in page and "red_ratio" in page
    # the series (every clear date with its NDVI) and the growth threshold
    assert all(d in page for d in DATES) and "<td>0.8</td>" in page and "min_growth (arable crops) 0.40" in page
    # nothing of the other parcel: neither its id nor its coordinates
    assert "GREEN-2" not in page and f"{X0 + 550:.0f}" not in page
    # no request leaves the file: every src/href is inline
    parser = _Attrs()
    parser.feed(page)
    assert parser.refs and all(v.startswith("data:") for _, _, v in parser.refs)
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    # chips of the deciding dates, pixels checked against the rasters
    dates = dossier.deciding_dates(run, 0)
    assert dates == DATES  # the NDVI maximum plus the first and last clear dates
    from PIL import Image

    geom = result.geometry.iloc[0]
    chips = dossier.read_chips(items, geom, CRS, dates)
    assert [c.item_id for c in chips] == [f"S2_{d}" for d in DATES]
    for k, c in enumerate(chips):
        png = Image.open(io.BytesIO(base64.b64decode(parser.imgs[f"NDVI {c.date}"].split(",", 1)[1])))
        zoom = png.size[0] // c.ndvi.shape[1]
        for x, y in [(X0 + 150, Y0 - 250), (X0 + 250, Y0 - 350), (X0 + 200, Y0 - 300)]:
            r, col = rasterio.transform.rowcol(c.transform, x, y)
            R, C = rasterio.transform.rowcol(from_origin(X0, Y0, RES, RES), x, y)
            red, nir = _dn("B04", k)[R, C] * 1e-4 - 0.1, _dn("B08", k)[R, C] * 1e-4 - 0.1
            assert c.ndvi[r, col] == pytest.approx((nir - red) / (nir + red))
            assert c.rgb[0, r, col] == pytest.approx(red)
            shown = np.asarray(png.convert("RGB"))[r * zoom + zoom // 2, col * zoom + zoom // 2]
            assert tuple(shown) == tuple(dossier.ndvi_colours(c.ndvi)[r, col])
        assert f"true colour {c.date}" in parser.imgs


def test_a_second_run_leaves_no_stale_dossier_and_an_unknown_parcel_is_named(scene, tmp_path):
    """A parcel whose light turned green must not keep its red dossier from the run before (these
    pages go to farmers); files the runs did not write stay."""
    run, result, items = scene
    out = tmp_path / "dossiers"
    out.mkdir()
    (out / "notes.html").write_text("the analyst's own file")
    assert [p.name for p in dossier.write_all(run, result, items, out)] == ["RED-1.html"]
    import json

    assert json.loads((out / dossier.MANIFEST).read_text())["dossiers"] == {"RED-1": "RED-1.html"}
    assert dossier.write_all(run, result, items, out, lights=("green",))[0].name == "GREEN-2.html"
    assert sorted(p.name for p in out.iterdir()) == ["GREEN-2.html", "dossiers.json", "notes.html"]
    # another region's run into the same folder keeps this one's dossiers
    listed = json.loads((out / dossier.MANIFEST).read_text())["dossiers"]
    (out / dossier.MANIFEST).write_text(json.dumps({"dossiers": {**listed, "OTHER-9": "OTHER-9.html"}}))
    (out / "OTHER-9.html").write_text("a dossier of another region's run")
    dossier.write_all(run, result, items, out)
    assert sorted(p.name for p in out.iterdir()) == ["OTHER-9.html", "RED-1.html", "dossiers.json", "notes.html"]
    assert json.loads((out / dossier.MANIFEST).read_text())["dossiers"] == {"OTHER-9": "OTHER-9.html",
                                                                           "RED-1": "RED-1.html"}
    for pid in ("NOPE", "red-1"):
        with pytest.raises(EolabError, match=f"parcel '{pid}' is not in the CAP run"):
            dossier.evidence(run, result, pid)
        with pytest.raises(EolabError, match="is not in the CAP run"):
            dossier.write(run, result, items, pid, out)
    assert not list(out.glob(".*"))  # no temporary file left behind


@pytest.mark.parametrize("style", ["earth-search", "planetary-computer", "cdse"])
def test_chips_are_the_same_whatever_the_provider_calls_and_scales_the_bands(scene, style):
    """The same files published in another provider's layout (``red``/``B04_10m`` keys, scaling in
    STAC 1.1 fields or nowhere): the chips are found by meaning and come out in the same reflectance."""
    import pystac

    from eolab.stack._lookalike_items import restyle

    run, result, items = scene
    geom = result.geometry.iloc[0]
    native = dossier.read_chips(items, geom, CRS, DATES)
    styled = []
    for item in items:
        view = item.to_dict(transform_hrefs=False)
        view["collection"] = "sentinel-2-l2a"
        for key, asset in view["assets"].items():
            asset["eo:bands"] = [{"name": key}]
        styled.append(pystac.Item.from_dict(restyle(view, style, "some-provider")))
    keys = set(styled[0].assets)
    assert "B04" not in keys or style == "planetary-computer"
    if style == "planetary-computer":
        assert not any("raster:bands" in a.extra_fields for a in styled[0].assets.values())  # Sentinel-2 convention
    chips = dossier.read_chips(styled, geom, CRS, DATES)
    assert [c.item_id for c in chips] == [c.item_id for c in native]
    for a, b in zip(native, chips):
        np.testing.assert_allclose(b.rgb, a.rgb, atol=1e-9)
        np.testing.assert_allclose(b.ndvi, a.ndvi, atol=1e-9)


def test_evidence_hash_follows_the_evidence(scene):
    run, result, items = scene
    h = dossier.evidence_hash(run, result, "RED-1")
    assert h == dossier.evidence_hash(run, result, "RED-1") and h != dossier.evidence_hash(run, result, "GREEN-2")
    run.ndvi[0, 1] = 0.75
    assert dossier.evidence_hash(run, result, "RED-1") != h
    assert dossier.file_name("26-1/1-0").startswith("26-1_1-0-")
    with pytest.raises(Exception, match="not in the result table"):
        dossier.render(run, result[result.parcel_id != "RED-1"], items, "RED-1")
    assert isinstance(pd.Timestamp(DATES[0]), pd.Timestamp)


def test_a_plugin_check_and_the_radar_series_show_up_in_the_dossier(tmp_path):
    import xarray as xr

    from eolab.analysis import cap_checks

    @cap_checks.register("always_look", reasons={"yellow": "look at it"})
    def always_look(ev, i):
        return [("yellow", "plug-in says: look at it")] if ev.declared[i] == "maize" else []

    try:
        run, result, items = make_scene(tmp_path)
    finally:
        cap_checks.unregister("always_look")
    assert run.checks.light.tolist() == ["red", "yellow"]
    run.s1 = xr.Dataset({"vh_db": (("parcel", "time"), [[-18.5, -21.25], [-17.0, -16.0]])},
                        coords={"parcel": ["RED-1", "GREEN-2"],
                                "time": np.array(["2026-05-03", "2026-05-15"], "datetime64[ns]")})
    page = dossier.render(run, result, items, "RED-1")
    assert "always_look" in page and "plug-in says: look at it" in page
    assert "Sentinel-1 VH (dB)" in page and "<td>-21.25</td>" in page and "-17.0" not in page


def test_declared_hcat3_read_from_the_claims_when_the_result_lacks_it(tmp_path):
    run, result, items = make_scene(tmp_path)
    claims = result.set_index("parcel_id")[["crop_code", "crop_name", "hcat3_code", "hcat3_name", "geometry"]]
    bare = result.drop(columns=["hcat3_code", "hcat3_name"])
    assert "hcat3_code" not in dossier.evidence(run, bare, "RED-1")["declared"]
    ev = dossier.evidence(run, bare, "RED-1", claims)
    assert ev["declared"]["hcat3_code"] == "3301010699" and ev["declared"]["crop_code"] == "201"
    page = dossier.render(run, bare, items, "RED-1", claims=claims, parameters={"red_ratio": 0.5})
    assert "grain_maize_corn_popcorn" in page and "template parameter" in page and "GREEN-2" not in page


def test_a_parcel_not_monitorable_shows_no_model_verdict(tmp_path):
    run, result, items = make_scene(tmp_path)
    run.screen.loc["RED-1", "monitorable"] = False
    page = dossier.render(run, result, items, "RED-1")
    assert "did not judge this parcel" in page and "<th>probability</th>" not in page
