"""Read-time credentials: settings on the reading process, clear errors, nothing secret in specs."""

from __future__ import annotations

import pickle

import pytest

from eolab.config import ProviderProfile
from eolab.data import access


def test_s3_credentials_come_from_settings_and_their_absence_names_the_variable(monkeypatch):
    spec = access.spec_for("cdse", ProviderProfile(access="s3", s3_endpoint="eodata.example", max_connections=4))
    monkeypatch.delenv("EOLAB_S3_CREDENTIALS", raising=False)
    with pytest.raises(access.AccessError, match="provider 'cdse'") as info:
        access.gdal_options(spec)
    assert "EOLAB_S3_CREDENTIALS" in info.value.hint
    monkeypatch.setenv("EOLAB_S3_CREDENTIALS", '{"cdse": {"access_key_id": "AK", "secret_access_key": "SK"}}')
    options = access.gdal_options(spec)
    assert options["AWS_S3_ENDPOINT"] == "eodata.example" and options["AWS_ACCESS_KEY_ID"] == "AK"
    assert options["AWS_VIRTUAL_HOSTING"] == "FALSE" and options["AWS_HTTPS"] == "YES"
    assert b"SK" not in pickle.dumps(access.AccessDriver({"s3://eodata": spec}))  # the graph carries no secret


def test_bearer_token_header_and_missing_token(monkeypatch):
    spec = access.spec_for("api", ProviderProfile(access="bearer"))
    monkeypatch.delenv("EOLAB_BEARER_TOKENS", raising=False)
    with pytest.raises(access.AccessError, match="EOLAB_BEARER_TOKENS|bearer"):
        access.gdal_options(spec)
    monkeypatch.setenv("EOLAB_BEARER_TOKENS", '{"api": "t0k"}')
    assert access.gdal_options(spec) == {"GDAL_HTTP_HEADERS": "Authorization: Bearer t0k"}


def test_sas_needs_a_token_endpoint_and_containers_follow_blob_storage():
    spec = access.spec_for("pc", ProviderProfile(access="sas"))
    with pytest.raises(access.AccessError, match="token_url"):
        access.sign(spec, "https://acct.blob.core.windows.net/sentinel2-l2/a/b.tif")
    assert access._container("https://acct.blob.core.windows.net/sentinel2-l2/a/b.tif") == "acct/sentinel2-l2"
    assert access._container("http://127.0.0.1:9/s2/x/B04.tif") == "s2"
    assert access.sign(access.spec_for("p", None), "http://x/y.tif") == "http://x/y.tif"
