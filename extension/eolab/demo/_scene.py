"""The static scene: bathymetry and reservoir, river, ponds, villages, roads, forests, parcels.

Everything is built once per (seed, size).  Vector objects are in EPSG:32634 metres; rasters are
on the 10 m grid, some built at 5 m first so that 10 m pixels on edges are mixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
import shapely.affinity
from affine import Affine
from rasterio import features
from shapely.geometry import LineString, Point, Polygon

from eolab.demo import _parcels
from eolab.demo._common import RES, X0, Y0, Grid, fractal_noise, rng, smooth_noise, uniformize
from eolab.demo._dates import LEVEL_MAX, LEVEL_MIN

# Land materials (background layer under / between parcels), 10 m and 5 m rasters.
MARGIN, DECIDUOUS, CONIFER, ROOF_RED, ROOF_GREY, ASPHALT, GARDEN, TREE_ROW, SHORE, WATER, TRACK = range(11)
MATERIALS = ["margin", "deciduous", "conifer", "roof_red", "roof_grey", "asphalt", "garden",
             "tree_row", "shore", "water", "track"]

# Land-cover legend of truth/landcover.tif.
LANDCOVER = {
    0: "nodata",
    1: "water",  # permanent: river, ponds, reservoir below its lowest regulated level
    2: "seasonal_water",  # reservoir bed flooded only at high level
    3: "aquatic_vegetation",  # shallow vegetated part of the reservoir (water lilies, reed)
    4: "deciduous_forest",
    5: "coniferous_forest",
    6: "urban",
    7: "road",
    8: "tree_row",
    9: "cropland",
    10: "grassland",
    11: "field_margin",  # margins, headlands, tracks, other herbaceous land
}
LC = {v: k for k, v in LANDCOVER.items()}


@dataclass
class Scene:
    grid: Grid
    seed: int
    elev: np.ndarray  # float32, m; reservoir water where elev < level
    grad: np.ndarray  # float32, |grad elev| in m per pixel (for mixed shore pixels)
    basin: np.ndarray  # bool, reservoir bed (dynamic water)
    wf_static: np.ndarray  # float32, fraction of river / pond water per pixel
    pid: np.ndarray  # int32, dominant parcel index (0 none)
    fp: np.ndarray  # float32, fraction of the pixel covered by that parcel
    mat: np.ndarray  # uint8, dominant land material of the rest of the pixel
    vigour: np.ndarray  # float32, within-parcel vigour multiplier
    tex: np.ndarray  # float32, static brightness texture ~1
    turb: np.ndarray  # float32, water turbidity 0..1
    aqveg: np.ndarray  # float32, max aquatic vegetation fraction (0 outside shallow zones)
    landcover: np.ndarray  # uint8, LANDCOVER codes
    parcels: _parcels.Parcels = field(repr=False)

    def water_fraction(self, level: float) -> np.ndarray:
        """Water fraction per pixel at a reservoir level (shore pixels mixed)."""
        lake = np.clip(0.5 + (level - self.elev) / (self.grad + 1e-3), 0.0, 1.0)
        lake[~self.basin] = 0.0
        return np.maximum(lake, self.wf_static).astype(np.float32)

    def water_mask(self, level: float) -> np.ndarray:
        """True water per pixel: river/pond pixels at least half water, reservoir elev < level."""
        return (self.wf_static >= 0.5) | (self.basin & (self.elev < level))


def _world(grid_n: int, px: float, py: float) -> tuple[float, float]:
    return X0 + px * RES, Y0 - py * RES


def _rasterize(shapes, n: int, res: float, fill=0, dtype="uint8", all_touched=False) -> np.ndarray:
    shapes = [(g, v) for g, v in shapes if g is not None and not g.is_empty]
    if not shapes:
        return np.full((n, n), fill, dtype=dtype)
    return features.rasterize(shapes, out_shape=(n, n), transform=Affine(res, 0, X0, 0, -res, Y0),
                              fill=fill, dtype=dtype, all_touched=all_touched)


def _meander(g, p0, p1, amp, waves, npts=200) -> LineString:
    t = np.linspace(0, 1, npts)
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    ln = np.hypot(dx, dy)
    nx, ny = -dy / ln, dx / ln
    phase = g.uniform(0, 2 * np.pi)
    off = amp * np.sin(2 * np.pi * waves * t + phase) * np.sin(np.pi * t) ** 0.5
    off += 0.3 * amp * np.sin(2 * np.pi * 2.3 * waves * t + g.uniform(0, 6))
    return LineString(np.c_[x0 + dx * t + nx * off, y0 + dy * t + ny * off])


def _blob(g, cx, cy, r, irregular=0.25, n=48) -> Polygon:
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    k = np.arange(1, 5)
    coef = g.normal(0, irregular, 4) / k
    ph = g.uniform(0, 2 * np.pi, 4)
    rr = r * (1 + np.sum(coef[:, None] * np.sin(k[:, None] * ang[None, :] + ph[:, None]), axis=0))
    return Polygon(np.c_[cx + rr * np.cos(ang), cy + rr * np.sin(ang)])


def _mode4(a: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Most frequent value of each 2x2 block (among `valid` sub-pixels) and its count (0..4)."""
    n = a.shape[0] // 2
    sub = np.stack([a[0::2, 0::2], a[0::2, 1::2], a[1::2, 0::2], a[1::2, 1::2]])
    ok = np.ones_like(sub, bool) if valid is None else np.stack(
        [valid[0::2, 0::2], valid[0::2, 1::2], valid[1::2, 0::2], valid[1::2, 1::2]])
    counts = np.zeros((4, n, n), np.int8)
    for i in range(4):
        for j in range(4):
            counts[i] += (ok[j] & (sub[j] == sub[i])).astype(np.int8)
    counts[~ok] = 0
    best = np.argmax(counts, axis=0)
    val = np.take_along_axis(sub, best[None], 0)[0]
    cnt = np.take_along_axis(counts, best[None], 0)[0]
    return val, cnt


def build_scene(grid: Grid, seed: int) -> Scene:
    n = grid.n
    L = n * RES
    g = rng(seed, "scene")
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)

    # --- reservoir bathymetry: noisy elliptic basin, ragged shore, islands -----------------
    cx, cy = 0.55 * n, 0.57 * n
    rx, ry = 0.30 * n, 0.21 * n
    th = np.deg2rad(28.0)
    u = ((xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)) / rx
    v = (-(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)) / ry
    f = np.sqrt(u * u + v * v)
    gl = rng(seed, "lake")
    f = f + 0.07 * smooth_noise(gl, (n, n), 0.15 * n) \
        + 0.09 * smooth_noise(gl, (n, n), max(6.0, 0.025 * n)) * np.clip((f - 0.45) / 0.3, 0, 1)
    elev = (84.3 + 4.6 * np.minimum(f, 2.0) ** 2).astype(np.float32)
    gy, gx = np.gradient(elev)
    grad = np.hypot(gx, gy).astype(np.float32)
    basin = elev < LEVEL_MAX + 0.35
    # keep only the main basin component (drop isolated low spots far from the lake)
    from scipy import ndimage

    lab, _ = ndimage.label(basin)
    main = lab[int(cy), int(cx)]
    basin = lab == main
    riparian = basin & (elev >= LEVEL_MAX)
    bed = basin & (elev < LEVEL_MAX)
    lake_excl = ndimage.binary_dilation(basin, iterations=5)

    # --- river: inflow from the north-east, outflow to the south -----------------------
    inlet = _world(n, cx + 0.40 * rx * np.cos(th) - 0.45 * ry * np.sin(th) * -1, cy - 0.50 * ry)
    src = _world(n, 0.82 * n, -5)
    river_in = _meander(g, src, inlet, amp=0.04 * L, waves=2.5)
    outlet = _world(n, cx - 0.05 * rx, cy + 0.55 * ry)
    river_out = _meander(g, outlet, _world(n, 0.40 * n, n + 5), amp=0.03 * L, waves=1.5)
    river = shapely.union(river_in.buffer(50.0), river_out.buffer(45.0))
    river_line = shapely.union(river_in, river_out)
    floodplain = river_line.buffer(0.022 * L + 150)
    inlet_pt = Point(inlet)

    # --- free land mask (10 m) for placing things -------------------------------------
    river10 = _rasterize([(river.buffer(60), 1)], n, RES).astype(bool)
    flood10 = _rasterize([(floodplain, 1)], n, RES).astype(bool)
    occupied = lake_excl | river10
    area_km2 = (L / 1000) ** 2

    def free_at(poly, mask) -> bool:
        minx, miny, maxx, maxy = poly.bounds
        c0, c1 = int((minx - X0) // RES), int((maxx - X0) // RES) + 1
        r0, r1 = int((Y0 - maxy) // RES), int((Y0 - miny) // RES) + 1
        if c0 < 2 or r0 < 2 or c1 > n - 2 or r1 > n - 2:
            return False
        return not mask[r0:r1, c0:c1].any()

    # --- villages ----------------------------------------------------------------------
    villages = []
    n_vil = max(2, int(round(area_km2 / 38)))
    tries = 0
    while len(villages) < n_vil and tries < 500:
        tries += 1
        r = g.uniform(280, 650)
        p = _world(n, g.uniform(0.05, 0.95) * n, g.uniform(0.05, 0.95) * n)
        poly = _blob(g, p[0], p[1], r, 0.22)
        if free_at(poly.buffer(250), occupied | flood10):
            villages.append(poly)
            occupied |= _rasterize([(poly.buffer(60), 1)], n, RES).astype(bool)

    # --- roads: connect each village to its nearest neighbours and to the scene edges ------
    roads = []
    cents = [v.centroid for v in villages]
    links = set()
    for i, c in enumerate(cents):
        near = sorted((c.distance(o), j) for j, o in enumerate(cents) if j != i)[:2]
        links |= {(min(i, j), max(i, j)) for _, j in near}
        edge = [(c.x, Y0 + 10), (c.x, Y0 - L - 10), (X0 - 10, c.y), (X0 + L + 10, c.y)][i % 4]
        roads.append(LineString([c, edge]))
        for a in g.uniform(0, np.pi, 2):  # village streets
            dx, dy = np.cos(a) * 700, np.sin(a) * 700
            roads.append(LineString([(c.x - dx, c.y - dy), (c.x + dx, c.y + dy)]).intersection(villages[i]))
    roads += [LineString([cents[i], cents[j]]) for i, j in sorted(links)]
    # roads stop at the reservoir / river (a dam road runs along part of the shore via bridges: omitted)
    wet = _mask_to_poly(lake_excl, n) if lake_excl.any() else Polygon()
    road_geom = shapely.union_all([r.buffer(4.0) for r in roads if not r.is_empty]) if roads else Polygon()
    road_geom = road_geom.difference(wet.buffer(20))

    # --- ponds ---------------------------------------------------------------------------
    ponds = []
    n_pond = max(4, int(round(area_km2 / 14)))
    tries = 0
    while len(ponds) < n_pond and tries < 2000:
        tries += 1
        area = float(np.exp(g.uniform(np.log(1.2e4), np.log(4.8e5))))  # 1.2-48 ha
        p = _world(n, g.uniform(0.04, 0.96) * n, g.uniform(0.04, 0.96) * n)
        if g.random() < 0.5:  # fish pond: rotated rectangle
            asp = g.uniform(1.2, 2.5)
            w = np.sqrt(area / asp)
            poly = shapely.affinity.rotate(shapely.box(p[0] - asp * w / 2, p[1] - w / 2,
                                                       p[0] + asp * w / 2, p[1] + w / 2), g.uniform(0, 180))
        else:
            poly = _blob(g, p[0], p[1], np.sqrt(area / np.pi), 0.18)
        if free_at(poly.buffer(120), occupied) and not poly.buffer(60).intersects(road_geom):
            ponds.append(poly)
            occupied |= _rasterize([(poly.buffer(40), 1)], n, RES).astype(bool)

    # --- forests -------------------------------------------------------------------------
    gf = rng(seed, "forest")
    fn = fractal_noise(gf, (n, n), [0.12 * n, 0.04 * n, 12], [1.0, 0.5, 0.25])
    decid = (flood10 & (smooth_noise(gf, (n, n), 25) > -0.4)) | (fn > 1.75)
    decid &= ~lake_excl
    decid |= riparian & (smooth_noise(gf, (n, n), 8) > -0.3)
    conifers = []
    n_con = max(2, int(round(area_km2 / 25)))
    tries = 0
    while len(conifers) < n_con and tries < 500:
        tries += 1
        area = g.uniform(5e4, 4e5)
        asp = g.uniform(1.0, 3.0)
        w = np.sqrt(area / asp)
        p = _world(n, g.uniform(0.05, 0.95) * n, g.uniform(0.05, 0.95) * n)
        poly = shapely.affinity.rotate(shapely.box(p[0], p[1], p[0] + asp * w, p[1] + w), g.uniform(-20, 20))
        if free_at(poly.buffer(50), occupied):
            conifers.append(poly)
            occupied |= _rasterize([(poly.buffer(15), 1)], n, RES).astype(bool)

    # --- parcels: farm blocks subdivided into fields, kept only on free farmland ---------
    vil10 = _rasterize([(v, 1) for v in villages], n, RES).astype(bool)
    excl = lake_excl | river10 | decid | occupied | vil10
    blocks = _parcels.make_blocks(g, L, X0, Y0)
    cand = blocks.parcels
    ids10 = _rasterize([(p, i + 1) for i, p in enumerate(cand)], n, RES, dtype="int32")
    bad = np.bincount(ids10[excl], minlength=len(cand) + 1)[1:] > 0
    # fields touching forest / water / villages are cut back to their free part
    comps = [shapely.geometry.shape(s).simplify(6.0).buffer(8.0) for s, val in features.shapes(
        excl.astype(np.uint8), mask=excl, transform=grid.transform) if val == 1]
    tree = shapely.STRtree(comps)
    frame = shapely.box(X0 + 15, Y0 - L + 15, X0 + L - 15, Y0 - 15)
    roads_buf = road_geom.buffer(6.0)
    kept = []
    for p, b in zip(cand, bad):
        if not frame.intersects(p):
            continue
        if b:
            hit = tree.query(p, predicate="intersects")
            if len(hit):
                box = p.bounds
                p = p.difference(shapely.union_all([shapely.clip_by_rect(comps[k], box[0] - 1, box[1] - 1,
                                                                         box[2] + 1, box[3] + 1) for k in hit]))
        p = _largest(p.intersection(frame).difference(roads_buf))
        if p is not None and 0.3e4 <= p.area <= 40e4:
            kept.append(shapely.set_precision(p, 0.01))
    parcels = _parcels.assign(rng(seed, "parcels"), kept, inlet_pt)

    # --- 5 m rasters: materials and parcel ids -------------------------------------------
    n5 = 2 * n
    up = lambda a: np.repeat(np.repeat(a, 2, 0), 2, 1)  # noqa: E731
    mat5 = np.full((n5, n5), MARGIN, np.uint8)
    edges = [(e.buffer(3.0), TRACK) for e in blocks.edges]
    gt = rng(seed, "treerows")
    edges += [(e.buffer(5.0), TREE_ROW) for e in blocks.edges if gt.random() < 0.22]
    mat5 = _burn(mat5, edges, 5.0)
    mat5[up(decid)] = DECIDUOUS
    mat5 = _burn(mat5, [(c, CONIFER) for c in conifers], 5.0)
    # villages: roofs / asphalt / gardens in ~10 m cells with some clustering
    gv = rng(seed, "village")
    uu = uniformize(0.6 * smooth_noise(gv, (n, n), 1.5) + 0.8 * gv.standard_normal((n, n), dtype=np.float32))
    vmat = np.select([uu < 0.28, uu < 0.42, uu < 0.55], [ROOF_RED, ROOF_GREY, ASPHALT], GARDEN).astype(np.uint8)
    v5 = up(vil10)
    mat5[v5] = up(vmat)[v5]
    mat5 = _burn(mat5, [(road_geom, ASPHALT)], 5.0)
    bed5 = up(bed)
    mat5[bed5] = SHORE
    water5 = _rasterize([(river, 1)] + [(p, 1) for p in ponds], n5, 5.0).astype(bool)
    mat5[water5] = WATER
    pid5 = _rasterize([(p, i + 1) for i, p in enumerate(parcels.geoms)], n5, 5.0, dtype="int32")
    pid5[water5 | bed5] = 0

    # --- 10 m mixture layers -------------------------------------------------------------
    pid, pcnt = _mode4(pid5, pid5 > 0)
    pid = np.where(pcnt > 0, pid, 0).astype(np.int32)
    fp = (pcnt / 4.0).astype(np.float32)
    wf_static = ((water5[0::2, 0::2].astype(np.int8) + water5[0::2, 1::2] + water5[1::2, 0::2]
                  + water5[1::2, 1::2]) / 4.0).astype(np.float32)
    landsub = (pid5 == 0) & (mat5 != WATER)
    mat, mcnt = _mode4(mat5, landsub)
    mat = np.where(mcnt > 0, mat, np.where(bed, SHORE, MARGIN)).astype(np.uint8)

    gp = rng(seed, "fields")
    vig = 1 + 0.07 * smooth_noise(gp, (n, n), 9) + 0.03 * smooth_noise(gp, (n, n), 2.5)
    patch = smooth_noise(gp, (n, n), 4)
    failed_px = parcels.lookup(parcels.failed, False)[pid]
    vig = np.where(failed_px, 0.6 + 0.5 * patch, vig)
    tex = 1 + 0.035 * smooth_noise(gp, (n, n), 2) + 0.02 * gp.standard_normal((n, n), dtype=np.float32)

    # water: turbid near the river inflow, clear far away; river itself turbid
    gw = rng(seed, "water")
    d_in = np.hypot((xx * RES + X0 - inlet_pt.x), (Y0 - yy * RES - inlet_pt.y))
    turb = np.exp(-d_in / (0.18 * L)) * (1 + 0.15 * smooth_noise(gw, (n, n), 30))
    riv10 = _rasterize([(river, 1)], n, RES, all_touched=True).astype(bool)
    turb = np.where(riv10, 0.9, turb)
    pond10 = _rasterize([(p, 1) for p in ponds], n, RES, all_touched=True).astype(bool)
    turb = np.where(pond10, 0.35, turb).clip(0, 1).astype(np.float32)
    aqn = smooth_noise(gw, (n, n), 15)
    shallow = bed & (elev > LEVEL_MAX - 0.8)
    aqveg = np.where(shallow, np.clip((aqn - 0.3) / 0.8, 0, 0.6), 0).astype(np.float32)

    lc = _landcover(mat, pid, fp, parcels, wf_static, basin, bed, elev, aqveg, vil10)
    return Scene(grid, seed, elev, grad, basin, wf_static, pid, fp, mat, vig.astype(np.float32),
                 tex.astype(np.float32), turb, aqveg, lc, parcels)


def _landcover(mat, pid, fp, parcels, wf_static, basin, bed, elev, aqveg, village) -> np.ndarray:
    lc = np.full(mat.shape, LC["field_margin"], np.uint8)
    lc[mat == DECIDUOUS] = LC["deciduous_forest"]
    lc[mat == CONIFER] = LC["coniferous_forest"]
    lc[mat == TREE_ROW] = LC["tree_row"]
    lc[np.isin(mat, [ROOF_RED, ROOF_GREY, GARDEN]) | (village & (mat == ASPHALT))] = LC["urban"]
    lc[(mat == ASPHALT) & ~village] = LC["road"]
    crop_lc = np.where(parcels.crop_names == "grassland", LC["grassland"], LC["cropland"]).astype(np.uint8)
    isp = (pid > 0) & (fp >= 0.5)
    lc[isp] = np.concatenate([[0], crop_lc])[pid[isp]]
    lc[bed] = LC["seasonal_water"]
    lc[bed & (aqveg > 0.05)] = LC["aquatic_vegetation"]
    lc[bed & (elev < LEVEL_MIN) & (aqveg <= 0.05)] = LC["water"]
    lc[wf_static >= 0.5] = LC["water"]
    return lc


def _burn(a: np.ndarray, shapes, res: float) -> np.ndarray:
    shapes = [(g, v) for g, v in shapes if g is not None and not g.is_empty]
    if shapes:
        features.rasterize(shapes, out=a, transform=Affine(res, 0, X0, 0, -res, Y0))
    return a


def _largest(geom):
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type == "Polygon":
        return geom
    polys = [p for p in getattr(geom, "geoms", []) if p.geom_type == "Polygon"]
    return max(polys, key=lambda p: p.area) if polys else None


def _mask_to_poly(mask: np.ndarray, n: int):
    shp = [shapely.geometry.shape(s) for s, v in features.shapes(
        mask.astype(np.uint8), mask=mask, transform=Affine(RES, 0, X0, 0, -RES, Y0)) if v == 1]
    return shapely.union_all(shp) if shp else Polygon()
