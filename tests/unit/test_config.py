"""The stack configuration: defaults, overrides and clear errors."""

import datetime as dt

import pytest

from eolab.config import DEFAULT_CONFIG, load_config
from eolab.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return path


MINIMAL = """
members:
  - id: a
    port: 9001
    collections: {sentinel-2-l2a: {end: 2026-06-30}}
  - id: b
    url: https://example.invalid/stac
"""


def test_packaged_default_has_three_demo_members_sharing_sentinel2():
    config = load_config(DEFAULT_CONFIG)
    demo = config.demo_members
    assert len(demo) >= 3
    holders = [m for m in demo if "sentinel-2-l2a" in m.collections]
    assert len(holders) == 2
    first, second = (m.collections["sentinel-2-l2a"] for m in holders)
    # The two S2 holders cover disjoint date windows.
    assert first.end is not None and second.start is not None and first.end < second.start
    assert all(m.enabled is False for m in config.members if not m.is_demo)


def test_port_offset_moves_every_local_port(tmp_path):
    config = load_config(write(tmp_path, MINIMAL), port_offset=100)
    assert config.postgres.port == 5533
    assert config.assets.port == 8810
    assert config.member("a").port == 9101
    assert config.member_url(config.member("b")) == "https://example.invalid/stac"


def test_environment_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("EOLAB_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("EOLAB_PORT_OFFSET", "7")
    config = load_config(write(tmp_path, MINIMAL))
    assert config.run_dir == tmp_path / "run"
    assert config.member("a").port == 9008


def test_date_window_is_inclusive():
    config = load_config(DEFAULT_CONFIG)
    window = config.member("pannonia").collections["sentinel-2-l2a"]
    assert window.contains(dt.date(2026, 6, 30))
    assert not window.contains(dt.date(2026, 7, 1))


@pytest.mark.parametrize(
    "text, message",
    [
        ("members:\n  - id: a\n    port: 1\n    url: http://x\n    collections: {c: {}}\n", "exactly one of 'port'"),
        ("members:\n  - id: a\n    port: 9001\n", "lists no 'collections'"),
        ("members:\n  - id: 'A|b'\n    url: http://x\n", "members.0.id"),
        ("host: 0.0.0.0\nmembers: []\n", "127.0.0.1 only"),
        ("members:\n  - {id: a, url: 'http://x'}\n  - {id: a, url: 'http://y'}\n", "repeated: a"),
        ("assets: {port: 9001}\n" + MINIMAL, "share port"),
        ("members: [\n", "not valid YAML"),
        ("members:\n  - id: a\n    url: http://x\n    colour: red\n", "members.0.colour"),
    ],
)
def test_bad_configuration_names_the_problem(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_and_bad_offset(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not a whole number"):
        load_config(write(tmp_path, MINIMAL), port_offset="ten")
    with pytest.raises(ConfigError, match=r"port offset 99999 makes .*port.*less than or equal to 65535") as err:
        load_config(write(tmp_path, MINIMAL), port_offset=99999)  # the file is fine: the offset is named
    assert "--port-offset" in err.value.hint and "nope" not in str(err.value)


def test_unknown_member_lists_the_known_ones():
    config = load_config(DEFAULT_CONFIG)
    with pytest.raises(ConfigError, match="members are: pannonia"):
        config.member("nope")


def test_s3_lookalike_member_points_its_items_at_its_bucket_and_names_its_keys_service(tmp_path, monkeypatch):
    import yaml

    monkeypatch.setenv("EOLAB_LOOKALIKES", "1")
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for member in raw["members"]:
        if member["id"] == "cdse-like":
            member.update(asset_store="s3", oidc_issuer="http://127.0.0.1:8790")
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    member = config.member("cdse-like")
    assert config.member_assets_url(member) == "s3://eodata"
    server = config.member_asset_server(member)
    assert server == f"http://127.0.0.1:{member.asset_port}"
    profile = config.member_profile(member)
    assert (profile.access, profile.s3_endpoint, profile.s3_https) == ("s3", f"127.0.0.1:{member.asset_port}", False)
    assert profile.s3_keys_url == f"{server}/_s3keys/credentials"
    assert profile.max_connections == 4  # the member's own profile is kept
    # Without an identity provider nobody could mint keys: refused when the file is read.
    for member in raw["members"]:
        if member["id"] == "cdse-like":
            member.pop("oidc_issuer")
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="oidc_issuer"):
        load_config(path)
