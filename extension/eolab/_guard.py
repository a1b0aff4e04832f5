"""Who may talk to the stack's internal HTTP services (members, the workspace, the broker).

A request passes if it comes from the stack's own account or carries the service token
(``Authorization: Bearer <token>``, kept in ``<run_dir>/state/service.token``, mode 0600). Any
other local account gets 401/403.

"The stack's own account" is read from the kernel's socket table: on Linux ``/proc/net/tcp``
lists both ends of a loopback connection with the uid owning each socket, the TCP counterpart of a
unix socket's peer credentials. No library offers this for TCP (psutil only maps sockets to
processes, which needs root for other accounts), hence the few lines below. The stack, the hub and
its gates run as that account and need nothing; hub users' kernels get the token in their
environment (``EOLAB_SERVICE_TOKEN``) and eolab's STAC client sends it to loopback addresses only.
The server must give the connection's real peer as the ASGI client (uvicorn ``--no-proxy-headers``:
otherwise an ``X-Forwarded-For`` header replaces it).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import socket
import struct
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

OPEN_PATHS = frozenset({"/_health", "/_mgmt/ping"})  # liveness only: says nothing about the data


def token_file(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "state" / "service.token"


def ensure_secret(path: Path) -> tuple[str, bool]:
    """The secret kept in ``path``, created (mode 0600, before anything is written) if missing."""
    try:
        value = path.read_text().strip()
        if value:
            return value, False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    path.chmod(0o600)
    return value, True


def read_secret(path: Path) -> str | None:
    """The secret in ``path`` if this process may read it, else None."""
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _proc_address(host: str, port: int) -> str | None:
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return None
    # /proc/net/tcp prints the address as a native-order 32-bit number, the port as 4 hex digits.
    return f"{struct.unpack('=I', packed)[0]:08X}:{port:04X}"


def peer_uid(client: tuple[str, int] | None, server: tuple[str, int] | None,
             table: str = "/proc/net/tcp") -> int | None:
    """The uid owning the client's end of a loopback TCP connection, or None if not found."""
    if not client or not server:
        return None
    local, remote = _proc_address(*client), _proc_address(*server)
    if local is None or remote is None:
        return None
    try:
        with open(table) as rows:
            next(rows, None)
            for row in rows:
                fields = row.split()
                if len(fields) > 7 and fields[1] == local and fields[2] == remote:
                    return int(fields[7])
    except OSError:
        return None
    return None


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def hub_secret(secrets: dict) -> str:
    """A secret of the hub's account (from its secrets file) that keys dashboards and the byte meter."""
    return secrets.get("gateway_proxy_token", "")


def service_headers(url: str) -> dict[str, str]:
    """What this process sends to the stack's internal services: the service token (if it has one),
    to loopback addresses only, so it never leaves this machine."""
    from eolab import settings

    token = settings.client().service_token
    return {"Authorization": f"Bearer {token}"} if token and is_loopback_url(url) else {}


def refusal(authorization: str | None, tokens: Iterable[str]) -> tuple[int, str] | None:
    """(status, message) unless the Authorization header carries one of ``tokens`` (pure)."""
    if not authorization:
        return 401, ("this service of the eolab stack answers its own account only; others send "
                     "'Authorization: Bearer <service token>' (reach it through the hub instead)")
    scheme, _, given = authorization.partition(" ")
    given = given.strip().encode()
    if scheme.lower() != "bearer" or not given:
        return 401, "the Authorization header must be 'Bearer <service token>'"
    if any(hmac.compare_digest(given, t.encode()) for t in tokens if t):
        return None
    return 403, "wrong service token"


class ServiceGuard:
    """ASGI middleware: the stack's own account or a token holder passes, anyone else gets 401/403."""

    def __init__(self, app, tokens: Iterable[str], uid: int | None = None, open_paths=OPEN_PATHS):
        self.app = app
        self.tokens = [t for t in tokens if t]
        self.uid = os.geteuid() if uid is None else uid
        self.open_paths = open_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and scope.get("path") not in self.open_paths:
            headers = dict(scope.get("headers") or [])
            authorization = headers.get(b"authorization", b"").decode("latin-1") or None
            problem = refusal(authorization, self.tokens)
            if problem and peer_uid(scope.get("client"), scope.get("server")) != self.uid:
                from starlette.responses import JSONResponse

                status, message = problem
                response = JSONResponse({"code": "Unauthorized" if status == 401 else "Forbidden",
                                         "description": message}, status_code=status,
                                        headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)
                return await response(scope, receive, send)
        await self.app(scope, receive, send)
