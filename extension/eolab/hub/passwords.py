"""Per-user hub passwords: one random password per configured login, generated at the first ``up``.

The hub checks logins against ``<hub_dir>/passwords.json`` (scrypt hashes only, mode 0600). The
passwords themselves are kept for the operator in ``<hub_dir>/logins.json`` (mode 0600, the hub's
account only): ``eolab up`` prints them the first time, later it names the file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

# hashlib.scrypt (OpenSSL) rather than a new dependency: n=2**14, r=8 is the interactive-login
# cost the scrypt paper recommends and costs ~16 MiB and a few ms per login.
_N, _R, _P = 2**14, 8, 1


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(base64.b64decode(digest)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def _write_private(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=1)
    path.chmod(0o600)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def hashes_file(hub_dir: Path) -> Path:
    return Path(hub_dir) / "passwords.json"


def logins_file(hub_dir: Path) -> Path:
    return Path(hub_dir) / "logins.json"


def ensure(hub_dir: Path, names: list[str]) -> list[str]:
    """A password for every login in ``names`` that has none yet; returns the new logins."""
    hashes, logins = _read(hashes_file(hub_dir)), _read(logins_file(hub_dir))
    fresh = [name for name in names if name not in hashes]
    for name in fresh:
        password = secrets.token_urlsafe(12)
        hashes[name] = hash_password(password)
        logins.setdefault("passwords", {})[name] = password
        logins.setdefault("unshown", []).append(name)
    if fresh or not hashes_file(hub_dir).exists():
        _write_private(hashes_file(hub_dir), hashes)
        _write_private(logins_file(hub_dir), logins)
    return fresh


def passwords(hub_dir: Path) -> dict[str, str]:
    """login -> password, as generated (for the operator and the tests; the hub reads hashes only)."""
    return dict(_read(logins_file(hub_dir)).get("passwords", {}))


def take_unshown(hub_dir: Path) -> dict[str, str]:
    """The passwords not yet printed to the operator; marks them printed."""
    logins = _read(logins_file(hub_dir))
    unshown = logins.pop("unshown", [])
    if unshown:
        _write_private(logins_file(hub_dir), logins)
    return {name: logins.get("passwords", {})[name] for name in unshown if name in logins.get("passwords", {})}


def authenticator_class():
    """The JupyterHub authenticator checking ``passwords.json`` (imported by the hub's config only)."""
    from jupyterhub.auth import Authenticator
    from traitlets import Unicode

    class PasswordFileAuthenticator(Authenticator):
        """Each login has its own password; the hub holds only their scrypt hashes."""

        hashes_file = Unicode(config=True, help="JSON file: login -> scrypt hash (eolab.hub.passwords)")

        async def authenticate(self, handler, data):
            name, password = data.get("username", "").strip().lower(), data.get("password", "")
            stored = _read(Path(self.hashes_file)).get(name)
            if not stored or not check_password(password, stored):
                return None
            return name

    return PasswordFileAuthenticator
