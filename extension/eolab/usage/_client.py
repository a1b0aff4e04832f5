"""The user's side: report bytes read to the hub, and ask the hub what one has used.

On a hub with the byte meter (``EOLAB_METERED=1``) nothing is reported: the meter counts the
reads (:mod:`eolab.usage._meter`).

On the hub, kernels find the hub's usage endpoint (``/hub/eolab-usage``) through
``$JUPYTERHUB_API_URL`` and authenticate with ``$JUPYTERHUB_API_TOKEN``; the hub records under the
token's user, so nobody can add to (or take from) another user's account.
"""

from __future__ import annotations

import atexit
import datetime as dt
import html
import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass, field

from eolab.errors import EolabError
from eolab.usage import _bytes
from eolab.usage._ledger import GIB, UserUsage

log = logging.getLogger("eolab.usage")
REPORT_EVERY = 60.0  # s, the background reporter of a hub kernel
_pending: Counter = Counter()  # taken but not yet accepted by the hub
_lock = threading.Lock()
_reporter: threading.Thread | None = None


class UsageError(EolabError):
    """The hub's usage endpoint is unknown, refused or did not answer."""


def endpoint(url: str | None = None, token: str | None = None) -> tuple[str, str]:
    """(usage URL, hub token) of this kernel, or UsageError with what to set."""
    from eolab import settings

    url = url or settings.client().usage_url
    if not url and os.environ.get("JUPYTERHUB_API_URL"):
        url = os.environ["JUPYTERHUB_API_URL"].rstrip("/").removesuffix("/api") + "/eolab-usage"
    token = token or os.environ.get("JUPYTERHUB_API_TOKEN")
    if not url or not token:
        raise UsageError("usage is recorded by the hub, and this process does not know the hub",
                         hint="run this in a notebook or terminal on the hub; operators on the hub's host "
                              "use `eolab usage --all --run-dir RUN_DIR`")
    return url, token


def _from_workers(client=None) -> Counter:
    """Bytes read by the workers of a Dask client (by default this kernel's; counters are per process)."""
    counts: Counter = Counter()
    if client is None:
        try:
            from distributed import default_client

            client = default_client()
        except (ImportError, ValueError):
            return counts
    try:
        for part in client.run(_bytes.take, on_error="ignore").values():
            if isinstance(part, dict):
                counts.update(part)
    except Exception as exc:  # noqa: BLE001 - a cluster going away must not break the kernel's work
        log.info("bytes read by workers not collected: %s", exc)
    return counts


def report(url: str | None = None, token: str | None = None) -> dict[str, int]:
    """Send the bytes read here (and on this kernel's Dask workers) since the last report to the hub."""
    url, token = endpoint(url, token)
    import httpx

    with _lock:
        _pending.update(_bytes.take())
        _pending.update(_from_workers())
        counts = {k: v for k, v in _pending.items() if v > 0}
        if not counts:
            return {}
        try:
            response = httpx.post(url, json={"bytes": counts}, headers={"Authorization": f"token {token}"},
                                  timeout=30)
        except httpx.HTTPError as exc:
            raise UsageError(f"the hub's usage endpoint {url} did not answer: {exc}",
                             hint="the counts are kept and sent with the next report") from None
        if response.status_code != 200:
            raise UsageError(f"the hub's usage endpoint refused the report: HTTP {response.status_code} "
                             f"{response.text[:200]}")
        _pending.subtract(counts)
        return counts


def report_before_shutdown(cluster) -> None:
    """Before a gateway cluster stops: what its workers read goes to the hub (if this kernel loaded data)."""
    if _reporter is None:
        return  # nothing was loaded through eolab in this kernel, or not on the hub
    try:
        client = cluster.get_client(set_as_default=False)
        try:
            with _lock:
                _pending.update(_from_workers(client))
        finally:
            client.close()
        report()
    except Exception as exc:  # noqa: BLE001 - stopping the cluster matters more than the count
        log.info("bytes read by the cluster's workers not reported: %s", exc)


def _report_forever() -> None:
    stop = threading.Event()
    while not stop.wait(REPORT_EVERY):
        try:
            report()
        except EolabError as exc:
            log.info("usage report postponed: %s", exc)


def start_reporter() -> None:
    """In a hub kernel: report bytes read every minute and when the kernel exits (idempotent)."""
    global _reporter
    if _reporter is not None or _bytes.metered():
        return  # metered: the hub's meter counts what this process reads
    try:
        endpoint()
    except UsageError:
        return  # not on the hub: nothing records it
    with _lock:
        if _reporter is not None:
            return
        _reporter = threading.Thread(target=_report_forever, name="eolab-usage", daemon=True)
        _reporter.start()
    atexit.register(lambda: _safe_report())


def _safe_report() -> None:
    try:
        report()
    except EolabError:
        pass


@dataclass
class Usage:
    """Use of one month as the hub recorded it: per user, with each user's monthly limit."""

    month: str
    resets: str
    users: dict[str, UserUsage]
    limits: dict[str, dict] = field(default_factory=dict)
    daily: dict[str, dict[str, UserUsage]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: dict) -> Usage:
        def user(name, u):
            return UserUsage(name, u["core_hours"], u["memory_gib_hours"], dict(u["bytes_read"]),
                             u.get("server_core_hours", 0.0), u.get("server_memory_gib_hours", 0.0))

        return cls(body["month"], body["resets"], {n: user(n, u) for n, u in body["users"].items()},
                   body.get("limits", {}),
                   {d: {n: user(n, u) for n, u in us.items()} for d, us in body.get("daily", {}).items()})

    def _rows(self):
        for name, u in sorted(self.users.items()):
            limit = self.limits.get(name) or {}
            units = {"core_hours": "core-hours", "memory_gib_hours": "memory GiB-hours"}
            cap = ", ".join(f"{v:g} {units.get(k, k)}" for k, v in limit.items() if v is not None) or "none"
            reads = ", ".join(f"{p} {_size(n)}" for p, n in sorted(u.bytes_read.items())) or "-"
            yield (name, f"{u.core_hours:.3f}", f"{u.memory_gib_hours:.3f}", f"{u.server_core_hours:.3f}", reads,
                   cap)

    HEAD = ("user", "cluster core-hours", "cluster memory GiB-hours", "server core-hours",
            "bytes read per provider", "monthly limit")

    def __str__(self) -> str:
        head = self.HEAD
        rows = [head, *self._rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [f"usage in {self.month} (UTC; limits reset {self.resets})"]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        for day, users in self.daily.items():
            lines.append(f"  {day}: " + "; ".join(
                f"{n} {u.core_hours:.3f} core-h, {u.memory_gib_hours:.3f} GiB-h, server {u.server_core_hours:.3f} core-h, "
                f"{_size(sum(u.bytes_read.values()))}" for n, u in sorted(users.items())))
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in self.HEAD)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in self._rows())
        return (f"<b>Usage in {html.escape(self.month)}</b> (UTC; limits reset {html.escape(self.resets)})"
                f"<table><tr>{head}</tr>{body}</table>")


def _size(n: int) -> str:
    for unit, factor in (("GiB", GIB), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} B"


def usage(month: str | None = None, *, all_users: bool = False, daily: bool = False,
          url: str | None = None, token: str | None = None) -> Usage:
    """This month's (or ``month``'s, 'YYYY-MM') use as the hub recorded it; admins may ask for all users."""
    import httpx

    url, token = endpoint(url, token)
    try:
        report(url, token)
    except UsageError as exc:
        log.warning("%s", exc)
    params = {k: v for k, v in (("month", month), ("all", "1" if all_users else None),
                                ("daily", "1" if daily else None)) if v}
    try:
        response = httpx.get(url, params=params, headers={"Authorization": f"token {token}"}, timeout=30)
    except httpx.HTTPError as exc:
        raise UsageError(f"the hub's usage endpoint {url} did not answer: {exc}") from None
    if response.status_code != 200:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        raise UsageError(f"the hub refused: HTTP {response.status_code}: {message[:300]}")
    return Usage.from_json(response.json())


def usage_from_ledger(path, month: str | None = None, *, daily: bool = False, limits=None) -> Usage:
    """The same, read straight from the ledger file (operators on the hub's host)."""
    from eolab.usage._ledger import Ledger, month_bounds

    ledger = Ledger(path)
    _, end, name = month_bounds(month)
    users = ledger.usage(name)
    resets = dt.datetime.fromtimestamp(end, dt.timezone.utc).strftime("%Y-%m-%d 00:00 UTC")
    return Usage(name, resets, users, _limits_json(limits or {}, users),
                 ledger.daily(name) if daily else {})


def _limits_json(limits, users) -> dict[str, dict]:
    from eolab.usage._ledger import limit_for

    out = {}
    for name in users:
        limit = limit_for(limits, name)
        if limit is not None:
            out[name] = {"core_hours": getattr(limit, "core_hours", None),
                         "memory_gib_hours": getattr(limit, "memory_gib_hours", None)}
    return out


def show(month: str | None = None, *, all_users: bool = False, daily: bool = False, on_host=None) -> Usage:
    """``eolab usage``: from the hub when run on it, else from the ledger ``on_host()`` names (path, limits)."""
    from eolab.usage._ledger import month_bounds

    if month:
        try:
            month_bounds(month)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    try:
        endpoint()
    except UsageError:
        if on_host is None:
            raise
    else:
        return usage(month, all_users=all_users, daily=daily)
    ledger, limits = on_host()
    if not ledger.exists():
        raise UsageError(f"no usage recorded: {ledger} does not exist",
                         hint="run this on the hub (notebook terminal), or give the hub's --run-dir")
    return usage_from_ledger(ledger, month, daily=daily, limits=limits)
