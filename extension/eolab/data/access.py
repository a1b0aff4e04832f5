"""Credentials at read time: sign or authorise each asset read where it happens.

``load_cube`` hands odc-stac a reader driver (:class:`AccessDriver`) that holds only what is not
secret — per asset origin, the provider id and how its assets are read (:class:`AccessSpec`, from
the member's ``profile:``). The secret part is looked up by the process that reads (the kernel or a
Dask worker) from its own :class:`eolab.settings.AccessSettings` and token cache, so no token or
key enters the task graph:

- ``sas``: a Planetary-Computer-style SAS token from the provider's token endpoint
  (``GET {token_url}/{container}`` → ``{"token": "...", "msft:expiry": "..."}``), cached per
  provider and container in each process and renewed before it expires; a read refused with 403
  renews it once more.
- ``s3``: S3 credentials (``EOLAB_S3_CREDENTIALS``) and the endpoint given to GDAL for that read.
  Where the member's profile names an ``s3_keys_url`` (CDSE's S3 keys manager, or the CDSE-like
  look-alike's) and no keys are set, keys are minted there with the user's OIDC access token
  (``EOLAB_OIDC_ACCESS_TOKEN``, handed to the user's server by the hub's OIDC login), kept in the
  user's 0600 keys file for every process of the user, and minted anew when the store refuses them.
- ``bearer``: an ``Authorization: Bearer`` header (``EOLAB_BEARER_TOKENS``).

Every read is also held to the provider's ``max_connections`` (on Dask workers by a semaphore the
scheduler holds for the whole cluster, elsewhere per process) and retried with
backoff when answered 429/503; :func:`stats` reports reads, retries, failures and token fetches.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import random
import re
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from eolab.errors import EolabError

log = logging.getLogger("eolab.access")

# Statuses only where a message gives one ("HTTP response code: 429"), not any 429 (an offset, a
# byte count); and the throttling words of S3, Azure and Google Cloud Storage.
_RETRYABLE = re.compile(r"(?:response|error|status)[ _]?code\b[^0-9]{0,12}(?:429|503)\b|\b(?:http |returned error: )(?:429|503)\b|"
                        r"too ?many ?requests|slow ?down|service ?unavailable|server ?busy|throttl|"
                        r"(?:rate|request)_?limit_?exceeded|reduce your request rate", re.I)
_STALLED = re.compile(r"operation too slow|timed out|timeout was reached", re.I)

# Signed URLs (a SAS token's sig=, X-Amz-Signature=) and bearer tokens, as they appear in GDAL's,
# odc-loader's and httpx's messages: never shown, logged or raised with their secret part.
_URL_QUERY = re.compile(r"((?:https?|s3|gs|az|abfs)://[^\s'\"<>?),]*)\?[^\s'\"<>),]*", re.I)
_SECRET_PARAM = re.compile(r"(?<![a-z-])((?:sig|signature|x-amz-[a-z-]+|token|access_token|se|skoid|sktid)(?:=|%3D))"
                           r"[^&\s'\"<>),%]+", re.I)
_BEARER = re.compile(r"(authorization\W{1,3}(?:bearer|token)\s+|bearer\s+(?=[\w.~+/=-]{16}))[\w.~+/=-]+", re.I)
_MAX_ANSWER = 64 * 1024  # bytes: a token endpoint's or keys service's answer is a few hundred
MAX_TOKEN_CACHE = 86400.0  # s: a token is asked for again after a day, whatever its expiry says


def redact(text: str) -> str:
    """``text`` without URLs' query strings (where signatures travel) and bearer tokens."""
    text = _URL_QUERY.sub(r"\1?<query hidden>", text)
    return _BEARER.sub(r"\1<hidden>", _SECRET_PARAM.sub(r"\1<hidden>", text))


class _Redacting(logging.Filter):
    """Takes signatures out of the messages of loggers that print the URLs reads open: odc-loader
    logs every failed read with its (signed) URL, httpx every request, rasterio GDAL's errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: left to logging's own error handling
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


for _name in ("eolab.access", "odc.loader._rio", "httpx", "rasterio._env", "rasterio._io", "rasterio.env"):
    logging.getLogger(_name).addFilter(_Redacting())


class AccessError(EolabError):
    """A read was refused or failed: names the provider, the asset and what to set."""


@dataclass(frozen=True)
class AccessSpec:
    """How one provider's assets are read (nothing secret: it travels in task graphs)."""

    provider: str
    kind: str = "public"  # public | sas | s3 | bearer
    token_url: str | None = None
    s3_endpoint: str | None = None
    s3_https: bool = True
    requester_pays: bool = False
    max_connections: int | None = None
    retries: int = 5
    s3_keys_url: str | None = None
    s3_keys_issuer: str | None = None


def spec_for(provider: str | None, profile: Any) -> AccessSpec:
    if profile is None:
        return AccessSpec(provider or "unknown")
    return AccessSpec(provider or "unknown", profile.access, profile.token_url, profile.s3_endpoint,
                      profile.s3_https, profile.requester_pays, profile.max_connections, profile.retries,
                      getattr(profile, "s3_keys_url", None), getattr(profile, "s3_keys_issuer", None))


# --- per-process state: token cache, connection caps, counters ----------------------------------

_lock = threading.Lock()
# (provider, origin, container) -> token, expiry, lifetime: two storage accounts may hold containers
# of the same name, and one's token is not the other's
_tokens: dict[tuple[str, str, str], tuple[str, float, float]] = {}
_token_locks: dict[tuple[str, str, str], threading.Lock] = {}
_caps: dict[tuple, Any] = {}
_stats: Counter = Counter()


def stats() -> dict[str, int]:
    """Counters of this process: ``PROVIDER:reads``, ``:retries``, ``:failures``, ``:tokens``."""
    with _lock:
        return dict(_stats)


def reset() -> None:
    """Forget cached tokens, minted keys in memory, GDAL's cached answers and the counters of this
    process (tests, or after changing credentials)."""
    with _lock:
        _tokens.clear()
        _stats.clear()
        _THROTTLED.clear()
        _RETRY_AFTER.clear()
    with _MINT_LOCK:
        _MINTED.clear()
    with _HUB_TOKEN_LOCK:
        _HUB_TOKEN.clear()
    _clear_gdal_http_cache()


def _count(provider: str, what: str, n: int = 1) -> None:
    with _lock:
        _stats[f"{provider}:{what}"] += n


def _cluster_cap(spec: AccessSpec):
    """On a Dask worker: a semaphore held by the scheduler, shared by every worker of the cluster."""
    try:
        from distributed import Semaphore, get_worker
        get_worker()
    except (ImportError, ValueError):
        return None
    key = ("cluster", spec.provider, spec.max_connections)
    with _lock:
        if key not in _caps:
            _caps[key] = Semaphore(max_leases=spec.max_connections,
                                   name=f"eolab-{spec.provider}-{spec.max_connections}")
        return _caps[key]


def _cap(spec: AccessSpec):
    """The provider's connection cap: per cluster on Dask workers, per process elsewhere."""
    if not spec.max_connections:
        return None
    cluster = _cluster_cap(spec)
    if cluster is not None:
        return cluster
    with _lock:
        key = (spec.provider, spec.max_connections)
        return _caps.setdefault(key, threading.BoundedSemaphore(spec.max_connections))


# --- SAS tokens ----------------------------------------------------------------------------------

def _container(href: str) -> str:
    """The storage container of an href (``account/container`` on Azure Blob Storage)."""
    parts = urlsplit(href)
    first = parts.path.lstrip("/").split("/", 1)[0]
    host = (parts.hostname or "").lower()
    if host.endswith(".blob.core.windows.net"):
        return f"{host.split('.', 1)[0]}/{first}"
    return first


def _origin(href: str) -> str:
    parts = urlsplit(href)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


def _this_machine(host: str | None) -> bool:
    """A loopback address, or localhost (exactly: not localhost.example.org)."""
    import ipaddress

    host = (host or "").lower().rstrip(".")
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refuse_plain_http(spec: AccessSpec, href: str, what: str) -> None:
    """Secrets go over https only (or to this machine: the look-alikes and tests)."""
    parts = urlsplit(href)
    if parts.scheme.lower() == "http" and not _this_machine(parts.hostname):
        raise AccessError(f"{href[:200]} of provider {spec.provider!r} is plain http: {what} is never sent there",
                          hint=f"the provider's https address is needed (member {spec.provider!r})")


def _parse_expiry(value: Any) -> float:
    """An expiry as Unix time: seconds or milliseconds since 1970, or ISO 8601 (without a zone: UTC)."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        when = float(value)
        if when > 1e11:  # milliseconds (1e11 s is the year 5138)
            when /= 1000
    else:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        if parsed.tzinfo is None:  # no zone: read as UTC, not as this machine's local time
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        when = parsed.timestamp()
    if not math.isfinite(when):
        raise ValueError(f"not a time: {value!r}")
    return when


CREDENTIALS_DEADLINE = 30.0  # s for a token endpoint's or keys service's whole answer


def _small_answer(method: str, url: str, *, headers: dict[str, str], what: str, provider: str,
                  hint: str, deadline: float | None = None):
    """(status, body) of a credentials endpoint, read within ``deadline`` s in all and at most
    _MAX_ANSWER bytes: one that sends a byte now and then, or without end, is given up on."""
    import httpx

    deadline = CREDENTIALS_DEADLINE if deadline is None else deadline
    end = time.monotonic() + deadline
    try:
        with httpx.stream(method, url, headers=headers, timeout=min(10.0, deadline)) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > _MAX_ANSWER:
                    raise AccessError(f"{what} of provider {provider!r} ({url}) answered more than "
                                      f"{_MAX_ANSWER // 1024} kB: not a credentials answer", hint=hint)
                if time.monotonic() > end:
                    raise AccessError(f"{what} of provider {provider!r} ({url}) took more than {deadline:g} s "
                                      "to answer", hint=hint)
            return response.status_code, bytes(body)
    except httpx.HTTPError as exc:
        raise AccessError(f"{what} of provider {provider!r} ({url}) did not answer: {redact(str(exc))[:200]}",
                          hint=hint) from None


def _json_object(body: bytes) -> dict | None:
    import json

    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _fetch_token(spec: AccessSpec, container: str) -> tuple[str, float]:
    from eolab import settings

    if not spec.token_url:
        raise AccessError(f"provider {spec.provider!r} reads assets with SAS tokens but has no token endpoint",
                          hint=f"set 'profile: token_url:' of member {spec.provider!r} in the catalogue configuration")
    url = f"{spec.token_url.rstrip('/')}/{container}"
    key = settings.access().sas_subscription_key
    if key:
        _refuse_plain_http(spec, url, "the SAS subscription key")
    headers = {"Ocp-Apim-Subscription-Key": key} if key else {}
    check = f"check 'profile: token_url:' of member {spec.provider!r}"
    status, raw = _small_answer("GET", url, headers=headers, what="the SAS token endpoint", provider=spec.provider,
                                hint=check)
    if status != 200:
        raise AccessError(f"the SAS token endpoint of provider {spec.provider!r} ({url}) refused: HTTP {status}",
                          hint="set EOLAB_SAS_SUBSCRIPTION_KEY if the provider needs a key, or " + check)
    body = _json_object(raw)
    if body is None:
        raise AccessError(f"the SAS token endpoint of provider {spec.provider!r} ({url}) did not answer a JSON "
                          "object", hint=f"is 'profile: token_url:' of member {spec.provider!r} the token endpoint?")
    token, expiry = body.get("token"), body.get("msft:expiry") or body.get("expiry")
    if not isinstance(token, str) or not token or not expiry:
        raise AccessError(f"the SAS token endpoint of provider {spec.provider!r} ({url}) answered without "
                          "'token' and 'msft:expiry'", hint="is 'profile: token_url:' the token endpoint?")
    try:
        expires = _parse_expiry(expiry)
    except (TypeError, ValueError, OverflowError):
        raise AccessError(f"the SAS token endpoint of provider {spec.provider!r} ({url}) gave an expiry that is "
                          f"not a time: {str(expiry)[:60]!r}", hint="is 'profile: token_url:' the token endpoint?") from None
    if expires <= time.time():
        raise AccessError(f"the SAS token endpoint of provider {spec.provider!r} ({url}) gave a token that has "
                          f"already expired ({str(expiry)[:40]})",
                          hint="the endpoint's clock or its tokens are wrong: tell the provider; " + check)
    _count(spec.provider, "tokens")
    return token, min(expires, time.time() + MAX_TOKEN_CACHE)


def sas_token(spec: AccessSpec, href: str, *, renew: bool = False) -> str:
    """A valid SAS token for the container of ``href``, from this process's cache or fetched anew."""
    from eolab import settings

    key = (spec.provider, _origin(href), _container(href))
    with _lock:
        key_lock = _token_locks.setdefault(key, threading.Lock())
    with key_lock:  # one fetch per container at a time; the others wait and reuse it
        cached = _tokens.get(key)
        now = time.time()
        if cached and not renew:
            token, expiry, lifetime = cached
            margin = min(settings.access().sas_refresh_margin, lifetime / 3)
            if expiry - now > margin:
                return token
        token, expiry = _fetch_token(spec, key[2])
        _tokens[key] = (token, expiry, max(expiry - now, 1.0))
        return token


def sign(spec: AccessSpec, href: str, *, renew: bool = False) -> str:
    """``href`` as the reading process must open it (a SAS token appended for 'sas')."""
    if spec.kind != "sas" or not href.startswith(("http://", "https://")):
        return href
    _refuse_plain_http(spec, href, "a SAS token")
    token = sas_token(spec, href, renew=renew)
    return f"{href}{'&' if '?' in href else '?'}{token}"


_MINTED: dict[str, dict[str, Any]] = {}  # provider -> keys minted (or read from the keys file) here
_MINT_LOCK = threading.Lock()


def s3_keys(spec: AccessSpec, *, refused: dict[str, str] | None = None) -> dict[str, str]:
    """S3 keys of ``spec``'s provider: set ones (``EOLAB_S3_CREDENTIALS``), else minted ones.

    ``refused``: keys the store just refused (expired, revoked): others are taken from the keys file
    if another process minted them meanwhile, else new ones are minted.
    """
    from eolab import settings

    conf = settings.access()
    creds = conf.s3_credentials.get(spec.provider)
    if creds:
        return creds
    if not spec.s3_keys_url:
        raise AccessError(f"provider {spec.provider!r} reads assets over S3 and no S3 credentials are set",
                          hint=f"set EOLAB_S3_CREDENTIALS='{{\"{spec.provider}\": {{\"access_key_id\": ..., "
                               "\"secret_access_key\": ...}}' (in the kernel's and the workers' environment)")
    def usable(keys: dict | None) -> bool:
        # Renewed a minute before they expire (a quarter of their lifetime if that is shorter).
        margin = min(60.0, float(keys.get("lifetime", 240.0)) / 4) if keys else 0.0
        return bool(keys) and keys.get("keys_url") == spec.s3_keys_url and keys["expires"] > time.time() + margin \
            and (refused is None or keys["access_key_id"] != refused.get("access_key_id"))

    with _MINT_LOCK:
        if usable(_MINTED.get(spec.provider)):  # every read asks: no file lock for the usual case
            return _MINTED[spec.provider]
    with _MINT_LOCK, _KeysFile(conf.s3_keys_file) as keys_file:
        for keys in (_MINTED.get(spec.provider), keys_file.get(spec)):
            if usable(keys):
                _MINTED[spec.provider] = keys
                return keys
        keys = _mint(spec, conf)
        keys_file.put(spec, keys)
        _MINTED[spec.provider] = keys
        _count(spec.provider, "keys_minted")
        return keys


class _KeysFile:
    """The user's minted S3 keys (JSON, mode 0600), locked while read and written: every process of
    the user (kernel, LocalCluster and Gateway workers on a shared home) uses the same keys, so a
    provider's limit on live keys per user is not spent by each process minting its own."""

    def __init__(self, path) -> None:
        from pathlib import Path

        self.path = Path(path).expanduser()

    def __enter__(self) -> _KeysFile:
        import fcntl
        import os

        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = os.open(str(self.path) + ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        import os

        os.close(self._lock)  # releases the lock

    def _read(self) -> dict:
        import json

        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def get(self, spec: AccessSpec) -> dict[str, Any] | None:
        keys = self._read().get(spec.provider)
        return keys if isinstance(keys, dict) and keys.get("keys_url") == spec.s3_keys_url else None

    def put(self, spec: AccessSpec, keys: dict[str, Any]) -> None:
        import json
        import os

        data = self._read()
        data[spec.provider] = keys
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)  # (a leftover of a killed process; we hold the lock)
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1)
        os.replace(tmp, self.path)


_HUB_TOKEN: dict[str, Any] = {}  # the freshest OIDC access token the hub handed this process
_HUB_TOKEN_LOCK = threading.Lock()  # not _MINT_LOCK: minting (under it) asks for the token
TOKEN_MARGIN = 15.0  # s: a token with less left is not sent (the keys service may refuse it mid-call)


def oidc_access_token(refused: str | None = None, conf: Any = None) -> str | None:
    """The user's OIDC access token: EOLAB_OIDC_ACCESS_TOKEN as the hub set it at the server's start,
    or, once that one is near its end (EOLAB_OIDC_TOKEN_EXPIRES_AT) or was ``refused``, a fresh one
    from the hub (``GET /hub/eolab-oidc-token`` with the server's hub token; the hub renews it with
    the login's refresh token, which never leaves the hub). ``conf``: the settings of the caller's
    read (default: the current ones)."""
    from eolab import settings

    conf = conf or settings.access()
    with _HUB_TOKEN_LOCK:
        now = time.time()
        # the hub's token stands in for this very setting only (same issuer), never for others
        if _HUB_TOKEN and conf.oidc_access_token and _HUB_TOKEN["issuer"] == (conf.oidc_issuer or "").rstrip("/") \
                and _HUB_TOKEN["access_token"] != refused and (_HUB_TOKEN["expires_at"] or 1e18) - TOKEN_MARGIN > now:
            return _HUB_TOKEN["access_token"]
        token, expires = conf.oidc_access_token, conf.oidc_token_expires_at
        if token and token != refused and (expires is None or expires - TOKEN_MARGIN > now):
            return token
        fresh = _token_from_hub(conf)
        if fresh is None:
            return token if token != refused else None
        _HUB_TOKEN.clear()
        _HUB_TOKEN.update(fresh)
        return fresh["access_token"]


def _token_from_hub(conf: Any) -> dict[str, Any] | None:
    import os

    api, hub_token = os.environ.get("JUPYTERHUB_API_URL"), os.environ.get("JUPYTERHUB_API_TOKEN")
    if not (api and hub_token and conf.oidc_access_token):  # not a server the hub gave a token to
        return None
    url = api.rstrip("/").removesuffix("/api") + "/eolab-oidc-token"
    try:
        status, raw = _small_answer("GET", url, headers={"Authorization": f"token {hub_token}"},
                                    what="the hub's OIDC token endpoint", provider="hub", hint="")
    except AccessError as exc:
        log.warning("could not get a fresh OIDC access token from the hub: %s", exc)
        return None
    body = _json_object(raw) or {}
    if status != 200 or not isinstance(body.get("access_token"), str) or not body["access_token"]:
        # the body is never quoted: it may hold a token
        said = body.get("message") if isinstance(body.get("message"), str) and status != 200 else None
        log.warning("the hub gave no fresh OIDC access token (HTTP %s%s)", status,
                    f": {redact(said)[:200]}" if said else f"; its answer has the fields {sorted(body)[:10]}")
        return None
    if conf.oidc_issuer and (body.get("issuer") or "").rstrip("/") != conf.oidc_issuer.rstrip("/"):
        log.warning("the hub's OIDC access token is from %s, not %s: not used", body.get("issuer"), conf.oidc_issuer)
        return None
    log.info("got a fresh OIDC access token from the hub (valid until %s)", body.get("expires_at"))
    return {"access_token": body["access_token"], "expires_at": body.get("expires_at"),
            "issuer": (conf.oidc_issuer or "").rstrip("/")}


def _mint(spec: AccessSpec, conf: Any) -> dict[str, Any]:
    """New S3 keys from the provider's keys service (after CDSE's S3 keys manager:
    ``POST`` with the user's OIDC access token → ``{access_id, secret, expiration_date}``)."""
    url = urlsplit(spec.s3_keys_url)
    if url.scheme != "https" and not _this_machine(url.hostname):
        raise AccessError(f"the S3 keys service of provider {spec.provider!r} ({spec.s3_keys_url}) is not https: "
                          "an access token is never sent there", hint="use its https address in 'profile: s3_keys_url:'")
    if conf.oidc_access_token and not spec.s3_keys_issuer:
        raise AccessError(f"member {spec.provider!r} names no identity provider for its S3 keys service, so your "
                          "OIDC access token is not sent to it",
                          hint=f"set 'profile: s3_keys_issuer:' of member {spec.provider!r} to the issuer whose "
                               "tokens that service accepts (or set EOLAB_S3_CREDENTIALS)")
    if conf.oidc_access_token and conf.oidc_issuer and conf.oidc_issuer.rstrip("/") != spec.s3_keys_issuer.rstrip("/"):
        raise AccessError(f"your OIDC access token is from {conf.oidc_issuer}, and the S3 keys service of provider "
                          f"{spec.provider!r} accepts tokens of {spec.s3_keys_issuer}: it is not sent there",
                          hint="log in to the hub with that provider's identity provider, or set "
                               "EOLAB_S3_CREDENTIALS with keys made there")
    token = oidc_access_token(conf=conf) or conf.bearer_tokens.get(spec.provider)
    if not token:
        raise AccessError(f"provider {spec.provider!r} reads assets over S3 with keys minted from an OIDC login, "
                          "and no OIDC access token is set",
                          hint="log in to the hub with its OIDC login (your server then gets the token as "
                               "EOLAB_OIDC_ACCESS_TOKEN), or set EOLAB_OIDC_ACCESS_TOKEN, or set "
                               f"EOLAB_S3_CREDENTIALS='{{\"{spec.provider}\": {{...}}}}' with keys made by hand")
    def post(bearer: str):
        return _small_answer("POST", spec.s3_keys_url, headers={"Authorization": f"Bearer {bearer}"},
                             what="the S3 keys service", provider=spec.provider,
                             hint="check 'profile: s3_keys_url:' of the member")

    status, raw = post(token)
    if status == 401 and conf.oidc_access_token:  # expired early or revoked: once more, fresh
        fresh = oidc_access_token(refused=token, conf=conf)
        if fresh and fresh != token:
            status, raw = post(fresh)
    body = _json_object(raw) or {}
    # The answer is never quoted whole: a 200 in another layout holds the very keys. Only a refusal's
    # own words (``detail``) are shown, else the names of the fields it gave.
    detail = body.get("detail") if isinstance(body.get("detail"), str) and status != 200 else None
    said = redact(detail)[:200] if detail else f"fields {sorted(body)[:10]}" if body else "no JSON object"
    if status == 401:
        raise AccessError(f"the S3 keys service of provider {spec.provider!r} refused the OIDC access token: "
                          f"{said}", hint="the token may have expired: log in to the hub again (or set a "
                                          "fresh EOLAB_OIDC_ACCESS_TOKEN)")
    if status != 200 or not isinstance(body.get("access_id"), str) or not isinstance(body.get("secret"), str) \
            or not body["access_id"] or not body["secret"]:
        raise AccessError(f"the S3 keys service of provider {spec.provider!r} answered HTTP {status} without "
                          f"'access_id' and 'secret' ({said})", hint="keys can also be set by hand in EOLAB_S3_CREDENTIALS")
    try:
        expires = _parse_expiry(body["expiration_date"]) if body.get("expiration_date") else time.time() + 86400
    except (TypeError, ValueError, OverflowError):
        raise AccessError(f"the S3 keys service of provider {spec.provider!r} gave an expiration_date that is not "
                          f"a time: {str(body['expiration_date'])[:60]!r}", hint="keys can also be set by hand in "
                                                                                  "EOLAB_S3_CREDENTIALS") from None
    if expires <= time.time():
        raise AccessError(f"the S3 keys service of provider {spec.provider!r} gave keys that have already expired "
                          f"({str(body.get('expiration_date'))[:40]})", hint="tell the provider (its clock?), or set "
                                                                              "EOLAB_S3_CREDENTIALS by hand")
    expires = min(expires, time.time() + MAX_TOKEN_CACHE)
    log.info("provider %s: minted S3 keys valid until %s", spec.provider, body.get("expiration_date"))
    return {"keys_url": spec.s3_keys_url, "access_key_id": body["access_id"],
            "secret_access_key": body["secret"], "expires": expires, "lifetime": max(0.0, expires - time.time())}


def gdal_options(spec: AccessSpec) -> dict[str, str]:
    """GDAL configuration for one read of ``spec``'s assets, credentials from this process's settings."""
    from eolab import settings

    if spec.kind == "s3":
        options = {"AWS_VIRTUAL_HOSTING": "FALSE", "AWS_HTTPS": "YES" if spec.s3_https else "NO"}
        if spec.s3_endpoint:
            options["AWS_S3_ENDPOINT"] = spec.s3_endpoint
        if spec.requester_pays:
            options["AWS_REQUEST_PAYER"] = "requester"
        creds = s3_keys(spec)
        options["AWS_ACCESS_KEY_ID"] = creds.get("access_key_id", "")
        options["AWS_SECRET_ACCESS_KEY"] = creds.get("secret_access_key", "")
        if creds.get("session_token"):
            options["AWS_SESSION_TOKEN"] = creds["session_token"]
        return options
    if spec.kind == "bearer":
        token = settings.access().bearer_tokens.get(spec.provider)
        if not token:
            raise AccessError(f"provider {spec.provider!r} reads assets with a bearer token and none is set",
                              hint=f"set EOLAB_BEARER_TOKENS='{{\"{spec.provider}\": \"<token>\"}}'")
        return {"GDAL_HTTP_HEADERS": f"Authorization: Bearer {token}"}
    return {}


# --- the odc-stac reader driver ------------------------------------------------------------------

def _chain_text(exc: BaseException) -> str:
    """The messages of an exception and its causes (GDAL's HTTP code is often in the cause)."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__  # rasterio's "Read failed" hides GDAL's HTTP code there
    return " <- ".join(p for p in parts if p)


_SERVICE_ACCESS: dict[str, str] = {}  # the asset server URL -> the token GDAL was given for it


def service_headers(uri: str) -> dict[str, str]:
    """The stack's service token for a URL of its own asset server (from ``$EOLAB_ASSETS_URL``), else
    nothing: the asset server answers other accounts (hub users' kernels and workers) with it only."""
    from eolab import settings

    conf = settings.client()
    base = (conf.assets_url or "").rstrip("/")
    if not base or not conf.service_token or not uri.startswith(base + "/"):
        return {}
    return {"Authorization": f"Bearer {conf.service_token}"}


def ensure_service_access() -> None:
    """Let GDAL send the service token to the stack's asset server, and only there: a GDAL option
    for that URL prefix (VSISetPathSpecificOption, GDAL >= 3.6; rasterio has no binding, hence
    ctypes), so it holds in every thread of this process (Dask's, the read-ahead pool) and never
    reaches another host. Cheap after the first call; a changed token is set again."""
    from eolab import settings

    conf = settings.client()
    base = (conf.assets_url or "").rstrip("/")
    if not base or not conf.service_token or _SERVICE_ACCESS.get(base) == conf.service_token:
        return
    library = _gdal_library()
    if library is None:
        log.warning("GDAL cannot be given the service token (libgdal not found): reads of %s may be refused", base)
        return
    with _CREDENTIALS_LOCK:
        library.VSISetPathSpecificOption(f"/vsicurl/{base}/".encode(), b"GDAL_HTTP_HEADERS",
                                         f"Authorization: Bearer {conf.service_token}".encode())
        _SERVICE_ACCESS[base] = conf.service_token


def _probe(uri: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int | None, float | None]:
    """The HTTP status of a one-byte read of ``uri`` and its ``Retry-After`` in seconds (GDAL shows
    neither the headers of a refusal nor, at times, its status); (None, None) when it does not answer."""
    import httpx

    from eolab.catalog._health import parse_retry_after

    try:
        answer = httpx.get(uri, headers={"Range": "bytes=0-0", **service_headers(uri), **(headers or {})},
                           timeout=timeout)
    except httpx.HTTPError:
        return None, None
    return answer.status_code, parse_retry_after(answer.headers.get("retry-after"))


def _words(message: str, *paths: str) -> str:
    """A read's message in lower case without its paths, in any spelling (the URL, /vsicurl/...,
    /vsis3/...): a date or tile id in a path ("...20240429...") must not read as a status."""
    for path in paths:
        message = message.replace(path, " ")
    return re.sub(r"\S*/\S*", " ", message.lower())


def _retryable(words: str) -> bool:
    """A throttling answer (429, 503, S3's SlowDown) in a read's message, its paths taken out."""
    return _RETRYABLE.search(words) is not None


def _vsi_path(uri: str) -> str | None:
    """The GDAL path rasterio opens for ``uri`` (its cache is kept by that path)."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        return f"/vsicurl/{uri}"
    if parts.scheme == "s3":
        return f"/vsis3/{parts.netloc}{parts.path}"
    return None


def _forget(uri: str) -> None:
    """Forget what GDAL remembers of this one path: a 429 it was answered is otherwise served from
    GDAL's cache to every retry and every later read of the file in this process."""
    library, path = _gdal_library(), _vsi_path(uri)
    if library is None or path is None or not hasattr(library, "VSICurlPartialClearCache"):
        _clear_gdal_http_cache()
        return
    library.VSICurlPartialClearCache(path.encode())


_NO_CAP = object()
CAP_WAIT = 600.0  # s a read waits for a free connection of its provider's cap before giving up


def _bearer_header(options: dict[str, str]) -> dict[str, str]:
    """The Authorization header a read's GDAL options carry, for the read's probe."""
    name, _, value = options.get("GDAL_HTTP_HEADERS", "").partition(": ")
    return {name: value} if name.lower() == "authorization" and value else {}
_REFUSALS = ("signature", "access key", "accessdenied", "access denied", "invalidaccesskeyid", "expiredtoken")
# The keys themselves refused (expired, revoked, unknown): only then are new ones minted.
_KEY_REFUSALS = ("invalidaccesskeyid", "access key", "expiredtoken", "signaturedoesnotmatch",
                 "does not exist in our records")
_AWS_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@functools.lru_cache(None)
def _keys_session():
    from rasterio.session import Session

    class Keys(Session):
        """S3 keys for one read: rasterio.Env refuses them as options, and its AWSSession needs boto3."""

        def __init__(self, options: dict[str, str]) -> None:
            self._options = options

        @property
        def credentials(self) -> dict[str, str]:
            return dict(self._options)

        def get_credential_options(self) -> dict[str, str]:
            return dict(self._options)

    return Keys


def _Keys(options: dict[str, str]):
    return _keys_session()(options)


@functools.lru_cache(None)
def _gdal_library():
    """The GDAL library rasterio runs on (its wheel's own copy, else the system's), or None."""
    import ctypes
    import ctypes.util
    import glob
    import os

    import rasterio

    bundled = sorted(glob.glob(os.path.join(os.path.dirname(rasterio.__file__), os.pardir, "rasterio.libs",
                                            "libgdal*.so*")))
    path = bundled[0] if bundled else ctypes.util.find_library("gdal")
    try:
        return ctypes.CDLL(path) if path else None
    except OSError:
        return None


def _clear_gdal_http_cache() -> None:
    """Forget what GDAL remembers of /vsicurl/, /vsis3/ ... paths (sizes, blocks, refusals) across
    opens. rasterio has no binding for it, hence ctypes (VSICurlClearCache, GDAL's C API since 2.2)."""
    library = _gdal_library()
    if library is None:
        log.warning("GDAL's HTTP cache cannot be cleared (libgdal not found): a refusal it remembers may "
                    "be served again until the kernel restarts")
        return
    library.VSICurlClearCache()


_THROTTLED: dict[str, float] = {}  # provider -> when it last answered 429/503 (monotonic)
_RETRY_AFTER: dict[str, tuple[float, float]] = {}  # provider -> when its Retry-After was asked, when it ends
_CREDENTIALS_SEEN: dict[str, str] = {}  # provider -> digest of the credentials its last read used
_CREDENTIALS_LOCK = threading.Lock()


def _credentials_changed(provider: str, credentials: dict[str, str]) -> bool:
    """True when ``provider``'s credentials differ from those of its previous read in this process."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps(credentials, sort_keys=True).encode()).hexdigest()
    with _CREDENTIALS_LOCK:
        before = _CREDENTIALS_SEEN.get(provider)
        _CREDENTIALS_SEEN[provider] = digest
    return before is not None and before != digest


def read_with_access(spec: AccessSpec, uri: str, read, *, cap: Any = _NO_CAP):
    """``read(signed_uri)`` under ``spec``'s credentials, cap and retries (``cap``: the provider's
    semaphore when resolved by the calling Dask task for a read-ahead thread)."""
    import rasterio
    from rasterio.errors import RasterioError

    from eolab import settings

    conf = settings.access()
    retries = spec.retries if conf.read_retries is None else conf.read_retries
    cap = _cap(spec) if cap is _NO_CAP else cap
    ensure_service_access()
    if spec.kind == "bearer":
        _refuse_plain_http(spec, uri, "a bearer token")
    renew = throttled = recalled = reminted = False
    attempt, pause = -1, 0.0
    while attempt < retries:
        attempt += 1
        if pause:  # a backoff: not holding a slot of the provider's cap meanwhile
            time.sleep(pause)
            pause = 0.0
        signed = sign(spec, uri, renew=renew)
        if cap is not None and not cap.acquire(timeout=CAP_WAIT):
            _count(spec.provider, "failures")
            raise AccessError(f"reading asset {redact(uri)} of provider {spec.provider!r}: no free connection of "
                              f"its {spec.max_connections} in {CAP_WAIT:g} s (reads holding them do not finish)",
                              hint=f"the provider may be stalling; 'profile: max_connections:' of member "
                                   f"{spec.provider!r} sets the cap")
        started = time.monotonic()
        try:
            # One read, one connection: GDAL would otherwise fetch a read's byte ranges in parallel.
            serial = {"GDAL_HTTP_MULTIRANGE": "SERIAL"} if cap is not None else {}
            # Retries are ours (counted, reported, token renewed), not GDAL's silent ones.
            options = gdal_options(spec)
            keys = {k: options.pop(k) for k in _AWS_KEYS if k in options}
            if (keys or "GDAL_HTTP_HEADERS" in options) and _credentials_changed(spec.provider, {**keys, **options}):
                _clear_gdal_http_cache()  # blocks read with the old credentials are not these ones' to serve
            # A store that stops sending (a stalled connection) is given up on, not waited for forever
            # while it holds a slot of the cap.
            stall = {"GDAL_HTTP_CONNECTTIMEOUT": "30", "GDAL_HTTP_LOW_SPEED_LIMIT": "1",
                     "GDAL_HTTP_LOW_SPEED_TIME": f"{conf.read_stall_timeout:g}"}
            with rasterio.Env(session=_Keys(keys) if keys else None, **options, **serial, **stall,
                              GDAL_HTTP_MAX_RETRY="0"):
                result = read(signed)
            _count(spec.provider, "reads")
            return result
        except RasterioError as exc:
            message = _chain_text(exc)
            probed = after = None
            http = signed.startswith(("http://", "https://"))
            # GDAL's message for a read curl gave up on is often only "Cannot read TIFF header"
            stalled = _STALLED.search(message) is not None or (
                "HTTP response code" not in message and time.monotonic() - started >= conf.read_stall_timeout)
            if "HTTP response code" not in message and http:
                # GDAL may take a refusal's body for the file ("not recognized as ... format"): ask.
                probed, after = _probe(signed, _bearer_header(options), min(10.0, conf.read_stall_timeout))
                if probed and probed != 200 and probed != 206:
                    message = f"HTTP response code: {probed} <- {message}"
                    stalled = False  # a refusal, however long the read took
            # GDAL often passes on only the store's own words (S3's <Message>), not the status; the
            # asset's path (dates, tile ids) must not look like one ("...20240403...").
            words = _words(message, signed, uri)
            expired = spec.kind == "sas" and re.search(r"(?<![\w.])403(?![\w.])", words) is not None and not renew
            # A refusal read as file content may have cleared by the time it was probed: again,
            # once at first, and while the provider has been throttling (this read or any other of
            # it in the last 30 s: in a burst of 429s the probe may already get a 200).
            if _retryable(words):
                _THROTTLED[spec.provider] = now = time.monotonic()
                asked, until = _RETRY_AFTER.get(spec.provider, (float("-inf"), 0.0))
                if after is not None:
                    _RETRY_AFTER[spec.provider] = (now, now + min(after, conf.retry_after_max))
                elif http and probed is None and now - asked >= 30 and attempt < retries:
                    # Its Retry-After (GDAL keeps the headers to itself), asked once per provider in
                    # 30 s: a probe per refused read would add to the load the provider is shedding.
                    _, after = _probe(signed, _bearer_header(options))
                    _RETRY_AFTER[spec.provider] = (now, now + min(after or 0.0, conf.retry_after_max))
                if after is None and until > now:  # the provider's pause, learnt from another read
                    after = until - now
            recent = time.monotonic() - _THROTTLED.get(spec.provider, float("-inf")) < 30
            # (a read broken off while another read of the file had GDAL forget it reads the same)
            garbled = (attempt == 0 or throttled or recent) and any(
                t in words for t in ("not recognized as", "ireadblock failed", "read error"))
            throttled = throttled or _retryable(words)
            refused = spec.kind in ("s3", "bearer") and (
                re.search(r"(?<![\w.])40[13](?![\w.])", words) is not None or any(t in words for t in _REFUSALS))
            key_refused = refused and any(t in words for t in _KEY_REFUSALS)
            if refused and not recalled:
                # GDAL keeps a path's answers across opens whatever credentials asked, and a read with
                # other (e.g. earlier wrong) keys may just have stored a refusal: forget, ask once more.
                recalled = True
                attempt -= 1
                _count(spec.provider, "retries")
                _clear_gdal_http_cache()
                continue
            if (key_refused and not reminted and spec.kind == "s3" and spec.s3_keys_url
                    and not conf.s3_credentials.get(spec.provider)):
                # Minted keys refused twice (expired, revoked): others from the keys file, else new ones.
                reminted = True
                attempt -= 1
                _count(spec.provider, "retries")
                s3_keys(spec, refused={"access_key_id": keys.get("AWS_ACCESS_KEY_ID", "")})
                _clear_gdal_http_cache()
                continue
            if attempt < retries and (_retryable(words) or expired or garbled):
                _count(spec.provider, "retries")
                renew = expired
                # Exponential backoff with full jitter, capped: dozens of reads refused in one burst
                # must not come back together, nor wait for minutes after a long burst. A Retry-After
                # the provider gave is waited for (up to retry_after_max; a hostile one cannot hold
                # the read for ever).
                wait = 0 if expired else random.uniform(0, min(conf.retry_backoff_max,
                                                               conf.retry_backoff * 2 ** attempt))
                if after is not None and not expired:
                    wait = max(wait, min(after, conf.retry_after_max))
                # GDAL answers a path it was refused from its cache: the retry must ask the store.
                _forget(signed)
                log.warning("provider %s: read of %s refused (%s); retry %d/%d in %.1f s%s", spec.provider,
                            redact(uri), redact(message.splitlines()[0])[:120], attempt + 1, retries, wait,
                            f" (Retry-After: {after:g} s)" if after is not None else "")
                pause = wait
                continue
            _count(spec.provider, "failures")
            hint = {"sas": f"check 'profile: token_url:' of member {spec.provider!r} (and EOLAB_SAS_SUBSCRIPTION_KEY)",
                    "s3": "check EOLAB_S3_CREDENTIALS (or EOLAB_OIDC_ACCESS_TOKEN where keys are minted) and "
                          "'profile: s3_endpoint:' of member " + repr(spec.provider),
                    "bearer": "check EOLAB_BEARER_TOKENS (tokens expire)"}.get(
                        spec.kind, f"if the provider needs credentials, set 'profile: access:' of member {spec.provider!r}")
            if stalled:
                hint = (f"the store may have stopped sending (for {conf.read_stall_timeout:g} s or more); "
                        "EOLAB_READ_STALL_TIMEOUT sets how long a read may stall")
            if _retryable(words) or refused or expired or garbled:
                _forget(signed)  # the next read of the file asks the store, not GDAL's memory of this
            # raised after the except: GDAL's error, with the signed URL, is not kept as its context
            failure = AccessError(f"reading asset {redact(uri)} of provider {spec.provider!r} failed after "
                                  f"{attempt + 1} attempt(s): {redact(message.splitlines()[0])[:200]}", hint=hint)
        finally:
            if cap is not None:
                cap.release()
        raise failure
    raise AssertionError("unreachable")


class AccessReader:
    """odc-stac's rasterio reader, reading through :func:`read_with_access`."""

    def __init__(self, src, ctx, spec: AccessSpec, cap: Any = _NO_CAP) -> None:
        self._src, self._ctx, self._spec, self._cap = src, ctx, spec, cap

    def read(self, cfg, dst_geobox, *, dst=None, selection=None):
        from odc.loader._rio import rio_read

        src = self._src
        return read_with_access(self._spec, src.uri, lambda uri: rio_read(
            src.patch(uri=uri), cfg, dst_geobox, dst=dst, selection=selection), cap=self._cap)


# --- read-ahead: more reads in flight than Dask threads -------------------------------------------
# A far-away store answers each request after tens of ms; with one read per Dask thread, the
# threads wait instead of decoding. Each read task therefore starts its own read and the next few
# of the graph (in build order) on a per-process pool of I/O threads and returns at once; the
# pixels are waited for where odc-loader fuses them. At most ``read_threads * 2`` results are held
# (started or done, not yet fused); beyond that a task reads in its own thread, as before.

class _ReadAhead:
    def __init__(self, threads: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="eolab-read")
        self.limit = 2 * threads
        self.held = 0
        self.started: dict[Any, tuple[Any, float]] = {}  # key -> (future, monotonic start)
        self.lock = threading.Lock()

    def _expire(self) -> None:
        # Started for a task another worker ran: forget it after a while.
        now = time.monotonic()
        for key in [k for k, (_, t) in self.started.items() if now - t > 60]:
            del self.started[key]
            self.held -= 1

    def start(self, key: Any, fn, *, register: bool) -> Any:
        with self.lock:
            if key is not None and key in self.started:
                return None
            self._expire()
            if self.held >= self.limit:
                return None
            self.held += 1
            future = self.pool.submit(fn)
            if register:
                self.started[key] = (future, time.monotonic())
            return future

    def take(self, key: Any) -> Any:
        """The read started ahead for ``key``, or None. One that failed is dropped, not handed on:
        it was started for an earlier computation (e.g. with credentials since changed), and the
        caller's own read tells its failure with the settings of now."""
        with self.lock:
            entry = self.started.pop(key, None)
        if entry is None:
            return None
        future = entry[0]
        if future.done() and future.exception() is not None:
            self.release()
            return None
        return future

    def release(self) -> None:
        with self.lock:
            self.held -= 1


_ahead: dict[int, _ReadAhead] = {}


def _read_ahead() -> _ReadAhead | None:
    from eolab import settings

    threads = settings.access().read_threads
    if not threads:
        return None
    with _lock:
        if threads not in _ahead:
            _ahead[threads] = _ReadAhead(threads)
        return _ahead[threads]


class _Pending:
    """A read under way: unpacks as ``(roi, pixels)`` (what odc-loader's fuser takes) once done,
    and pickles as its result (a fuser on another worker)."""

    __slots__ = ("_future", "_pool")

    def __init__(self, future, pool: _ReadAhead) -> None:
        self._future, self._pool = future, pool

    def result(self):
        try:
            return self._future.result()
        finally:
            self._free()

    def _free(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.release()

    def __iter__(self):
        return iter(self.result())

    def __reduce__(self):
        return tuple, (self.result(),)

    def __del__(self) -> None:
        self._free()


class _Plan:
    """The reads of one load in build order; one graph key, sent once to each worker. Dask runs
    them roughly in or against that order: reads are started ahead in the direction this process
    is going (``last``), skipping those it already ran."""

    def __init__(self) -> None:
        self.reads: list[tuple] = []  # (key, src, ctx, cfg, dst_geobox, selection)
        self.key = f"eolab-read-plan-{secrets.token_hex(8)}"
        self._local()

    def _local(self) -> None:
        self.ran: set[int] = set()
        self.last = -1
        self.lock = threading.Lock()

    def __getstate__(self):
        return {"reads": self.reads, "key": self.key}

    def __setstate__(self, state) -> None:
        self.reads, self.key = state["reads"], state["key"]
        self._local()

    def next_reads(self, index: int, depth: int) -> list[tuple]:
        with self.lock:
            step = 1 if index >= self.last else -1
            self.last = index
            self.ran.add(index)
            ahead = range(index + step, index + step * (depth + 1), step)
            return [self.reads[j] for j in ahead if 0 <= j < len(self.reads) and j not in self.ran]


def _one_read(driver, env, src, ctx, cfg, dst_geobox, selection, cap):
    with driver.restore_env(env, ctx) as local_ctx:
        return driver.open(src, local_ctx, cap=cap).read(cfg, dst_geobox, selection=selection)


def _dask_read(key, index, plan, driver, env, src, ctx, cfg, dst_geobox, selection):
    ahead = _read_ahead()
    if ahead is None:
        return _one_read(driver, env, src, ctx, cfg, dst_geobox, selection, _NO_CAP)
    from eolab import settings

    def job(*args):
        # The cap is resolved here, in the Dask task (on a worker: the cluster's semaphore).
        cap = driver.cap_for(args[0])
        return lambda: _one_read(driver, env, *args, cap)

    later = plan.next_reads(index, settings.access().read_ahead)
    # Registered under the plan's own key too: another load of the same items has the same layer
    # names, and must not take reads started for this one.
    own = ahead.take((plan.key, key)) or ahead.start(None, job(src, ctx, cfg, dst_geobox, selection), register=False)
    for later_key, *args in later:
        ahead.start((plan.key, later_key), job(*args), register=True)
    if own is None:  # as many reads held as allowed: read here
        return _one_read(driver, env, src, ctx, cfg, dst_geobox, selection, _NO_CAP)
    return _Pending(own, ahead)


class _DaskReader:
    """odc-loader's per-read Dask tasks (its "concurrency" mode), with read-ahead."""

    def __init__(self, driver: AccessDriver, plan: _Plan, env=None, src=None, cfg=None, ctx=None,
                 layer_name: str = "") -> None:
        self._driver, self._plan, self._env = driver, plan, env
        self._src, self._cfg, self._ctx, self._layer = src, cfg, ctx, layer_name

    def open(self, src, cfg, ctx, layer_name: str, idx: int) -> _DaskReader:
        env = self._env if self._env is not None else self._driver.capture_env()
        return _DaskReader(self._driver, self._plan, env, src, cfg, ctx, layer_name)

    def read(self, dst_geobox, *, selection=None, idx: tuple[int, ...]):
        from types import SimpleNamespace

        from dask._task_spec import DataNode, Task, TaskRef

        # A plain Task, not dask.delayed: delayed walks every argument (item metadata, geoboxes)
        # looking for collections, which took longer than the reads on a few hundred items.
        plan = self._plan
        key = (self._layer, *idx)
        index = len(plan.reads)
        plan.reads.append((key, self._src, self._ctx, self._cfg, dst_geobox, selection))
        task = Task(key, _dask_read, key, index, TaskRef(plan.key), self._driver, self._env, self._src,
                    self._ctx, self._cfg, dst_geobox, selection)
        return SimpleNamespace(key=key, dask={key: task, plan.key: DataNode(plan.key, plan)})


class AccessDriver:
    """An odc-stac reader driver: rasterio's, with each read signed/authorised where it runs, and
    reads started ahead of their tasks (see ``_ReadAhead``).

    Holds only :class:`AccessSpec` per asset origin (``scheme://host``), and per asset where
    several providers share an origin (one asset server): it is pickled into the graph.
    """

    def __init__(self, specs: dict[str, AccessSpec], by_href: dict[str, AccessSpec] | None = None) -> None:
        from odc.loader._rio import RioDriver

        self.specs = specs
        self.by_href = by_href or {}
        self._rio = RioDriver()
        self._dask = None

    def __getstate__(self):
        return {"specs": self.specs, "by_href": self.by_href}

    def __setstate__(self, state) -> None:
        self.__init__(state["specs"], state["by_href"])

    def new_load(self, geobox, *, chunks=None):
        return self._rio.new_load(geobox, chunks=chunks)

    def finalise_load(self, load_state):
        return self._rio.finalise_load(load_state)

    def capture_env(self) -> dict[str, Any]:
        # The GDAL environment odc-loader carries in every task (so into worker logs and onto other
        # machines): without credentials, which eolab's settings give each read where it happens.
        env = self._rio.capture_env()
        secret = [k for k in env if _CREDENTIAL_OPTION.search(k)]
        if secret:
            log.warning("GDAL credential options set around the load (%s) are not sent to the workers; "
                        "give credentials in eolab's settings (EOLAB_BEARER_TOKENS, EOLAB_S3_CREDENTIALS)",
                        ", ".join(sorted(secret)))
        return {k: v for k, v in env.items() if k not in secret}

    def restore_env(self, env, load_state):
        return self._rio.restore_env(env, load_state)

    def _spec(self, uri: str) -> AccessSpec | None:
        parts = urlsplit(uri)
        return self.by_href.get(uri) or self.specs.get(f"{parts.scheme}://{parts.netloc}")

    def cap_for(self, src) -> Any:
        spec = self._spec(src.uri)
        return _cap(spec) if spec is not None else None

    def open(self, src, ctx, cap: Any = _NO_CAP):
        from odc.loader._rio import RioReader

        from eolab.usage import _bytes

        spec = self._spec(src.uri)
        if spec is None:
            return RioReader(src, ctx)
        _bytes.track(src.uri, spec.provider)  # bytes read here count as the provider's (eolab.usage)
        return AccessReader(src, ctx, spec, cap)

    @property
    def dask_reader(self):
        if self._dask is None:
            self._dask = _DaskReader(self, _Plan())
        return self._dask

    md_parser = None
    aux_reader = None


_REMOTE = ("http", "https", "s3", "gs", "az", "abfs")
_CREDENTIAL_OPTION = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|USERPWD|HEADERS|BEARER|ACCESS_KEY|_SAS|SAS_|_KEY_ID|"
                                r"CREDENTIAL|AUTHORIZATION|PRIVATE_KEY|COOKIE|SWIFT_KEY|CONNECTION_STRING", re.I)


def reader_driver(views: list[dict], providers: list[str | None], profiles: list) -> Any:
    """An odc-stac reader driver for these items (None when no asset is remote).

    The driver notes each asset's provider, so the bytes read count per provider (:mod:`eolab.usage`)."""
    from eolab.usage import start_reporter

    specs: dict[str, AccessSpec] = {}
    hrefs: dict[str, tuple[str, AccessSpec]] = {}
    shared: set[str] = set()
    for view, provider, profile in zip(views, providers, profiles):
        spec = spec_for(provider, profile)
        for asset in (view.get("assets") or {}).values():
            parts = urlsplit(asset.get("href", ""))
            if parts.scheme in _REMOTE:
                origin = f"{parts.scheme}://{parts.netloc}"
                if specs.setdefault(origin, spec).provider != spec.provider:
                    shared.add(origin)
                hrefs[asset["href"]] = (origin, spec)
    if not specs:
        return None
    for spec in {s.provider: s for s in specs.values()}.values():
        if spec.kind == "s3" and spec.s3_keys_url:
            # Minted here, in the process that holds the user's OIDC token, before any worker
            # reads: workers (LocalCluster, Gateway, Slurm) find them in the user's keys file.
            s3_keys(spec)
    start_reporter()  # on the hub: bytes read are reported every minute
    return AccessDriver(specs, {href: spec for href, (origin, spec) in hrefs.items() if origin in shared})
