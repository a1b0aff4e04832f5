"""The hub's byte meter: users' data reads pass through it, and it counts them per user.

Kernels on the hub and their Dask workers read with GDAL, and the hub gives them
``GDAL_HTTP_PROXY`` (this proxy, on 127.0.0.1) and ``GDAL_HTTP_PROXYUSERPWD`` (``<user>:<key>``,
the key an HMAC of the user's name under a secret of the hub's account, so a user cannot pass as
another). The meter counts the bytes each answer carries (the body of plain http answers, the
whole stream of an https tunnel) under that user and writes them into the hub's ledger every few
seconds: what is recorded does not depend on the user's code reporting it.

Which provider the bytes count for: eolab's reader names it in the proxy user
(``<provider>/<user>``, set per asset URL, :func:`eolab.usage._bytes.track`), else the origin's
host name. The name only splits a user's bytes between providers; the total is the meter's own.
The meter reads what the tile service may read — public addresses and the stack's own asset
server — and refuses other local ports (it runs as the hub's account, which the stack's services
trust), link-local and private addresses, like :mod:`eolab.tiles._egress`, whose proxy it is.

User names holding ``:`` cannot be metered (curl splits the credentials at the first one): their
reads are refused with 407. Reads that do not go through GDAL (httpx, fsspec, ...) are not counted; a site that must count
every byte also denies users' processes direct access to the network (a firewall or Kubernetes
network policy), so GDAL_HTTP_PROXY is the only way out.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable
from urllib.parse import urlsplit

log = logging.getLogger("eolab.usage.meter")
FLUSH_EVERY = 5.0  # s
_PROVIDER = re.compile(r"[A-Za-z0-9._-]{1,64}")


def user_key(secret: str, user: str) -> str:
    return hmac.new(secret.encode(), b"eolab-meter\0" + user.encode(), hashlib.sha256).hexdigest()


def credentials(secret: str, user: str) -> str:
    """``GDAL_HTTP_PROXYUSERPWD`` for ``user``'s processes."""
    return f"{user}:{user_key(secret, user)}"


def with_provider(userpwd: str, provider: str) -> str:
    """The proxy credentials that also name the provider a read counts for."""
    return f"{provider.replace('/', '_').replace(':', '_')}/{userpwd}"


class Meter:
    """Who is asking (Proxy-Authorization) and the bytes counted per (user, provider)."""

    def __init__(self, secret: str):
        self._secret = secret
        self._lock = threading.Lock()
        self._counts: Counter = Counter()

    def who(self, lines: list[str]) -> tuple[str | None, str | None, str]:
        """(user, provider hint, refusal) from a request's header lines."""
        from eolab.tiles._egress import proxy_credentials

        found = proxy_credentials(lines)
        if found is None:
            return None, None, "the hub's meter needs the user's proxy credentials (GDAL_HTTP_PROXYUSERPWD)"
        name, key = found
        provider, _, user = name.rpartition("/")
        if not user or not hmac.compare_digest(key.encode(), user_key(self._secret, user).encode()):
            return None, None, "these proxy credentials are not this hub's for that user"
        # The provider name is the user's word: it only splits their own bytes, and is kept short.
        return user, provider if _PROVIDER.fullmatch(provider) else None, ""

    def counter(self, lines: list[str], url: str) -> tuple[Callable[[int], None] | None, str]:
        """(count(n) for this request's bytes, or None and why it is refused)."""
        user, provider, refusal = self.who(lines)
        if user is None:
            return None, refusal
        key = (user, provider or urlsplit(url).hostname or "unknown")

        def count(n: int) -> None:
            with self._lock:
                self._counts[key] += n

        return count, ""

    def take(self) -> dict[str, dict[str, int]]:
        """user -> provider -> bytes counted since the last call."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        out: dict[str, dict[str, int]] = {}
        for (user, provider), n in counts.items():
            if n > 0:
                out.setdefault(user, {})[provider] = n
        return out


def _flush(meter: Meter, ledger) -> None:
    for user, counts in meter.take().items():
        try:
            ledger.record_bytes(user, counts)
        except Exception:  # noqa: BLE001 - keep counting; the next flush tries again
            log.exception("could not write %s's bytes to the ledger", user)
            with meter._lock:
                for provider, n in counts.items():
                    meter._counts[(user, provider)] += n


def serve(host: str, port: int, secret: str, trusted: list[str], ledger) -> None:
    """Run the meter until terminated (the hub's managed service ``meter``: :mod:`eolab.hub.meter`)."""
    import asyncio
    import signal

    from eolab.tiles import _egress

    check = _egress.checker(trusted, allow_public=True)
    meter = Meter(secret)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = await asyncio.start_server(lambda r, w: _egress._handle(r, w, check, meter), host, port,
                                            limit=_egress.MAX_HEAD)
        log.warning("meter on %s:%d, reads of %s and public addresses", host, port, ", ".join(trusted) or "-")

        async def flush_forever() -> None:
            while True:
                await asyncio.sleep(FLUSH_EVERY)
                await loop.run_in_executor(None, _flush, meter, ledger)

        flusher = asyncio.ensure_future(flush_forever())
        await stop.wait()
        flusher.cancel()
        server.close()
        _flush(meter, ledger)  # what was counted since the last flush (before waiting for clients)

    asyncio.run(main())


def meter_secret(secrets: dict) -> str:
    """The meter's secret, derived from the hub's (never leaves the hub's account)."""
    from eolab._guard import hub_secret

    base = hub_secret(secrets)
    return hmac.new(base.encode(), b"eolab-meter-secret", hashlib.sha256).hexdigest() if base else ""
