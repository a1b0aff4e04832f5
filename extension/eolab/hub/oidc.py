"""OIDC access tokens that last as long as the hub session: run in the hub when its login is OIDC
(``hub_config/oidc/oidc_config.py``).

- :class:`OIDCAuthenticator`: oauthenticator's GenericOAuthenticator, which renews a login's access
  token with its refresh token only once the provider refuses it. This one renews it before: when
  less than ``token_margin`` seconds (at most half its lifetime) are left. Before each server starts
  (``refresh_pre_spawn``) the server therefore gets a token with most of its life ahead.
- :class:`OIDCTokenHandler`, ``GET /hub/eolab-oidc-token``: the caller's current access token, renewed
  when it is near its end, for a server that has run longer than the token it got at its start
  (:func:`eolab.data.access.oidc_access_token` asks here with the server's hub token). Needs a hub
  token (never the login cookie alone) with the scope ``custom:eolab:oidc-token`` (the hub gives it
  to users and their servers, for themselves only), and is open only where servers run as their
  users' own accounts. The refresh token never leaves the hub; hub admins (``admin:users``, which
  includes ``admin:auth_state``) can read auth state, as in any JupyterHub that keeps it.
- Renewals of one login run one at a time (providers that rotate refresh tokens revoke a login whose
  refresh token comes twice); a provider that is down leaves the current token in use while it
  lasts; a user no longer allowed (e.g. removed from the groups) gets no new token.
"""

from __future__ import annotations

import asyncio
import json
import time

from jupyterhub.handlers.base import BaseHandler
from jupyterhub.scopes import check_scope_filter
from oauthenticator.generic import GenericOAuthenticator
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Float

SCOPE = "custom:eolab:oidc-token"

# JupyterHub 6.1 reads this on cookie requests whose refresh failed without ever setting it there
# (AttributeError: a 500 instead of "log in again"); False is what it means.
if not hasattr(BaseHandler, "_token_authenticated"):
    BaseHandler._token_authenticated = False


class OIDCAuthenticator(GenericOAuthenticator):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._renewing: dict[str, asyncio.Lock] = {}

    token_margin = Float(300.0, config=True,
                         help="Renew the access token when fewer seconds than this (at most half its lifetime) are left")

    def build_auth_state_dict(self, token_info, user_info):
        # expires_in counts from when the token was issued; keep that time in the stored token
        # answer, which a later check of the same token builds the auth state from again
        token_info.setdefault("obtained_at", time.time())
        state = super().build_auth_state_dict(token_info, user_info)
        if token_info.get("expires_in"):
            state["expires_at"] = float(token_info["obtained_at"]) + float(token_info["expires_in"])
        return state

    def _near_end(self, state: dict) -> bool:
        info = state.get("token_response") or {}
        if not state.get("expires_at") or not info.get("expires_in"):
            return False
        margin = min(self.token_margin, float(info["expires_in"]) / 2)
        return state["expires_at"] - time.time() < margin

    async def refresh_user(self, user, handler=None, **kwargs):
        state = await user.get_auth_state() if self.enable_auth_state else None
        if not state or not state.get("refresh_token") or not self._near_end(state):
            return await super().refresh_user(user, handler, **kwargs)
        # One renewal per login at a time, saved before the next one looks: providers that rotate
        # refresh tokens revoke the whole login when one comes twice.
        async with self._renewing.setdefault(user.name, asyncio.Lock()):
            state = await user.get_auth_state() or {}
            if not state.get("refresh_token") or not self._near_end(state):
                return True  # renewed meanwhile
            model = await self._renew(user, handler, state)
            if isinstance(model, dict):
                await user.save_auth_state(model["auth_state"])
            return model

    async def _renew(self, user, handler, state: dict):
        self.log.info("Renewing the OIDC access token of %s before it expires", user.name)
        try:
            token_info = await self.get_token_info(handler, self.build_refresh_token_request_params(
                state["refresh_token"]))
        except Exception as exc:
            if isinstance(exc, HTTPClientError) and exc.code in (400, 401):  # refused: log in again
                self.log.info("The provider refused to renew the OIDC access token of %s: %s", user.name, exc)
                return False
            # the provider is down or slow: the current token serves while it lasts
            self.log.warning("Could not renew the OIDC access token of %s now: %s", user.name, exc)
            return state.get("expires_at", 0) > time.time()
        if not token_info.get("refresh_token"):  # not every provider sends a new one
            token_info["refresh_token"] = state["refresh_token"]
        try:
            model = await self._token_to_auth_model(token_info)
        except Exception as exc:
            self.log.error("The renewed OIDC access token of %s does not work: %s", user.name, exc)
            return False
        if not await self.check_allowed(model["name"], model):  # e.g. removed from the allowed groups
            self.log.info("%s is no longer allowed: not renewed, log in needed", user.name)
            return False
        return model


class OIDCTokenHandler(BaseHandler):
    """``GET /hub/eolab-oidc-token`` → ``{"access_token", "expires_at", "issuer"}`` of the caller."""

    _accept_token_auth = True

    def initialize(self, issuer: str = "", enabled: bool = False):
        self.issuer, self.enabled = issuer, enabled

    def _answer(self, status: int, body: dict) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))

    @web.authenticated
    async def get(self):
        user = self.current_user
        if not self.enabled:
            return self._answer(404, {"status": 404, "message": "this hub hands out OIDC access tokens only where "
                                      "each user's server runs as the user's own system account"})
        if not getattr(self, "_token_authenticated", False):
            # never on the login cookie alone: a page of another user's server on this origin (a
            # shared server) could otherwise read the visitor's token
            return self._answer(403, {"status": 403, "message": "ask with a hub token (Authorization: token ...), "
                                      "not the login cookie"})
        if getattr(user, "kind", "user") != "user":
            return self._answer(403, {"status": 403, "message": "OIDC access tokens are for users, not services"})
        sub = self.parsed_scopes.get(SCOPE)
        if not sub or not check_scope_filter(sub, user.orm_user, "user"):
            return self._answer(403, {"status": 403, "message": f"this token lacks the scope {SCOPE}"})
        if await self.refresh_auth(user, force=True) is None:
            return self._answer(401, {"status": 401, "message": "the identity provider no longer accepts this "
                                      "login: log in to the hub again"})
        state = await user.get_auth_state() or {}
        if not state.get("access_token"):
            return self._answer(404, {"status": 404, "message": "this login holds no OIDC access token"})
        if state.get("expires_at") and state["expires_at"] <= time.time():  # could not be renewed
            return self._answer(401, {"status": 401, "message": "the OIDC access token has expired and could not be "
                                      "renewed: log in to the hub again"})
        self._answer(200, {"access_token": state["access_token"], "expires_at": state.get("expires_at"),
                           "issuer": self.issuer})
