"""Evidence dossier per parcel: chips of the deciding dates read from the parcel's own items (pixels
checked against the rasters), its series, reasons and item ids; nothing of another parcel; no
external asset (every src/href is a data: URI)."""

from __future__ import annotations

import base64
import datetime as dt
import io
from html.parser import HTMLParser

import geopandas as gpd
import numpy as np
import pandas as pd
import pystac
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box, mapping

from eolab.analysis import cap, cap_checks, dossier

CRS = "EPSG:32634"
X0, Y0, RES, N = 500000.0, 5000000.0, 10.0, 60
DATES = ["2026-04-01", "2026-05-01", "2026-07-01"]
BANDS = ("B02", "B03", "B04", "B08")


def _dn(band: str, k: int) -> np.ndarray:
    rr, cc = np.mgrid[0:N, 0:N]
    base = {"B02": 1500, "B03": 1700, "B04": 1800 - 300 * k, "B08": 2500 + 800 * k}[band]
    return (base + 7 * rr + 3 * cc).astype("uint16")


@pytest.fixture
def scene(tmp_path):
    items = []
    lonlat = gpd.GeoSeries([box(X0, Y0 - N * RES, X0 + N * RES, Y0)], crs=CRS).to_crs("EPSG:4326").iloc[0]
    for k, d in enumerate(DATES):
        item = pystac.Item(f"S2_{d}", mapping(lonlat), list(lonlat.bounds),
                           dt.datetime.fromisoformat(d).replace(tzinfo=dt.timezone.utc), {})
        for b in BANDS:
            path = tmp_path / f"{d}_{b}.tif"
            with rasterio.open(path, "w", driver="GTiff", width=N, height=N, count=1, dtype="uint16", crs=CRS,
                               transform=from_origin(X0, Y0, RES, RES), nodata=0) as dst:
                dst.write(_dn(b, k), 1)
            item.add_asset(b, pystac.Asset(str(path), extra_fields={
                "raster:bands": [{"scale": 0.0001, "offset": -0.1, "nodata": 0}]}))
        item.set_self_href(f"http://stac.example/collections/sentinel-2-l2a/items/S2_{d}")
        items.append(item)
    claims = gpd.GeoDataFrame(
        {"parcel_id": ["RED-1", "GREEN-2"], "crop_code": ["201", "201"], "crop_name": ["maize", "maize"],
         "hcat3_code": ["3301010699", "3301010699"], "hcat3_name": ["grain_maize_corn_popcorn"] * 2,
         "area_declared_ha": [4.0, 4.0]},
        geometry=[box(X0 + 100, Y0 - 400, X0 + 300, Y0 - 200), box(X0 + 350, Y0 - 350, X0 + 550, Y0 - 150)],
        crs=CRS).set_index("parcel_id")
    screen = cap.screen_parcels(claims)
    classes = ["maize", "soybean"]
    proba = np.array([[0.2, 0.8], [0.9, 0.1]])
    days = np.array([np.datetime64(d) for d in DATES]).astype("datetime64[D]").astype(float)
    ndvi = np.array([[0.3, 0.8, 0.5], [0.4, 0.7, 0.6]])
    info = {"days": days, "grid_days": days, "series": {"NDVI": ndvi}, "observed": np.isfinite(ndvi),
            "n_observations": np.array([12, 12])}
    found: list = []
    checks = cap.check_parcels(claims, screen, proba, classes, n_observations=[12, 12], mowing=[[], []],
                               bare_soil=[[], []], ndvi_max=ndvi.max(1), findings=found)
    run = cap.CapRun(checks=checks, screen=screen, X=None, info=info, proba=proba, classes=classes,
                     mowing=[[], []], bare_soil=[[], []], growth_threshold=0.4, ndvi=ndvi, findings=found,
                     check_params=cap_checks.parameters({"growth": {"min_growth": 0.4}}))
    result = claims.join(screen).join(checks.drop(columns=["declared_crop"]))
    result["source_items"] = ",".join(it.id for it in items)
    return run, result.rename_axis("parcel_id").reset_index(), items


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
    assert all(d in page for d in DATES) and "<td>0.8</td>" in page and "min_growth 0.40" in page
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
