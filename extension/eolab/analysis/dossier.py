"""Evidence dossier per parcel: one self-contained HTML page (inline CSS, PNG chips as data: URIs,
SVG series; no script, no external asset) that shows why a parcel got its light — meant to be sent
to its farmer, so it holds that parcel's data only.

It shows the parcel outline on true-colour and NDVI chips of the dates that decided (read as small
windows from the very Sentinel-2 items in the parcel's provenance, with their ids and links as text),
the NDVI (and Sentinel-1 VH) series with the detected events and the thresholds, the declared crop
(national code, name, HCAT3) vs. the crop model's probabilities, every finding of every check, the
checks' parameters, the template parameters and the code version.

    paths = dossier.write_all(run, result, s2_items, out / "dossiers")      # red and yellow parcels
    html = dossier.render(run, result, s2_items, "P000123")                  # one, on demand
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eolab.errors import EolabError

RGB_BANDS = ("B04", "B03", "B02")
NIR_BAND = "B08"
OUTLINE = (255, 0, 255)
CHIP_PX = 320  # chips are drawn about this wide (whole-pixel zoom)
CSS = """body{font-family:sans-serif;margin:1.5em;max-width:1100px;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}
.red{background:#d62728;color:#fff}.yellow{background:#ffbf00}.green{background:#2ca02c;color:#fff}
.light{padding:2px 8px;border-radius:4px}figure{display:inline-block;margin:4px}figcaption{font-size:.8em}
code{font-size:.85em;word-break:break-all}"""


@dataclass
class Chip:
    """A small window of one item around a parcel: reflectance ``rgb`` (3×h×w), ``ndvi`` (h×w), the
    window's ``transform`` and ``crs``, the item's id, datetime and self link."""

    date: str
    item_id: str
    item_href: str
    rgb: np.ndarray
    ndvi: np.ndarray
    transform: Any
    crs: Any


def parcel_dates(run: Any, i: int) -> list[str]:
    """The parcel's clear Sentinel-2 dates (YYYY-MM-DD)."""
    days = np.asarray(run.info["days"], float)[np.asarray(run.info["observed"][i], bool)]
    return [str(np.datetime64("1970-01-01") + np.timedelta64(int(round(d)), "D")) for d in days]


def deciding_dates(run: Any, i: int, max_dates: int = 4) -> list[str]:
    """The clear dates that decided: the NDVI maximum (growth, crop type), around each mowing the
    last clear date before and the first after it, the start of bare soil; with fewer than two, the
    first and last clear dates too. At most ``max_dates``, in time order."""
    dates = parcel_dates(run, i)
    if not dates:
        return []
    obs = np.asarray(run.info["observed"][i], bool)
    ndvi = np.asarray(run.ndvi[i], float)[obs]
    picked = []
    if np.isfinite(ndvi).any():
        picked.append(dates[int(np.nanargmax(ndvi))])
    for e in run.mowing[i] if run.mowing else []:
        before = [d for d in dates if d <= e["date"]]
        after = [d for d in dates if d > e["date"]]
        picked += before[-1:] + after[:1]
    for e in run.bare_soil[i] if run.bare_soil else []:
        picked += [d for d in dates if d >= e["start"]][:1]
    if len(set(picked)) < 2:
        picked += [dates[0], dates[-1]]
    return sorted(list(dict.fromkeys(picked))[:max_dates])


class Reader:
    """Reads windows of item assets with rasterio, keeping datasets open across parcels; every read
    goes through the provider's access (SAS signing, S3 keys or bearer token, connection cap and
    retries: :func:`eolab.data.access.read_with_access`)."""

    def __init__(self) -> None:
        self._open: dict[str, Any] = {}
        self._specs: dict[str | None, tuple] = {}
        self._items: dict[tuple, tuple] = {}

    def dataset(self, href: str) -> Any:
        """The open dataset of ``href`` as given (already signed, if its provider signs)."""
        import rasterio

        if href not in self._open:
            self._open[href] = rasterio.open(href)
        return self._open[href]

    def access(self, view: dict) -> tuple:
        """(profile, access spec) of the item's provider, looked up once per provider."""
        from eolab.data import access, load

        provider = load.item_provider(view)
        if provider not in self._specs:
            profile = load.member_profile(provider)
            self._specs[provider] = (profile, access.spec_for(provider, profile))
        return self._specs[provider]

    def item(self, it: Any) -> tuple:
        """(view, profile, access spec, chip keys or None) of an item, worked out once per item and
        kept for the next parcels (a run's dossiers share a few dozen items)."""
        from eolab.data import load

        key = (it.collection_id, it.id)
        if key not in self._items:
            view = load.item_view(it)
            profile, spec = self.access(view)
            self._items[key] = (view, profile, spec, _chip_keys(view, profile))
        return self._items[key]

    def read(self, spec: Any, href: str, read: Any) -> Any:
        """``read(dataset)`` of ``href`` under ``spec``'s access."""
        from eolab.data import access

        return access.read_with_access(spec, href, lambda signed: read(self.dataset(signed)))

    def close(self) -> None:
        for ds in self._open.values():
            ds.close()
        self._open.clear()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _chip_keys(view: dict, profile: Any) -> dict[str, str] | None:
    """The item's asset keys of red, green, blue and NIR (by meaning: ``B04``, ``red``, ``B04_10m``...)."""
    from eolab.data import profiles

    keys = {b: profiles.resolve_band(view, b, profile) for b in (*RGB_BANDS, NIR_BAND)}
    return keys if all(keys.values()) else None


def read_chips(items: Iterable, geometry: Any, crs: Any, dates: Sequence[str], *, margin: float = 30.0,
               reader: Reader | None = None) -> list[Chip]:
    """One chip per date: a window (parcel bounds + ``margin`` metres) of the item of that date that
    covers the parcel, read from its red, green, blue and NIR assets whatever the provider calls them,
    in reflectance (scale and offset as :func:`eolab.data.profiles.band_values` finds them: the
    item's metadata, the member's profile, else the sensor's convention; nodata → NaN), through the
    provider's access (signing, credentials, connection cap)."""
    import geopandas as gpd
    from rasterio.windows import from_bounds
    from shapely.geometry import box

    from eolab.data import profiles

    own = reader is None
    reader = reader or Reader()
    lonlat = gpd.GeoSeries([geometry], crs=crs).to_crs("EPSG:4326").iloc[0]
    chips = []
    try:
        for date in dates:
            cands = []
            for it in items:
                if not (it.datetime and it.datetime.date().isoformat() == date):
                    continue
                if it.bbox and not box(*it.bbox[:2], *it.bbox[-2:]).intersects(lonlat):
                    continue
                view, profile, spec, keys = reader.item(it)
                if keys:
                    cands.append((it.id, it, view, profile, spec, keys))
            if not cands:
                continue
            _, it, view, profile, spec, keys = min(cands, key=lambda c: c[0])
            bands = {}
            for b in (*RGB_BANDS, NIR_BAND):
                key = keys[b]

                def window(ds):
                    g = gpd.GeoSeries([geometry], crs=crs).to_crs(ds.crs).iloc[0] if ds.crs != crs else geometry
                    x0, y0, x1, y1 = g.bounds
                    win = from_bounds(x0 - margin, y0 - margin, x1 + margin, y1 + margin, ds.transform)
                    win = win.round_offsets().round_lengths()
                    data = ds.read(1, window=win, boundless=True, fill_value=ds.nodata or 0).astype("float64")
                    return data, ds.nodata, ds.window_transform(win), ds.crs

                a, file_nodata, transform, rcrs = reader.read(spec, it.assets[key].href, window)
                values = profiles.band_values(view, key, profile)
                nodata = values.nodata if values.nodata is not None else file_nodata
                bands[b] = np.where(a == (nodata if nodata is not None else -np.inf), np.nan,
                                    a * values.scale + values.offset)
            red, nir = bands["B04"], bands[NIR_BAND]
            with np.errstate(invalid="ignore", divide="ignore"):
                ndvi = (nir - red) / (nir + red)
            link = it.get_single_link("self")
            chips.append(Chip(date, it.id, link.href if link else it.assets[keys["B04"]].href,
                              np.stack([bands[b] for b in RGB_BANDS]), ndvi, transform, rcrs))
    finally:
        if own:
            reader.close()
    return chips


def ndvi_colours(ndvi: np.ndarray) -> np.ndarray:
    """NDVI → RGB uint8 (h×w×3): brown (≤ 0) to dark green (1); grey where no data."""
    t = np.clip(np.nan_to_num(ndvi, nan=0.0), 0.0, 1.0)[..., None]
    out = (np.array([166, 97, 26]) * (1 - t) + np.array([0, 104, 55]) * t).round().astype(np.uint8)
    out[~np.isfinite(ndvi)] = 128
    return out


def rgb_colours(rgb: np.ndarray, top: float = 0.3) -> np.ndarray:
    """Reflectance (3×h×w) → RGB uint8 (h×w×3), linear 0..``top``; grey where no data."""
    out = (np.clip(np.nan_to_num(rgb, nan=top / 2), 0, top) / top * 255).round().astype(np.uint8)
    return np.moveaxis(out, 0, -1)


def _png(pixels: np.ndarray, geometry: Any, transform: Any, zoom: int) -> str:
    from PIL import Image, ImageDraw

    img = Image.fromarray(pixels).resize((pixels.shape[1] * zoom, pixels.shape[0] * zoom), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    inv = ~transform
    for ring in _rings(geometry):
        pts = [tuple(v * zoom for v in inv @ (x, y)) for x, y in ring]
        draw.line(pts, fill=OUTLINE, width=2)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=False, compress_level=3)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _rings(geometry: Any) -> list:
    polys = getattr(geometry, "geoms", [geometry])
    return [list(r.coords) for p in polys for r in (p.exterior, *p.interiors)]


def _svg_series(dates: Sequence[str], values: Sequence[float], *, label: str, lo: float, hi: float,
                events: Sequence[tuple[str, str]] = (), hlines: Sequence[tuple[float, str]] = ()) -> str:
    w, h, pad = 720, 200, 40
    d = np.array([np.datetime64(x) for x in dates], "datetime64[D]").astype(float)
    ev = np.array([np.datetime64(x[:10]) for x, _ in events], "datetime64[D]").astype(float)
    t0, t1 = (min(d.min(), *ev) if ev.size else d.min()), (max(d.max(), *ev) if ev.size else d.max())
    x = lambda t: pad + (t - t0) / max(t1 - t0, 1) * (w - 2 * pad)  # noqa: E731
    y = lambda v: h - pad / 2 - (np.clip(v, lo, hi) - lo) / (hi - lo) * (h - pad)  # noqa: E731
    v = np.asarray(values, float)
    ok = np.isfinite(v)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img">',
             f'<text x="4" y="14" font-size="12">{html.escape(label)}</text>',
             f'<line x1="{pad}" y1="{h - pad / 2}" x2="{w - pad}" y2="{h - pad / 2}" stroke="#999"/>']
    for val, name in hlines:
        parts.append(f'<line x1="{pad}" x2="{w - pad}" y1="{y(val):.1f}" y2="{y(val):.1f}" stroke="#d62728" '
                     f'stroke-dasharray="4 3"/><text x="{w - pad}" y="{y(val) - 3:.1f}" font-size="10" '
                     f'text-anchor="end">{html.escape(name)} {val:.2f}</text>')
    for (when, name), t in zip(events, ev):
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{pad / 2}" y2="{h - pad / 2}" stroke="#1f77b4"/>'
                     f'<text x="{x(t) + 2:.1f}" y="{pad / 2 + 10}" font-size="10">{html.escape(name)} {when}</text>')
    pts = " ".join(f"{x(t):.1f},{y(val):.1f}" for t, val in zip(d[ok], v[ok]))
    parts.append(f'<polyline fill="none" stroke="#2ca02c" points="{pts}"/>')
    parts += [f'<circle cx="{x(t):.1f}" cy="{y(val):.1f}" r="2.5" fill="#2ca02c"/>' for t, val in zip(d[ok], v[ok])]
    parts.append(f'<text x="{pad}" y="{h - 2}" font-size="10">{dates[0]}</text><text x="{w - pad}" y="{h - 2}" '
                 f'font-size="10" text-anchor="end">{dates[-1]}</text></svg>')
    return "".join(parts)


def _position(run: Any, pid: Any) -> int:
    """Where parcel ``pid`` is in the run's checks (an error naming it, not a KeyError)."""
    if pid not in run.checks.index:
        import difflib

        near = difflib.get_close_matches(str(pid), [str(p) for p in run.checks.index[:100_000]], n=1)
        raise EolabError(f"parcel {pid!r} is not in the CAP run" + (f" (did you mean {near[0]!r}?)" if near else ""),
                         hint="use a parcel id of the run's checks table (run.checks.index)")
    return run.checks.index.get_loc(pid)


def _row(result: Any, pid: Any) -> Any:
    if result.index.name == "parcel_id" or "parcel_id" not in result.columns:
        if pid not in result.index:
            raise EolabError(f"parcel {pid!r} is not in the result table")
        return result.loc[pid]
    if "parcel_id" in result.columns:
        rows = result[result["parcel_id"] == pid]
        if len(rows) != 1:
            raise EolabError(f"parcel {pid!r} is not in the result table")
        return rows.iloc[0]
    raise EolabError(f"parcel {pid!r} is not in the result table")


def evidence(run: Any, result: Any, pid: Any, claims: Any = None) -> dict:
    """The parcel's evidence as plain JSON-able values: what its light rests on (declaration,
    probabilities, clear dates and NDVI, events, findings, checks' parameters, source items).
    ``claims`` (indexed by parcel id): where the declared crop's HCAT3 code and name are read when
    the result table does not carry them."""
    i = _position(run, pid)
    row = _row(result, pid)
    decl = {k: str(row[k]) for k in ("crop_code", "crop_name", "hcat3_code", "hcat3_name") if k in row.index}
    if claims is not None and pid in claims.index:
        c = claims.loc[pid]
        decl.update({k: str(c[k]) for k in ("crop_code", "crop_name", "hcat3_code", "hcat3_name")
                     if k in c.index and k not in decl})
    obs = np.asarray(run.info["observed"][i], bool)
    return {
        "parcel_id": str(pid),
        "light": str(run.checks["light"].iloc[i]), "reasons": str(run.checks["reasons"].iloc[i]),
        "declared": decl,
        "probabilities": {c: round(float(p), 4) for c, p in zip(run.classes, run.proba[i])},
        "dates": parcel_dates(run, i),
        "ndvi": [round(float(v), 4) for v in np.asarray(run.ndvi[i], float)[obs]],
        "mowing": [e["date"] for e in (run.mowing[i] if run.mowing else [])],
        "bare_soil": [f"{e['start']}/{e['end']}" for e in (run.bare_soil[i] if run.bare_soil else [])],
        "findings": [[f.check, f.light, f.reason] for f in (run.findings[i] if run.findings else [])],
        "check_params": run.check_params,
        "source_items": str(row.get("source_items", "")),
        "geometry": row.geometry.wkt if getattr(row, "geometry", None) is not None else "",
    }


def evidence_hash(run: Any, result: Any, pid: Any, claims: Any = None) -> str:
    """sha256 of :func:`evidence`: changes when anything the parcel's light rests on changes."""
    doc = json.dumps(evidence(run, result, pid, claims), sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()


def _table(rows: Iterable[Sequence[Any]], head: Sequence[str]) -> str:
    e = lambda v: html.escape(str(v))  # noqa: E731
    return ("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in r) + "</tr>" for r in rows) + "</table>")


def render(run: Any, result: Any, items: Iterable, pid: Any, *, parameters: dict | None = None,
           claims: Any = None, max_dates: int = 4, zoom: int | None = None, reader: Reader | None = None) -> str:
    """The dossier of parcel ``pid`` as one HTML string (see the module doc). ``run``: the
    :class:`cap.CapRun`; ``result``: the result table (``parcel_id`` column or index, geometry,
    ``source_items``, declared crop); ``items``: the Sentinel-2 items (only those in the parcel's
    ``source_items`` are read); ``parameters``: the template's parameters; ``claims``: see
    :func:`evidence`."""
    from eolab import __version__

    e = lambda v: html.escape(str(v))  # noqa: E731
    i = _position(run, pid)
    row = _row(result, pid)
    ev = evidence(run, result, pid, claims)
    used = set(filter(None, ev["source_items"].split(",")))
    items = [it for it in items if not used or it.id in used]
    chips = read_chips(items, row.geometry, result.crs, deciding_dates(run, i, max_dates), reader=reader)
    light = ev["light"]
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Parcel {e(pid)}</title>"
           f"<style>{CSS}</style></head><body>",
           f"<h1>Parcel {e(pid)} <span class='light {e(light)}'>{e(light.upper())}</span></h1>",
           f"<p>{e(ev['reasons'])}</p>",
           "<h2>Declared crop and what the images look like</h2>",
           _table([[k.replace("_", " "), v] for k, v in ev["declared"].items()]
                  + [["area declared (ha)", row.get("area_declared_ha", "")],
                     ["area drawn (ha)", round(float(run.screen["area_ha"].iloc[i]), 4)]], ["", "declared"]),
           "<p>Crop model probabilities (a model that never saw this parcel's declaration):</p>"
           + _table([[c, f"{p:.3f}", ("declared " if c == ev["declared"].get("crop_name") else "")
                      + ("predicted" if c == run.checks["predicted_crop"].iloc[i] else "")]
                     for c, p in sorted(ev["probabilities"].items(), key=lambda kv: -kv[1])],
                    ["crop", "probability", ""])
           if bool(run.screen["monitorable"].iloc[i]) else
           "<p>Not monitorable from 10 m pixels: the crop model did not judge this parcel.</p>",
           "<h2>Every reason</h2>",
           _table(ev["findings"] or [["", light, ev["reasons"]]], ["check", "light", "reason"]),
           "<h2>Images of the dates that decided</h2><p>Parcel outline in magenta; true colour (B04, B03, "
           "B02, reflectance 0–0.3) and NDVI (brown 0 → green 1).</p>"]
    for c in chips:
        z = zoom or max(1, round(CHIP_PX / max(c.ndvi.shape)))
        out.append(f"<figure><img alt='true colour {e(c.date)}' src='{_png(rgb_colours(c.rgb), row.geometry, c.transform, z)}'>"
                   f"<img alt='NDVI {e(c.date)}' src='{_png(ndvi_colours(c.ndvi), row.geometry, c.transform, z)}'>"
                   f"<figcaption>{e(c.date)} — item <code>{e(c.item_id)}</code></figcaption></figure>")
    if not chips:
        out.append("<p>No image of the deciding dates covers this parcel.</p>")
    thresholds = [(float(v), f"{k} (arable crops)") for k, v in run.check_params.get("growth", {}).items()
                  if v is not None]
    events = [(d, "mowing") for d in ev["mowing"]] + [(b.split("/")[0], "bare soil") for b in ev["bare_soil"]]
    out.append("<h2>Series, events and thresholds</h2>")
    if ev["dates"]:
        out.append(_svg_series(ev["dates"], ev["ndvi"], label="NDVI (clear observations, cleaned)", lo=-0.1, hi=1.0,
                               events=events, hlines=thresholds))
    s1 = getattr(run, "s1", None)
    vh = []
    if s1 is not None and "vh_db" in s1 and pid in s1.parcel.values:
        t = [str(v)[:10] for v in s1.time.values]
        v = s1["vh_db"].sel(parcel=pid).values.astype(float)
        vh = [(d, round(float(x), 2)) for d, x in zip(t, v) if np.isfinite(x)]
        if vh:
            out.append(_svg_series([d for d, _ in vh], [x for _, x in vh], label="Sentinel-1 VH (dB)",
                                   lo=-30.0, hi=-5.0, events=events))
    out.append(_table(zip(ev["dates"], ev["ndvi"]), ["date", "NDVI"]))
    if vh:
        out.append(_table(vh, ["date", "VH (dB)"]))
    out.append("<p>Events: " + e(", ".join(f"{n} {d}" for d, n in events) or "none detected") + "</p>")
    out.append("<h2>Source images</h2>")
    out.append(_table([[c.date, c.item_id, c.item_href] for c in chips], ["date", "item (chips)", "link"]))
    out.append(f"<p>All items behind this parcel's result: <code>{e(ev['source_items'])}</code></p>")
    out.append("<h2>How it was computed</h2>")
    out.append(_table([[k, json.dumps(v, default=str)] for k, v in run.check_params.items()], ["check", "parameters"]))
    if parameters:
        out.append(_table([[k, json.dumps(v, default=str)] for k, v in parameters.items()],
                          ["template parameter", "value"]))
    out.append(f"<p>eolab {e(__version__)}; evidence hash <code>{evidence_hash(run, result, pid, claims)}</code></p>")
    out.append("</body></html>")
    return "".join(out)


def file_name(pid: Any) -> str:
    """A safe file name for a parcel's dossier (ids like ``26-1/1-0`` keep a short hash)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", str(pid))
    if safe != str(pid):
        safe += "-" + hashlib.sha1(str(pid).encode()).hexdigest()[:8]
    return f"{safe}.html"


def write(run: Any, result: Any, items: Iterable, pid: Any, out_dir: str | Path, **kw: Any) -> Path:
    """Write the dossier of ``pid`` into ``out_dir``; its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / file_name(pid)
    _write_atomically(path, render(run, result, items, pid, **kw))
    return path


MANIFEST = "dossiers.json"


def _write_atomically(path: Path, text: str) -> None:
    # A dossier is sent to a farmer: never a half-written one (a run stopped mid-write).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_all(run: Any, result: Any, items: Iterable, out_dir: str | Path, *,
              lights: Sequence[str] = ("red", "yellow"), **kw: Any) -> list[Path]:
    """A dossier for every parcel whose light is in ``lights``; their paths (datasets stay open
    across parcels). ``out_dir/dossiers.json`` lists the folder's dossiers by parcel; a dossier an
    earlier ``write_all`` listed for a parcel of this run that now gets none (its light changed) is
    removed, so no stale verdict stays beside the new ones. Dossiers of parcels this run does not hold
    (another region written into the same folder) and other files are left alone."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = list(items)
    table = result.set_index("parcel_id", drop=False) if "parcel_id" in result.columns else result
    pids = [p for p, light in zip(run.checks.index, run.checks["light"]) if light in lights]
    with Reader() as reader:
        paths = [write(run, table, items, p, out, reader=reader, **kw) for p in pids]
    listed = _listed(out / MANIFEST)
    in_run = {str(p) for p in run.checks.index}
    now = {str(p): path.name for p, path in zip(pids, paths)}
    for pid, name in list(listed.items()):
        if pid in in_run and pid not in now:
            if name not in now.values():
                (out / name).unlink(missing_ok=True)
            del listed[pid]
    _write_atomically(out / MANIFEST, json.dumps({
        "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "lights": list(lights),
        "dossiers": {**listed, **now}}, indent=1))
    return paths


def _listed(manifest: Path) -> dict[str, str]:
    """The dossiers an earlier run listed, by parcel id (plain .html names inside the folder only)."""
    try:
        listed = json.loads(manifest.read_text(encoding="utf-8")).get("dossiers") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(listed, dict):
        return {}
    return {str(pid): n for pid, n in listed.items() if isinstance(n, str) and n.endswith(".html")
            and n == Path(n).name and not n.startswith(".")}
