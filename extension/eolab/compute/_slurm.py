"""Slurm for eolab: Dask workers as Slurm jobs (dask-jobqueue), and a real one-node Slurm cluster.

``new_jobqueue_cluster`` runs from a user's kernel: the scheduler lives in the kernel, each worker is
a Slurm job that exits by itself ``death_timeout`` seconds after the kernel is gone, and closing the
cluster cancels the jobs. Job names carry ``eolab-`` and a hash of the hub, so ``eolab down`` can
cancel whatever a hub's users left behind.

``LocalSlurm`` starts munge, slurmctld and slurmd on 127.0.0.1 (Debian's slurm-wlm + munge) in
about a second: the CI target of the HPC recipe and a way to try it on one machine.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from eolab.errors import EolabError, ServiceError

WRAPPED = ("sbatch", "squeue", "scancel", "sinfo", "scontrol", "srun")


def job_name(hub_id: str | None = None) -> str:
    """Slurm job name of Dask workers started under hub ``hub_id`` (``$EOLAB_HUB_ID``)."""
    from eolab import settings

    hub_id = hub_id or settings.client().hub_id
    return "eolab-" + hashlib.sha1(hub_id.encode()).hexdigest()[:8]


def new_jobqueue_cluster(spec, death_timeout: float = 20.0):
    """A dask-jobqueue ``SLURMCluster``: workers are Slurm jobs of one worker each."""
    if shutil.which("sbatch") is None:
        raise EolabError("Slurm's sbatch is not on PATH", hint="load the site's Slurm module or set SLURM_CONF/PATH")
    from dask_jobqueue import SLURMCluster

    from eolab import settings

    conf = settings.client()
    cores = spec.worker_cores or 1
    memory = f"{spec.worker_memory or 1}GiB"
    cluster = SLURMCluster(
        cores=cores, processes=1, memory=memory, job_name=job_name(),
        queue=conf.slurm_partition,
        walltime=conf.slurm_walltime,
        interface=conf.slurm_interface,
        death_timeout=death_timeout,  # workers leave (and their jobs end) when the kernel is gone
        scheduler_options={"dashboard_address": "127.0.0.1:0"},
        log_directory=conf.slurm_log_dir,
    )
    if spec.adaptive:
        cluster.adapt(minimum_jobs=spec.adaptive[0], maximum_jobs=spec.adaptive[1])
    else:
        cluster.scale(jobs=1 if spec.workers is None else spec.workers)
    return cluster


def jobs(name: str | None = None, env: dict | None = None) -> list[dict]:
    """Queued and running jobs (optionally only those named ``name``): id, name, state, user."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%j|%T|%u"] + (["-n", name] if name else []),
                         capture_output=True, text=True, timeout=30, env=env)
    rows = [line.split("|") for line in out.stdout.splitlines() if line.strip()]
    return [{"id": r[0], "name": r[1], "state": r[2], "user": r[3]} for r in rows]


def cancel_jobs_of(resolved: dict) -> int:
    """Cancel the Slurm jobs of one hub (``eolab down``); returns how many there were."""
    env = {**os.environ, "SLURM_CONF": resolved.get("slurm_conf") or os.environ.get("SLURM_CONF", "")}
    bin_dir = resolved.get("slurm_bin")
    if bin_dir:
        env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
    try:
        found = jobs(job_name(resolved["hub_id"]), env=env)
        if found:
            subprocess.run(["scancel", *[j["id"] for j in found]], env=env, timeout=30, capture_output=True)
    except (OSError, subprocess.SubprocessError):
        return 0
    return len(found)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalSlurm:
    """A real single-node Slurm cluster under ``run_dir`` (root only: slurmd runs jobs as their users)."""

    def __init__(self, run_dir: Path, cpus: int = 8, memory_mb: int = 8000, partition: str = "eolab"):
        self.dir = Path(run_dir).resolve()
        self.cpus, self.memory_mb, self.partition = cpus, memory_mb, partition
        self.conf = self.dir / "slurm.conf"
        self.bin = self.dir / "bin"
        self.munge_socket = self.dir / "munge" / "munge.socket"
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def env(self) -> dict[str, str]:
        """What every Slurm client process needs."""
        return {"SLURM_CONF": str(self.conf), "PATH": f"{self.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}"}

    def _write(self) -> None:
        for sub in ("munge", "state/ctld", "state/d", "logs", "bin", "jobs"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        (self.dir / "logs").chmod(0o777)  # jobs of other users write their logs here
        (self.dir / "jobs").chmod(0o1777)
        from eolab.settings import hub_config_dir

        template = hub_config_dir() / "slurm" / "slurm.conf.in"
        self.conf.write_text(template.read_text().format(
            ctld_port=_free_port(), slurmd_port=_free_port(), munge_socket=self.munge_socket,
            state=self.dir / "state", logs=self.dir / "logs", cpus=self.cpus, memory_mb=self.memory_mb,
            partition=self.partition))
        # dask-gateway calls squeue/scancel with an empty environment: wrappers carry SLURM_CONF.
        for tool in WRAPPED:
            wrapper = self.bin / tool
            wrapper.write_text(f"#!/bin/sh\nSLURM_CONF={self.conf} exec /usr/bin/{tool} \"$@\"\n")
            wrapper.chmod(0o755)

    def start(self, timeout: float = 30.0) -> "LocalSlurm":
        missing = [tool for tool in ("munged", "mungekey", "slurmctld", "slurmd", "sbatch") if not shutil.which(tool)
                   and not Path("/usr/sbin", tool).exists()]
        if missing:
            raise ServiceError(f"Slurm/munge programs missing: {', '.join(missing)}",
                               hint="apt-get install -y --no-install-recommends slurm-wlm munge")
        if os.geteuid() != 0:
            raise ServiceError("a local Slurm cluster needs root (slurmd runs jobs as their users)")
        self._write()
        key = self.dir / "munge" / "munge.key"
        if not key.exists():
            subprocess.run(["/usr/sbin/mungekey", "-c", "-k", str(key)], check=True, capture_output=True)
        key.chmod(0o400)
        logs = self.dir / "logs"
        self._spawn("munged", ["/usr/sbin/munged", "-F", "--force", f"--key-file={key}",
                               f"--socket={self.munge_socket}", f"--pid-file={self.dir / 'munge' / 'munged.pid'}",
                               f"--seed-file={self.dir / 'munge' / 'seed'}", f"--log-file={logs / 'munged.log'}"])
        self._wait(lambda: self.munge_socket.exists(), timeout, "munged")
        self.munge_socket.chmod(0o777)
        self._spawn("slurmctld", ["/usr/sbin/slurmctld", "-D", "-c", "-f", str(self.conf)])
        self._spawn("slurmd", ["/usr/sbin/slurmd", "-D", "-N", "localhost", "-f", str(self.conf)])
        self._wait(self._idle, timeout, "slurmd (sinfo never showed the node idle)")
        return self

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.dir / "logs" / f"{name}.out", "ab")
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env={**os.environ, "SLURM_CONF": str(self.conf)},
                                            start_new_session=True)
        log.close()

    def _idle(self) -> bool:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10,
                             env={**os.environ, **self.env})
        return out.stdout.strip() == "idle"

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise ServiceError(f"{name} exited with code {proc.returncode} while starting",
                                       hint=f"see {self.dir / 'logs'}")
            if ready():
                return
            time.sleep(0.1)
        raise ServiceError(f"{what} not ready within {timeout:.0f} s", hint=f"see {self.dir / 'logs'}")

    def jobs(self, name: str | None = None) -> list[dict]:
        return jobs(name, env={**os.environ, **self.env})

    def stop(self) -> None:
        """Cancel every job, wait for them to end (or job processes outlive slurmd), then stop the daemons."""
        env = {**os.environ, **self.env}
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            subprocess.run(["scancel", "--full", "-p", self.partition], env=env, capture_output=True, timeout=30)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.jobs():
                time.sleep(0.2)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
