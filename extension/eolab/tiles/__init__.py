"""Quicklook tiles: URL templates for map layers, and the tile service that renders them.

Importing this package needs neither titiler nor FastAPI; the app lives in :mod:`eolab.tiles.app`.
The service runs next to the catalogue (``tile_service(config)``), started by eolab or by the hub.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from eolab.tiles._render import STYLES

__all__ = ["STYLES", "DEFAULT_PORT", "tiles_url", "browser_url", "map_pass", "request_headers", "item_tiles",
           "asset_tiles", "base_tiles", "panel_cdn_root", "serve", "tile_service"]

DEFAULT_PORT = 8730


def tiles_url(url: str | None = None) -> str:
    """The tile service: ``url``, else ``$EOLAB_TILES_URL``."""
    from eolab import settings

    url = settings.required(url or settings.client().tiles_url, "tile service URL", "EOLAB_TILES_URL",
                            hint="pass tiles_url or set EOLAB_TILES_URL (eolab up starts one)")
    return url.rstrip("/")


def browser_url(url: str | None = None) -> str:
    """Where browsers fetch tiles and Panel's files: ``url``, else ``$EOLAB_TILES_BROWSER_URL``, else
    :func:`tiles_url`. On the hub that is ``/services/tiles`` (its login decides), while the kernel
    talks to the service itself with the service token."""
    from eolab import settings

    if url:
        return url.rstrip("/")
    return (settings.client().tiles_browser_url or tiles_url()).rstrip("/")


_pass_cache: dict[str, tuple[str, float]] = {}
_pass_lock = threading.Lock()  # maps built at once in threads ask the gate once


def map_pass(url: str | None = None) -> dict[str, str]:
    """The query parameter a browser's tile requests carry through the hub's gate (empty when maps
    talk to a tile service directly): one pass per kernel from ``$EOLAB_TILES_PASS_URL``, asked with
    the kernel's hub token and kept until a day before it expires (see :mod:`eolab.tiles._pass`)."""
    import os
    import time
    import warnings

    from eolab import settings
    from eolab.tiles import _pass

    conf = settings.client()
    endpoint, token = conf.tiles_pass_url, os.environ.get("JUPYTERHUB_API_TOKEN")
    if url or not conf.tiles_browser_url or not endpoint or not token:
        return {}
    with _pass_lock:
        cached = _pass_cache.get(endpoint)
        if cached and cached[1] > time.time() + 24 * 3600:
            return {_pass.PARAM: cached[0]}
        import httpx

        try:
            response = httpx.get(endpoint, headers={"Authorization": f"token {token}"}, timeout=10)
            response.raise_for_status()
            value = response.json()["pass"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            warnings.warn(f"the hub's tile gate gave no map pass ({exc}); map tiles will not load. "
                          "Restart your server if this persists.", stacklevel=3)
            return {}
        _pass_cache[endpoint] = (value, time.time() + _pass.LIFETIME)
        return {_pass.PARAM: value}


def request_headers(url: str) -> dict[str, str]:
    """Headers for this process's own requests to the tile service: the stack's service token, to
    loopback addresses only (the service answers other accounts with it only)."""
    from eolab._guard import service_headers

    return service_headers(url)


def _self_href(item: Any) -> str | None:
    if hasattr(item, "get_single_link"):
        link = item.get_single_link("self")
        return link.href if link else None
    for link in item.get("links", []):
        if link.get("rel") == "self":
            return link["href"]
    return None


def item_tiles(item: Any, style: str = "truecolor", url: str | None = None) -> str:
    """A ``{z}/{x}/{y}`` URL template rendering ``item`` (STAC dict, pystac Item or item URL) in ``style``.

    Items with a ``self`` link are rendered by URL (the service reads scale/offset from the item);
    others by their asset hrefs.
    """
    from eolab.tiles._render import band_sources
    from eolab.tiles._render import style as get_style

    the_style = get_style(style)
    base = browser_url(url)
    if isinstance(item, str):
        return f"{base}/item/{{z}}/{{x}}/{{y}}.png?" + urlencode({"url": item, "style": style, **map_pass(url)})
    href = _self_href(item)
    if href:
        return f"{base}/item/{{z}}/{{x}}/{{y}}.png?" + urlencode({"url": href, "style": style, **map_pass(url)})
    data = item.to_dict() if hasattr(item, "to_dict") else item
    sources = band_sources(data, the_style.bands)
    scale, offset, nodata = next(iter(sources.values()))[1:]
    return asset_tiles({n: src[0] for n, src in sources.items()}, style, url=url, scale=scale, offset=offset,
                       nodata=nodata)


def asset_tiles(hrefs: dict[str, str], style: str = "truecolor", url: str | None = None, *, scale: float = 1.0,
                offset: float = 0.0, nodata: float | None = None) -> str:
    """A URL template rendering COG hrefs given by common name (``{"nir": ..., "red": ...}``)."""
    from eolab.tiles._render import style as get_style

    get_style(style)
    params = {"style": style, **hrefs, "scale": scale, "offset": offset, **map_pass(url)}
    if nodata is not None:
        params["nodata"] = nodata
    return f"{browser_url(url)}/assets/{{z}}/{{x}}/{{y}}.png?" + urlencode(params)


def panel_cdn_root(url: str | None = None) -> str:
    """What ``PANEL_CDN_ROOT`` should be so notebook plots load Panel's files from the tile service."""
    return f"{browser_url(url)}/static/panel/"


def base_tiles(url: str | None = None) -> str:
    """The offline base layer (demo area, true colour)."""
    query = urlencode(map_pass(url))
    return f"{browser_url(url)}/base/{{z}}/{{x}}/{{y}}.png" + (f"?{query}" if query else "")


def trusted_prefixes(config) -> list[str]:
    """URL prefixes the stack's tile service always reads: the asset server, the broker, every member
    (also remote ones, for their items) and the hosts ``tiles.allow`` of the configuration names."""
    members = [config.member_url(m) for m in config.members if m.enabled]
    return [config.assets_url, config.broker_url, *members, *getattr(config.tiles, "allow", [])]


def service_env(config) -> dict[str, str]:
    """The tile service's environment for a stack: its base layer, what it may read, and the service
    token other accounts must send (read from the stack's run directory when this process may)."""
    from eolab import _guard

    env = {"EOLAB_TILES_BASE_DIR": str(Path(config.data_dir).resolve()),
           "EOLAB_TILES_ALLOW": ",".join(trusted_prefixes(config))}
    token = _guard.read_secret(_guard.token_file(config.run_dir))
    if token:
        env["EOLAB_SERVICE_TOKEN"] = token
    return env


def _service(host: str, port: int, env: dict[str, str], name: str = "tiles"):
    from eolab import _services

    cmd = [sys.executable, "-m", "uvicorn", "eolab.tiles.app:create_app", "--factory", "--host", host,
           "--port", str(port), "--log-level", "warning", "--no-access-log",
           # The guard reads the real peer (a forged X-Forwarded-For must not replace it).
           "--no-proxy-headers"]
    return _services.Service(name=name, cmd=cmd, port=port, env=env, ready_path="/_health", host=host)


def tile_service(config, port: int | None = None):
    """The tile service of a stack as an :class:`eolab._services.Service` (start with ``_services.start``).

    Port: ``port``, else ``config.tiles.port`` when the configuration has a ``tiles`` section, else
    8730 shifted like the broker's port (so ``EOLAB_PORT_OFFSET`` moves it too). The base layer is
    rendered from ``config.data_dir``; item hrefs may point anywhere the service can reach.
    """
    if port is None:
        section = getattr(config, "tiles", None)
        port = getattr(section, "port", None) or (DEFAULT_PORT + config.broker.port - 8720)
    return _service(config.host, port, service_env(config))


def serve(run_dir, data_dir=None, port: int | None = None, name: str = "tiles", timeout: float = 60.0,
          allow: list[str] | None = None):
    """Start a tile service in the background (PID file and log under ``run_dir``); returns its Service.

    Stop it with ``eolab._services.stop(run_dir, name)``. ``port=None`` picks a free port. ``allow``:
    URL prefixes it may always read (others only on public addresses).
    """
    from eolab import _services

    if port is None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
    env = {"EOLAB_TILES_BASE_DIR": str(Path(data_dir).resolve())} if data_dir else {}
    if allow:
        env["EOLAB_TILES_ALLOW"] = ",".join(allow)
    service = _service("127.0.0.1", port, env, name=name)
    _services.start(Path(run_dir), service, timeout=timeout)
    return service
