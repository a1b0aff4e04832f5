"""Hub-authenticated gate in front of a local service (run by the hub as a managed service).

    python gate.py gateway   # /services/dask-gateway/: API passed through (the gateway checks hub
                             # tokens itself); dashboards only for the cluster's owner
    python gate.py catalog   # /services/catalog/: the broker (members/<id>/: one member)
    python gate.py tiles     # /services/tiles/: the tile service

Requests need a hub token with access to this service (``Authorization: token ...``) or the hub's
OAuth cookie (browsers are sent through the hub login); anything else gets 401 with a hint.
Writes to the writable workspace member pass only into the user's own collection ``results-<user>``
(:func:`eolab.stack.workspace.write_allowed`); the gate adds the workspace token, which users
never see.
Crashes are the hub's business: it restarts managed services.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from urllib.parse import unquote, urlsplit

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from tornado import httpclient, ioloop, web, websocket

from eolab import _guard
from eolab.compute import _dashboard
from eolab.hub.settings import read_resolved
from eolab.stack.workspace import needs_token, write_allowed
from eolab.tiles import _pass as tile_pass

S = read_resolved()
KIND = sys.argv[1] if len(sys.argv) > 1 else "catalog"
PREFIX = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{KIND}/")
GATEWAY = f"http://{S.host}:{S.gateway_proxy_port}"
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
               "proxy-authorization", "proxy-authenticate", "host", "content-length"}
OWNER_TTL = 30.0


def _upstream_timeout() -> float:
    """How long the gate waits for its service: 120 s, or for the catalogue the broker's promise
    (``eolab:answer_within_s``: door + queues + budget) and a margin, when its budgets are longer.
    The eolab client waits that long too; a shorter gate would answer 502 first."""
    if KIND != "catalog":
        return 120.0
    try:
        from eolab.catalog._federation import answer_within
        from eolab.config import load_config

        return max(120.0, answer_within(load_config(S.catalog_config).broker.total_timeout) + 10.0)
    except Exception:  # noqa: BLE001 - the gate still runs with the plain wait
        return 120.0


UPSTREAM_TIMEOUT = _upstream_timeout()
_owners: dict[tuple[str, str], float] = {}
_tile_reads: dict[str, dict[str, int]] = {}  # user -> host -> bytes the tile service read for them
_tile_lock = threading.Lock()  # noted on the event loop, written to the ledger in a thread
READ_HEADER = "X-Eolab-Read"


def note_tile_read(user: str | None, header: str | None) -> None:
    """Add what a tile's reading fetched (``host=n;...``, from the tile service) to the user's count."""
    if not user or not header:
        return
    with _tile_lock:
        counts = _tile_reads.setdefault(user, {})
        for part in header.split(";"):
            host, _, n = part.partition("=")
            if host and n.isdigit():
                counts[host] = counts.get(host, 0) + int(n)


def flush_tile_reads() -> None:
    """Into the hub's ledger: map tiles are read on the user's behalf, and count as theirs."""
    from eolab.usage import Ledger

    with _tile_lock:
        pending = {user: counts for user, counts in _tile_reads.items() if counts}
        _tile_reads.clear()
    if not pending:
        return
    ledger = Ledger(S.usage_db)
    for user, counts in pending.items():
        try:
            ledger.record_bytes(user, counts)
        except Exception as exc:  # noqa: BLE001 - keep them for the next flush
            print(f"tile reads of {user} not recorded yet: {exc}", file=sys.stderr)
            with _tile_lock:
                for host, n in counts.items():
                    _tile_reads.setdefault(user, {})[host] = _tile_reads.get(user, {}).get(host, 0) + n


def writable_member(path: str) -> str | None:
    """The id of the writable member a catalog request path goes to, or None."""
    rest = path[len(PREFIX):] if path.startswith(PREFIX) else path.lstrip("/")
    if KIND != "catalog" or not rest.startswith("members/"):
        return None
    member = rest[len("members/"):].partition("/")[0]
    return member if member in S.writable_members else None


def workspace_token() -> str | None:
    # Read per write: `eolab catalog up` may create it after the hub started.
    try:
        return S.workspace_token_file.read_text().strip() or None
    except OSError:
        return None


_files: dict[str, tuple[float, str | None]] = {}


def read_cached(path) -> str | None:
    """A small secret file's text, read again only when it changes (hot path: every tile)."""
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return None
    cached = _files.get(str(path))
    if cached is None or cached[0] != mtime:
        try:
            cached = (mtime, open(path).read().strip() or None)
        except OSError:
            return None
        _files[str(path)] = cached
    return cached[1]


def service_token() -> str | None:
    return read_cached(_guard.token_file(S.run_dir))


def pass_key() -> bytes:
    token = service_token()
    if not token:
        raise web.HTTPError(503, "the gate cannot read the stack's service token")
    return tile_pass.key(token)


def dashboard_headers(path: str) -> dict[str, str]:
    """The key a cluster's dashboards want (sent only after the owner check in ``authorise``)."""
    parts = path[len(PREFIX):].split("/") if path.startswith(PREFIX) else []
    if KIND != "gateway" or len(parts) < 2 or parts[0] != "clusters":
        return {}
    try:
        secret = _guard.hub_secret(json.loads(read_cached(S.secrets_file) or "{}"))
    except ValueError:
        return {}
    return {_dashboard.HEADER: _dashboard.cluster_key(secret, parts[1])} if secret else {}


def public_base(path: str) -> str:
    """The public URL that stands for the upstream of ``path``: the gate's prefix for the broker,
    ``members/<id>`` below it for one member (its links must come back through the same door)."""
    rest = path[len(PREFIX):] if path.startswith(PREFIX) else path.lstrip("/")
    public = S.public_url + PREFIX.rstrip("/")
    if KIND == "catalog" and rest.startswith("members/"):
        return f"{public}/members/{rest[len('members/'):].partition('/')[0]}"
    return public


def point_through_gate(payload: bytes, upstream: str, public: str) -> bytes:
    """``payload`` with every URL at ``upstream`` (not merely starting with its text, as
    http://host:80 does http://host:8000) moved to ``public``."""
    pattern = re.escape(upstream.rstrip("/").encode()) + rb"(?=[/\"?#]|$)"
    return re.sub(pattern, lambda _: public.encode(), payload)


def upstream_for(path: str) -> tuple[str, str] | None:
    """(base URL, path upstream) for a request path below PREFIX, or None if nothing serves it."""
    rest = path[len(PREFIX):] if path.startswith(PREFIX) else path.lstrip("/")
    if KIND == "gateway":
        return GATEWAY, path  # the gateway's proxy serves under the same prefix
    if KIND == "catalog":
        if rest.startswith("members/"):
            member, _, tail = rest[len("members/"):].partition("/")
            base = S.members.get(member)
            return (base, "/" + tail) if base else None
        return S.catalog_url, "/" + rest
    if KIND == "tiles" and S.tiles:
        return S.tiles.url, "/" + rest
    return None


class GateMixin(HubOAuthenticated):
    def refuse(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message}))

    def wants_html(self) -> bool:
        return self.request.method == "GET" and "text/html" in self.request.headers.get("Accept", "")

    async def check_owner(self, cluster: str) -> bool:
        """The gateway itself decides: it answers 200 only to the cluster's owner."""
        token = self.hub_auth.get_token(self)
        user = (self.current_user or {}).get("name", "")
        key = (user, cluster)
        if _owners.get(key, 0) > time.monotonic():
            return True
        url = f"{GATEWAY}{PREFIX.rstrip('/')}/api/v1/clusters/{cluster}"
        response = await httpclient.AsyncHTTPClient().fetch(
            url, headers={"Authorization": f"jupyterhub {token}"}, raise_error=False, request_timeout=10)
        if response.code == 200:
            _owners[key] = time.monotonic() + OWNER_TTL
            return True
        return False

    async def authorise(self) -> bool:
        """True if the request may pass; otherwise the refusal is already sent."""
        path = self.request.path
        if KIND == "gateway" and path.startswith(PREFIX + "api/"):
            return True  # dask-gateway authenticates API calls with the hub token itself
        if KIND == "tiles" and self.request.method in ("GET", "HEAD"):
            if path.startswith(PREFIX + "static/") and ".." not in unquote(path):
                return True  # Panel's own JavaScript and CSS, public files
            # A pass opens the map tiles only (its URLs sit in notebooks that get shared): never
            # titiler's own routes, nor anything else behind this gate.
            tile_route = path.startswith(tuple(PREFIX + r for r in ("item/", "assets/", "base/")))
            if tile_route and self.get_query_argument(tile_pass.PARAM, None) is not None:
                # A map's tiles: the pass its user's kernel got (a burst of image requests cannot
                # each log in through the hub; eolab.tiles._pass says why).
                self.tile_user = tile_pass.verify(pass_key(), self.get_query_argument(tile_pass.PARAM))
                if self.tile_user:
                    return True
                self.refuse(401, "this map's pass is not valid (expired or not from this hub): run the "
                                 "cell that made the map again")
                return False
        if self.current_user is None:
            if self.wants_html():
                self.redirect(self.get_login_url())
            else:
                self.refuse(401, f"log in to the hub or send 'Authorization: token <hub token>' to {PREFIX}")
            return False
        if KIND == "gateway":
            parts = path[len(PREFIX):].split("/")
            if len(parts) < 2 or parts[0] != "clusters" or not await self.check_owner(parts[1]):
                self.refuse(403, "only the cluster's owner may open its dashboard")
                return False
        return True


class PassHandler(GateMixin, web.RequestHandler):
    """GET: a map pass for the logged-in user (hub token or login cookie)."""

    async def get(self):
        if self.current_user is None:
            return self.refuse(401, f"send 'Authorization: token <hub token>' to {PREFIX}_gate/pass")
        self.set_header("Cache-Control", "no-store")
        self.finish({"pass": tile_pass.mint(pass_key(), self.current_user["name"]),
                     "param": tile_pass.PARAM, "lifetime": tile_pass.LIFETIME})


class ProxyHandler(GateMixin, web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")

    def check_xsrf_cookie(self):
        pass  # token-authenticated API traffic; the upstream decides what a request may do

    async def _forward(self) -> None:
        if not await self.authorise():
            return
        target = upstream_for(self.request.path)
        if target is None:
            return self.refuse(404, f"nothing is served at {self.request.path}")
        base, path = target
        url = base.rstrip("/") + path + (f"?{self.request.query}" if self.request.query else "")
        headers = {k: v for k, v in self.request.headers.get_all() if k.lower() not in HOP_HEADERS}
        if KIND != "gateway":
            headers.pop("Authorization", None)  # the user's hub token stays here
            headers.pop("Cookie", None)
            # Plain JSON from upstream, so its links can be pointed through the gate below (a
            # compressed answer was passed on as it was, with the upstream's internal address).
            headers.pop("Accept-Encoding", None)
        headers["X-Forwarded-Prefix"] = PREFIX.rstrip("/")
        headers.pop(_dashboard.HEADER, None)
        headers.update(dashboard_headers(self.request.path))
        if KIND == "tiles" and service_token():
            # The tile service answers other accounts only with the stack's service token.
            headers["Authorization"] = f"Bearer {service_token()}"
        if writable_member(self.request.path) and needs_token(self.request.method, path):
            user = (self.current_user or {}).get("name", "")
            allowed, reason = write_allowed(user, self.request.method, path, self.request.body)
            if not allowed:
                return self.refuse(403, f"the gate refuses this write: {reason}")
            if not self.request.headers.get("Authorization"):
                # A browser's cookie alone could be sent by any web page (cross-site request).
                return self.refuse(403, "writes through the gate need 'Authorization: token <hub token>', "
                                        "not the login cookie")
            token = workspace_token()
            if token is None:
                return self.refuse(503, "the gate cannot read the workspace token; run 'eolab catalog up' "
                                        "with the hub's run directory")
            headers["Authorization"] = f"Bearer {token}"
        body = self.request.body if self.request.method in ("POST", "PUT", "PATCH") else None
        if body is None and self.request.method in ("POST", "PUT", "PATCH"):
            body = b""
        request = httpclient.HTTPRequest(url, method=self.request.method, headers=headers, body=body,
                                         follow_redirects=False, decompress_response=False,
                                         request_timeout=UPSTREAM_TIMEOUT, allow_nonstandard_methods=True)
        try:
            response = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError as exc:
            return self.refuse(502, f"{KIND} upstream {base} is not answering ({exc.strerror or exc})")
        if response.code == 599:
            return self.refuse(502, f"{KIND} upstream {base} is not answering ({response.error})")
        self.set_status(response.code, response.reason)
        self._headers.pop("Content-Type", None)
        if KIND == "tiles":
            note_tile_read(getattr(self, "tile_user", None) or (self.current_user or {}).get("name"),
                           response.headers.get(READ_HEADER))
        for name, value in response.headers.get_all():
            if name.lower() not in HOP_HEADERS and name.lower() != READ_HEADER.lower():
                self.add_header(name, value)
        payload = response.body or b""
        content_type = response.headers.get("Content-Type", "")
        if KIND != "gateway" and "json" in content_type and "Content-Encoding" not in response.headers:
            # STAC links name the upstream; point them through the gate instead.
            payload = point_through_gate(payload, base, public_base(self.request.path))
        # No body with 204/304 (tornado refuses one: a stopped cluster answers 204) or with HEAD.
        if self.request.method != "HEAD" and response.code not in (204, 304):
            self.write(payload)
        self.finish()

    get = head = post = put = delete = patch = options = _forward


class SocketHandler(GateMixin, websocket.WebSocketHandler):
    """Bokeh dashboards talk over a websocket: relay it after the same checks."""

    async def get(self, *args, **kwargs):
        if not await self.authorise():
            return
        base, path = upstream_for(self.request.path)
        target = "ws" + base[len("http"):] + path + (f"?{self.request.query}" if self.request.query else "")
        # Bokeh names a subprotocol ("bokeh", then its session token); the dashboard must see the same
        # list, and the browser gets back the one the dashboard chose, or it drops the connection.
        offered = [p.strip() for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        try:
            self.upstream = await websocket.websocket_connect(
                httpclient.HTTPRequest(target, headers=dashboard_headers(self.request.path)),
                on_message_callback=self._from_upstream,
                subprotocols=offered or None)
        except OSError:
            return self.refuse(502, "the dashboard is not answering")
        await super().get(*args, **kwargs)

    def select_subprotocol(self, subprotocols):
        chosen = getattr(getattr(self, "upstream", None), "selected_subprotocol", None)
        return chosen if chosen in subprotocols else (subprotocols[0] if subprotocols else None)

    def check_origin(self, origin):
        return urlsplit(origin).hostname in (S.host, "localhost")

    def _from_upstream(self, message):
        if message is None:
            self.close()
        elif self.ws_connection is not None:
            self.write_message(message, binary=isinstance(message, bytes))

    def on_message(self, message):
        self.upstream.write_message(message, binary=isinstance(message, bytes))

    def on_close(self):
        if getattr(self, "upstream", None) is not None:
            self.upstream.close()


class HealthHandler(web.RequestHandler):
    def get(self):
        self.finish({"ok": True, "kind": KIND})


def make_app() -> web.Application:
    routes = [
        (PREFIX + "oauth_callback", HubOAuthCallbackHandler),
        (PREFIX + "_gate/health", HealthHandler),
    ]
    if KIND == "gateway":
        routes.append((PREFIX + r"clusters/[^/]+/.*/ws", SocketHandler))
    if KIND == "tiles":
        routes.append((PREFIX + "_gate/pass", PassHandler))
    routes.append((PREFIX.rstrip("/") + r"(?:/.*)?", ProxyHandler))
    return web.Application(routes, hub_auth=HubOAuth(cache_max_age=60),
                           cookie_secret=os.urandom(32))


def main() -> None:
    url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    make_app().listen(url.port, address=url.hostname)
    if KIND == "tiles":
        # SQLite may wait for its lock: in a thread, so tiles keep flowing meanwhile.
        ioloop.PeriodicCallback(lambda: ioloop.IOLoop.current().run_in_executor(None, flush_tile_reads),
                                5000).start()
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
