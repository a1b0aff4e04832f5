"""The local JupyterHub: start, stop and report the hub with its proxy, Dask Gateway and services.

``up`` writes every resolved value (ports, paths, users, limits) to ``<run_dir>/hub/settings.json``;
the traitlets files in ``hub_config/`` only read that file (they never import eolab.catalog). The
hub then runs configurable-http-proxy and its managed services itself (dask-gateway-server, the
auth gates in front of the gateway/catalogue/tiles, the idle culler, the broker when it exists) and
restarts any that crash. Every process of one hub carries ``EOLAB_HUB_ID`` in its environment, so
``down`` can find and stop whatever outlived the hub (clusters included).

Settings come from ``EOLAB_HUB_*`` environment variables (``EOLAB_HUB_MODE=multiuser``, ...), see
:class:`HubSettings`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import secrets
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import httpx
import yaml
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from eolab import _services
from eolab.stack import workspace as _workspace
from eolab.stack.core import ServiceStatus
from eolab.config import StackConfig
from eolab.errors import ServiceError

ROOT = Path(__file__).resolve().parents[2]  # the repository (editable install)
HUB_CONFIG = ROOT / "hub_config"
CHP = HUB_CONFIG / "node_modules" / ".bin" / "configurable-http-proxy"
BROKER_APP = "eolab.catalog.broker:create_app"
TILES_APP = "eolab.tiles.app:create_app"
# Offsets of the hub's ports from its public port.
PORTS = {"port": 0, "hub_port": 1, "proxy_api_port": 2, "gateway_api_port": 3, "gateway_proxy_port": 4,
         "gate_gateway_port": 5, "gate_catalog_port": 6, "gate_tiles_port": 7}


class HubSettings(BaseSettings):
    """The hub's knobs; every field can be set as ``EOLAB_HUB_<FIELD>`` (lists as JSON)."""

    model_config = SettingsConfigDict(env_prefix="EOLAB_HUB_", extra="forbid")

    mode: Literal["demo", "multiuser"] = Field(
        "demo", description="demo: one OS user, no isolation between hub users; multiuser: one system user each")
    port: int = Field(8700, ge=1, le=65528, description="public port; the next 7 ports are used internally")
    users: list[str] = Field(default_factory=lambda: ["alice", "bob"], description="demo logins")
    admin_users: list[str] = Field(default_factory=lambda: ["admin"])
    authenticator: Literal["shared-password", "pam", "oidc"] = "shared-password"
    system_user_prefix: str = Field("eolab-", description="multiuser: hub user 'alice' runs as 'eolab-alice'")
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

    def ports(self) -> dict[str, int]:
        return {name: self.port + delta for name, delta in PORTS.items()}


def load_settings(**overrides) -> HubSettings:
    """Settings from the environment; the default port moves with ``EOLAB_PORT_OFFSET`` like the stack's."""
    settings = HubSettings(**{k: v for k, v in overrides.items() if v is not None})
    from eolab import settings as eolab_settings

    offset = eolab_settings.stack().port_offset
    if "port" not in overrides and "port" not in settings.model_fields_set:
        settings = settings.model_copy(update={"port": settings.port + offset})
    return settings


def hub_dir(config: StackConfig) -> Path:
    return Path(config.run_dir).resolve() / "hub"


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


def _secrets(path: Path) -> dict[str, str]:
    """Passwords and tokens of this hub: created once, kept across ``up``s, readable by root only."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    from cryptography.fernet import Fernet

    wanted = {
        "user_password": lambda: "eolab-" + secrets.token_urlsafe(9),
        "admin_password": lambda: secrets.token_urlsafe(32),
        "proxy_token": lambda: secrets.token_hex(32),
        "admin_token": lambda: secrets.token_hex(32),
        "gateway_proxy_token": lambda: secrets.token_hex(32),
        "gateway_db_key": lambda: Fernet.generate_key().decode(),
    }
    changed = False
    for key, make in wanted.items():
        if key not in data:
            data[key], changed = make(), True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(json.dumps(data, indent=1))
    return data


def resolve(config: StackConfig, settings: HubSettings) -> dict:
    """Everything the hub, the gateway and the gates need, as plain JSON values."""
    hdir = hub_dir(config)
    venv_bin = Path(sys.executable).parent
    broker = _app_exists(BROKER_APP)
    tiles = _app_exists(TILES_APP)
    members = {m.id: config.member_url(m) for m in config.enabled_members}
    catalog_url = config.broker_url if broker else next(iter(members.values()), None)
    ports = settings.ports()
    public = f"http://{config.host}:{ports['port']}"
    tiles_url = config.tiles_url
    writable = [m.id for m in config.writable_members if m.is_workspace]
    resolved = {
        **settings.model_dump(), **ports,
        "host": config.host,
        "hub_id": str(hdir),
        "hub_dir": str(hdir),
        "run_dir": str(Path(config.run_dir).resolve()),
        "log_dir": str(Path(config.run_dir).resolve() / "logs"),
        "hub_config": str(HUB_CONFIG),
        "repo": str(ROOT),
        "python": sys.executable,
        "venv_bin": str(venv_bin),
        "chp": str(CHP),
        "public_url": public,
        "secrets_file": str(hdir / "secrets.json"),
        "catalog_config": str(hdir / "catalog.yaml"),  # the stack's config, for the broker
        "catalog_url": catalog_url,
        "members": members,
        # The catalog gate writes into these for a user (results-<user> only), with the token it
        # reads from this file; kernels publish through the gate and never see the token.
        "writable_members": writable,
        "workspace_token_file": str(_workspace.token_file(Path(config.run_dir).resolve())),
        "workspace_url": (f"{public}/services/catalog/members/{writable[0]}"
                          if writable and catalog_url else None),
        "assets_url": config.assets_url,
        "broker": ({"app": BROKER_APP, "port": config.broker.port, "url": config.broker_url,
                    "managed": not _answers(config.broker_url + "/_health")} if broker else None),
        "tiles": ({"app": TILES_APP, "port": config.tiles.port, "url": tiles_url,
                   "managed": not _answers(tiles_url + "/_health"),
                   "env": {"EOLAB_TILES_BASE_DIR": str(Path(config.data_dir).resolve())}} if tiles else None),
        "templates": [str(ROOT / "notebooks"), str(ROOT / "workflows")],
        "is_root": os.geteuid() == 0,
        "slurm_job_name": _slurm_job_name(str(hdir)),
    }
    return resolved


def _inaccessible(path: str | Path) -> Path | None:
    """The first directory on the way to ``path`` that other users cannot enter, or None."""
    path = Path(path).resolve()
    for part in [*reversed(path.parents), path]:
        try:
            mode = part.stat().st_mode
        except OSError:
            return part
        if part.is_dir() and not mode & stat.S_IXOTH:
            return part
    return None


def system_user(settings: HubSettings, name: str) -> str:
    """The system account of hub login ``name`` in multiuser mode."""
    return settings.system_user_prefix + name


def ensure_system_users(names: list[str]) -> list[str]:
    """Create missing system users (home 0700, no password: they log in through the hub only)."""
    created = []
    for name in names:
        try:
            pwd.getpwnam(name)
            continue
        except KeyError:
            pass
        done = subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash",
                               "--comment", "eolab hub user", name], capture_output=True, text=True)
        if done.returncode != 0:
            raise ServiceError(f"could not create system user {name}: {done.stderr.strip()}",
                               hint="multiuser mode creates one system user per hub user (useradd, as root)")
        home = Path(pwd.getpwnam(name).pw_dir)
        home.chmod(0o700)
        created.append(name)
    return created


def _prepare_multiuser(resolved: dict, settings: HubSettings) -> None:
    """Multiuser mode: root, system users, and code/paths those users can reach."""
    if os.geteuid() != 0:
        raise ServiceError("multiuser mode needs root: it creates system users and starts servers as them",
                           hint="run `eolab up` as root, or use EOLAB_HUB_MODE=demo")
    # Users' servers and Dask processes run the venv's Python and read the repo (editable install) and
    # their cluster directories below the hub directory.
    for what, path in (("the venv's Python", os.path.realpath(resolved["python"])),
                       ("the venv", resolved["venv_bin"]), ("the eolab checkout", resolved["repo"]),
                       ("the hub directory", resolved["hub_dir"])):
        blocked = _inaccessible(path)
        if blocked:
            raise ServiceError(
                f"multiuser mode: {what} ({path}) is unreachable for other users: {blocked} is not searchable",
                hint="build the venv from a system Python (make install uses /usr/bin/python3.11) and keep the "
                     "checkout and EOLAB_RUN_DIR outside private homes")
    ensure_system_users([system_user(settings, u) for u in [*settings.users, *settings.admin_users]])


def _slurm_job_name(hub_id: str) -> str:
    from eolab.compute._slurm import job_name

    return job_name(hub_id)


def _chp_check() -> None:
    if not os.access(CHP, os.X_OK):
        raise ServiceError("configurable-http-proxy is not installed",
                           hint="run: npm ci --prefix hub_config (needs Node.js and npm)")


def _hub_service(config: StackConfig, resolved: dict) -> _services.Service:
    venv_bin = resolved["venv_bin"]
    env = {
        "EOLAB_HUB_SETTINGS": str(Path(resolved["hub_dir"]) / "settings.json"),
        "EOLAB_HUB_ID": resolved["hub_id"],
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "CONFIGPROXY_AUTH_TOKEN": _secrets(Path(resolved["secrets_file"]))["proxy_token"],
    }
    # `python -m`: a script's /proc cmdline starts with its interpreter, and PID files compare cmdlines.
    cmd = [resolved["python"], "-m", "jupyterhub", "-f", str(HUB_CONFIG / "jupyterhub_config.py")]
    return _services.Service(name="hub", cmd=cmd, port=resolved["port"], ready_path="/hub/health",
                             env=env, host=config.host)


def _health(resolved: dict, timeout: float = 2.0) -> dict | None:
    try:
        response = httpx.get(f"{resolved['public_url']}/hub/eolab-health", timeout=timeout)
        return response.json()
    except (httpx.HTTPError, ValueError):
        return None


def _wait_services(resolved: dict, timeout: float) -> dict:
    """Wait until the hub reports every managed service healthy; the hub starts them after itself."""
    deadline = time.monotonic() + timeout
    report = None
    while time.monotonic() < deadline:
        report = _health(resolved)
        if report and report.get("ok"):
            return report
        time.sleep(0.25)
    bad = [name for name, s in (report or {}).get("services", {}).items() if s.get("state") != "ok"]
    raise ServiceError(f"hub services did not become ready within {timeout:.0f} s: {', '.join(bad) or 'hub'}",
                       hint=f"see {resolved['log_dir']}/hub.log")


def _statuses(resolved: dict, report: dict | None, hub_state: str) -> list[ServiceStatus]:
    out = [ServiceStatus("hub", f"{resolved['public_url']}/hub/", hub_state, f"mode {resolved['mode']}")]
    for name, info in ((report or {}).get("services") or {}).items():
        state = {"ok": "running"}.get(info.get("state"), info.get("state", "down"))
        out.append(ServiceStatus(f"hub-{name}", info.get("url") or "", state, info.get("detail", "")))
    return out


def up(config: StackConfig, settings: HubSettings | None = None, timeout: float = 120.0) -> list[ServiceStatus]:
    """Start the hub (idempotent). Returns one status per process the hub runs."""
    settings = settings or load_settings()
    _chp_check()
    resolved = resolve(config, settings)
    run_dir = Path(config.run_dir)
    hdir = Path(resolved["hub_dir"])
    if _services.running_pid(run_dir, "hub"):
        return _statuses(resolved, _health(resolved), "running")
    for name, port in settings.ports().items():
        if _services.port_in_use(port, config.host):
            raise ServiceError(f"port {port} for the hub ({name}) is in use by another program",
                               hint="stop that program or set EOLAB_HUB_PORT / EOLAB_PORT_OFFSET")
    hdir.mkdir(parents=True, exist_ok=True)
    hdir.chmod(0o711)  # users' homes (demo) live below; secrets stay 0600
    _secrets(Path(resolved["secrets_file"]))
    (hdir / "settings.json").write_text(json.dumps(resolved, indent=1))
    (hdir / "catalog.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    if settings.authenticator == "oidc" and not settings.oidc_settings:
        raise ServiceError("EOLAB_HUB_AUTHENTICATOR=oidc needs EOLAB_HUB_OIDC_SETTINGS (a JSON file of provider settings)",
                           hint="see hub_config/README.md, section OIDC login")
    if settings.authenticator == "oidc" and settings.mode == "multiuser":
        # System users are created for the configured logins only; OIDC names appear at login time.
        raise ServiceError("OIDC login is not available in multiuser mode on one host",
                           hint="use OIDC with the demo mode or on Kubernetes, or multiuser with shared-password/pam")
    if settings.spawner == "slurm" and (settings.mode != "multiuser" or not settings.slurm_conf):
        raise ServiceError("EOLAB_HUB_SPAWNER=slurm needs EOLAB_HUB_MODE=multiuser and EOLAB_HUB_SLURM_CONF",
                           hint="servers are submitted as the hub user's system account (sudo -u)")
    if settings.gateway_backend == "slurm" and (settings.mode != "multiuser" or not settings.slurm_conf):
        # Jobs are submitted as the hub user's system account (sudo -u), so there must be one.
        raise ServiceError("EOLAB_HUB_GATEWAY_BACKEND=slurm needs EOLAB_HUB_MODE=multiuser and EOLAB_HUB_SLURM_CONF",
                           hint="or keep the gateway local and use EOLAB_HUB_COMPUTE_BACKEND=slurm (dask-jobqueue)")
    if settings.mode == "multiuser":
        _prepare_multiuser(resolved, settings)
    _services.start(run_dir, _hub_service(config, resolved), timeout=timeout)
    report = _wait_services(resolved, timeout)
    return _statuses(resolved, report, "started")


def credentials(config: StackConfig) -> dict[str, str]:
    """The demo logins of a running (or once started) hub: user and admin password."""
    data = _secrets(hub_dir(config) / "secrets.json")
    return {"user_password": data["user_password"], "admin_password": data["admin_password"],
            "admin_token": data["admin_token"]}


def _processes_of(hub_id: str) -> list[int]:
    """PIDs of processes started for this hub (the marker is inherited through every spawner)."""
    marker = f"EOLAB_HUB_ID={hub_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in env:
            found.append(int(entry.name))
    return found


def _kill_all(pids: list[int], grace: float = 5.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_services._alive(p) for p in pids):
            time.sleep(0.1)
        pids = [p for p in pids if _services._alive(p)]
        if not pids:
            return


def _cancel_slurm_jobs(resolved: dict) -> None:
    """Slurm jobs of this hub's gateway carry the hub id in their name; cancel what outlived it."""
    if not resolved.get("slurm_conf"):
        return
    from eolab.compute import _slurm

    _slurm.cancel_jobs_of(resolved)


def down(config: StackConfig, settings: HubSettings | None = None) -> list[ServiceStatus]:
    """Stop the hub, its proxy, services, single-user servers and every Dask cluster it started."""
    resolved = _last_resolved(config, settings)
    stopped = _services.stop(Path(config.run_dir), "hub", timeout=60.0)
    _cancel_slurm_jobs(resolved)
    leftovers = _processes_of(resolved["hub_id"])
    _kill_all(leftovers)
    state = "stopped" if stopped or leftovers else "down"
    detail = f"{len(leftovers)} leftover processes stopped" if leftovers else ""
    return [ServiceStatus("hub", f"{resolved['public_url']}/hub/", state, detail)]


def _last_resolved(config: StackConfig, settings: HubSettings | None) -> dict:
    """The values the hub was last started with (what is running), else those it would use now."""
    try:
        return json.loads((hub_dir(config) / "settings.json").read_text())
    except (OSError, ValueError):
        return resolve(config, settings or load_settings())


def status(config: StackConfig, settings: HubSettings | None = None) -> list[ServiceStatus]:
    resolved = _last_resolved(config, settings)
    if not _services.running_pid(Path(config.run_dir), "hub"):
        return [ServiceStatus("hub", f"{resolved['public_url']}/hub/", "down")]
    return _statuses(resolved, _health(resolved), "running")


def print_logins(config: StackConfig, settings: HubSettings | None = None, file=sys.stdout) -> None:
    """What ``make up`` prints: the URL and the demo logins."""
    settings = settings or load_settings()
    creds = credentials(config)
    url = f"http://{config.host}:{settings.port}/hub/login"
    print(f"JupyterHub ({settings.mode} mode): {url}", file=file)
    if settings.authenticator == "oidc":
        print(f"  login: OIDC provider of {settings.oidc_settings} (group-based access)", file=file)
    else:
        print(f"  users {', '.join(settings.users)}: password {creds['user_password']}", file=file)
        print(f"  admin {', '.join(settings.admin_users)}: password {creds['admin_password']}", file=file)
    if settings.mode == "demo":
        print("  demo mode: every hub user runs as the same OS user (no isolation between users)", file=file)
    else:
        print(f"  multiuser mode: login NAME runs as system user {settings.system_user_prefix}NAME", file=file)


class HubSession:
    """One user driving a hub over HTTP as a browser would: login form, REST API, kernels over websocket.

    Used by the integration tests and the benchmarks; ``run`` executes code in a kernel of the
    user's server and returns its stdout (raising :class:`ServiceError` with the traceback's
    last line if the code failed).
    """

    def __init__(self, url: str, username: str):
        self.url = url.rstrip("/")
        self.login_name = username
        self.username = username  # the hub's name for the user (multiuser: mapped, e.g. eolab-alice)
        self.http = httpx.Client(base_url=self.url, timeout=60.0, follow_redirects=False)
        self.token: str | None = None

    def close(self) -> None:
        self.http.close()

    def login(self, password: str) -> httpx.Response:
        self.http.get("/hub/login")
        xsrf = self.http.cookies.get("_xsrf", "")
        response = self.http.post("/hub/login", data={"username": self.login_name, "password": password,
                                                        "_xsrf": xsrf})
        if response.status_code == 302:
            me = self._api("GET", "/user")
            if me.status_code == 200:
                self.username = me.json()["name"]
        return response

    def _api(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        else:
            headers["X-XSRFToken"] = self.http.cookies.get("_xsrf", "")
        return self.http.request(method, f"/hub/api{path}", headers=headers, **kwargs)

    def new_token(self, note: str = "eolab test") -> str:
        response = self._api("POST", f"/users/{self.username}/tokens", json={"note": note, "expires_in": 3600})
        response.raise_for_status()
        self.token = response.json()["token"]
        return self.token

    def start_server(self, timeout: float = 90.0) -> float:
        """Start the user's server and wait until it answers; returns the seconds it took."""
        began = time.monotonic()
        response = self._api("POST", f"/users/{self.username}/server")
        if response.status_code not in (201, 202, 400):  # 400: already running
            raise ServiceError(f"could not start {self.username}'s server: HTTP {response.status_code} "
                               f"{response.text[:200]}")
        deadline = began + timeout
        while time.monotonic() < deadline:
            model = self._api("GET", f"/users/{self.username}").json()
            server = (model.get("servers") or {}).get("", {})
            if server.get("ready"):
                return time.monotonic() - began
            if not server.get("pending") and not server and response.status_code != 400:
                raise ServiceError(f"{self.username}'s server failed to start", hint="see the hub log")
            time.sleep(0.1)
        raise ServiceError(f"{self.username}'s server did not start within {timeout:.0f} s")

    def stop_server(self) -> None:
        self._api("DELETE", f"/users/{self.username}/server")

    def server_api(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"token {self.token}", **kwargs.pop("headers", {})}
        return self.http.request(method, f"/user/{self.username}/api{path}", headers=headers, **kwargs)

    def start_kernel(self) -> str:
        response = self.server_api("POST", "/kernels", json={"name": "python3"})
        response.raise_for_status()
        return response.json()["id"]

    def kill_kernel(self, kernel_id: str) -> None:
        self.server_api("DELETE", f"/kernels/{kernel_id}")

    def run(self, kernel_id: str, code: str, timeout: float = 180.0) -> str:
        import uuid

        import websocket  # websocket-client

        ws_url = "ws" + self.url[len("http"):] + f"/user/{self.username}/api/kernels/{kernel_id}/channels"
        ws = websocket.create_connection(ws_url, header=[f"Authorization: token {self.token}"], timeout=timeout)
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": self.username,
                       "session": uuid.uuid4().hex, "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        out: list[str] = []
        err: list[str] = []  # stderr (warnings, logs) stays out of the returned text
        error = None
        try:
            while True:
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream" and content["name"] == "stdout":
                    out.append(content["text"])
                elif kind == "stream":
                    err.append(content["text"])
                elif kind in ("execute_result", "display_data"):
                    out.append(content["data"].get("text/plain", "") + "\n")
                elif kind == "error":
                    error = f"{content['ename']}: {content['evalue']}"
                elif kind == "status" and content["execution_state"] == "idle":
                    break
        finally:
            ws.close()
        self.last_stderr = "".join(err)
        if error:
            raise ServiceError(f"kernel code failed: {error}", hint="".join(out)[-300:] or None)
        return "".join(out)
