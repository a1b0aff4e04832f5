"""CAP checks as plug-ins: a check is a small function registered under a name, with its parameters
(and their defaults) and the reasons it can give. :func:`cap.check_parcels` runs every registered
check on every parcel and builds the traffic light from what they found, so adding a check needs no
edit of the pipeline::

    from eolab.analysis import cap_checks

    @cap_checks.register("late_declaration", params={"max_area_ha": 50.0},
                         reasons={"yellow": "parcel larger than {max_area_ha} ha"})
    def late_declaration(ev, i, max_area_ha):
        if ev.area_ha[i] > max_area_ha:
            return [("yellow", f"parcel larger than {max_area_ha:g} ha")]
        return []

A check receives the :class:`Evidence` of all parcels and the row ``i`` (plus its parameters as
keyword arguments) and returns ``(light, reason)`` pairs, light ``"red"`` or ``"yellow"``. Checks
run in three stages: ``gate`` checks first (the first that finds something stops the image checks of
that parcel: not monitorable, too few observations), then ``images`` checks (growth, crop
consistency, mowing, bare soil, plug-ins), then ``always`` checks (declared vs. drawn area). A check
can read what earlier checks found for the parcel in ``ev.findings[i]``.

Built-ins (in this order): ``monitorability``, ``observations`` (gates); ``growth``,
``crop_consistency``, ``mowing``, ``bare_soil`` (images); ``area`` (always).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eolab.errors import EolabError

STAGES = ("gate", "images", "always")
LIGHTS = ("red", "yellow")


@dataclass(frozen=True)
class Finding:
    """What one check found on one parcel: ``light`` (red/yellow), the ``reason`` text, the ``check``."""

    check: str
    light: str
    reason: str


@dataclass(frozen=True)
class Check:
    """A registered check: ``func(evidence, i, **params)`` → [(light, reason), ...]."""

    name: str
    func: Callable[..., Any]
    stage: str = "images"
    params: Mapping[str, Any] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)
    doc: str = ""


@dataclass
class Evidence:
    """Everything the checks read, one entry per parcel (rows follow ``claims``).

    claims, screen: the declarations and :func:`cap.screen_parcels`; proba/classes: the crop model's
    probabilities; declared, predicted, p_predicted, p_declared; n_observations; mowing, bare_soil:
    events per parcel (None: not detected); ndvi_max; is_grassland, is_arable; group(name) → crop
    group; extra: anything more a plug-in needs (``run_checks`` puts ``ndvi``, ``info``, ``X``,
    ``s1`` there); findings: what the checks found so far, per parcel."""

    claims: Any
    screen: Any
    proba: np.ndarray
    classes: list
    declared: np.ndarray
    predicted: np.ndarray
    p_predicted: np.ndarray
    p_declared: np.ndarray
    n_observations: Sequence[int]
    mowing: Sequence[Sequence[dict]] | None
    bare_soil: Sequence[Sequence[dict]] | None
    ndvi_max: Sequence[float] | None
    is_grassland: np.ndarray
    is_arable: np.ndarray
    group: Callable[[str], str]
    extra: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)
    #: plain per-parcel arrays of the screen and the claims (fast row access; filled from them)
    monitorable: Any = None
    screen_reason: Any = None
    area_ha: Any = None
    area_declared_ha: Any = None

    def __post_init__(self) -> None:
        n = len(self.declared)
        if self.monitorable is None:
            self.monitorable = np.asarray(self.screen["monitorable"].values, bool)
        if self.screen_reason is None:
            self.screen_reason = [str(v) for v in self.screen["screen_reason"].values]
        if self.area_ha is None:
            self.area_ha = np.asarray(self.screen["area_ha"].values, float)
        if self.area_declared_ha is None:
            self.area_declared_ha = (np.asarray(self.claims["area_declared_ha"].values, float)
                                     if "area_declared_ha" in self.claims else np.full(n, np.nan))


_REGISTRY: dict[str, Check] = {}


def register(name: str, *, stage: str = "images", params: Mapping[str, Any] | None = None,
             reasons: Mapping[str, str] | None = None, replace: bool = False) -> Callable:
    """Decorator: register ``func`` as the check ``name`` (see the module doc). ``params`` are the
    check's parameters with their defaults (overridden per run by ``check_params={name: {...}}``);
    ``reasons`` documents what it can say, by light."""
    if stage not in STAGES:
        raise EolabError(f"unknown check stage {stage!r}", hint=f"use one of {', '.join(STAGES)}")

    def wrap(func: Callable) -> Callable:
        if name in _REGISTRY and not replace:
            raise EolabError(f"a check named {name!r} is already registered", hint="pass replace=True")
        _REGISTRY[name] = Check(name, func, stage, dict(params or {}), dict(reasons or {}),
                                (func.__doc__ or "").strip())
        return func

    return wrap


def unregister(name: str) -> None:
    """Remove the check ``name`` (e.g. a plug-in added by a test)."""
    _REGISTRY.pop(name, None)


def registered() -> dict[str, Check]:
    """The registered checks by name, in the order they run within their stage."""
    return {c.name: c for stage in STAGES for c in _REGISTRY.values() if c.stage == stage}


def parameters(check_params: Mapping[str, Mapping[str, Any]] | None = None,
               names: Sequence[str] | None = None) -> dict[str, dict]:
    """The parameters each check runs with: its defaults updated by ``check_params``."""
    import difflib

    checks = registered()
    check_params = dict(check_params or {})
    unknown = set(check_params) - set(checks)
    if unknown:
        raise EolabError(f"parameters given for unknown checks: {', '.join(sorted(unknown))}",
                         hint=f"registered checks: {', '.join(checks)}")
    if names is not None:
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise EolabError(f"checks are a list of check names, not {names!r}",
                             hint=f"e.g. checks=[{next(iter(checks), 'area')!r}]; registered: {', '.join(checks)}")
        # A misspelt check would silently not run, and its parcels come out green.
        missing = [n for n in names if n not in checks]
        if missing:
            near = {n: difflib.get_close_matches(n, list(checks), n=1, cutoff=0.5)
                    or difflib.get_close_matches(n.lower(), list(checks), n=1, cutoff=0.5) for n in missing}
            said = ", ".join(f"{n!r}" + (f" (did you mean {near[n][0]!r}?)" if near[n] else "") for n in missing)
            raise EolabError(f"unknown check(s): {said}", hint=f"registered checks: {', '.join(checks)}")
    out = {}
    for name, c in checks.items():
        if names is not None and name not in names:
            continue
        p = dict(c.params)
        bad = set(check_params.get(name, {})) - set(p)
        if bad:
            raise EolabError(f"check {name!r} has no parameter {', '.join(sorted(bad))}",
                             hint=f"its parameters: {', '.join(p) or 'none'}")
        p.update(check_params.get(name, {}))
        out[name] = p
    return out


def evaluate(ev: Evidence, params: Mapping[str, Mapping[str, Any]]) -> list[list[Finding]]:
    """Run the checks named in ``params`` (from :func:`parameters`) on every parcel; the findings per
    parcel (also left in ``ev.findings``)."""
    checks = [c for c in registered().values() if c.name in params]
    gates = [c for c in checks if c.stage == "gate"]
    images = [c for c in checks if c.stage == "images"]
    always = [c for c in checks if c.stage == "always"]
    n = len(ev.declared)
    ev.findings = [[] for _ in range(n)]
    for i in range(n):
        found = ev.findings[i]
        blocked = False
        for c in gates:
            if _run(c, ev, i, params[c.name], found):
                blocked = True
                break
        for c in ([] if blocked else images) + always:
            _run(c, ev, i, params[c.name], found)
    return ev.findings


def _run(c: Check, ev: Evidence, i: int, p: Mapping[str, Any], found: list) -> bool:
    new = [Finding(c.name, light, reason) for light, reason in (c.func(ev, i, **p) or [])]
    for f in new:
        if f.light not in LIGHTS:
            raise EolabError(f"check {c.name!r} gave light {f.light!r}", hint="a finding is 'red' or 'yellow'")
    found.extend(new)
    return bool(new)


def light_of(findings: Sequence[Finding]) -> tuple[str, str, bool]:
    """(light, reasons text, declaration_suspect) of one parcel: red if any check says red, yellow if
    any says yellow; the reasons red first, each light in the order the checks ran."""
    red = [f.reason for f in findings if f.light == "red"]
    yellow = [f.reason for f in findings if f.light == "yellow"]
    light = "red" if red else ("yellow" if yellow else "green")
    return light, "; ".join(red + yellow) or "consistent with the declaration", bool(red)


# ---------------------------------------------------------------- built-in checks


@register("monitorability", stage="gate",
          reasons={"yellow": "too small / too thin for 10 m pixels, or overlapping another claim — check by "
                             "field visit or VHR image"})
def monitorability(ev: Evidence, i: int) -> list:
    """Parcels too small or too thin for the pixels, or sharing land with another claim, are not
    judged from the images."""
    if not ev.monitorable[i]:
        return [("yellow", ev.screen_reason[i] + " — check by field visit or VHR image")]
    return []


@register("observations", stage="gate", params={"min_observations": 6},
          reasons={"yellow": "only N clear observations (< min_observations)"})
def observations(ev: Evidence, i: int, min_observations: int) -> list:
    """Too few cloud-free observations to judge the season."""
    if ev.n_observations[i] < min_observations:
        return [("yellow", f"only {int(ev.n_observations[i])} clear observations (< {min_observations})")]
    return []


@register("growth", params={"min_growth": 0.4},
          reasons={"yellow": "failed or very weak crop (NDVI max < min_growth): crop type not judged — field visit"})
def growth(ev: Evidence, i: int, min_growth: float | None) -> list:
    """Arable parcels whose NDVI maximum stays below ``min_growth``: a failed / very weak crop."""
    v = None if ev.ndvi_max is None else ev.ndvi_max[i]
    if ev.is_arable[i] and v is not None and min_growth is not None and np.isfinite(v) and v < min_growth:
        return [("yellow", f"failed or very weak crop (NDVI max {v:.2f} < {min_growth:.2f}): "
                           "crop type not judged — field visit")]
    return []


@register("crop_consistency", params={"red_ratio": 0.5, "red_probability": None, "group_confidence": 0.6},
          reasons={"red": "images look like X (p), declared Y (p): declared crop < red_ratio × predicted",
                   "yellow": "images look like X, declared Y, not contradicted enough for red; or the "
                             "declared crop is not among the model's classes"})
def crop_consistency(ev: Evidence, i: int, red_ratio: float | None, red_probability: float | None,
                     group_confidence: float) -> list:
    """The crop model's cross-fitted probabilities vs. the declaration (not judged after a failed crop)."""
    if any(f.check == "growth" for f in ev.findings[i]):
        return []
    d, p = ev.declared[i], ev.predicted[i]
    if d not in ev.classes:
        return [("yellow", f"declared crop {d!r} is not among the model's classes")]
    if p == d:
        return []
    pp, pd_ = ev.p_predicted[i], ev.p_declared[i]
    text = f"images look like {p} (p={pp:.2f}), declared {d} (p={pd_:.2f})"
    contradicted = ((red_probability is not None and pd_ < red_probability)
                    or (red_ratio is not None and pd_ < red_ratio * pp))
    if contradicted or ev.group(p) != ev.group(d) and pp >= group_confidence:
        return [("red", text)]
    return [("yellow", text)]


@register("mowing", reasons={"yellow": "declared grassland, no mowing detected"})
def mowing(ev: Evidence, i: int) -> list:
    """Declared grassland must show at least one mowing."""
    if ev.is_grassland[i] and ev.mowing is not None and not ev.mowing[i]:
        return [("yellow", "declared grassland, no mowing detected")]
    return []


@register("bare_soil", reasons={"yellow": "declared grassland with bare soil from DATE"})
def bare_soil(ev: Evidence, i: int) -> list:
    """Declared grassland should not be ploughed (bare soil)."""
    if ev.is_grassland[i] and ev.bare_soil is not None and ev.bare_soil[i]:
        return [("yellow", f"declared grassland with bare soil from {ev.bare_soil[i][0]['start']}")]
    return []


@register("area", stage="always", params={"area_tolerance": 0.1},
          reasons={"yellow": "declared X ha vs. drawn Y ha (beyond area_tolerance, at least 0.1 ha)"})
def area(ev: Evidence, i: int, area_tolerance: float) -> list:
    """The declared area must match the drawn parcel."""
    decl, geo = ev.area_declared_ha[i], ev.area_ha[i]
    if np.isfinite(decl) and geo > 0 and abs(decl - geo) > max(area_tolerance * geo, 0.1):
        return [("yellow", f"declared {decl:.2f} ha vs. drawn {geo:.2f} ha")]
    return []
