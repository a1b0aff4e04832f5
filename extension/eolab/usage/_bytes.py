"""Bytes read from each provider by this process, as GDAL itself counted them.

GDAL keeps per-file network statistics (bytes downloaded by /vsicurl/, /vsis3/, ...) once
``CPL_VSIL_NETWORK_STATS_ENABLED`` is on. rasterio does not expose them, so they are read through
ctypes from the libgdal rasterio loaded (the same library, so the same counters). Each file is
attributed to a provider by its URL (registered by the reader driver of :func:`eolab.load_cube`
where it opens the file), else by its origin (``scheme://host``); :func:`take` returns what was read
since the last call.
"""

from __future__ import annotations

import ctypes
import glob
import json
import logging
import os
import threading
from urllib.parse import urlsplit

log = logging.getLogger("eolab.usage")

_lock = threading.Lock()
_owners: dict[str, str] = {}  # asset URL (no query) or scheme://host -> provider
_seen: dict[str, int] = {}  # GDAL file key -> bytes already taken
_lib = None
_enabled = False


def _gdal():
    """rasterio's libgdal, already loaded in this process (None if it cannot be found)."""
    global _lib
    if _lib is None:
        import rasterio

        here = os.path.dirname(rasterio.__file__)
        candidates = glob.glob(os.path.join(here, "..", "rasterio.libs", "libgdal*.so*")) or ["libgdal.so"]
        try:
            lib = ctypes.CDLL(candidates[0])
            lib.VSINetworkStatsGetAsSerializedJSON.restype = ctypes.c_void_p
            lib.VSINetworkStatsGetAsSerializedJSON.argtypes = [ctypes.c_void_p]
            lib.VSIFree.argtypes = [ctypes.c_void_p]
            lib.CPLSetConfigOption.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        except (OSError, AttributeError) as exc:  # a GDAL without network statistics (< 3.2)
            log.warning("bytes read cannot be counted: %s", exc)
            lib = False
        _lib = lib
    return _lib or None


_metered: set[str] = set()  # GDAL path prefixes given the meter's provider credentials


def _gdal_prefix(url: str) -> str | None:
    """The GDAL file name prefix reads of ``url``'s directory go by (None: not read over the network)."""
    url = url.split("?", 1)[0]
    base = url.rsplit("/", 1)[0] + "/" if url.count("/") > 2 else url.rstrip("/") + "/"
    for scheme, handler in (("s3://", "/vsis3/"), ("gs://", "/vsigs/"), ("az://", "/vsiaz/")):
        if base.startswith(scheme):
            return handler + base[len(scheme):]
    return "/vsicurl/" + base if base.startswith(("http://", "https://")) else None


def _name_for_meter(url: str, provider: str) -> None:
    """On the hub, the meter counts bytes (eolab.usage._meter): tell it the provider of ``url``'s
    directory in the proxy credentials, for that path only (a GDAL option per path prefix)."""
    from eolab.usage._meter import with_provider

    userpwd = os.environ.get("GDAL_HTTP_PROXYUSERPWD", "")
    prefix = _gdal_prefix(url)
    if not userpwd or prefix is None or prefix in _metered:
        return
    lib = _gdal()
    if lib is None or not hasattr(lib, "VSISetPathSpecificOption"):
        return
    lib.VSISetPathSpecificOption.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.VSISetPathSpecificOption(prefix.encode(), b"GDAL_HTTP_PROXYUSERPWD", with_provider(userpwd, provider).encode())
    _metered.add(prefix)


def metered() -> bool:
    """True in hub kernels and workers, whose reads the hub's meter counts (nothing to report)."""
    from eolab import settings

    return settings.client().metered


def track(url: str, provider: str) -> None:
    """Count reads of ``url`` (an asset, or a whole ``scheme://host``) as ``provider``'s."""
    global _enabled
    with _lock:
        if metered():
            _name_for_meter(url, provider)
            return
        _owners[url.split("?", 1)[0]] = provider
        if _enabled:
            return
        lib = _gdal()
        if lib is None:
            return
        lib.CPLSetConfigOption(b"CPL_VSIL_NETWORK_STATS_ENABLED", b"YES")
        lib.VSINetworkStatsReset()  # GDAL reads the option once; a reset makes it read it again
        _seen.clear()
        _enabled = True


def _owner(key: str) -> str | None:
    """The provider of a GDAL file key: '/vsicurl/https://host/path?sas', '/vsis3/bucket/key', ..."""
    url = None
    if key.startswith("/vsicurl/"):
        url = key[len("/vsicurl/"):]
    for handler, scheme in (("/vsis3/", "s3"), ("/vsigs/", "gs"), ("/vsiaz/", "az")):
        if key.startswith(handler):
            url = f"{scheme}://{key[len(handler):]}"
    if url is None:
        return None
    url = url.split("?", 1)[0]
    parts = urlsplit(url)
    return _owners.get(url) or _owners.get(f"{parts.scheme}://{parts.netloc}")


def _files(stats: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for handler in (stats.get("handlers") or {}).values():
        for key, file in (handler.get("files") or {}).items():
            n = sum(m.get("downloaded_bytes", 0) for m in (file.get("methods") or {}).values())
            out[key] = out.get(key, 0) + n
    return out


def take() -> dict[str, int]:
    """Bytes per provider read in this process since the last call (files of unknown origin: skipped)."""
    with _lock:
        if not _enabled:
            return {}
        lib = _gdal()
        pointer = lib.VSINetworkStatsGetAsSerializedJSON(None)
        try:
            stats = json.loads(ctypes.string_at(pointer).decode()) if pointer else {}
        finally:
            if pointer:
                lib.VSIFree(pointer)
        out: dict[str, int] = {}
        for key, total in _files(stats).items():
            new = total - _seen.get(key, 0)
            provider = _owner(key)
            if new > 0 and provider is not None:
                out[provider] = out.get(provider, 0) + new
                _seen[key] = total
        return out
