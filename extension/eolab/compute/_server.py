"""Server side of eolab's per-user Dask: dask-gateway backends with per-user limits.

dask-gateway limits one cluster (``cluster_max_cores``...) but not a user: these backends add a
maximum number of active clusters per user and a budget of worker cores and memory summed over all
of a user's clusters, enforced in the gateway (scale/adapt requests beyond it are refused with a
message quoting both numbers; the scheduler's own requests are capped). They also preload
:mod:`eolab.compute._orphans` into every scheduler, which stops a cluster whose clients are gone.

Imported only by dask-gateway-server (never by a user's kernel).
"""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
import tempfile
import time
from types import SimpleNamespace

from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.backends.db_base import JobStatus
from dask_gateway_server.backends.jobqueue.slurm import SlurmBackend
from dask_gateway_server.backends.local import LocalBackend, UnsafeLocalBackend
from dask_gateway_server.options import Float, Integer, Options
from traitlets import Dict as DictTrait
from traitlets import Float as FloatTrait
from traitlets import Integer as IntegerTrait
from traitlets import Unicode as UnicodeTrait
from traitlets.config import LoggingConfigurable

GIB = 2**30


class UserLimitsMixin(LoggingConfigurable):
    """Per-user limits over all of a user's active clusters (mix into a ``DBBackendBase``)."""

    max_clusters_per_user = IntegerTrait(2, min=1, help="Active clusters one user may have.", config=True)
    max_cores_per_user = FloatTrait(4, help="Worker cores summed over a user's clusters.", config=True)
    max_memory_per_user = FloatTrait(8 * GIB, help="Worker memory summed over a user's clusters, bytes.",
                                     config=True)

    def _active(self, username, exclude=None):
        return [c for c in self.db.list_clusters(username=username)
                if c.is_active() and c.name != exclude and c.target <= JobStatus.RUNNING]

    def _used(self, username, exclude=None):
        cores = memory = 0.0
        for c in self._active(username, exclude):
            n = max(c.count, len(c.active_workers()))
            cores += n * c.config.get("worker_cores", 1)
            memory += n * c.config.get("worker_memory", 0)
        return cores, memory

    def allowed_workers(self, username, config, exclude=None):
        """Workers one more cluster (or cluster ``exclude``) of this user may have within the budget."""
        cores, memory = self._used(username, exclude)
        per_core = config.get("worker_cores", 1) or 1
        per_mem = config.get("worker_memory", 0) or 1
        by_cores = (self.max_cores_per_user - cores) / per_core
        by_memory = (self.max_memory_per_user - memory) / per_mem
        return max(0, math.floor(min(by_cores, by_memory) + 1e-9))

    def _budget_text(self, username, config, exclude=None):
        cores, memory = self._used(username, exclude)
        return (f"{username}'s clusters may use {self.max_cores_per_user:g} cores and "
                f"{self.max_memory_per_user / GIB:g} GiB in total; other clusters use {cores:g} cores and "
                f"{memory / GIB:g} GiB; a worker needs {config.get('worker_cores', 1):g} cores and "
                f"{config.get('worker_memory', 0) / GIB:g} GiB")

    async def start_cluster(self, user, cluster_options):
        active = self._active(user.name)
        if len(active) >= self.max_clusters_per_user:
            raise PublicException(
                f"user {user.name} already has {len(active)} active clusters, the limit is "
                f"{self.max_clusters_per_user} (stop one: cluster.shutdown() or Gateway().stop_cluster(name))")
        return await super().start_cluster(user, cluster_options)

    async def forward_message_to_scheduler(self, cluster, msg):
        record = self.db.get_cluster(cluster.name)
        if record is not None and msg.get("op") in ("scale", "adapt"):
            allowed = self.allowed_workers(record.username, record.config, exclude=record.name)
            wanted = msg.get("count") if msg["op"] == "scale" else msg.get("maximum")
            if wanted is not None and wanted > allowed:
                raise PublicException(
                    f"{wanted} workers exceed {record.username}'s limit: at most {allowed} more "
                    f"({self._budget_text(record.username, record.config, record.name)})")
            if msg["op"] == "adapt" and msg.get("maximum") is None:
                msg = {**msg, "maximum": allowed}  # unbounded adaptive scaling stays within the budget
        return await super().forward_message_to_scheduler(cluster, msg)

    async def on_cluster_heartbeat(self, cluster_name, msg):
        record = self.db.get_cluster(cluster_name)
        if record is not None:
            allowed = self.allowed_workers(record.username, record.config, exclude=record.name)
            if msg.get("count", 0) > allowed:
                self.log.info("Cluster %s asked for %d workers, capped at %d by %s's limits",
                              cluster_name, msg["count"], allowed, record.username)
                msg = {**msg, "count": allowed}
        return await super().on_cluster_heartbeat(cluster_name, msg)

    def get_scheduler_command(self, cluster):
        cmd = super().get_scheduler_command(cluster)
        at = cmd.index("--preload")  # before the gateway's preload, whose options end the command
        return cmd[:at] + ["--preload", "eolab.compute._orphans"] + cmd[at:]


class UsageMixin(LoggingConfigurable):
    """Records each cluster's scheduler and workers (cores and memory, from request to stop) in the
    usage ledger, and refuses new clusters of a user who reached their monthly limit."""

    usage_db = UnicodeTrait("", help="The usage ledger (SQLite); empty: no accounting.", config=True)
    usage_limits = DictTrait(help="Monthly limits: user, 'group:NAME' or '*' -> {core_hours, memory_gib_hours}.",
                             config=True)
    usage_interval = FloatTrait(30.0, help="How often running clusters' use is written, s.", config=True)

    @property
    def ledger(self):
        if getattr(self, "_ledger", None) is None:
            from eolab.usage import Ledger

            self._ledger = Ledger(self.usage_db)
        return self._ledger

    @staticmethod
    def usage_intervals(cluster, now_ms: int) -> list:
        """The ledger rows of one cluster: its scheduler and each worker, to their stop (or now)."""
        from eolab.usage import Interval

        cfg, cluster_end = cluster.config, cluster.stop_time or now_ms
        rows = [Interval(cluster.username, cluster.name, "scheduler", cluster.start_time / 1000, cluster_end / 1000,
                         float(cfg.get("scheduler_cores", 1)), float(cfg.get("scheduler_memory", 0)))]
        for worker in cluster.workers.values():
            # Workers stopped with their cluster have no stop time of their own.
            end = worker.stop_time or cluster_end
            rows.append(Interval(cluster.username, cluster.name, worker.name, worker.start_time / 1000, end / 1000,
                                 float(cfg.get("worker_cores", 1)), float(cfg.get("worker_memory", 0))))
        return rows

    def record_usage(self, clusters) -> None:
        if not self.usage_db:
            return
        now = int(time.time() * 1000)
        try:
            self.ledger.record_intervals([row for c in clusters for row in self.usage_intervals(c, now)])
        except (sqlite3.Error, OSError) as exc:  # accounting must not stop clusters; the next write catches up
            self.log.warning("Usage ledger %s not written: %s", self.usage_db, exc)

    async def setup(self, app):
        await super().setup(app)
        if self.usage_db:
            self.task_pool.spawn(self._usage_loop())

    async def _usage_loop(self):
        while True:
            await asyncio.sleep(self.usage_interval)
            self.record_usage([c for c in self.db.name_to_cluster.values() if c.status < JobStatus.STOPPED])

    async def _cluster_to_stopped(self, cluster):
        await super()._cluster_to_stopped(cluster)
        self.record_usage([cluster])

    async def _worker_to_stopped(self, worker):
        await super()._worker_to_stopped(worker)
        self.record_usage([worker.cluster])

    async def start_cluster(self, user, cluster_options):
        from eolab.usage import limit_for, month_bounds, over_limit

        limits = {k: SimpleNamespace(**v) for k, v in self.usage_limits.items()}
        limit = limit_for(limits, user.name, user.groups or ())
        if self.usage_db and limit is not None:
            self.record_usage([c for c in self.db.list_clusters(username=user.name) if c.status < JobStatus.STOPPED])
            month = month_bounds()[2]
            refusal = over_limit(self.ledger.usage(month, user.name)[user.name], limit, month)
            if refusal:
                raise PublicException(refusal)
        return await super().start_cluster(user, cluster_options)


class DashboardGuardMixin(LoggingConfigurable):
    """Each cluster's dashboards answer only the hub's gate (:mod:`eolab.compute._dashboard`): the
    cluster gets its key in its environment, and scheduler and workers preload the check. Its
    workers also get the hub's byte meter as GDAL's proxy, with their user's credentials."""

    dashboard_secret = UnicodeTrait("", config=True,
                                    help="A secret of the hub's account the gate and the gateway share; empty: no check")
    meter_address = UnicodeTrait("", config=True, help="host:port of the hub's byte meter; empty: none")
    meter_secret = UnicodeTrait("", config=True, help="the meter's secret (eolab.usage._meter)")

    def get_env(self, cluster):
        from eolab.compute import _dashboard
        from eolab.usage import _meter

        env = super().get_env(cluster)
        if self.dashboard_secret:
            env[_dashboard.ENV] = _dashboard.cluster_key(self.dashboard_secret, cluster.name)
        if self.meter_address and self.meter_secret:
            # Workers read through the hub's meter as the cluster's user (the meter counts for them).
            env.update({"GDAL_HTTP_PROXY": self.meter_address, "EOLAB_METERED": "1",
                        "GDAL_HTTP_PROXYUSERPWD": _meter.credentials(self.meter_secret, cluster.username)})
        return env

    def _with_guard(self, cmd):
        if not self.dashboard_secret:
            return cmd
        at = cmd.index("--preload") if "--preload" in cmd else len(cmd)
        return cmd[:at] + ["--preload", "eolab.compute._dashboard"] + cmd[at:]

    def get_scheduler_command(self, cluster):
        return self._with_guard(super().get_scheduler_command(cluster))

    def get_worker_command(self, cluster, worker_name, scheduler_address=None):
        return self._with_guard(super().get_worker_command(cluster, worker_name, scheduler_address))


class LoopbackMixin:
    """Clusters on this host listen on 127.0.0.1 only: schedulers, their dashboards and API, and workers
    (dask-gateway binds them to 0.0.0.0, where other machines of the network could reach them)."""

    default_host = "127.0.0.1"

    def get_worker_command(self, cluster, worker_name, scheduler_address=None):
        return super().get_worker_command(cluster, worker_name, scheduler_address) + ["--host", "127.0.0.1"]


class EolabUnsafeLocalBackend(DashboardGuardMixin, LoopbackMixin, UsageMixin, UserLimitsMixin, UnsafeLocalBackend):
    """Demo mode: clusters run as the gateway's own OS user (no isolation between users)."""


class EolabLocalBackend(DashboardGuardMixin, LoopbackMixin, UsageMixin, UserLimitsMixin, LocalBackend):
    """Multiuser mode: each cluster runs as its user's system account, certificates readable by it only."""

    def setup_working_directory(self, cluster):
        # dask-gateway-server 2026.3 adds the certificate paths character by character to the list it
        # chowns (``paths.extend(path)``), so as root it hands "/" to the user and then fails. Same
        # layout, each path chowned once.
        workdir = os.path.join(self.clusters_directory, cluster.name) if self.clusters_directory else \
            tempfile.mkdtemp(prefix="dask", suffix=cluster.name)
        paths = [workdir, self.get_certs_directory(workdir), self.get_logs_directory(workdir)]
        for path in paths:
            os.makedirs(path, 0o700, exist_ok=True)
        cert_path, key_path = self._get_tls_paths(workdir)
        for path, data in ((cert_path, cluster.tls_cert), (key_path, cluster.tls_key)):
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
                file.write(data)
            paths.append(path)
        self.set_file_permissions(paths, cluster.username)
        return workdir


class EolabSlurmBackend(DashboardGuardMixin, LoopbackMixin, UsageMixin, UserLimitsMixin, SlurmBackend):
    """HPC: each cluster's scheduler and workers are Slurm jobs of the user (submitted via sudo as them).

    On this one-node cluster they listen on 127.0.0.1 like the local backends; a site whose jobs run
    on other nodes subclasses this with the cluster network's interface."""

    def get_submit_cmd_env_stdin(self, cluster, worker=None):
        from eolab.compute._slurm import job_name

        cmd, env, script = super().get_submit_cmd_env_stdin(cluster, worker)
        # Jobs named after the hub, so `eolab down` can cancel whatever outlived the gateway.
        cmd = [f"--job-name={job_name()}" if arg == "--job-name=dask-gateway" else arg for arg in cmd]
        return cmd, env, script


def cluster_options(max_worker_cores: int, max_worker_memory_gib: float, idle_timeout: int,
                    max_idle_timeout: int) -> Options:
    """The options users may pick (the same fields render as a form in ``eolab.compute``)."""

    def handler(options):
        return {"worker_cores": options.worker_cores, "worker_threads": options.worker_cores,
                "worker_memory": int(options.worker_memory * GIB),
                "idle_timeout": float(options.idle_timeout_minutes * 60)}

    minutes, max_minutes = idle_timeout / 60, max(idle_timeout, max_idle_timeout) / 60

    return Options(
        Integer("worker_cores", default=1, min=1, max=max_worker_cores, label="Worker cores"),
        Float("worker_memory", default=min(2.0, max_worker_memory_gib), min=0.25, max=max_worker_memory_gib,
              label="Worker memory (GiB)"),
        Float("idle_timeout_minutes", default=round(minutes, 2), min=round(min(1.0, minutes), 2),
              max=round(max_minutes, 2), label="Stop when idle for (minutes)"),
        handler=handler,
    )
