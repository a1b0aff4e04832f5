"""Results in a writable member provider (STAC Transactions), per-user collection ``results-<user>``."""

from __future__ import annotations

import getpass
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from eolab.analysis.publish._items import (
    WORKSPACE,
    _add_asset,
    _as_dict,
    build_item,
    default_catalog_dir,
    item_problems,
)
from eolab.errors import EolabError


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

