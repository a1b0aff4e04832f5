"""The local catalogue stack: PostgreSQL/pgstac, one STAC API per demo member, and the asset server.

``up`` is idempotent: what runs already is left alone, databases are reloaded only when what a
member should hold changed. A writable member (the workspace) is different: its database is
created once and kept (it holds what users published), and its STAC API has the Transactions
extension on behind a token check (:mod:`eolab.stack.workspace`): writes need the token ``up``
keeps in ``<run_dir>/state/workspace.token`` (0600). Members and the broker answer only the stack's
own account or holders of the service token (``<run_dir>/state/service.token``, :mod:`eolab._guard`);
PostgreSQL takes passwords only (:mod:`eolab.stack.postgres`). ``down`` stops what ``up`` started,
found through the PID files.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from eolab import _guard, _services
from eolab.catalog._admission import BROKER_SERVER_ARGS
from eolab.config import MemberConfig, StackConfig
from eolab.errors import ServiceError
from eolab.stack import _load
from eolab.stack import postgres as _postgres
from eolab.stack import workspace as _workspace
from eolab.stack.postgres import Cluster


@dataclass
class ServiceStatus:
    name: str
    url: str
    state: str  # started | running | stopped | down
    detail: str = ""


def _member_service(config: StackConfig, member: MemberConfig, cluster: Cluster,
                    token: str | None = None, service_token: str | None = None) -> _services.Service:
    role = _postgres.WRITER if member.writable else _postgres.READER
    env = {
        # The member's own role; its password stays in a 0600 file (never in the environment).
        "EOLAB_PG_USER": role, "EOLAB_PG_PASSWORD_FILE": str(_postgres.password_file(cluster.run_dir, role).resolve()),
        "EOLAB_PG_HOST": config.host, "EOLAB_PG_PORT": str(config.postgres.port), "EOLAB_PG_DATABASE": member.database,
        "STAC_FASTAPI_TITLE": member.title or member.id,
        "STAC_FASTAPI_DESCRIPTION": f"eolab demo provider '{member.id}' (pgstac)",
        "STAC_FASTAPI_LANDING_ID": member.id,
        "DB_MIN_CONN_SIZE": "1", "DB_MAX_CONN_SIZE": "8",
        # stac-fastapi-pgstac reads its settings from the environment: make sure an inherited
        # value cannot turn writes on for a demo member (or off for the workspace).
        "ENABLE_TRANSACTIONS_EXTENSIONS": "true" if member.writable else "false",
        # Other local accounts need it (eolab._guard); the environment is readable by this account only.
        "EOLAB_SERVICE_TOKEN": service_token or "",
    }
    app = "eolab.stack.member:create_app"
    if member.writable:
        env["STAC_FASTAPI_DESCRIPTION"] = (f"eolab workspace '{member.id}' (pgstac, writable: STAC Transactions) "
                                           "holding published results")
        # The environment, not the command line: /proc/<pid>/cmdline is readable by every user.
        env[_workspace.TOKEN_ENV] = token or ""
        app = "eolab.stack.workspace:create_app"
    # --no-proxy-headers: the guard needs the connection's real peer, not an X-Forwarded-For the gate passes on.
    cmd = [sys.executable, "-m", "uvicorn", app, "--factory",
           "--host", config.host, "--port", str(member.port), "--log-level", "warning",
           "--no-access-log", "--no-proxy-headers"]
    return _services.Service(name=f"member-{member.id}", cmd=cmd, port=member.port, env=env, host=config.host)


def _assets_service(config: StackConfig, service_token: str | None = None) -> _services.Service:
    cmd = [sys.executable, "-m", "uvicorn", "eolab.stack._assets:create_app", "--factory",
           "--host", config.host, "--port", str(config.assets.port), "--log-level", "warning",
           "--no-access-log", "--no-proxy-headers"]  # the guard needs the real peer
    env = {"EOLAB_ASSETS_DIR": str(Path(config.data_dir).resolve()), "EOLAB_SERVICE_TOKEN": service_token or ""}
    return _services.Service(name="assets", cmd=cmd, port=config.assets.port, env=env,
                             ready_path="/_health", host=config.host)


def _lookalike_assets_service(config: StackConfig, member: MemberConfig) -> _services.Service:
    """A look-alike member's own asset server (SAS tokens, connection cap, latency), or its S3 store."""
    if member.asset_store == "s3":
        return _lookalike_s3_service(config, member)
    cmd = [sys.executable, "-m", "uvicorn", "eolab.stack._lookalike:create_app", "--factory",
           "--host", config.host, "--port", str(member.asset_port), "--log-level", "warning", "--no-access-log"]
    env = {"EOLAB_ASSETS_DIR": str(Path(config.data_dir).resolve()),
           "EOLAB_LOOKALIKE_SAS_LIFETIME": str(member.sas_lifetime),
           "EOLAB_LOOKALIKE_MAX_CONNECTIONS": str(member.profile.max_connections or 0),
           "EOLAB_LOOKALIKE_LATENCY_MS": str(member.asset_latency_ms)}
    return _services.Service(name=f"assets-{member.id}", cmd=cmd, port=member.asset_port, env=env,
                             ready_path="/_health", host=config.host)


def _lookalike_s3_service(config: StackConfig, member: MemberConfig) -> _services.Service:
    """The CDSE-like S3 store: the member's asset files in bucket 'eodata', keys minted from OIDC logins."""
    data_dir = Path(config.data_dir).resolve()
    bucket = config.member_assets_url(member) + "/"
    files = sorted({asset["href"][len(bucket):] for item in _load.iter_member_items(data_dir, member, bucket)
                    for asset in item["assets"].values() if asset["href"].startswith(bucket)})
    listing = Path(config.run_dir).resolve() / "state" / f"{member.id}.s3-files"
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("\n".join(files) + "\n")
    digest = hashlib.sha256(listing.read_bytes()).hexdigest()[:16]
    # The listing's digest on the command line: a store started with other files is restarted.
    cmd = [sys.executable, "-m", "eolab.stack._lookalike_s3", "--host", config.host, "--port", str(member.asset_port),
           "--issuer", member.oidc_issuer or "", "--files-digest", digest]
    env = {"EOLAB_ASSETS_DIR": str(data_dir), "EOLAB_LOOKALIKE_S3_FILES": str(listing),
           "EOLAB_LOOKALIKE_MAX_CONNECTIONS": str(member.profile.max_connections or 0)}
    return _services.Service(name=f"assets-{member.id}", cmd=cmd, port=member.asset_port, env=env,
                             ready_path="/_health", host=config.host)


def _broker_service(config: StackConfig, service_token: str | None = None) -> _services.Service:
    # The broker reads the effective configuration (overrides and port offset already applied).
    effective = Path(config.run_dir).resolve() / "catalog.effective.yaml"
    effective.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    cmd = [sys.executable, "-m", "uvicorn", "eolab.catalog.broker:create_app", "--factory",
           "--host", config.host, "--port", str(config.broker.port), *BROKER_SERVER_ARGS]
    env = {"EOLAB_CATALOG_CONFIG": str(effective), "EOLAB_PORT_OFFSET": "0", "EOLAB_SERVICE_TOKEN": service_token or ""}
    return _services.Service(name="broker", cmd=cmd, port=config.broker.port, env=env,
                             ready_path="/_health", host=config.host)


def _tiles_service(config: StackConfig) -> _services.Service:
    from eolab.tiles import tile_service

    return tile_service(config, port=config.tiles.port)


def _state_file(config: StackConfig, member: MemberConfig) -> Path:
    return Path(config.run_dir) / "state" / f"{member.id}.loaded"


def ensure_demo_data(config: StackConfig, progress: bool = True) -> dict:
    from eolab.demo import generate

    data_dir = Path(config.data_dir)
    if not (data_dir / "manifest.json").exists():
        print(f"generating {config.demo_size} demo data in {data_dir} ...", file=sys.stderr)
        generate(data_dir, size=config.demo_size, progress=progress)
    manifest = _load.read_manifest(data_dir)
    wanted = {c for member in config.demo_members for c in member.collections}
    missing = sorted(wanted - set(manifest.get("collections", {})))
    if missing and manifest.get("generator") == "eolab.demo":
        # Data made before a collection existed (e.g. the Landsat look-alike's): the generator is
        # seeded, so the same size and seed give the same data plus what is missing.
        print(f"demo data in {data_dir} lack {', '.join(missing)}: generating them anew "
              f"({manifest['size']}, seed {manifest['seed']}) ...", file=sys.stderr)
        generate(data_dir, size=manifest["size"], seed=manifest["seed"], progress=progress)
        manifest = _load.read_manifest(data_dir)
    return manifest


def _preflight(config: StackConfig, cluster: Cluster) -> None:
    """Refuse before starting anything if a port we need is held by another program."""
    run_dir = Path(config.run_dir)
    wanted = [] if cluster.postmaster_pid() else [("postgres", config.postgres.port)]
    if not _services.running_pid(run_dir, "assets"):
        wanted.append(("assets", config.assets.port))
    for member in config.demo_members:
        if not _services.running_pid(run_dir, f"member-{member.id}"):
            wanted.append((f"member-{member.id}", member.port))
        if member.asset_port and not _services.running_pid(run_dir, f"assets-{member.id}"):
            wanted.append((f"assets-{member.id}", member.asset_port))
    for name, port in (("broker", config.broker.port), ("tiles", config.tiles.port)):
        if not _services.running_pid(run_dir, name):
            wanted.append((name, port))
    for name, port in wanted:
        if _services.port_in_use(port, config.host):
            raise ServiceError(f"port {port} for {name} is in use by another program",
                               hint="stop that program or choose other ports (EOLAB_PORT_OFFSET or the config file)")


def _prepare_workspace(config: StackConfig, member: MemberConfig, cluster: Cluster, marker: Path) -> None:
    """Create and migrate a writable member's database once; never drop what was published."""
    created = cluster.ensure_database(member.database)
    wanted = _load.writable_fingerprint(member)
    if created or not marker.exists() or marker.read_text() != wanted:
        _services.stop(Path(config.run_dir), f"member-{member.id}")  # a migration needs it idle
        _load.prepare_writable(cluster.dsn(member.database), member)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(wanted)
        if created:
            print(f"created the empty writable member {member.id}", file=sys.stderr)


def _stop_if_command_changed(run_dir: Path, service: _services.Service) -> None:
    """Stop a running service started with another command (a workspace without the token check)."""
    if not _services.running_pid(run_dir, service.name):
        return
    try:
        recorded = json.loads(_services.pid_file(run_dir, service.name).read_text()).get("cmd")
    except (OSError, ValueError):
        return
    if recorded is not None and recorded != service.cmd:
        _services.stop(run_dir, service.name)


def up(config: StackConfig, progress: bool = True) -> list[ServiceStatus]:
    run_dir = Path(config.run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServiceError(f"cannot create the run directory {run_dir}: {exc.strerror}")
    cluster = Cluster(run_dir, config.postgres.port, config.host)
    _preflight(config, cluster)
    manifest = ensure_demo_data(config, progress=progress)
    statuses = [ServiceStatus("postgres", f"postgresql://{config.host}:{config.postgres.port}", cluster.start())]
    cluster.wait_accepting()
    cluster.ensure_roles()

    data_dir = Path(config.data_dir).resolve()
    service_token, fresh = _guard.ensure_secret(_guard.token_file(run_dir))
    if fresh:  # running services would still know no token (or an older one)
        for name in ["broker", "tiles", "assets", *(f"member-{m.id}" for m in config.demo_members)]:
            _services.stop(run_dir, name)
    token = None
    if any(m.is_workspace for m in config.demo_members):
        token, created = _workspace.ensure_token(run_dir)
        if created:  # a running workspace would still expect the token it was started with
            for member in config.demo_members:
                if member.is_workspace:
                    _services.stop(run_dir, f"member-{member.id}")
    for member in config.demo_members:
        marker = _state_file(config, member)
        if member.is_workspace:
            _prepare_workspace(config, member, cluster, marker)
            continue
        wanted = _load.fingerprint(config, member, manifest)
        if not marker.exists() or marker.read_text() != wanted:
            _services.stop(run_dir, f"member-{member.id}")  # it would hold stale connections
            cluster.recreate_database(member.database)
            n_items = _load.load_member(cluster.dsn(member.database), data_dir, member, config.member_assets_url(member))
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(wanted)
            print(f"loaded {n_items} items into member {member.id}", file=sys.stderr)

    for member in config.demo_members:  # every up: also opens databases of a cluster made before roles
        cluster.grant(member.database, _postgres.WRITER if member.writable else _postgres.READER)

    assets = _assets_service(config, service_token)
    statuses.append(ServiceStatus("assets", assets.url, _services.start(run_dir, assets)))
    for member in config.demo_members:
        if member.asset_port:
            service = _lookalike_assets_service(config, member)
            _stop_if_command_changed(run_dir, service)
            statuses.append(ServiceStatus(service.name, service.url, _services.start(run_dir, service),
                                          f"{member.lookalike or 'look-alike'} asset server"))
    for member in config.demo_members:
        service = _member_service(config, member, cluster, token if member.is_workspace else None, service_token)
        _stop_if_command_changed(run_dir, service)  # e.g. a member started before the service guard
        statuses.append(ServiceStatus(service.name, service.url, _services.start(run_dir, service)))
    broker = _broker_service(config, service_token)
    _stop_if_command_changed(run_dir, broker)
    statuses.append(ServiceStatus("broker", broker.url, _services.start(run_dir, broker),
                                  "federated STAC API over all enabled members"))
    tiles = _tiles_service(config)
    statuses.append(ServiceStatus("tiles", tiles.url, _services.start(run_dir, tiles), "quicklook tiles (titiler)"))
    return statuses


def down(config: StackConfig) -> list[ServiceStatus]:
    run_dir = Path(config.run_dir)
    statuses = [ServiceStatus(name, url, "stopped" if _services.stop(run_dir, name) else "down")
                for name, url in (("tiles", config.tiles_url), ("broker", config.broker_url))]
    for member in config.demo_members:
        name = f"member-{member.id}"
        stopped = _services.stop(run_dir, name)
        statuses.append(ServiceStatus(name, config.member_url(member), "stopped" if stopped else "down"))
    for member in config.demo_members:
        if member.asset_port:
            stopped = _services.stop(run_dir, f"assets-{member.id}")
            statuses.append(ServiceStatus(f"assets-{member.id}", config.member_asset_server(member),
                                          "stopped" if stopped else "down"))
    stopped = _services.stop(run_dir, "assets")
    statuses.append(ServiceStatus("assets", config.assets_url, "stopped" if stopped else "down"))
    cluster = Cluster(run_dir, config.postgres.port, config.host)
    statuses.append(ServiceStatus("postgres", f"postgresql://{config.host}:{config.postgres.port}",
                                  "stopped" if cluster.stop() else "down"))
    return statuses


def status(config: StackConfig) -> list[ServiceStatus]:
    run_dir = Path(config.run_dir)
    cluster = Cluster(run_dir, config.postgres.port, config.host)
    result = [ServiceStatus("postgres", f"postgresql://{config.host}:{config.postgres.port}",
                            "running" if cluster.postmaster_pid() else "down")]
    result.append(ServiceStatus("assets", config.assets_url,
                                "running" if _services.running_pid(run_dir, "assets") else "down"))
    for member in config.demo_members:
        name = f"member-{member.id}"
        result.append(ServiceStatus(name, config.member_url(member),
                                    "running" if _services.running_pid(run_dir, name) else "down",
                                    "writable (published results)" if member.writable
                                    else ", ".join(member.collections)))
    for name, url in (("broker", config.broker_url), ("tiles", config.tiles_url)):
        result.append(ServiceStatus(name, url, "running" if _services.running_pid(run_dir, name) else "down"))
    for member in config.enabled_members:
        if not member.is_demo:
            result.append(ServiceStatus(f"remote-{member.id}", config.member_url(member), "remote"))
    return result
