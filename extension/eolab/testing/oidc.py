"""A real OpenID Connect provider on 127.0.0.1 for tests and demos (hub_config/oidc/provider:
panva's oidc-provider on Node.js), and a login through it the way a browser does one.

:class:`Provider` runs ``node provider.mjs serve <file>``; :func:`login` walks the authorisation
code flow with PKCE (login form, consent, callback) over HTTP and returns the token answer, so a
test holds the same access token a user's OIDC login to the hub would give.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

NODE = shutil.which("node")
START_TIMEOUT = 120  # seconds for the provider to answer (it is watched: an exit fails at once)


def provider_dir() -> Path:
    from eolab import hub

    return hub.HUB_CONFIG / "oidc" / "provider"


def available() -> str | None:
    """Why the provider cannot run here, or None."""
    if NODE is None:
        return "Node.js is not installed (the test OIDC provider runs on node)"
    if not (provider_dir() / "node_modules" / "oidc-provider").is_dir():
        return "the test OIDC provider is not installed: npm ci --prefix hub_config/oidc/provider"
    return None


def write_private(path: Path, body: dict) -> Path:
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps(body, indent=1))
    return path


class Provider:
    """The OIDC provider as a child process (`node provider.mjs serve <file>`)."""

    def __init__(self, directory: Path, config: dict):
        self.dir, self.config = directory, config
        self.issuer = f"http://127.0.0.1:{config['port']}"
        self.proc: subprocess.Popen | None = None
        self.log = directory / "provider.log"

    def start(self, **changes) -> Provider:
        config = {**self.config, **changes}
        path = write_private(self.dir / "provider.json", config)
        with self.log.open("a") as log:
            self.proc = subprocess.Popen([NODE, str(provider_dir() / "provider.mjs"), "serve", str(path)],
                                         cwd=provider_dir(), stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        # node loads the provider's ~40 packages first: seconds when idle, far longer on a busy machine
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the OIDC provider exited: {self.log.read_text()[-2000:]}"
            try:
                if httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()  # not left running behind the failure
        raise AssertionError(f"the OIDC provider did not answer within {START_TIMEOUT} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> Provider:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def login(issuer: str, client: dict, username: str, password: str, scope: str = "openid profile") -> dict:
    """The authorisation code flow with PKCE, as a browser and a client application do it; returns
    the provider's token answer (``access_token``, ``expires_in``, ``id_token`` ...)."""
    redirect = client["redirect_uris"][0]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    with httpx.Client(base_url=issuer, timeout=10) as browser:
        answer = browser.get("/auth", params={
            "client_id": client["client_id"], "redirect_uri": redirect, "response_type": "code", "scope": scope,
            "state": state, "code_challenge": challenge, "code_challenge_method": "S256"})
        for _ in range(10):
            location = answer.headers.get("location")
            if location and location.startswith(redirect):
                break
            if location:
                answer = browser.get(urljoin(issuer + "/", location))
                continue
            form = re.search(r'action="(/interaction/[^"]+/(login|confirm))"', answer.text)
            if form is None:
                raise AssertionError(f"the provider's page has no login or consent form: {answer.text[:500]}")
            data = {"username": username, "password": password} if form.group(2) == "login" else {"decision": "allow"}
            answer = browser.post(form.group(1), data=data)
            if answer.status_code == 401:
                raise AssertionError(f"the provider refused the login of {username!r}")
        else:
            raise AssertionError("the login did not come back to the client")
        query = parse_qs(urlsplit(location).query)
        assert query.get("state") == [state], "the provider answered another login's state"
        tokens = httpx.post(f"{issuer}/token", auth=(client["client_id"], client["client_secret"]), data={
            "grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": redirect,
            "code_verifier": verifier}, timeout=10)
        tokens.raise_for_status()
        return tokens.json()


@contextmanager
def provider_with_user(directory: Path, username: str = "alice", *, port: int | None = None,
                       **config) -> Iterator[tuple[Provider, dict, dict]]:
    """A provider on 127.0.0.1 with one account and one client, and that user's login through it:
    yields (provider, client, token answer). ``config``: more of the provider's settings."""
    from eolab.testing.faults import free_port

    client = {"client_id": "eolab-notebooks", "client_secret": secrets.token_hex(16),
              "redirect_uris": ["http://127.0.0.1:9/callback"]}
    password = secrets.token_urlsafe(12)
    with Provider(directory, {"host": "127.0.0.1", "port": port or free_port(), "clients": [client],
                              "accounts": {username: {"password": password}}, **config}) as idp:
        yield idp, client, login(idp.issuer, client, username, password)


@contextmanager
def s3_store(root: Path, files: list[Path], issuer: str, work: Path, *, port: int | None = None,
             **env: str) -> Iterator[str]:
    """The CDSE-like S3 store (:mod:`eolab.stack._lookalike_s3`) holding ``files`` (under ``root``),
    its keys minted with tokens of ``issuer``; yields its URL once the bucket is filled. ``env``: more
    of its settings (EOLAB_LOOKALIKE_S3_KEY_LIFETIME ...)."""
    import os

    from eolab._services import wait_ready
    from eolab.testing.faults import free_port

    port = port or free_port()
    listing = work / "s3-files"
    listing.write_text("\n".join(str(Path(f).relative_to(root)) for f in files))
    log = work / "s3-store.log"
    with log.open("a") as out:
        proc = subprocess.Popen([sys.executable, "-m", "eolab.stack._lookalike_s3", "--port", str(port),
                                 "--issuer", issuer],
                                env=dict(os.environ, EOLAB_ASSETS_DIR=str(root), EOLAB_LOOKALIKE_S3_FILES=str(listing),
                                         **env), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/_health", 120, proc, log)  # 503 until the bucket is filled
        yield url
    finally:
        proc.kill()
        proc.wait()
