"""An S3 store that behaves like CDSE's ``eodata``: for the CDSE-like member's assets.

A real S3-protocol server (moto's S3, which checks request signatures against the IAM keys it
knows) with, in front of it, what CDSE adds:

- **keys minted from an OIDC login** (after CDSE's S3 keys manager): ``POST /_s3keys/credentials``
  with ``Authorization: Bearer <access token>`` answers ``{"access_id", "secret",
  "expiration_date"}``. The token is checked at the identity provider's userinfo endpoint
  (``EOLAB_LOOKALIKE_OIDC_ISSUER``); each user gets at most two live keys (expired ones are
  removed when new ones are minted), valid ``EOLAB_LOOKALIKE_S3_KEY_LIFETIME`` seconds, read-only.
- **a connection cap**: a request arriving while ``EOLAB_LOOKALIKE_MAX_CONNECTIONS`` are in flight
  is answered 429 (``SlowDown``) with ``Retry-After``.
- expired keys are refused with 403 ``InvalidAccessKeyId``; unsigned requests with 403.

``GET /_health`` answers 200 once the bucket holds the files listed in ``EOLAB_LOOKALIKE_S3_FILES``;
``GET /_stats`` reports what the store saw. Run: ``python -m eolab.stack._lookalike_s3 --host H --port P``.
The werkzeug server and moto keep everything in memory: a look-alike, not a production store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path

# moto reads this when imported: every S3 request must be signed with a key its IAM knows.
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"

_XML = "application/xml"
_KEYS_PATH = "/_s3keys/credentials"
_READ_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"], "Resource": "*"}]})
_ADMIN_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})


def _s3_error(code: str, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
            f"</Error>").encode()


class Store:
    """The WSGI application: keys service, cap and key expiry in front of moto's S3."""

    def __init__(self, *, issuer: str | None, max_connections: int, key_lifetime: float, bucket: str) -> None:
        import moto.settings
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.iam.models import iam_backends
        from moto.moto_server.werkzeug_app import create_backend_app

        moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        self.s3 = create_backend_app("s3")
        # moto's IAM backend directly (not over HTTP): nobody but this process may create users or keys.
        self.iam = iam_backends[DEFAULT_ACCOUNT_ID]["global"]
        self.issuer, self.cap, self.key_lifetime, self.bucket = issuer, max_connections, key_lifetime, bucket
        self.lock = threading.Lock()
        self.ready = False
        self.expiry: dict[str, float] = {}  # minted access key id -> expiry (epoch s)
        self.owner: dict[str, str] = {}  # minted access key id -> IAM user
        self._userinfo_url: str | None = None
        self.stats = {"in_flight": 0, "max_in_flight": 0, "served": 0, "refused": 0, "throttled": 0,
                      "expired_refused": 0, "keys_minted": 0, "keys_refused": 0}

    # --- keys -----------------------------------------------------------------------------------

    def admin_key(self) -> dict[str, str]:
        self.iam.create_user("us-east-1", "eolab-store-admin")
        self.iam.put_user_policy("eolab-store-admin", "all", _ADMIN_POLICY)
        key = self.iam.create_access_key("eolab-store-admin")
        return {"aws_access_key_id": key.access_key_id, "aws_secret_access_key": key.secret_access_key}

    def _subject(self, token: str) -> str | None:
        import httpx

        if self._userinfo_url is None:
            conf = httpx.get(f"{self.issuer.rstrip('/')}/.well-known/openid-configuration", timeout=10).json()
            self._userinfo_url = conf["userinfo_endpoint"]
        answer = httpx.get(self._userinfo_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        if answer.status_code != 200:
            return None
        return answer.json().get("sub")

    def mint(self, environ) -> tuple[int, dict]:
        if not self.issuer:
            return 503, {"detail": "this store has no identity provider configured (EOLAB_LOOKALIKE_OIDC_ISSUER)"}
        auth = environ.get("HTTP_AUTHORIZATION", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        try:
            subject = self._subject(token) if token else None
        except Exception as exc:  # the identity provider is down or answers nonsense
            return 503, {"detail": f"the identity provider {self.issuer} cannot check the token now: "
                                   f"{type(exc).__name__}"}
        if not subject:
            self.stats["keys_refused"] += 1
            return 401, {"detail": "a valid OIDC access token of this store's identity provider is needed "
                                   "(Authorization: Bearer ...); it is missing, expired or not from that provider"}
        user = "u-" + hashlib.sha256(subject.encode()).hexdigest()[:16]
        now = time.time()
        with self.lock:
            if user not in self.iam.users:
                self.iam.create_user("us-east-1", user)
                self.iam.put_user_policy(user, "read-eodata", _READ_POLICY)
            for key in list(self.iam.list_access_keys(user)):
                if self.expiry.get(key.access_key_id, 0) <= now:
                    self.iam.delete_access_key(key.access_key_id, user)
            if len(self.iam.list_access_keys(user)) >= 2:
                return 403, {"detail": "this user already holds 2 live S3 keys (the limit); "
                                       "use one of them or wait until one expires"}
            key = self.iam.create_access_key(user)
            expiry = now + self.key_lifetime
            self.expiry[key.access_key_id] = expiry
            self.owner[key.access_key_id] = user
            self.stats["keys_minted"] += 1
        stamp = dt.datetime.fromtimestamp(expiry, dt.timezone.utc).isoformat().replace("+00:00", "Z")
        return 200, {"access_id": key.access_key_id, "secret": key.secret_access_key, "expiration_date": stamp}

    # --- requests -------------------------------------------------------------------------------

    def _expired(self, environ) -> bool:
        """A minted key past its expiry: refused, and removed from the store's IAM."""
        auth = environ.get("HTTP_AUTHORIZATION", "")
        key_id = auth.split("Credential=", 1)[1].split("/", 1)[0] if "Credential=" in auth else ""
        if key_id not in self.expiry or self.expiry[key_id] > time.time():
            return False
        with self.lock:
            user = self.owner.get(key_id)
            if user and any(k.access_key_id == key_id for k in self.iam.list_access_keys(user)):
                self.iam.delete_access_key(key_id, user)
        return True

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/_health":
            status = "200 OK" if self.ready else "503 Service Unavailable"
            return self._json(start_response, status, {"status": "ok" if self.ready else "loading"})
        if path == "/_stats":
            return self._json(start_response, "200 OK", self.stats)
        if path == _KEYS_PATH:
            if environ.get("REQUEST_METHOD") != "POST":
                return self._json(start_response, "405 Method Not Allowed", {"detail": "POST to mint keys"})
            code, body = self.mint(environ)
            return self._json(start_response, f"{code} {'OK' if code == 200 else 'Refused'}", body)
        if not self.ready and environ.get("HTTP_X_EOLAB_SETUP") != self._setup_mark:
            return self._raw(start_response, "503 Service Unavailable", _s3_error("ServiceUnavailable", "loading"),
                             [("Retry-After", "1")])
        if not environ.get("HTTP_AUTHORIZATION", "").startswith("AWS4-HMAC-SHA256 "):
            # Only header-signed (SigV4) requests, as the store's keys are used: no anonymous,
            # presigned or SigV2 requests (moto answers some of those with a 500).
            self.stats["refused"] += 1
            return self._raw(start_response, "403 Forbidden",
                             _s3_error("AccessDenied", "requests must be signed (AWS Signature Version 4 header)"))
        if self._expired(environ):
            self.stats["expired_refused"] += 1
            return self._raw(start_response, "403 Forbidden",
                             _s3_error("InvalidAccessKeyId", "The access key has expired; mint a new one"))
        with self.lock:
            if self.cap and self.stats["in_flight"] >= self.cap:
                self.stats["throttled"] += 1
                throttled = True
            else:
                throttled = False
                self.stats["in_flight"] += 1
                self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.stats["in_flight"])
        if throttled:
            return self._raw(start_response, "429 Too Many Requests",
                             _s3_error("SlowDown", f"more than {self.cap} connections"), [("Retry-After", "0")])
        done = threading.Event()

        def finish() -> None:
            with self.lock:
                if not done.is_set():
                    done.set()
                    self.stats["in_flight"] -= 1

        def counted_start(status, headers, exc_info=None):
            if status.startswith("403"):
                self.stats["refused"] += 1
            elif status.startswith("2"):
                self.stats["served"] += 1
            return start_response(status, headers, exc_info)

        try:
            body = self.s3(environ, counted_start)
        except BaseException:
            finish()
            raise
        return _counted(body, finish)

    _setup_mark = os.urandom(16).hex()

    @staticmethod
    def _json(start_response, status: str, body: dict):
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                                ("Cache-Control", "no-store")])
        return [data]

    @staticmethod
    def _raw(start_response, status: str, data: bytes, extra=()):
        start_response(status, [("Content-Type", _XML), ("Content-Length", str(len(data))), *extra])
        return [data]


def _counted(body, finish):
    """The response body, with the request counted closed before its last chunk goes out (a client
    that got its last byte may send its next request at once)."""
    end = object()
    try:
        it = iter(body)
        chunk = next(it, end)
        while chunk is not end:
            following = next(it, end)
            if following is end:
                finish()
            yield chunk
            chunk = following
    finally:
        finish()
        close = getattr(body, "close", None)
        if close is not None:
            close()


def fill(store: Store, url: str, root: Path, files: list[str]) -> None:
    """Create the bucket and upload ``files`` (relative to ``root``) with the store's admin key."""
    import boto3
    from botocore.config import Config

    keys = store.admin_key()
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                      config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 10}), **keys)

    def mark(request, **_):
        request.headers["X-Eolab-Setup"] = store._setup_mark  # the only requests let in before ready

    s3.meta.events.register("before-sign.s3.*", mark)
    s3.create_bucket(Bucket=store.bucket)
    for rel in files:
        s3.upload_file(str(root / rel), store.bucket, rel)


def main(argv: list[str] | None = None) -> None:
    from werkzeug.serving import make_server

    from eolab import settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", default=None, help="the identity provider (else EOLAB_LOOKALIKE_OIDC_ISSUER)")
    parser.add_argument("--files-digest", default=None, help="(unused: tells the stack which files it holds)")
    args = parser.parse_args(argv)
    conf = settings.services()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    store = Store(issuer=args.issuer or conf.lookalike_oidc_issuer, max_connections=conf.lookalike_max_connections,
                  key_lifetime=conf.lookalike_s3_key_lifetime, bucket=conf.lookalike_s3_bucket)
    root = Path(conf.assets_dir or ".").resolve()
    files = []
    if conf.lookalike_s3_files:
        files = [line for line in Path(conf.lookalike_s3_files).read_text().splitlines() if line.strip()]
    server = make_server(args.host, args.port, store, threaded=True)
    url = f"http://{args.host}:{server.server_port}"

    def setup() -> None:
        try:
            fill(store, url, root, files)
            store.ready = True
            print(json.dumps({"event": "ready", "objects": len(files)}), flush=True)
        except Exception as exc:  # the service never becomes ready; its log says why
            print(json.dumps({"event": "setup_failed", "error": repr(exc)}), flush=True)

    threading.Thread(target=setup, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
