"""The local JupyterHub: start, stop and report the hub with its proxy, Dask Gateway and services.

Settings come from ``EOLAB_HUB_*`` environment variables (``EOLAB_HUB_MODE=multiuser``, ...), see
:class:`HubSettings`. Modules: :mod:`~eolab.hub.settings` (the knobs and the resolved values the
``hub_config/`` files read), :mod:`~eolab.hub.processes` (up/down/status, secrets, logins) and
:mod:`~eolab.hub.users` (system users of the multiuser mode). The driver tests and benchmarks use
to act as a hub user is :class:`eolab.testing.hub.HubSession`.
"""

# _processes_of, _app_exists, _inaccessible: internals the integration tests check.
from eolab.hub.processes import _processes_of as _processes_of
from eolab.hub.processes import credentials, down, print_logins, status, up
from eolab.hub.settings import (
    BROKER_APP,
    PORTS,
    TILES_APP,
    HubSettings,
    ManagedApp,
    ResolvedHub,
    hub_config_dir,
    hub_dir,
    load_settings,
    read_resolved,
    resolve,
    write_resolved,
)
from eolab.hub.settings import _app_exists as _app_exists
from eolab.hub.users import _inaccessible as _inaccessible
from eolab.hub.users import ensure_system_users, system_user

__all__ = ["BROKER_APP", "PORTS", "TILES_APP", "HubSettings", "ManagedApp", "ResolvedHub", "credentials", "down",
           "ensure_system_users", "hub_config_dir", "hub_dir", "load_settings", "print_logins", "read_resolved",
           "resolve", "status", "system_user", "up", "write_resolved"]


def __getattr__(name):
    # Looked up when asked for, not at import: EOLAB_HUB_CONFIG_DIR may point elsewhere.
    if name == "HUB_CONFIG":
        return hub_config_dir()
    if name == "ROOT":  # the checkout (or folder) holding hub_config/
        return hub_config_dir().parent
    raise AttributeError(f"module 'eolab.hub' has no attribute {name!r}")
