"""eolab.compute without a hub: the local fallback, backend choice, options and the orphan preload."""

from __future__ import annotations

import asyncio
import time

import pytest

import eolab.compute
import eolab.widgets
from eolab.compute import ClusterSpec, ComputeError
from eolab.compute._cluster import backend_name


@pytest.fixture
def no_gateway(monkeypatch):
    import dask
    import dask_gateway  # noqa: F401  (its config defaults must exist before we override, or leaving drops them)

    monkeypatch.delenv("DASK_GATEWAY__ADDRESS", raising=False)
    monkeypatch.delenv("EOLAB_COMPUTE_BACKEND", raising=False)
    with dask.config.set({"gateway.address": None}):
        yield


def test_local_cluster_when_no_gateway(no_gateway):
    assert not eolab.compute.gateway_configured()
    client = eolab.compute.get_client(workers=2, worker_cores=1)
    try:
        assert len(client.scheduler_info()["workers"]) == 2
        assert client.submit(sum, [1, 2, 3]).result() == 6
        from urllib.parse import urlsplit

        import httpx

        port = urlsplit(client.cluster.dashboard_link).port  # bound to loopback only
        assert httpx.get(f"http://127.0.0.1:{port}/status", timeout=10).status_code == 200
    finally:
        client.close()
        client.cluster.close()


def test_backend_choice_and_one_line_errors(no_gateway, monkeypatch):
    assert backend_name() == "local"
    assert backend_name(ClusterSpec(backend="slurm")) == "slurm"
    with pytest.raises(ComputeError, match="unknown compute backend 'yarn'") as err:
        backend_name(ClusterSpec(backend="yarn"))
    assert "\n" not in str(err.value)
    with pytest.raises(ComputeError, match="no Dask Gateway is configured"):
        backend_name(ClusterSpec(backend="gateway"))
    monkeypatch.setenv("EOLAB_COMPUTE_BACKEND", "slurm")
    assert backend_name() == "slurm"


def test_gateway_option_handler_and_bounds():
    from eolab.compute._server import cluster_options

    options = cluster_options(max_worker_cores=2, max_worker_memory_gib=4.0, idle_timeout=1800, max_idle_timeout=7200)
    parsed = options.parse_options({"worker_cores": 2, "worker_memory": 1.5, "idle_timeout_minutes": 5})
    config = options.get_configuration(parsed, user=None)
    assert config == {"worker_cores": 2, "worker_threads": 2, "worker_memory": int(1.5 * 2**30), "idle_timeout": 300.0}
    for bad in ({"worker_cores": 3}, {"worker_memory": 8.0}, {"idle_timeout_minutes": 121}):
        with pytest.raises(ValueError):
            options.parse_options(bad)


def test_options_form_starts_and_stops_a_local_cluster(no_gateway):
    pytest.importorskip("ipywidgets")
    form = eolab.widgets.options_widget()
    assert form.options.backend == "local" and form.fields["idle_timeout"].disabled
    form.fields["workers"].value = 1  # widget → state
    assert form.options.workers == 1
    cluster = form.start()
    try:
        assert cluster is not None and "dashboard" in form.status.value
        assert len(cluster.scheduler_info["workers"]) == 1
    finally:
        form.stop()
    assert form.cluster is None and "stopped" in form.status.value


def test_orphan_preload_stops_a_scheduler_without_clients(monkeypatch):
    from distributed import Client, Scheduler

    monkeypatch.setenv("EOLAB_ORPHAN_TIMEOUT", "1")

    async def scenario():
        async with Scheduler(host="127.0.0.1", port=0, dashboard_address=":0",
                             preload=["eolab.compute._orphans"]) as scheduler:
            async with Client(scheduler.address, asynchronous=True):
                await asyncio.sleep(2.5)  # a connected client keeps it alive past the timeout
                assert scheduler.status.name == "running"
            deadline = time.monotonic() + 15
            while scheduler.status.name == "running" and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            return scheduler.status.name

    assert asyncio.run(scenario()) in ("closed", "closing")


def test_a_gateway_client_closed_by_its_cluster_is_not_closed_again_on_collection():
    """dask-gateway's Gateway.__del__ closes again after GatewayCluster.close did; with a stopped
    loop that raised, and the notebook showed "Exception ignored in Gateway.__del__" in the next cell."""
    import gc
    import sys

    from eolab.compute._cluster import _gateway

    unraisable = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        gateway = _gateway(address="http://127.0.0.1:9", auth="basic")
        gateway.close()  # what GatewayCluster.close does
        del gateway  # its __del__ closes again
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert unraisable == []
