"""The tile service's address checks, on resolved names (no request is sent anywhere)."""

import os

import pytest

from eolab.tiles._policy import refusal

NAMES = {
    "metadata.example": ["169.254.169.254"],        # cloud metadata (link-local)
    "intranet.example": ["10.1.2.3"],
    "router.example": ["192.168.0.1"],
    "docker.example": ["172.17.0.1"],
    "ipv6-local.example": ["fe80::1", "fd00::5"],
    "sneaky.example": ["93.184.216.34", "127.0.0.1"],  # one public, one loopback answer
    "mapped.example": ["::ffff:127.0.0.1"],
    "assets.example.evil.example": ["10.9.9.9"],
    "storage.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
}


def resolver(host, port):
    if host in NAMES:
        return NAMES[host]
    if host.replace(".", "").isdigit() or ":" in host:
        return [host]
    raise OSError("name not known")


TRUSTED = ["http://127.0.0.1:8710", "http://127.0.0.1:8720"]


@pytest.mark.parametrize("url", [
    "http://metadata.example/latest/meta-data/", "http://169.254.169.254/latest/meta-data/",
    "http://intranet.example/x.tif", "http://router.example/", "http://docker.example:2375/info",
    "http://ipv6-local.example/x.tif", "http://sneaky.example/x.tif", "http://mapped.example/x.tif",
    "http://127.0.0.1:5433/", "http://127.0.0.1:8714/collections", "http://localhost:8710/x.tif",
    "http://[::1]:8710/x.tif", "http://0.0.0.0:8710/x.tif",
])
def test_inner_addresses_are_refused(url):
    reason = refusal(url, TRUSTED, resolver=lambda h, p: resolver("127.0.0.1" if h == "localhost" else h, p))
    assert reason and "may not be read" in reason


@pytest.mark.parametrize("url", ["/etc/passwd", "file:///etc/passwd", "/vsicurl/http://127.0.0.1/x.tif",
                                 "gopher://storage.example/"])
def test_only_http_urls(url):
    assert "http(s) URLs only" in refusal(url, TRUSTED, resolver=resolver)


def test_the_stacks_services_and_public_storage_are_read():
    assert refusal("http://127.0.0.1:8710/sentinel-2-l2a/B04.tif", TRUSTED, resolver=resolver) is None
    assert refusal("http://127.0.0.1:8720/collections/a/items/b", TRUSTED, resolver=resolver) is None
    assert refusal("https://storage.example/tiles/B04.tif", TRUSTED, resolver=resolver) is None
    # a trusted prefix covers its paths, not other ports that start with the same digits
    assert "may not be read" in refusal("http://assets.example.evil.example/x.tif", ["http://assets.example"],
                                     resolver=resolver)
    assert "may not be read" in refusal("http://127.0.0.1:8711/x.tif", TRUSTED, resolver=resolver)
    assert refusal("http://127.0.0.1:8710?x=1", TRUSTED, resolver=resolver) is None


def test_unresolvable_names_and_credentials_and_public_off():
    assert "cannot resolve" in refusal("http://nowhere.example/x.tif", TRUSTED, resolver=resolver)
    assert "credentials" in refusal("http://user:pw@storage.example/x.tif", TRUSTED, resolver=resolver)
    assert "not a catalogue or configured host" in refusal("https://storage.example/x.tif", TRUSTED,
                                                            allow_public=False, resolver=resolver)


def test_the_egress_proxy_connects_to_the_address_it_checked():
    """The proxy resolves a name once: the address it checked is the one it connects to (a second
    lookup could answer with an inner address), and every hop of a redirect gets the same policy."""
    from eolab.tiles._egress import checker

    answers = {"tiles.example.org": [["93.184.216.34"], ["169.254.169.254"]], "127.0.0.1": [["127.0.0.1"]]}

    def resolver(host, port):
        return answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]

    check = checker(["http://127.0.0.1:8740"], allow_public=True, resolver=resolver)
    assert check("https://tiles.example.org/a.tif") == (None, "93.184.216.34")
    problem, address = check("https://tiles.example.org/a.tif")  # now rebinds to the metadata address
    assert address is None and "169.254.169.254" in problem
    assert check("http://127.0.0.1:8740/cog.tif") == (None, "127.0.0.1")  # the stack's own, trusted
    problem, address = check("http://127.0.0.1:5432/")  # another local port
    assert address is None and "local, private or link-local" in problem
    assert checker([], allow_public=False, resolver=resolver)("https://tiles.example.org/a.tif")[1] is None


def test_a_tunnel_to_a_trusted_https_host_passes_and_others_do_not():
    """A CONNECT shows host and port only: it was checked as https://HOST:443/, which never lay under
    a trusted prefix, so every https asset of a configured host was refused."""
    from eolab.tiles._egress import checker
    from eolab.tiles._policy import origin as _origin

    def resolver(host, port):
        return {"data.example.org": ["10.0.0.5"], "other.example.org": ["10.0.0.6"]}[host]

    check = checker(["https://data.example.org/eo", "http://127.0.0.1:8740"], allow_public=False, resolver=resolver)
    assert check(_origin("https://data.example.org:443") + "/", tunnel=True) == (None, "10.0.0.5")
    assert check(_origin("https://data.example.org:8443") + "/", tunnel=True)[1] is None  # another port
    assert check(_origin("https://other.example.org:443") + "/", tunnel=True)[1] is None
    # a plain request still needs the whole prefix, path included
    assert check("https://data.example.org/eo/B04.tif")[1] == "10.0.0.5"
    assert check("https://data.example.org/private/x.tif")[1] is None
    assert _origin("https://[::1]:443") == "https://[::1]" and _origin("http://h:8080/x") == "http://h:8080"


def test_image_sizes_are_bounded_before_titiler_reads():
    from eolab.tiles.app import MAX_IMAGE_SIDE, size_problem, sized_query

    assert "100000 is more than" in size_problem("/cog/bbox/1,2,3,4/100000x100000.png", {})
    assert "buffer 50000 is more than" in size_problem("/cog/tiles/WebMercatorQuad/1/0/0.png", {"buffer": "50000"})
    assert "tilesize 20000" in size_problem("/cog/tiles/WebMercatorQuad/1/0/0.png", {"tilesize": "20000"})
    assert size_problem("/cog/bbox/1,2,3,4/512x512.png", {"buffer": "4"}) is None
    # bbox and feature images without a size would be read at full resolution: they get max_size
    assert sized_query("/cog/bbox/1,2,3,4.png", b"url=x") == f"url=x&max_size={MAX_IMAGE_SIDE}".encode()
    assert sized_query("/stac/feature.png", b"") == f"max_size={MAX_IMAGE_SIDE}".encode()
    assert sized_query("/cog/bbox/1,2,3,4.png", b"url=x&max_size=512") == b"url=x&max_size=512"
    assert sized_query("/cog/bbox/1,2,3,4/256x256.png", b"url=x") == b"url=x"
    assert sized_query("/cog/tiles/WebMercatorQuad/1/0/0.png", b"url=x") == b"url=x"
    assert sized_query("/cog/statistics", b"url=x") == b"url=x"  # titiler's GET default: 1024
    assert sized_query("/cog/statistics", b"url=x", "POST") == f"url=x&max_size={MAX_IMAGE_SIDE}".encode()


def test_item_urls_answering_junk_are_400s(tmp_path, monkeypatch):
    """An item server on 127.0.0.1 answering a huge body, JSON that is no item, and an item whose
    assets are malformed: each is a 400 naming it, and a good item still renders."""
    import http.server
    import json
    import threading

    from fastapi.testclient import TestClient

    from eolab.tiles.app import _GDAL_ENV, MAX_ITEM_BYTES, create_app

    # create_app points this process's GDAL at its egress proxy: undone after the test, so later
    # tests in the same worker read 127.0.0.1 directly
    for key in ("GDAL_HTTP_PROXY", "GDAL_HTTP_PROXYUSERPWD", *_GDAL_ENV):
        monkeypatch.setenv(key, os.environ.get(key, ""))
        if not os.environ[key]:
            monkeypatch.delenv(key)
    bodies = {"/huge.json": b"[" + b"0," * MAX_ITEM_BYTES + b"0]",
              "/list.json": b"[1, 2]",
              "/bad-assets.json": json.dumps({"type": "Feature", "assets": {"red": 1}}).encode(),
              "/no-href.json": json.dumps({"type": "Feature", "assets": {"red": {"type": "image/tiff"}}}).encode(),
              "/bad-bands.json": json.dumps({"type": "Feature", "assets": {
                  "B04": {"href": "http://127.0.0.1:9/B04.tif", "eo:bands": [7]},
                  "B03": {"href": "http://127.0.0.1:9/B03.tif"}, "B02": {"href": "http://127.0.0.1:9/B02.tif"}}}).encode()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = bodies.get(self.path, b"")
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    saved = dict(os.environ)  # create_app points this process's GDAL at its egress proxy
    try:
        client = TestClient(create_app(allow=[base]))
        expect = {"/huge.json": f"more than {MAX_ITEM_BYTES:,} bytes", "/list.json": "is not a STAC item",
                  "/bad-assets.json": "is not a STAC item", "/no-href.json": "is not a STAC item",
                  "/bad-bands.json": "band metadata of its assets cannot be read"}
        for path, message in expect.items():
            response = client.get("/item/14/9132/5754.png", params={"url": base + path})
            assert response.status_code == 400 and message in response.json()["detail"], (path, response.text[:200])
        assert client.get("/item/14/9132/5754.png", params={"url": base + "/missing.json"}).status_code == 400
    finally:
        server.shutdown()
        os.environ.clear()
        os.environ.update(saved)


def test_prefixes_and_urls_compare_by_their_normal_origin():
    """httpx sends a URL on as http://localhost/x (default port dropped, host lower-cased): a trusted
    prefix written http://LocalHost:80 must cover it at the proxy as it does at the service."""
    from eolab.tiles._egress import _bracketed
    from eolab.tiles._policy import normal, origin

    assert refusal("http://localhost/stac/x.json", ["http://LocalHost:80/stac"]) is None
    assert refusal("http://localhost:80/stac/x.json", ["http://localhost/stac"]) is None
    assert refusal("http://localhost/other/x.json", ["http://localhost:80/stac"], allow_public=False) is not None
    assert refusal("https://h.example:8443/a", ["https://h.example"], allow_public=False) is not None  # another port
    assert normal("HTTPS://Data.Example:443/A/b?x=1") == "https://data.example/A/b?x=1"
    assert origin("http://[::1]:8710/x") == "http://[::1]:8710" and _bracketed("::1:8443") == "[::1]:8443"
    assert _bracketed("[::1]:8443") == "[::1]:8443" and _bracketed("h:80") == "h:80"
