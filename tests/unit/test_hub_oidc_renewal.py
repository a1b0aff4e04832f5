"""The hub's OIDC token renewal (eolab.hub.oidc.OIDCAuthenticator) on its own: when it renews, that
concurrent requests renew once, and what a refused renewal or a provider that is down gives. The
provider's answers are stood in for here; tests/integration/test_hub_oidc.py runs it against a real
provider and hub."""

from __future__ import annotations

import asyncio
import time

import pytest
from tornado.httpclient import HTTPClientError

from eolab.hub.oidc import OIDCAuthenticator


class User:
    name = "alice"

    def __init__(self, state):
        self.state = state

    async def get_auth_state(self):
        return self.state

    async def save_auth_state(self, state):
        self.state = state


def _authenticator(monkeypatch, answers, allowed=True):
    auth = OIDCAuthenticator(client_id="hub", client_secret="s", token_url="http://127.0.0.1:9/token",
                             userdata_url="http://127.0.0.1:9/me", authorize_url="http://127.0.0.1:9/auth",
                             enable_auth_state=True)
    calls = []

    async def get_token_info(handler, params):
        calls.append(params["refresh_token"])
        await asyncio.sleep(0.05)  # another request comes in meanwhile
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)

    async def to_model(token_info):
        return {"name": "alice", "admin": None,
                "auth_state": auth.build_auth_state_dict(token_info, {"sub": "alice"})}

    async def check_allowed(name, model):
        return allowed

    monkeypatch.setattr(auth, "get_token_info", get_token_info)
    monkeypatch.setattr(auth, "_token_to_auth_model", to_model)
    monkeypatch.setattr(auth, "check_allowed", check_allowed)
    return auth, calls


def _state(auth, left, lifetime=600.0):
    info = {"access_token": "old", "refresh_token": "r1", "expires_in": lifetime,
            "obtained_at": time.time() + left - lifetime}
    return auth.build_auth_state_dict(info, {"sub": "alice"})


def test_a_token_near_its_end_is_renewed_once_for_concurrent_requests(monkeypatch):
    auth, calls = _authenticator(monkeypatch, [{"access_token": "new", "refresh_token": "r2", "expires_in": 600}])
    user = User(_state(auth, left=100))  # under the 300 s margin
    first, second = asyncio.run(_both(auth, user))
    assert calls == ["r1"]  # the refresh token went once (a rotating provider revokes on reuse)
    assert first["auth_state"]["access_token"] == "new" and second is True
    assert user.state["refresh_token"] == "r2" and user.state["expires_at"] > time.time() + 590


async def _both(auth, user):
    return await asyncio.gather(auth.refresh_user(user), auth.refresh_user(user))


def test_a_refused_renewal_asks_for_a_login_and_a_provider_down_keeps_the_live_token(monkeypatch):
    refused = HTTPClientError(400, "invalid_grant")
    auth, _ = _authenticator(monkeypatch, [refused])
    assert asyncio.run(auth.refresh_user(User(_state(auth, left=100)))) is False
    down = HTTPClientError(503, "unavailable")
    auth, _ = _authenticator(monkeypatch, [down, down])
    assert asyncio.run(auth.refresh_user(User(_state(auth, left=100)))) is True  # still 100 s to go
    assert asyncio.run(auth.refresh_user(User(_state(auth, left=-5)))) is False  # expired: log in again


def test_no_renewal_for_a_user_no_longer_allowed_and_none_far_from_the_end(monkeypatch):
    auth, calls = _authenticator(monkeypatch, [{"access_token": "new", "expires_in": 600}], allowed=False)
    assert asyncio.run(auth.refresh_user(User(_state(auth, left=100)))) is False
    auth, calls = _authenticator(monkeypatch, [])
    checked = []

    async def upstream(self, user, handler=None, **kwargs):  # oauthenticator's own check of a live token
        checked.append(user.name)
        return True

    monkeypatch.setattr("oauthenticator.oauth2.OAuthenticator.refresh_user", upstream)
    assert asyncio.run(auth.refresh_user(User(_state(auth, left=500)))) is True
    assert calls == [] and checked == ["alice"]


@pytest.mark.parametrize("lifetime, left, near", [(600, 100, True), (600, 400, False), (40, 15, True), (40, 25, False)])
def test_the_margin_is_at_most_half_the_lifetime(monkeypatch, lifetime, left, near):
    auth, _ = _authenticator(monkeypatch, [])
    assert auth._near_end(_state(auth, left=left, lifetime=lifetime)) is near
