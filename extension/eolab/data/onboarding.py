"""Onboarding check of a provider: ``eolab members check URL|ID``.

Walks what eolab needs from a member — its STAC API (conformance, collections and extents, a
sample search with paging), one item's band naming and scaling as eolab reads them, and one asset
actually read with the member's access method — and reports, line by line, what works, what is
missing, and the ``profile:`` it proposes for the catalogue configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from eolab.data import profiles

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass
class Report:
    target: str
    lines: list[tuple[str, str]] = field(default_factory=list)
    proposed: dict[str, Any] = field(default_factory=dict)

    def add(self, status: str, text: str) -> None:
        self.lines.append((status, text))

    @property
    def passed(self) -> bool:
        return all(status != FAIL for status, _ in self.lines)

    def text(self) -> str:
        import yaml

        out = [f"member check: {self.target}"] + [f"  [{s:>4}] {t}" for s, t in self.lines]
        if self.proposed:
            out.append("  proposed profile (catalogue configuration, under the member):")
            out += ["    " + line for line in yaml.safe_dump({"profile": self.proposed}, sort_keys=False).splitlines()]
        out.append("  result: " + ("passed" if self.passed else "problems found (see FAIL lines)"))
        return "\n".join(out)


def describe_item(item: dict, profile: Any = None, report: Report | None = None) -> Report:
    """Band naming, scaling and mask of one STAC item dict as eolab will read them."""
    report = report or Report(item.get("id", "item"))
    found = {name: profiles.resolve_band(item, name, profile) for name in profiles.COMMON_BANDS}
    named = {n: k for n, k in found.items() if k}
    missing = [n for n, k in found.items() if not k]
    report.add(OK if named else FAIL, "bands by common name: " + (", ".join(f"{n}={k}" for n, k in named.items())
                                                                   or "none recognised"))
    if missing and named:
        report.add(WARN, f"no asset for: {', '.join(missing)}")
    if not named:
        report.proposed["bands"] = {"red": "<asset key>", "nir": "<asset key>"}
    mask = profiles.mask_asset(item)
    report.add(OK if mask else WARN, f"cloud/quality mask: {mask}" if mask else
               "no cloud/quality mask asset found (set 'profile: mask:' if it has one)")
    if named:
        key = named.get("red") or next(iter(named.values()))
        values = profiles.band_values(item, key, profile)
        status = OK if values.source in ("metadata", "profile") else WARN
        report.add(status, f"values of {key}: DN x {values.scale} + {values.offset} (from {values.source})")
        if values.source == "none":
            report.proposed.update({"scale": "<DN to physical units>", "offset": 0.0})
    return report


def _get(client, url: str, report: Report, what: str, **params):
    import httpx

    try:
        response = client.get(url, params=params or None)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        report.add(FAIL, f"{what}: {url} did not answer ({type(exc).__name__}: {exc})")
        return None
    if response.status_code != 200:
        report.add(FAIL, f"{what}: {url} answered HTTP {response.status_code}")
        return None
    try:
        body = response.json()
    except ValueError:
        report.add(FAIL, f"{what}: {url} did not answer JSON")
        return None
    if not isinstance(body, dict):
        report.add(FAIL, f"{what}: {url} answered a JSON {type(body).__name__}, not an object (not a STAC API)")
        return None
    return body


def _listed(body: dict | None, key: str, report: Report, what: str) -> list[dict]:
    """The objects of ``body[key]`` (collections, features); what is not one is reported, not used."""
    values = (body or {}).get(key) or []
    if not isinstance(values, list):
        report.add(FAIL, f"{what}: '{key}' is a {type(values).__name__}, not a list")
        return []
    good = [v for v in values if isinstance(v, dict) and isinstance(v.get("id"), str)]
    if len(good) < len(values):
        report.add(FAIL, f"{what}: {len(values) - len(good)} of {len(values)} entries are not STAC objects "
                         "with an id")
    return good


def _read_one(item: dict, key: str, spec, report: Report) -> None:
    import numpy as np
    import rasterio
    import rasterio.errors
    from rasterio.windows import Window

    from eolab.data import access

    href = item["assets"][key]["href"]

    def read(uri):
        with rasterio.open(uri) as src:
            size = min(64, src.width, src.height)
            return src.read(1, window=Window(0, 0, size, size))

    try:
        data = access.read_with_access(spec, href, read)
    except (access.AccessError, rasterio.errors.RasterioError) as exc:
        report.add(FAIL, f"reading asset {key}: {exc}")
        return
    report.add(OK, f"read asset {key} with access '{spec.kind}': {data.shape[0]}x{data.shape[1]} px, "
                   f"{int(np.count_nonzero(data))} non-zero")


def check(target: str, config: Any = None, *, read: bool = True) -> Report:
    """Check a member (its id in ``config``) or any STAC API (its URL)."""
    import httpx

    from eolab.data import access

    profile, provider = None, None
    if "://" in target:
        url = target.rstrip("/")
        try:
            provider = urlsplit(url).netloc
            httpx.URL(url)
        except (ValueError, httpx.InvalidURL) as exc:
            report = Report(target)
            report.add(FAIL, f"{target!r} is not a URL ({exc})")
            return report
    else:
        member = config.member(target)
        url, profile, provider = config.member_url(member), config.member_profile(member), member.id
    report = Report(f"{target} ({url})" if url != target else target)
    with httpx.Client(timeout=20, follow_redirects=True) as client:
        landing = _get(client, url, report, "landing page")
        if landing is None:
            return report
        classes = landing.get("conformsTo") or (_get(client, f"{url}/conformance", report, "conformance")
                                                or {}).get("conformsTo") or []
        search_ok = any("item-search" in c for c in classes)
        report.add(OK if search_ok else FAIL, f"{len(classes)} conformance classes"
                   + ("" if search_ok else " (no STAC API item-search)"))
        collections = _listed(_get(client, f"{url}/collections", report, "collections"), "collections", report,
                              "collections")
        report.add(OK if collections else FAIL, f"{len(collections)} collections")
        for c in collections[:6]:
            try:
                extent = c.get("extent") or {}
                interval = ((extent.get("temporal") or {}).get("interval") or [[None, None]])[0]
                bbox = ((extent.get("spatial") or {}).get("bbox") or [[]])[0]
                report.add(OK, f"  {c['id']}: {interval[0]} .. {interval[1]}, bbox {bbox}")
            except (AttributeError, IndexError, KeyError, TypeError):
                report.add(WARN, f"  {c['id']}: its extent is not STAC's (spatial.bbox, temporal.interval)")
        if not collections:
            return report
        chosen = next((c["id"] for c in collections if "sentinel-2" in c["id"]), collections[0]["id"])
        page = _get(client, f"{url}/search", report, "sample search", collections=chosen, limit=2)
        if page is None:
            return report
        items = _listed(page, "features", report, f"sample search in {chosen}")
        report.add(OK if items else FAIL, f"sample search in {chosen}: {len(items)} items")
        links = page.get("links") if isinstance(page.get("links"), list) else []
        nxt = next((link for link in links if isinstance(link, dict) and link.get("rel") == "next"), None)
        if nxt and nxt.get("method", "GET") == "GET" and isinstance(nxt.get("href"), str):
            second = _get(client, nxt["href"], report, "next page")
            if second is not None:
                report.add(OK, f"paging: next page with {len(_listed(second, 'features', report, 'next page'))} items")
        elif items:
            report.add(WARN, "paging: no GET 'next' link on the first page")
    if not items:
        return report
    item = items[0]
    assets = item.get("assets")
    if not isinstance(assets, dict) or not all(isinstance(a, dict) and isinstance(a.get("href"), str)
                                                for a in assets.values()):
        report.add(FAIL, f"item {item['id']}: 'assets' is not an object of assets with an href each")
        return report
    try:
        describe_item(item, profile, report)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # metadata of the wrong shape
        report.add(FAIL, f"item {item['id']}: its band metadata cannot be read ({type(exc).__name__}: {exc})")
        return report
    spec = access.spec_for(provider, profile)
    if profile is None:
        hrefs = [a["href"] for a in assets.values()]
        if any(h.startswith("s3://") for h in hrefs):
            report.proposed.update({"access": "s3", "s3_endpoint": "<host of the S3 endpoint>"})
        elif any(".blob.core.windows.net" in h for h in hrefs):
            report.proposed.update({"access": "sas", "token_url": "<the provider's SAS token endpoint>"})
    key = profiles.resolve_band(item, "red", profile) or next(iter(profiles.default_bands(item)), None)
    if key:
        _credentials(item, key, spec, report)
    if read and key:
        _read_one(item, key, spec, report)
    return report


def _credentials(item: dict, key: str, spec, report: Report) -> None:
    """Whether what the access method needs is set here, without reading (names provider, asset, setting)."""
    from eolab.data import access

    asset = f"asset {key} of item {item.get('id')} ({item['assets'][key].get('href')})"
    try:
        if spec.kind == "sas" and not spec.token_url:
            raise access.AccessError(f"provider {spec.provider!r} reads assets with SAS tokens but has no token "
                                     "endpoint", hint=f"set 'profile: token_url:' of member {spec.provider!r}")
        access.gdal_options(spec)
    except access.AccessError as exc:
        report.add(FAIL, f"{asset}: {exc}")
        return
    report.add(OK, f"{asset}: access '{spec.kind}'" + (", credentials set" if spec.kind in ("s3", "bearer") else ""))


def check_remote_members(config: Any) -> list[Report]:
    """The cheap part of :func:`check` (no pixel read) for every enabled remote member."""
    return [check(member.id, config, read=False) for member in config.enabled_members if not member.is_demo]
