"""Fuzzing the broker's OpenAPI description (schemathesis) against in-process members: no 5xx,
every 400 is a STAC error body naming the offending parameter, every generated search that has a
``next`` link is walked to its end (no 5xx, no item twice), and stateful sequences follow the
description's links (search → its first item, POST search → its next page)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the 'test' extra")

from starlette.testclient import TestClient  # noqa: E402

from eolab.catalog.broker import create_app  # noqa: E402
from eolab.config import BrokerConfig, MemberConfig, StackConfig  # noqa: E402
from eolab.testing.faults import HostRouter  # noqa: E402
from eolab.testing.faults import create_app as fake_member  # noqa: E402

PARAMETERS = {"bbox", "intersects", "datetime", "limit", "filter", "filter-lang", "filter-crs", "sortby", "fields",
              "query", "token", "collections", "ids", "body"}

MAX_PAGES = 30  # per generated walk (limits are generated too: a walk of limit 1 over 50 items is long)


def _app():
    hosts = {"a.test": fake_member({"id": "a", "n_items": 30}),
             "b.test": fake_member({"id": "b", "n_items": 20, "conformance": "core"})}
    config = StackConfig(members=[MemberConfig(id="a", url="http://a.test"), MemberConfig(id="b", url="http://b.test")],
                         broker=BrokerConfig(member_timeout=2, total_timeout=4))
    return create_app(config, transport=HostRouter(hosts), secret="fuzz")


APP = _app()
CLIENT = TestClient(APP)
schema = schemathesis.openapi.from_asgi("/api", APP)


def _no_server_error(response, case) -> None:
    assert response.status_code < 500, f"{case.method} {case.formatted_path} {case.query} {case.body}: " \
                                       f"{response.status_code} {response.text[:300]}"


def _walk_on(body: dict) -> None:
    """Follow 'next' links of a 200 search page: every page 200, no item twice."""
    seen = {(f.get("collection"), f.get("id")) for f in body.get("features", [])}
    for _ in range(MAX_PAGES):
        nxt = [ln for ln in body.get("links", []) if ln.get("rel") == "next"]
        if not nxt:
            return
        if nxt[0].get("method") == "POST":
            response = CLIENT.post(nxt[0]["href"], json=nxt[0]["body"])
        else:
            response = CLIENT.get(nxt[0]["href"])
        assert response.status_code == 200, f"{nxt[0]}: {response.status_code} {response.text[:300]}"
        body = response.json()
        keys = [(f.get("collection"), f.get("id")) for f in body["features"]]
        assert not seen & set(keys), f"items again on a later page: {seen & set(keys)}"
        seen |= set(keys)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_400s_name_the_parameter(case):
    response = case.call()
    _no_server_error(response, case)
    if response.status_code == 400:
        body = response.json()
        assert set(body) >= {"code", "description"}, body
        if body["code"] == "BadRequest":
            assert body.get("parameter") in PARAMETERS, body
            assert body["description"].startswith(body["parameter"]), body
    if response.status_code == 200 and case.path in ("/search", "/collections/{collection_id}/items"):
        _walk_on(response.json())


class BrokerSequences(schema.as_state_machine()):
    def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
        _no_server_error(response, case)


TestBrokerSequences = BrokerSequences.TestCase
TestBrokerSequences.settings = settings(max_examples=25, stateful_step_count=6, deadline=None,
                                        suppress_health_check=list(HealthCheck))
