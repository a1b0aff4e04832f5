"""The tile service's way out: every URL GDAL opens passes the address policy, redirects included.

GDAL follows HTTP redirects itself and has no option to stop or check them, so an allowed URL (a
public host, or a configured one) could send it on to the machine's other ports or to the cloud
metadata address. The service therefore points GDAL at this forward proxy (``GDAL_HTTP_PROXY``),
which checks each request, each redirect hop and each ``CONNECT`` tunnel with the same policy as
the URLs users give (:mod:`eolab.tiles._policy`) and connects to the very address it checked (a
name resolved twice could answer differently the second time). Plain http requests are forwarded
on kept-alive connections (each request checked); https is tunnelled. None of our dependencies offers a filtering forward proxy, and
the few lines of asyncio below are smaller than adding one.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from eolab.tiles import _policy

log = logging.getLogger(__name__)

Check = Callable[[str], "tuple[str | None, str | None]"]  # url -> (refusal, address to connect to)
MAX_HEAD = 64 * 1024
HEAD_TIMEOUT = 60.0  # s a client may take to send a request head (also an idle kept-alive connection)
READ_TIMEOUT = 120.0  # s without a byte from the upstream
_DROP = ("proxy-", "connection:", "keep-alive:", "host:")
_LOOKUPS = None  # its own threads for name lookups: slow names must not stall other work
# (when, proxy user, url, why): GDAL only sees "403". Kept per proxy user (the tile service tags each
# request's reads), so one user's refused URL — which may carry a signature — never explains
# another user's failure.
REFUSED: collections.deque = collections.deque(maxlen=256)


def last_refusal(tag: str, within: float = 60.0) -> tuple[str, str] | None:
    """(url, why) of the proxy's latest refusal of reads tagged ``tag`` in the last ``within`` s."""
    now = time.monotonic()
    for when, who, url, why in reversed(REFUSED):
        if now - when >= within:
            return None
        if who == tag:
            return url, why
    return None


def _bracketed(authority: str) -> str:
    """``host:port`` with an IPv6 host in brackets (httpx writes ``::1:8443`` to a proxy, curl ``[::1]:8443``)."""
    if authority.count(":") > 1 and "[" not in authority:
        host, _, port = authority.rpartition(":")
        return f"[{host}]:{port}"
    return authority


def checker(trusted: Iterable[str], allow_public: bool, resolver=_policy.resolve) -> Check:
    """(refusal or None, the checked address to connect to) for a URL, with the service's policy."""
    trusted = list(trusted)
    # A tunnel shows only host and port (the path travels encrypted): a trusted prefix covers the
    # tunnels to its origin. The service checked the full URL before GDAL opened it.
    origins = [_policy.origin(p) for p in trusted if p]

    def check(url: str, tunnel: bool = False) -> tuple[str | None, str | None]:
        seen: list[str] = []

        def recording(host: str, port: int) -> list[str]:
            seen.extend(resolver(host, port))
            return seen

        problem = _policy.refusal(url, origins if tunnel else trusted, allow_public=allow_public, resolver=recording)
        if problem:
            return problem, None
        host = urlsplit(url).hostname or ""
        if not seen:  # a trusted prefix: the policy did not need to resolve it
            try:
                seen = list(resolver(host, urlsplit(url).port or (443 if url.startswith("https:") else 80)))
            except OSError as exc:
                return f"cannot resolve {host!r} ({exc})", None
        return (None, seen[0]) if seen else (f"cannot resolve {host!r}", None)

    return check


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count=None) -> None:
    """Copy until EOF, then close ``writer``; ``count(n)`` gets the bytes passed."""
    try:
        while data := await asyncio.wait_for(reader.read(256 * 1024), READ_TIMEOUT):
            writer.write(data)
            if count is not None:
                count(len(data))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
        pass
    finally:
        try:
            writer.close()
        except (ConnectionError, RuntimeError):
            pass


def _refuse(writer: asyncio.StreamWriter, status: str, message: str, extra: str = "") -> None:
    body = message.encode()
    writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                 f"{extra}Connection: close\r\n\r\n".encode() + body)


def _header(lines: list[str], name: str) -> str:
    name = name.lower() + ":"
    return next((h.split(":", 1)[1].strip() for h in lines if h.lower().startswith(name)), "")


def proxy_credentials(lines: list[str]) -> tuple[str, str] | None:
    """(user, password) of a request's Basic Proxy-Authorization, None if it has none or it is malformed."""
    import base64
    import binascii

    scheme, _, encoded = _header(lines, "proxy-authorization").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int, count=None) -> None:
    """Copy exactly ``n`` bytes (a response body of known length)."""
    while n > 0:
        data = await asyncio.wait_for(reader.read(min(n, 256 * 1024)), READ_TIMEOUT)
        if not data:
            raise ConnectionError("upstream closed mid-body")
        n -= len(data)
        writer.write(data)
        if count is not None:
            count(len(data))
        await writer.drain()


async def _relay_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count=None) -> None:
    """Copy a chunked body to its last chunk and trailers (the connection stays usable); ``count``
    gets the chunks' data bytes."""
    while True:
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), READ_TIMEOUT)
        writer.write(line)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ConnectionError("malformed chunk") from None
        if size == 0:
            while True:  # trailers, then the empty line
                trailer = await asyncio.wait_for(reader.readuntil(b"\r\n"), READ_TIMEOUT)
                writer.write(trailer)
                if trailer == b"\r\n":
                    await writer.drain()
                    return
        await _relay(reader, writer, size, count)
        crlf = await asyncio.wait_for(reader.readexactly(2), READ_TIMEOUT)
        if crlf != b"\r\n":
            raise ConnectionError("malformed chunk")
        writer.write(crlf)


def _request_problem(lines: list[str]) -> str | None:
    """Why a GET/HEAD request head cannot be forwarded as it is (a body, or a malformed header,
    could make the upstream read a second request the proxy never checked)."""
    for h in lines:
        if not h:
            continue
        name, colon, _ = h.partition(":")
        if not colon or not name or name != name.strip() or any(c in h for c in "\r\n\0"):
            return f"malformed header line {h[:40]!r}"
    length = _header(lines, "content-length")
    if (length and length != "0") or _header(lines, "transfer-encoding") or _header(lines, "expect"):
        return "GET/HEAD requests with a body are not forwarded"
    return None


def _lookups():
    global _LOOKUPS
    if _LOOKUPS is None:
        from concurrent.futures import ThreadPoolExecutor

        _LOOKUPS = ThreadPoolExecutor(8, thread_name_prefix="eolab-egress-lookup")
    return _LOOKUPS


class _Upstream:
    """The open connection to the last upstream, kept between requests of one client connection
    (GDAL's byte-range requests come in series: a connection each would cost two handshakes)."""

    def __init__(self):
        self.key = None
        self.reader = self.writer = None

    async def get(self, address: str, port: int, fresh: bool = False):
        if fresh or self.key != (address, port) or self.writer is None or self.writer.is_closing() \
                or self.reader.at_eof():
            self.close()
            self.reader, self.writer = await asyncio.open_connection(address, port)
            self.key = (address, port)
            return self.reader, self.writer, True
        return self.reader, self.writer, False

    def close(self):
        if self.writer is not None:
            try:
                self.writer.close()
            except (ConnectionError, RuntimeError):
                pass
        self.key = self.reader = self.writer = None


async def _exchange(up: _Upstream, address: str, port: int, request: bytes):
    """Send ``request`` upstream and read the final answer's head (interim 1xx heads are dropped);
    a kept connection the upstream closed meanwhile is replaced once."""
    for attempt in range(2):
        up_reader, up_writer, new = await up.get(address, port, fresh=attempt > 0)
        try:
            up_writer.write(request)
            await up_writer.drain()
            while True:
                head = await asyncio.wait_for(up_reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
                if not re_interim(head):
                    return up_reader, head
        except (ConnectionError, asyncio.IncompleteReadError):
            up.close()
            if new:
                raise
    raise ConnectionError("upstream closed")


def re_interim(head: bytes) -> bool:
    """A 1xx answer other than 101 (which the proxy never asks for: no Upgrade passes)."""
    parts = head.split(b" ", 2)
    return len(parts) > 1 and parts[1][:1] == b"1" and parts[1] != b"101"


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, check: Check, meter=None) -> None:
    """One client connection: plain http GET/HEAD requests (kept alive while both sides allow, the
    upstream connection reused) or one CONNECT tunnel. ``meter`` (:class:`eolab.usage._meter.Meter`
    or :class:`Tally`): who asks (from Proxy-Authorization; the meter answers 407 without) and where
    the bytes received are counted (answer bodies; a tunnel's whole stream)."""
    up = _Upstream()
    try:
        while True:
            try:
                head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT))[:MAX_HEAD]
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, target, version = request_line.split(" ", 2)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError,
                    asyncio.TimeoutError):
                return
            if method == "CONNECT":
                url = _policy.origin(f"https://{_bracketed(target)}") + "/"
            else:
                url = target
                if url.startswith("http://"):
                    authority, slash, rest = url[7:].partition("/")
                    url = f"http://{_bracketed(authority)}{slash}{rest}"
                if method not in ("GET", "HEAD") or not url.startswith("http://"):
                    _refuse(writer, "405 Method Not Allowed", "only reads with GET/HEAD over http(s) pass")
                    return
            problem = _request_problem(lines)
            if problem:
                _refuse(writer, "400 Bad Request", problem)
                return
            count = None
            if meter is not None:
                count, refusal = meter.counter(lines, url)
                if count is None:
                    _refuse(writer, "407 Proxy Authentication Required", refusal,
                            'Proxy-Authenticate: Basic realm="eolab"\r\n')
                    return
            problem, address = await asyncio.get_running_loop().run_in_executor(
                _lookups(), functools.partial(check, url, tunnel=method == "CONNECT"))
            if problem:
                log.warning("refused to read %s: %s", url, problem)
                REFUSED.append((time.monotonic(), (proxy_credentials(lines) or ("", ""))[0], url, problem))
                _refuse(writer, "403 Forbidden", problem,
                        f"X-Eolab-Refused: {problem[:500].encode('latin-1', 'replace').decode('latin-1')}\r\n")
                return
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            if method == "CONNECT":
                try:
                    up_reader, up_writer = await asyncio.open_connection(address, port)
                except OSError as exc:
                    _refuse(writer, "502 Bad Gateway", f"{parts.hostname}:{port} is not answering ({exc})")
                    return
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer, count))
                return
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            kept = [f"Host: {parts.netloc.rpartition('@')[2]}",
                    *(h for h in lines if h and not h.lower().startswith(_DROP))]
            request = (f"{method} {path} HTTP/1.1\r\n" + "".join(f"{h}\r\n" for h in kept) + "\r\n").encode("latin-1")
            try:
                up_reader, answer = await _exchange(up, address, port, request)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError) as exc:
                _refuse(writer, "502 Bad Gateway", f"{parts.hostname}:{port} is not answering ({exc!r})")
                return
            status_line, *answer_lines = answer.decode("latin-1").split("\r\n")
            try:
                status = int(status_line.split(" ", 2)[1])
            except (IndexError, ValueError):
                _refuse(writer, "502 Bad Gateway", f"{parts.hostname}:{port} sent no HTTP answer")
                return
            writer.write(answer)
            length = _header(answer_lines, "content-length")
            chunked = "chunked" in _header(answer_lines, "transfer-encoding").lower()
            if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                await _relay(up_reader, writer, 0)
            elif chunked:
                await _relay_chunked(up_reader, writer, count)
            elif length.isdigit():
                await _relay(up_reader, writer, int(length), count)
            else:  # delimited by the end of the connection: pass it on, then close both
                await _pipe(up_reader, writer, count)
                return
            if "close" in _header(answer_lines, "connection").lower() or status_line.startswith("HTTP/1.0"):
                up.close()
            if "close" in _header(lines, "connection").lower() or "close" in _header(lines, "proxy-connection").lower():
                return
    except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return
    finally:
        up.close()
        try:
            await writer.drain()
            writer.close()
        except (ConnectionError, RuntimeError):
            pass


class Tally:
    """The tile service's credentials at its proxy, and the bytes fetched per request tag.

    The proxy listens on 127.0.0.1 and reaches the stack's services as the stack's account, so it
    answers only requests carrying this process's random secret as proxy password (407 otherwise):
    another local account cannot use it to get past the services' guard. The tile service reads
    each tile with its own tag as proxy user (a thread-local GDAL option) and says in the answer
    what that tile fetched, so the hub's gate can count it for the user who asked."""

    UNTAGGED = "-"

    def __init__(self, secret: str | None = None):
        import secrets

        self.secret = secret or secrets.token_hex(16)
        self._lock = threading.Lock()
        self._counts: dict[str, collections.Counter] = {}

    def userpwd(self, tag: str | None = None) -> str:
        """GDAL_HTTP_PROXYUSERPWD for reads tagged ``tag`` (None: not counted)."""
        return f"{tag or self.UNTAGGED}:{self.secret}"

    def counter(self, lines: list[str], url: str):
        import hmac

        tag, password = proxy_credentials(lines) or ("", "")
        if not hmac.compare_digest(password.encode(), self.secret.encode()):
            return None, "this proxy serves the tile service only"
        if tag == self.UNTAGGED:
            return (lambda n: None), ""  # a read outside a tile (titiler's own routes): passed, not counted
        host = urlsplit(url).hostname or "unknown"

        def count(n: int) -> None:
            with self._lock:
                self._counts.setdefault(tag, collections.Counter())[host] += n

        return count, ""

    def pop(self, tag: str) -> dict[str, int]:
        with self._lock:
            return {h: n for h, n in self._counts.pop(tag, {}).items() if n > 0}


class EgressProxy:
    """The proxy on 127.0.0.1, on its own thread and event loop; ``address`` is for GDAL_HTTP_PROXY."""

    def __init__(self, check: Check, meter=None):
        self._check = check
        self._meter = meter
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self.address = ""

        async def serve() -> None:
            server = await asyncio.start_server(lambda r, w: _handle(r, w, self._check, self._meter), "127.0.0.1", 0,
                                                limit=MAX_HEAD)
            self.address = "127.0.0.1:%d" % server.sockets[0].getsockname()[1]
            started.set()
            async with server:
                await server.serve_forever()

        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(serve(),), daemon=True,
                                        name="eolab-tiles-egress")
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the tile service's egress proxy did not start")
