"""P4: CAP parcel checks for 100,000 synthetic parcels × 36 dates, end to end, on this machine.

The data are synthesised here (seeded) and cached under --data: 100,000 rectangular-ish fields of
0.3–3 ha (plus ~5 % too small / too thin ones for the screen) tiled over a ~35 × 36 km scene at
10 m (~5 GB), 8 Sentinel-2 L2A bands + SCL as one COG per band and date (uint16 DEFLATE, like L2A), the
SCL carrying clouds and their shadows, and a claims GeoPackage in the eolab demo schema (5 % of the
declarations wrong, 3 % failed crops, grassland mown 1–3 times).

End to end (timed) is what the CAP template does, with its own functions:
claims.read_claims → cap.screen_parcels (monitorable only go on) → crops.parcel_series (load_cube of
local STAC items + SCL mask + indices + zonal.zonal_stats: per parcel, per date) → crops.parcel_features
(cleaning, gap interpolation onto a 10-day grid) → cap.run_checks, the template's own pipeline (crop
probabilities, growth threshold, mowing and bare soil, traffic light) →
cap.write_results (the results table built and written part by part as GeoPackage + GeoParquet,
provenance attached) + events CSV.

Crop probabilities: the template's own cap.cross_fit_crop_probabilities with its defaults (5 folds,
forest with label cleaning + logistic regression, each fold learning from a stratified sample of at
most 4,000 parcels; every parcel is scored by models that never saw its declaration).

Memory: peak RSS of this process (sampled, and ru_maxrss) against the size the cube would have in
memory (dates × pixels × 11 float32 variables). Zonal statistics are then compared with exactextract
on one window of the scene (a 36-band NDVI GeoTIFF, cloud-masked; eolab with buffer 0 — pixel
centres — against exactextract's area-weighted means; same file, same parcels).

    .venv/bin/python benchmarks/cap_p4.py [--data DIR] [--parcels 100000] [--dates 36]
    .venv/bin/python benchmarks/cap_p4.py --parcels 100000 300000 --no-ee   # scaling
    .venv/bin/python benchmarks/cap_p4.py --parcels 100000 300000 --no-ee --tile-parcels 25000 0

By default the checks run as ``cap.run_checks_tiled`` (tiles of about 25,000 parcels: one tile's
series in memory at a time); ``--tile-parcels 0`` runs the template's one pass (``parcel_series``
of all parcels, then ``cap.run_checks``); several values are each measured, one after another.

Every step prints wall and CPU seconds (CPU: all threads of this process and of its child
processes), since on a shared machine the wall time depends on the other work. The last line holds
the figures and ratios (goal: end to end ≤ 300 s). With several sizes, the larger scenes are the
first one copied as tiles (see ``replicate``), each size runs in a process of its own (so peak memory
is its own), and the last line compares CPU and wall seconds per parcel-date and peak memory
(goals: per-parcel cost within 1.1×, memory growing only with the result table).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from broker_common import machine  # noqa: E402

SEED = 20261122
RES = 10.0
X0, Y0 = 500000.0, 5300000.0  # upper-left corner, EPSG:32634; multiples of 10 m so odc-stac reads without resampling
EPSG = 32634
BANDS = ["B02", "B03", "B04", "B05", "B08", "B8A", "B11", "B12"]
DN_SCALE, DN_OFFSET = 0.0001, -0.1
# reflectance of bare soil and of full green cover per band (mixed linearly by cover)
SOIL = np.array([0.08, 0.11, 0.15, 0.18, 0.24, 0.25, 0.32, 0.26], np.float32)
VEG = np.array([0.03, 0.07, 0.03, 0.12, 0.45, 0.47, 0.20, 0.10], np.float32)
CLOUD = np.array([0.45, 0.46, 0.47, 0.48, 0.50, 0.50, 0.40, 0.33], np.float32)
CROPS = {  # name: (code of the demo code list, share, (cover start, green-up doy, senescence doy, stubble cover))
    "winter_wheat": ("1110", 0.20, (0.35, 85, 180, 0.15)),
    "winter_barley": ("1120", 0.10, (0.40, 80, 165, 0.15)),
    "rapeseed": ("1630", 0.10, (0.55, 75, 175, 0.20)),
    "maize": ("1510", 0.18, (0.05, 150, 260, 0.10)),
    "sunflower": ("1720", 0.10, (0.05, 135, 225, 0.10)),
    "soybean": ("1640", 0.10, (0.05, 150, 245, 0.10)),
    "grassland": ("6100", 0.22, None),
}
BLOCK = 1024  # COG tile and dask chunk (what parcel_series uses)


# ------------------------------------------------------------------------------ synthesis


def _dates(n: int) -> list[dt.date]:
    start, end = dt.date(2026, 3, 5), dt.date(2026, 10, 25)
    step = (end - start).days / (n - 1)
    return [start + dt.timedelta(days=int(round(k * step))) for k in range(n)]


def make_parcels(n: int, width_px: int, rng: np.random.Generator):
    """Fields in rows: each row a random depth, each field a random area (0.3–3 ha, log-uniform) and
    so a width; ~3 % thin strips (12–18 m) and ~2 % tiny plots (< 0.2 ha) for the screen."""
    from shapely.geometry import box

    width = width_px * RES
    geoms, y = [], 0.0
    while len(geoms) < n:
        depth = float(rng.uniform(60, 200))
        lo = np.log(max(3000.0, 30.0 * depth))  # at least 0.3 ha and 30 m wide
        x = 0.0
        while len(geoms) < n:
            u = rng.random()
            if u < 0.03:
                w = rng.uniform(12, 18)
            elif u < 0.05:
                w = min(rng.uniform(500, 2000) / depth, 25.0)
            else:
                w = float(np.exp(rng.uniform(lo, np.log(30000)))) / depth
            if x + w > width - 1:
                break
            gap = 2.0  # field margins / tracks between neighbours
            geoms.append(box(X0 + x + gap / 2, Y0 - y - depth + gap / 2, X0 + x + w - gap / 2, Y0 - y - gap / 2))
            x += w
        y += depth
    height_px = int(np.ceil(y / RES))
    return geoms, height_px


def cover_curves(days: np.ndarray, crop: np.ndarray, rng: np.random.Generator):
    """(parcel, date) green cover 0–1 of the true crop with per-parcel jitter, failed crops, mowing."""
    n = crop.size
    doy = np.array([d.timetuple().tm_yday for d in days], float)
    cover = np.zeros((n, doy.size), np.float32)
    names = list(CROPS)
    shift = rng.normal(0, 6, n)
    amp = rng.uniform(0.85, 1.0, n)
    failed = rng.random(n) < 0.03
    mow_days = []
    for k, name in enumerate(names):
        rows = np.flatnonzero(crop == k)
        if CROPS[name][2] is None:  # grassland: green, cut 1–3 times, regrowth over ~3 weeks
            base = 0.55 + 0.3 / (1 + np.exp(-(doy - 100) / 8))
            c = np.tile(base, (rows.size, 1))
            for i, r in enumerate(rows):
                cuts = np.sort(rng.uniform(130, 260, rng.integers(1, 4)))
                cuts = cuts[np.concatenate([[True], np.diff(cuts) > 30])]
                mow_days.append((r, cuts))
                for m in cuts:
                    after = doy - m
                    c[i] -= np.where(after >= 0, 0.5 * np.exp(-after / 12.0), 0)
            cover[rows] = np.clip(c, 0.05, 1)
            continue
        c0, up, down, stub = CROPS[name][2]
        t = doy[None, :] - shift[rows, None]
        green = 1 / (1 + np.exp(-(t - up) / 7)) - 1 / (1 + np.exp(-(t - down) / 6))
        c = c0 * (t < up) * (1 - 1 / (1 + np.exp(-(t - up) / 7))) + amp[rows, None] * green
        c = np.where(t > down + 15, stub, c)
        c = np.where(failed[rows, None], 0.35 * c, c)
        cover[rows] = np.clip(c, 0.02, 1)
    return cover, failed, mow_days


def _cloud_field(rng: np.random.Generator, shape, target: float):
    """(cloud, shadow) masks: thresholded smooth noise covering ~``target`` of the scene."""
    from scipy.ndimage import zoom

    if target <= 0.005:
        return np.zeros(shape, bool), np.zeros(shape, bool)
    coarse = rng.normal(size=(shape[0] // 64 + 2, shape[1] // 64 + 2)).astype(np.float32)
    field = zoom(coarse, 64, order=1)[: shape[0], : shape[1]]
    thr = np.quantile(coarse, 1 - target)
    cloud = field > thr
    shadow = np.zeros(shape, bool)
    shadow[30:, 25:] = cloud[:-30, :-25]
    return cloud, shadow & ~cloud


def _write_cog(path: Path, data: np.ndarray, transform) -> None:
    import rasterio

    with rasterio.open(path, "w", driver="COG", width=data.shape[1], height=data.shape[0], count=1,
                       dtype=data.dtype.name, crs=f"EPSG:{EPSG}", transform=transform, nodata=0,
                       blocksize=BLOCK, compress="DEFLATE", level=1, predictor=2, overviews="NONE") as dst:
        dst.write(data, 1)


def _synth_date(args) -> dict:
    """One date: bands from the parcels' cover + pixel noise, clouds and shadows; returns its STAC item."""
    from affine import Affine

    k, day, data_dir, target = args
    data_dir = Path(data_dir)
    labels = np.load(data_dir / "labels.npy", mmap_mode="r")
    cover = np.load(data_dir / "cover.npy", mmap_mode="r")[:, k]
    ny, nx = labels.shape
    rng = np.random.default_rng([SEED, k])
    f = np.concatenate([[0.25], cover]).astype(np.float32)[np.asarray(labels)]  # margins: sparse weeds
    cloud, shadow = _cloud_field(rng, (ny, nx), target)
    transform = Affine(RES, 0, X0, 0, -RES, Y0)
    iid = f"S2X_MSIL2A_{day:%Y%m%d}_P4"
    out = data_dir / iid
    out.mkdir(exist_ok=True)
    assets = {}
    for b, name in enumerate(BANDS):
        refl = SOIL[b] + (VEG[b] - SOIL[b]) * f
        refl *= 1 + 0.03 * rng.standard_normal((ny, nx), dtype=np.float32)
        refl[cloud] = CLOUD[b] * (1 + 0.05 * rng.standard_normal(int(cloud.sum()), dtype=np.float32))
        refl[shadow] *= 0.35
        dn = np.clip(np.round((refl - DN_OFFSET) / DN_SCALE), 1, 65535).astype(np.uint16)
        _write_cog(out / f"{name}.tif", dn, transform)
        assets[name] = {"href": str(out / f"{name}.tif"), "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                        "roles": ["data", "reflectance"],
                        "raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": DN_SCALE, "offset": DN_OFFSET}]}
    scl = np.where(f > 0.3, 4, 5).astype(np.uint8)
    scl[shadow] = 3
    scl[cloud] = 9
    _write_cog(out / "SCL.tif", scl, transform)
    assets["SCL"] = {"href": str(out / "SCL.tif"), "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                     "roles": ["data", "cloud"], "raster:bands": [{"nodata": 0, "data_type": "uint8"}]}
    for a in assets.values():
        a.update({"proj:shape": [ny, nx], "proj:transform": list(transform)[:6]})
    from pyproj import Transformer

    tr = Transformer.from_crs(EPSG, 4326, always_xy=True)
    xs, ys = tr.transform([X0, X0 + nx * RES, X0 + nx * RES, X0], [Y0, Y0, Y0 - ny * RES, Y0 - ny * RES])
    bbox = [min(xs), min(ys), max(xs), max(ys)]
    return {"type": "Feature", "stac_version": "1.0.0", "id": iid, "collection": "sentinel-2-l2a",
            "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json",
                                "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
            "bbox": bbox, "geometry": {"type": "Polygon", "coordinates": [[[xs[i], ys[i]] for i in (0, 1, 2, 3, 0)]]},
            "properties": {"datetime": f"{day:%Y-%m-%d}T09:50:00Z", "proj:code": f"EPSG:{EPSG}",
                           "eo:cloud_cover": round(100 * float(cloud.mean()), 2), "eolab:provider": "synthetic"},
            "assets": assets, "links": []}


def synthesise(data_dir: Path, n_parcels: int, n_dates: int, width_px: int) -> dict:
    """Write the scene (cached: rerunning with the same parameters reuses it)."""
    import multiprocessing as mp

    import geopandas as gpd
    from affine import Affine
    from rasterio.features import rasterize

    key = {"seed": SEED, "parcels": n_parcels, "dates": n_dates, "width_px": width_px, "version": 2}
    manifest = data_dir / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("key") == key:
        return json.loads(manifest.read_text())
    data_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def phase(name):
        print(f"  synthesis: {name} done at {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    rng = np.random.default_rng(SEED)
    geoms, ny = make_parcels(n_parcels, width_px, rng)
    phase("parcels")
    names = list(CROPS)
    true = rng.choice(len(names), n_parcels, p=[CROPS[c][1] for c in names])
    declared = true.copy()
    wrong = rng.random(n_parcels) < 0.05
    declared[wrong] = (true[wrong] + rng.integers(1, len(names), int(wrong.sum()))) % len(names)
    days = _dates(n_dates)
    cover, failed, _ = cover_curves(np.array(days), true, rng)
    phase("cover curves")
    labels = rasterize(((g, i + 1) for i, g in enumerate(geoms)), out_shape=(ny, width_px),
                       transform=Affine(RES, 0, X0, 0, -RES, Y0), fill=0, dtype="int32")
    np.save(data_dir / "labels.npy", labels)
    np.save(data_dir / "cover.npy", cover)
    phase("rasterize")
    area = np.array([g.area for g in geoms])
    ids = [f"P4-{i:06d}" for i in range(n_parcels)]
    claims = gpd.GeoDataFrame({
        "parcel_id": ids, "farmer_id": [f"F{i // 12:05d}" for i in range(n_parcels)],
        "crop_code": [CROPS[names[c]][0] for c in declared], "crop_name": [names[c] for c in declared],
        "area_declared_ha": np.round(area / 1e4 * rng.normal(1, 0.02, n_parcels), 2),
    }, geometry=geoms, crs=f"EPSG:{EPSG}")
    claims.to_file(data_dir / "claims.gpkg", layer="claims", driver="GPKG")
    phase("claims")
    plan = rng.random(n_dates)
    targets = np.where(plan < 0.4, 0.0, np.where(plan < 0.7, rng.uniform(0.05, 0.4, n_dates), rng.uniform(0.5, 0.95, n_dates)))
    with mp.get_context("spawn").Pool(os.cpu_count() or 2) as pool:
        items = pool.map(_synth_date, [(k, d, str(data_dir), float(targets[k])) for k, d in enumerate(days)])
    (data_dir / "items.json").write_text(json.dumps(items))
    phase("images")
    truth = {"true_crop": [names[c] for c in true], "wrong_declaration": wrong.tolist(), "failed": failed.tolist()}
    (data_dir / "truth.json").write_text(json.dumps(truth))
    info = {"key": key, "shape": [int(ny), int(width_px)], "dates": [str(d) for d in days],
            "cloud_targets": targets.round(3).tolist()}
    manifest.write_text(json.dumps(info))
    return info


def replicate(base_dir: Path, data_dir: Path, copies: int) -> dict:
    """A scene ``copies`` times the base one: each date's rasters as ``copies`` tiles (separate COG
    files, stacked north to south like Sentinel-2 tiles of one date), the claims copied onto each
    tile under new ids. Copying files costs seconds where synthesising costs CPU minutes, and every
    tile holds the same parcels and pixels, so a larger run repeats exactly the work of the base one."""
    import shutil

    import geopandas as gpd
    import pandas as pd
    import rasterio
    from affine import Affine
    from pyproj import Transformer

    base = json.loads((base_dir / "manifest.json").read_text())
    key = {"base": base["key"], "copies": copies, "version": 1}
    manifest = data_dir / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("key") == key:
        return json.loads(manifest.read_text())
    data_dir.mkdir(parents=True, exist_ok=True)
    ny, nx = base["shape"]
    tr = Transformer.from_crs(EPSG, 4326, always_xy=True)
    items = []
    for it in json.loads((base_dir / "items.json").read_text()):
        for c in range(copies):
            y0 = Y0 - c * ny * RES
            new = json.loads(json.dumps(it))
            new["id"] = f"{it['id']}_T{c}"
            out = data_dir / new["id"]
            out.mkdir(exist_ok=True)
            for a in new["assets"].values():
                src = Path(a["href"])
                dst = out / src.name
                if not dst.exists():
                    shutil.copyfile(src, dst)
                    if c:  # only the georeference changes (the tile layout stays; no overviews to lose)
                        with rasterio.open(dst, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as f:
                            f.transform = Affine(RES, 0, X0, 0, -RES, y0)
                a["href"] = str(dst)
                a["proj:transform"] = [RES, 0, X0, 0, -RES, y0]
            xs, ys = tr.transform([X0, X0 + nx * RES, X0 + nx * RES, X0], [y0, y0, y0 - ny * RES, y0 - ny * RES])
            new["bbox"] = [min(xs), min(ys), max(xs), max(ys)]
            new["geometry"] = {"type": "Polygon", "coordinates": [[[xs[i], ys[i]] for i in (0, 1, 2, 3, 0)]]}
            items.append(new)
    (data_dir / "items.json").write_text(json.dumps(items))
    claims = gpd.read_file(base_dir / "claims.gpkg")
    parts = []
    for c in range(copies):
        part = claims.copy()
        part["geometry"] = claims.geometry.translate(0, -c * ny * RES)
        part["parcel_id"] = [f"P4-{c}-{p[3:]}" for p in claims["parcel_id"]]
        part["farmer_id"] = [f"F{c}-{f[1:]}" for f in claims["farmer_id"]]
        parts.append(part)
    gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=claims.crs).to_file(
        data_dir / "claims.gpkg", layer="claims", driver="GPKG")
    truth = json.loads((base_dir / "truth.json").read_text())
    (data_dir / "truth.json").write_text(json.dumps({k: v * copies for k, v in truth.items()}))
    info = {**base, "key": key, "shape": [ny * copies, nx]}
    manifest.write_text(json.dumps(info))
    return info


# ------------------------------------------------------------------------------ measuring


class PeakRSS:
    """Peak resident memory of this process, sampled every 50 ms (ru_maxrss covers the whole life)."""

    def __init__(self):
        import psutil

        self.proc = psutil.Process()
        self.peak = self.since = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            rss = self.proc.memory_info().rss
            self.peak = max(self.peak, rss)
            self.since = max(self.since, rss)
            self._stop.wait(0.05)

    def take(self) -> int:
        """The peak since the last take (a step's own peak), then start again from now."""
        out, self.since = max(self.since, self.proc.memory_info().rss), 0
        return out

    def __enter__(self):
        self.peak = self.proc.memory_info().rss
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def run_pipeline(data_dir: Path, out_dir: Path, cpu=None, peak: PeakRSS | None = None,
                 tile_parcels: int = 0) -> tuple[dict, dict]:
    """The CAP checks end to end; returns (step times in s, facts). ``cpu``: the CPU clock read once
    before and once after each step (default :func:`cpu_seconds`; on a cluster also the workers').
    ``tile_parcels``: run ``cap.run_checks_tiled`` with tiles of about this many parcels; 0: the
    template's one pass (``parcel_series`` of all parcels, then ``cap.run_checks``)."""
    import pystac

    from eolab import provenance
    from eolab.analysis import cap, claims, crops, events, outputs

    cpu = cpu or cpu_seconds
    times: dict[str, float] = {}
    facts: dict = {"cpu": {}}
    t, c = time.perf_counter(), cpu()

    def step(name):
        # wall and CPU seconds (all threads of this process): on a shared machine the CPU time tells
        # what the step costs, the wall time what this run got
        nonlocal t, c
        now, cnow = time.perf_counter(), cpu()
        times[name], facts["cpu"][name] = now - t, cnow - c
        t, c = now, cnow
        top = ""
        if peak is not None:
            facts.setdefault("peak_by_step", {})[name] = peak.take()
            top = f", step's peak {facts['peak_by_step'][name] / 2**30:.2f} GiB"
        print(f"  {name:<38s} {times[name]:7.1f} s wall {facts['cpu'][name]:7.1f} s CPU   "
              f"(RSS {_rss() / 2**30:.2f} GiB{top})", file=sys.stderr)

    items = [pystac.Item.from_dict(d) for d in json.loads((data_dir / "items.json").read_text())]
    declared = claims.read_claims(data_dir / "claims.gpkg").set_index("parcel_id")
    step("ingest claims")
    screen = cap.screen_parcels(declared, min_pixels=8)
    ok = screen["monitorable"].values
    mon = declared[ok]
    facts["parcels"], facts["monitorable"] = len(declared), int(ok.sum())
    step("screen (small / thin)")
    if tile_parcels:
        # country scale: series, features and events one tile of parcels at a time
        run = cap.run_checks_tiled(mon, items, tile_parcels=tile_parcels, screen=screen[ok], n_jobs=2, progress=False)
        facts["tiles"] = run.info["tiles"]
        facts["tile_phases_s"] = run.info["seconds"]
        step(f"cap.run_checks_tiled ({run.info['tiles']} tiles: series, features, events, model, lights)")
    else:
        bbox = [float(v) for v in mon.to_crs("EPSG:4326").total_bounds]
        z = crops.parcel_series(items, mon, bbox=bbox)
        step("zonal statistics (parcel_series)")
        X, info = crops.parcel_features(z)
        step("parcel features: clean + gap-fill")
        # the template's own pipeline (crop model, growth threshold, mowing, bare soil, traffic light)
        run = cap.run_checks(mon, z, None, screen=screen[ok], features=(X, info), n_jobs=2)
        step("cap.run_checks (model, events, lights)")
    facts["cube"] = {"dates": len(run.info["days"]), "variables": len(crops.ZONAL_BANDS) + 3}
    mowing, bare, info = run.mowing, run.bare_soil, run.info
    # parcels the screen set aside are yellow without images, as in the results table
    lights = run.checks["light"].reindex(declared.index).fillna("yellow")
    facts["lights"] = lights.value_counts().to_dict()
    red = (lights == "red").values
    step("traffic light")
    prov = provenance.record(items, workflow="cap-parcel-checks", parameters={"benchmark": "P4"},
                             inputs=[str(data_dir / "claims.gpkg")])
    # cap.write_results builds and writes the results table a part at a time, never whole; the size
    # each part takes in memory is summed: the table's size as if it were built whole. pandas counts a
    # geometry as its 8-byte pointer; its XY coordinates are the table's too (a lower bound: each
    # geometry's own overhead is not counted).
    import shapely
    facts["result_table_bytes"] = 0

    def size(part):
        facts["result_table_bytes"] += int(part.memory_usage(deep=True).sum()
                                           + 16 * shapely.get_num_coordinates(part.geometry.values).sum())

    files = cap.write_results(declared, run, prov, out_dir / "cap_checks.gpkg", screen=screen, dates=info["times"],
                              on_part=size)
    ev = events.events_table(mon.index, mowing, bare)
    files.append(outputs.write_csv(ev, out_dir / "events.csv", prov, index=False))
    facts["outputs"] = {f.name: f.stat().st_size for f in files}
    step("output files (gpkg + parquet + csv)")
    truth = json.loads((data_dir / "truth.json").read_text())
    wrong = np.array(truth["wrong_declaration"])
    tp = int((red & wrong).sum())
    facts["red_precision_recall"] = (tp / max(red.sum(), 1), tp / max(wrong.sum(), 1))
    return times, facts


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process's threads and of its child processes, live
    (e.g. joblib workers) or already ended: on a shared machine this, not the wall time, is the cost."""
    import psutil

    me = psutil.Process()
    t = me.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in me.children(recursive=True):
        try:
            ct = child.cpu_times()
        except psutil.Error:
            continue
        total += ct.user + ct.system
    return total


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def ndvi_window(data_dir: Path, items: list[dict], window, path: Path) -> None:
    """A 36-band float32 NDVI GeoTIFF of one window, cloud/shadow pixels NaN (the same SCL classes)."""
    import rasterio
    from rasterio.windows import transform as wtransform

    with rasterio.open(items[0]["assets"]["B04"]["href"]) as src:
        tr = wtransform(window, src.transform)
    with rasterio.open(path, "w", driver="GTiff", width=window.width, height=window.height, count=len(items),
                       dtype="float32", crs=f"EPSG:{EPSG}", transform=tr, nodata=float("nan"), tiled=True,
                       blockxsize=256, blockysize=256, compress="DEFLATE", level=1) as dst:
        for k, it in enumerate(items):
            rd = {}
            for b in ("B04", "B08", "SCL"):
                with rasterio.open(it["assets"][b]["href"]) as src:
                    rd[b] = src.read(1, window=window)
            red, nir = (rd[b] * DN_SCALE + DN_OFFSET for b in ("B04", "B08"))
            ndvi = ((nir - red) / (nir + red)).astype("float32")
            ndvi[np.isin(rd["SCL"], (0, 1, 3, 8, 9, 10))] = np.nan
            dst.write(ndvi, k + 1)


def compare_exactextract(data_dir: Path, work: Path, size: int) -> dict:
    """eolab zonal (rasterize + bincount, buffer 0) vs exactextract on the same NDVI window and parcels."""
    import geopandas as gpd
    import odc.geo.xr  # noqa: F401
    import rasterio
    import xarray as xr
    from rasterio.windows import Window
    from shapely.geometry import box

    from eolab.analysis import zonal

    items = json.loads((data_dir / "items.json").read_text())
    window = Window(0, 0, size, size)
    tif = work / "ndvi_window.tif"
    ndvi_window(data_dir, items, window, tif)
    claims = gpd.read_file(data_dir / "claims.gpkg")
    with rasterio.open(tif) as src:
        b = src.bounds
    inside = claims[claims.within(box(b.left, b.bottom, b.right, b.top))].reset_index(drop=True)

    t0, c0 = time.perf_counter(), time.process_time()
    with rasterio.open(tif) as src:
        values = src.read()
        ny, nx = src.height, src.width
        tr = src.transform
    cube = xr.Dataset({"NDVI": (("time", "y", "x"), values)},
                      coords={"time": np.array([it["properties"]["datetime"][:10] for it in items], "datetime64[ns]"),
                              "y": tr.f + tr.e * (np.arange(ny) + 0.5), "x": tr.c + tr.a * (np.arange(nx) + 0.5)})
    cube = cube.odc.assign_crs(f"EPSG:{EPSG}")
    z = zonal.zonal_stats(cube, inside, ["NDVI"], buffer=0.0)
    t_eolab, c_eolab = time.perf_counter() - t0, time.process_time() - c0

    from exactextract import exact_extract

    t0, c0 = time.perf_counter(), time.process_time()
    df = exact_extract(str(tif), inside, ["mean"], output="pandas")
    t_ee, c_ee = time.perf_counter() - t0, time.process_time() - c0
    ee = df.to_numpy(float)  # (parcel, band)
    ours = z["NDVI"].values  # (zone, time)
    both = np.isfinite(ee) & np.isfinite(ours)
    diff = np.abs(ee - ours)[both]
    # parcel-dates without any cloud in the parcel: the difference is then edge weighting alone
    clear = both & (z["valid_fraction"].values == 1)
    return {"max_abs_diff_clear": float(np.abs(ee - ours)[clear].max()), "parcels": len(inside), "window_px": size,
            "dates": len(items), "eolab_s": t_eolab, "exactextract_s": t_ee,
            "eolab_cpu_s": c_eolab, "exactextract_cpu_s": c_ee,
            "max_abs_diff": float(diff.max()), "p99_abs_diff": float(np.quantile(diff, 0.99)),
            "median_abs_diff": float(np.median(diff)),
            "nan_mismatch": int((np.isfinite(ee) != np.isfinite(ours)).sum())}


def one_size(data_dir: Path, args, ee: bool) -> dict:
    """The pipeline on one scene, in this process; its figures (also printed to stderr)."""
    info = json.loads((data_dir / "manifest.json").read_text())
    ny, nx = info["shape"]
    out_dir = Path(tempfile.mkdtemp(prefix="eolab-p4-out-"))
    load_before = os.getloadavg()[0]
    with PeakRSS() as peak:
        times, facts = run_pipeline(data_dir, out_dir, peak=peak, tile_parcels=args.tile_parcels[0])
    steps_peak = max(facts["peak_by_step"].values())  # the pipeline's steps, not the diagnostics after them
    total = sum(times.values())  # the steps only, not the diagnostics after them
    load_after = os.getloadavg()[0]
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cube_bytes = args.dates * ny * nx * facts["cube"]["variables"] * 4
    band_bytes = args.dates * ny * nx * 9 * 2
    print(f"lights: {facts['lights']}; red vs wrong declarations P/R "
          f"{facts['red_precision_recall'][0]:.2f}/{facts['red_precision_recall'][1]:.2f}", file=sys.stderr)
    print(f"outputs: {facts['outputs']}", file=sys.stderr)
    print(f"peak RSS of the pipeline's steps {steps_peak / 2**30:.2f} GiB; with the diagnostics after them "
          f"{peak.peak / 2**30:.2f} GiB (ru_maxrss {maxrss / 2**30:.2f} GiB); cube in memory would be "
          f"{cube_bytes / 2**30:.1f} GiB float32 (bands on disk uncompressed {band_bytes / 2**30:.1f} GiB)", file=sys.stderr)
    if facts.get("tiles"):
        print(f"tiled run: {facts['tiles']} tiles of about {args.tile_parcels[0]:,} parcels; phases (wall s): "
              + ", ".join(f"{k} {v:.1f}" for k, v in facts["tile_phases_s"].items()), file=sys.stderr)
    cpu = sum(facts["cpu"].values())
    fig = {"parcels": facts["parcels"], "monitorable": facts["monitorable"], "dates": args.dates, "wall_s": total,
           "cpu_s": cpu, "steps_wall": times, "steps_cpu": facts["cpu"], "peak_rss": steps_peak,
           "peak_rss_with_diagnostics": peak.peak, "peak_by_step": facts["peak_by_step"], "maxrss": maxrss,
           "cube_bytes": cube_bytes, "result_table_bytes": facts["result_table_bytes"], "lights": facts["lights"],
           "load": [load_before, load_after], "out_dir": str(out_dir), "tile_parcels": args.tile_parcels[0],
           "tiles": facts.get("tiles", 0), "tile_phases_s": facts.get("tile_phases_s", {})}
    steps = ", ".join(f"{k} {v:.1f}/{facts['cpu'][k]:.1f}" for k, v in times.items())
    print(f"{machine()}; 1-min load average {load_before:.1f} before / {load_after:.1f} after the pipeline; "
          f"outputs in {out_dir}", file=sys.stderr)
    print(f"P4 {facts['parcels']:,} parcels ({facts['monitorable']:,} monitorable) × {args.dates} dates: "
          f"end to end {total:.0f} s wall (goal {args.goal:.0f} s, ratio {total / args.goal:.2f}), {cpu:.0f} s CPU "
          f"(CPU/2 cores / goal {cpu / 2 / args.goal:.2f}); steps wall/CPU s: {steps}; "
          f"peak RSS {steps_peak / 2**30:.2f} GiB = {steps_peak / cube_bytes:.3f} of the {cube_bytes / 2**30:.1f} GiB cube",
          file=sys.stderr)
    if ee:
        e = compare_exactextract(data_dir, out_dir, args.ee_window)
        print(f"zonal on a {e['window_px']}² window, {e['parcels']:,} parcels × {e['dates']} dates: eolab "
              f"{e['eolab_s']:.2f} s ({e['eolab_cpu_s']:.2f} s CPU), exactextract {e['exactextract_s']:.2f} s "
              f"({e['exactextract_cpu_s']:.2f} s CPU); |Δmean| max {e['max_abs_diff']:.4f}, "
              f"p99 {e['p99_abs_diff']:.4f}, median {e['median_abs_diff']:.5f}, max on cloud-free parcel-dates "
              f"{e['max_abs_diff_clear']:.4f}; NaN in one only {e['nan_mismatch']}", file=sys.stderr)
        fig["exactextract"] = e
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "eolab-bench-p4"))
    ap.add_argument("--parcels", type=int, nargs="+", default=[100_000],
                    help="sizes; more than one: each a multiple of the first (its scene copied as tiles), "
                         "each run in a process of its own, then compared")
    ap.add_argument("--dates", type=int, default=36)
    ap.add_argument("--width", type=int, default=3500, help="scene width in 10 m pixels")
    ap.add_argument("--ee-window", type=int, default=1024, help="exactextract window (pixels a side)")
    ap.add_argument("--no-ee", action="store_true", help="skip the comparison with exactextract")
    ap.add_argument("--goal", type=float, default=300.0)
    ap.add_argument("--compare-only", action="store_true", help="only zonal statistics vs exactextract")
    ap.add_argument("--tile-parcels", type=int, nargs="+", default=[25_000],
                    help="cap.run_checks_tiled with tiles of about this many parcels; 0: the template's one pass "
                         "(parcel_series of all parcels, then cap.run_checks); several: each one measured")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one prepared scene, print its figures as JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_size(Path(args.one), args, ee=not args.no_ee)))
        return
    data_dir = Path(args.data)
    base = args.parcels[0]
    t0 = time.perf_counter()
    info = synthesise(data_dir, base, args.dates, args.width)
    ny, nx = info["shape"]
    print(f"data: {base:,} parcels, {args.dates} dates, {ny} × {nx} px "
          f"({time.perf_counter() - t0:.0f} s to synthesise or reuse) in {data_dir}", file=sys.stderr)
    if args.compare_only:
        print(json.dumps(compare_exactextract(data_dir, Path(tempfile.mkdtemp(prefix="eolab-p4-out-")), args.ee_window)))
        return
    scenes = [data_dir]
    for n in args.parcels[1:]:
        if n % base:
            raise SystemExit(f"--parcels: {n} is not a multiple of {base}")
        t0 = time.perf_counter()
        scenes.append(Path(f"{data_dir}-x{n // base}"))
        replicate(data_dir, scenes[-1], n // base)
        print(f"data: {n:,} parcels as {n // base} tiles of the first scene ({time.perf_counter() - t0:.0f} s to copy "
              f"or reuse) in {scenes[-1]}", file=sys.stderr)
    if len(scenes) == 1:
        fig = one_size(data_dir, args, ee=not args.no_ee)
        print(json.dumps({k: v for k, v in fig.items() if k != "out_dir"}))
        return
    import subprocess

    def per(f, key):  # seconds per monitorable parcel-date
        return f[key] / (f["monitorable"] * f["dates"])

    every = []
    for mode in args.tile_parcels:
        figs = []
        for k, scene in enumerate(scenes):
            print(f"--- {args.parcels[k]:,} parcels, " + (f"tiles of {mode:,} parcels" if mode else "one pass"),
                  file=sys.stderr)
            cmd = [sys.executable, __file__, "--one", str(scene), "--dates", str(args.dates), "--ee-window",
                   str(args.ee_window), "--goal", str(args.goal), "--tile-parcels", str(mode)] + (
                       ["--no-ee"] if args.no_ee or k else [])
            figs.append(json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout))
        every += figs
        a, b = figs[0], figs[-1]
        print(f"P4 scaling ({f'tiles of {mode:,} parcels' if mode else 'one pass'}) {a['parcels']:,} → "
              f"{b['parcels']:,} parcels × {args.dates} dates: CPU per parcel-date "
              f"{per(a, 'cpu_s') * 1e6:.1f} → {per(b, 'cpu_s') * 1e6:.1f} µs (ratio {per(b, 'cpu_s') / per(a, 'cpu_s'):.3f}; "
              f"goal ≤ 1.1), wall per parcel-date {per(a, 'wall_s') * 1e6:.1f} → {per(b, 'wall_s') * 1e6:.1f} µs "
              f"(ratio {per(b, 'wall_s') / per(a, 'wall_s'):.3f}); end to end {a['wall_s']:.0f} → {b['wall_s']:.0f} s wall, "
              f"{a['cpu_s']:.0f} → {b['cpu_s']:.0f} s CPU; peak RSS {a['peak_rss'] / 2**30:.2f} → {b['peak_rss'] / 2**30:.2f} GiB "
              f"(+{(b['peak_rss'] - a['peak_rss']) / 2**20:.0f} MiB; result table {a['result_table_bytes'] / 2**20:.0f} → "
              f"{b['result_table_bytes'] / 2**20:.0f} MiB in memory: +"
              f"{(b['result_table_bytes'] - a['result_table_bytes']) / 2**20:.0f} MiB); load average {a['load']} / {b['load']}",
              file=sys.stderr)
    print(json.dumps(every))


if __name__ == "__main__":
    main()
