"""A catalogue that is slow, or whose providers have not answered yet: said as such, asked once."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest

from eolab.errors import EolabError
from eolab.search import Catalogue
from eolab.widgets._browser_state import BrowserState


class _Slow(http.server.BaseHTTPRequestHandler):
    calls = 0
    delay = 0.0
    landing_delay = 0.0
    landing: dict = {"type": "Catalog", "id": "plain", "links": []}

    def log_message(self, *args):
        pass

    def _answer(self):
        if self.path != "/":
            type(self).calls += 1
            time.sleep(self.delay)
        else:
            time.sleep(self.landing_delay)
        if self.path == "/":
            body = self.landing
        elif self.path.startswith("/collections"):
            body = {"collections": [{"id": "danube|sentinel-2-l2a", "description": "d", "license": "other",
                                     "extent": {"spatial": {"bbox": [[20, 47, 21, 48]]},
                                                "temporal": {"interval": [[None, None]]}}, "links": []}],
                    "links": []}
        else:
            body = {"type": "FeatureCollection", "features": [], "links": [
                {"rel": "next", "href": f"http://{self.headers['Host']}/search?token=t", "method": "GET"}],
                "federation:missing": [], "eolab:member_waiting": {"danube": "timeout (no answer within 30.0 s)"}}
        data = json.dumps(body).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up
            pass

    do_GET = do_POST = _answer

    def do_POST(self):  # noqa: F811  (read the body first)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()


@pytest.fixture
def server():
    handler = type("Slow", (_Slow,), {"calls": 0, "delay": 0.0, "landing_delay": 0.0,
                                     "landing": dict(_Slow.landing)})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}", handler
    srv.shutdown()


def test_a_late_answer_is_said_to_be_late_and_not_asked_three_times(server):
    url, handler = server
    handler.delay = 3.0
    with Catalogue(url, timeout=1) as cat:
        with pytest.raises(EolabError, match=r"did not answer within 1 s") as err:
            cat.collections()
    assert "is the stack running" not in str(err.value)
    time.sleep(3.5)  # let any retry arrive
    assert handler.calls == 1  # before: three asks, three times the wait
    handler.delay = 0.0
    with Catalogue(url, timeout=5) as cat:
        assert [c.id for c in cat.collections()] == ["danube|sentinel-2-l2a"]  # the legitimate path
    with Catalogue("http://127.0.0.1:9", timeout=1) as cat:  # nothing listens: not reachable
        with pytest.raises(EolabError, match="is not reachable"):
            cat.collections()


def test_the_client_waits_as_long_as_the_broker_promises(server, monkeypatch):
    """A broker configured with long member budgets answers after more than the client's default
    wait; its landing page says how long it may take, and the client waits that long (plus a margin)
    unless told otherwise. (The default is lowered here to keep the test short.)"""
    from eolab.search import _client

    monkeypatch.setattr(_client, "DEFAULT_TIMEOUT", 1.0)
    monkeypatch.setattr(_client, "TIMEOUT_MARGIN", 1.0)
    url, handler = server
    handler.delay = 2.0
    handler.landing = {**handler.landing, "eolab:answer_within_s": 3}
    with Catalogue(url) as cat:
        assert [c.id for c in cat.collections()] == ["danube|sentinel-2-l2a"]  # answered after 2 s
        assert cat.timeout == 4.0
    with Catalogue(url, timeout=1) as cat:  # told otherwise: the user's wait wins
        with pytest.raises(EolabError, match=r"did not answer within 1 s"):
            cat.collections()
    for promise in (None, "soon", -5, True, float("inf")):  # a plain STAC API, or a promise that is not one
        handler.landing = {"type": "Catalog", "id": "plain", "links": [], "eolab:answer_within_s": promise}
        with Catalogue(url) as cat:
            with pytest.raises(EolabError, match=r"did not answer within 1 s"):
                cat.collections()
    handler.landing = {**handler.landing, "eolab:answer_within_s": 10 ** 9}
    cat = Catalogue(url)
    cat._fit()
    assert cat.timeout == _client.MAX_TIMEOUT
    handler.delay, handler.landing_delay, handler.calls = 0.0, 3.0, 0
    with Catalogue(url) as cat:  # a hung catalogue: said after one wait, not two
        with pytest.raises(EolabError, match=r"did not answer within 1 s"):
            cat.collections()
    assert handler.calls == 0
    for bad in (0, -1, "30", float("nan"), True):
        with pytest.raises(EolabError, match="timeout must be a number of seconds"):
            Catalogue(url, timeout=bad)


def test_providers_that_have_not_answered_yet_are_shown(server):
    url, _ = server
    with Catalogue(url) as cat:
        page = cat.search("danube|sentinel-2-l2a")
    assert page.waiting == {"danube": "timeout (no answer within 30.0 s)"} and page.has_next
    state = BrowserState(url)
    state.chosen = ["danube|sentinel-2-l2a"]
    state.search()
    assert state.status.startswith("page 1: 0 items (more pages); not answered yet: danube")
    state.catalogue.close()


class _Plain(http.server.BaseHTTPRequestHandler):
    """A plain STAC API (not the broker) whose answers are partly not STAC."""

    answers: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._send(self.answers[self.path.split("?")[0]])

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(self.answers[self.path.split("?")[0]])

    def _send(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_answers_of_a_plain_stac_api_that_are_not_stac_are_named():
    good = {"id": "s2", "extent": {"spatial": {"bbox": [[20, 47, 21, 48]]}, "temporal": {"interval": [[None, None]]}}}
    item = {"type": "Feature", "id": "i1", "collection": "s2", "properties": {"datetime": "2026-05-01T00:00:00Z",
                                                                             "eo:cloud_cover": "cloudy"}}
    handler = type("Plain", (_Plain,), {"answers": {
        "/collections": {"collections": [good, {"title": "no id"}, None]},
        "/search": {"type": "FeatureCollection", "features": [item], "links": []}}})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_port}"
    try:
        with Catalogue(url) as cat:
            with pytest.warns(UserWarning, match="lists 2 collection.* not STAC"):
                assert [c.id for c in cat.collections()] == ["s2"]  # the good one is still of use
            page = cat.search("s2")
            assert page.rows[0]["cloud_cover"] is None and page.rows[0]["id"] == "i1"  # "cloudy": unknown
            handler.answers["/collections"] = {"collections": "s2"}
            with pytest.raises(EolabError, match="lists its collections as a str"):
                cat.collections()
            for features in ([None], [{"type": "Feature"}], {"id": "x"}):
                handler.answers["/search"] = {"type": "FeatureCollection", "features": features, "links": []}
                with pytest.raises(EolabError, match="page 1 of the search .* holds what is not a STAC item"):
                    cat.search("s2")
    finally:
        srv.shutdown()
