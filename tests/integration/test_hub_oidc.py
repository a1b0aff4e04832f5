"""OIDC login against a real OpenID Connect provider on 127.0.0.1 (hub_config/oidc/provider, panva's
oidc-provider), driven over HTTP like a browser: hub login page → provider's login form → consent →
callback → hub. Group claims decide access (EGI Check-in style `eduperson_entitlement`) and admin
rights; the state check and the client secret are exercised with real failures.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from pathlib import Path

import httpx
import pytest

from eolab import hub
from eolab.testing.hub import HubSession, hub_config_for_accounts, remove_system_users
from eolab.testing.oidc import NODE, Provider, write_private
from eolab.testing.stack import free_port_base

PROVIDER_DIR = hub.HUB_CONFIG / "oidc" / "provider"

pytestmark = [
    pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300),
    pytest.mark.skipif(NODE is None, reason="Node.js is not installed (the test OIDC provider runs on node)"),
    pytest.mark.skipif(not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir(),
                       reason="the test OIDC provider is not installed: npm ci --prefix hub_config/oidc/provider"),
]

IDP_NAME = "eolab test IdP"
VO = "urn:mace:egi.eu:group:vo.eolab.test"
MEMBER = f"{VO}:role=member#aai.example.org"
MANAGER = f"{VO}:role=manager#aai.example.org"
OTHER = "urn:mace:egi.eu:group:vo.other.test:role=member#aai.example.org"
PREFIX = "eolabo-"  # as root, demo mode runs login NAME as system user eolabo-NAME (hub name alike)
AS_ROOT = os.geteuid() == 0
TOKEN_TTL = 25  # s: the provider's access tokens (the hub renews them with under half their life left)


def hub_name(login: str) -> str:
    return PREFIX + login if AS_ROOT else login


@pytest.fixture(scope="module")
def oidc(catalog_stack, tmp_path_factory):
    """A provider with accounts alice (member), carol (no group), bob (another VO), admin (manager),
    and a hub (own run directory and ports) whose login is that provider, set through the documented
    environment variables EOLAB_HUB_AUTHENTICATOR and EOLAB_HUB_OIDC_SETTINGS."""
    work = tmp_path_factory.mktemp("oidc")
    # As root each login runs as its own system account, which must reach the hub directory.
    config = hub_config_for_accounts(catalog_stack, "eolab-oidc-") if AS_ROOT else \
        catalog_stack.model_copy(update={"run_dir": str(work / "run")})
    base = free_port_base(width=9, start=21000)  # other hub tests: 11000-19000, benchmarks 22000
    idp_port = free_port_base(width=1, start=base + 9)
    hub_url = f"http://127.0.0.1:{base}"
    secret = secrets.token_hex(24)
    passwords = {name: secrets.token_urlsafe(12) for name in ("alice", "bob", "carol", "admin")}
    groups = {"alice": [MEMBER], "bob": [OTHER], "carol": [], "admin": [MANAGER]}
    provider = Provider(work, {
        "host": "127.0.0.1", "port": idp_port, "name": IDP_NAME, "access_token_ttl": TOKEN_TTL,
        "clients": [{"client_id": "eolab-hub", "client_secret": secret, "client_name": "eolab JupyterHub",
                     "redirect_uris": [f"{hub_url}/hub/oauth_callback"]}],
        "accounts": {name: {"password": passwords[name],
                            "claims": {"name": name.title(), "email": f"{name}@example.org",
                                       "eduperson_entitlement": groups[name]}}
                     for name in passwords},
    })
    issuer = provider.issuer
    settings_file = write_private(work / "hub-oidc.json", {
        "provider_name": IDP_NAME, "issuer": issuer,
        "authorize_url": f"{issuer}/auth", "token_url": f"{issuer}/token", "userdata_url": f"{issuer}/me",
        "client_id": "eolab-hub", "client_secret": secret,
        "scope": ["openid", "profile", "email", "eduperson_entitlement"],
        "username_claim": "preferred_username", "groups_claim": "eduperson_entitlement",
        "allowed_groups": [MEMBER], "admin_groups": [MANAGER],
    })
    try:
        provider.start()
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("EOLAB_HUB_AUTHENTICATOR", "oidc")
            mp.setenv("EOLAB_HUB_OIDC_SETTINGS", str(settings_file))
            settings = hub.load_settings(port=base, system_user_prefix=PREFIX)
        assert settings.authenticator == "oidc" and settings.oidc_settings == str(settings_file)
        hub.up(config, settings)
        yield {"config": config, "settings": settings, "url": hub_url, "provider": provider, "secret": secret,
               "passwords": passwords, "admin_token": hub.credentials(config)["admin_token"]}
    finally:
        try:
            hub.down(config)
        finally:
            provider.stop()
            if AS_ROOT:
                remove_system_users([hub_name(n) for n in passwords])
                shutil.rmtree(config.run_dir, ignore_errors=True)


# --- the browser's part ---------------------------------------------------------------------

def _form_action(page: httpx.Response) -> str:
    match = re.search(r'<form[^>]*action="([^"]+)"', page.text)
    assert match, f"no form in {page.url}: {page.text[:300]}"
    return str(page.url.join(match.group(1)))


def to_callback(session: HubSession, oidc: dict, name: str, password: str) -> httpx.URL | httpx.Response:
    """Hub login page → provider (login form, consent) → the provider's redirect back to the hub.

    Returns the callback URL (code and state) without following it, so tests can tamper with it, or
    the provider's answer if it refused the password."""
    http, issuer = session.http, oidc["provider"].issuer
    page = http.get("/hub/login")
    assert page.status_code == 200
    start = http.get("/hub/oauth_login", params={"next": "/hub/home"})
    assert start.status_code == 302
    authorize = httpx.URL(start.headers["location"])
    assert str(authorize.copy_with(query=None)) == f"{issuer}/auth"
    q = authorize.params
    assert (q["client_id"], q["response_type"], q["redirect_uri"]) == (
        "eolab-hub", "code", f"{oidc['url']}/hub/oauth_callback")
    assert set(q["scope"].split()) == {"openid", "profile", "email", "eduperson_entitlement"}
    assert q["code_challenge_method"] == "S256" and q["state"]

    response = http.get(authorize)
    for _ in range(10):
        if response.status_code in (302, 303):
            target = response.url.join(response.headers["location"])
            if str(target).startswith(f"{oidc['url']}/hub/oauth_callback"):
                return target
            response = http.get(target)
        elif response.status_code == 200 and 'name="password"' in response.text:
            assert f"Sign in to {IDP_NAME}" in response.text
            response = http.post(_form_action(response), data={"username": name, "password": password})
            if response.status_code == 401:
                return response
        elif response.status_code == 200 and "Allow" in response.text:
            shown = set(re.findall(r'<li class="scope">([^<]+)</li>', response.text))
            assert shown == {"profile", "email", "eduperson_entitlement"}
            response = http.post(_form_action(response), data={"decision": "allow"})
        else:
            raise AssertionError(f"unexpected answer from {response.url}: {response.status_code} {response.text[:300]}")
    raise AssertionError("the provider never redirected back to the hub")


def oidc_login(oidc: dict, name: str) -> tuple[HubSession, httpx.Response]:
    session = HubSession(oidc["url"], name)
    callback = to_callback(session, oidc, name, oidc["passwords"][name])
    return session, session.http.get(callback)


def admin_api(oidc: dict, method: str, path: str) -> httpx.Response:
    return httpx.request(method, f"{oidc['url']}/hub/api{path}",
                         headers={"Authorization": f"token {oidc['admin_token']}"}, timeout=30)


# --- tests ----------------------------------------------------------------------------------

def test_login_page_offers_the_provider(oidc):
    page = httpx.get(f"{oidc['url']}/hub/login", timeout=30)
    assert page.status_code == 200
    assert f"Sign in with {IDP_NAME}" in page.text
    assert 'name="password"' not in page.text  # no local password form: the provider does the login


def test_member_logs_in_and_starts_a_server(oidc):
    session, callback = oidc_login(oidc, "alice")
    try:
        assert callback.status_code == 302 and callback.headers["location"] == "/hub/home"
        assert session.http.get("/hub/home").status_code == 200
        me = session._api("GET", "/user")
        assert me.status_code == 200
        model = me.json()
        assert (model["name"], model["admin"]) == (hub_name("alice"), False)
        session.username = model["name"]  # the hub's name for her (as root: her system account's)
        assert model["groups"] == [MEMBER]  # the entitlement claim became the user's hub group
        assert session._api("GET", "/users").status_code == 403  # not an admin
        session.new_token()
        session.start_server()
        status = session.server_api("GET", "/status")
        assert status.status_code == 200 and "started" in status.json()
        # Her kernels hold her login's access token (S3 keys are minted with it) where her server
        # runs as her own account: the provider answers it with her identity. Where all servers run
        # as the hub's account, other users could read it there: no token.
        kernel = session.start_kernel()
        # (the token as eolab uses it: the start token, or the hub's renewed one on a slow start)
        out = session.run(kernel, "import os, httpx\nfrom eolab.data import access\n"
                          "t = access.oidc_access_token()\n"
                          f"r = httpx.get('{oidc['provider'].issuer}/me', headers={{'Authorization': f'Bearer {{t}}'}})\n"
                          "print(r.status_code, r.json().get('sub'), t, os.environ.get('EOLAB_OIDC_ISSUER'))")
        status, sub, token, issuer = out.split()
        if AS_ROOT:
            assert (status, sub, issuer) == ("200", "alice", oidc["provider"].issuer)
            log = Path(oidc["config"].run_dir) / "logs" / "hub.log"
            assert token not in log.read_text()
        else:
            assert (token, issuer) == ("None", "None")
    finally:
        session.stop_server()
        session.close()


def test_user_outside_the_allowed_groups_is_refused(oidc):
    for name in ("carol", "bob"):  # carol: no entitlement at all; bob: member of another VO
        session, callback = oidc_login(oidc, name)
        try:
            assert callback.status_code == 403
            assert f"not a member of a group allowed to use this hub ({MEMBER})" in callback.text
            assert session._api("GET", "/user").status_code == 403  # no hub login cookie was set
            assert admin_api(oidc, "GET", f"/users/{name}").status_code == 404  # and no hub user created
        finally:
            session.close()


def test_admin_group_gives_admin_rights(oidc):
    session, callback = oidc_login(oidc, "admin")
    try:
        assert callback.status_code == 302
        model = session._api("GET", "/user").json()
        assert (model["name"], model["admin"], model["groups"]) == (hub_name("admin"), True, [MANAGER])
        users = session._api("GET", "/users")  # admin-only
        assert users.status_code == 200 and hub_name("admin") in {u["name"] for u in users.json()}
        groups = session._api("GET", "/groups")
        assert groups.status_code == 200
        members = {g["name"]: set(g["users"]) for g in groups.json()}
        assert members[MANAGER] == {hub_name("admin")}
    finally:
        session.close()


def test_wrong_password_is_refused_by_the_provider(oidc):
    session = HubSession(oidc["url"], "alice")
    try:
        refused = to_callback(session, oidc, "alice", "not-" + oidc["passwords"]["alice"])
        assert isinstance(refused, httpx.Response) and refused.status_code == 401
        assert "Invalid username or password." in refused.text
        assert session._api("GET", "/user").status_code == 403
    finally:
        session.close()


def test_tampered_state_is_refused(oidc):
    session = HubSession(oidc["url"], "alice")
    stranger = httpx.Client(timeout=30, follow_redirects=False)
    try:
        callback = to_callback(session, oidc, "alice", oidc["passwords"]["alice"])
        # The genuine callback in another browser (login CSRF): that browser has no state cookie.
        answer = stranger.get(callback)
        assert answer.status_code == 400 and "OAuth state missing from cookies" in answer.text
        # A forged state in the right browser.
        params = dict(callback.params)
        forged = callback.copy_with(params={**params, "state": params["state"][:-4] + "AAAA"})
        answer = session.http.get(forged)
        assert answer.status_code == 400 and "OAuth state mismatch" in answer.text
        assert session._api("GET", "/user").status_code == 403
        # The state is single-use: after the failed attempt even the genuine callback is refused.
        answer = session.http.get(callback)
        assert answer.status_code == 400 and "OAuth state missing from cookies" in answer.text
        assert session._api("GET", "/user").status_code == 403
    finally:
        stranger.close()
        session.close()


def test_wrong_client_secret_is_refused(oidc):
    """The provider now knows the hub's client by another secret: the code exchange fails."""
    provider = oidc["provider"]
    provider.stop()
    provider.start(clients=[{**provider.config["clients"][0], "client_secret": secrets.token_hex(24)}])
    log = Path(oidc["config"].run_dir) / "logs" / "hub.log"
    try:
        session, callback = oidc_login(oidc, "alice")
        try:
            assert callback.status_code == 500
            assert session._api("GET", "/user").status_code == 403
        finally:
            session.close()
        deadline = time.monotonic() + 60  # polled; a busy machine writes the log late
        while "invalid_client" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert re.search(r"Error fetching 401 POST http://127\.0\.0\.1:\d+/token", log.read_text())
        assert "invalid_client" in log.read_text()
    finally:
        provider.stop()
        provider.start()
    session, callback = oidc_login(oidc, "alice")  # the right secret again: login works
    session.close()
    assert callback.status_code == 302


def _answers_as(oidc: dict, token: str | None) -> str | None:
    """Whose token the provider takes ``token`` for (None: refused or none)."""
    if not token:
        return None
    me = httpx.get(f"{oidc['provider'].issuer}/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return me.json().get("sub") if me.status_code == 200 else None


def _wait_expired(oidc: dict, token: str) -> None:
    deadline = time.monotonic() + TOKEN_TTL + 30
    while _answers_as(oidc, token) is not None:
        assert time.monotonic() < deadline, "the provider still takes the token after its lifetime"
        time.sleep(2)


KERNEL_TOKEN = ("import os\nfrom eolab.data import access\n"
                "print(os.environ.get('EOLAB_OIDC_ACCESS_TOKEN'), access.oidc_access_token(), "
                "os.environ.get('EOLAB_OIDC_TOKEN_EXPIRES_AT'))")


@pytest.mark.timeout(480)
def test_access_tokens_are_renewed_for_running_and_new_servers(oidc):
    """A server that outlives its start's access token gets a fresh one from the hub (renewed with the
    login's refresh token, which stays in the hub), a server started later gets a live one, and the
    hub's token endpoint answers each caller with that caller's own token only."""
    url = f"{oidc['url']}/hub/eolab-oidc-token"
    session, callback = oidc_login(oidc, "alice")
    try:
        assert callback.status_code == 302
        session.username = session._api("GET", "/user").json()["name"]
        session.new_token()
        if not AS_ROOT:  # servers run as the hub's account: no tokens for them, and a clear answer
            answer = httpx.get(url, headers={"Authorization": f"token {session.token}"}, timeout=30)
            assert answer.status_code == 404 and "own system account" in answer.json()["message"]
            return
        session.start_server()
        kernel = session.start_kernel()
        first, current, _ = session.run(kernel, KERNEL_TOKEN).split()
        assert _answers_as(oidc, current) == "alice"
        _wait_expired(oidc, first)
        # The running server's start token has expired: the kernel asks the hub, which renews it.
        started, renewed, _ = session.run(kernel, KERNEL_TOKEN).split()
        assert started == first and renewed != first
        assert _answers_as(oidc, renewed) == "alice"
        log = (Path(oidc["config"].run_dir) / "logs" / "hub.log").read_text()
        assert "Renewing the OIDC access token" in log and renewed not in log

        # Attacks on the endpoint: no token, her login cookie alone (what a page of a server shared
        # with her could send), a token of hers without the scope, another user's login.
        assert httpx.get(url, timeout=30, follow_redirects=False).status_code in (302, 403)
        by_cookie = session.http.get("/hub/eolab-oidc-token")
        assert by_cookie.status_code == 403 and "not the login cookie" in by_cookie.json()["message"]
        narrow = session._api("POST", f"/users/{session.username}/tokens",
                              json={"note": "narrow", "expires_in": 600, "scopes": ["read:users:name!user"]})
        assert narrow.status_code in (200, 201), narrow.text
        refused = httpx.get(url, headers={"Authorization": f"token {narrow.json()['token']}"}, timeout=30)
        assert refused.status_code == 403 and "custom:eolab:oidc-token" in refused.json()["message"]
        admin, answer = oidc_login(oidc, "admin")
        try:
            admin.username = admin._api("GET", "/user").json()["name"]
            admin.new_token()
            theirs = httpx.get(url, headers={"Authorization": f"token {admin.token}"}, timeout=30)
            assert theirs.status_code == 200 and _answers_as(oidc, theirs.json()["access_token"]) == "admin"
        finally:
            admin.close()
        # The legitimate path still works: alice's own hub token gets her token.
        mine = httpx.get(url, headers={"Authorization": f"token {session.token}"}, timeout=30)
        assert mine.status_code == 200 and mine.headers["cache-control"] == "no-store"
        assert _answers_as(oidc, mine.json()["access_token"]) == "alice"
        assert "refresh_token" not in mine.json() and mine.json()["issuer"] == oidc["provider"].issuer

        # A server started after the hub's token has expired gets a live one (renewed before the spawn).
        session.stop_server()
        _wait_expired(oidc, mine.json()["access_token"])
        spawned = time.time()
        session.start_server()
        kernel = session.start_kernel()
        handed, current, expires = session.run(kernel, KERNEL_TOKEN).split()
        assert handed not in (first, renewed, mine.json()["access_token"])
        assert float(expires) > spawned + TOKEN_TTL - 5  # renewed at the spawn: its whole life ahead
        assert _answers_as(oidc, current) == "alice"
    finally:
        session.stop_server()
        session.close()
