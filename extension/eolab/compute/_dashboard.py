"""Scheduler and worker preload: a gateway cluster's dashboards answer only the hub's gate.

Bokeh dashboards have no login, and dask-gateway's proxy forwards ``/clusters/<name>/`` to any
local process that asks; each scheduler and worker also serves its dashboard on its own
127.0.0.1 port. So on a shared machine any account could watch (and, through the scheduler's
HTTP routes, reach) another user's cluster. The gateway gives each cluster a key in its
environment (``EOLAB_DASHBOARD_KEY``, readable by the cluster's own account only): an HMAC of the
cluster's name under a secret of the hub's account. The hub's gate checks that the user owns the
cluster, computes the same key and sends it as ``X-Eolab-Dashboard``; this preload refuses every
HTTP request (pages, websockets, ``/proxy``, ``/metrics``) without it. A key opens only its own
cluster, so a user's kernel, which may read its own cluster's environment, learns nothing about
another's.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Eolab-Dashboard"
ENV = "EOLAB_DASHBOARD_KEY"


def cluster_key(secret: str, cluster_name: str) -> str:
    """The key of one cluster's dashboards (the gate and the gateway compute the same)."""
    return hmac.new(secret.encode(), b"eolab-dashboard\0" + cluster_name.encode(), hashlib.sha256).hexdigest()


def _refusal_handler():
    from tornado import web

    class Refused(web.RequestHandler):
        SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")

        def prepare(self):
            self.set_status(403)
            self.finish({"error": "this cluster's dashboard opens only through the hub, for the "
                                  "cluster's owner (its link: eolab.compute.dashboard_link(cluster))"})

    return Refused


def guard(application, key: str) -> None:
    """Refuse every request to a tornado ``application`` that lacks ``key`` in :data:`HEADER`.

    The check sits in front of routing (``find_handler``), so it also covers the Bokeh
    applications distributed mounts under the same server and websocket upgrades."""
    refused = _refusal_handler()
    find_handler = application.find_handler
    expected = key.encode()

    def checked(request, **kwargs):
        given = request.headers.get(HEADER, "").encode()
        if hmac.compare_digest(given, expected):
            return find_handler(request, **kwargs)
        return application.get_handler_delegate(request, refused)

    application.find_handler = checked


def dask_setup(server) -> None:
    from eolab import settings

    key = settings.client().dashboard_key
    application = getattr(server, "http_application", None)
    if application is None:
        return
    if not key:
        # Preloaded, so the gateway meant to guard this cluster: without its key, refuse everything.
        import logging
        import secrets

        logging.getLogger("eolab.compute").warning("%s is not set: this cluster's dashboard answers nobody", ENV)
        key = secrets.token_hex(32)
    guard(application, key)
