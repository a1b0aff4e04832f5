"""Which URLs the tile service may read: a pure decision, with the name resolver passed in.

The service fetches what users name (item URLs, COG hrefs), so it must not become a way into the
machine or its network: local files and GDAL virtual paths never; the stack's own services and the
configured hosts (trusted URL prefixes) always; anything else only when every address its host
resolves to is a public one — never loopback, link-local (cloud metadata), private, multicast or
reserved addresses.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

Resolver = Callable[[str, int], Iterable[str]]


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (what the service would connect to)."""
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)})


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback)


def origin(url: str) -> str:
    """scheme://host[:port] of a URL, lower-cased, the scheme's default port left out, IPv6 in brackets."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    default = {"http": 80, "https": 443}.get(scheme)
    try:
        port = parts.port
    except ValueError:
        return url
    host = (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


def normal(url: str) -> str:
    """``url`` with its origin written as :func:`origin` writes it (what an HTTP client sends on:
    ``http://Host:80/x`` and ``http://host/x`` are one URL)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc or parts.username or parts.password:
        return url
    rest = url[len(parts.scheme) + 3 + len(parts.netloc):]
    return origin(url) + rest


def _under(url: str, prefix: str) -> bool:
    """``url`` lies under ``prefix`` (``http://h:8710`` covers ``http://h:8710/x``, not ``http://h:87100``),
    both compared with their origins normalised."""
    url, prefix = normal(url), normal(prefix)
    if not url.startswith(prefix):
        return False
    return prefix.endswith("/") or len(url) == len(prefix) or url[len(prefix)] in "/?#"


def refusal(url: str, trusted: Iterable[str] = (), *, allow_public: bool = True,
            resolver: Resolver = resolve) -> str | None:
    """Why the service may not read ``url`` (None: it may); a URL that does not parse is refused."""
    try:
        return _refusal(url, trusted, allow_public=allow_public, resolver=resolver)
    except ValueError as exc:  # urlsplit on 'http://[zz]/', a port out of range ...
        return f"{url[:200]!r} is not a valid URL ({exc})"


def _refusal(url: str, trusted: Iterable[str] = (), *, allow_public: bool = True,
             resolver: Resolver = resolve) -> str | None:
    """Why the service may not read ``url`` (None: it may).

    trusted: URL prefixes always allowed (the stack's asset server, members, broker; hosts an
    operator configured). allow_public: other hosts are allowed when all their addresses are public.
    """
    if not url.lower().startswith(("http://", "https://")):
        return f"the tile service reads http(s) URLs only, not {url!r}"
    if any(_under(url, prefix) for prefix in trusted if prefix):
        return None
    parts = urlsplit(url)
    if parts.username or parts.password:
        return f"the tile service does not send credentials in URLs ({parts.hostname})"
    if not allow_public:
        return f"{url} may not be read: not a catalogue or configured host"
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = list(resolver(host, port))
    except (OSError, ValueError) as exc:
        return f"the tile service cannot resolve {host!r} ({exc})"
    if not addresses:
        return f"the tile service cannot resolve {host!r}"
    inner = [a for a in addresses if not _public(a)]
    if inner:
        return (f"{url} may not be read: {host} is a local, private or link-local address "
                f"({', '.join(inner[:3])}), not a catalogue host")
    return None
