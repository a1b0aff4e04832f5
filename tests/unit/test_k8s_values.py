"""The Kubernetes recipe, checked offline: merged chart values against the charts' own schemas,
embedded Python config executed, and every configured trait a real trait of its class."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "hub_config" / "k8s"
SCHEMAS = ROOT.parent / "shared" / "schemas"
CHARTS = {
    "jupyterhub-values.yaml": ("z2jh-jupyterhub-values.schema.yaml", "z2jh-jupyterhub-values.defaults.yaml"),
    "dask-gateway-values.yaml": ("dask-gateway-chart-values.schema.yaml", "dask-gateway-chart-values.defaults.yaml"),
}
needs_schemas = pytest.mark.skipif(not SCHEMAS.is_dir(), reason=f"chart schemas not found in {SCHEMAS}")


def merge(base, override):
    """Deep-merge like helm: mappings merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load(name):
    return yaml.safe_load((K8S / name).read_text())


@needs_schemas
@pytest.mark.parametrize("values", sorted(CHARTS))
def test_merged_values_match_the_chart_schema(values):
    schema_file, defaults_file = CHARTS[values]
    schema = yaml.safe_load((SCHEMAS / schema_file).read_text())
    merged = merge(yaml.safe_load((SCHEMAS / defaults_file).read_text()), load(values))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(merged), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors[:5])


@needs_schemas
def test_schema_catches_a_typo():
    # The check has teeth: a misspelt key is rejected by the z2jh schema.
    schema_file, defaults_file = CHARTS["jupyterhub-values.yaml"]
    schema = yaml.safe_load((SCHEMAS / schema_file).read_text())
    merged = merge(yaml.safe_load((SCHEMAS / defaults_file).read_text()), {"singleuser": {"extraEnvv": {"A": "b"}}})
    assert list(jsonschema.Draft7Validator(schema).iter_errors(merged))


def _check_traits(config):
    """Every section.key in a traitlets Config must be a configurable trait of a known class."""
    from dask_gateway_server.backends.kubernetes.backend import KubeBackend, KubeClusterConfig
    from jupyterhub.app import JupyterHub
    from kubespawner import KubeSpawner
    from oauthenticator.generic import GenericOAuthenticator

    classes = {cls.__name__: cls for cls in (KubeSpawner, JupyterHub, GenericOAuthenticator, KubeBackend,
                                             KubeClusterConfig)}
    classes["Backend"] = KubeBackend
    classes["Authenticator"] = GenericOAuthenticator
    for section, values in config.items():
        cls = classes[section]
        for key in values:
            assert cls.class_traits(config=True).get(key) is not None, f"{section}.{key} is not a trait"


def test_hub_extra_config_loads_and_sets_real_traits():
    from traitlets.config import Config

    values = load("jupyterhub-values.yaml")
    c = Config()
    for name, code in values["hub"]["extraConfig"].items():
        exec(compile(code, f"hub.extraConfig.{name}", "exec"), {"c": c})
    assert "access:services!service=dask-gateway" in c.KubeSpawner.server_token_scopes
    # The user's access token reaches their server (and only a login's token, replacing an older one).
    assert values["hub"]["config"]["Authenticator"]["enable_auth_state"] is True

    class Spawner:
        environment = {"EOLAB_OIDC_ACCESS_TOKEN": "old", "EOLAB_CATALOG_URL": "u"}

    spawner = Spawner()
    c.KubeSpawner.auth_state_hook(spawner, {"access_token": "t"})
    assert spawner.environment == {"EOLAB_OIDC_ACCESS_TOKEN": "t", "EOLAB_CATALOG_URL": "u",
                                   "EOLAB_OIDC_ISSUER": "https://aai.egi.eu/auth/realms/egi"}
    c.KubeSpawner.auth_state_hook(spawner, None)
    assert spawner.environment == {"EOLAB_CATALOG_URL": "u"}
    _check_traits(c)
    _check_traits(Config(values["hub"]["config"]))


def test_gateway_extra_config_loads_and_options_validate():
    from traitlets.config import Config

    values = load("dask-gateway-values.yaml")
    c = Config()
    for name, code in values["gateway"]["extraConfig"].items():
        exec(compile(code, f"gateway.extraConfig.{name}", "exec"), {"c": c})
    _check_traits(c)
    options = c.Backend.cluster_options
    parsed = options.parse_options({"worker_cores": 2, "worker_memory": 3.0, "idle_timeout_minutes": 10})
    config = options.get_configuration(parsed, user=None)
    assert config["worker_memory"] == 3 * 2**30 and config["idle_timeout"] == 600.0
    with pytest.raises(ValueError, match="worker_cores"):
        options.parse_options({"worker_cores": 3})


def test_same_scopes_and_environment_as_the_single_host_hub():
    values = load("jupyterhub-values.yaml")
    gateway = load("dask-gateway-values.yaml")
    env = values["singleuser"]["extraEnv"]
    assert env["DASK_GATEWAY__AUTH__TYPE"] == "jupyterhub"
    assert env["DASK_GATEWAY__ADDRESS"].endswith(gateway["gateway"]["prefix"])
    assert gateway["gateway"]["auth"]["jupyterhub"]["jupyterhubServiceName"] in values["hub"]["services"]
    single_host = (ROOT / "hub_config" / "jupyterhub_config.py").read_text()
    for scope in values["hub"]["loadRoles"]["user"]["scopes"][1:]:
        assert scope.split("=")[1] in single_host
