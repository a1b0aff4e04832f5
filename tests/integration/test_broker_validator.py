"""stac-api-validator (0.6.8) against the broker of the real demo stack.

The validator runs as its CLI from the venv for the conformance classes core, collections,
features, item-search, filter, item-search#sort and item-search#fields on ``pannonia|sentinel-2-l2a``.
Every error it reports must be on the allow-list below: JSON-schema checks that download their
schemas from the internet, which this machine cannot reach (each allowed error is re-checked: the
schema URL it names must really be unreachable from here). Anything else fails the test.

Not run here: the Query extension (``item-search#query``, not part of this conformance set; the
validator sends every operand as a JSON string, and checks ``in`` only for array properties) and
the validator's final pystac ``validate()`` pass, which it skips once any error was reported and
which needs the same schemas.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

COLLECTION = "pannonia|sentinel-2-l2a"
CONFORMANCE = ["core", "collections", "features", "item-search", "filter", "item-search#sort",
               "item-search#fields"]
NESTED_PROPERTY = "properties.eo:cloud_cover"
VALIDATOR = Path(sys.executable).parent / "stac-api-validator"

# What the validator logs when it starts each class: proof that the checks ran.
STARTED = [
    "Validating STAC API - Core conformance class.",
    "Validating STAC API - Collections conformance class.",
    "Validating STAC API - Features conformance class.",
    "Validating STAC API - Item Search conformance class.",
    "Validating STAC API - Item Search - Filter Extension conformance class.",
    "Validating STAC API - Item Search - Filter Extension - CQL2-Text conformance class.",
    "Validating STAC API - Item Search - Filter Extension - CQL2-JSON conformance class.",
    "Validating STAC API - Item Search - Filter Extension - Basic CQL2 conformance class.",
    "Validating STAC API - Item Search - Filter Extension - Advanced Comparison Operators conformance class.",
    "Validating STAC API - Item Search - Filter Extension - Basic Spatial Operators conformance class.",
    "STAC API - Item Search - Fields extension conformance class found.",
    "STAC API - Item Search - Sort extension conformance class found.",
]
MIN_REQUESTS = 200  # a full run sends ~250 requests to the broker

SCHEMA_HOSTS = ("schemas.stacspec.org", "stac-extensions.github.io")
_SCHEMA_URL = r"https://(?:schemas\.stacspec\.org|stac-extensions\.github\.io)/\S+\.json"
_CONNECTION_FAILURE = (r"HTTPSConnectionPool\(host='(?P<host>schemas\.stacspec\.org|stac-extensions\.github\.io)', "
                       r"port=443\): Max retries exceeded with url: (?P<path>/\S+\.json) \(Caused by .+\)")

# Allow-list: regular expressions for a whole error entry (re.fullmatch); {base} is the broker URL.
ALLOWED = {
    # stac-validator (called by the validator's stac_validate() for every collection and item it
    # fetches) validates against the JSON schema named by stac_version/stac_extensions, which it
    # downloads: offline this ends in a ConnectionError result; the object itself was never checked
    # against the schema. The result list is checked in _schema_result_is_download_failure.
    "stac-validator schema download":
        r"\[(?:Collections|Features|Item Search)\] : GET {base}/\S* failed stac-validator validation: "
        r"(?P<result>\[\{.*\}\])",
    # stac-check (the validator's stac_check(), run on the same collection and item URLs) starts
    # with the same schema validation and reports the download failure as "not a valid STAC
    # object"; its best-practice checks still ran (they come back as warnings).
    "stac-check schema download":
        r"\[(?:Collections|Features|Item Search)\] : GET {base}/\S* is not a valid STAC object: "
        + _CONNECTION_FAILURE,
}


def _schema_result_is_download_failure(text: str) -> list[str]:
    """The stac-validator result list of one error: every entry a failed schema download."""
    results = ast.literal_eval(text)
    urls = []
    for result in results:
        assert result["valid_stac"] is False and result["error_type"] == "ConnectionError", result
        assert re.fullmatch(_CONNECTION_FAILURE, result["error_message"]), result
        assert result["schema"] and all(re.fullmatch(_SCHEMA_URL, s) for s in result["schema"]), result
        match = re.fullmatch(_CONNECTION_FAILURE, result["error_message"])
        urls.append(f"https://{match['host']}{match['path']}")
    return urls


@lru_cache(maxsize=None)
def _unreachable(url: str) -> bool:
    """True when fetching ``url`` from here fails at the connection (no internet)."""
    try:
        httpx.get(url, timeout=10)
    except httpx.TransportError:
        return True
    return False


def _geometry_inside(collection: dict) -> dict:
    """A polygon over the middle half of the collection's spatial extent."""
    west, south, east, north = collection["extent"]["spatial"]["bbox"][0][:4]
    dx, dy = (east - west) / 4, (north - south) / 4
    w, s, e, n = west + dx, south + dy, east - dx, north - dy
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _sections(output: str) -> tuple[list[str], list[str]]:
    """(warnings, errors) from the CLI output; a line not starting with '- ' continues the entry before."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line in ("Warnings:", "Warnings: none")]
    assert starts, f"no Warnings section: the validator did not finish\n{output[-5000:]}"
    warnings: list[str] = []
    errors: list[str] = []
    target = warnings
    for line in lines[starts[-1] + 1:]:
        if line in ("Errors:", "Errors: none"):
            target = errors
        elif line.startswith("- "):
            target.append(line[2:])
        elif target:
            target[-1] += "\n" + line
    return warnings, errors


@pytest.fixture(scope="module")
def validator_run(catalog_stack):
    base = catalog_stack.broker_url.rstrip("/")
    collection = httpx.get(f"{base}/collections/{COLLECTION}", timeout=30).json()
    geometry = _geometry_inside(collection)
    hits = httpx.post(f"{base}/search", json={"collections": [COLLECTION], "intersects": geometry},
                      timeout=30).json()["features"]
    assert hits, "the intersects geometry must hit items, or the validator's intersects check is empty"
    command = [str(VALIDATOR), "--log-level", "DEBUG", "--root-url", base, "--collection", COLLECTION,
               "--geometry", json.dumps(geometry), "--fields-nested-property", NESTED_PROPERTY]
    for name in CONFORMANCE:
        command += ["--conformance", name]
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    return base, proc


def test_validator_ran_every_class(validator_run):
    base, proc = validator_run
    output = proc.stdout + proc.stderr
    assert "Failed.\nError" not in output, output[-5000:]  # the CLI's message when a check crashed
    for line in STARTED:
        assert f"INFO:stac_api_validator.validations:{line}" in output, line
    port = base.rsplit(":", 1)[1]
    requests = re.findall(rf'urllib3\.connectionpool:http://127\.0\.0\.1:{port} "(\w+) (\S+) HTTP/1\.1" (\d+)',
                          output)
    assert len(requests) >= MIN_REQUESTS, f"only {len(requests)} requests reached the broker"
    assert {m for m, _, _ in requests} == {"GET", "POST"}
    server_errors = [r for r in requests if r[2].startswith("5")]
    assert not server_errors, server_errors  # a 500 is a broker bug even where the validator is silent
    warnings, _ = _sections(output)
    # Checks the validator skips with a warning when the data cannot exercise them.
    assert not [w for w in warnings if "returned < 2 results" in w or "had no items" in w], warnings


def test_validator_errors_are_only_offline_schema_downloads(validator_run):
    base, proc = validator_run
    warnings, errors = _sections(proc.stdout + proc.stderr)
    unexpected, downloads = [], set()
    for error in errors:
        for pattern in ALLOWED.values():
            match = re.fullmatch(pattern.replace("{base}", re.escape(base)), error)
            if match:
                if "result" in match.groupdict():
                    downloads.update(_schema_result_is_download_failure(match["result"]))
                else:
                    downloads.add(f"https://{match['host']}{match['path']}")
                break
        else:
            unexpected.append(error)
    assert not unexpected, "\n".join(unexpected) + "\n\nwarnings:\n" + "\n".join(warnings)
    # An allowed error is only allowed while its schema really cannot be downloaded from here.
    reachable = [url for url in sorted(downloads) if not _unreachable(url)]
    assert not reachable, f"schemas reachable, so these checks should have run: {reachable}"
    assert proc.returncode == (1 if errors else 0)


def test_ids_do_not_override_other_parameters(validator_run, catalog_stack):
    """The validator's own ids-and-bbox check, on a demo item.

    In the CLI run it looks for an item in bbox 20,20,21,21 (the Sahara), finds none in the demo
    area and only warns; here it gets an item of the collection instead.
    """
    from requests import Session
    from stac_api_validator.validations import Errors, Method, _validate_search_ids_with_ids_no_override

    base, _ = validator_run
    item = httpx.get(f"{base}/search", params={"collections": COLLECTION, "limit": 1}, timeout=30).json()["features"][0]
    errors = Errors()
    with Session() as session:
        _validate_search_ids_with_ids_no_override(f"{base}/search", item, {Method.GET, Method.POST}, errors, session)
    assert not errors, errors
    # and the same ids without the bbox do find it (so the empty answer above means something)
    found = httpx.post(f"{base}/search", json={"ids": [item["id"]], "collections": [item["collection"]]},
                       timeout=30).json()["features"]
    assert [f["id"] for f in found] == [item["id"]]
