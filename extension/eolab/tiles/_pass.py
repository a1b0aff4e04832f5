"""Map passes: what a hub user's tile URLs carry so their browser's tile requests pass the hub's gate.

Browsers load a map's tiles as a burst of parallel image requests. Behind the hub's login each
would start its own OAuth round trip, and JupyterHub completes only one of a burst (they share one
state cookie), so most tiles failed. Instead the user's kernel asks the gate once, with its hub
token, for a pass: ``<user>.<expiry>.<signature>``, an HMAC over user and expiry with a key only
the gate holds (derived from the stack's service token). The gate lets tile requests with a valid,
unexpired pass through; the pass opens nothing but quicklook tiles and names its user in the log.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

PARAM = "eolab_pass"
_DIGITS = re.compile(r"[0-9]{1,12}")
_HEX = re.compile(r"[0-9a-f]{64}")
LIFETIME = 7 * 24 * 3600.0  # a map left open for days still loads tiles; a new kernel gets a new one


def key(service_token: str) -> bytes:
    """The signing key: derived, so the service token itself never signs anything a browser sees."""
    return hmac.new(service_token.encode(), b"eolab map pass v1", hashlib.sha256).digest()


def _signature(secret: bytes, user: str, expiry: int) -> str:
    return hmac.new(secret, f"{user}.{expiry}".encode(), hashlib.sha256).hexdigest()


def mint(secret: bytes, user: str, now: float | None = None, lifetime: float = LIFETIME) -> str:
    if not user:
        raise ValueError("a pass needs a user name")
    expiry = int((time.time() if now is None else now) + lifetime)
    return f"{user}.{expiry}.{_signature(secret, user, expiry)}"


def verify(secret: bytes, value: str | None, now: float | None = None) -> str | None:
    """The pass's user if it is genuine and unexpired, else None."""
    parts = (value or "").rsplit(".", 2)  # user names may hold dots (OIDC logins); the rest cannot
    if len(parts) != 3:
        return None
    user, expiry, signature = parts
    # ASCII digits and hex only: str.isdigit() takes "²" and other scripts' digits (int() then
    # raises, or reads another spelling of a genuine pass), and compare_digest refuses non-ASCII str.
    if not user or not _DIGITS.fullmatch(expiry) or not _HEX.fullmatch(signature):
        return None
    if not hmac.compare_digest(signature.encode(), _signature(secret, user, int(expiry)).encode()):
        return None
    return user if int(expiry) > (time.time() if now is None else now) else None
