"""Per-user Dask for eolab: a Dask Gateway cluster on the hub, a LocalCluster elsewhere.

    client = eolab.compute.get_client(workers=2)          # or adaptive=(1, 4)

The options form is :func:`eolab.widgets.options_widget`. Server-side parts (gateway backends with
per-user limits, the orphan-stopping scheduler preload) live in private modules imported only by
dask-gateway-server.
"""

from eolab.compute._cluster import (
    ClusterSpec,
    ComputeError,
    cluster_options,
    dashboard_link,
    gateway_configured,
    get_client,
    list_clusters,
    new_cluster,
    stop_all,
)

__all__ = ["ClusterSpec", "ComputeError", "cluster_options", "dashboard_link", "gateway_configured",
           "get_client", "list_clusters", "new_cluster", "stop_all"]

