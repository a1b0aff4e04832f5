"""Agricultural parcels: farm blocks, field subdivision, crops, management calendar, claims."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import shapely
import shapely.affinity
from shapely.geometry import LineString, Polygon

from eolab.demo._common import YEAR

#: The demo's crop-code list (shipped with the crop taxonomy, mapped to HCAT3 like every national
#: list): claims declare a code of it, and the CAP rules read grassland and crop groups from HCAT3.
CODE_LIST = "eolab_demo"
_SHARES = {"winter_wheat": 0.22, "winter_barley": 0.10, "rapeseed": 0.09, "maize": 0.19, "sunflower": 0.14,
           "soybean": 0.08, "grassland": 0.18}


def _code_list() -> dict[str, int]:
    import csv
    from importlib.resources import files

    with files("eolab.analysis").joinpath("taxonomy", "code_lists", f"{CODE_LIST}.csv").open(encoding="utf-8") as f:
        return {row["name"]: int(row["code"]) for row in csv.DictReader(f)}


#: Crop classes: name -> (numeric crop code of the demo's code list, share of parcels).
CROPS: dict[str, tuple[int, float]] = {name: (code, _SHARES[name]) for name, code in _code_list().items()}
CROP_NAMES = list(CROPS)
WINTER = {"winter_wheat", "winter_barley", "rapeseed"}
SPRING = {"maize", "sunflower", "soybean"}

#: Plausible false declarations (a similar crop, never a random one).
SIMILAR: dict[str, list[str]] = {
    "winter_wheat": ["winter_barley"],
    "winter_barley": ["winter_wheat"],
    "rapeseed": ["winter_wheat", "winter_barley"],
    "maize": ["sunflower", "soybean"],
    "sunflower": ["maize", "soybean"],
    "soybean": ["maize", "sunflower"],
    "grassland": ["winter_wheat"],  # unused: grassland declarations are kept true
}
FALSE_SHARE = 0.08


@dataclass
class Blocks:
    parcels: list  # candidate parcel polygons
    edges: list  # block border lines (farm tracks, some with tree rows)


def _split(x0, x1, y0, y1, max_area):
    if (x1 - x0) * (y1 - y0) <= max_area:
        return [(x0, x1, y0, y1)]
    if x1 - x0 >= y1 - y0:
        m = 0.5 * (x0 + x1)
        return _split(x0, m, y0, y1, max_area) + _split(m, x1, y0, y1, max_area)
    m = 0.5 * (y0 + y1)
    return _split(x0, x1, y0, m, max_area) + _split(x0, x1, m, y1, max_area)


def _cuts(g, lo, hi, draw):
    out, x = [lo], lo
    while True:
        x += draw()
        if x >= hi - 10:
            break
        out.append(x)
    out.append(hi)
    return out


def make_blocks(g: np.random.Generator, L: float, x0: float, y0: float, block: float = 720.0) -> Blocks:
    """Jittered quadrilateral farm blocks over the scene, each subdivided into fields."""
    nb = int(np.ceil(L / block)) + 2
    jit = g.uniform(-0.16, 0.16, (nb + 1, nb + 1, 2)) * block
    jj, ii = np.meshgrid(np.arange(nb + 1), np.arange(nb + 1))
    vx = x0 + (jj - 1) * block + jit[..., 0]
    vy = y0 - (ii - 1) * block + jit[..., 1]
    V = np.stack([vx, vy], -1)
    parcels, edges = [], []
    for i in range(nb):
        for j in range(nb):
            edges.append(LineString([V[i, j], V[i, j + 1]]))
            edges.append(LineString([V[i, j], V[i + 1, j]]))
            quad = Polygon([V[i, j], V[i, j + 1], V[i + 1, j + 1], V[i + 1, j]]).buffer(-7.0, join_style="mitre")
            if quad.is_empty:
                continue
            a0 = np.degrees(np.arctan2(*(V[i, j + 1] - V[i, j])[::-1]))
            ang = a0 + (0.0 if g.random() < 0.55 else g.uniform(-35, 35)) + (90.0 if g.random() < 0.5 else 0.0)
            c = quad.centroid
            loc = shapely.affinity.rotate(quad, -ang, origin=c)
            bx0, by0, bx1, by1 = loc.bounds
            kind = g.choice(["strips", "large", "grid"], p=[0.35, 0.30, 0.35])
            if kind == "strips":
                xs = _cuts(g, bx0, bx1, lambda: float(np.clip(g.lognormal(np.log(70), 0.6), 18, 260)))
                ys = [by0, by1]
            elif kind == "large":
                xs = _cuts(g, bx0, bx1, lambda: float(g.uniform(150, 650)))
                ys = [by0, by1] if g.random() < 0.6 else _cuts(g, by0, by1, lambda: float(g.uniform(200, 600)))
            else:
                xs = _cuts(g, bx0, bx1, lambda: float(g.uniform(80, 300)))
                ys = _cuts(g, by0, by1, lambda: float(g.uniform(120, 450)))
            for a, b in zip(xs[:-1], xs[1:]):
                for cc, d in zip(ys[:-1], ys[1:]):
                    for r in _split(a, b, cc, d, 36e4):
                        rect = shapely.box(r[0], r[2], r[1], r[3])
                        if g.random() < 0.1:  # irregular: cut a corner (L-shape / notch)
                            w, h = r[1] - r[0], r[3] - r[2]
                            cx = r[0] if g.random() < 0.5 else r[1]
                            cy = r[2] if g.random() < 0.5 else r[3]
                            rect = rect.difference(shapely.box(cx - 0.4 * w, cy - 0.45 * h, cx + 0.4 * w, cy + 0.45 * h))
                        p = shapely.affinity.rotate(rect, ang, origin=c).intersection(quad)
                        p = p.buffer(-g.uniform(2.5, 5.0), join_style="mitre")
                        if p.geom_type == "MultiPolygon":
                            p = max(p.geoms, key=lambda q: q.area)
                        if p.geom_type == "Polygon" and 0.3e4 <= p.area <= 40e4:
                            parcels.append(shapely.set_precision(p, 0.01))
    return Blocks(parcels, edges)


@dataclass
class Parcels:
    """Per-parcel truth and management parameters (arrays of length N, index = parcel id - 1)."""

    geoms: list
    ids: np.ndarray  # "HU-000123"
    crop: np.ndarray  # int index into CROP_NAMES
    crop_names: np.ndarray
    declared: np.ndarray
    false_decl: np.ndarray
    farmer: np.ndarray
    soil_b: np.ndarray  # soil brightness 0..1
    p: dict  # phenology parameters (DOY floats), see _phenology
    failed: np.ndarray
    resown: np.ndarray
    sow_date: list  # ISO date strings
    mow: np.ndarray  # (N, 3) DOY of mowings, nan if none
    n_mow: np.ndarray

    def __len__(self) -> int:
        return len(self.geoms)

    def lookup(self, arr: np.ndarray, fill=0) -> np.ndarray:
        """`arr` with a leading `fill`, so that it can be indexed by parcel id (0 = none)."""
        return np.concatenate([np.array([fill], dtype=arr.dtype), arr])


def _doy_to_date(doy: float) -> dt.date:
    return dt.date(YEAR, 1, 1) + dt.timedelta(days=int(round(doy)) - 1)


def assign(g: np.random.Generator, geoms: list, inlet) -> Parcels:
    n = len(geoms)
    cent = np.array([[p.centroid.x, p.centroid.y] for p in geoms]) if n else np.zeros((0, 2))
    # grassland is more common near the river inflow / floodplain
    d = np.hypot(cent[:, 0] - inlet.x, cent[:, 1] - inlet.y) if n else np.zeros(0)
    base = np.array([CROPS[c][1] for c in CROP_NAMES])
    probs = np.repeat(base[None], n, 0)
    gi = CROP_NAMES.index("grassland")
    probs[:, gi] *= np.where(d < 3000, 2.0, 1.0)
    probs /= probs.sum(1, keepdims=True)
    crop = np.array([g.choice(len(CROP_NAMES), p=pr) for pr in probs], dtype=np.int16)
    # make sure every class is present even in small scenes
    for k in range(len(CROP_NAMES)):
        if n >= 3 * len(CROP_NAMES) and not (crop == k).any():
            crop[g.integers(n)] = k
    names = np.array([CROP_NAMES[c] for c in crop])

    nrm = lambda m, s: g.normal(m, s, n)  # noqa: E731
    uni = lambda a, b: g.uniform(a, b, n)  # noqa: E731
    p = {k: np.zeros(n) for k in ["g0", "t_up", "k_up", "gmax", "t_down", "k_down", "harvest", "till",
                                  "sow", "resow", "t_flower", "f_amp"]}
    sow = np.zeros(n)
    table = {
        # g0, t_up, k_up, gmax, t_down, k_down, harvest-offset-from-t_down
        "winter_wheat": (uni(0.22, 0.38), nrm(88, 6), 7.0, nrm(0.9, 0.04), nrm(166, 5), 5.0, nrm(25, 4)),
        "winter_barley": (uni(0.28, 0.42), nrm(83, 6), 7.0, nrm(0.88, 0.04), nrm(153, 4), 5.0, nrm(23, 3)),
        "rapeseed": (uni(0.35, 0.5), nrm(80, 5), 6.0, nrm(0.9, 0.03), nrm(160, 4), 5.0, nrm(25, 3)),
        "grassland": (uni(0.3, 0.45), nrm(92, 6), 9.0, nrm(0.82, 0.05), nrm(292, 8), 12.0, nrm(200, 1)),
    }
    spring = {  # sow, emergence-to-half-cover, k_up, gmax, t_down, k_down, harvest
        "maize": (nrm(112, 8), nrm(42, 4), 7.0, nrm(0.9, 0.04), nrm(245, 7), 7.0, nrm(282, 9)),
        "sunflower": (nrm(104, 7), nrm(40, 4), 6.0, nrm(0.84, 0.05), nrm(213, 6), 6.0, nrm(250, 7)),
        "soybean": (nrm(124, 7), nrm(46, 4), 7.0, nrm(0.87, 0.04), nrm(250, 6), 6.0, nrm(272, 7)),
    }
    autumn_sow = nrm(282, 10) - 365  # DOY of the previous year, as a negative day
    for name, (g0, tu, ku, gm, td, kd, hv) in table.items():
        m = names == name
        p["g0"][m], p["t_up"][m], p["k_up"][m] = g0[m], tu[m], ku
        p["gmax"][m], p["t_down"][m], p["k_down"][m] = gm[m], td[m], kd
        p["harvest"][m] = (td + hv)[m] if name != "grassland" else 400
        sow[m] = autumn_sow[m] if name != "grassland" else np.nan
    for name, (sw, em, ku, gm, td, kd, hv) in spring.items():
        m = names == name
        sow[m] = sw[m]
        p["t_up"][m], p["k_up"][m], p["gmax"][m] = (sw + em)[m], ku, gm[m]
        p["t_down"][m], p["k_down"][m], p["harvest"][m] = td[m], kd, hv[m]
    p["till"] = p["harvest"] + uni(12, 55)
    m = names == "rapeseed"
    p["t_flower"][m], p["f_amp"][m] = nrm(118, 4)[m], uni(0.45, 0.65)[m]
    m = names == "sunflower"
    p["t_flower"][m], p["f_amp"][m] = nrm(193, 5)[m], uni(0.15, 0.3)[m]
    p["gmax"] = np.clip(p["gmax"], 0.6, 0.97)

    arable = names != "grassland"
    failed = arable & (g.random(n) < 0.025)
    p["gmax"][failed] *= 0.35
    resown = np.isin(names, list(SPRING)) & ~failed & (g.random(n) < 0.04)
    p["resow"][:] = np.nan
    p["resow"][resown] = sow[resown] + g.uniform(28, 40, resown.sum())
    shift = np.where(resown, p["resow"] - sow, 0.0)
    p["t_up"] += shift
    p["t_down"] += np.where(resown, 0.4 * shift, 0.0)
    p["harvest"] += np.where(resown, 0.4 * shift, 0.0)
    p["till"] += np.where(resown, 0.4 * shift, 0.0)
    p["sow"] = sow

    # grassland mowing: 0-3 cuts, May-September, >= 30 days apart
    n_mow = np.where(names == "grassland", g.choice(4, size=n, p=[0.15, 0.3, 0.35, 0.2]), 0)
    mow = np.full((n, 3), np.nan)
    first = g.uniform(128, 150, n)
    gaps = g.uniform(30, 45, (n, 2))
    for k in range(3):
        t = first + (gaps[:, :k].sum(1) if k else 0)
        mow[:, k] = np.where(n_mow > k, np.round(t), np.nan)
    # make sure each mowing count occurs (tests rely on it) when there are enough grassland parcels
    gl = np.flatnonzero(names == "grassland")
    if len(gl) >= 8:
        for k in range(4):
            if not (n_mow[gl] == k).any():
                j = gl[k]
                n_mow[j] = k
                mow[j] = [np.round(first[j] + (gaps[j, :i].sum() if i else 0)) if i < k else np.nan for i in range(3)]

    # false declarations: FALSE_SHARE of all parcels, among arable ones, always a similar crop
    n_false = int(round(FALSE_SHARE * n))
    cand = np.flatnonzero(arable)
    pick = g.choice(cand, size=min(n_false, len(cand)), replace=False) if n else np.array([], int)
    false_decl = np.zeros(n, bool)
    false_decl[pick] = True
    declared = names.copy()
    for j in pick:
        declared[j] = g.choice(SIMILAR[names[j]])

    # farmers: neighbouring parcels (sorted along a space-filling-ish key) share a farmer
    order = np.lexsort((np.round(cent[:, 0] / 1500), np.round(cent[:, 1] / 1500))) if n else np.array([], int)
    farmer = np.empty(n, dtype=object)
    k, fid = 0, 0
    while k < n:
        run = int(g.integers(1, 9))
        farmer[order[k:k + run]] = f"F-{fid + 1:05d}"
        fid += 1
        k += run

    sow_date = ["" if np.isnan(s) else _doy_to_date(s + (365 if s < 0 else 0)).replace(
        year=YEAR - 1 if s < 0 else YEAR).isoformat() for s in np.where(resown, p["resow"], sow)]
    return Parcels(
        geoms=list(geoms), ids=np.array([f"HU-{i + 1:06d}" for i in range(n)]), crop=crop, crop_names=names,
        declared=declared, false_decl=false_decl, farmer=farmer.astype(str), soil_b=g.beta(2.0, 2.2, n),
        p=p, failed=failed, resown=resown, sow_date=sow_date, mow=mow, n_mow=n_mow.astype(np.int16),
    )


def mowing_dates(parcels: Parcels, j: int) -> list[str]:
    return [_doy_to_date(t).isoformat() for t in parcels.mow[j] if not np.isnan(t)]
