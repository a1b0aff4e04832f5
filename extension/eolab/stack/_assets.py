"""HTTP server for the demo assets (COGs), with the byte-range support GDAL needs.

Run: ``uvicorn eolab.stack._assets:create_app --factory`` with ``EOLAB_ASSETS_DIR`` set.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles


def create_app(directory: str | os.PathLike | None = None) -> Starlette:
    from eolab import settings

    root = Path(directory or settings.services().assets_dir or ".").resolve()

    served = {"bytes": 0, "requests": 0}  # body bytes sent: what usage accounting is checked against

    async def health(request):
        return JSONResponse({"status": "ok", "root": root.name})

    async def count(request):
        return JSONResponse(served)

    files = StaticFiles(directory=root, check_dir=True)

    async def counted(scope, receive, send):
        async def counting_send(message):
            if message["type"] == "http.response.body":
                served["bytes"] += len(message.get("body", b""))
            await send(message)

        served["requests"] += scope["type"] == "http"
        await files(scope, receive, counting_send)

    middleware = [Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "HEAD"],
                             allow_headers=["Range", "Authorization"],
                             expose_headers=["Content-Range", "Content-Length"])]
    token = settings.services().service_token
    if token:
        # Started by the stack: other local accounts (hub users' kernels and workers, whose GDAL
        # sends it: eolab.data.access.ensure_service_access) need the service token.
        from eolab._guard import ServiceGuard

        middleware.insert(0, Middleware(ServiceGuard, tokens=[token]))
    return Starlette(
        routes=[Route("/_health", health), Route("/_served", count), Mount("/", app=counted)],
        middleware=middleware,
    )
