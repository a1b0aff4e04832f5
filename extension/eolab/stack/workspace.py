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


def user_collection(user: str) -> str:
    """A user's results collection; the gate and the kernels both name it with this."""
    return f"results-{slug(user)}"


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
        except ValueError:
            return None
    if isinstance(body, dict) and isinstance(body.get("id"), str):
        return body["id"]
    return None


class TokenGuard:
    """ASGI middleware: write routes need the workspace token; the answer to a refusal is one JSON line."""

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
        await self.app(scope, receive, send)


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
