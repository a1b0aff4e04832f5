"""The local JupyterHub's processes: start, stop and report the hub with its proxy, gateway and services.

``up`` writes every resolved value (ports, paths, users, limits) to ``<run_dir>/hub/settings.json``
(:class:`eolab.hub.settings.ResolvedHub`); the traitlets files in ``hub_config/`` only read that
file. The hub then runs configurable-http-proxy and its managed services itself
(dask-gateway-server, the auth gates in front of the gateway/catalogue/tiles, the idle culler, the
broker when it exists) and restarts any that crash. Every process of one hub carries
``EOLAB_HUB_ID`` in its environment, so ``down`` can find and stop whatever outlived the hub
(clusters included).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path

import httpx
import yaml

from eolab import _services
from eolab.config import StackConfig
from eolab.errors import ServiceError
from eolab.hub import passwords
from eolab.hub.settings import (
    HUB_ID_VAR,
    SETTINGS_VAR,
    HubSettings,
    ResolvedHub,
    hub_dir,
    load_settings,
    read_resolved,
    resolve,
    write_resolved,
)
from eolab.hub.users import _prepare_accounts
from eolab.stack.core import ServiceStatus


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
        "crypt_key": lambda: secrets.token_hex(32),  # encrypts OIDC logins' tokens in the hub database
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


def _private(path: Path) -> Path:
    """Only the hub's account reads its state (users' servers run as other accounts, or should not care)."""
    path.chmod(0o600)
    return path


def _chp_check(resolved: ResolvedHub) -> None:
    if not os.access(resolved.chp, os.X_OK):
        raise ServiceError(f"configurable-http-proxy is not installed ({resolved.chp})",
                           hint=f"run: npm ci --prefix {resolved.hub_config} (needs Node.js and npm)")


def _hub_service(config: StackConfig, resolved: ResolvedHub) -> _services.Service:
    env = {
        SETTINGS_VAR: str(resolved.settings_file),
        **resolved.marker,
        "PATH": f"{resolved.venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "CONFIGPROXY_AUTH_TOKEN": _secrets(resolved.secrets_file)["proxy_token"],
    }
    # `python -m`: a script's /proc cmdline starts with its interpreter, and PID files compare cmdlines.
    cmd = [resolved.python, "-m", "jupyterhub", "-f", str(resolved.hub_config / "jupyterhub_config.py")]
    return _services.Service(name="hub", cmd=cmd, port=resolved.port, ready_path="/hub/health",
                             env=env, host=config.host)


def _health(resolved: ResolvedHub, timeout: float = 2.0) -> dict | None:
    try:
        # the details (which service, its PID) are for admins: ask with the admin token
        token = _secrets(Path(resolved.secrets_file))["admin_token"]
        response = httpx.get(f"{resolved.public_url}/hub/eolab-health", timeout=timeout,
                             headers={"Authorization": f"token {token}"})
        return response.json()
    except (httpx.HTTPError, ValueError):
        return None


def _wait_services(resolved: ResolvedHub, timeout: float) -> dict:
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
                       hint=f"see {resolved.log_dir}/hub.log")


def _statuses(resolved: ResolvedHub, report: dict | None, hub_state: str) -> list[ServiceStatus]:
    out = [ServiceStatus("hub", f"{resolved.public_url}/hub/", hub_state, f"mode {resolved.mode}")]
    for name, info in ((report or {}).get("services") or {}).items():
        state = {"ok": "running"}.get(info.get("state"), info.get("state", "down"))
        out.append(ServiceStatus(f"hub-{name}", info.get("url") or "", state, info.get("detail", "")))
    return out


def up(config: StackConfig, settings: HubSettings | None = None, timeout: float = 120.0) -> list[ServiceStatus]:
    """Start the hub (idempotent). Returns one status per process the hub runs."""
    settings = settings or load_settings()
    resolved = resolve(config, settings)
    _chp_check(resolved)
    run_dir = Path(config.run_dir)
    hdir = resolved.hub_dir
    if _services.running_pid(run_dir, "hub"):
        return _statuses(resolved, _health(resolved), "running")
    for name, port in settings.ports().items():
        if _services.port_in_use(port, config.host):
            raise ServiceError(f"port {port} for the hub ({name}) is in use by another program",
                               hint="stop that program or set EOLAB_HUB_PORT / EOLAB_PORT_OFFSET")
    hdir.mkdir(parents=True, exist_ok=True)
    hdir.chmod(0o711)  # users' cluster directories (and demo homes) live below; everything else is 0600
    _secrets(resolved.secrets_file)
    if settings.authenticator == "passwords":
        passwords.ensure(hdir, [*settings.users, *settings.admin_users])
    _private(write_resolved(resolved))
    for name in ("jupyterhub.sqlite", "gateway.sqlite", "catalog.yaml"):  # SQLite keeps the file's mode
        (hdir / name).touch(mode=0o600)
        _private(hdir / name)
    catalog = hdir / "catalog.yaml"
    catalog.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
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
    _prepare_accounts(resolved, settings)
    _services.start(run_dir, _hub_service(config, resolved), timeout=timeout)
    report = _wait_services(resolved, timeout)
    return _statuses(resolved, report, "started")


def credentials(config: StackConfig) -> dict:
    """The logins of a running (or once started) hub, for its operator (readable by the hub's account only).

    ``passwords``: login -> password (the default ``passwords`` login); ``user_password`` and
    ``admin_password``: the ``shared-password`` login's; ``admin_token``: the eolab-admin service's.
    """
    data = _secrets(hub_dir(config) / "secrets.json")
    return {"passwords": passwords.passwords(hub_dir(config)), "user_password": data["user_password"],
            "admin_password": data["admin_password"], "admin_token": data["admin_token"]}


def _processes_of(hub_id: str) -> list[int]:
    """PIDs of processes started for this hub (the marker is inherited through every spawner)."""
    marker = f"{HUB_ID_VAR}={hub_id}".encode()
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


def _cancel_slurm_jobs(resolved: ResolvedHub) -> None:
    """Slurm jobs of this hub's gateway carry the hub id in their name; cancel what outlived it."""
    if not resolved.slurm_conf:
        return
    from eolab.compute import _slurm

    _slurm.cancel_jobs_of(resolved.model_dump(mode="json"))


def down(config: StackConfig, settings: HubSettings | None = None) -> list[ServiceStatus]:
    """Stop the hub, its proxy, services, single-user servers and every Dask cluster it started."""
    resolved = _last_resolved(config, settings)
    stopped = _services.stop(Path(config.run_dir), "hub", timeout=60.0)
    if resolved is not None:
        _cancel_slurm_jobs(resolved)
    leftovers = _processes_of(str(hub_dir(config)) if resolved is None else resolved.hub_id)
    _kill_all(leftovers)
    state = "stopped" if stopped or leftovers else "down"
    detail = f"{len(leftovers)} leftover processes stopped" if leftovers else ""
    return [ServiceStatus("hub", _hub_url(config, settings, resolved), state, detail)]


def _last_resolved(config: StackConfig, settings: HubSettings | None) -> ResolvedHub | None:
    """The values the hub was last started with (what is running), else those it would use now.

    None if neither exists: no settings file and no hub_config/ to resolve against (an install
    that never ran a hub); ``down`` and ``status`` then report from the stack's configuration.
    """
    try:
        return read_resolved(hub_dir(config) / "settings.json")
    except (OSError, ValueError):  # pydantic's ValidationError is a ValueError: a file of an older eolab
        pass
    try:
        return resolve(config, settings or load_settings())
    except ServiceError:
        return None


def _hub_url(config: StackConfig, settings: HubSettings | None, resolved: ResolvedHub | None) -> str:
    if resolved is not None:
        return f"{resolved.public_url}/hub/"
    return f"http://{config.host}:{(settings or load_settings()).port}/hub/"


def status(config: StackConfig, settings: HubSettings | None = None) -> list[ServiceStatus]:
    resolved = _last_resolved(config, settings)
    if resolved is None or not _services.running_pid(Path(config.run_dir), "hub"):
        return [ServiceStatus("hub", _hub_url(config, settings, resolved), "down")]
    return _statuses(resolved, _health(resolved), "running")


def print_logins(config: StackConfig, settings: HubSettings | None = None, file=sys.stdout) -> None:
    """What ``make up`` prints: the URL, the logins (each generated password once) and what is isolated."""
    settings = settings or load_settings()
    creds = credentials(config)
    url = f"http://{config.host}:{settings.port}/hub/login"
    print(f"JupyterHub ({settings.mode} mode): {url}", file=file)
    if settings.authenticator == "oidc":
        print(f"  login: OIDC provider of {settings.oidc_settings} (group-based access)", file=file)
    elif settings.authenticator == "passwords":
        fresh = passwords.take_unshown(hub_dir(config))
        for name in [*settings.users, *settings.admin_users]:
            role = "admin" if name in settings.admin_users else "user"
            if name in fresh:
                print(f"  {role} {name}: password {fresh[name]}", file=file)
        if any(name not in fresh for name in [*settings.users, *settings.admin_users]):
            print(f"  logins {', '.join([*settings.users, *settings.admin_users])}: passwords as printed at "
                  f"their first start, kept in {passwords.logins_file(hub_dir(config))} "
                  f"(readable by {_account()} only)", file=file)
    elif settings.authenticator == "shared-password":
        print(f"  users {', '.join(settings.users)}: password {creds['user_password']}", file=file)
        print(f"  admin {', '.join(settings.admin_users)}: password {creds['admin_password']}", file=file)
    if settings.mode == "multiuser" or os.geteuid() == 0:
        print(f"  {settings.mode} mode: login NAME runs as system user {settings.system_user_prefix}NAME "
              "(own home 0700, own processes; the hub's secrets are root's)", file=file)
    else:
        print(f"  demo mode as {_account()}: every hub user's code runs as {_account()} and can read the "
              "other users' files and the hub's secrets (start it as root for one system user each)", file=file)


def _account() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name
