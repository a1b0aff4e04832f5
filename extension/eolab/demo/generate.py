"""Orchestration: build the scene, render every date (2 worker processes), write COGs, STAC, claims,
truth and, last, ``manifest.json`` (its presence means the data set is complete)."""

from __future__ import annotations

import csv
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from eolab.demo import _clouds, _dem, _landsat, _parcels, _phenology, _sar, _spectra, _stac, _winter
from eolab.demo._cog import open_stack, write_cog, write_gpkg
from eolab.demo._common import (
    BI,
    CRS,
    DN_OFFSET,
    DN_SCALE,
    S1_NODATA,
    SIZES,
    TILE,
    block_mean,
    make_grid,
    rng,
)
from eolab.demo._dates import WINTER_DATES, s1_dates, s2_dates, sun_angles, water_level
from eolab.demo._scene import LANDCOVER, build_scene
from eolab.errors import EolabError

__all__ = ["generate", "SIZES"]

PARTS = ("s2", "s1", "landsat", "dem", "stac", "claims", "truth")
B10 = ["B02", "B03", "B04", "B08"]
B20 = ["B05", "B8A", "B11", "B12"]
WORKERS = 2

_STATE: dict = {}


def generate(out, size: str = "default", seed: int = 20260301, progress: bool = True) -> dict:
    """Write the demo data set to `out`; return the manifest (also written as out/manifest.json)."""
    if size not in SIZES:
        raise EolabError(f"unknown demo size {size!r}", hint="choose one of: " + ", ".join(SIZES))
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=out))
    except OSError as e:
        raise EolabError(f"cannot write the demo data to {out}: {e.strerror or e}",
                         hint="choose a writable directory with --out") from e
    try:
        manifest = _generate_into(tmp, size, int(seed), progress)
        _publish(tmp, out, manifest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _publish(tmp: Path, out: Path, manifest: dict) -> None:
    (out / "manifest.json").unlink(missing_ok=True)
    for part in PARTS:
        if (out / part).exists():
            shutil.rmtree(out / part)
        os.replace(tmp / part, out / part)
    mtmp = tmp / "manifest.json"
    mtmp.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    os.replace(mtmp, out / "manifest.json")
    shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# workers


def _init(state: dict) -> None:
    _STATE.clear()
    _STATE.update(state)


def _quantize(refl: np.ndarray) -> np.ndarray:
    return np.clip(np.rint((refl - DN_OFFSET) / DN_SCALE), 1, 65535).astype(np.uint16)


def render_s2(scene, acq, target: float, seed: int):
    """Observed 10 m reflectance (8 bands), DNs and the cloud truth for one S2 date."""
    dn10, dn20, cl, _ = _render(scene, acq, target, seed)
    return dn10, dn20, cl


def _render(scene, acq, target: float, seed: int):
    """render_s2's DNs and clouds, and the observed 10 m reflectance they were quantised from."""
    P = scene.parcels
    doy = acq.doy
    cov = _phenology.cover(P, doy)
    refl = _spectra.surface(scene, cov, doy, water_level(doy), rng(seed, "s2-surface", acq.index))
    el, az = sun_angles(acq.datetime)
    surface = _winter.apply(refl, scene, acq, el, az, seed)
    cl = _clouds.make_clouds(seed, acq.index, scene.grid.n, target, el, az)
    cl.surface = surface
    _clouds.apply(refl, cl)
    g = rng(seed, "s2-radiometry", acq.index)
    gain = g.normal(1.0, 0.012, 8)
    off = g.normal(0.0, 0.002, 8)
    for b in range(8):
        noise = g.standard_normal(refl.shape[1:], dtype=np.float32)
        refl[b] = refl[b] * np.float32(gain[b]) + np.float32(off[b]) + noise * (0.0015 + 0.006 * refl[b])
    dn10 = _quantize(refl[[BI[b] for b in B10]])
    dn20 = _quantize(block_mean(refl[[BI[b] for b in B20]]))
    return dn10, dn20, cl, refl


def _s2_task(i: int):
    st = _STATE
    scene, acq, seed, root = st["scene"], st["s2"][i], st["seed"], st["root"]
    dn10, dn20, cl, refl = _render(scene, acq, st["plan"][i], seed)
    obs = dn10.astype(np.float32) * np.float32(DN_SCALE) + np.float32(DN_OFFSET)
    scl = _clouds.scl(seed, acq.index, obs, cl)
    grid = scene.grid
    covers = []
    for r, c, gid in grid.tiles():
        d = root / "s2" / _stac.s2_item_id(acq, gid)
        d.mkdir(parents=True, exist_ok=True)
        sl = np.s_[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE]
        h = TILE // 2
        sl2 = np.s_[r * h:(r + 1) * h, c * h:(c + 1) * h]
        for k, b in enumerate(B10):
            write_cog(d / f"{b}.tif", dn10[k][sl], grid.tile_transform(r, c, 10.0), 0, 256)
        for k, b in enumerate(B20):
            write_cog(d / f"{b}.tif", dn20[k][sl2], grid.tile_transform(r, c, 20.0), 0, 128)
        write_cog(d / "SCL.tif", scl[sl2], grid.tile_transform(r, c, 20.0), 0, 128)
        code = cl.code[sl]
        covers.append(100.0 * float(np.mean((code == _clouds.OPAQUE) | (code == _clouds.THIN))))
    # the same date as Landsat C2 L2 would publish it (one 30 m scene, QA_PIXEL from this SCL)
    m = _landsat.size(grid)
    iid = _landsat.item_id(acq)
    d = root / "landsat" / iid
    d.mkdir(parents=True, exist_ok=True)
    dn = _landsat.reflectance_dn({b: refl[BI[b]] for _, b, _ in _landsat.BANDS.values()}, m)
    for k, (oli, _, _) in enumerate(_landsat.BANDS.values()):
        write_cog(d / f"{iid}_SR_{oli}.TIF", dn[k], _landsat.transform(grid), 0, 256)
    qa = _landsat.qa_pixel(scl, m)
    write_cog(d / f"{iid}_QA_PIXEL.TIF", qa, _landsat.transform(grid), 1, 256)
    landsat_cover = 100.0 * float(np.mean((qa & (_landsat.CLOUD | _landsat.DILATED | _landsat.CIRRUS)) > 0))
    return i, cl.code, cl.surface, covers, landsat_cover


def _s1_task(i: int):
    st = _STATE
    scene, acq, seed, root = st["scene"], st["s1"][i], st["seed"], st["root"]
    doy = acq.doy
    cov = _phenology.cover(scene.parcels, doy)
    bs = _sar.backscatter(scene, cov, water_level(doy), doy, seed, acq.index)
    grid = scene.grid
    h = TILE // 2
    for r, c, gid in grid.tiles():
        d = root / "s1" / _stac.s1_item_id(acq, gid)
        d.mkdir(parents=True, exist_ok=True)
        sl2 = np.s_[r * h:(r + 1) * h, c * h:(c + 1) * h]
        for k, pol in enumerate(("vv", "vh")):
            write_cog(d / f"{pol}.tif", bs[k][sl2], grid.tile_transform(r, c, 20.0), S1_NODATA, 128)
    return i


# --------------------------------------------------------------------------------------------
# main process


def _parcel_frames(scene):
    import geopandas as gpd

    P = scene.parcels
    areas = np.array([p.area for p in P.geoms]) / 1e4
    g = rng(scene.seed, "claims-area")
    declared_area = np.round(areas * (1 + g.normal(0, 0.02, len(P))), 2)
    claims = gpd.GeoDataFrame({
        "parcel_id": P.ids, "farmer_id": P.farmer,
        "crop_code": np.array([_parcels.CROPS[c][0] for c in P.declared], dtype=np.int32),
        "crop_name": P.declared, "area_declared_ha": declared_area,
    }, geometry=P.geoms, crs=CRS)
    truth = gpd.GeoDataFrame({
        "parcel_id": P.ids, "crop": P.crop_names, "declared_crop": P.declared,
        "declaration_false": P.false_decl, "sowing_date": P.sow_date, "failed": P.failed,
        "resown": P.resown, "n_mowings": P.n_mow.astype(np.int32),
        "mowing_dates": [",".join(_parcels.mowing_dates(P, j)) for j in range(len(P))],
        "area_ha": np.round(areas, 4),
    }, geometry=P.geoms, crs=CRS)
    return claims, truth


def _generate_into(root: Path, size: str, seed: int, progress: bool) -> dict:
    from tqdm import tqdm

    from eolab import __version__

    grid = make_grid(size)
    s2 = s2_dates(seed)
    s1 = s1_dates(seed)
    plan = _clouds.cloud_plan(seed, len(s2))
    for p in PARTS:
        (root / p).mkdir()
    (root / "stac" / "items").mkdir()

    scene = build_scene(grid, seed)
    n = grid.n
    tr = grid.transform
    with open_stack(root / "truth" / "landcover.tif", n, 1, tr, nodata=0) as dst:
        dst.write(scene.landcover, 1)
        dst.update_tags(1, **{f"class_{k}": v for k, v in LANDCOVER.items()})
    dem_items = []
    for part, tile, tile_transform in _dem.tiles(*_dem.elevation(scene, grid, seed)):
        write_cog(root / "dem" / f"{_dem.item_id(grid, part)}.tif", tile, tile_transform, None, 256, crs="EPSG:4326")
        dem_items.append(_dem.item(grid, part, tile_transform, tile.shape))
    claims, truth = _parcel_frames(scene)
    write_gpkg(claims, root / "claims" / "claims.gpkg", "claims")
    write_gpkg(truth, root / "truth" / "parcels.gpkg", "parcels")

    state = {"scene": scene, "s2": s2, "s1": s1, "seed": seed, "root": root, "plan": plan}
    bar = tqdm(total=len(s2) + len(s1), desc=f"demo-data ({size})", unit="date", disable=not progress,
               file=sys.stderr)
    water_rows = []
    s2_items, s1_items, landsat_items = [], [], []
    # fork is cheapest (the scene is inherited), but only safe without other threads in this process
    ctx = mp.get_context("fork" if threading.active_count() == 1 and sys.platform == "linux" else "spawn")
    try:
        with ctx.Pool(WORKERS, initializer=_init, initargs=(state,)) as pool, \
                open_stack(root / "truth" / "clouds.tif", n, len(s2), tr) as clouds_ds, \
                open_stack(root / "truth" / "water_s2.tif", n, len(s2), tr) as ws2, \
                open_stack(root / "truth" / "surface_s2.tif", n, len(s2), tr) as surf_ds, \
                open_stack(root / "truth" / "water_s1.tif", n, len(s1), tr) as ws1:
            s1_async = pool.imap(_s1_task, range(len(s1)))
            for i, code, surface, covers, landsat_cover in pool.imap(_s2_task, range(len(s2))):
                acq = s2[i]
                clouds_ds.write(code, i + 1)
                clouds_ds.set_band_description(i + 1, acq.iso)
                surf_ds.write(surface, i + 1)
                surf_ds.set_band_description(i + 1, acq.iso)
                wm = scene.water_mask(water_level(acq.doy))
                ws2.write(wm.astype(np.uint8), i + 1)
                ws2.set_band_description(i + 1, acq.iso)
                water_rows.append((acq.iso, "sentinel-2", round(float(wm.sum()) * 0.01, 2)))
                sun = sun_angles(acq.datetime)
                for (r, c, gid), cc in zip(grid.tiles(), covers):
                    s2_items.append(_stac.s2_item(acq, grid, r, c, gid, cc, sun))
                landsat_items.append(_landsat.item(acq, grid, landsat_cover, sun))
                bar.update(1)
            for i in s1_async:
                acq = s1[i]
                wm = scene.water_mask(water_level(acq.doy))
                ws1.write(wm.astype(np.uint8), i + 1)
                ws1.set_band_description(i + 1, acq.iso)
                water_rows.append((acq.iso, "sentinel-1", round(float(wm.sum()) * 0.01, 2)))
                for r, c, gid in grid.tiles():
                    s1_items.append(_stac.s1_item(acq, grid, r, c, gid))
                bar.update(1)
    finally:
        bar.close()

    with open(root / "truth" / "water_area.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["date", "sensor", "area_ha"])
        w.writerows(sorted(water_rows))
    collections = _stac.collections(grid, s2, s1) + [_landsat.collection(grid, s2), _dem.collection(
        [min(i["bbox"][0] for i in dem_items), min(i["bbox"][1] for i in dem_items),
         max(i["bbox"][2] for i in dem_items), max(i["bbox"][3] for i in dem_items)])]
    (root / "stac" / "collections.json").write_text(json.dumps(collections, indent=1) + "\n")
    for cid, items in ((_stac.S2_ID, s2_items), (_stac.S1_ID, s1_items), (_landsat.LANDSAT_ID, landsat_items),
                       (_dem.DEM_ID, dem_items)):
        with open(root / "stac" / "items" / f"{cid}.ndjson", "w") as f:
            for it in items:
                f.write(json.dumps(it, separators=(",", ":")) + "\n")

    P = scene.parcels
    return {
        "generator": "eolab.demo",
        "version": __version__,
        "size": size,
        "seed": seed,
        "crs": CRS,
        "transform": list(tr)[:6],
        "shape": [n, n],
        "bounds": list(grid.bounds),
        "resolution": 10,
        "tile_size": TILE,
        "tiles": [gid for _, _, gid in grid.tiles()],
        "s2_dates": [a.iso for a in s2],
        "s1_dates": [a.iso for a in s1],
        "water_level_m": {a.iso: water_level(a.doy) for a in sorted(s2 + s1, key=lambda a: a.date)},
        "collections": {_stac.S2_ID: len(s2_items), _stac.S1_ID: len(s1_items), _landsat.LANDSAT_ID: len(landsat_items),
                        _dem.DEM_ID: len(dem_items)},
        "n_parcels": len(P),
        "landcover_legend": {str(k): v for k, v in LANDCOVER.items() if k},
        "cloud_truth_codes": {str(k): v for k, v in _clouds.TRUTH_CODES.items()},
        "surface_truth_codes": {str(k): v for k, v in _winter.SURFACE_CODES.items()},
        "winter_dates": [d.isoformat() for d, *_ in WINTER_DATES],
        "crop_classes": {k: {"code": _parcels.CROPS[k][0], "n_parcels": int((P.crop_names == k).sum())}
                         for k in _parcels.CROP_NAMES},
        "false_declaration_share": round(float(P.false_decl.mean()), 4),
        "scl_error_model": _clouds.SCL_ERROR_MODEL,
        "s2_scaling": {"scale": DN_SCALE, "offset": DN_OFFSET, "nodata": 0},
        "s1": {"unit": "sigma0 linear", "nodata": S1_NODATA, "resolution": 20, "enl": _sar.ENL},
        "paths": {
            "s2": "s2/{item_id}/{band}.tif", "s1": "s1/{item_id}/{pol}.tif",
            "landsat": "landsat/{item_id}/{item_id}_{SR_Bn|QA_PIXEL}.TIF",
            "dem": "dem/{item_id}.tif",
            "collections": "stac/collections.json",
            "items": {cid: f"stac/items/{cid}.ndjson"
                      for cid in (_stac.S2_ID, _stac.S1_ID, _landsat.LANDSAT_ID, _dem.DEM_ID)},
            "claims": "claims/claims.gpkg",
            "truth": {"landcover": "truth/landcover.tif", "parcels": "truth/parcels.gpkg",
                      "water_s2": "truth/water_s2.tif", "water_s1": "truth/water_s1.tif",
                      "water_area": "truth/water_area.csv", "clouds": "truth/clouds.tif",
                      "surface": "truth/surface_s2.tif"},
        },
    }
