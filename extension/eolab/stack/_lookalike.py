"""Asset servers that behave like real providers' storage, for tests and the demo.

``create_app`` serves a directory of COGs (byte ranges, like the plain asset server) and, by its
settings, acts like:

- Planetary Computer's blob storage (``sas_lifetime`` > 0): ``GET /token/{container}`` hands out a
  SAS-like token (``se=<expiry>&sig=<hmac>``, ``msft:expiry``) valid ``sas_lifetime`` s; every asset
  request needs a valid, unexpired token in its query string, else 403.
- a provider with a connection cap (``max_connections``): a request arriving while that many are
  in flight is answered 429 with ``Retry-After``.
- a far-away object store (``latency_ms``): each request is answered after that delay.

``GET /_stats`` reports what the server saw (tokens issued and seen, refusals, 429s, the most
requests it ever had in flight) so tests can check the client's behaviour from the server's side.
Run: ``uvicorn eolab.stack._lookalike:create_app --factory`` with ``EOLAB_ASSETS_DIR`` and
``EOLAB_LOOKALIKE_*`` set.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles


class _Guard:
    """ASGI middleware: token check, connection cap and latency in front of the static files."""

    def __init__(self, app, state: dict) -> None:
        self.app, self.state = app, state

    def _valid(self, query: str, container: str) -> str | None:
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        expiry, sig = params.get("se"), params.get("sig")
        if not expiry or not sig:
            return None
        want = hmac.new(self.state["secret"], f"{container}:{expiry}".encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig) or float(expiry) < time.time():
            return None
        return sig

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(("/_stats", "/_health", "/token/")):
            return await self.app(scope, receive, send)
        state = self.state
        cap = state["max_connections"]
        if cap and state["in_flight"] >= cap:
            state["throttled"] += 1
            return await Response("too many connections", 429, headers={"Retry-After": "0"})(scope, receive, send)
        state["in_flight"] += 1
        state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
        done = False

        async def counted_send(message):
            # A request ends for the client with its last byte: count it closed before sending that.
            nonlocal done
            if message["type"] == "http.response.body" and not message.get("more_body") and not done:
                done = True
                state["in_flight"] -= 1
            await send(message)

        try:
            if state["latency"]:
                await asyncio.sleep(state["latency"])
            if state["sas_lifetime"]:
                container = path.lstrip("/").split("/", 1)[0]
                sig = self._valid(scope.get("query_string", b"").decode(), container)
                if sig is None:
                    state["refused"] += 1
                    return await Response("missing, invalid or expired SAS token", 403)(scope, receive, counted_send)
                state["tokens_seen"].add(sig)
            state["served"] += 1
            return await self.app(scope, receive, counted_send)
        finally:
            if not done:
                state["in_flight"] -= 1


def create_app(directory: str | os.PathLike | None = None, *, sas_lifetime: float | None = None,
               max_connections: int | None = None, latency_ms: float | None = None) -> Starlette:
    from eolab import settings

    conf = settings.services()
    root = Path(directory or conf.assets_dir or ".").resolve()
    state = {
        "secret": secrets.token_bytes(32),
        "sas_lifetime": conf.lookalike_sas_lifetime if sas_lifetime is None else sas_lifetime,
        "max_connections": conf.lookalike_max_connections if max_connections is None else max_connections,
        "latency": (conf.lookalike_latency_ms if latency_ms is None else latency_ms) / 1000.0,
        "in_flight": 0, "max_in_flight": 0, "served": 0, "refused": 0, "throttled": 0,
        "tokens_issued": 0, "tokens_seen": set(),
    }

    async def token(request):
        if not state["sas_lifetime"]:
            return JSONResponse({"detail": "this server needs no token"}, 404)
        container = request.path_params["container"]
        expiry = time.time() + state["sas_lifetime"]
        expiry_text = f"{expiry:.3f}"
        sig = hmac.new(state["secret"], f"{container}:{expiry_text}".encode(), hashlib.sha256).hexdigest()
        state["tokens_issued"] += 1
        stamp = dt.datetime.fromtimestamp(expiry, dt.timezone.utc).isoformat().replace("+00:00", "Z")
        return JSONResponse({"token": f"se={expiry_text}&sp=rl&sig={sig}", "msft:expiry": stamp})

    async def stats(request):
        return JSONResponse({k: (len(v) if isinstance(v, set) else v) for k, v in state.items()
                             if k not in ("secret",)})

    async def health(request):
        return JSONResponse({"status": "ok", "root": root.name})

    app = Starlette(routes=[Route("/_health", health), Route("/_stats", stats),
                            Route("/token/{container:path}", token),
                            Mount("/", app=StaticFiles(directory=root, check_dir=True))])
    app.add_middleware(_Guard, state=state)
    return app
