"""Evidence dossiers per minute: ``dossier.write_all`` for N red/yellow parcels, on this machine.

The scene is synthesised here (seeded) in a temporary folder: N parcels of 4 ha (200 × 200 m) on a
grid, Sentinel-2-like B02/B03/B04/B08 GeoTIFFs (uint16, tiled, DEFLATE, 10 m, scale 0.0001 and
offset -0.1 in raster:bands) for 12 dates with one STAC item each, and a CapRun of the checks with
crop probabilities that make every parcel red or yellow. Timed: ``dossier.write_all`` (chips of up
to 4 deciding dates read as windows of the items, PNG encoding, series SVG, evidence hash), one
process (GDAL and PIL may use a second core). Goal: ≥ 300 dossiers per minute for 1,000 parcels.

    .venv/bin/python benchmarks/cap_dossiers.py [--parcels 1000] [--dates 12]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

X0, Y0, RES, CELL = 500000.0, 5000000.0, 10.0, 250.0
CRS = "EPSG:32634"


def scene(folder: Path, n: int, n_dates: int, seed: int = 0):
    import geopandas as gpd
    import pystac
    import rasterio
    from rasterio.transform import from_origin
    from shapely.geometry import box, mapping

    from eolab.analysis import cap

    rng = np.random.default_rng(seed)
    side = math.ceil(math.sqrt(n))
    size = int(side * CELL / RES) + 4
    dates = [dt.date(2026, 4, 1) + dt.timedelta(days=15 * k) for k in range(n_dates)]
    lonlat = gpd.GeoSeries([box(X0, Y0 - size * RES, X0 + size * RES, Y0)], crs=CRS).to_crs("EPSG:4326").iloc[0]
    items = []
    for k, d in enumerate(dates):
        item = pystac.Item(f"S2_{d}", mapping(lonlat), list(lonlat.bounds),
                           dt.datetime(d.year, d.month, d.day, 10, tzinfo=dt.timezone.utc), {})
        for b in ("B02", "B03", "B04", "B08"):
            path = folder / f"{d}_{b}.tif"
            data = rng.integers(1000, 4000, (size, size), dtype="uint16")
            with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint16",
                               crs=CRS, transform=from_origin(X0, Y0, RES, RES), nodata=0, tiled=True,
                               blockxsize=256, blockysize=256, compress="deflate") as dst:
                dst.write(data, 1)
            item.add_asset(b, pystac.Asset(str(path), extra_fields={
                "raster:bands": [{"scale": 0.0001, "offset": -0.1, "nodata": 0}]}))
        item.set_self_href(f"http://127.0.0.1/collections/sentinel-2-l2a/items/S2_{d}")
        items.append(item)
    geoms = [box(X0 + 20 + (j % side) * CELL, Y0 - 220 - (j // side) * CELL,
                 X0 + 220 + (j % side) * CELL, Y0 - 20 - (j // side) * CELL) for j in range(n)]
    ids = [f"P{j:06d}" for j in range(n)]
    claims = gpd.GeoDataFrame({"crop_code": "201", "crop_name": rng.choice(["maize", "soybean", "grassland"], n),
                               "area_declared_ha": 4.0}, geometry=geoms, crs=CRS, index=ids)
    claims.index.name = "parcel_id"
    screen = cap.screen_parcels(claims)
    classes = ["grassland", "maize", "soybean"]
    # every parcel red or yellow: the declared crop gets 0.05 (red) or, one in three, 0.35 vs. 0.45 (yellow)
    proba = np.zeros((n, 3))
    for j, c in enumerate(claims.crop_name):
        d = classes.index(c)
        other = [k for k in range(3) if k != d]
        proba[j, d], proba[j, other[0]], proba[j, other[1]] = (0.35, 0.45, 0.2) if j % 3 == 0 else (0.05, 0.6, 0.35)
    days = np.array(dates, "datetime64[D]").astype(float)
    ndvi = np.clip(rng.normal(0.55, 0.2, (n, n_dates)), -0.1, 1.0)
    info = {"days": days, "grid_days": days, "series": {"NDVI": ndvi}, "observed": np.isfinite(ndvi),
            "n_observations": np.full(n, n_dates)}
    mowing = [[{"date": str(dates[n_dates // 2] + dt.timedelta(days=3))}] if c == "grassland" and j % 2 else []
              for j, c in enumerate(claims.crop_name)]
    found: list = []
    checks = cap.check_parcels(claims, screen, proba, classes, n_observations=info["n_observations"], mowing=mowing,
                               bare_soil=[[] for _ in range(n)], ndvi_max=ndvi.max(1), findings=found)
    from eolab.analysis import cap_checks

    run = cap.CapRun(checks=checks, screen=screen, X=None, info=info, proba=proba, classes=classes, mowing=mowing,
                     bare_soil=[[] for _ in range(n)], growth_threshold=0.4, ndvi=ndvi, findings=found,
                     check_params=cap_checks.parameters({"growth": {"min_growth": 0.4}}))
    result = claims.join(screen).join(checks.drop(columns=["declared_crop"]))
    result["source_items"] = ",".join(it.id for it in items)
    return run, result.reset_index(), items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parcels", type=int, default=1000)
    ap.add_argument("--dates", type=int, default=12)
    a = ap.parse_args()
    from eolab.analysis import dossier

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run, result, items = scene(folder, a.parcels, a.dates)
        flagged = int(run.checks.light.isin(["red", "yellow"]).sum())
        t0, c0 = time.perf_counter(), time.process_time()
        paths = dossier.write_all(run, result, items, folder / "dossiers")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        sizes = [p.stat().st_size for p in paths]
    figures = {"parcels": a.parcels, "red_yellow": flagged, "dossiers": len(paths), "dates": a.dates,
               "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "per_minute": round(60 * len(paths) / wall, 1),
               "mean_kb": round(float(np.mean(sizes)) / 1024, 1), "cores": os.cpu_count(),
               "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
