"""The small demo data set against its own ground truth, read back from the written files."""

import csv
import datetime as dt
import json
import warnings
from functools import lru_cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio import features
from scipy import ndimage

from eolab.demo._parcels import SIMILAR

SCALE, OFFSET = 0.0001, -0.1


class Demo:
    def __init__(self, root: Path):
        self.root = root
        self.m = json.loads((root / "manifest.json").read_text())
        self.n = self.m["shape"][0]
        self.items = {}
        for cid in self.m["paths"]["items"]:
            with open(root / self.m["paths"]["items"][cid]) as f:
                self.items[cid] = [json.loads(line) for line in f]
        self.by_date = {}
        for cid, its in self.items.items():
            for it in its:
                self.by_date.setdefault((cid, it["properties"]["datetime"][:10]), []).append(it)
        with rasterio.open(root / "truth" / "landcover.tif") as d:
            self.lc = d.read(1)
        self.legend = {v: int(k) for k, v in self.m["landcover_legend"].items()}
        self.parcels = gpd.read_file(root / "truth" / "parcels.gpkg")
        self.pid = features.rasterize(
            [(g, i + 1) for i, g in enumerate(self.parcels.geometry)], out_shape=(self.n, self.n),
            transform=rasterio.Affine(*self.m["transform"]), dtype="int32")
        # interior pixels only (no mixed edge pixels)
        inner = ndimage.binary_erosion(self.pid > 0, iterations=1) & (ndimage.maximum_filter(self.pid, 3)
                                                                      == ndimage.minimum_filter(self.pid, 3))
        self.pid_inner = np.where(inner, self.pid, 0)

    @lru_cache(maxsize=None)
    def band(self, cid: str, date: str, asset: str) -> np.ndarray:
        its = self.by_date[(cid, date)]
        shape0 = its[0]["assets"][asset]["proj:shape"][0]
        k = self.n // 256
        out = None
        for it in its:
            gid = it["properties"]["grid:code"].split("-")[1]
            r, c = int(gid[1:3]), int(gid[4:6])
            with rasterio.open(self.root / it["assets"][asset]["href"]) as d:
                a = d.read(1)
            if out is None:
                out = np.zeros((k * shape0, k * shape0), a.dtype)
            out[r * shape0:(r + 1) * shape0, c * shape0:(c + 1) * shape0] = a
        return out

    def refl(self, date, b):
        return self.band("sentinel-2-l2a", date, b).astype(np.float32) * SCALE + OFFSET

    @lru_cache(maxsize=None)
    def stack(self, name):
        with rasterio.open(self.root / "truth" / f"{name}.tif") as d:
            return d.read(), list(d.descriptions)

    @lru_cache(maxsize=None)
    def ndvi_by_parcel(self):
        """(n_dates, n_parcels) mean NDVI over clear interior pixels (nan if < 5 clear pixels)."""
        clouds, _ = self.stack("clouds")
        npar = len(self.parcels)
        out = np.full((len(self.m["s2_dates"]), npar), np.nan)
        for i, d in enumerate(self.m["s2_dates"]):
            r, n = self.refl(d, "B04"), self.refl(d, "B08")
            ndvi = (n - r) / (n + r)
            ok = (clouds[i] == 0) & (self.pid_inner > 0)
            s = np.bincount(self.pid_inner[ok], weights=ndvi[ok], minlength=npar + 1)[1:]
            c = np.bincount(self.pid_inner[ok], minlength=npar + 1)[1:]
            out[i] = np.where(c >= 5, s / np.maximum(c, 1), np.nan)
        return out


@pytest.fixture(scope="module")
def demo(small_demo):
    return Demo(small_demo)


def _doy(iso):
    return dt.date.fromisoformat(iso).timetuple().tm_yday


def test_layout_and_counts(demo):
    m, root = demo.m, demo.root
    assert m["generator"] == "eolab.demo" and m["size"] == "small" and m["crs"] == "EPSG:32634"
    assert m["shape"] == [768, 768] and m["tile_size"] == 256 and len(m["tiles"]) == 9
    assert len(m["s2_dates"]) >= 36 and len(m["s1_dates"]) >= 18
    assert m["collections"] == {"sentinel-2-l2a": 9 * len(m["s2_dates"]), "sentinel-1-grd": 9 * len(m["s1_dates"]),
                                "landsat-c2-l2": len(m["s2_dates"]),  # one Landsat scene covers the area
                                "cop-dem-glo-30": 2}  # two abutting surface-model tiles
    assert not list(root.glob(".partial-*"))
    ids = [it["id"] for its in demo.items.values() for it in its]
    assert len(ids) == len(set(ids))
    for it in demo.items["sentinel-2-l2a"][:20] + demo.items["sentinel-1-grd"][:10]:
        for a in it["assets"].values():
            assert (root / a["href"]).is_file()
    with rasterio.open(root / demo.items["sentinel-2-l2a"][0]["assets"]["B02"]["href"]) as d:
        assert (d.width, d.res, d.dtypes[0], d.nodata, d.crs.to_epsg()) == (256, (10.0, 10.0), "uint16", 0, 32634)
        assert d.profile["blockxsize"] == 256 and d.compression.name == "deflate"
    with rasterio.open(root / demo.items["sentinel-2-l2a"][0]["assets"]["SCL"]["href"]) as d:
        assert (d.width, d.res, d.dtypes[0]) == (128, (20.0, 20.0), "uint8")
    with rasterio.open(root / demo.items["sentinel-1-grd"][0]["assets"]["vv"]["href"]) as d:
        assert (d.width, d.dtypes[0], d.nodata) == (128, "float32", -32768.0)
    clouds, desc = demo.stack("clouds")
    assert clouds.shape == (len(m["s2_dates"]), 768, 768) and desc == m["s2_dates"]
    assert set(np.unique(clouds)) == {0, 1, 2, 3}
    lc = demo.lc
    for name in ["water", "seasonal_water", "aquatic_vegetation", "deciduous_forest", "coniferous_forest",
                 "urban", "road", "tree_row", "cropland", "grassland", "field_margin"]:
        assert (lc == demo.legend[name]).sum() > 50, name


def test_parcels_and_claims(demo):
    p = demo.parcels
    assert len(p) >= 150 and p.crs.to_epsg() == 32634
    assert p["parcel_id"].is_unique
    assert p["crop"].nunique() >= 6
    assert 0.3 <= p["area_ha"].min() and p["area_ha"].max() <= 40
    assert p["area_ha"].quantile(0.9) > 4 * p["area_ha"].quantile(0.1)  # varied sizes
    # elongation: some long thin strips
    rect = p.geometry.minimum_rotated_rectangle()
    ext = rect.exterior
    sides = np.array([[np.hypot(*np.diff(np.array(e.coords)[i:i + 2], axis=0)[0]) for i in range(2)] for e in ext])
    elong = sides.max(1) / sides.min(1)
    assert (elong > 5).sum() >= 10 and (elong < 2).sum() >= 30
    grass = p[p["crop"] == "grassland"]
    assert set(grass["n_mowings"]) == {0, 1, 2, 3}
    for _, row in grass[grass["n_mowings"] > 0].iterrows():
        ds = [dt.date.fromisoformat(s) for s in row["mowing_dates"].split(",")]
        assert len(ds) == row["n_mowings"]
        assert all(dt.date(2026, 5, 1) <= d <= dt.date(2026, 9, 30) for d in ds)
        assert all((b - a).days >= 25 for a, b in zip(ds, ds[1:]))
    false = p[p["declaration_false"]]
    assert 0.06 <= len(false) / len(p) <= 0.10
    assert all(r["declared_crop"] in SIMILAR[r["crop"]] for _, r in false.iterrows())
    assert (p.loc[~p["declaration_false"], "declared_crop"] == p.loc[~p["declaration_false"], "crop"]).all()
    claims = gpd.read_file(demo.root / "claims" / "claims.gpkg")
    assert list(claims.columns[:5]) == ["parcel_id", "farmer_id", "crop_code", "crop_name", "area_declared_ha"]
    assert (claims["crop_name"].values == p["declared_crop"].values).all()
    assert claims["farmer_id"].nunique() < len(claims)  # farmers hold several parcels
    assert np.allclose(claims["area_declared_ha"], p["area_ha"], rtol=0.1)


def test_water_is_water_on_clear_dates(demo):
    clouds, _ = demo.stack("clouds")
    water, desc = demo.stack("water_s2")
    aq = demo.lc == demo.legend["aquatic_vegetation"]
    checked = 0
    for i, d in enumerate(demo.m["s2_dates"]):
        clear = clouds[i] == 0
        if clear.mean() < 0.9 or d in demo.m["winter_dates"]:  # winter: ice, snow, haze (own test)
            continue
        core = ndimage.binary_erosion(water[i] == 1, iterations=2) & clear & ~aq
        land = ndimage.binary_erosion(water[i] == 0, iterations=2) & clear
        g, n = demo.refl(d, "B03"), demo.refl(d, "B08")
        ndwi = (g - n) / (g + n)
        assert core.sum() > 1000
        assert (ndwi[core] > 0.2).mean() > 0.99, d
        assert (ndwi[land] > 0.2).mean() < 0.01, d
        checked += 1
    assert checked >= 5
    rows = list(csv.DictReader(open(demo.root / "truth" / "water_area.csv")))
    s2 = {r["date"]: float(r["area_ha"]) for r in rows if r["sensor"] == "sentinel-2"}
    s1 = {r["date"]: float(r["area_ha"]) for r in rows if r["sensor"] == "sentinel-1"}
    assert len(s2) == len(demo.m["s2_dates"]) and len(s1) == len(demo.m["s1_dates"])
    assert s2["2026-03-01"] < 0.85 * max(s2.values())  # filling in spring
    assert s2[demo.m["s2_dates"][-1]] < 0.9 * max(s2.values())  # drawdown from October
    assert s2["2026-03-01"] == pytest.approx(water[0].sum() * 0.01)


def _class_curve(demo, crop):
    nd = demo.ndvi_by_parcel()
    sel = (demo.parcels["crop"] == crop).values & ~demo.parcels["failed"].values
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        curve = np.nanmean(nd[:, sel], axis=1)
    counts = np.sum(~np.isnan(nd[:, sel]), axis=1)
    return np.where(counts >= 3, curve, np.nan)


def test_crop_phenology(demo):
    doy = np.array([_doy(d) for d in demo.m["s2_dates"]])
    spring_peak = (doy >= 105) & (doy <= 151)
    late_summer = (doy >= 200) & (doy <= 243)
    for crop in ["winter_wheat", "winter_barley"]:
        c = _class_curve(demo, crop)
        assert np.nanmax(c[spring_peak]) > 0.7, crop
        assert 100 <= doy[np.nanargmax(c)] <= 160, crop
        assert np.nanmean(c[late_summer]) < 0.4, crop
    for crop in ["maize", "sunflower", "soybean"]:
        c = _class_curve(demo, crop)
        assert np.nanmean(c[(doy >= 100) & (doy <= 130)]) < 0.35, crop
        assert 170 <= doy[np.nanargmax(c)] <= 243, crop
        assert np.nanmax(c) > 0.7, crop
    maize, sunfl = _class_curve(demo, "maize"), _class_curve(demo, "sunflower")
    # alike early, sunflower senesces in August while maize stays green
    aug = (doy >= 225) & (doy <= 245)
    assert np.nanmean(maize[aug]) > np.nanmean(sunfl[aug]) + 0.15


def test_rapeseed_flowering(demo):
    clouds, _ = demo.stack("clouds")
    p = demo.parcels
    rape = np.isin(demo.pid_inner, np.flatnonzero((p["crop"] == "rapeseed").values) + 1)
    wheat = np.isin(demo.pid_inner, np.flatnonzero((p["crop"] == "winter_wheat").values) + 1)
    ratios = {}
    for i, d in enumerate(demo.m["s2_dates"]):
        ok = clouds[i] == 0
        if (rape & ok).sum() < 200 or (wheat & ok).sum() < 200:
            continue
        red = demo.refl(d, "B04")
        ratios[_doy(d)] = red[rape & ok].mean() / red[wheat & ok].mean()
    flowering = [r for t, r in ratios.items() if 110 <= t <= 130]
    before = [r for t, r in ratios.items() if t <= 95]
    assert flowering and before
    assert max(flowering) > 1.5
    assert max(before) < 1.3


def test_grassland_ndvi_drops_at_mowing(demo):
    nd = demo.ndvi_by_parcel()
    doy = np.array([_doy(d) for d in demo.m["s2_dates"]])
    drops = []
    for j, row in demo.parcels.iterrows():
        if row["crop"] != "grassland" or row["n_mowings"] == 0:
            continue
        for s in row["mowing_dates"].split(","):
            t = _doy(s)
            pre = np.flatnonzero((doy >= t - 12) & (doy < t) & ~np.isnan(nd[:, j]))
            post = np.flatnonzero((doy >= t) & (doy <= t + 6) & ~np.isnan(nd[:, j]))
            later = np.flatnonzero((doy >= t + 25) & (doy <= t + 40) & ~np.isnan(nd[:, j]))
            if len(pre) and len(post):
                drops.append((nd[pre[-1], j] - nd[post[0], j],
                              nd[later[0], j] - nd[post[0], j] if len(later) else np.nan))
    drops = np.array(drops)
    assert len(drops) >= 10
    assert np.median(drops[:, 0]) > 0.2
    assert (drops[:, 0] > 0.1).mean() > 0.8
    assert np.nanmedian(drops[:, 1]) > 0.15  # regrowth after 3-4 weeks


def test_scl_matches_error_model(demo):
    clouds, _ = demo.stack("clouds")
    model = demo.m["scl_error_model"]
    hits = {k: [0, 0] for k in ("opaque", "thin", "shadow", "bright", "clear")}
    asphalt_water = [0, 0]
    road = (demo.lc == demo.legend["road"])[::2, ::2]
    for i, d in enumerate(demo.m["s2_dates"]):
        scl = demo.band("sentinel-2-l2a", d, "SCL")
        t = clouds[i][::2, ::2]
        b02, b03, b04, b08 = (demo.refl(d, b)[::2, ::2] for b in ("B02", "B03", "B04", "B08"))
        ndvi = (b08 - b04) / (b08 + b04)
        ndwi = (b03 - b08) / (b03 + b08)
        bright = (t == 0) & (ndvi < 0.25) & (b04 > 0.16) & (b02 > 0.09) & (ndwi < 0)
        for key, mask, ok in [("opaque", t == 1, np.isin(scl, [8, 9])), ("thin", t == 2, np.isin(scl, [8, 10])),
                              ("shadow", t == 3, scl == 3), ("bright", bright, scl == 8),
                              ("clear", (t == 0) & ~bright, np.isin(scl, [3, 8, 9, 10]))]:
            hits[key][0] += int((mask & ok).sum())
            hits[key][1] += int(mask.sum())
        asphalt_water[0] += int((road & (t == 0) & (scl == 6)).sum())
        asphalt_water[1] += int((road & (t == 0)).sum())
    rate = {k: a / b for k, (a, b) in hits.items()}
    assert all(b > 2000 for k, (a, b) in hits.items() if k != "bright"), hits
    assert hits["bright"][1] > 500
    assert rate["opaque"] == pytest.approx(model["opaque_detected"], abs=0.02)
    assert rate["thin"] == pytest.approx(model["thin_detected"], abs=0.06)
    assert rate["shadow"] == pytest.approx(model["shadow_detected"], abs=0.06)
    assert rate["bright"] == pytest.approx(model["bright_soil_false_cloud"], abs=0.01)
    assert rate["clear"] < 0.001
    assert 0.02 < asphalt_water[0] / asphalt_water[1] < 0.5  # dark asphalt sometimes called water


def test_eo_cloud_cover_is_the_true_share(demo):
    clouds, _ = demo.stack("clouds")
    dates = demo.m["s2_dates"]
    covers = []
    for it in demo.items["sentinel-2-l2a"]:
        i = dates.index(it["properties"]["datetime"][:10])
        gid = it["properties"]["grid:code"].split("-")[1]
        r, c = int(gid[1:3]), int(gid[4:6])
        t = clouds[i, r * 256:(r + 1) * 256, c * 256:(c + 1) * 256]
        assert it["properties"]["eo:cloud_cover"] == pytest.approx(100 * np.isin(t, [1, 2]).mean(), abs=0.006)
        covers.append(it["properties"]["eo:cloud_cover"])
    assert 25 <= np.mean(covers) <= 45
    scene = [np.isin(clouds[i], [1, 2]).mean() for i in range(len(dates))]
    assert sum(s < 0.05 for s in scene) >= 5 and sum(s > 0.8 for s in scene) >= 3
    assert sum(0.1 < s < 0.7 for s in scene) >= 15


def test_s1_water_darker_and_vh_follows_biomass(demo):
    water, desc = demo.stack("water_s1")
    assert desc == demo.m["s1_dates"]
    aq = (demo.lc == demo.legend["aquatic_vegetation"])
    diffs = []
    for i, d in enumerate(demo.m["s1_dates"]):
        vv = 10 * np.log10(demo.band("sentinel-1-grd", d, "vv"))
        wet = ndimage.binary_erosion(water[i] == 1, iterations=3) & ~ndimage.binary_dilation(aq, iterations=2)
        dry = ndimage.binary_erosion(water[i] == 0, iterations=3)
        diffs.append(np.median(vv[~wet[::2, ::2] & dry[::2, ::2]]) - np.median(vv[wet[::2, ::2]]))
    assert min(diffs) > 5 and np.median(diffs) > 8
    p = demo.parcels
    maize = np.isin(demo.pid_inner, np.flatnonzero((p["crop"] == "maize").values) + 1)[::2, ::2]
    doy = np.array([_doy(d) for d in demo.m["s1_dates"]])
    vh = {t: 10 * np.log10(np.mean(demo.band("sentinel-1-grd", d, "vh")[maize])) for t, d in zip(doy, demo.m["s1_dates"])}
    early = np.mean([v for t, v in vh.items() if t < 120])
    summer = np.mean([v for t, v in vh.items() if 195 <= t <= 235])
    assert early < -19 and summer > -16 and summer - early > 5


def test_winter_dates_snow_ice_shadow_and_their_scl_errors(demo):
    """Winter dates after the crop season: snow, an iced reservoir, terrain shadow on the hill; SCL
    misses and invents snow (11) and dark areas (2) at the manifest's rates."""
    surface, desc = demo.stack("surface_s2")
    clouds, _ = demo.stack("clouds")
    water, _ = demo.stack("water_s2")
    dates = demo.m["s2_dates"]
    assert desc == dates and demo.m["surface_truth_codes"]["2"] == "frozen_water"
    winter = [dates.index(d) for d in demo.m["winter_dates"]]
    assert winter == list(range(len(dates) - len(winter), len(dates)))  # after the season, in order
    assert not surface[:winter[0]].any()  # crop-season dates: no snow, ice or terrain shadow
    assert all((surface[i] == 3).sum() > 1000 for i in winter)  # the hill's shadow, low sun
    assert sum((surface[i] == 1).mean() > 0.3 for i in winter) >= 3
    iced = [i for i in winter if (surface[i] == 2).any()]
    assert len(iced) >= 2
    for i in iced:  # the frozen reservoir is still water in the truth
        assert water[i][surface[i] == 2].mean() > 0.95
    model = demo.m["scl_error_model"]
    hits = {k: [0, 0] for k in ("snow", "shadow", "false_snow")}
    for i in winter:
        d = dates[i]
        scl = demo.band("sentinel-2-l2a", d, "SCL")
        s, t = surface[i][::2, ::2], clouds[i][::2, ::2]
        clear = t == 0
        for key, mask, ok in [("snow", clear & np.isin(s, [1, 2]), scl == 11), ("shadow", clear & (s == 3), scl == 2),
                              ("false_snow", clear & (s == 0), scl == 11)]:
            hits[key][0] += int((mask & ok).sum())
            hits[key][1] += int(mask.sum())
    rate = {k: a / b for k, (a, b) in hits.items()}
    assert rate["snow"] == pytest.approx(model["snow_detected"], abs=0.05)
    assert rate["shadow"] == pytest.approx(model["terrain_shadow_detected"], abs=0.1)
    assert 0.001 < rate["false_snow"] < 0.06  # invented on bright land only
