"""Gateway clusters' dashboards answer only requests carrying their cluster's key (the hub's gate
sends it after checking the owner): a real scheduler and worker on 127.0.0.1 with the preload."""

from __future__ import annotations

import asyncio

import pytest

from eolab.compute import _dashboard
from eolab.compute._server import DashboardGuardMixin


def test_keys_differ_per_cluster_and_secret():
    key = _dashboard.cluster_key("s", "alice-cluster")
    assert key == _dashboard.cluster_key("s", "alice-cluster")
    assert key != _dashboard.cluster_key("s", "bob-cluster")
    assert key != _dashboard.cluster_key("t", "alice-cluster")
    from eolab._guard import hub_secret

    assert hub_secret({"gateway_proxy_token": "x"}) == "x" and hub_secret({}) == ""


class _Backend:
    def get_env(self, cluster):
        return {"DASK_GATEWAY_CLUSTER_NAME": cluster.name}

    def get_scheduler_command(self, cluster):
        return ["dask", "scheduler", "--preload", "eolab.compute._orphans", "--preload",
                "dask_gateway.scheduler_preload", "--dg-idle-timeout", "0"]

    def get_worker_command(self, cluster, worker_name, scheduler_address=None):
        return ["dask", "worker", "tls://127.0.0.1:1", "--name", worker_name]


class _Guarded(DashboardGuardMixin, _Backend):
    pass


def test_the_gateway_gives_each_cluster_its_key_and_the_preload():
    from types import SimpleNamespace

    cluster = SimpleNamespace(name="abc")
    backend = _Guarded(dashboard_secret="secret")
    assert backend.get_env(cluster)[_dashboard.ENV] == _dashboard.cluster_key("secret", "abc")
    scheduler = backend.get_scheduler_command(cluster)
    # Before the gateway's own preload, whose options end the command.
    assert scheduler[:4] == ["dask", "scheduler", "--preload", "eolab.compute._dashboard"]
    assert scheduler[-3:] == ["dask_gateway.scheduler_preload", "--dg-idle-timeout", "0"]
    assert backend.get_worker_command(cluster, "w")[-2:] == ["--preload", "eolab.compute._dashboard"]
    unset = _Guarded()  # no secret configured: nothing added, dashboards as dask-gateway made them
    assert _dashboard.ENV not in unset.get_env(cluster)
    assert "eolab.compute._dashboard" not in unset.get_scheduler_command(cluster)


def test_scheduler_and_worker_dashboards_refuse_requests_without_the_key(monkeypatch):
    pytest.importorskip("bokeh")
    import httpx
    from distributed import Scheduler, Worker
    from tornado import httpclient, websocket

    key = _dashboard.cluster_key("secret", "abc")
    monkeypatch.setenv(_dashboard.ENV, key)

    async def scenario():
        preload = ["eolab.compute._dashboard"]
        async with Scheduler(host="127.0.0.1", port=0, dashboard_address="127.0.0.1:0", preload=preload) as s:
            async with Worker(s.address, host="127.0.0.1", dashboard_address="127.0.0.1:0", preload=preload) as w:
                base = f"http://127.0.0.1:{s.http_server.port}"
                worker = f"http://127.0.0.1:{w.http_server.port}"
                async with httpx.AsyncClient(timeout=30) as http:
                    out = {}
                    for label, url in (("status", f"{base}/status"), ("health", f"{base}/health"),
                                       ("metrics", f"{base}/metrics"), ("worker", f"{worker}/health"),
                                       ("missing", f"{base}/no-such-page")):
                        refused = await http.get(url)
                        wrong = await http.get(url, headers={_dashboard.HEADER: key[:-1] + "0"})
                        given = await http.get(url, headers={_dashboard.HEADER: key})
                        out[label] = (refused.status_code, wrong.status_code, given.status_code)
                    page = (await http.get(f"{base}/status", headers={_dashboard.HEADER: key})).text
                    body = (await http.get(f"{base}/status")).json()
                # The Bokeh websocket's upgrade is refused too.
                with pytest.raises(httpclient.HTTPClientError) as ws_error:
                    await websocket.websocket_connect(f"ws://127.0.0.1:{s.http_server.port}/status/ws")
                return out, page, body, ws_error.value.code

    out, page, body, ws_code = asyncio.run(scenario())
    assert out == {"status": (403, 403, 200), "health": (403, 403, 200), "metrics": (403, 403, 200),
                   "worker": (403, 403, 200), "missing": (403, 403, 404)}
    assert "bokeh" in page.lower()
    assert "through the hub" in body["error"]
    assert ws_code == 403


def test_a_preloaded_scheduler_without_its_key_answers_nobody(monkeypatch):
    """Fail closed: the preload is there because the gateway meant to guard this cluster."""
    import httpx
    from distributed import Scheduler

    monkeypatch.delenv(_dashboard.ENV, raising=False)

    async def scenario():
        async with Scheduler(host="127.0.0.1", port=0, dashboard_address="127.0.0.1:0",
                             preload=["eolab.compute._dashboard"]) as s:
            async with httpx.AsyncClient(timeout=30) as http:
                url = f"http://127.0.0.1:{s.http_server.port}/health"
                return [(await http.get(url, headers=h)).status_code for h in ({}, {_dashboard.HEADER: ""})]

    assert asyncio.run(scenario()) == [403, 403]
