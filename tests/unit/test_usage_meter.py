"""The hub's byte meter (eolab.usage._meter): GDAL reads a COG through it, as a hub kernel does, and
the meter counts exactly the body bytes the file server sent, under the user its credentials name
and the provider eolab's reader named; wrong or missing credentials and other local ports are
refused. Everything on 127.0.0.1."""

from __future__ import annotations

import base64
import http.server
import os
import socket
import threading
import time

import numpy as np
import pytest

from eolab.tiles import _egress
from eolab.usage import _bytes, _meter

SECRET = "meter-secret"


def _read_all(raw) -> bytes:
    out = b""
    while chunk := raw.recv(65536):
        out += chunk
    return out


def _basic(userpwd: str) -> str:
    return "Proxy-Authorization: Basic " + base64.b64encode(userpwd.encode()).decode()


def test_credentials_name_their_user_and_cannot_be_moved_to_another():
    meter = _meter.Meter(SECRET)
    alice = _meter.credentials(SECRET, "alice")
    assert meter.who([_basic(alice)]) == ("alice", None, "")
    assert meter.who([_basic(_meter.with_provider(alice, "pannonia"))]) == ("alice", "pannonia", "")
    key = alice.split(":", 1)[1]
    for bad in ([_basic(f"bob:{key}")], [_basic("alice:" + "0" * 64)], [_basic(_meter.credentials("other", "alice"))],
                [], ["Proxy-Authorization: Bearer x"], ["Proxy-Authorization: Basic %%%"]):
        user, _, why = meter.who(bad)
        assert user is None and why
    assert _meter.user_key(SECRET, "alice") != _meter.user_key(SECRET, "bob")
    assert _meter.meter_secret({"gateway_proxy_token": "t"}) not in ("", "t")
    assert _meter.meter_secret({}) == ""


class _Files(http.server.BaseHTTPRequestHandler):
    """A file server with byte ranges that counts the body bytes it sends (as the asset server does)."""

    root = ""
    sent = 0

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _serve(self, head):
        path = os.path.join(self.root, self.path.lstrip("/").split("?")[0])
        if not os.path.isfile(path):
            self.send_error(404)
            return
        data = open(path, "rb").read()
        status, body = 200, data
        if self.headers.get("Range", "").startswith("bytes="):
            first, _, last = self.headers["Range"][6:].partition("-")
            first, last = int(first), min(int(last or len(data) - 1), len(data) - 1)
            status, body = 206, data[first:last + 1]
        self.send_response(status)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
        self.end_headers()
        if not head:
            # Counted before the write: the client may have the bytes, and the test may look, before
            # this thread runs again after write() returns.
            type(self).sent += len(body)
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def files(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    data = (np.arange(512 * 512, dtype=np.uint32) % 9973).astype(np.uint16).reshape(512, 512)
    with rasterio.open(tmp_path / "b04.tif", "w", driver="COG", width=512, height=512, count=1, dtype="uint16",
                       crs="EPSG:32633", transform=from_origin(500000, 5000000, 10, 10), blocksize=256) as dst:
        dst.write(data, 1)
    handler = type("Files", (_Files,), {"root": str(tmp_path), "sent": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", handler, data
    server.shutdown()


def test_gdal_reads_through_the_meter_and_every_body_byte_is_counted_for_its_user(files, monkeypatch):
    import rasterio

    base, handler, data = files
    meter = _meter.Meter(SECRET)
    proxy = _egress.EgressProxy(_egress.checker([base], allow_public=False), meter)
    url = f"{base}/b04.tif"
    monkeypatch.setenv("EOLAB_METERED", "1")
    monkeypatch.setenv("GDAL_HTTP_PROXYUSERPWD", _meter.credentials(SECRET, "alice"))
    _bytes.track(url, "pannonia")  # what eolab's reader does: this directory's reads are pannonia's
    with rasterio.Env(GDAL_HTTP_PROXY=proxy.address, GDAL_HTTP_PROXYUSERPWD=_meter.credentials(SECRET, "alice"),
                      GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", VSI_CACHE="FALSE", CPL_VSIL_CURL_CACHE_SIZE="0"):
        with rasterio.open(url) as src:
            window = src.read(1, window=((256, 512), (0, 256)))
    assert (window == data[256:512, 0:256]).all()
    # The server's and the meter's threads may still be counting the last bytes GDAL already has.
    counted: dict = {}
    deadline = time.monotonic() + 30
    while True:
        for user, by_provider in meter.take().items():
            for provider, n in by_provider.items():
                counted.setdefault(user, {}).setdefault(provider, 0)
                counted[user][provider] += n
        if counted == {"alice": {"pannonia": handler.sent}} or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert handler.sent > 0 and counted == {"alice": {"pannonia": handler.sent}}
    assert meter.take() == {}  # taken once


def _through(proxy_address: str, target: str, *headers: str) -> bytes:
    host, port = proxy_address.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        extra = "".join(f"{h}\r\n" for h in headers)
        raw.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n".encode())
        return _read_all(raw)


def test_the_meter_refuses_without_credentials_and_other_local_ports(files):
    base, handler, _ = files
    meter = _meter.Meter(SECRET)
    proxy = _egress.EgressProxy(_egress.checker([base], allow_public=True), meter)
    alice = _basic(_meter.credentials(SECRET, "alice"))
    assert _through(proxy.address, f"{base}/b04.tif").startswith(b"HTTP/1.1 407")
    assert _through(proxy.address, f"{base}/b04.tif", _basic("alice:forged")).startswith(b"HTTP/1.1 407")
    with socket.socket() as other:  # another local port: the meter runs as the hub's account
        other.bind(("127.0.0.1", 0))
        refused = _through(proxy.address, f"http://127.0.0.1:{other.getsockname()[1]}/", alice)
    assert refused.startswith(b"HTTP/1.1 403") and b"127.0.0.1" in refused
    ok = _through(proxy.address, f"{base}/b04.tif", alice)
    assert ok.split(b"\r\n", 1)[0].endswith(b"200 OK")
    # Counted by origin host without a provider hint; the head of the answer is not counted.
    assert meter.take() == {"alice": {"127.0.0.1": handler.sent}}


def test_counts_reach_the_ledger_and_survive_a_failed_write(tmp_path):
    from eolab.usage._ledger import Ledger

    meter = _meter.Meter(SECRET)
    count, _ = meter.counter([_basic(_meter.credentials(SECRET, "alice"))], "https://example.org/x.tif")
    count(1000)

    class Broken:
        def record_bytes(self, user, counts):
            raise OSError("disk full")

    _meter._flush(meter, Broken())
    ledger = Ledger(tmp_path / "usage.sqlite")
    _meter._flush(meter, ledger)
    assert ledger.usage(None, "alice")["alice"].bytes_read == {"example.org": 1000}


def test_requests_on_one_connection_reuse_the_upstream_and_each_is_checked_and_counted(files):
    base, handler, data = files
    handler.protocol_version = "HTTP/1.1"  # an upstream that keeps connections open
    connections = []
    original_setup = handler.setup

    def setup(self):
        connections.append(self.client_address)
        original_setup(self)

    handler.setup = setup
    meter = _meter.Meter(SECRET)
    proxy = _egress.EgressProxy(_egress.checker([base], allow_public=False), meter)
    alice = _basic(_meter.credentials(SECRET, "alice"))
    host, port = proxy.address.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        for last, rng in ((False, "bytes=0-999"), (False, "bytes=1000-4999"), (True, "bytes=0-15")):
            raw.sendall((f"GET {base}/b04.tif HTTP/1.1\r\nHost: x\r\nRange: {rng}\r\n{alice}\r\n"
                         + ("Connection: close\r\n" if last else "") + "\r\n").encode())
        out = _read_all(raw)
    assert out.count(b"HTTP/1.1 206") == 3
    assert len(connections) == 1  # one upstream connection for the three requests
    assert meter.take() == {"alice": {"127.0.0.1": 1000 + 4000 + 16}} == {"alice": {"127.0.0.1": handler.sent}}
    # A request on the same connection to a port the meter may not read is refused, not forwarded.
    with socket.socket() as other, socket.create_connection((host, int(port)), timeout=10) as raw:
        other.bind(("127.0.0.1", 0))
        raw.sendall(f"GET {base}/b04.tif HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n{alice}\r\n\r\n".encode())
        raw.sendall(f"GET http://127.0.0.1:{other.getsockname()[1]}/ HTTP/1.1\r\nHost: x\r\n{alice}\r\n\r\n".encode())
        out = _read_all(raw)
    assert out.count(b"HTTP/1.1 206") == 1 and b"HTTP/1.1 403" in out


def test_requests_with_a_body_or_malformed_headers_are_refused_not_smuggled(files):
    """A GET with a body could carry a second request the proxy never checked (request smuggling)."""
    base, handler, _ = files
    methods = []
    original = handler.do_GET

    def do_GET(self):
        methods.append((self.command, self.path))
        original(self)

    handler.do_GET = do_GET
    handler.do_POST = lambda self: methods.append(("POST", self.path))
    proxy = _egress.EgressProxy(_egress.checker([base], allow_public=False))
    host, port = proxy.address.split(":")
    smuggled = "POST /b04.tif HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    attempts = [
        f"GET {base}/b04.tif HTTP/1.1\r\nHost: x\r\nContent-Length: {len(smuggled)}\r\n\r\n{smuggled}",
        f"GET {base}/b04.tif HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        f"GET {base}/b04.tif HTTP/1.1\r\nHost: x\r\nX: y\r\n POST /b04.tif HTTP/1.1\r\n\r\n",
        f"GET {base}/b04.tif HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    ]
    for attempt in attempts:
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            raw.sendall(attempt.encode())
            assert _read_all(raw).startswith(b"HTTP/1.1 400"), attempt
    assert methods == []  # nothing reached the upstream
    with socket.create_connection((host, int(port)), timeout=10) as raw:  # the legitimate path
        raw.sendall(f"GET {base}/b04.tif HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\nConnection: close\r\n\r\n".encode())
        assert b" 206 " in _read_all(raw).split(b"\r\n", 1)[0]
    assert methods == [("GET", "/b04.tif")]


def test_interim_answers_and_chunked_bodies_keep_requests_and_answers_in_step():
    """An upstream answering 103 first and then a chunked body, on a kept-alive connection: each
    request gets its own final answer, the chunks' bytes are counted, nothing hangs."""
    import socketserver

    class Chunky(socketserver.StreamRequestHandler):
        def handle(self):
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = self.rfile.readline()
                    if not line:
                        return
                    head += line
                path = head.split(b" ", 2)[1].decode()
                body = f"answer to {path}".encode()
                self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
                self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                self.wfile.write(b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (5, body[:5], len(body) - 5, body[5:]))
                self.wfile.flush()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Chunky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    meter = _meter.Meter(SECRET)
    proxy = _egress.EgressProxy(_egress.checker([base], allow_public=False), meter)
    alice = _basic(_meter.credentials(SECRET, "alice"))
    host, port = proxy.address.split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            raw.sendall(f"GET {base}/one HTTP/1.1\r\nHost: x\r\n{alice}\r\n\r\n".encode())
            raw.sendall(f"GET {base}/two HTTP/1.1\r\nHost: x\r\n{alice}\r\nConnection: close\r\n\r\n".encode())
            out = _read_all(raw)
    finally:
        server.shutdown()
    assert b"103" not in out and out.count(b"HTTP/1.1 200 OK") == 2
    assert out.count(b"answe\r\n") == 2 and out.index(b"r to /one") < out.index(b"r to /two")  # chunk framing kept
    assert meter.take() == {"alice": {"127.0.0.1": len(b"answer to /one") + len(b"answer to /two")}}


def test_the_tile_services_proxy_answers_only_its_own_process(files):
    base, handler, _ = files
    tally = _egress.Tally()
    proxy = _egress.EgressProxy(_egress.checker([base], allow_public=False), tally)
    host, port = proxy.address.split(":")

    def get(userpwd: str | None) -> bytes:
        extra = _basic(userpwd) + "\r\n" if userpwd else ""
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            raw.sendall(f"GET {base}/b04.tif HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n".encode())
            return _read_all(raw).split(b"\r\n", 1)[0]

    assert get(None).startswith(b"HTTP/1.1 407") and get("-:guess").startswith(b"HTTP/1.1 407")
    assert b" 200 " in get(tally.userpwd()) and tally.pop("-") == {}  # untagged: passed, not counted
    assert b" 200 " in get(tally.userpwd("tile-1"))
    assert tally.pop("tile-1") == {"127.0.0.1": os.path.getsize(os.path.join(handler.root, "b04.tif"))}
