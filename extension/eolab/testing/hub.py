"""Drive a hub as its users do: :class:`HubSession` logs in, starts a server, runs code in kernels.

Part of the public test kit (:mod:`eolab.testing`): the hub integration tests, the browser tests
and ``benchmarks/hub_latency.py`` use it against a hub started by :func:`eolab.hub.up` (or any
JupyterHub with the shared-password login).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import httpx

from eolab.errors import ServiceError


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


def hub_config_for_accounts(stack_config, prefix: str = "eolab-hub-", run_dir=None):
    """The stack's configuration with a run directory a hub with per-user system accounts can use.

    Those users' servers and clusters must reach the hub directory, which a private tmp root
    (0700) forbids: a fresh directory under /tmp (0711), or ``run_dir`` (its parent must be
    searchable by them). The catalogue gate reads the workspace token (and kernels the service
    token) from the hub's run directory, so the stack's tokens are handed over as ``eolab catalog up``
    would in a deployment that shares one run directory.
    """
    import tempfile
    from pathlib import Path

    from eolab import _guard
    from eolab.stack import workspace

    if run_dir is None:
        run_dir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    else:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    run_dir = Path(run_dir)
    run_dir.chmod(0o711)
    token, _ = workspace.ensure_token(stack_config.run_dir)
    workspace.ensure_token(run_dir)
    workspace.token_file(run_dir).write_text(token + "\n")
    # Likewise the service token, which users' kernels get from the hub to reach the broker.
    _guard.ensure_secret(_guard.token_file(run_dir))
    _guard.token_file(run_dir).write_text(_guard.read_secret(_guard.token_file(stack_config.run_dir)) + "\n")
    return stack_config.model_copy(update={"run_dir": run_dir})


def _keep_logs(config, run_prefix: str) -> None:
    """A hub that did not come up: its logs to ``test-artifacts/hub-logs/`` (the run directory is
    removed afterwards) and the end of hub.log to stderr, so a CI failure says why."""
    import shutil
    import sys

    logs = Path(config.run_dir) / "logs"
    if not logs.is_dir():
        return
    target = Path(__file__).resolve().parents[3] / "test-artifacts" / "hub-logs" / run_prefix.strip("-")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(logs, target, dirs_exist_ok=True)
    hub_log = logs / "hub.log"
    if hub_log.exists():
        tail = hub_log.read_text(errors="replace").splitlines()[-40:]
        print(f"--- end of {hub_log} (kept in {target}) ---", *tail, sep="\n", file=sys.stderr)


@contextlib.contextmanager
def running_demo_hub(stack_config, settings, run_prefix: str, run_dir=None):
    """A demo hub up for the length of a ``with`` block; yields the configuration it runs with.

    As root each login runs as its own system account (``settings.system_user_prefix`` + login),
    so the hub gets a run directory those accounts can reach (:func:`hub_config_for_accounts`) and
    the accounts are removed before (leftovers of an interrupted run) and after. Otherwise the hub
    runs in ``run_dir`` if given, else in the stack's own run directory.
    """
    import os
    import shutil

    from eolab import hub

    as_root = os.geteuid() == 0
    if as_root:
        config = hub_config_for_accounts(stack_config, run_prefix)
    elif run_dir is not None:
        config = stack_config.model_copy(update={"run_dir": run_dir})
    else:
        config = stack_config
    accounts = [settings.system_user_prefix + login for login in (*settings.users, *settings.admin_users)]
    if as_root:
        remove_system_users(accounts)
    try:
        try:
            hub.up(config, settings)
        except Exception:
            _keep_logs(config, run_prefix)
            raise
        yield config
    finally:
        hub.down(config, settings)
        if as_root:
            remove_system_users(accounts)
            shutil.rmtree(config.run_dir, ignore_errors=True)


def remove_system_users(names: list[str]) -> None:
    """Delete test system accounts (and their homes); their processes are killed first."""
    import pwd
    import subprocess

    for name in names:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", "--remove", name], capture_output=True, check=False)
