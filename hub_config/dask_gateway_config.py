# dask-gateway-server configuration of an eolab deployment on one host (run by the hub as a
# managed service). Values come from the settings file written by `eolab.hub.up`, read as the
# typed model `eolab.hub.settings.ResolvedHub`.
import json
import os

from eolab.hub.settings import read_resolved

S = read_resolved()
SECRETS = json.loads(S.secrets_file.read_text())
HOST = S.host
GIB = 2**30

c = get_config()  # noqa: F821 (traitlets)

# API on a private port; the gateway's proxy serves HTTP (API, dashboards) and scheduler TLS on one.
c.DaskGateway.address = f"{HOST}:{S.gateway_api_port}"
c.Proxy.address = f"{HOST}:{S.gateway_proxy_port}"
c.Proxy.prefix = "/services/dask-gateway"
c.Proxy.api_token = SECRETS["gateway_proxy_token"]
c.DaskGateway.log_level = "INFO"

# Users authenticate with their hub token; it needs access to the hub service "dask-gateway".
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"
c.JupyterHubAuthenticator.jupyterhub_api_url = f"http://{HOST}:{S.hub_port}/hub/api"
c.JupyterHubAuthenticator.jupyterhub_service_name = "dask-gateway"
c.JupyterHubAuthenticator.use_service_access_scopes = True

# Cluster state survives a gateway restart (the hub restarts it if it crashes).
c.DBBackendBase.db_url = f"sqlite:///{S.hub_dir / 'gateway.sqlite'}"
c.DBBackendBase.db_encrypt_keys = [SECRETS["gateway_db_key"]]
c.DBBackendBase.stop_clusters_on_shutdown = True

if S.gateway_backend == "slurm":
    exec((S.hub_config / "slurm" / "gateway_slurm.py").read_text())
elif S.user_accounts:  # clusters run as their user's system account (multiuser, or demo as root)
    c.DaskGateway.backend_class = "eolab.compute._server.EolabLocalBackend"
    c.LocalBackend.clusters_directory = str(S.hub_dir / "clusters")
else:
    c.DaskGateway.backend_class = "eolab.compute._server.EolabUnsafeLocalBackend"
    c.LocalBackend.clusters_directory = str(S.hub_dir / "clusters")

def _service_token() -> str:
    from eolab import _guard

    return _guard.read_secret(_guard.token_file(S.run_dir)) or ""


# distributed 2026.x has no dask-scheduler/dask-worker scripts: absolute `dask` subcommands.
DASK = os.path.join(S.venv_bin, "dask")
c.ClusterConfig.scheduler_cmd = [DASK, "scheduler"]
c.ClusterConfig.worker_cmd = [DASK, "worker"]
c.ClusterConfig.environment = {
    **S.marker,
    "EOLAB_ORPHAN_TIMEOUT": str(S.cluster_orphan_timeout),
    "EOLAB_CATALOG_URL": S.catalog_url or "",
    # Workers read the stack's asset server, which answers other accounts with the service token only.
    "EOLAB_ASSETS_URL": S.assets_url or "",
    "EOLAB_SERVICE_TOKEN": _service_token(),
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "PATH": f"{S.venv_bin}:/usr/bin:/bin",
}
c.ClusterConfig.idle_timeout = float(S.cluster_idle_timeout)
c.ClusterConfig.scheduler_cores = 1
c.ClusterConfig.scheduler_memory = "1 G"
# No per-cluster caps: the per-user budget below binds, and refuses with a message instead of
# dask-gateway's silent "scaling to N instead".

# Per-user limits dask-gateway lacks (eolab.compute._server.UserLimitsMixin).
c.UserLimitsMixin.max_clusters_per_user = S.max_clusters_per_user
c.UserLimitsMixin.max_cores_per_user = float(S.max_cores_per_user)
c.UserLimitsMixin.max_memory_per_user = float(S.max_memory_per_user * GIB)

# Usage accounting: cluster time into the hub's ledger; monthly limits refuse new clusters.
c.UsageMixin.usage_db = str(S.usage_db)
c.UsageMixin.usage_limits = {key: limit.model_dump() for key, limit in S.usage_limits.items()}

# Dashboards answer only the gate, which sends each cluster's key (eolab.compute._dashboard).
from eolab._guard import hub_secret  # noqa: E402
from eolab.compute._server import cluster_options  # noqa: E402

c.DashboardGuardMixin.dashboard_secret = hub_secret(SECRETS)
# Workers' reads go through the hub's byte meter as their user (eolab.usage._meter).
from eolab.usage._meter import meter_secret  # noqa: E402

c.DashboardGuardMixin.meter_secret = meter_secret(SECRETS)
c.DashboardGuardMixin.meter_address = f"{HOST}:{S.meter_port}"

c.Backend.cluster_options = cluster_options(S.max_worker_cores, S.max_worker_memory,
                                            S.cluster_idle_timeout, S.cluster_max_idle_timeout)
