# JupyterHub configuration of an eolab deployment on one host (modes `demo` and `multiuser`).
#
# Every value comes from the settings file written by `eolab.hub.up`, read as the typed model
# `eolab.hub.settings.ResolvedHub` (the only eolab import of this file; classes such as the proxy's
# are named as strings). Start the hub with
# `eolab up` / `make up`, not by hand.
import json
import os
import shutil
import sys  # noqa: F401 (oidc/oidc_config.py, exec-ed below, uses it)
from pathlib import Path

from eolab.hub.settings import SETTINGS_VAR, read_resolved

S = read_resolved()
SECRETS = json.loads(S.secrets_file.read_text())
HUB_DIR = S.hub_dir
CONF = S.hub_config
HOST = S.host
# Each user's server, kernels, terminals and clusters run as their own system account (multiuser
# mode, or demo mode started as root); otherwise (demo, unprivileged) all run as the hub's account.
ACCOUNTS = S.user_accounts
MARKER = S.marker  # EOLAB_HUB_ID: lets `eolab down` find everything this hub started

c = get_config()  # noqa: F821 (traitlets)

# --- hub, proxy, state ------------------------------------------------------------------------
c.JupyterHub.ip = HOST
c.JupyterHub.port = S.port
c.JupyterHub.hub_ip = HOST
c.JupyterHub.hub_port = S.hub_port
c.JupyterHub.db_url = f"sqlite:///{HUB_DIR / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(HUB_DIR / "cookie_secret")
c.JupyterHub.cleanup_servers = True
# JupyterHub waits only 10 s for the proxy it starts; eolab.hub.proxy waits longer on a busy machine.
c.JupyterHub.proxy_class = "eolab.hub.proxy.PatientProxy"
c.ConfigurableHTTPProxy.command = [S.chp, "--log-level", "warn"]
c.ConfigurableHTTPProxy.api_url = f"http://{HOST}:{S.proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = str(HUB_DIR / "proxy.pid")
c.ConfigurableHTTPProxy.auth_token = SECRETS["proxy_token"]
c.ConfigurableHTTPProxy.should_start = True

# --- login ----------------------------------------------------------------------------------
if S.authenticator == "passwords":
    from eolab.hub import passwords

    c.JupyterHub.authenticator_class = passwords.authenticator_class()
    c.PasswordFileAuthenticator.hashes_file = str(passwords.hashes_file(HUB_DIR))
    c.Authenticator.admin_users = set(S.admin_users)
    c.Authenticator.allowed_users = set(S.users)
elif S.authenticator == "shared-password":
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = SECRETS["user_password"]
    c.SharedPasswordAuthenticator.admin_password = SECRETS["admin_password"]
    c.Authenticator.admin_users = set(S.admin_users)
    c.Authenticator.allowed_users = set(S.users)
elif S.authenticator == "pam":
    c.JupyterHub.authenticator_class = "pam"
    c.Authenticator.admin_users = set(S.admin_users)
    c.Authenticator.allowed_users = set(S.users)
USER_SCOPES: list = []  # more scopes of users and their servers (the login's own, below)
EXTRA_HANDLERS: list = []
if S.authenticator == "oidc":
    exec((CONF / "oidc" / "oidc_config.py").read_text())  # GenericOAuthenticator, group-based access

# --- single-user servers --------------------------------------------------------------------
VENV_BIN = S.venv_bin
c.Spawner.cmd = [os.path.join(VENV_BIN, "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.Spawner.poll_interval = 5  # also how soon a crashed managed service is noticed and restarted
if ACCOUNTS:
    c.JupyterHub.spawner_class = "localprocess"
    c.LocalProcessSpawner.shell_cmd = []
else:
    # Demo, unprivileged: every hub user runs as this one OS user; homes under the run directory.
    c.JupyterHub.spawner_class = "simple"
    c.SimpleLocalProcessSpawner.home_dir_template = str(HUB_DIR / "homes" / "{username}")
if S.spawner == "slurm":
    # HPC: each user's server is a Slurm job of their system account; the job tells the hub its port.
    import batchspawner  # noqa: F401 (registers /hub/api/batchspawner)

    SLURM_BIN = S.slurm_bin or "/usr/bin"
    c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
    c.SlurmSpawner.exec_prefix = "sudo -E -u {username}"
    c.SlurmSpawner.batch_submit_cmd = f"{SLURM_BIN}/sbatch --parsable"
    c.SlurmSpawner.batch_query_cmd = f"{SLURM_BIN}/squeue -h -j {{job_id}} -o '%T %B'"
    c.SlurmSpawner.batch_cancel_cmd = f"{SLURM_BIN}/scancel {{job_id}}"
    c.SlurmSpawner.batchspawner_singleuser_cmd = os.path.join(VENV_BIN, "batchspawner-singleuser")
    c.SlurmSpawner.req_partition = S.slurm_partition or ""
    c.SlurmSpawner.req_srun = ""  # one process per job; srun would need a job step allocation
    c.SlurmSpawner.req_runtime = "08:00:00"
    c.SlurmSpawner.req_nprocs = "1"
    c.SlurmSpawner.req_memory = "2G"
    c.SlurmSpawner.ip = HOST
    c.SlurmSpawner.start_timeout = 120
    # Named after the hub like the Dask jobs, so `eolab down` cancels servers that outlived it.
    c.SlurmSpawner.batch_script = batchspawner.SlurmSpawner.batch_script.default_value.replace(
        "--job-name=spawner-jupyterhub", f"--job-name={S.slurm_job_name}")

GATEWAY_PREFIX = "/services/dask-gateway"
TILES_BROWSER_URL = "/services/tiles"  # root-relative: the same for every address the hub is opened at


def _read(path):
    try:
        return path.read_text().strip()
    except OSError:
        return ""


c.Spawner.environment = {
    **MARKER,
    "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
    "EOLAB_CATALOG_URL": S.catalog_url or "",
    # The broker answers other accounts only with the stack's service token (eolab._guard).
    "EOLAB_SERVICE_TOKEN": _read(S.run_dir / "state" / "service.token"),
    # Publishing goes through the catalog gate (the kernel's hub token; results-<user> only).
    "EOLAB_WORKSPACE_URL": S.workspace_url or "",
    "EOLAB_ASSETS_URL": S.assets_url or "",
    # Kernels reach the tile service itself (with the service token); browsers go through the
    # hub's /services/tiles gate, which checks their login (and works when the browser is remote).
    "EOLAB_TILES_URL": S.tiles.url if S.tiles else "",
    "EOLAB_TILES_BROWSER_URL": TILES_BROWSER_URL if S.tiles else "",
    # where the kernel asks, with its hub token, for the pass its maps' tile URLs carry (eolab.tiles._pass)
    "EOLAB_TILES_PASS_URL": f"{S.public_url}{TILES_BROWSER_URL}/_gate/pass" if S.tiles else "",
    # Panel/Bokeh assets from the tile service, not a CDN (read when panel is first imported).
    **({"PANEL_CDN_ROOT": TILES_BROWSER_URL + "/static/panel/"} if S.tiles else {}),
    # dask-gateway client: API through the hub, scheduler TLS straight to the gateway proxy.
    "DASK_GATEWAY__ADDRESS": f"{S.public_url}{GATEWAY_PREFIX}",
    "DASK_GATEWAY__PROXY_ADDRESS": f"gateway://{HOST}:{S.gateway_proxy_port}",
    "DASK_GATEWAY__PUBLIC_ADDRESS": GATEWAY_PREFIX,
    "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "EOLAB_COMPUTE_BACKEND": S.compute_backend,
    # Server extensions users' servers do without (Panel previews, language servers: none installed);
    # importing them costs seconds at every server start (hub_config/singleuser/).
    "JUPYTER_CONFIG_PATH": str(CONF / "singleuser"),
}
# Data reads (GDAL) go through the hub's byte meter, which counts them per user (eolab.usage._meter);
# the credentials name the user, keyed with a secret users never see.
from eolab.usage import _meter  # noqa: E402

METER_SECRET = _meter.meter_secret(SECRETS)
if METER_SECRET:
    c.Spawner.environment.update({
        "GDAL_HTTP_PROXY": f"{HOST}:{S.meter_port}",
        "GDAL_HTTP_PROXYUSERPWD": lambda spawner: _meter.credentials(METER_SECRET, spawner.user.name),
        "EOLAB_METERED": "1",
    })
if S.slurm_conf:
    # HPC: users' Dask workers as Slurm jobs (dask-jobqueue from the kernel; hub_config/slurm/README.md).
    c.Spawner.environment.update({
        "SLURM_CONF": S.slurm_conf,
        "PATH": f"{S.slurm_bin}:{c.Spawner.environment['PATH']}" if S.slurm_bin else
                c.Spawner.environment["PATH"],
        "EOLAB_SLURM_PARTITION": S.slurm_partition or "",
    })

SERVICE_ACCESS = [f"access:services!service={name}" for name in ("dask-gateway", "catalog", "tiles")]
# The server's token (JUPYTERHUB_API_TOKEN in kernels) must reach the gateway, or Gateway() gets 401.
c.Spawner.server_token_scopes = ["access:servers!server", "users:activity!user", *SERVICE_ACCESS, *USER_SCOPES]


def _copy_templates(spawner):
    """Getting-started notebooks and workflow templates into each new home; JupyterLab defaults."""
    if ACCOUNTS:
        import pwd

        from eolab.hub.users import ensure_system_users

        ensure_system_users([spawner.user.name])  # OIDC logins get theirs at their first start
        home = Path(pwd.getpwnam(spawner.user.name).pw_dir)
    else:
        home = Path(spawner.home_dir)
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    marker = home / ".eolab-initialised"
    if marker.exists():
        return
    for src in S.templates:
        if src.is_dir() and not (home / src.name).exists():
            shutil.copytree(src, home / src.name)
    settings = home / ".jupyter" / "lab" / "user-settings" / "@jupyterlab"
    for rel, body in (("notebook-extension/tracker.jupyterlab-settings", {"autoStartDefaultKernel": True}),
                      ("apputils-extension/notification.jupyterlab-settings",
                       {"fetchNews": "false", "checkForUpdates": False})):
        target = settings / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(body))
    marker.write_text("eolab templates copied\n")
    if ACCOUNTS:
        import pwd

        pw = pwd.getpwnam(spawner.user.name)
        for path in [home, *home.rglob("*")]:
            os.lchown(path, pw.pw_uid, pw.pw_gid)
        home.chmod(0o700)


# Usage: each user server's time, written by the hub (eolab.hub.usage.ServerClock; clusters' by the gateway).
from eolab.hub.usage import ServerClock  # noqa: E402

SERVER_CLOCK = ServerClock(S.usage_db, cores=S.server_cores, memory=S.server_memory * 2**30,
                           interval=S.usage_interval)


def _pre_spawn(spawner):
    _copy_templates(spawner)
    SERVER_CLOCK.started(spawner)


def _post_stop(spawner):
    SERVER_CLOCK.stopped(spawner)


# Plain functions, not the clock's bound methods: JupyterHub deep-copies the config for every new
# spawner, and the clock holds running callbacks (which cannot be copied).
c.Spawner.pre_spawn_hook = _pre_spawn
c.Spawner.post_stop_hook = _post_stop

if ACCOUNTS:
    # Hub login "alice" is system user "eolab-alice": the prefix keeps eolab's accounts recognisable
    # and never hands a hub login an existing account of the machine.
    prefix = S.system_user_prefix
    if S.authenticator == "oidc":
        # Names come from the provider at login, after its group check: prefix them there.
        def _prefixed(authenticator, handler, authentication):
            authentication["name"] = prefix + authentication["name"]
            return authentication

        c.Authenticator.post_auth_hook = _prefixed
    else:
        c.Authenticator.username_map = {u: prefix + u for u in S.users + S.admin_users}
        c.Authenticator.allowed_users = {prefix + u for u in S.users}
        c.Authenticator.admin_users = {prefix + u for u in S.admin_users}

# --- roles and services ---------------------------------------------------------------------
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", *SERVICE_ACCESS, *USER_SCOPES]},
    {"name": "server", "scopes": ["access:servers!server", "users:activity!user", *SERVICE_ACCESS, *USER_SCOPES]},
    {"name": "idle-culler", "services": ["idle-culler"],
     "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]},
    {"name": "eolab-admin", "services": ["eolab-admin"],
     "scopes": ["list:users", "read:users", "read:servers", "read:services", "admin:servers", "admin:users",
                "tokens"]},
]

PY = S.python
GATE = str(CONF / "services" / "gate.py")
SERVICE_ENV = {**MARKER, SETTINGS_VAR: str(S.settings_file), "PYTHONUNBUFFERED": "1"}


def _logged(name, cmd):
    # Managed services inherit the hub's stdout; a small shell redirect gives each its own log,
    # private to the hub's account (made 0600 first: the service itself keeps the usual umask).
    log = S.log_dir / f"hub-{name}.log"
    script = '(umask 077; : >>"$EOLAB_LOG"); chmod 600 "$EOLAB_LOG"; exec "$@" >>"$EOLAB_LOG" 2>&1'
    return ["/bin/sh", "-c", script, name, *cmd], {"EOLAB_LOG": str(log)}


def _service(name, cmd, url=None, env=None, **extra):
    command, log_env = _logged(name, cmd)
    spec = {"name": name, "command": command, "environment": {**SERVICE_ENV, **log_env, **(env or {})}}
    if url:
        spec.update(url=url, oauth_no_confirm=True)
    spec.update(extra)
    return spec


services = [
    _service("dask-gateway", [PY, GATE, "gateway"], url=f"http://{HOST}:{S.gate_gateway_port}"),
    _service("dask-gateway-server", [os.path.join(VENV_BIN, "dask-gateway-server"),
                                     "-f", str(CONF / "dask_gateway_config.py")]),
    _service("idle-culler", [PY, str(CONF / "services" / "culler.py"),
                             f"--timeout={S.server_idle_timeout}",
                             f"--cull-every={max(30, S.server_idle_timeout // 6)}"]),
    {"name": "eolab-admin", "api_token": SECRETS["admin_token"]},
]
if METER_SECRET:
    services.append(_service("meter", [PY, "-m", "eolab.hub.meter"]))
if S.catalog_url:
    services.append(_service("catalog", [PY, GATE, "catalog"], url=f"http://{HOST}:{S.gate_catalog_port}"))
if S.broker and S.broker.managed:
    b = S.broker
    services.append(_service("catalog-broker", [PY, "-m", "uvicorn", b.app, "--factory", "--host", HOST,
                                                "--port", str(b.port), *b.server_args],
                             # Other accounts reach it with the stack's service token only (eolab._guard).
                             env={"EOLAB_CATALOG_CONFIG": str(S.catalog_config),
                                  "EOLAB_SERVICE_TOKEN": _read(S.run_dir / "state" / "service.token")}))
if S.tiles:
    t = S.tiles
    services.append(_service("tiles", [PY, GATE, "tiles"], url=f"http://{HOST}:{S.gate_tiles_port}"))
    if t.managed:
        services.append(_service("tiles-server", [PY, "-m", "uvicorn", t.app, "--factory", "--host", HOST,
                                                  "--port", str(t.port), "--log-level", "warning",
                                                  "--no-proxy-headers"],
                                 env=dict(t.env)))
c.JupyterHub.services = services

# --- health page: every managed service's process and address, at /hub/eolab-health ---------
from jupyterhub.handlers.base import BaseHandler  # noqa: E402
from tornado.httpclient import AsyncHTTPClient  # noqa: E402

PROBES = {"dask-gateway-server": f"http://{HOST}:{S.gateway_proxy_port}{GATEWAY_PREFIX}/api/health",
          "catalog-broker": (S.broker.url if S.broker else "") + "/_health",
          "tiles-server": (S.tiles.url if S.tiles else "") + "/_health"}


class HealthHandler(BaseHandler):
    """JSON: each managed service ok/down (the hub restarts crashed ones); 503 while any is down.

    Anyone may ask whether the hub is healthy; the per-service details (PIDs, internal addresses)
    go to admins only (an admin login or the admin token: the ``admin:servers`` scope)."""

    _accept_token_auth = True  # JSON for `eolab up`/`status`, which ask with the admin token

    def check_xsrf_cookie(self):
        pass

    async def get(self):
        report, ok = {}, True
        for name, service in self.services.items():
            if not service.managed:
                continue
            proc = getattr(service, "proc", None)
            alive = proc is not None and proc.poll() is None
            probe = PROBES.get(name) or (service.url and f"{service.url.rstrip('/')}/services/{name}/_gate/health")
            answered = None
            if alive and probe:
                try:
                    resp = await AsyncHTTPClient().fetch(probe, raise_error=False, request_timeout=3)
                    answered = resp.code == 200  # e.g. the gateway proxy says 404 until it has its routes
                except Exception:  # noqa: BLE001 - a probe failure is the thing we report
                    answered = False
            state = "ok" if alive and answered is not False else ("starting" if alive else "down")
            ok &= state == "ok"
            report[name] = {"state": state, "pid": proc.pid if proc else None,
                            "url": service.url or "", "detail": "" if alive else "process exited; hub restarts it"}
        self.set_status(200 if ok else 503)
        self.set_header("Content-Type", "application/json")
        if "admin:servers" not in self.expanded_scopes:
            self.finish(json.dumps({"ok": ok}))
            return
        self.finish(json.dumps({"ok": ok, "services": report}))


c.JupyterHub.extra_handlers = [(r"/eolab-health", HealthHandler)]

# --- usage: /hub/eolab-usage (each user's core-hours, memory-hours and bytes read; eolab.usage) ---
from eolab.hub.usage import UsageHandler  # noqa: E402

c.JupyterHub.extra_handlers.append((r"/eolab-usage", UsageHandler))
c.JupyterHub.extra_handlers.extend(EXTRA_HANDLERS)
