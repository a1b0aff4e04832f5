"""Every ``EOLAB_*`` environment variable eolab reads, as typed pydantic-settings models.

No other module reads ``os.environ`` for an ``EOLAB_`` value: it asks one of these models (built
anew whenever an ``EOLAB_`` variable changed, so a test's monkeypatch or a hub-set variable counts).
The hub's own knobs (``EOLAB_HUB_*``) live in :mod:`eolab.hub.settings`.

| model | read by | variables |
|---|---|---|
| :class:`ClientSettings` | kernels, notebooks, the CLI | ``EOLAB_CATALOG_URL``, ``EOLAB_TILES_URL``, ``EOLAB_WORKSPACE_URL``, ... |
| :class:`StackSettings` | ``eolab up``/``catalog up`` | ``EOLAB_RUN_DIR``, ``EOLAB_DATA_DIR``, ``EOLAB_PORT_OFFSET``, ... |
| :class:`ServiceSettings` | the stack's server processes | ``EOLAB_ASSETS_DIR``, ``EOLAB_TILES_BASE_DIR``, ... |
| :class:`AccessSettings` | processes reading assets | ``EOLAB_BEARER_TOKENS``, ``EOLAB_S3_CREDENTIALS``, ... |
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from eolab.errors import EolabError

_CHECKOUT = Path(__file__).resolve().parents[2]  # the source tree, if the package runs from one
_CONFIG = SettingsConfigDict(env_prefix="EOLAB_", extra="ignore", env_ignore_empty=True)


class ClientSettings(BaseSettings):
    """What a kernel needs to find the services (the hub sets these in every user's environment)."""

    model_config = _CONFIG

    catalog_url: str | None = Field(None, description="the federated catalogue (broker) or any STAC API")
    tiles_url: str | None = Field(None, description="the tile service, as this process reaches it")
    tiles_browser_url: str | None = Field(None, description="the tile service as browsers reach it (the hub: "
                                                             "its login-checked /services/tiles); default tiles_url")
    tiles_pass_url: str | None = Field(None, description="where a hub kernel gets the pass its maps' tile URLs "
                                                         "carry through the hub (eolab.tiles._pass)")
    workspace_url: str | None = Field(None, description="the writable workspace member (publishing)")
    assets_url: str | None = Field(None, description="the stack's asset server (demo COGs); reads of it carry "
                                                     "the service token")
    workspace_token: str | None = Field(None, repr=False, description="bearer token for direct writes to the workspace")
    service_token: str | None = Field(None, repr=False, description="read token of the stack's internal services, sent to "
                                                        "loopback URLs only (the hub sets it for its users)")
    results_catalog: Path | None = Field(None, description="the per-user static catalogue of results")
    templates_dir: Path | None = Field(None, description="where the template workflows are")
    hub_config_dir: Path | None = Field(None, description="the hub's traitlets config files (hub_config/)")
    compute_backend: str | None = Field(None, description="eolab.compute: gateway, slurm or local")
    orphan_timeout: float = Field(0.0, description="scheduler preload: stop the cluster this long after "
                                                   "its last client left, s (0: never)")
    hub_id: str = Field("local", description="marks every process of one hub (found and stopped by down)")
    hub_public_url: str | None = Field(None, description="the hub's public URL (dashboard links)")
    usage_url: str | None = Field(None, description="the hub's usage endpoint (default: from $JUPYTERHUB_API_URL)")
    metered: bool = Field(False, description="reads go through the hub's byte meter (GDAL_HTTP_PROXY): "
                                             "nothing to report (eolab.usage._meter)")
    dashboard_key: str | None = Field(None, repr=False, description="a gateway cluster's dashboard key (its preload refuses "
                                                        "requests without it; eolab.compute._dashboard)")
    slurm_partition: str | None = None
    slurm_walltime: str = "01:00:00"
    slurm_interface: str = "lo"
    slurm_log_dir: str | None = None
    claims_schema_dir: Path | None = Field(None, description="extra national claims schemas (YAML files)")
    map_assets_dir: Path | None = Field(None, description="the country map's front-end files (parquet-wasm, "
                                                          "geoarrow-js; default hub_config/node_modules)")


class StackSettings(BaseSettings):
    """Overrides of the stack configuration file (``eolab up``, ``eolab catalog up``)."""

    model_config = _CONFIG

    catalog_config: Path | None = Field(None, description="the stack's YAML configuration file")
    run_dir: str | None = None
    data_dir: str | None = None
    demo_size: str | None = None
    port_offset: int = Field(0, description="added to every port of the stack and the hub")
    postgres_bindir: Path | None = Field(None, description="PostgreSQL's bin directory (initdb, pg_ctl)")
    lookalikes: bool = Field(False, description="enable the provider look-alike demo members")


class ServiceSettings(BaseSettings):
    """Values the stack hands its server processes through their environment."""

    model_config = _CONFIG

    assets_dir: Path | None = Field(None, description="the asset server's root directory")
    tiles_base_dir: Path | None = Field(None, description="demo data directory for the offline base layer")
    tiles_allow: str | None = Field(None, description="comma-separated URL prefixes the tile service always reads")
    tiles_public: bool = Field(True, description="the tile service may read other hosts whose addresses are all "
                                                 "public (never loopback, link-local or private ones)")
    workspace_token: str | None = Field(None, repr=False, description="the workspace member's write token")
    service_token: str | None = Field(None, repr=False, description="token other accounts must send to members and the broker")
    pg_host: str = Field("127.0.0.1", description="a member's PostgreSQL host")
    pg_port: int = Field(5433, description="a member's PostgreSQL port")
    pg_database: str | None = Field(None, description="a member's pgstac database")
    pg_user: str | None = Field(None, description="a member's PostgreSQL role (read-only for demo members)")
    pg_password_file: Path | None = Field(None, description="file holding that role's password (0600)")
    broker_token_secret: str | None = Field(None, repr=False, description="HMAC key of the broker's paging tokens")
    broker_page_cache_ttl: float | None = None
    broker_info_ttl: float | None = None
    broker_max_searches: int | None = Field(None, ge=1, description="searches one broker process works on at once")
    fake_member: str = Field("{}", description="JSON spec of a fault-kit member (eolab.testing.faults)")
    lookalike_sas_lifetime: float = Field(0.0, ge=0, description="look-alike asset server: SAS token lifetime, "
                                                                 "s (0: no token needed)")
    lookalike_max_connections: int = Field(0, ge=0, description="look-alike asset server: requests in flight "
                                                                "before it answers 429 (0: no cap)")
    lookalike_latency_ms: float = Field(0.0, ge=0, description="look-alike asset server: delay of each answer, ms")
    lookalike_oidc_issuer: str | None = Field(None, description="S3 look-alike: the identity provider whose access "
                                                                "tokens its keys service accepts")
    lookalike_s3_key_lifetime: float = Field(30 * 86400.0, gt=0, description="S3 look-alike: minted keys expire "
                                                                             "after this long, s")
    lookalike_s3_files: Path | None = Field(None, description="S3 look-alike: file listing the paths (relative to "
                                                              "the assets directory) to put into its bucket")
    lookalike_s3_bucket: str = Field("eodata", description="S3 look-alike: its bucket")

    @property
    def tiles_allow_list(self) -> list[str] | None:
        if not self.tiles_allow:
            return None
        return [p.strip() for p in self.tiles_allow.split(",") if p.strip()]


class AccessSettings(BaseSettings):
    """Credentials for reading assets of real providers, read where the read happens (a kernel or a
    Dask worker), never carried in a task graph. Per-provider values are JSON objects keyed by
    member id, e.g. ``EOLAB_BEARER_TOKENS='{"cdse": "eyJ..."}'``."""

    model_config = _CONFIG

    # repr=False: a printed settings object (a notebook cell, a log line) shows no secret
    bearer_tokens: dict[str, str] = Field(default_factory=dict, repr=False, description="member id -> bearer token")
    s3_credentials: dict[str, dict[str, str]] = Field(
        default_factory=dict, repr=False,
        description="member id -> {access_key_id, secret_access_key[, session_token]}")
    oidc_access_token: str | None = Field(None, repr=False,
                                          description="the user's OIDC access token (from the hub's OIDC "
                                                      "login): S3 keys are minted with it where a member's "
                                                      "profile names an s3_keys_url")
    oidc_issuer: str | None = Field(None, description="the identity provider that issued oidc_access_token (set "
                                                      "by the hub): it is sent only to keys services of that issuer")
    oidc_token_expires_at: float | None = Field(None, description="when oidc_access_token expires (Unix time, set by "
                                                                  "the hub): a fresh one is then asked of the hub")
    s3_keys_file: Path = Field(Path("~/.config/eolab/s3-keys.json"), description="minted S3 keys, kept for "
                               "every process of the user (mode 0600)")
    sas_subscription_key: str | None = Field(None, repr=False, description="Planetary Computer subscription key "
                                                                           "(raises the token endpoint's rate limit)")
    sas_refresh_margin: float = Field(300.0, ge=0, description="renew a SAS token this long before it expires, s "
                                                               "(at most a third of its lifetime)")
    read_retries: int | None = Field(None, ge=0, description="reads answered 429/503 retried this often "
                                                            "(default: the member profile's)")
    retry_backoff: float = Field(0.5, ge=0, description="first wait before a retry, s (doubles each time; "
                                                       "each wait drawn at random up to that)")
    retry_backoff_max: float = Field(10.0, ge=0, description="longest wait before a retry, s")
    retry_after_max: float = Field(60.0, ge=0, description="longest Retry-After of a provider waited for, s (a "
                                                           "longer one is waited this long)")
    read_stall_timeout: float = Field(60.0, gt=0, description="a read whose store sends nothing for this long, s, "
                                                              "is given up on")
    # 64/32 over 32/16: at 30 ms per request a 2-thread load of the small demo took 3.6–3.9 s instead
    # of 4.7–5.8 s, at 0 ms no change (three side-by-side pairs, 2026-12-07)
    read_threads: int = Field(64, ge=0, description="reads of remote assets in flight per process, beyond the "
                                                    "Dask threads (hides a far-away store's latency; 0: none)")
    read_ahead: int = Field(32, ge=0, description="reads started before their Dask task runs, in graph order")


_client_cache: dict = {}
_cache_lock = threading.Lock()


def _env_key() -> tuple:
    data = getattr(os.environ, "_data", None)
    if isinstance(data, dict) and all(isinstance(k, bytes) for k in list(data)[:1]):
        # POSIX keeps the environment as bytes: compare those, not every variable decoded on each
        # call (asked ~10 times per asset read). Another order of the same values only misses the cache;
        # lower-case names count too (pydantic-settings reads them).
        return tuple([item for item in list(data.items()) if item[0][:6].upper() == b"EOLAB_"])
    return tuple(sorted((k, v) for k, v in os.environ.items() if k[:6].upper() == "EOLAB_"))


def client() -> ClientSettings:
    # Asked twice per asset read (service access, byte meter): built anew only when an EOLAB_
    # variable changed; building it costs ~3 ms, as much as decoding a small tile.
    key = _env_key()
    cached = _client_cache.get(key)
    if cached is None:
        cached = ClientSettings()
        with _cache_lock:  # read threads ask at once
            _client_cache[key] = cached
            while len(_client_cache) > 8:
                _client_cache.pop(next(iter(_client_cache)))
    return cached.model_copy()


def stack() -> StackSettings:
    try:
        return StackSettings()
    except ValueError as exc:  # pydantic's ValidationError names the variable
        problem = _problem(exc)
    raise EolabError(f"bad EOLAB_ setting: {problem}", hint="fix or unset the variable named")


def services() -> ServiceSettings:
    return ServiceSettings()


def hub_config_dir() -> Path:
    """The hub's traitlets files: ``$EOLAB_HUB_CONFIG_DIR``, else ``hub_config/`` of the checkout."""
    from eolab.errors import ServiceError

    configured = client().hub_config_dir
    if configured:
        path = Path(configured).expanduser().resolve()
        if not (path / "jupyterhub_config.py").is_file():
            raise ServiceError(f"EOLAB_HUB_CONFIG_DIR={configured} holds no jupyterhub_config.py",
                               hint="point it at the hub_config/ folder of an eolab checkout")
        return path
    checkout = _CHECKOUT / "hub_config"
    if (checkout / "jupyterhub_config.py").is_file():
        return checkout
    raise ServiceError("the hub's configuration files (hub_config/) were not found",
                       hint="set EOLAB_HUB_CONFIG_DIR to the hub_config/ folder of an eolab checkout")


_access_cache: dict = {}


def access() -> AccessSettings:
    # Asked on every asset read (several times): built anew only when an EOLAB_ variable changed,
    # since building the model costs more than a read from a near store.
    key = _env_key()
    cached = _access_cache.get(key)
    if cached is not None:
        return cached
    try:
        value = AccessSettings()
        with _cache_lock:
            _access_cache[key] = value
            while len(_access_cache) > 8:
                _access_cache.pop(next(iter(_access_cache)))
        return value
    except ValueError as exc:
        problem = _problem(exc)
    # raised here, not in the except: pydantic's error (which quotes the value) is not its context
    raise EolabError(f"bad EOLAB_ credential setting: {problem}",
                     hint="EOLAB_BEARER_TOKENS and EOLAB_S3_CREDENTIALS are JSON objects keyed by member id")


def _problem(exc: ValueError) -> str:
    """Where and what of a settings error, never the value given (pydantic quotes it: it may be a
    secret). Of a key path, the field and the type of mistake only: a key may be a secret too."""
    errors = exc.errors() if hasattr(exc, "errors") else []
    said = "; ".join(f"{e.get('loc', ('?',))[0]}: {e.get('msg', '')}" for e in errors[:3])
    return said or str(exc).splitlines()[0][:200]  # pydantic-settings' parse errors name the field only


def required(value, what: str, variable: str, hint: str | None = None):
    """``value`` unless it is empty; else an EolabError naming the parameter and the variable."""
    if value:
        return value
    raise EolabError(f"no {what} given", hint=hint or f"pass it or set {variable}")
