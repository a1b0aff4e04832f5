"""A tiny CAP scene for dossier and queue tests: three Sentinel-2 dates as GeoTIFFs with STAC items,
two parcels (one red, one green) and the CapRun of their checks."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pystac
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box, mapping

from eolab.analysis import cap, cap_checks

CRS = "EPSG:32634"
X0, Y0, RES, N = 500000.0, 5000000.0, 10.0, 60
DATES = ["2026-04-01", "2026-05-01", "2026-07-01"]
BANDS = ("B02", "B03", "B04", "B08")


def _dn(band: str, k: int) -> np.ndarray:
    rr, cc = np.mgrid[0:N, 0:N]
    base = {"B02": 1500, "B03": 1700, "B04": 1800 - 300 * k, "B08": 2500 + 800 * k}[band]
    return (base + 7 * rr + 3 * cc).astype("uint16")


def make_scene(tmp_path):
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
