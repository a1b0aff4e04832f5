"""The hub's settings: the knobs (``EOLAB_HUB_*``) and the values resolved from them.

:class:`HubSettings` is what an operator sets. :func:`resolve` turns it and the stack's
configuration into a :class:`ResolvedHub` (ports, paths, URLs, managed apps), which ``up`` writes
to ``<run_dir>/hub/settings.json``. The traitlets files in ``hub_config/`` read that file back as
the same model with :func:`read_resolved`, which finds it through ``$EOLAB_HUB_SETTINGS``: this
module is the only one that reads an ``EOLAB_HUB_*`` variable (see also :mod:`eolab.settings`).

``hub_config/`` itself is found by :func:`hub_config_dir`: ``$EOLAB_HUB_CONFIG_DIR``, else the
checkout the package runs from.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from eolab.catalog._admission import BROKER_SERVER_ARGS
from eolab.errors import ServiceError
from eolab.settings import hub_config_dir

if TYPE_CHECKING:
    from eolab.config import StackConfig

SETTINGS_VAR = "EOLAB_HUB_SETTINGS"  # the resolved settings file, set for the hub and its services
HUB_ID_VAR = "EOLAB_HUB_ID"  # marks every process of one hub (``down`` finds them by it)
BROKER_APP = "eolab.catalog.broker:create_app"
TILES_APP = "eolab.tiles.app:create_app"
# Offsets of the hub's ports from its public port.
PORTS = {"port": 0, "hub_port": 1, "proxy_api_port": 2, "gateway_api_port": 3, "gateway_proxy_port": 4,
         "gate_gateway_port": 5, "gate_catalog_port": 6, "gate_tiles_port": 7, "meter_port": 8}
_PACKAGE = Path(__file__).resolve().parents[1]  # extension/eolab


class UsageLimit(BaseModel):
    """A monthly limit of Dask cluster use (UTC calendar month); None: no limit on that measure."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    core_hours: float | None = Field(None, ge=0, description="scheduler and worker cores x hours")
    memory_gib_hours: float | None = Field(None, ge=0, description="scheduler and worker memory GiB x hours")


class _HubFields(BaseModel):
    """The knobs, shared by :class:`HubSettings` (from the environment) and :class:`ResolvedHub`."""

    mode: Literal["demo", "multiuser"] = Field(
        "demo", description="demo: the configured logins, each with a generated password (as root: one system "
                            "account each; otherwise all run as the invoking user); multiuser: one system user "
                            "each, root required")
    port: int = Field(8700, ge=1, le=65527, description="public port; the next 8 ports are used internally")
    users: list[str] = Field(default_factory=lambda: ["alice", "bob"], description="demo logins")
    admin_users: list[str] = Field(default_factory=lambda: ["admin"])
    authenticator: Literal["passwords", "shared-password", "pam", "oidc"] = Field(
        "passwords", description="passwords: one generated password per login (hashes in <hub_dir>/passwords.json); "
                                 "shared-password: one for all users")
    system_user_prefix: str = Field(
        "eolab-", description="multiuser, and demo as root: hub user 'alice' runs as system user 'eolab-alice'")
    server_idle_timeout: int = Field(3600, ge=60, description="idle culler: stop servers idle this long, s")
    cluster_idle_timeout: int = Field(1800, ge=10, description="default idle timeout of a Dask cluster, s")
    cluster_max_idle_timeout: int = Field(7200, ge=10, description="longest idle timeout a user may choose, s")
    cluster_orphan_timeout: int = Field(120, ge=5, description="stop a cluster this long after its last client left, s")
    max_clusters_per_user: int = Field(2, ge=1)
    max_cores_per_user: int = Field(4, ge=1, description="sum of worker cores over a user's clusters")
    max_memory_per_user: float = Field(8.0, gt=0, description="sum of worker memory over a user's clusters, GiB")
    max_worker_cores: int = Field(2, ge=1)
    max_worker_memory: float = Field(4.0, gt=0, description="GiB")
    compute_backend: Literal["gateway", "slurm", "local"] = Field(
        "gateway", description="what eolab.compute uses in kernels: the gateway, dask-jobqueue on Slurm, or local")
    gateway_backend: Literal["local", "slurm"] = "local"
    spawner: Literal["local", "slurm"] = Field(
        "local", description="slurm: each user's server is a Slurm job of their system account (batchspawner)")
    slurm_conf: str | None = Field(None, description="slurm.conf: kernels (and the 'slurm' gateway backend) use it")
    slurm_bin: str | None = Field(None, description="directory of sbatch/squeue/scancel wrappers")
    slurm_partition: str | None = None
    oidc_settings: str | None = Field(None, description="JSON file of OIDC provider settings (authenticator=oidc)")
    usage_limits: dict[str, UsageLimit] = Field(
        default_factory=dict, description="monthly limits: key a hub user name, 'group:NAME' or '*' (everyone "
                                          "else); a user over theirs cannot start new clusters until the month ends")
    server_cores: float = Field(1.0, gt=0, description="usage: what a user server without a CPU limit counts as, cores")
    server_memory: float = Field(2.0, gt=0, description="usage: ... without a memory limit, GiB")
    usage_interval: float = Field(30.0, gt=0, description="usage: how often running servers' time is written, s")


class HubSettings(BaseSettings, _HubFields):
    """The hub's knobs; every field can be set as ``EOLAB_HUB_<FIELD>`` (lists as JSON)."""

    model_config = SettingsConfigDict(env_prefix="EOLAB_HUB_", extra="forbid")

    def ports(self) -> dict[str, int]:
        return {name: self.port + delta for name, delta in PORTS.items()}


class ManagedApp(BaseModel):
    """An ASGI app the hub can run as a managed service (the broker, the tile service)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app: str = Field(description="module:factory, run with uvicorn --factory")
    port: int
    url: str
    managed: bool = Field(description="False if something already answers at url (the stack runs it)")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment of the process")
    server_args: list[str] = Field(default_factory=list, description="more uvicorn options")


class ResolvedHub(_HubFields):
    """Everything the hub, the gateway and the gates need: the knobs plus what follows from them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hub_port: int
    proxy_api_port: int
    gateway_api_port: int
    gateway_proxy_port: int
    gate_gateway_port: int
    gate_catalog_port: int
    gate_tiles_port: int
    meter_port: int
    host: str
    hub_id: str = Field(description=f"the value of ${HUB_ID_VAR} in every process of this hub")
    hub_dir: Path
    run_dir: Path
    log_dir: Path
    hub_config: Path = Field(description="the traitlets files (hub_config/)")
    package_dir: Path = Field(description="the eolab package the hub's processes import")
    python: str = Field(description="the interpreter of the hub and its services (the venv's)")
    venv_bin: str
    chp: str = Field(description="configurable-http-proxy")
    public_url: str
    secrets_file: Path
    catalog_config: Path = Field(description="the stack's configuration, for the broker")
    catalog_url: str | None
    members: dict[str, str] = Field(description="member id -> URL")
    # The catalog gate writes into these for a user (results-<user> only), with the token it
    # reads from workspace_token_file; kernels publish through the gate and never see the token.
    writable_members: list[str]
    workspace_token_file: Path
    workspace_url: str | None
    assets_url: str | None
    meter_allow: list[str] = Field(default_factory=list, description="what the byte meter reads besides public addresses")
    broker: ManagedApp | None
    tiles: ManagedApp | None
    templates: list[Path] = Field(description="folders copied into each new home (notebooks, workflows)")
    is_root: bool
    user_accounts: bool = Field(description="users' servers and clusters run as their own system account "
                                            "(multiuser, or demo started as root)")
    slurm_job_name: str

    @property
    def settings_file(self) -> Path:
        return self.hub_dir / "settings.json"

    @property
    def usage_db(self) -> Path:
        """The usage ledger (:class:`eolab.usage.Ledger`): written by the gateway and the hub."""
        return self.hub_dir / "usage.sqlite"

    @property
    def marker(self) -> dict[str, str]:
        """The environment entry that lets ``eolab down`` find every process this hub started."""
        return {HUB_ID_VAR: self.hub_id}

    def ports(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in PORTS}


def load_settings(**overrides) -> HubSettings:
    """Settings from the environment; the default port moves with ``EOLAB_PORT_OFFSET`` like the stack's."""
    settings = HubSettings(**{k: v for k, v in overrides.items() if v is not None})
    from eolab import settings as eolab_settings

    offset = eolab_settings.stack().port_offset
    if "port" not in overrides and "port" not in settings.model_fields_set:
        settings = settings.model_copy(update={"port": settings.port + offset})
    return settings


def _tiles_env(config) -> dict[str, str]:
    from eolab.tiles import service_env

    return service_env(config)


def hub_dir(config: StackConfig) -> Path:
    return Path(config.run_dir).resolve() / "hub"


def _chp(conf: Path) -> str:
    """configurable-http-proxy as ``npm ci --prefix hub_config`` installs it."""
    return str(conf / "node_modules" / ".bin" / "configurable-http-proxy")


def _templates() -> list[Path]:
    """The workflow templates and, next to them, the getting-started notebooks (if there)."""
    from eolab.analysis.templates import templates_dir
    from eolab.errors import EolabError

    try:
        workflows = templates_dir()
    except EolabError:
        return []
    notebooks = workflows.parent / "notebooks"
    return [notebooks, workflows] if notebooks.is_dir() else [workflows]


def _app_exists(spec: str) -> bool:
    module = spec.split(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code < 500
    except httpx.HTTPError:
        return False


def _slurm_job_name(hub_id: str) -> str:
    from eolab.compute._slurm import job_name

    return job_name(hub_id)


def _meter_allow(config: StackConfig) -> list[str]:
    """What the byte meter reads besides public addresses: the stack's asset servers (the shared one
    and look-alike members' own) and the hosts ``tiles.allow`` names; never its other services."""
    assets = {config.assets_url, *(config.member_asset_server(m) for m in config.enabled_members)}
    return sorted(assets) + list(getattr(config.tiles, "allow", []))


def resolve(config: StackConfig, settings: HubSettings) -> ResolvedHub:
    """Everything the hub, the gateway and the gates need (see :class:`ResolvedHub`)."""
    from eolab.stack import workspace

    hdir = hub_dir(config)
    run_dir = Path(config.run_dir).resolve()
    conf = hub_config_dir()
    members = {m.id: config.member_url(m) for m in config.enabled_members}
    broker = _app_exists(BROKER_APP)
    catalog_url = config.broker_url if broker else next(iter(members.values()), None)
    ports = settings.ports()
    public = f"http://{config.host}:{ports['port']}"
    tiles_url = config.tiles_url
    writable = [m.id for m in config.writable_members if m.is_workspace]
    return ResolvedHub(
        **{**settings.model_dump(), **ports},
        host=config.host,
        hub_id=str(hdir),
        hub_dir=hdir,
        run_dir=run_dir,
        log_dir=run_dir / "logs",
        hub_config=conf,
        package_dir=_PACKAGE,
        python=sys.executable,
        venv_bin=str(Path(sys.executable).parent),
        chp=_chp(conf),
        public_url=public,
        secrets_file=hdir / "secrets.json",
        catalog_config=hdir / "catalog.yaml",
        catalog_url=catalog_url,
        members=members,
        writable_members=writable,
        workspace_token_file=workspace.token_file(run_dir),
        workspace_url=(f"{public}/services/catalog/members/{writable[0]}" if writable and catalog_url else None),
        assets_url=config.assets_url,
        meter_allow=_meter_allow(config),
        broker=(ManagedApp(app=BROKER_APP, port=config.broker.port, url=config.broker_url,
                           managed=not _answers(config.broker_url + "/_health"),
                           server_args=list(BROKER_SERVER_ARGS)) if broker else None),
        tiles=(ManagedApp(app=TILES_APP, port=config.tiles.port, url=tiles_url,
                          managed=not _answers(tiles_url + "/_health"),
                          env=_tiles_env(config))
               if _app_exists(TILES_APP) else None),
        templates=_templates(),
        is_root=os.geteuid() == 0,
        user_accounts=settings.mode == "multiuser" or os.geteuid() == 0,
        slurm_job_name=_slurm_job_name(str(hdir)),
    )


def write_resolved(resolved: ResolvedHub) -> Path:
    """``<hub_dir>/settings.json``: what the hub's processes read with :func:`read_resolved`."""
    path = resolved.settings_file
    path.write_text(resolved.model_dump_json(indent=1))
    return path


def read_resolved(path: str | Path | None = None) -> ResolvedHub:
    """The resolved settings from ``path``, by default the file named by ``$EOLAB_HUB_SETTINGS``."""
    if path is None:
        path = os.environ.get(SETTINGS_VAR)
        if not path:
            raise ServiceError(f"{SETTINGS_VAR} is not set",
                               hint="the hub's processes are started by `eolab up`, which sets it")
    return ResolvedHub.model_validate_json(Path(path).read_text())
