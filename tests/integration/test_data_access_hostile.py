"""The credential layer against a scripted asset server on 127.0.0.1 that misbehaves as real stores
and token endpoints do: throttling with Retry-After (hostile values too), stalling, answering HTML,
tokens that are not tokens. Each attack is paired with the read that must still work.

Unlike ``test_data_access.py`` these run with GDAL's HTTP cache on (as users do): a refusal it
remembered was served to every retry before."""

from __future__ import annotations

import logging
import pickle
import re
import threading
import time

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from eolab.data import access
from eolab.errors import EolabError

SIZE = 256


@pytest.fixture(scope="module")
def cog(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile-store") / "B04.tif"
    dn = np.random.default_rng(23).integers(1000, 9000, (SIZE, SIZE), dtype=np.uint16)
    with rasterio.open(path, "w", driver="COG", width=SIZE, height=SIZE, count=1, dtype="uint16",
                       crs="EPSG:32634", transform=from_origin(500000, 5200000, 10, 10), nodata=0,
                       blocksize=256, compress="DEFLATE") as dst:
        dst.write(dn, 1)
    return path


# The store runs in a process of its own: rasterio holds the GIL through parts of a remote open,
# so a server thread in the reading process could not answer it.
_STORE = r"""
import http.server, json, re, sys, threading, time, urllib.parse
data = open(sys.argv[1], "rb").read()
log, lock = [], threading.Lock()

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, code, body=b"", headers=None, ctype="application/octet-stream"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/_log":
            with lock:
                return self.answer(200, json.dumps(log).encode(), ctype="application/json")
        with lock:
            n = sum(1 for _, _, p in log if p == path)
            log.append((time.monotonic(), self.command, path))
        parts = path.strip("/").split("/")
        ranged = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if parts[0] == "throttle" and n < int(parts[1]):  # /throttle/TIMES/RETRY-AFTER/...
            return self.answer(429, b"slow down", {"Retry-After": urllib.parse.unquote(parts[2])})
        if parts[0] == "html":  # a sign-in page where the file should be
            return self.answer(200, b"<html>sign in</html>", ctype="text/html")
        if parts[0] == "stall" and self.command == "GET" and ranged and ranged[1] == "0":
            self.send_response(206)
            self.send_header("Content-Range", f"bytes 0-16383/{len(data)}")
            self.send_header("Content-Length", "16384")
            self.end_headers()
            self.wfile.write(b"II*\x00")
            self.wfile.flush()
            time.sleep(8)  # and nothing more
            return
        if parts[0] == "token":  # /token/KIND/CONTAINER
            far = "2099-01-01T00:00:00Z"
            bodies = {"good": {"token": "sv=1&sig=SECRETSIG42", "msft:expiry": far},
                      "tomorrow": {"token": "sv=1&sig=X", "msft:expiry": "tomorrow"},
                      "expired": {"token": "sv=1&sig=X", "msft:expiry": "2001-01-01T00:00:00Z"},
                      "notstr": {"token": 5, "msft:expiry": far}, "list": ["a token"],
                      "huge": {"token": "x" * 100000, "msft:expiry": far}}
            if parts[1] == "html":
                return self.answer(200, b"<html>maintenance</html>", ctype="text/html")
            if parts[1] == "drip":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(20):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.3)
                return
            return self.answer(200, json.dumps(bodies[parts[1]]).encode(), ctype="application/json")
        if ranged:
            a, b = int(ranged[1]), min(int(ranged[2] or len(data) - 1), len(data) - 1)
            return self.answer(206, data[a:b + 1], {"Content-Range": f"bytes {a}-{b}/{len(data)}"})
        return self.answer(200, data)

    do_HEAD = do_GET

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class Store:
    """The scripted store (see ``_STORE``); ``requests(pattern)`` are when it was asked for those paths."""

    def __init__(self, cog_path):
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, "-c", _STORE, str(cog_path)], stdout=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"

    def requests(self, pattern: str) -> list[float]:
        import httpx

        return [t for t, _, p in httpx.get(f"{self.url}/_log", timeout=10).json() if re.search(pattern, p)]

    def close(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def store(cog):
    s = Store(cog)
    access.reset()
    yield s
    s.close()


def _read(spec, href, **kwargs):
    def one(uri):
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(uri) as src:  # as load_cube
            return src.read(1)
    return access.read_with_access(spec, href, one, **kwargs)


def test_a_throttled_first_request_is_asked_again_after_its_retry_after(store, monkeypatch):
    """GDAL kept the 429 of a file's first request and served it to every retry (the store saw one
    request while the counters said five retries); Retry-After was not read."""
    monkeypatch.setenv("EOLAB_RETRY_BACKOFF", "0")  # any wait comes from Retry-After
    spec = access.AccessSpec("throttling", retries=3)
    values = _read(spec, f"{store.url}/throttle/2/1/B04.tif")  # the first request and the probe: 429
    assert values.shape == (SIZE, SIZE) and values.min() >= 1000
    asked = store.requests(r"^/throttle/.*B04\.tif$")
    assert len(asked) >= 3  # the 429, the probe that read its Retry-After, then the read itself
    assert asked[2] - asked[1] >= 0.95  # the retry came after the second the store asked for
    assert access.stats()["throttling:retries"] == 1 and access.stats().get("throttling:failures", 0) == 0


@pytest.mark.parametrize("retry_after", ["Wed, 01 Jan 2099 00:00:00 GMT", "86400", "-1", "garbage"])
def test_a_hostile_retry_after_cannot_hold_a_read(store, monkeypatch, retry_after):
    from urllib.parse import quote

    monkeypatch.setenv("EOLAB_RETRY_BACKOFF", "0")
    monkeypatch.setenv("EOLAB_RETRY_AFTER_MAX", "0.2")
    done = []
    href = f"{store.url}/throttle/3/{quote(retry_after, safe='')}/B04.tif"
    reader = threading.Thread(target=lambda: done.append(_read(access.AccessSpec("hostile"), href)), daemon=True)
    reader.start()
    reader.join(60)  # a day's (or 2099's) wait would still be under way
    assert done and done[0].shape == (SIZE, SIZE)


def test_a_read_backing_off_leaves_its_connection_to_others(store, monkeypatch):
    """With max_connections=1 a read waiting out a 429 held the only slot while it slept."""
    monkeypatch.setenv("EOLAB_RETRY_BACKOFF", "0")
    spec = access.AccessSpec("one-connection", max_connections=1)
    waiting = threading.Thread(target=_read, args=(spec, f"{store.url}/throttle/2/2/B04.tif"), daemon=True)
    waiting.start()
    deadline = time.monotonic() + 30
    while len(store.requests(r"^/throttle/.*B04\.tif$")) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # until it is refused and told to come back in 2 s
    other = _read(spec, f"{store.url}/fast/B04.tif")  # while the first one backs off
    waiting.join(30)
    assert other.shape == (SIZE, SIZE)
    slow, fast = store.requests(r"^/throttle/.*B04\.tif$"), store.requests(r"^/fast/")
    assert len(slow) >= 3 and fast[-1] < slow[2]  # the other read was done before the first one's retry


def test_a_stalled_store_is_given_up_on_and_frees_its_connection(store, monkeypatch):
    monkeypatch.setenv("EOLAB_READ_STALL_TIMEOUT", "1")
    monkeypatch.setenv("EOLAB_READ_RETRIES", "0")
    spec = access.AccessSpec("staller", max_connections=1)
    with pytest.raises(EolabError) as info:
        _read(spec, f"{store.url}/stall/B04.tif")
    assert "staller" in str(info.value) and "EOLAB_READ_STALL_TIMEOUT" in (info.value.hint or "")
    assert _read(spec, f"{store.url}/healthy/B04.tif").shape == (SIZE, SIZE)  # its slot was given back


def test_a_path_that_looks_like_a_status_is_not_throttling(store):
    """A date in the path ("20240429") was taken for a 429: five retries and the provider marked
    as throttling."""
    with pytest.raises(EolabError):
        _read(access.AccessSpec("dated"), f"{store.url}/html/S2_20240429/B04.tif")
    assert access.stats().get("dated:retries", 0) <= 1  # the one look again at a garbled answer
    assert "dated" not in access._THROTTLED


@pytest.mark.parametrize("kind, said", [
    ("html", "did not answer a JSON object"),
    ("list", "did not answer a JSON object"),
    ("tomorrow", "not a time"),
    ("expired", "already expired"),
    ("notstr", "without 'token'"),
    ("huge", "more than 64 kB"),
])
def test_token_endpoint_answers_that_are_not_tokens_name_the_provider(store, kind, said):
    spec = access.AccessSpec("pc-like", kind="sas", token_url=f"{store.url}/token/{kind}")
    with pytest.raises(EolabError, match=said) as info:
        access.sign(spec, f"{store.url}/c/B04.tif")
    assert "'pc-like'" in str(info.value)


def test_a_token_endpoint_that_drips_is_given_up_on(store, monkeypatch):
    monkeypatch.setattr(access, "CREDENTIALS_DEADLINE", 1.0)
    spec = access.AccessSpec("dripping", kind="sas", token_url=f"{store.url}/token/drip")
    with pytest.raises(EolabError, match="took more than 1 s"):
        access.sign(spec, f"{store.url}/c/B04.tif")


def test_expiries_in_other_forms_are_read_as_what_they_are():
    in_an_hour = time.time() + 3600
    assert access._parse_expiry(in_an_hour * 1000) == pytest.approx(in_an_hour)  # milliseconds
    naive = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(in_an_hour))  # no zone: UTC
    assert access._parse_expiry(naive) == pytest.approx(in_an_hour, abs=1)
    for bad in (float("nan"), float("inf"), True):
        with pytest.raises(ValueError):
            access._parse_expiry(bad)


def test_a_sas_token_never_reaches_logs_or_errors(store, caplog, capfd):
    """odc-loader logs each failed read with its signed URL; the retry warning and the final error
    quoted it too."""
    spec = access.AccessSpec("pc-like", kind="sas", token_url=f"{store.url}/token/good", retries=1)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("odc.loader._rio").error("Failed to load %s", f"{store.url}/x.tif?sv=1&sig=SECRETSIG42")
    with pytest.raises(EolabError) as info:
        _read(spec, f"{store.url}/html/B04.tif")
    shown = str(info.value) + (info.value.hint or "") + capfd.readouterr().err
    shown += "\n".join(r.getMessage() for r in caplog.records)
    assert "SECRETSIG42" not in shown
    assert "pc-like" in str(info.value) and f"{store.url}/html/B04.tif" in str(info.value)  # still says which
    assert _read(spec, f"{store.url}/ok/B04.tif").shape == (SIZE, SIZE)  # the token itself works


def test_sas_tokens_are_kept_per_storage_account(monkeypatch):
    fetched = []

    def fetch(spec, container):
        fetched.append(container)
        return f"sig=T{len(fetched)}", time.time() + 3600

    monkeypatch.setattr(access, "_fetch_token", fetch)
    access.reset()
    spec = access.AccessSpec("pc", kind="sas", token_url="https://token.invalid")
    a = access.sign(spec, "https://accta.blob.core.windows.net:443/data/x.tif")
    b = access.sign(spec, "https://ACCTB.BLOB.CORE.WINDOWS.NET/data/x.tif")
    assert fetched == ["accta/data", "acctb/data"] and a != b
    assert access.sign(spec, "https://accta.blob.core.windows.net/data/y.tif").endswith("sig=T1")  # cached
    with pytest.raises(EolabError, match="plain http"):  # a token never goes unencrypted off this machine
        access.sign(spec, "http://accta.blob.core.windows.net/data/x.tif")
    with pytest.raises(EolabError, match="plain http"):
        access.read_with_access(access.AccessSpec("bp", kind="bearer"), "http://store.invalid/x.tif", lambda u: u)
    assert access.sign(spec, "http://127.0.0.1:9/data/x.tif").endswith("sig=T3")  # this machine's look-alikes


def test_credentials_set_around_a_load_stay_out_of_the_task_graph():
    driver = access.AccessDriver({})
    with rasterio.Env(GDAL_HTTP_HEADERS="Authorization: Bearer GRAPHSECRET", GDAL_HTTP_USERPWD="me:GRAPHSECRET",
                      GDAL_HTTP_MERGE_CONSECUTIVE_RANGES="YES"):
        env = driver.capture_env()
    assert b"GRAPHSECRET" not in pickle.dumps(env)
    assert env.get("GDAL_HTTP_MERGE_CONSECUTIVE_RANGES") == "YES"  # the rest is kept


def test_printed_settings_and_bad_settings_show_no_secret(monkeypatch):
    from eolab import settings

    monkeypatch.setenv("EOLAB_BEARER_TOKENS", '{"cdse": "PRINTSECRET"}')
    monkeypatch.setenv("EOLAB_SAS_SUBSCRIPTION_KEY", "PRINTSECRET")
    conf = settings.access()
    assert conf.bearer_tokens["cdse"] == "PRINTSECRET" and "PRINTSECRET" not in repr(conf) + str(conf)
    monkeypatch.setenv("EOLAB_S3_CREDENTIALS", '{"cdse": "AKIA:PRINTSECRET"}')  # a string, not an object
    with pytest.raises(EolabError, match="s3_credentials: ") as info:
        settings.access()
    assert "PRINTSECRET" not in str(info.value)


def test_a_file_refused_once_is_asked_for_again_by_the_next_read(store, monkeypatch):
    """A read that gave up on a 429 left it in GDAL's cache: the next read of the file, with the
    store answering again, failed without a request."""
    monkeypatch.setenv("EOLAB_READ_RETRIES", "0")
    href = f"{store.url}/throttle/1/0/B04.tif"
    with pytest.raises(EolabError, match="429"):
        _read(access.AccessSpec("once"), href)
    assert _read(access.AccessSpec("once"), href).shape == (SIZE, SIZE)


def test_only_this_machine_gets_secrets_over_plain_http():
    spec = access.AccessSpec("bp", kind="bearer")
    for href in ("http://localhost.attacker.invalid/x.tif", "http://127.evil.invalid/x.tif", "http://[::10]/x.tif"):
        with pytest.raises(EolabError, match="plain http"):
            access.read_with_access(spec, href, lambda u: u)
    for href in ("http://localhost:9/x.tif", "http://[::1]:9/x.tif", "http://127.0.0.2:9/x.tif"):
        assert access.read_with_access(access.AccessSpec("bp"), href, lambda u: u) == href


@pytest.mark.parametrize("text, secret", [
    ("(https://a.invalid/x.tif?sv=1&sig=S1), retrying", "S1"),
    ("/vsicurl?url=https%3A%2F%2Fa.invalid%2Fx.tif%3Fsv%3D1%26sig%3DS2", "S2"),
    ("token sv=1&sig=S3 refused", "S3"),
    ("Authorization: token S4", "S4"),
    ("X-Amz-Signature=S5&X-Amz-Credential=S6", "S5"),
])
def test_signatures_are_taken_out_of_messages(text, secret):
    assert secret not in access.redact(text)
    assert access.redact("the bearer token expired at 10:00, code 403 (see ?)") == \
        "the bearer token expired at 10:00, code 403 (see ?)"  # prose stays as it was


@pytest.mark.parametrize("message, throttled", [
    ("HTTP response code: 429.", True), ("SlowDown: Please reduce your request rate", True),
    ("ServerBusy", True), ("TooManyRequests", True),
    ("IReadBlock failed at X offset 429", False), ("cannot read 503 bytes", False),
    ("HTTP response code: 404", False),
])
def test_throttling_is_read_from_statuses_and_words_not_any_number(message, throttled):
    assert access._retryable(message.lower()) is throttled


def test_gdals_own_spelling_of_a_throttled_read_is_throttling():
    # GDAL's warning names the URL between the words and the status
    assert access._retryable(access._words("HTTP response code on http://127.0.0.1:9/s2/20240429/B04.tif: 429"))
    assert not access._retryable(access._words("IReadBlock failed on /vsis3/b/S2_20240429/B04.tif"))
