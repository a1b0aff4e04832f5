"""The usage ledger: one SQLite file in the hub's state directory, written by the gateway and the hub.

SQLite rather than JSON lines: two processes write it at once (the gateway records cluster time,
the hub records bytes read), a running cluster's row is updated in place until it stops, and WAL
mode with a busy timeout lets both write without a lock file of ours; aggregates are SQL over an
index instead of a scan of every line ever written.

Compute is kept as intervals (one row per scheduler or worker: start, end, cores, memory) and cut
at month and day boundaries when summed, so a cluster running over midnight of the 1st counts in
both months. Bytes are kept per user, provider and day.
"""

from __future__ import annotations

import calendar
import datetime as dt
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

GIB = 2**30
_SCHEMA = """
CREATE TABLE IF NOT EXISTS compute (
    username TEXT NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL, process TEXT NOT NULL,
    start REAL NOT NULL, end REAL NOT NULL, cores REAL NOT NULL, memory REAL NOT NULL,
    PRIMARY KEY (source, process));
CREATE INDEX IF NOT EXISTS compute_user_end ON compute (username, end);
CREATE TABLE IF NOT EXISTS reads (
    username TEXT NOT NULL, provider TEXT NOT NULL, day TEXT NOT NULL, bytes INTEGER NOT NULL,
    PRIMARY KEY (username, provider, day));
"""


@dataclass(frozen=True)
class Interval:
    """One process of a cluster (or a user server): what it reserved, from when to when (epoch s)."""

    username: str
    source: str  # the cluster's name
    process: str  # "scheduler" or the worker's name
    start: float
    end: float
    cores: float
    memory: float  # bytes
    kind: str = "cluster"


@dataclass
class UserUsage:
    """One user's use in one period: core-hours and memory GiB-hours of Dask clusters (what the
    monthly limits count), the same of the user's servers (JupyterLab), bytes read per provider."""

    username: str
    core_hours: float = 0.0
    memory_gib_hours: float = 0.0
    bytes_read: dict[str, int] = field(default_factory=dict)
    server_core_hours: float = 0.0
    server_memory_gib_hours: float = 0.0

    def add(self, kind: str, cores: float, memory: float, seconds: float) -> None:
        core_hours, gib_hours = cores * seconds / 3600, memory / GIB * seconds / 3600
        if kind == "server":
            self.server_core_hours += core_hours
            self.server_memory_gib_hours += gib_hours
        else:
            self.core_hours += core_hours
            self.memory_gib_hours += gib_hours


def month_bounds(month: str | None = None, now: float | None = None) -> tuple[float, float, str]:
    """(start, end, 'YYYY-MM') of a calendar month in UTC; the current one by default."""
    if month is None:
        month = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.timezone.utc).strftime("%Y-%m")
    try:
        year, mon = (int(part) for part in month.split("-"))
        start = dt.datetime(year, mon, 1, tzinfo=dt.timezone.utc)
    except ValueError:
        raise ValueError(f"month {month!r} is not YYYY-MM (e.g. 2026-12)") from None
    days = calendar.monthrange(year, mon)[1]
    return start.timestamp(), (start + dt.timedelta(days=days)).timestamp(), f"{year:04d}-{mon:02d}"


def _day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d")


class Ledger:
    """The ledger file; every call opens its own connection (safe from threads and processes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA busy_timeout=30000")
        return db

    def record_intervals(self, intervals: Iterable[Interval]) -> None:
        """Insert or extend intervals (a running process is written again with a later end)."""
        rows = [(i.username, i.kind, i.source, i.process, i.start, max(i.end, i.start), i.cores, i.memory)
                for i in intervals]
        if not rows:
            return
        with closing(self._connect()) as db, db:
            db.executemany(
                "INSERT INTO compute VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, process) DO UPDATE "
                "SET end = max(end, excluded.end), cores = excluded.cores, memory = excluded.memory", rows)

    def record_bytes(self, username: str, counts: Mapping[str, int], when: float | None = None) -> None:
        """Add bytes read per provider to today's (UTC) total of ``username``."""
        day = _day(time.time() if when is None else when)
        rows = [(username, provider, day, int(n)) for provider, n in counts.items() if n > 0]
        if not rows:
            return
        with closing(self._connect()) as db, db:
            db.executemany("INSERT INTO reads VALUES (?, ?, ?, ?) ON CONFLICT (username, provider, day) "
                           "DO UPDATE SET bytes = bytes + excluded.bytes", rows)

    def _intervals(self, start: float, end: float, username: str | None):
        query = "SELECT username, start, end, cores, memory, kind FROM compute WHERE end > ? AND start < ?"
        args: list = [start, end]
        if username is not None:
            query, args = query + " AND username = ?", args + [username]
        with closing(self._connect()) as db:
            return db.execute(query, args).fetchall()

    def usage(self, month: str | None = None, username: str | None = None) -> dict[str, UserUsage]:
        """Each user's use in ``month`` (default: this month), or one user's."""
        start, end, name = month_bounds(month)
        out: dict[str, UserUsage] = {}
        for user, s, e, cores, memory, kind in self._intervals(start, end, username):
            out.setdefault(user, UserUsage(user)).add(kind, cores, memory, min(e, end) - max(s, start))
        query = "SELECT username, provider, sum(bytes) FROM reads WHERE day LIKE ?"
        args: list = [name + "-%"]
        if username is not None:
            query, args = query + " AND username = ?", args + [username]
        with closing(self._connect()) as db:
            for user, provider, n in db.execute(query + " GROUP BY username, provider", args):
                out.setdefault(user, UserUsage(user)).bytes_read[provider] = int(n)
        if username is not None:
            out.setdefault(username, UserUsage(username))
        return out

    def daily(self, month: str | None = None, username: str | None = None) -> dict[str, dict[str, UserUsage]]:
        """day ('YYYY-MM-DD') -> user -> use on that day (UTC), for admins."""
        start, end, name = month_bounds(month)
        out: dict[str, dict[str, UserUsage]] = defaultdict(dict)
        for user, s, e, cores, memory, kind in self._intervals(start, end, username):
            t = max(s, start)
            while t < min(e, end):
                day = _day(t)
                day_end = (dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc)
                           + dt.timedelta(days=1)).timestamp()
                out[day].setdefault(user, UserUsage(user)).add(kind, cores, memory, min(e, end, day_end) - t)
                t = day_end
        query = "SELECT username, provider, day, bytes FROM reads WHERE day LIKE ?"
        args: list = [name + "-%"]
        if username is not None:
            query, args = query + " AND username = ?", args + [username]
        with closing(self._connect()) as db:
            for user, provider, day, n in db.execute(query, args):
                out[day].setdefault(user, UserUsage(user)).bytes_read[provider] = int(n)
        return {day: out[day] for day in sorted(out)}


# --- monthly limits ---------------------------------------------------------------------------

def limit_for(limits: Mapping[str, object], username: str, groups: Iterable[str] = ()) -> object | None:
    """The limit of a user: their own entry, else the most generous of their groups' ('group:NAME'),
    else the default ('*'); None if no entry applies. Entries have ``core_hours``/``memory_gib_hours``."""
    if username in limits:
        return limits[username]
    of_groups = [limits[f"group:{g}"] for g in groups if f"group:{g}" in limits]
    if of_groups:
        def generosity(limit):
            return tuple(float("inf") if v is None else v
                         for v in (getattr(limit, "core_hours", None), getattr(limit, "memory_gib_hours", None)))
        return max(of_groups, key=generosity)
    return limits.get("*")


def over_limit(use: UserUsage, limit: object | None, month: str) -> str | None:
    """The refusal text if ``use`` reached ``limit`` (None if under it or unlimited)."""
    if limit is None:
        return None
    _, end, _ = month_bounds(month)
    resets = dt.datetime.fromtimestamp(end, dt.timezone.utc).strftime("%Y-%m-%d 00:00 UTC")
    for used, cap, unit in ((use.core_hours, getattr(limit, "core_hours", None), "core-hours"),
                            (use.memory_gib_hours, getattr(limit, "memory_gib_hours", None), "memory GiB-hours")):
        if cap is not None and used >= cap:
            return (f"{use.username} has used {used:.4g} {unit} of Dask clusters in {month}, the monthly limit "
                    f"is {cap:g} {unit}: no new clusters until the limit resets on {resets} "
                    "(running clusters keep running; `eolab usage` shows the details)")
    return None
