"""System users of the multiuser hub: hub login ``alice`` runs as system account ``eolab-alice``.

``up`` in multiuser mode runs as root, creates the missing accounts and checks that the code and
directories those accounts' processes need are reachable for them.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from pathlib import Path

from eolab.errors import ServiceError
from eolab.hub.settings import HubSettings, ResolvedHub


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


def _prepare_accounts(resolved: ResolvedHub, settings: HubSettings) -> None:
    """Multiuser mode, or demo mode as root: system users, and code/paths those users can reach."""
    if settings.mode == "multiuser" and os.geteuid() != 0:
        raise ServiceError("multiuser mode needs root: it creates system users and starts servers as them",
                           hint="run `eolab up` as root, or use EOLAB_HUB_MODE=demo")
    if not resolved.user_accounts:
        return
    hint = ("build the venv from a system Python (make install uses /usr/bin/python3.11) and keep the "
            "checkout and EOLAB_RUN_DIR outside private homes")
    if settings.mode == "demo":
        hint += "; or run the demo as an unprivileged user (no isolation between its users then)"
    # Users' servers and Dask processes run the venv's Python, import the eolab package, read the
    # hub's config files and their cluster directories below the hub directory.
    for what, path in (("the venv's Python", os.path.realpath(resolved.python)),
                       ("the venv", resolved.venv_bin), ("the eolab package", resolved.package_dir),
                       ("the hub's config files", resolved.hub_config),
                       ("the hub directory", resolved.hub_dir)):
        blocked = _inaccessible(path)
        if blocked:
            raise ServiceError(
                f"{settings.mode} mode as root runs each user as a system user: {what} ({path}) is unreachable "
                f"for them: {blocked} is not searchable", hint=hint)
    if settings.authenticator != "oidc":  # OIDC names appear at login; their accounts at first spawn
        ensure_system_users([system_user(settings, u) for u in [*settings.users, *settings.admin_users]])
