"""The stack configuration: where eolab runs, on which ports, and which catalogue members exist.

One YAML file (``hub_config/catalog.yaml`` in a deployment, the packaged
``default-catalog.yaml`` otherwise) describes every member provider. Local members
are served here by pgstac: demo members hold the generated demo data, a writable
member (``writable: true``, the ``workspace``) accepts STAC Transactions and holds
the results users publish. Remote members are real STAC APIs given by URL.

Environment overrides (for tests and for running two stacks side by side):
``EOLAB_CATALOG_CONFIG`` (file), ``EOLAB_RUN_DIR``, ``EOLAB_DATA_DIR``,
``EOLAB_PORT_OFFSET`` (added to every local port).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from eolab.errors import ConfigError

DEFAULT_CONFIG = Path(__file__).with_name("default-catalog.yaml")
LOOPBACK = "127.0.0.1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DateWindow(_Strict):
    """Which acquisition dates of a demo collection a member holds (inclusive, open ends allowed)."""

    start: dt.date | None = None
    end: dt.date | None = None

    def contains(self, day: dt.date) -> bool:
        return (self.start is None or day >= self.start) and (self.end is None or day <= self.end)


class ProviderProfile(_Strict):
    """How a member's items name bands, scale values and are read, where the items do not say.

    Items' own metadata (``eo:bands``/``bands`` common names, ``raster:bands``/``raster:scale``)
    always wins; the profile fills what is missing (see :mod:`eolab.data.profiles`).
    """

    bands: dict[str, str] = Field(default_factory=dict, description="name -> asset key, e.g. {red: B04}")
    scale: float | None = Field(default=None, description="DN -> physical units for bands without raster metadata")
    offset: float | None = Field(default=None, description="added after scaling (None: see s2_baseline_offset)")
    s2_baseline_offset: bool = Field(default=True, description="Sentinel-2 L2A: -0.1 from baseline 04.00 on")
    mask: str | None = Field(default=None, description="asset key of the cloud/quality mask")
    access: Literal["public", "sas", "s3", "bearer"] = Field(
        default="public", description="how assets are read: public https, a SAS token, S3 credentials, a bearer token")
    token_url: str | None = Field(default=None, description="access 'sas': the token endpoint (a collection's "
                                                             "token is GET {token_url}/{collection})")
    s3_endpoint: str | None = Field(default=None, description="access 's3': host[:port] of the S3 endpoint")
    s3_https: bool = Field(default=True, description="access 's3': https to the endpoint")
    s3_keys_url: str | None = Field(default=None, description="access 's3': where keys are minted with the "
                                    "user's OIDC access token when none are set (CDSE's S3 keys manager)")
    s3_keys_issuer: str | None = Field(default=None, description="access 's3': the identity provider whose access "
                                       "tokens s3_keys_url accepts (a token of another is never sent there)")
    requester_pays: bool = False
    max_connections: int | None = Field(default=None, ge=1, description="the provider's cap on concurrent reads")
    rate_mb_s: float | None = Field(default=None, gt=0, description="the provider's bandwidth per user, MB/s")
    monthly_quota_gb: float | None = Field(default=None, gt=0, description="the provider's monthly transfer quota")
    retries: int = Field(default=5, ge=0, description="reads answered 429/503 are retried this often")


class MemberConfig(_Strict):
    """One provider of the federation."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="prefix of collection ids: 'ID|collection'")
    title: str = ""
    enabled: bool = True
    # Demo members: a pgstac STAC API served here on this port, holding these demo collections.
    port: int | None = Field(default=None, ge=1, le=65535)
    collections: dict[str, DateWindow] = Field(default_factory=dict)
    number_matched: bool = Field(default=False, description="demo member reports numberMatched (pgstac context)")
    # Remote members: a real STAC API.
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, description="e.g. an Authorization header")
    get_only: bool = Field(default=False, description="the API does not accept POST /search")
    signing: str | None = Field(default=None, description="'module:function' that signs each request (e.g. SAS tokens)")
    timeout: float | None = Field(default=None, gt=0, description="per-request time budget in s (default: broker's)")
    profile: ProviderProfile = Field(default_factory=ProviderProfile,
                                     description="band names, scaling and access of its items")
    # Look-alike members: demo data in a real provider's conventions (eolab.stack._lookalike_items),
    # assets on their own look-alike asset server (SAS tokens, connection cap) when asset_port is set.
    lookalike: Literal["earth-search", "planetary-computer", "cdse", "landsat"] | None = None
    asset_port: int | None = Field(default=None, ge=1, le=65535, description="its own asset server")
    sas_lifetime: float = Field(default=0.0, ge=0, description="SAS tokens of its asset server live this long, "
                                                               "s (0: no token needed)")
    asset_latency_ms: float = Field(default=0.0, ge=0, description="its asset server answers after this delay")
    asset_store: Literal["http", "s3"] = Field(default="http", description="'s3': its assets live in bucket "
                                               "'eodata' of an S3 look-alike on asset_port (signed requests, keys "
                                               "minted from an OIDC login at oidc_issuer)")
    oidc_issuer: str | None = Field(default=None, description="asset_store 's3': the identity provider whose "
                                                              "access tokens its keys service accepts")
    # Writable members: publishing POSTs results here (STAC Transactions); the broker only reads them.
    writable: bool = Field(default=False, description="accepts STAC Transactions: a local one starts empty, "
                                                      "with the extension on, and is never reloaded")

    @model_validator(mode="after")
    def _demo_or_remote(self) -> "MemberConfig":
        if (self.port is None) == (self.url is None):
            raise ValueError(f"member {self.id!r} needs exactly one of 'port' (demo member) or 'url' (remote member)")
        if self.port is not None and self.writable and self.collections:
            raise ValueError(f"writable member {self.id!r} holds published results, not demo 'collections'")
        if self.port is not None and not self.writable and not self.collections:
            raise ValueError(f"demo member {self.id!r} lists no 'collections'")
        if self.asset_store == "s3" and not self.asset_port:
            raise ValueError(f"member {self.id!r}: asset_store 's3' needs an asset_port for its S3 look-alike")
        if self.asset_store == "s3" and not self.oidc_issuer:
            raise ValueError(f"member {self.id!r}: asset_store 's3' mints keys from OIDC logins and needs "
                             "'oidc_issuer' (e.g. the local provider of hub_config/oidc)")
        return self

    @property
    def is_demo(self) -> bool:
        """Served here by ``eolab catalog up`` (demo data, or a writable workspace)."""
        return self.port is not None

    @property
    def is_workspace(self) -> bool:
        """A local member that starts empty and takes published results."""
        return self.port is not None and self.writable

    @property
    def database(self) -> str:
        """The PostgreSQL database of a demo member (one per provider)."""
        return f"eolab_{self.id.replace('-', '_')}"


class ServicePort(_Strict):
    port: int = Field(ge=1, le=65535)


class TilesConfig(ServicePort):
    allow: list[str] = Field(default_factory=list, description="URL prefixes the tile service may always read "
                             "besides the stack's own services (e.g. a provider's storage on a private network)")


class BrokerConfig(_Strict):
    """The federated catalogue broker: one STAC API over all enabled members."""

    port: int = Field(default=8720, ge=1, le=65535)
    member_timeout: float = Field(default=5.0, gt=0, description="time budget of one member request, s")
    total_timeout: float = Field(default=8.0, gt=0, description="time budget of one broker request, s")
    health_ttl: float = Field(default=30.0, ge=0, description="how long a failed member is skipped, s")
    member_concurrency: int = Field(default=8, ge=1, le=1000,
                                    description="requests sent to one member at once; more wait inside their budget")
    max_searches: int = Field(default=24, ge=1, le=10000,
                              description="searches one broker process works on at once; more wait at the door")
    max_queued: int = Field(default=96, ge=0, le=100000, description="searches that may wait at the door; "
                            "beyond that, or after total_timeout waiting, the broker answers 503 with Retry-After")
    page_cache_ttl: float = Field(default=30.0, ge=0, description="member pages kept for continuing walks, s (0: off)")
    info_ttl: float = Field(default=60.0, ge=0, description="member conformance/collections kept, s")
    token_secret: str | None = Field(default=None, description="HMAC key for paging tokens (random if unset)")


class StackConfig(_Strict):
    """Everything ``eolab up`` / ``eolab catalog up`` needs."""

    host: str = LOOPBACK
    run_dir: Path = Path(".eolab")
    data_dir: Path = Path(".eolab/demo-data")
    demo_size: str = "default"
    postgres: ServicePort = ServicePort(port=5433)
    assets: ServicePort = ServicePort(port=8710)
    broker: BrokerConfig = BrokerConfig()
    tiles: TilesConfig = TilesConfig(port=8730)
    members: list[MemberConfig]

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, host: str) -> str:
        if host not in (LOOPBACK, "localhost"):
            raise ValueError(f"host {host!r}: eolab's local services bind to 127.0.0.1 only")
        return host

    @model_validator(mode="after")
    def _unique(self) -> "StackConfig":
        ids = [m.id for m in self.members]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"member ids must be unique, repeated: {', '.join(dupes)}")
        ports = [self.postgres.port, self.assets.port, self.broker.port, self.tiles.port] + [
            m.port for m in self.members if m.port] + [m.asset_port for m in self.members if m.asset_port]
        clashes = sorted({p for p in ports if ports.count(p) > 1})
        if clashes:
            raise ValueError(f"two services share port(s) {clashes}")
        return self

    @property
    def demo_members(self) -> list[MemberConfig]:
        """The enabled members served here (pgstac): demo data holders and writable workspaces."""
        return [m for m in self.members if m.enabled and m.is_demo]

    @property
    def writable_members(self) -> list[MemberConfig]:
        return [m for m in self.members if m.enabled and m.writable]

    @property
    def enabled_members(self) -> list[MemberConfig]:
        return [m for m in self.members if m.enabled]

    def member(self, member_id: str) -> MemberConfig:
        for m in self.members:
            if m.id == member_id:
                return m
        known = ", ".join(m.id for m in self.members)
        raise ConfigError(f"no member {member_id!r}", hint=f"members are: {known}")

    def member_url(self, member: MemberConfig) -> str:
        return member.url.rstrip("/") if member.url else f"http://{self.host}:{member.port}"

    @property
    def broker_url(self) -> str:
        return f"http://{self.host}:{self.broker.port}"

    @property
    def tiles_url(self) -> str:
        return f"http://{self.host}:{self.tiles.port}"

    @property
    def assets_url(self) -> str:
        return f"http://{self.host}:{self.assets.port}"

    def member_assets_url(self, member: MemberConfig) -> str:
        """Where a demo member's items point their assets: its own asset server (its S3 bucket for
        an S3 look-alike), or the shared one."""
        if member.asset_store == "s3":
            return "s3://eodata"
        return self.member_asset_server(member)

    def member_asset_server(self, member: MemberConfig) -> str:
        """The HTTP address of the server holding a demo member's assets."""
        return f"http://{self.host}:{member.asset_port}" if member.asset_port else self.assets_url

    def member_profile(self, member: MemberConfig) -> ProviderProfile:
        """The member's profile, with a look-alike's SAS token endpoint or S3 store filled in."""
        profile = member.profile
        if member.asset_port and member.sas_lifetime and profile.token_url is None:
            profile = profile.model_copy(update={"access": "sas",
                                                 "token_url": f"{self.member_asset_server(member)}/token"})
        if member.asset_store == "s3":
            profile = profile.model_copy(update={
                "access": "s3", "s3_endpoint": f"{self.host}:{member.asset_port}", "s3_https": False,
                "s3_keys_url": profile.s3_keys_url or f"{self.member_asset_server(member)}/_s3keys/credentials",
                "s3_keys_issuer": profile.s3_keys_issuer or member.oidc_issuer})
        return profile


def _with_offset(raw: dict[str, Any], offset: int) -> dict[str, Any]:
    for key in ("postgres", "assets", "broker", "tiles"):
        if isinstance(raw.get(key), dict) and "port" in raw[key]:
            raw[key]["port"] = int(raw[key]["port"]) + offset
    for member in raw.get("members") or []:
        for key in ("port", "asset_port"):
            if isinstance(member, dict) and member.get(key) is not None:
                member[key] = int(member[key]) + offset
    return raw


def load_config(path: str | os.PathLike | None = None, **overrides: Any) -> StackConfig:
    """Read the stack configuration, apply ``EOLAB_*`` environment overrides, then ``overrides``.

    Raises :class:`ConfigError` with the file and field named when anything is wrong.
    """
    from eolab import settings

    env = settings.stack()
    path = Path(path or env.catalog_config or DEFAULT_CONFIG)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist", hint="pass --config or set EOLAB_CATALOG_CONFIG")
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {path} is not valid YAML: {exc}".splitlines()[0])
    if not isinstance(raw, dict):
        raise ConfigError(f"configuration file {path} must hold a mapping at the top level")

    raw.update({k: v for k, v in {"run_dir": env.run_dir, "data_dir": env.data_dir,
                                  "demo_size": env.demo_size}.items() if v})
    raw.update({k: v for k, v in overrides.items() if v is not None and k != "port_offset"})
    if env.lookalikes:
        for member in raw.get("members") or []:
            if isinstance(member, dict) and member.get("lookalike"):
                member["enabled"] = True
    offset = overrides.get("port_offset")
    if offset is None:
        offset = env.port_offset
    try:
        offset = int(offset)
    except ValueError:
        raise ConfigError(f"port offset {offset!r} is not a whole number")
    def first_error(exc: ValidationError) -> tuple[str, dict]:
        first = exc.errors()[0]
        return ".".join(str(p) for p in first["loc"]) or "top level", first

    try:
        config = StackConfig.model_validate(raw)
    except ValidationError as exc:
        where, first = first_error(exc)
        raise ConfigError(f"{path}: {where}: {first['msg']}")
    if not offset:
        return config
    try:
        return StackConfig.model_validate(_with_offset(config.model_dump(), offset))
    except ValidationError as exc:  # the file was valid: the offset moved a port out of range
        where, first = first_error(exc)
        raise ConfigError(f"port offset {offset} makes {where} {first.get('input')!r}: {first['msg']}",
                          hint="choose a smaller offset (--port-offset or EOLAB_PORT_OFFSET)")
