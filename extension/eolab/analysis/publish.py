"""Publish template results as STAC items, and find them again.

Two destinations, the same item:

* a per-user **static catalogue**: a self-contained pystac ``Catalog`` (default ``~/eolab-results``,
  or ``$EOLAB_RESULTS_CATALOG``) with one collection per workflow, readable by any STAC client
  (``pystac.Catalog.from_file``); :func:`publish` and :func:`find_results`;
* a **member provider** of the federation that accepts STAC Transactions (the ``workspace`` member
  of the catalogue configuration, or any transactional STAC API by URL), in the per-user collection
  ``results-<user>``, created on first publish; :func:`publish` with ``to="workspace"``,
  :func:`publish_to_provider`, :func:`upsert_items`. The broker only reads: the results are found
  through it as ``workspace|results-<user>`` like any other collection (:func:`find_published`,
  :class:`eolab.search.Catalogue`, the catalogue browser).

Writing to the workspace needs its token (reads need none, see :mod:`eolab.stack.workspace`):
``$EOLAB_WORKSPACE_TOKEN``, else the run directory's token file when this account may read it. In a
hub kernel ``$EOLAB_WORKSPACE_URL`` is the hub's catalog gate instead, and the kernel's hub token
(``$JUPYTERHUB_API_TOKEN``) lets it write into ``results-<user>`` only.

Each item holds the result files as assets, its footprint and time range, the provenance record
(``eolab:provenance``: workflow, parameters, version, the source item ids by provider and
collection) and ``derived_from`` links to the source items. Re-publishing the same item id
replaces it (an upsert: no duplicates).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import mimetypes
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from eolab.errors import EolabError

MEDIA_TYPES = {
    ".tif": "image/tiff; application=geotiff", ".tiff": "image/tiff; application=geotiff",
    ".gpkg": "application/geopackage+sqlite3", ".parquet": "application/vnd.apache.parquet",
    ".csv": "text/csv", ".json": "application/json", ".png": "image/png", ".html": "text/html",
    ".nc": "application/netcdf",
}
WORKSPACE = "workspace"                 # the writable member of the default catalogue configuration
MEMBER_PREFIX = "member:"               # catalog_dir="member:workspace" publishes to that member
TRANSACTION_CONFORMANCE = "https://api.stacspec.org/v1.0.0/ogcapi-features/extensions/transaction"
INVALID_ID_CHARS = ":/?#[]@!$&'()*+,;="  # what stac-fastapi-pgstac refuses in ids
SIDECAR_SUFFIX = ".provenance.json"


def default_catalog_dir() -> Path:
    from eolab import settings

    return Path(settings.client().results_catalog or Path.home() / "eolab-results")


def _open_or_create(root: Path):
    import pystac

    href = root / "catalog.json"
    if href.exists():
        return pystac.Catalog.from_file(str(href))
    root.mkdir(parents=True, exist_ok=True)
    cat = pystac.Catalog(id="eolab-results", description="Results of eolab template workflows",
                         title="My eolab results")
    cat.normalize_hrefs(str(root))
    return cat


def _check_inputs(files: Sequence[str | Path], provenance: dict,
                  bbox: Sequence[float]) -> tuple[list[Path], list[float]]:
    files = [Path(f) for f in files]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise EolabError(f"cannot publish missing files: {', '.join(missing)}")
    if not provenance.get("items"):
        raise EolabError("a result without provenance cannot be published",
                         hint="pass the record from eolab.provenance.record")
    try:
        box = [float(v) for v in bbox]
    except (TypeError, ValueError):
        raise EolabError(f"bbox {bbox!r} is not four numbers", hint="west, south, east, north in degrees") from None
    if len(box) != 4 or not (-180 <= box[0] <= 180 and -180 <= box[2] <= 180 and -90 <= box[1] <= box[3] <= 90):
        raise EolabError(f"bbox {list(bbox)} is not west, south, east, north in degrees")
    return files, box


def _day(text: str, what: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(str(text)[:10]).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise EolabError(f"{what} {text!r} is not a date", hint="use 'YYYY-MM-DD'") from None


def _slug(text: str) -> str:
    from eolab.stack import workspace as _workspace  # imported when used: the package imports the stack

    return _workspace.slug(text)


def item_id_for(workflow: str, provenance: dict, item_id: str | None = None) -> str:
    """The id a result gets: ``item_id``, else workflow and creation time of its provenance (stable)."""
    created = provenance.get("created") or dt.datetime.now(dt.timezone.utc).isoformat()
    return _slug(item_id or f"{workflow}-{created[:19]}")


def build_item(files: Sequence[str | Path], *, workflow: str, provenance: dict, bbox: Sequence[float],
               start: str, end: str, title: str | None = None, item_id: str | None = None) -> Any:
    """The STAC item of one result, without assets (pure): footprint, time range, provenance, links.

    Both destinations publish this item; they differ only in where the files (assets) live.
    """
    import pystac
    from shapely.geometry import box, mapping

    _, bbox = _check_inputs(files, provenance, bbox)
    begin, finish = _day(start, "start"), _day(end, "end")
    if finish < begin:
        raise EolabError(f"the result's period ends ({end}) before it starts ({start})")
    created = provenance.get("created") or dt.datetime.now(dt.timezone.utc).isoformat()
    summary = {k: provenance.get(k) for k in ("workflow", "eolab_version", "created", "parameters", "collections")}
    summary["source_items"] = [{"id": i["id"], "collection": i.get("collection"), "provider": i.get("provider")}
                               for i in provenance["items"]]
    item = pystac.Item(
        id=item_id_for(workflow, provenance, item_id), geometry=mapping(box(*bbox)), bbox=list(bbox),
        datetime=None, start_datetime=begin, end_datetime=finish,
        properties={"title": title or workflow, "eolab:workflow": workflow, "eolab:provenance": summary,
                    "created": created})
    for src in provenance["items"]:
        if src.get("href"):
            item.add_link(pystac.Link("derived_from", src["href"], media_type="application/geo+json",
                                      title=f"{src.get('provider')}|{src.get('collection')}:{src['id']}"))
    return item


def _add_asset(item: Any, f: Path, href: str) -> None:
    import pystac

    media = MEDIA_TYPES.get(f.suffix.lower()) or mimetypes.guess_type(f.name)[0]
    role = "metadata" if f.name.endswith(SIDECAR_SUFFIX) else "data"
    item.add_asset(f.name.replace(".", "_"), pystac.Asset(href=href, media_type=media, roles=[role], title=f.name))


def publish(files: Sequence[str | Path], *, workflow: str, provenance: dict, bbox: Sequence[float],
            start: str, end: str, title: str | None = None, catalog_dir: str | Path | None = None,
            item_id: str | None = None, copy: bool = True, to: str | None = None,
            user: str | None = None) -> Any:
    """Add one result (its files) as a STAC item; return the pystac Item.

    bbox: lon/lat of the result; start, end: the period it covers (ISO dates).
    copy: copy the files next to the item (a self-contained catalogue), else link them in place.
    to: publish to a member provider instead of the static catalogue: a writable member's id
    (``"workspace"``) or a transactional STAC API's URL, see :func:`publish_to_provider` (``user``
    names the collection there). ``catalog_dir="member:workspace"`` or an ``http(s)://`` URL does the
    same, so a template's ``publish_to`` parameter reaches the provider too.
    Re-publishing the same item id replaces it.
    """
    if to is None and isinstance(catalog_dir, str):
        if catalog_dir.startswith(MEMBER_PREFIX):
            to = catalog_dir[len(MEMBER_PREFIX):]
        elif catalog_dir.startswith(("http://", "https://")):
            to = catalog_dir
    if to is not None:
        return publish_to_provider(files, workflow=workflow, provenance=provenance, bbox=bbox, start=start,
                                   end=end, title=title, item_id=item_id, copy=copy, to=to, user=user)
    import pystac

    item = build_item(files, workflow=workflow, provenance=provenance, bbox=bbox, start=start, end=end,
                      title=title, item_id=item_id)
    files = [Path(f) for f in files]
    bbox = list(item.bbox)
    root = Path(catalog_dir) if catalog_dir else default_catalog_dir()
    cat = _open_or_create(root)
    cid = _slug(workflow)
    col = cat.get_child(cid)
    if col is None:
        col = pystac.Collection(
            id=cid, description=f"Results of the eolab workflow {workflow}", title=workflow,
            extent=pystac.Extent(pystac.SpatialExtent([list(bbox)]),
                                 pystac.TemporalExtent([[dt.datetime.fromisoformat(start[:10]),
                                                         dt.datetime.fromisoformat(end[:10])]])),
            license="other")
        cat.add_child(col)
    if col.get_item(item.id) is not None:
        col.remove_item(item.id)
    col.add_item(item)
    # Paths are final only after normalising: copy files next to the item there.
    cat.normalize_hrefs(str(root))
    item_dir = Path(item.get_self_href()).parent
    item_dir.mkdir(parents=True, exist_ok=True)
    for f in files:
        target = item_dir / f.name if copy else f.resolve()
        if copy and f.resolve() != target.resolve():
            shutil.copy2(f, target)
        _add_asset(item, f, str(target))
    ext = col.extent
    ext.spatial = pystac.SpatialExtent([_union(ext.spatial.bboxes[0], list(bbox))])
    cat.make_all_asset_hrefs_relative()
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return item


def _union(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]


def find_results(catalog_dir: str | Path | None = None, *, workflow: str | None = None,
                 bbox: Sequence[float] | None = None) -> list:
    """Published result items (optionally of one workflow, intersecting bbox), newest first."""
    import pystac
    from shapely.geometry import box, shape

    root = Path(catalog_dir) if catalog_dir else default_catalog_dir()
    href = root / "catalog.json"
    if not href.exists():
        return []
    cat = pystac.Catalog.from_file(str(href))
    out = []
    for item in cat.get_items(recursive=True):
        if workflow and item.properties.get("eolab:workflow") != workflow:
            continue
        if bbox is not None and not shape(item.geometry).intersects(box(*bbox)):
            continue
        out.append(item)
    return sorted(out, key=lambda it: it.properties.get("created", ""), reverse=True)


# --------------------------------------------------------------------------- member providers

@dataclass(frozen=True)
class Provider:
    """Where results are written: a member id (or the URL's host) and its STAC API root."""

    id: str
    url: str
    # The Authorization header writes carry (None: none); kept out of reprs and comparisons.
    authorization: str | None = field(default=None, repr=False, compare=False)


def current_user() -> str:
    """The user results belong to: ``$JUPYTERHUB_USER`` in the hub, else the login name."""
    return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()


def results_collection_id(user: str | None = None) -> str:
    """The per-user collection at the provider: ``results-<user>``."""
    from eolab.stack import workspace as _workspace

    return _workspace.user_collection(user or current_user())


def writable_provider(to: str | None = None, config: Any = None) -> Provider:
    """Resolve ``to`` (a member id, default ``workspace``, or a URL) against the catalogue configuration.

    ``config``: a :class:`eolab.config.StackConfig` or a path (default: ``$EOLAB_CATALOG_CONFIG`` or the
    packaged one, with ``EOLAB_PORT_OFFSET``). ``$EOLAB_WORKSPACE_URL`` points the default member elsewhere.
    """
    to = to or WORKSPACE
    from eolab import settings

    env_url = (settings.client().workspace_url or "").rstrip("/")
    if "://" in to:
        url = to.rstrip("/")
        # A token goes only to the workspace this environment names, never to any URL given.
        auth = _workspace_authorization(via_env_url=True) if env_url and url == env_url else None
        return Provider(id=urlsplit(to).netloc or to, url=url, authorization=auth)
    if to == WORKSPACE and config is None and env_url:
        return Provider(id=WORKSPACE, url=env_url, authorization=_workspace_authorization(via_env_url=True))
    from eolab.config import StackConfig, load_config

    if not isinstance(config, StackConfig):
        config = load_config(config)
    member = config.member(to)  # ConfigError naming the known members
    writable = ", ".join(m.id for m in config.writable_members) or "none"
    if not member.writable:
        raise EolabError(f"provider {member.id!r} is not writable: results cannot be published there",
                         hint=f"publish to a writable member ({writable}); 'writable: true' in the catalogue "
                              "configuration marks one")
    if not member.enabled:
        raise EolabError(f"provider {member.id!r} is not enabled", hint="set 'enabled: true' in the catalogue "
                                                                         "configuration and run 'eolab catalog up'")
    auth = _workspace_authorization(run_dir=config.run_dir) if member.is_workspace else None
    return Provider(id=member.id, url=config.member_url(member), authorization=auth)


def _workspace_authorization(run_dir: Any = None, via_env_url: bool = False) -> str | None:
    """The Authorization header for writes to the workspace, or None if this process has no credential.

    ``via_env_url``: the workspace is ``$EOLAB_WORKSPACE_URL``, in a hub kernel the catalog gate, which
    takes the kernel's hub token. Otherwise ``$EOLAB_WORKSPACE_TOKEN``, else ``run_dir``'s token file.
    """
    from eolab.stack import workspace as _workspace

    if via_env_url and os.environ.get("JUPYTERHUB_API_TOKEN"):
        return f"token {os.environ['JUPYTERHUB_API_TOKEN']}"
    from eolab import settings

    token = (settings.client().workspace_token or "").strip()
    if not token and run_dir is not None:
        token = _workspace.read_token(run_dir) or ""
    return f"Bearer {token}" if token else None


def results_collection(collection_id: str, user: str | None = None) -> dict:
    """The STAC collection holding one user's results (pure).

    Its extent is left open (the whole world, no time limits): items are added over time, and a
    catalogue that cached a narrower extent would otherwise skip new results outside it.
    """
    user = user or current_user()
    return {
        "type": "Collection", "stac_version": "1.0.0", "id": collection_id,
        "title": f"Results of {user}", "description": f"Results of eolab template workflows published by {user}",
        "license": "other", "keywords": ["eolab", "results"],
        "extent": {"spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]}, "temporal": {"interval": [[None, None]]}},
        "links": [], "eolab:user": user,
    }


def _as_dict(item: Any) -> dict:
    if hasattr(item, "to_dict"):
        item = item.to_dict(include_self_link=False, transform_hrefs=False)
    if not isinstance(item, dict):
        raise EolabError(f"cannot publish {type(item).__name__}: not a STAC item",
                         hint="pass pystac Items or item dicts")
    return json.loads(json.dumps(item, default=str))  # a deep copy, JSON only


def item_problems(item: dict) -> list[str]:
    """What a provider would refuse in this item (pure); empty if it can be published."""
    problems = []
    iid = item.get("id")
    if not isinstance(iid, str) or not iid:
        return ["no id"]
    bad = sorted({c for c in iid if c in INVALID_ID_CHARS})
    if bad:
        problems.append(f"id contains {' '.join(bad)}")
    if item.get("type") != "Feature":
        problems.append(f"type is {item.get('type')!r}, not 'Feature'")
    geometry = item.get("geometry")
    if not isinstance(geometry, dict) or not geometry.get("type") or "coordinates" not in geometry and \
            "geometries" not in geometry:
        problems.append("no geometry")
    else:
        try:
            from shapely.geometry import shape

            if not shape(geometry).is_valid:
                problems.append("invalid geometry")
        except Exception as exc:  # shapely raises several types for malformed GeoJSON
            problems.append(f"malformed geometry ({exc})".splitlines()[0][:120])
    bbox = item.get("bbox")
    if bbox is not None:
        try:
            ok = len(bbox) in (4, 6) and all(isinstance(v, (int, float)) for v in bbox)
        except TypeError:
            ok = False
        if not ok:
            problems.append(f"bbox {bbox!r} is not 4 numbers")
    props = item.get("properties")
    if not isinstance(props, dict):
        return problems + ["no properties"]
    stamps = {}
    for key in ("datetime", "start_datetime", "end_datetime"):
        if props.get(key) is not None:
            try:
                stamps[key] = dt.datetime.fromisoformat(str(props[key]).replace("Z", "+00:00"))
            except ValueError:
                problems.append(f"{key} {props[key]!r} is not a date-time")
    if props.get("datetime") is None and not (props.get("start_datetime") and props.get("end_datetime")):
        problems.append("neither datetime nor start_datetime and end_datetime")
    if "start_datetime" in stamps and "end_datetime" in stamps:
        try:
            if stamps["end_datetime"] < stamps["start_datetime"]:
                problems.append("end_datetime is before start_datetime")
        except TypeError:
            problems.append("start_datetime and end_datetime mix time zones")
    for key, asset in (item.get("assets") or {}).items():
        if not isinstance(asset, dict) or not asset.get("href"):
            problems.append(f"asset {key!r} has no href")
    return problems


def _describe(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("detail", "description", "message", "error", "code"):
            if body.get(key):
                return str(body[key])[:300]
    return json.dumps(body)[:300]


class _Writer:
    """The HTTP side of publishing to one provider (errors name it and quote its answer)."""

    def __init__(self, provider: Provider, client: Any = None, timeout: float = 30.0):
        import httpx

        self.provider = provider
        self._own = client is None
        self.http = client or httpx.Client(timeout=timeout)

    def close(self) -> None:
        if self._own:
            self.http.close()

    def send(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        url = f"{self.provider.url}{path}"
        headers = {"Authorization": self.provider.authorization} if self.provider.authorization else None
        try:
            return self.http.request(method, url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise EolabError(f"provider {self.provider.id!r} at {self.provider.url} is not reachable "
                             f"({type(exc).__name__})", hint="is the stack running? see 'eolab status'") from None

    def fail(self, response: Any, what: str) -> EolabError:
        hint = None
        if response.status_code in (401, 403):
            hint = ("writes need the workspace token: set EOLAB_WORKSPACE_TOKEN, or run as the account that "
                    "ran 'eolab catalog up' (it reads <run_dir>/state/workspace.token); in the hub you may "
                    "write only into your own collection results-<user>")
        return EolabError(f"provider {self.provider.id!r} refused {what}: HTTP {response.status_code}: "
                          f"{_describe(response)}", hint=hint)

    def check_writable(self) -> None:
        response = self.send("GET", "/")
        if response.status_code >= 400:
            raise self.fail(response, "its landing page")
        try:
            conforms = response.json().get("conformsTo") or []
        except (ValueError, AttributeError):
            raise EolabError(f"provider {self.provider.id!r} at {self.provider.url} is not a STAC API") from None
        if not any(str(c).rstrip("/").endswith("/extensions/transaction") for c in conforms):
            raise EolabError(f"provider {self.provider.id!r} at {self.provider.url} is not writable "
                             "(its STAC API has no Transactions extension)",
                             hint="publish to the 'workspace' member, or to a static catalogue (catalog_dir)")

    def ensure_collection(self, collection: dict) -> bool:
        """Create the collection unless it exists; True if it was created."""
        cid = collection["id"]
        response = self.send("GET", f"/collections/{quote(cid, safe='')}")
        if response.status_code == 200:
            return False
        if response.status_code != 404:
            raise self.fail(response, f"reading collection {cid!r}")
        response = self.send("POST", "/collections", collection)
        if response.status_code == 409:  # created meanwhile by another publish
            return False
        if response.status_code >= 400:
            raise self.fail(response, f"creating collection {cid!r}")
        return True

    def upsert(self, collection_id: str, items: list[dict]) -> None:
        # One bulk call is one pgstac transaction: either every item is written or none.
        body = {"items": {i["id"]: i for i in items}, "method": "upsert"}
        response = self.send("POST", f"/collections/{quote(collection_id, safe='')}/bulk_items", body)
        if response.status_code >= 400:
            raise self.fail(response, f"the items {', '.join(sorted(body['items']))}")
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        errors = answer.get("errors") if isinstance(answer, dict) else None
        if errors:
            raise EolabError(f"provider {self.provider.id!r} refused some items: "
                             + "; ".join(f"{e.get('id')}: {e.get('msg')}" for e in errors)[:500])


def upsert_items(items: Iterable[Any], *, to: str | None = None, collection: str | None = None,
                 user: str | None = None, config: Any = None, client: Any = None) -> list[dict]:
    """Write STAC items into the collection ``results-<user>`` (or ``collection``) of a writable provider.

    The collection is created on first use; items with an id already there are replaced (upsert), so
    publishing twice leaves one copy. Every item is checked first: if one cannot be published nothing
    is written, and the error names it. ``to``: a writable member's id (default ``workspace``) or the URL
    of a STAC API with the Transactions extension. ``client``: an ``httpx.Client`` to send with.
    Returns the items as written.
    """
    cid = collection or results_collection_id(user)
    prepared = []
    for item in items:
        body = _as_dict(item)
        body["collection"] = cid
        body["links"] = [ln for ln in body.get("links") or []
                         if ln.get("rel") not in ("self", "root", "parent", "collection", "items")]
        prepared.append(body)
    if not prepared:
        raise EolabError("nothing to publish: no items given")
    ids = [i.get("id") for i in prepared]
    repeated = sorted({str(i) for i in ids if ids.count(i) > 1})
    if repeated:
        raise EolabError(f"item ids repeat in one publish: {', '.join(repeated)}")
    problems = [f"{i.get('id')!r}: {'; '.join(p)}" for i in prepared if (p := item_problems(i))]
    if problems:
        raise EolabError(f"cannot publish, nothing was written: {' | '.join(problems)}"[:600],
                         hint="fix the item(s) named; the provider would refuse them")
    provider = writable_provider(to, config)
    writer = _Writer(provider, client)
    try:
        writer.check_writable()
        writer.ensure_collection(results_collection(cid, user) if collection is None else
                                 {**results_collection(cid, user), "title": cid})
        writer.upsert(cid, prepared)
    finally:
        writer.close()
    return prepared


def publish_to_provider(files: Sequence[str | Path], *, workflow: str, provenance: dict, bbox: Sequence[float],
                        start: str, end: str, title: str | None = None, to: str | None = None,
                        user: str | None = None, item_id: str | None = None, copy: bool = True,
                        files_dir: str | Path | None = None, config: Any = None, client: Any = None) -> Any:
    """Publish one result into the per-user collection ``results-<user>`` of a writable member provider.

    The item is the one :func:`publish` writes to a static catalogue (assets, footprint, time range,
    ``eolab:provenance``, ``derived_from`` links). Its assets are absolute paths: with ``copy`` the files
    are first copied to ``files_dir`` (default ``<results catalogue>/workspace/<collection>/<item>``), else
    they are linked where they are. The broker finds the item as ``<member>|results-<user>``.
    Returns the pystac Item as written.
    """
    import pystac

    item = build_item(files, workflow=workflow, provenance=provenance, bbox=bbox, start=start, end=end,
                      title=title, item_id=item_id)
    cid = results_collection_id(user)
    files = [Path(f) for f in files]
    target_dir = Path(files_dir) if files_dir else default_catalog_dir() / "workspace" / cid / item.id
    targets = [(target_dir / f.name).resolve() if copy else f.resolve() for f in files]
    for f, target in zip(files, targets):
        _add_asset(item, f, str(target))
    body = _as_dict(item)
    body["collection"] = cid
    problems = item_problems(body)
    if problems:
        raise EolabError(f"cannot publish {item.id!r}: {'; '.join(problems)}")
    writable_provider(to, config)  # refuse a non-writable member before copying anything
    if copy:
        target_dir.mkdir(parents=True, exist_ok=True)
        for f, target in zip(files, targets):
            if f.resolve() != target:
                shutil.copy2(f, target)
    written = upsert_items([body], to=to, user=user, config=config, client=client)
    return pystac.Item.from_dict(written[0])


def find_published(user: str | None = None, *, catalog_url: str | None = None, provider: str = WORKSPACE,
                   workflow: str | None = None, bbox: Sequence[float] | None = None, datetime: Any = None,
                   limit: int = 100) -> list[dict]:
    """Published results found again through the federated catalogue (the broker), newest first.

    Searches ``<provider>|results-<user>`` with :class:`eolab.search.Catalogue` (``catalog_url``:
    default ``$EOLAB_CATALOG_URL``); ``workflow``, ``bbox`` and ``datetime`` narrow the search.
    """
    from eolab.search import Catalogue

    flt = None
    if workflow:
        flt = "eolab:workflow = '" + workflow.replace("'", "''") + "'"
    with Catalogue(catalog_url) as cat:
        items = cat.items([f"{provider}|{results_collection_id(user)}"], bbox=bbox, datetime=datetime,
                          filter=flt, limit=limit, sortby=None)
    return sorted(items, key=lambda it: it["properties"].get("created", ""), reverse=True)
