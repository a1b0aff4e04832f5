"""The writable workspace member: stac-fastapi-pgstac behind a token check on its write routes.

    uvicorn eolab.stack.workspace:create_app --factory   # EOLAB_WORKSPACE_TOKEN in the environment

Reads (GET, and the read-only POST /search) stay open, as at every member. Any other POST, PUT,
PATCH or DELETE needs ``Authorization: Bearer <token>``: the token ``eolab catalog up`` keeps in the
run directory (:func:`token_file`). In the hub's multiuser mode only the catalog gate holds it and
writes for a user only into ``results-<user>`` (:func:`write_allowed`).
"""

from __future__ import annotations

import hmac
import json
import os
import re
from pathlib import Path
from urllib.parse import unquote

from eolab._guard import ensure_secret, read_secret

TOKEN_ENV = "EOLAB_WORKSPACE_TOKEN"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_ONLY_POSTS = frozenset({"/search"})
# Routes of the Transactions extension below one collection.
ITEM_ROUTES = frozenset({"items", "bulk_items"})


def token_file(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "state" / "workspace.token"


def ensure_token(run_dir: str | os.PathLike) -> tuple[str, bool]:
    """The run directory's workspace token, created (mode 0600) if missing; (token, created)."""
    return ensure_secret(token_file(run_dir))


def read_token(run_dir: str | os.PathLike) -> str | None:
    """The run directory's token if this process may read it, else None."""
    return read_secret(token_file(run_dir))


def needs_token(method: str, path: str) -> bool:
    """True for the requests that change the workspace (pure)."""
    method = method.upper()
    if method not in WRITE_METHODS:
        return False
    return not (method == "POST" and "/" + path.strip("/") in READ_ONLY_POSTS)


def token_problem(authorization: str | None, token: str) -> tuple[int, str] | None:
    """(HTTP status, message) if the Authorization header does not carry ``token``, else None (pure)."""
    if not authorization:
        return 401, ("writing to the workspace needs 'Authorization: Bearer <workspace token>' "
                     "(reads and POST /search need none)")
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return 401, "the Authorization header must be 'Bearer <workspace token>'"
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return 403, "wrong workspace token"
    return None


def slug(text: str) -> str:
    """Lower-case letters, digits and dashes only (collection and item ids)."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "result"


_HASHED = re.compile(r".*-[0-9a-f]{16}$")


def user_collection(user: str) -> str:
    """A user's results collection; the gate and the kernels both name it with this.

    One per user name: a name that is already a slug keeps it (``results-alice``); any other gets its
    slug plus 16 hex digits of its SHA-256 (``A.B``, ``a_b`` and ``a-b`` are three users, and so are
    ``jörg`` and ``jürg``). A plain name never ends like a hashed one, so the two kinds cannot meet.
    """
    import hashlib

    plain = slug(user)
    if plain == user and not _HASHED.match(user):
        return f"results-{plain}"
    return f"results-{plain}-{hashlib.sha256(user.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


def write_allowed(user: str, method: str, path: str, body: bytes | str | dict | None = None) -> tuple[bool, str]:
    """May hub user ``user`` send this request to the workspace? (allowed, reason) (pure).

    ``path`` is the member's own path (``/collections/...``). Reads pass; a write passes only if it
    concerns the user's collection ``results-<user>``: creating or updating it (the body's id) or
    writing its items (the path).
    """
    if not needs_token(method, path):
        return True, "read"
    method = method.upper()
    own = user_collection(user)
    raw = path.split("?", 1)[0].strip("/").split("/")
    segments = [unquote(s) for s in raw]
    if any(s in ("", ".", "..") for s in segments):
        return False, f"path {path!r} is not a workspace route"
    body_id = _body_id(body)
    if segments == ["collections"]:
        if method != "POST":
            return False, f"{method} /collections is not a write the gate passes on"
        if body_id != own:
            return False, f"you may only create your own collection {own!r}, not {body_id!r}"
        return True, "create own collection"
    if segments[0] != "collections" or len(segments) < 2:
        return False, f"{method} {path} is not a write the gate passes on; publish into {own!r}"
    if segments[1] != own:
        return False, f"you may only write into your own collection {own!r}, not {segments[1]!r}"
    if method == "PATCH":  # a patched document is checked by nobody (one bad patch broke every listing)
        return False, "PATCH is not passed on: send the whole collection or item with PUT"
    if len(segments) == 2:
        if method == "POST":
            return False, f"POST {path} is not a workspace route"
        if body_id is not None and body_id != own:
            return False, f"the collection body's id {body_id!r} is not your collection {own!r}"
        return True, "update own collection"
    if segments[2] in ITEM_ROUTES and len(segments) <= 4:
        return True, "write own items"
    return False, f"{method} {path} is not a write the gate passes on"


def _body_id(body: bytes | str | dict | None) -> str | None:
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body or b"null")
        except (ValueError, RecursionError):
            return None
    if isinstance(body, dict) and isinstance(body.get("id"), str):
        return body["id"]
    return None


# What one write may hold (an item: eolab._item_checks.MAX_ITEM_BYTES; a collection: MAX_COLLECTION_BYTES).
MAX_WRITE_BYTES = 64 * 1024 * 1024


def write_problem(method: str, path: str, body: bytes) -> tuple[int, str] | None:
    """(HTTP status, message) if this write would store something the workspace must not serve to
    everyone, else None (pure). stac-fastapi checks POST/PUT bodies of single items and collections
    but neither ``bulk_items`` nor the result of a PATCH: one item with a link lacking ``href`` made
    every search that met it fail (HTTP 500), one patched collection every collection listing."""
    method = method.upper()
    if method == "PATCH":
        return 405, "PATCH is not accepted: send the whole collection or item with PUT"
    if method not in ("POST", "PUT"):
        return None
    if len(body) > MAX_WRITE_BYTES:
        return 413, f"the request is larger than {MAX_WRITE_BYTES // 2 ** 20} MB"
    segments = path.split("?", 1)[0].strip("/").split("/")
    try:
        value = json.loads(body or b"null")
    except RecursionError:
        return 400, "the body is nested too deeply"
    except ValueError as exc:
        return 400, f"the body is not JSON: {exc}"[:200]
    if segments[:1] != ["collections"]:
        return None
    if len(segments) <= 2:
        return _collection_problem(value)
    if segments[2] == "bulk_items":
        items = value.get("items") if isinstance(value, dict) else None
        if not isinstance(items, dict):
            return 400, "bulk_items needs {'items': {id: item, ...}, 'method': 'insert' | 'upsert'}"
        for key, item in items.items():
            problem = _item_problem(item, key)
            if problem:
                return problem
        return None
    if segments[2] == "items":
        if isinstance(value, dict) and value.get("type") == "FeatureCollection":
            features = value.get("features")
            if not isinstance(features, list):
                return 400, "a FeatureCollection needs a list of features"
            return next(filter(None, (_item_problem(f) for f in features)), None)
        return _item_problem(value)
    return None


def _pydantic_problem(model, value) -> str | None:
    from pydantic import ValidationError

    try:
        model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}"
    return None


def _collection_problem(value) -> tuple[int, str] | None:
    from stac_pydantic import Collection

    if not isinstance(value, dict):
        return 400, "a collection must be a JSON object"
    from eolab._item_checks import MAX_COLLECTION_BYTES, control_text

    if len(json.dumps(value)) > MAX_COLLECTION_BYTES:  # every collection listing would carry it
        return 400, (f"collection {str(value.get('id'))[:60]!r} takes more than "
                     f"{MAX_COLLECTION_BYTES // 2 ** 20} MB as JSON")

    control = control_text(value)
    problem = _pydantic_problem(Collection, value) or (
        f"a text holds a control character: {control[:40]!r}" if control else None)
    return (400, f"collection {str(value.get('id'))[:60]!r}: {problem}") if problem else None


def _item_problem(item, key: str | None = None) -> tuple[int, str] | None:
    from stac_pydantic import Item

    from eolab._item_checks import item_problems

    name = repr(str(key if key is not None else (item.get("id") if isinstance(item, dict) else None))[:60])
    if not isinstance(item, dict):
        return 400, f"item {name} is not a JSON object"
    problems = item_problems(item)  # the kernel's own check before it publishes
    if not problems:
        problem = _pydantic_problem(Item, item)
        problems = [problem] if problem else []
    return (400, f"item {name}: {'; '.join(problems)}"[:400]) if problems else None


class TokenGuard:
    """ASGI middleware: write routes need the workspace token, and what they write is checked
    (:func:`write_problem`); the answer to a refusal is one JSON line."""

    def __init__(self, app, token: str):
        self.app = app
        self.token = token

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and needs_token(scope["method"], scope["path"]):
            headers = dict(scope.get("headers") or [])
            authorization = headers.get(b"authorization", b"").decode("latin-1") or None
            problem = token_problem(authorization, self.token)
            if problem:
                from starlette.responses import JSONResponse

                status, message = problem
                response = JSONResponse({"code": "Unauthorized" if status == 401 else "Forbidden",
                                         "description": message}, status_code=status,
                                        headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)
                return await response(scope, receive, send)
            body, receive = await _buffered(receive, MAX_WRITE_BYTES)
            problem = write_problem(scope["method"], scope["path"], body)
            if problem:
                from starlette.responses import JSONResponse

                status, message = problem
                return await JSONResponse({"code": "BadRequest" if status == 400 else "Refused",
                                           "description": message}, status_code=status)(scope, receive, send)
        await self.app(scope, receive, send)


async def _buffered(receive, limit: int):
    """The request body (at most ``limit`` + 1 bytes read), and a ``receive`` that hands it on."""
    chunks, size, more = [], 0, True
    while more and size <= limit:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return body, replay


def create_app():
    """The workspace's ASGI app (uvicorn ``--factory``); refuses to start without a token."""
    from eolab import settings

    token = (settings.services().workspace_token or "").strip()
    if not token:
        raise SystemExit(f"eolab workspace: {TOKEN_ENV} is not set; start it with 'eolab catalog up', "
                         "which keeps the token in the run directory")
    from eolab._guard import ServiceGuard
    from eolab.stack.member import pgstac_app

    # Reads: the stack's account or a token holder; writes: the workspace token on top.
    return ServiceGuard(TokenGuard(pgstac_app(writable=True), token),
                        [settings.services().service_token or "", token])
