"""Background services of a local eolab stack: start, find, stop — with PID files and logs.

Every service eolab starts gets ``<run_dir>/pids/<name>.pid`` and ``<run_dir>/logs/<name>.log``.
A PID file records the command line too, so ``stop`` never signals a process that merely reused
the PID, and ``down`` stops exactly what ``up`` started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from eolab.errors import ServiceError


@dataclass
class Service:
    name: str
    cmd: list[str]
    port: int
    ready_path: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def pid_file(run_dir: Path, name: str) -> Path:
    return run_dir / "pids" / f"{name}.pid"


def log_file(run_dir: Path, name: str) -> Path:
    return run_dir / "logs" / f"{name}.log"


def private_log(path: Path, mode: str = "ab"):
    """A service log opened for appending, readable by this account only (0600 in a 0700 folder):
    logs hold internal URLs, user names and tracebacks with their data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)  # also a log made before logs were private
    return os.fdopen(fd, mode)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def running_pid(run_dir: Path, name: str) -> int | None:
    """The PID of service ``name`` if the process recorded in its PID file still runs."""
    path = pid_file(run_dir, name)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = int(record.get("pid", 0))
    if pid <= 0:
        return None
    cmdline = _cmdline(pid)
    if cmdline is None:
        return None
    # A PID reused by an unrelated process does not count as our service.
    if "cmd" in record and cmdline != record["cmd"]:
        return None
    if "match" in record and not any(record["match"] in part for part in cmdline):
        return None
    return pid


def write_pid(run_dir: Path, name: str, pid: int, **record) -> None:
    """Record a started process; ``cmd`` (exact command line) or ``match`` (a substring) identifies it."""
    path = pid_file(run_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, **record}))


def wait_ready(url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"{url} exited with code {proc.returncode} while starting", hint=_log_hint(log))
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code < 500:
                return
            last_error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last_error = type(exc).__name__
        time.sleep(0.2)
    raise ServiceError(f"{url} did not become ready within {timeout:.0f} s ({last_error})", hint=_log_hint(log))


def _log_hint(log: Path | None) -> str | None:
    if log is None or not log.exists():
        return None
    tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-1:]
    return f"see {log}" + (f"; last line: {tail[0][:200]}" if tail else "")


def start(run_dir: Path, service: Service, timeout: float = 60.0) -> str:
    """Start ``service`` in the background unless it already runs. Returns 'started' or 'running'."""
    if running_pid(run_dir, service.name):
        return "running"
    if port_in_use(service.port, service.host):
        raise ServiceError(
            f"port {service.port} for {service.name} is in use by another program",
            hint="stop that program or choose other ports (EOLAB_PORT_OFFSET or the config file)",
        )
    log = log_file(run_dir, service.name)
    env = {**os.environ, **service.env}
    with private_log(log) as out:
        proc = subprocess.Popen(
            service.cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True,
        )
    write_pid(run_dir, service.name, proc.pid, cmd=service.cmd, port=service.port)
    try:
        wait_ready(service.url + service.ready_path, timeout, proc=proc, log=log)
    except ServiceError:
        stop(run_dir, service.name)
        raise
    return "started"


def stop(run_dir: Path, name: str, timeout: float = 15.0) -> bool:
    """Stop service ``name`` (its whole process group). Returns True if something was stopped."""
    pid = running_pid(run_dir, name)
    stopped = False
    if pid:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
        stopped = True
    pid_file(run_dir, name).unlink(missing_ok=True)
    return stopped


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap if it is our child
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    try:
        return state.read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False
