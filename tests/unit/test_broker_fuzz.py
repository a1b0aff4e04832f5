"""Fuzzing the broker's OpenAPI description (schemathesis) against in-process members: no 5xx,
and every 400 is a STAC error body naming the offending parameter."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the 'test' extra")

from eolab.catalog.broker import create_app  # noqa: E402
from eolab.config import BrokerConfig, MemberConfig, StackConfig  # noqa: E402
from eolab.testing.faults import HostRouter  # noqa: E402
from eolab.testing.faults import create_app as fake_member  # noqa: E402

PARAMETERS = {"bbox", "intersects", "datetime", "limit", "filter", "filter-lang", "filter-crs", "sortby", "fields",
              "query", "token", "collections", "ids", "body"}


def _app():
    hosts = {"a.test": fake_member({"id": "a", "n_items": 30}),
             "b.test": fake_member({"id": "b", "n_items": 20, "conformance": "core"})}
    config = StackConfig(members=[MemberConfig(id="a", url="http://a.test"), MemberConfig(id="b", url="http://b.test")],
                         broker=BrokerConfig(member_timeout=2, total_timeout=4))
    return create_app(config, transport=HostRouter(hosts), secret="fuzz")


APP = _app()
schema = schemathesis.openapi.from_asgi("/api", APP)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_400s_name_the_parameter(case):
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.formatted_path} {case.query} {case.body}: " \
                                       f"{response.status_code} {response.text[:300]}"
    if response.status_code == 400:
        body = response.json()
        assert set(body) >= {"code", "description"}, body
        if body["code"] == "BadRequest":
            assert body.get("parameter") in PARAMETERS, body
            assert body["description"].startswith(body["parameter"]), body
