"""CAP area-monitoring checks per parcel: monitorability, crop consistency, activity, traffic light.

Following the area-monitoring practice (Henits et al. 2022; the seed slides): parcels too small or too
thin for 10 m pixels are not judged from the images; for the rest, the crop-type model's class
probabilities (cross-fitted: a parcel's probabilities come from a model that never saw its label)
are compared with the declaration, and grassland and arable activity is read from the NDVI series.

Traffic light:
- red: the images contradict the declaration — the model predicts another crop and gives the declared
  crop less than ``red_ratio`` (0.5) times the probability of the predicted one, or the crop group
  differs with confidence;
- yellow: the images cannot confirm it — not monitorable, too few clear observations, a weaker crop
  disagreement, declared grassland with no mowing detected, a failed or very weak arable crop
  (its type cannot be judged: a failed wheat looks like nothing the model learnt, so it is a case
  for a field visit, not a false declaration), declared area far from the drawn parcel;
- green: consistent.
Every light comes with its reasons (text) so an inspector sees why.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eolab.errors import EolabError


def crop_group(name: str, hcat3: str | None = None) -> str:
    """The crop group of a declared/predicted crop, read from its HCAT3 code (:mod:`taxonomy`):
    winter/spring cereals, oilseed rape, summer crops, grassland, fallow, permanent crops, not
    agricultural, other arable; 'other' when the crop has no HCAT3 code. Without ``hcat3`` the name
    is looked up in the demo's code list and among the HCAT3 names."""
    from eolab.analysis import taxonomy

    return taxonomy.crop_group(hcat3 if hcat3 else taxonomy.hcat3_of_name(name))


def _demo_groups() -> dict[str, str]:
    from eolab.analysis import taxonomy

    _, by_name = taxonomy.code_list("eolab_demo")
    return {name: taxonomy.crop_group(h) for name, h in by_name.items()}


#: crop group of the demo's crop names (derived from the demo code list through HCAT3)
CROP_GROUPS = _demo_groups()


def crop_hcat3(claims: Any) -> dict[str, str]:
    """Crop name → HCAT3 code, from the claims' ``hcat3_code`` column (what :mod:`claims` adds);
    names missing there are looked up by :func:`taxonomy.hcat3_of_name`."""
    if "hcat3_code" not in claims or "crop_name" not in claims:
        return {}
    pairs = zip(claims["crop_name"].astype(str).values, claims["hcat3_code"].astype(str).values)
    return {n: h for n, h in pairs if h and h not in ("nan", "None")}


def declared_categories(claims: Any, grassland: str = "grassland") -> np.ndarray:
    """The CAP category of each declared crop (grassland, arable, fallow, permanent crops, not
    agricultural; '' unknown), from the HCAT3 code; a crop named ``grassland`` counts as grassland."""
    from eolab.analysis import taxonomy

    names = claims["crop_name"].astype(str).values
    codes = (claims["hcat3_code"].astype(str).values if "hcat3_code" in claims
             else [taxonomy.hcat3_of_name(n) for n in names])
    cats = np.array([taxonomy.category(h) for h in codes], dtype=object)
    cats[names == grassland] = taxonomy.GRASSLAND
    return cats


def grassland_mask(claims: Any, grassland: str = "grassland") -> np.ndarray:
    """True where the declared crop is grassland by its HCAT3 category (permanent and temporary
    grass, grass and legumes harvested green): the parcels the mowing check runs on."""
    return declared_categories(claims, grassland) == "grassland"


def arable_mask(claims: Any, grassland: str = "grassland") -> np.ndarray:
    """True where the declared crop is an arable crop (or of unknown category): the parcels whose
    growth is judged (fallow, permanent crops and non-agricultural rows are not failed crops)."""
    return np.isin(declared_categories(claims, grassland), ["arable", ""])


def screen_parcels(parcels: Any, *, resolution: float = 10.0, buffer: float = -5.0, min_pixels: int = 8,
                   min_width: float | None = None) -> Any:
    """Monitorability per parcel (DataFrame aligned with ``parcels``): area_ha, width_m (2·area/perimeter,
    the mean width of a strip), inner_pixels (pixel count after the inward buffer), monitorable, reason.

    Too small: fewer than ``min_pixels`` whole pixels inside the buffered parcel. Too thin: mean width
    below ``min_width`` (default 2 pixels) — mixed pixels would dominate. Sharing a pixel's area or
    more with another claim inside the buffer (the same land declared twice, or a digitising error):
    not monitorable, the reason names the other parcel (``overlaps``, ``overlap_ha``) — the images'
    pixels go to one of the two, so the other's statistics would be wrong, and the case needs a
    look of its own.
    """
    import pandas as pd

    from eolab.analysis.claims._metric import require_metres

    require_metres(parcels, "parcel screening")
    min_width = 2 * resolution if min_width is None else min_width
    geom = parcels.geometry
    area = geom.area.values
    perim = geom.length.values
    width = np.where(perim > 0, 2 * area / np.maximum(perim, 1e-9), 0.0)
    inner_geom = geom.buffer(buffer) if buffer else geom
    inner = inner_geom.area.values
    inner_px = np.floor(np.clip(inner, 0, None) / resolution ** 2).astype(int)
    small = inner_px < min_pixels
    thin = width < min_width
    reason = np.where(small & thin, f"too small and too thin for {resolution:g} m pixels",
                      np.where(small, f"too small: < {min_pixels} inner pixels of {resolution:g} m",
                               np.where(thin, f"too thin: mean width < {min_width:g} m", ""))).astype(object)
    # measured on the parcels as the statistics see them (the inward buffer): a sliver along an edge
    # digitised twice shares nothing there
    others, shared = claim_overlaps(parcels, min_area=resolution ** 2, geometry=inner_geom)
    doubled = shared > 0
    for i in np.flatnonzero(doubled):
        said = f"overlaps claim {', '.join(others[i][:3])}{' …' if len(others[i]) > 3 else ''} by " \
               f"{shared[i] / 1e4:.2f} ha (declared twice?)"
        reason[i] = said + (f"; {reason[i]}" if reason[i] else "")
    return pd.DataFrame({"area_ha": area / 1e4, "width_m": width, "inner_pixels": inner_px,
                         "monitorable": ~(small | thin | doubled), "screen_reason": reason.astype(str),
                         "overlaps": [", ".join(o) for o in others], "overlap_ha": shared / 1e4},
                        index=parcels.index)


def claim_overlaps(parcels: Any, *, min_area: float = 100.0, geometry: Any = None) -> tuple[list[list[str]], np.ndarray]:
    """Per parcel: the ids (index) of the other parcels whose interiors it shares by ``min_area`` m² or
    more, and the area it shares in all (m²). Parcels that only touch share nothing; smaller slivers
    (less than a pixel) are left out. ``geometry``: the shapes to compare (default the parcels'; the
    screening passes them inward-buffered, as the statistics see them)."""
    import shapely

    geoms = np.asarray((parcels.geometry if geometry is None else geometry).values, dtype=object)
    n = len(geoms)
    others: list[list[str]] = [[] for _ in range(n)]
    shared = np.zeros(n)
    if n < 2:
        return others, shared
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        geoms = geoms.copy()
        geoms[invalid] = shapely.make_valid(geoms[invalid])
    a, b = shapely.STRtree(geoms).query(geoms)  # boxes that meet
    a, b = a[a < b], b[a < b]
    box = shapely.bounds(geoms)  # the boxes' own overlap bounds the shared area: most neighbours drop out here
    w = np.minimum(box[a, 2], box[b, 2]) - np.maximum(box[a, 0], box[b, 0])
    h = np.minimum(box[a, 3], box[b, 3]) - np.maximum(box[a, 1], box[b, 1])
    a, b = a[w * h >= min_area], b[w * h >= min_area]
    inside = shapely.relate_pattern(geoms[a], geoms[b], "T********")  # interiors meet: touching is not enough
    a, b = a[inside], b[inside]
    if not a.size:
        return others, shared
    areas = shapely.area(shapely.intersection(geoms[a], geoms[b]))
    ids = [str(v) for v in parcels.index]
    for i, j, area in zip(a, b, areas):
        if area >= min_area:
            others[i].append(ids[j])
            others[j].append(ids[i])
            shared[i] += area
            shared[j] += area
    return others, shared


def growth_threshold(ndvi_max: Sequence[float], *, bounds: tuple[float, float] = (0.35, 0.65)) -> float:
    """The NDVI-maximum below which an arable parcel counts as failed / very weak: Otsu's threshold of
    the seasonal NDVI maxima of the declared arable parcels (healthy crops and failed ones form two
    modes; no labels used), clipped to ``bounds``. With too few parcels: the middle of ``bounds``."""
    from eolab.analysis.water import otsu_threshold

    v = np.asarray(ndvi_max, float)
    v = v[np.isfinite(v)]
    if v.size < 20:
        return float(np.mean(bounds))
    return float(np.clip(otsu_threshold(v, value_range=(0.0, 1.0)), *bounds))


def linear_model(C: float = 0.03) -> Any:
    """Multinomial logistic regression on standardised features (median-imputed gaps): a strongly
    regularised linear model that adds up many weakly separating, correlated features (e.g. the dates
    and bands around cereal senescence) better than a forest does."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                         LogisticRegression(C=C, max_iter=3000))


#: parcels scored at a time by :func:`cross_fit_crop_probabilities`
PREDICT_ROWS = 20_000


def cross_fit_crop_probabilities(X: Any, declared: Sequence[str], *, folds: int = 5, seed: int = 0,
                                 n_estimators: int = 300, n_jobs: int = 2, linear_weight: float = 0.5,
                                 linear_C: float = 0.03, max_train: int | None = 4000,
                                 drop_pages: Any = None, rows: Any = None) -> tuple[np.ndarray, list[str]]:
    """Out-of-fold class probabilities: each parcel scored by models trained on the other folds'
    declarations only — a forest (with label cleaning) and, with ``linear_weight`` > 0, the average
    with a regularised logistic regression (:func:`linear_model`). The ensemble (weight 0.5, C 0.03)
    was chosen on four development demo scenes (seeds 777–780): F1 of the red light 0.844 → 0.872
    (mean) with the ratio rule of :func:`check_parcels`; forest or logistic regression alone 0.86 / 0.83.

    max_train: each fold's models learn from a stratified sample of at most this many of the other
    folds' parcels (None: all), so a national claim set costs minutes, not hours (training time grows
    with the sample, prediction with the parcels). rows: the rows of ``X`` to use, ``declared``
    being theirs (default: all; no copy of the others' features is made). drop_pages: called after
    each part of ``X`` is read (features mapped from a file: see :class:`eolab._memory.FileArray`)."""
    import pandas as pd
    from sklearn.model_selection import StratifiedKFold, train_test_split

    from eolab._memory import release_freed_memory
    from eolab.analysis import crops

    # the labels as codes in the classes' sorted order: the folds and samples are those the names
    # give (both sort the same way), without a fixed-width text array of a country's claims
    y, names = pd.factorize(pd.Series(np.asarray(declared, dtype=object)).astype(str), sort=True)
    classes = [str(c) for c in names]
    names = np.asarray(classes, dtype=object)
    counts = np.bincount(y, minlength=len(classes))
    folds = max(2, min(folds, int(counts.min()))) if counts.min() >= 2 else 2
    proba = np.zeros((y.size, len(classes)))
    Xv = np.asarray(X, float)
    at = np.arange(y.size) if rows is None else np.asarray(rows)
    if at.shape != (y.size,):
        raise EolabError(f"{y.size} declarations for {at.size} rows of features")
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.empty((y.size, 0)), y):
        if max_train and tr.size > max_train:
            tr = np.sort(train_test_split(tr, train_size=max_train, stratify=y[tr], random_state=seed)[0])
        x_tr = Xv[at[tr]]
        model, _ = crops.train(x_tr, names[y[tr]], n_estimators=n_estimators, seed=seed, n_jobs=n_jobs)
        lin = linear_model(linear_C).fit(x_tr, names[y[tr]]) if linear_weight > 0 else None
        del x_tr
        forest_cols = [classes.index(c) for c in model.classes_]
        # scored PREDICT_ROWS parcels at a time: every row is scored on its own, and the copies the
        # imputers and the scaler make stay that size instead of a fifth of a country's features
        for k in range(0, te.size, PREDICT_ROWS):
            part = te[k:k + PREDICT_ROWS]
            x = Xv[at[part]]
            p = np.zeros((part.size, len(classes)))
            p[:, forest_cols] = model.predict_proba(crops._impute(x))
            if lin is not None:
                q = np.zeros_like(p)
                q[:, [classes.index(c) for c in lin.classes_]] = lin.predict_proba(x)
                p = (1 - linear_weight) * p + linear_weight * q
            proba[part] = p
            if drop_pages is not None:
                drop_pages()
        del model, lin
        release_freed_memory()  # a fold's models and copies, freed, would stay resident until the end
    return proba, classes


def check_parcels(claims: Any, screen: Any, proba: np.ndarray, classes: Sequence[str], *,
                  n_observations: Sequence[int], mowing: Sequence[Sequence[dict]] | None = None,
                  bare_soil: Sequence[Sequence[dict]] | None = None, ndvi_max: Sequence[float] | None = None,
                  red_probability: float | None = None, red_ratio: float | None = 0.5, min_observations: int = 6,
                  grassland: str = "grassland", area_tolerance: float = 0.1, min_growth: float | None = 0.4,
                  checks: Sequence[str] | None = None, check_params: dict | None = None,
                  extra: dict | None = None, findings: list | None = None) -> Any:
    """The per-parcel result table: declared and predicted crop (+ groups, probabilities), events,
    ``light`` (green/yellow/red), ``reasons`` (semicolon-separated) and ``declaration_suspect`` (red
    because of the crop). Rows follow ``claims``. Groups, grassland (mowing, bare soil) and arable
    (growth) come from the crops' HCAT3 codes (the claims' ``hcat3_code``, see :mod:`taxonomy`);
    ``grassland`` names one more crop to treat as grassland.

    The light is built from the registered checks (:mod:`cap_checks`: the built-ins and any
    plug-in); ``checks`` names the ones to run (None: all), ``check_params`` overrides their
    parameters (``{name: {param: value}}``), ``extra`` is handed to plug-ins as ``evidence.extra``
    and ``findings`` (a list), when given, receives every parcel's findings.

    min_growth: arable parcels whose NDVI maximum stays below it are yellow (failed / very weak crop,
    type not judged) — e.g. :func:`growth_threshold` of the scene. Red when the predicted crop differs
    and the declared crop's probability is below ``red_ratio`` × the predicted crop's (or below
    ``red_probability``, if given). ``red_ratio`` 0.5 was chosen on four development demo scenes (seeds
    777–780; the former absolute rule ``p_declared < 0.25`` gave F1 0.851 vs 0.872 there with the same
    probabilities), never on the evaluation scene."""
    import pandas as pd

    from eolab.analysis import cap_checks

    declared = claims["crop_name"].astype(str).values
    classes = [str(c) for c in classes]
    hcat = crop_hcat3(claims)
    group = functools.cache(lambda name: crop_group(name, hcat.get(name)))  # a few crops, many parcels
    n = len(claims)
    if proba.shape != (n, len(classes)):
        raise EolabError(f"probabilities {proba.shape} do not match {n} parcels × {len(classes)} classes")
    # one string object per class (a fixed-width text array would make one per parcel when tabled)
    pred = np.asarray(classes, dtype=object)[proba.argmax(1)]
    p_pred = proba.max(1)
    at = pd.Index(classes).get_indexer(declared)  # -1: a crop the model has no class for
    p_decl = np.where(at >= 0, proba[np.arange(n), np.maximum(at, 0)], np.nan) if n else np.zeros(0)
    ev = cap_checks.Evidence(
        claims=claims, screen=screen, proba=proba, classes=classes, declared=declared, predicted=pred,
        p_predicted=p_pred, p_declared=p_decl, n_observations=n_observations, mowing=mowing, bare_soil=bare_soil,
        ndvi_max=ndvi_max, is_grassland=grassland_mask(claims, grassland), is_arable=arable_mask(claims, grassland),
        group=group, extra=dict(extra or {}))
    builtin = {"observations": {"min_observations": min_observations}, "growth": {"min_growth": min_growth},
               "crop_consistency": {"red_ratio": red_ratio, "red_probability": red_probability},
               "area": {"area_tolerance": area_tolerance}}
    for name, p in (check_params or {}).items():
        builtin[name] = {**builtin.get(name, {}), **p}
    found = cap_checks.evaluate(ev, cap_checks.parameters(builtin, checks))
    if findings is not None:
        findings[:] = found
    lights, reasons, suspect = zip(*(cap_checks.light_of(f) for f in found)) if n else ((), (), ())
    # repeated text (crop names, reasons, dates) as one string object per distinct value: a country's
    # table would otherwise hold a string per row and column
    from eolab._memory import share_strings as shared

    out = pd.DataFrame({
        "declared_crop": declared, "declared_group": [group(d) for d in declared],
        "predicted_crop": pred, "predicted_group": [group(p) for p in pred],
        "p_predicted": p_pred.round(4), "p_declared": np.round(p_decl, 4),
        "n_clear_observations": np.asarray(n_observations, int),
        "mowing_dates": shared([",".join(e["date"] for e in evs) for evs in mowing]) if mowing is not None else "",
        "bare_soil": (shared([",".join(f"{e['start']}/{e['end']}" for e in evs) for evs in bare_soil])
                      if bare_soil is not None else ""),
        "light": list(lights), "reasons": shared(list(reasons)), "declaration_suspect": list(suspect),
    }, index=claims.index)
    return out


LIGHT_COLOURS = {"green": "#2ca02c", "yellow": "#ffbf00", "red": "#d62728"}


@dataclass
class CapRun:
    """What :func:`run_checks` found: ``checks`` (one row per parcel, :func:`check_parcels`) and what
    it rests on. Items can also be read as ``run["checks"]``."""

    checks: Any
    screen: Any
    X: Any
    info: dict
    proba: np.ndarray
    classes: list
    mowing: list
    bare_soil: list
    growth_threshold: float
    ndvi: np.ndarray
    #: per parcel, what each check found (:class:`cap_checks.Finding`)
    findings: list = field(default_factory=list)
    #: the parameters every check ran with (``{check: {param: value}}``)
    check_params: dict = field(default_factory=dict)
    #: the Sentinel-1 per-parcel series the run used (None: optical only)
    s1: Any = None

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def __repr__(self) -> str:
        lights = self.checks["light"].value_counts().to_dict()
        return (f"CapRun({len(self.checks)} parcels: {lights}; growth threshold {self.growth_threshold:.2f}; "
                f"{len(self.classes)} crop classes)")


def run_checks(declared: Any, z: Any, z1: Any | None = None, *, screen: Any = None,
               features: tuple[Any, dict] | None = None, min_pixels: int = 8,
               red_probability: float | None = None, red_ratio: float | None = 0.5,
               min_observations: int = 6, seed: int = 0,
               grassland: str = "grassland", mowing_threshold: float = 1.1,
               mowing_season: tuple[str, str] | None = ("04-15", "09-30"), n_jobs: int = 2,
               checks: Sequence[str] | None = None, check_params: dict | None = None) -> CapRun:
    """The whole check of the CAP template on per-parcel series: what the notebook and the P4
    benchmark run.

    declared: claims indexed by parcel id (projected CRS); z: :func:`crops.parcel_series` of them;
    z1: :func:`crops.s1_parcel_series` (None: optical only). ``screen`` (:func:`screen_parcels`) and
    ``features`` (``crops.parcel_features(z)``) are used as given when the caller already has them,
    else computed. Steps: features (S2 + S1), cross-fitted class probabilities, the scene's growth
    threshold (Otsu, label-free), mowing (S1+S2 fused, or optical only), bare soil, traffic light
    from the registered checks (:mod:`cap_checks`; ``checks`` and ``check_params`` as in
    :func:`check_parcels`; plug-ins find ``ndvi``, ``info``, ``X`` and ``s1`` in ``evidence.extra``).
    """
    from eolab.analysis import cap_checks, crops, events
    from eolab.analysis import timeseries as ts

    cap_checks.parameters(check_params, checks)  # unknown checks refused before any work
    screen = screen_parcels(declared, min_pixels=min_pixels) if screen is None else screen
    X, info = crops.parcel_features(z) if features is None else features
    if z1 is not None:
        X = X.join(crops.s1_features(z1, info["grid_days"]))
    _enough_monitorable(screen.loc[X.index, "monitorable"].values)
    # mowing dips must not be removed as spikes
    ndvi = ts.clean_series(z, "NDVI", spikes=False)
    if z1 is not None:
        found = events.detect_mowing_fused(ndvi, info["days"], z1["vh_db"].values, ts.day_numbers(z1.time.values),
                                           z1["n_pixels"].values / 4.0, threshold=mowing_threshold,
                                           season=mowing_season)
    else:
        found = events.detect_mowing(ndvi, info["days"])
    bare = events.detect_bare_soil(info["series"]["NDVI"], info["days"])
    return _decide(declared, screen, X, info, ndvi, found, bare, z1=z1, red_probability=red_probability,
                   red_ratio=red_ratio, min_observations=min_observations, seed=seed, grassland=grassland,
                   n_jobs=n_jobs, checks=checks, check_params=check_params)


def _enough_monitorable(ok: np.ndarray) -> None:
    if ok.sum() < 10:
        raise EolabError(f"only {int(ok.sum())} monitorable parcels: too few to train the crop model",
                         hint="give the claims of a larger area (the model learns from the other parcels)")


def _decide(declared: Any, screen: Any, X: Any, info: dict, ndvi: np.ndarray, found: list, bare: list, *,
            z1: Any, red_probability: float | None, red_ratio: float | None, min_observations: int, seed: int,
            grassland: str, n_jobs: int, checks: Sequence[str] | None, check_params: dict | None,
            drop_pages: Any = None) -> CapRun:
    """What needs all parcels at once: the cross-fitted crop model, the scene's growth threshold and
    the lights, from per-parcel features, series and events (of one pass or of many tiles).
    drop_pages: called after each part of the features is read, when they are mapped from a file
    (the tiled run), so that they are never all resident at once."""
    from eolab._memory import release_freed_memory
    from eolab.analysis import cap_checks

    # the claims and screen rows of X's parcels, selected once and only when they differ (each
    # selection copies the claims: hundreds of MB for a country's)
    declared = declared if declared.index.equals(X.index) else declared.loc[X.index]
    screen = screen if screen.index.equals(X.index) else screen.loc[X.index]
    names = declared["crop_name"].astype(str).values
    ok = screen["monitorable"].values
    _enough_monitorable(ok)
    features = X.to_numpy()
    p_ok, classes = cross_fit_crop_probabilities(features, names[ok], seed=seed, n_jobs=n_jobs, drop_pages=drop_pages,
                                                 rows=None if ok.all() else np.flatnonzero(ok))
    del features
    ndvi_max = X["NDVI_max"].to_numpy(copy=True)
    if drop_pages is not None:
        drop_pages()
    release_freed_memory()  # the model's working memory, before the checks build theirs
    proba = np.full((len(X), len(classes)), 1.0 / len(classes))
    proba[ok] = p_ok
    arable = arable_mask(declared, grassland)
    threshold = growth_threshold(ndvi_max[ok & arable])
    is_grass = grassland_mask(declared, grassland)
    mowing = [evs if g else [] for evs, g in zip(found, is_grass)]
    findings: list = []
    used = {"observations": {"min_observations": min_observations}, "growth": {"min_growth": threshold},
            "crop_consistency": {"red_ratio": red_ratio, "red_probability": red_probability}}
    for name, p in (check_params or {}).items():
        used[name] = {**used.get(name, {}), **p}
    checks_table = check_parcels(declared, screen, proba, classes,
                                 n_observations=info["n_observations"], mowing=mowing, bare_soil=bare,
                                 ndvi_max=ndvi_max, grassland=grassland, checks=checks,
                                 check_params=used, findings=findings,
                                 extra={"ndvi": ndvi, "info": info, "X": X, "s1": z1})
    if drop_pages is not None:
        drop_pages()  # what plug-ins read
    run = CapRun(checks=checks_table, screen=screen, X=X, info=info, proba=proba,
                 classes=list(classes), mowing=mowing, bare_soil=bare, growth_threshold=threshold, ndvi=ndvi,
                 findings=findings, check_params=cap_checks.parameters(used, checks), s1=z1)
    release_freed_memory()  # the model's and the checks' working memory, freed, would stay resident
    return run


# ------------------------------------------------------------------------------ the results table

#: the claims' columns the results table carries (those the claims have), before the geometry
RESULT_CLAIM_COLUMNS = ("farmer_id", "crop_code", "crop_name", "area_declared_ha")

#: rows of the results table built and written at a time by :func:`write_results`
RESULT_ROWS_PER_PART = 25_000


def result_parts(declared: Any, run: CapRun, provenance: dict, *, screen: Any = None, dates: Any = None,
                 rows_per_part: int = RESULT_ROWS_PER_PART):
    """The results table of ``declared`` (indexed by parcel id), ``rows_per_part`` rows at a time, in
    the claims' order: the claims' columns (:data:`RESULT_CLAIM_COLUMNS`) and outline, the screen,
    ``run``'s light, reasons and findings per parcel, and the ids of the items behind each parcel's
    series (``source_items``: the items covering it on the dates its series used). A parcel the run
    did not judge (set aside by the screen) is yellow with the screen's reason.

    screen: :func:`screen_parcels` of all the claims (default ``run.screen``); dates: the series'
    time values (default ``run.info["times"]``). Each part is a GeoDataFrame with ``parcel_id`` as
    its first column and the rows' positions as its index; built part by part, a country's table
    never has to be in memory whole (:func:`write_results`)."""
    import pandas as pd

    from eolab import provenance as prov_mod

    if int(rows_per_part) < 1:
        raise EolabError(f"rows_per_part must be at least 1, not {rows_per_part}")
    screen = run.screen if screen is None else screen
    dates = run.info.get("times") if dates is None else dates
    if dates is None:
        raise EolabError("the run does not say its series' dates", hint="pass dates= (the series' time values)")
    observed = np.asarray(run.info["observed"], bool)
    checks = run.checks.drop(columns=["declared_crop"])
    missing = declared.index[~declared.index.isin(screen.index)]
    if len(missing):
        raise EolabError(f"{len(missing)} parcels have no screen row, e.g. {list(missing[:3])}",
                         hint="pass screen= of all the claims (cap.screen_parcels)")
    columns = [c for c in RESULT_CLAIM_COLUMNS if c in declared.columns] + [declared.geometry.name]
    for lo in range(0, max(len(declared), 1), int(rows_per_part)):  # no claims: one empty part
        part = declared.iloc[lo:lo + int(rows_per_part)][columns].join(screen)
        at = checks.index.get_indexer(part.index)
        judged = at >= 0
        lights = checks.iloc[np.maximum(at, 0)].set_axis(part.index)
        if not judged.all():  # set aside by the screen: yellow, with its reason
            rest = ~judged
            lights = lights.astype(object)
            lights.loc[rest, :] = np.nan  # as a concat of the two leaves them
            reason = part["screen_reason"].where(part["screen_reason"].astype(bool), "not judged from the images")
            lights.loc[rest, "light"] = "yellow"
            lights.loc[rest, "reasons"] = (reason[rest] + " — check by field visit or VHR image").values
            lights.loc[rest, "declaration_suspect"] = False
            lights.loc[rest, "n_clear_observations"] = 0
            for c, dtype in checks.dtypes.items():  # as a concat of the two would type them
                if dtype.kind == "f" or (dtype.kind in "iu" and lights[c].isna().any()):
                    lights[c] = lights[c].astype(float)
                elif dtype.kind in "iub" and lights[c].notna().all():
                    lights[c] = lights[c].astype(dtype)
        part = part.join(lights)
        used = np.zeros((len(part), observed.shape[1]), bool)
        used[judged] = observed[at[judged]]
        part["source_items"] = prov_mod.source_items_per_row(provenance, part, used, dates=dates)
        part.index.name = "parcel_id"
        part = part.reset_index()
        part.index = pd.RangeIndex(lo, lo + len(part))
        yield part


def result_table(declared: Any, run: CapRun, provenance: dict, *, screen: Any = None, dates: Any = None) -> Any:
    """The whole results table (see :func:`result_parts`), for a map or a look in the notebook;
    for claims of a country, :func:`write_results` writes it without holding it whole."""
    # one part of all the rows (result_parts yields one, empty, even without claims)
    return next(result_parts(declared, run, provenance, screen=screen, dates=dates, rows_per_part=max(len(declared), 1)))


def write_results(declared: Any, run: CapRun, provenance: dict, path: str | Path, *, screen: Any = None,
                  dates: Any = None, rows_per_part: int = RESULT_ROWS_PER_PART,
                  on_part: Callable[[Any], None] | None = None) -> list[Path]:
    """The results table written as GeoPackage and GeoParquet (:class:`outputs.TableWriter`, with
    the provenance) while it is built, ``rows_per_part`` rows at a time: memory holds one part of it,
    never the whole table. The files equal ``outputs.write_table(result_table(...))``.
    on_part: called with each part before it is written (e.g. to add up the table's size)."""
    from eolab.analysis import outputs

    types, bbox = outputs.geometry_summary(declared.geometry)
    # columns empty in the whole table (e.g. claims without farmer ids) are not waited for
    screen_all = run.screen if screen is None else screen
    empty = [c for c in RESULT_CLAIM_COLUMNS if c in declared.columns and declared[c].isna().all()]
    empty += [c for c in screen_all.columns if screen_all[c].isna().all()]
    empty += [c for c in run.checks.columns if run.checks[c].isna().all()]
    with outputs.TableWriter(path, provenance, geometry_types=types, bbox=bbox, index=False,
                             null_columns=empty) as writer:
        for part in result_parts(declared, run, provenance, screen=screen, dates=dates, rows_per_part=rows_per_part):
            if on_part is not None:
                on_part(part)
            writer.write(part)
    return writer.paths


# ------------------------------------------------------------------------------ country scale, in tiles


def parcel_tiles(parcels: Any, tile_parcels: int, *, grid: tuple[float, float, float] | None = None) -> list[np.ndarray]:
    """Row positions of ``parcels`` in square cells of their extent holding about ``tile_parcels``
    parcels each (empty cells left out), each in the parcels' order. A parcel belongs to the cell of
    its north-west corner, so a cell's parcels reach out of it only to the east and south.

    grid: (x, y, unit) — cells start at x, y (e.g. the images' own grid origin) and their side is a
    multiple of ``unit`` metres (e.g. one read chunk), so each cell's reads start on the images'
    blocks. Square cells, not a space-filling curve's runs, keep the cells' boxes apart: few pixels
    are read twice."""
    n = len(parcels)
    if tile_parcels < 1:
        raise EolabError(f"tile_parcels must be at least 1, not {tile_parcels}")
    b = parcels.geometry.bounds
    west, north = b["minx"].values, b["maxy"].values
    empty = ~np.isfinite(west)
    if empty.any():
        raise EolabError(f"{int(empty.sum())} parcels have no geometry, e.g. {list(parcels.index[empty][:3])}",
                         hint="drop them or give them their outline")
    if n <= tile_parcels:
        return [np.arange(n)]
    x0, y0, x1, y1 = west.min(), b["miny"].values.min(), b["maxx"].values.max(), north.max()
    side = max(np.sqrt(max(x1 - x0, 1.0) * max(y1 - y0, 1.0) * tile_parcels / n), 1.0)
    unit = 1.0
    if grid is not None:
        gx, gy, unit = grid
        side = unit * max(1, round(side / unit))
        x0 = gx + np.floor((x0 - gx) / side) * side
        y1 = gy - np.floor((gy - y1) / side) * side

    def split(rows, cx, cy, size):
        # cells with far more parcels than asked (a dense town among fields) are quartered, down to
        # one unit: ``tile_parcels`` bounds a tile's memory wherever the parcels are
        ix = np.floor((west[rows] - cx) / size).astype(np.int64)
        iy = np.floor((cy - north[rows]) / size).astype(np.int64)
        cell = iy * (int(ix.max()) + 1) + ix
        order = np.argsort(cell, kind="stable")
        out = []
        for part in np.split(order, np.flatnonzero(np.diff(cell[order])) + 1):
            sub = np.sort(rows[part])
            if sub.size > 2 * tile_parcels and size / 2 >= max(unit, 1.0):
                out += split(sub, cx + ix[part[0]] * size, cy - iy[part[0]] * size, size / 2)
            else:
                out.append(sub)
        return out

    return split(np.arange(n), x0, y1, side)


def _native_grids(items: Sequence, crs: Any, resolution: float) -> list[tuple[float, float, float, float]]:
    """The images' own pixel grids at ``resolution`` in ``crs``: (west, north, east, south) of each
    distinct one, from the assets' ``proj:transform`` and ``proj:shape``; empty when an item is in
    another CRS or states none, or a grid is off the resolution's multiples."""
    from pyproj import CRS

    want = CRS.from_user_input(crs)
    grids = set()
    for it in items:
        d = it.to_dict() if hasattr(it, "to_dict") else it
        props = d.get("properties", {})
        code = props.get("proj:code") or (f"EPSG:{props['proj:epsg']}" if props.get("proj:epsg") else None)
        if code is None or CRS.from_user_input(code) != want:
            return []
        found = False
        for a in d.get("assets", {}).values():
            t, shape = a.get("proj:transform"), a.get("proj:shape") or props.get("proj:shape")
            if t and shape and t[0] == resolution and t[4] == -resolution:
                if t[2] % resolution or t[5] % resolution:
                    return []
                grids.add((t[2], t[5], t[2] + shape[1] * resolution, t[5] - shape[0] * resolution))
                found = True
                break
        if not found:
            return []
    return sorted(grids)


def _tile_geobox(parcels: Any, grids: list, unit: float, resolution: float, pad: float = 0.0) -> Any:
    """The tile's read grid: its west and north edges on the chunk grid of the image under its
    north-west corner (so chunks and that image's blocks coincide), its east and south edges just
    past its parcels; ``pad`` metres more on every side (e.g. an outward buffer)."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    minx, miny, maxx, maxy = parcels.total_bounds
    minx, miny, maxx, maxy = minx - pad, miny - pad, maxx + pad, maxy + pad
    under = [g for g in grids if g[0] <= minx < g[2] and g[3] < maxy <= g[1]]
    gx, gy = (under or grids)[0][:2]
    west = gx + np.floor((minx - gx) / unit) * unit
    north = gy - np.floor((gy - maxy) / unit) * unit
    width = int(np.ceil((maxx + resolution - west) / resolution))
    height = int(np.ceil((north - miny + resolution) / resolution))
    return GeoBox((height, width), Affine(resolution, 0, west, 0, -resolution, north), parcels.crs)


def _tile_bbox(parcels: Any, pad: float) -> list[float]:
    """Lon/lat bounds of the parcels' projected bounds widened by ``pad`` metres (densified edges, so
    the box read covers every parcel)."""
    from pyproj import Transformer

    x0, y0, x1, y1 = parcels.total_bounds
    t = Transformer.from_crs(parcels.crs, "EPSG:4326", always_xy=True)
    return [float(v) for v in t.transform_bounds(x0 - pad, y0 - pad, x1 + pad, y1 + pad, densify_pts=21)]


def run_checks_tiled(declared: Any, items: Sequence, *, tile_parcels: int = 25_000,
                     work_dir: str | Path | None = None, screen: Any = None, resolution: float = 10,
                     buffer: float = -5.0, chunks: dict | None = None, min_pixels: int = 8,
                     red_probability: float | None = None, red_ratio: float | None = 0.5,
                     min_observations: int = 6, seed: int = 0, grassland: str = "grassland",
                     n_jobs: int = 2, checks: Sequence[str] | None = None, check_params: dict | None = None,
                     s1_items: Sequence = (), mowing_threshold: float = 1.1,
                     mowing_season: tuple[str, str] | None = ("04-15", "09-30"), progress: bool = True) -> CapRun:
    """:func:`run_checks` for claims of any size, reading the images one tile of parcels at a time,
    so memory holds one tile's series, not the country's.

    declared: the claims to judge (indexed by parcel id, projected CRS); items: the Sentinel-2 items,
    as for :func:`crops.parcel_series`; s1_items: the Sentinel-1 items (empty: optical only), as for
    :func:`crops.s1_parcel_series` (their features join the model's, mowing is S1+S2 fused;
    ``mowing_threshold`` and ``mowing_season`` as in :func:`run_checks`). The parcels are split into square cells of about
    ``tile_parcels`` (:func:`parcel_tiles`); each cell's series are computed for its own bounding box
    and kept on disk in ``work_dir`` (default: a temporary folder removed afterwards; give one to
    reuse them in a re-run, as ``parcel_series``' cache). What needs all parcels is done on all of
    them, so the result equals :func:`run_checks` on the whole series:

    1. per tile: the series, and the haze test's HOT anomalies (kept: one float per observed
       parcel-date);
    2. the haze margin, fitted on all anomalies at once (:func:`timeseries.haze_margin`);
    3. per tile: features, the cleaned NDVI, the Sentinel-1 series, mowing and bare-soil events (what
       is kept per parcel: features, NDVI, dates used, events, VV and VH);
    4. crop model (cross-fitted on all parcels), growth threshold, lights: as :func:`run_checks`.

    Parcels of other tiles that reach into a tile's box are burnt with it (in the claims' order),
    so overlapping claims share pixels as in one pass. The equality holds when the items are in the
    claims' CRS; items in another CRS are resampled (nearest pixel) per read window, so a tile and
    one pass can pick a different source pixel here and there.

    The returned run's ``info`` has no ``series`` (the cleaned series of every index stayed per tile);
    ``ndvi``, ``info["days"]`` (and ``times``), ``info["observed"]`` and the events are there for every
    parcel, so dossiers and plug-ins that read those work as with :func:`run_checks`. ``info["tiles"]``
    is the number of tiles, ``info["seconds"]`` the wall seconds of the phases. ``X`` and ``ndvi``
    (a country's features and NDVI: ~0.8 KB per parcel) are arrays mapped from unnamed files in the
    work folder (:class:`eolab._memory.FileArray`): written a tile at a time, read a part at a time
    by the model and the checks, their pages handed back after each; they read and write as any
    array. So are the variables of ``s1`` (a Dataset as :func:`crops.s1_parcel_series` gives, for
    every parcel).
    """
    import shutil
    import tempfile
    import time
    import warnings

    import pandas as pd
    from tqdm.auto import tqdm

    from eolab._memory import file_array, release_freed_memory
    from eolab.analysis import cap_checks, crops, events
    from eolab.analysis import timeseries as ts
    from eolab.analysis.claims._metric import require_metres

    require_metres(declared, "the tiled CAP run")
    cap_checks.parameters(check_params, checks)  # unknown checks refused before the images are read
    screen = screen_parcels(declared, min_pixels=min_pixels) if screen is None else screen
    _enough_monitorable(screen.loc[declared.index, "monitorable"].values)
    # read chunks on the images' own blocks where their grid is known (a chunk that straddles blocks
    # decodes each of them again: about twice the reading time)
    unit = int((chunks or {}).get("x", 1024)) * resolution
    grids = _native_grids(items, declared.crs, resolution)
    tiles = parcel_tiles(declared, tile_parcels, grid=(*grids[0][:2], unit) if grids else None)
    own_dir = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="eolab-cap-tiles-")) if own_dir else Path(work_dir).expanduser()
    work.mkdir(parents=True, exist_ok=True)

    reach = max(buffer, 0.0) + 2 * resolution
    sindex = declared.sindex

    def neighbours(rows):
        """The tile's rows and those of other tiles' parcels that reach into its box (sorted)."""
        from shapely.geometry import box

        x0, y0, x1, y1 = declared.iloc[rows].total_bounds
        return np.union1d(sindex.query(box(x0 - 2 * reach, y0 - 2 * reach, x1 + 2 * reach, y1 + 2 * reach)), rows)

    def series(rows):
        tile = declared.iloc[rows]
        # A pixel is a parcel's when its centre is inside the buffered outline, so the aligned grid
        # needs only the outward buffer. Cells start on chunk lines, so any more margin would start
        # most tiles a whole chunk further west and north (a chunk row and column more to decode;
        # a positive buffer still does). The lon/lat box keeps a margin for reprojection.
        where = ({"geobox": _tile_geobox(tile, grids, unit, resolution, pad=max(buffer, 0.0))} if grids
                 else {"bbox": _tile_bbox(tile, pad=reach)})
        # Other tiles' parcels that reach into this tile's box are burnt too, in the claims' order,
        # so where parcels overlap (double declarations, outward buffers) each pixel goes to the same
        # parcel as in one pass over all of them ("the later one wins"); their rows are dropped after.
        near = neighbours(rows)
        z = crops.parcel_series(items, declared.iloc[near], resolution=resolution, buffer=buffer, cache_dir=work,
                                chunks=chunks, **where)
        return z.isel(parcel=np.searchsorted(near, rows)) if near.size > rows.size else z

    def s1_series(rows):
        # as the optical series (the same neighbours burnt with the tile), on a lon/lat box: the
        # radar cube is read on the 10 m grid that one pass over all parcels reads
        near = neighbours(rows)
        z1 = crops.s1_parcel_series(s1_items, declared.iloc[near], resolution=resolution, buffer=buffer,
                                    bbox=_tile_bbox(declared.iloc[rows], pad=reach), cache_dir=work)
        return z1.isel(parcel=np.searchsorted(near, rows)) if near.size > rows.size else z1

    seconds, t0 = {}, time.perf_counter()
    try:
        anomalies = []
        for rows in tqdm(tiles, desc="CAP tiles: series", unit="tile", disable=not progress):
            z = series(rows)
            a = ts.haze_anomaly(z["B02"].values, z["B04"].values)
            anomalies.append(a[np.isfinite(a)])
            del z, a
            release_freed_memory()  # a tile's pages, freed, would otherwise stay resident
        margin = ts.haze_margin(np.concatenate(anomalies))
        del anomalies
        seconds["series"], t0 = time.perf_counter() - t0, time.perf_counter()
        # each tile's rows go straight to their place in the claims' order: no list of tile parts,
        # no concatenation and no reordering copy (each of them a country's features at once)
        n = len(declared)
        X = ndvi = observed = days = s1 = None
        found: list = [None] * n
        bare: list = [None] * n
        for rows in tqdm(tiles, desc="CAP tiles: features, events", unit="tile", disable=not progress):
            z = series(rows)
            Xt, info = crops.parcel_features(z, haze_margin=margin)
            z1 = s1_series(rows) if s1_items else None
            if z1 is not None:
                Xt = Xt.join(crops.s1_features(z1, info["grid_days"]))
                if s1 is None:  # every variable of the radar series, for every parcel, in files
                    s1 = {}
                    for v in z1.data_vars:
                        var = z1[v].transpose("parcel", ...)
                        s1[v] = (var.dims, *file_array((n, *var.shape[1:]), var.dtype, work))
                    s1_times = z1.time.values
                elif not np.array_equal(s1_times, z1.time.values):
                    raise EolabError("the tiles of parcels got different Sentinel-1 dates",
                                     hint="give Sentinel-1 items that cover the whole area of the claims")
                for v, (dims, a, drop) in s1.items():
                    a[rows] = z1[v].transpose(*dims).values
                    drop()
            if days is None:
                days, grid, times = info["days"], info["grid_days"], z.time.values
                # a country's features and NDVI (~0.8 KB per parcel) live in files, a tile's rows
                # in memory at a time; the model and the checks read them part by part
                X, drop_x = file_array((n, Xt.shape[1]), np.result_type(*Xt.dtypes), work)
                columns = Xt.columns
                observed = np.zeros((n, days.size), bool)
            elif not np.array_equal(days, info["days"]):
                raise EolabError("the tiles of parcels got different dates",
                                 hint="give items whose dates every tile shares (one collection, one period)")
            X[rows] = Xt.to_numpy()
            observed[rows] = info["observed"]
            # mowing dips must not be removed as spikes
            nt = ts.clean_series(z, "NDVI", spikes=False, haze_margin=margin)
            if ndvi is None:
                ndvi, drop_ndvi = file_array((n, days.size), nt.dtype, work)

                def drop_pages():
                    drop_x()
                    drop_ndvi()
            ndvi[rows] = nt
            drop_pages()  # this tile's rows are in the files now
            if z1 is None:  # fused mowing: below, with the scene's radar and optical noise
                for i, evs in zip(rows, events.detect_mowing(nt, days)):
                    found[i] = evs
            for i, evs in zip(rows, events.detect_bare_soil(info["series"]["NDVI"], days)):
                bare[i] = evs
            del z, z1, info, Xt, nt
            release_freed_memory()
        if s1 is not None:
            # S1+S2 mowing needs what only all parcels tell: each date's median VH and the noise of
            # radar and NDVI steps (as one pass fits them); then it is judged a tile at a time
            # (events.normalise_backscatter and backscatter_noise of the whole VH, a part at a time:
            # the medians a block of dates at a time, the step spreads a tile at a time)
            (_, vh_db, drop_vh), (_, pixels, _) = s1["vh_db"], s1["n_pixels"]
            median = np.empty((1, vh_db.shape[1]))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # dates without any radar value
                for j in range(0, vh_db.shape[1], 8):
                    median[0, j:j + 8] = np.nanmedian(np.asarray(vh_db[:, j:j + 8], float), axis=0)
                    drop_vh()
            spreads = np.empty(n)
            for rows in tiles:
                spreads[rows] = events.step_spreads(vh_db[rows] - median)
                drop_vh()
            looks = pixels / 4.0
            noise, sigma = events.backscatter_noise(None, looks, spreads=spreads), events.ndvi_noise(ndvi)
            drop_pages()
            s1_days = ts.day_numbers(s1_times)
            for rows in tiles:
                for i, evs in zip(rows, events.detect_mowing_fused(
                        ndvi[rows], days, vh_db[rows] - median, s1_days, looks[rows], threshold=mowing_threshold,
                        season=mowing_season, noise=noise, ndvi_sigma=sigma, normalised=True)):
                    found[i] = evs
                drop_pages()
                drop_vh()
            del vh_db, looks, pixels, spreads
    finally:
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)
    # the claims' own ids (unnamed, as parcel_features gives them): no second string per parcel
    X = pd.DataFrame(X, index=declared.index.rename(None), columns=columns, copy=False)
    release_freed_memory()
    seconds["features_events"], t0 = time.perf_counter() - t0, time.perf_counter()
    info = {"grid_days": grid, "days": days, "times": times, "observed": observed,
            "n_observations": observed.sum(1), "tiles": len(tiles), "seconds": seconds}
    z1 = None
    if s1 is not None:
        import xarray as xr

        z1 = xr.Dataset({v: (dims, a) for v, (dims, a, _) in s1.items()},
                        coords={"parcel": declared.index.values, "time": s1_times})
    run = _decide(declared, screen, X, info, ndvi, found, bare, z1=z1, red_probability=red_probability,
                  red_ratio=red_ratio, min_observations=min_observations, seed=seed, grassland=grassland,
                  n_jobs=n_jobs, checks=checks, check_params=check_params,
                  drop_pages=drop_pages)
    seconds["model_lights"] = time.perf_counter() - t0
    return run
