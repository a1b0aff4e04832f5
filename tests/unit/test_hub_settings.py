"""The hub's resolved settings (what hub_config/ reads) and where hub_config/ is found; no hub started."""

from __future__ import annotations

from pathlib import Path

import pytest

from eolab import hub
from eolab import settings as eolab_settings
from eolab.config import load_config
from eolab.errors import ServiceError
from eolab.hub import settings as hub_settings


@pytest.fixture()
def resolved(tmp_path, monkeypatch):
    monkeypatch.setattr(hub_settings, "_answers", lambda url: False)  # nothing runs: all managed
    config = load_config(run_dir=str(tmp_path / "run"))
    return config, hub.resolve(config, hub.HubSettings(port=9100, users=["ann"]))


def test_resolved_values_are_typed_and_survive_the_settings_file(resolved):
    config, r = resolved
    assert isinstance(r, hub.ResolvedHub)
    assert r.ports() == {name: 9100 + delta for name, delta in hub.PORTS.items()}
    assert r.hub_dir == hub.hub_dir(config) and r.hub_id == str(r.hub_dir)
    assert r.marker == {"EOLAB_HUB_ID": r.hub_id}
    assert r.users == ["ann"] and r.public_url == f"http://{config.host}:9100"
    assert (r.hub_config / "jupyterhub_config.py").is_file()
    r.hub_dir.mkdir(parents=True)
    path = hub.write_resolved(r)
    assert path == r.hub_dir / "settings.json"
    assert hub.read_resolved(path) == r


def test_read_resolved_follows_the_variable_the_hub_sets(resolved, monkeypatch):
    _, r = resolved
    r.hub_dir.mkdir(parents=True)
    monkeypatch.setenv("EOLAB_HUB_SETTINGS", str(hub.write_resolved(r)))
    assert hub.read_resolved().gateway_proxy_port == 9104
    monkeypatch.delenv("EOLAB_HUB_SETTINGS")
    with pytest.raises(ServiceError, match="EOLAB_HUB_SETTINGS"):
        hub.read_resolved()


def test_hub_config_found_through_the_setting_else_the_checkout(tmp_path, monkeypatch):
    monkeypatch.delenv("EOLAB_HUB_CONFIG_DIR", raising=False)
    checkout = hub.hub_config_dir()
    assert checkout.name == "hub_config" and hub.HUB_CONFIG == checkout
    monkeypatch.setenv("EOLAB_HUB_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ServiceError, match="EOLAB_HUB_CONFIG_DIR"):
        hub.hub_config_dir()
    (tmp_path / "jupyterhub_config.py").write_text("")
    assert hub.hub_config_dir() == tmp_path.resolve()
    monkeypatch.delenv("EOLAB_HUB_CONFIG_DIR")
    monkeypatch.setattr(eolab_settings, "_CHECKOUT", Path(tmp_path / "site-packages"))  # an installed wheel
    with pytest.raises(ServiceError, match="EOLAB_HUB_CONFIG_DIR"):
        hub.hub_config_dir()


def test_the_meter_reads_the_stacks_asset_servers_only(resolved, tmp_path, monkeypatch):
    config, r = resolved
    assert r.meter_allow == [config.assets_url]  # default stack: the shared asset server
    assert config.broker_url not in r.meter_allow and r.meter_port == 9108
    monkeypatch.setenv("EOLAB_LOOKALIKES", "1")  # look-alike members with their own asset servers
    with_lookalikes = load_config(run_dir=str(tmp_path / "run2"))
    allow = hub.resolve(with_lookalikes, hub.HubSettings(port=9100, users=["ann"])).meter_allow
    own = {with_lookalikes.member_asset_server(m) for m in with_lookalikes.enabled_members if m.asset_port}
    assert own and set(allow) == own | {config.assets_url}
    assert not any(with_lookalikes.member_url(m) in allow for m in with_lookalikes.enabled_members)
