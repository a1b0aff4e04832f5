"""The settings models are built once per EOLAB_ environment, and anew when it changes."""

from __future__ import annotations

from eolab import settings


def test_client_settings_follow_every_change_of_the_environment(monkeypatch):
    monkeypatch.setenv("EOLAB_CATALOG_URL", "http://127.0.0.1:1/a")
    first = settings.client()
    assert first.catalog_url == "http://127.0.0.1:1/a"
    assert settings.client().catalog_url == "http://127.0.0.1:1/a"
    monkeypatch.setenv("EOLAB_CATALOG_URL", "http://127.0.0.1:1/b")
    assert settings.client().catalog_url == "http://127.0.0.1:1/b"
    monkeypatch.delenv("EOLAB_CATALOG_URL")
    assert settings.client().catalog_url is None
    # A caller changing its copy does not change what the next caller gets.
    mine = settings.client()
    mine.catalog_url = "http://127.0.0.1:1/mine"
    assert settings.client().catalog_url is None


def test_access_settings_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EOLAB_S3_KEYS_FILE", str(tmp_path / "a.json"))
    monkeypatch.setenv("EOLAB_OIDC_ACCESS_TOKEN", "t1")
    assert settings.access().s3_keys_file == tmp_path / "a.json"
    assert settings.access().oidc_access_token == "t1"
    monkeypatch.setenv("EOLAB_OIDC_ACCESS_TOKEN", "t2")
    assert settings.access().oidc_access_token == "t2"
