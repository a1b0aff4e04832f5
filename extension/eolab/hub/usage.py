"""The hub's usage endpoint, ``/hub/eolab-usage`` (an extra handler of JupyterHub, run in the hub).

- ``GET ?month=YYYY-MM``: the caller's use this month (or that month) and limit, as JSON.
  ``&all=1`` (everyone) and ``&daily=1`` (per day) need the ``read:users`` scope (admins).
- ``POST {"bytes": {"PROVIDER": n, ...}}`` with a hub token: adds bytes read to the token's user
  (:func:`eolab.usage.report`), only on a hub without the byte meter. With it (every hub eolab
  configures) bytes are counted by the hub's meter (:mod:`eolab.usage._meter`), and reports are
  refused with 409: users' code does not decide what is recorded.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from jupyterhub.handlers.base import BaseHandler
from tornado import web

from eolab.hub.settings import read_resolved
from eolab.usage import Ledger, limit_for, month_bounds

MAX_PROVIDERS = 100
spawner_log = logging.getLogger("JupyterHub")


def _user_json(u) -> dict:
    return {"core_hours": u.core_hours, "memory_gib_hours": u.memory_gib_hours, "bytes_read": u.bytes_read,
            "server_core_hours": u.server_core_hours, "server_memory_gib_hours": u.server_memory_gib_hours}


class ServerClock:
    """Writes each user server's time into the ledger, from the hub (a user's code cannot change it):
    a row at spawn, its end moved every ``interval`` s while the server is active, closed at stop.
    A server counts its CPU and memory limits (``Spawner.cpu_limit``/``mem_limit``), else
    ``cores`` and ``memory`` (bytes): local servers have no enforced limits, so the hub's settings say
    what one is accounted as."""

    def __init__(self, ledger_path, *, cores: float, memory: float, interval: float = 30.0, clock=None) -> None:
        import time

        self.ledger_path, self.cores, self.memory, self.interval = ledger_path, cores, memory, interval
        self.clock = clock or time.time
        self._active: dict[int, tuple] = {}  # id(spawner) -> (start, periodic callback)

    def _row(self, spawner, start: float, end: float):
        from eolab.usage import Interval

        user, name = spawner.user.name, spawner.name or ""
        return Interval(user, f"server:{user}:{name}:{start:.3f}", "server", start, end,
                        float(spawner.cpu_limit or self.cores), float(spawner.mem_limit or self.memory), kind="server")

    def _write(self, row) -> None:
        import sqlite3

        try:
            Ledger(self.ledger_path).record_intervals([row])
        except (sqlite3.Error, OSError) as exc:  # accounting must not stop servers; the next write catches up
            spawner_log.warning("Usage ledger %s not written: %s", self.ledger_path, exc)

    def started(self, spawner) -> None:
        from tornado.ioloop import PeriodicCallback

        start = self.clock()
        self._write(self._row(spawner, start, start))

        def tick() -> None:
            if spawner.active:
                self._write(self._row(spawner, start, self.clock()))
            else:  # the spawn failed, or it stopped without the stop hook: close it here
                self.stopped(spawner)

        callback = PeriodicCallback(tick, self.interval * 1000)
        callback.start()
        self.stopped(spawner)  # a leftover entry of the same spawner
        self._active[id(spawner)] = (start, callback)

    def stopped(self, spawner) -> None:
        entry = self._active.pop(id(spawner), None)
        if entry is not None:
            start, callback = entry
            callback.stop()
            self._write(self._row(spawner, start, self.clock()))


class UsageHandler(BaseHandler):
    _accept_token_auth = True

    def check_xsrf_cookie(self):
        pass  # POST is accepted only with a token (below), never on the login cookie alone

    def _fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status, "message": message}))

    @property
    def _settings(self):
        if not hasattr(self, "_resolved"):
            self._resolved = read_resolved()
        return self._resolved

    @web.authenticated
    async def get(self):
        S = self._settings
        month = self.get_argument("month", None)
        try:
            _, end, month = month_bounds(month)
        except ValueError as exc:
            return self._fail(400, str(exc))
        everyone = self.get_argument("all", "") in ("1", "true")
        daily = self.get_argument("daily", "") in ("1", "true")
        if (everyone or daily) and "read:users" not in self.expanded_scopes:
            return self._fail(403, "all users' and per-day usage are for admins (the read:users scope)")
        user = self.current_user
        ledger = Ledger(S.usage_db)
        users = ledger.usage(month, None if everyone else user.name)
        limits = {}
        for name in users:
            found = user if name == user.name else self.find_user(name)
            groups = [g.name for g in found.groups] if found is not None else []
            limit = limit_for(S.usage_limits, name, groups)
            if limit is not None:
                limits[name] = limit.model_dump()
        body = {"month": month, "resets": dt.datetime.fromtimestamp(end, dt.timezone.utc).strftime("%Y-%m-%d 00:00 UTC"),
                "users": {n: _user_json(u) for n, u in users.items()}, "limits": limits}
        if daily:
            body["daily"] = {day: {n: _user_json(u) for n, u in us.items()}
                             for day, us in ledger.daily(month, None if everyone else user.name).items()}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def _metered(self) -> bool:
        from eolab.usage._meter import meter_secret

        try:
            return bool(meter_secret(json.loads(self._settings.secrets_file.read_text())))
        except (OSError, ValueError):
            return False

    async def post(self):
        if self._metered():
            return self._fail(409, "bytes read are counted by the hub's meter (GDAL's proxy), not reported "
                                   "by kernels")
        user = self.current_user
        if user is None or not self.get_auth_token():
            return self._fail(403, "reports need 'Authorization: token <hub token>' (kernels have "
                                   "$JUPYTERHUB_API_TOKEN)")
        try:
            counts = json.loads(self.request.body or b"{}").get("bytes")
        except (ValueError, AttributeError):
            return self._fail(400, 'the body must be JSON: {"bytes": {"PROVIDER": n, ...}}')
        if not isinstance(counts, dict) or len(counts) > MAX_PROVIDERS or not all(
                isinstance(p, str) and 0 < len(p) <= 200 and isinstance(n, int) and not isinstance(n, bool)
                and 0 <= n < 2**50 for p, n in counts.items()):
            return self._fail(400, f'"bytes" must map at most {MAX_PROVIDERS} provider names to byte counts '
                                   "(non-negative integers)")
        Ledger(self._settings.usage_db).record_bytes(user.name, counts)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"recorded": counts}))
