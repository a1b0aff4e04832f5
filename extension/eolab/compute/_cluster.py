"""A Dask cluster for the current user: on the hub's Dask Gateway if one is configured, else local.

On the hub, ``DASK_GATEWAY__ADDRESS`` (set for every user) selects the gateway; the gateway's
options (worker cores, memory, idle timeout) and the user's limits are enforced by the server, and
their errors come back here as one-line :class:`ComputeError` messages. Elsewhere a threaded
``LocalCluster`` is used: it cannot outlive the kernel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from eolab import settings
from eolab.errors import EolabError


class ComputeError(EolabError):
    """A cluster could not be created, scaled or reached."""


@dataclass
class ClusterSpec:
    """What a user asks for. ``None`` means the server's (or the machine's) default."""

    workers: int | None = None
    worker_cores: int | None = None
    worker_memory: float | None = None  # GiB
    idle_timeout: float | None = None  # minutes (gateway clusters)
    adaptive: tuple[int, int] | None = None  # (minimum, maximum) workers
    backend: str | None = None  # gateway | slurm | local; default $EOLAB_COMPUTE_BACKEND, then gateway if set
    extra: dict[str, Any] = field(default_factory=dict)  # other gateway options by name


def gateway_configured() -> bool:
    """True when a Dask Gateway address is configured (the hub sets it for every user)."""
    import dask

    try:
        import dask_gateway  # noqa: F401  (registers the gateway config defaults)
    except ImportError:
        return False
    return bool(dask.config.get("gateway.address", None))


def _quiet_second_close() -> None:
    """dask-gateway's ``Gateway.__del__`` closes the client again after its cluster closed it; with
    today's distributed the stopped loop then raises, and "Exception ignored in Gateway.__del__"
    lands in whichever notebook cell runs next. A closed client has nothing left to close."""
    from dask_gateway import Gateway

    original = Gateway.__del__
    if getattr(original, "eolab_quiet", False):
        return

    def __del__(self):
        try:
            original(self)
        except RuntimeError:  # "Accessing the loop property while the loop is not running"
            pass

    __del__.eolab_quiet = True
    Gateway.__del__ = __del__


def _gateway(**kwargs):
    from dask_gateway import Gateway

    _quiet_second_close()
    return Gateway(**kwargs)


def _explain(exc: Exception) -> ComputeError:
    """dask-gateway raises ValueError/GatewayClusterError with the server's reason; keep it one line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "limit" in text or "exceed" in text:
        hint = "stop a cluster or ask for fewer/smaller workers"
    elif "401" in text or "403" in text or "Unauthorized" in text:
        hint = "your hub token is missing or lacks access to the 'dask-gateway' service; restart your server"
    else:
        hint = "see eolab.compute.cluster_options() for what the server allows"
    return ComputeError(f"Dask Gateway: {text}", hint=hint)


def cluster_options(spec: ClusterSpec | None = None):
    """The gateway's cluster options (a dask-gateway ``Options``), with ``spec`` applied."""
    spec = spec or ClusterSpec()
    try:
        options = _gateway().cluster_options()
    except Exception as exc:  # noqa: BLE001 - the client raises plain exceptions for HTTP errors
        raise _explain(exc) from None
    wanted = {"worker_cores": spec.worker_cores, "worker_memory": spec.worker_memory,
              "idle_timeout_minutes": spec.idle_timeout, **spec.extra}
    for name, value in wanted.items():
        if value is None:
            continue
        if name not in options:
            raise ComputeError(f"the gateway has no option {name!r}", hint=f"its options are: {', '.join(options)}")
        try:
            options[name] = value
        except (ValueError, TypeError) as exc:
            raise ComputeError(f"option {name}={value!r} refused: {exc}", hint="see cluster_options()") from None
    return options


def new_cluster(spec: ClusterSpec | None = None, **kwargs):
    """A running cluster: a ``GatewayCluster`` on the hub, a threaded ``LocalCluster`` elsewhere.

    ``kwargs`` are :class:`ClusterSpec` fields (``workers=2``, ``adaptive=(1, 4)``, ...).
    """
    spec = spec or ClusterSpec(**kwargs)
    backend = backend_name(spec)
    if backend == "gateway":
        return _new_gateway_cluster(spec)
    if backend == "slurm":
        from eolab.compute import _slurm

        return _slurm.new_jobqueue_cluster(spec)
    return _new_local_cluster(spec)


BACKENDS = ("gateway", "slurm", "local")


def backend_name(spec: ClusterSpec | None = None) -> str:
    """Where a new cluster runs: the spec's choice, ``$EOLAB_COMPUTE_BACKEND``, the gateway if set, else local."""
    name = (spec and spec.backend) or settings.client().compute_backend or (
        "gateway" if gateway_configured() else "local")
    if name not in BACKENDS:
        raise ComputeError(f"unknown compute backend {name!r}", hint=f"use one of: {', '.join(BACKENDS)}")
    if name == "gateway" and not gateway_configured():
        raise ComputeError("no Dask Gateway is configured", hint="set DASK_GATEWAY__ADDRESS or use backend='local'")
    return name


def _new_gateway_cluster(spec: ClusterSpec):
    options = cluster_options(spec)
    try:
        cluster = _gateway().new_cluster(options, shutdown_on_close=True)
    except Exception as exc:  # noqa: BLE001
        raise _explain(exc) from None
    try:
        if spec.adaptive:
            cluster.adapt(minimum=spec.adaptive[0], maximum=spec.adaptive[1])
        else:
            cluster.scale(1 if spec.workers is None else spec.workers)
    except Exception as exc:  # noqa: BLE001
        cluster.shutdown()
        raise _explain(exc) from None
    shutdown = cluster.shutdown

    def shutdown_after_usage_report():
        from eolab.usage import report_before_shutdown

        report_before_shutdown(cluster)  # workers' byte counters die with them
        return shutdown()

    cluster.shutdown = shutdown_after_usage_report
    return cluster


def _new_local_cluster(spec: ClusterSpec):
    from distributed import LocalCluster

    cores = spec.worker_cores or 1
    memory = f"{spec.worker_memory}GiB" if spec.worker_memory else "auto"
    workers = spec.adaptive[0] if spec.adaptive else (spec.workers or max(1, (os.cpu_count() or 1) // cores))
    # Threads, not processes: nothing can outlive the kernel.
    cluster = LocalCluster(n_workers=workers, threads_per_worker=cores, processes=False, memory_limit=memory,
                           dashboard_address="127.0.0.1:0")
    if spec.adaptive:
        cluster.adapt(minimum=spec.adaptive[0], maximum=spec.adaptive[1])
    return cluster


def get_client(spec: ClusterSpec | None = None, **kwargs):
    """A ``distributed.Client`` on a new cluster (see :func:`new_cluster`); ``client.cluster`` is it."""
    cluster = new_cluster(spec, **kwargs)
    if hasattr(cluster, "get_client") and hasattr(cluster, "gateway"):
        client = cluster.get_client()
    else:
        from distributed import Client

        client = Client(cluster)
    return client


def dashboard_link(cluster) -> str:
    """The cluster's dashboard: through the hub (owner only) for gateway clusters."""
    link = cluster.dashboard_link
    if not hasattr(cluster, "gateway"):
        return link
    public = os.environ.get("JUPYTERHUB_PUBLIC_URL") or settings.client().hub_public_url
    if link.startswith("/") and public:
        return public.rstrip("/") + link
    return link


def list_clusters() -> list:
    """This user's gateway clusters (empty without a gateway)."""
    if not gateway_configured():
        return []
    return _gateway().list_clusters()


def stop_all() -> int:
    """Stop every gateway cluster of this user; returns how many were stopped."""
    clusters = list_clusters()
    gateway = _gateway() if clusters else None
    for report in clusters:
        gateway.stop_cluster(report.name)
    return len(clusters)
