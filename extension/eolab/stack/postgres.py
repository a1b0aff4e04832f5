"""A PostgreSQL + PostGIS cluster under the run directory, for the pgstac member databases.

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres``
system user. It listens on 127.0.0.1 and a private socket directory only.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from eolab import _services
from eolab.errors import ServiceError

SUPERUSER = "postgres"
INSTALL_HINT = "install it with 'apt-get install postgresql-15-postgis-3' (make up does this as root)"


def find_bindir() -> Path:
    """The directory holding initdb/pg_ctl: ``$EOLAB_POSTGRES_BINDIR``, else the newest Debian
    PostgreSQL that has PostGIS."""
    from eolab import settings

    override = settings.stack().postgres_bindir
    if override:
        if not (Path(override) / "initdb").exists():
            raise ServiceError(f"PostgreSQL server binaries (initdb, pg_ctl) not found in {override}",
                               hint="fix EOLAB_POSTGRES_BINDIR or unset it")
        return Path(override)
    root = Path("/usr/lib/postgresql")
    versions = sorted((p for p in root.glob("*") if (p / "bin" / "initdb").exists()),
                      key=lambda p: int(p.name) if p.name.isdigit() else 0, reverse=True)
    if not versions:
        raise ServiceError("PostgreSQL server binaries (initdb, pg_ctl) not found", hint=INSTALL_HINT)
    for version in versions:
        if list(Path(f"/usr/share/postgresql/{version.name}/extension").glob("postgis.control")):
            return version / "bin"
    raise ServiceError(f"PostGIS is not installed for PostgreSQL {versions[0].name}", hint=INSTALL_HINT)


def _as_root() -> bool:
    return os.geteuid() == 0


def _owner_can_reach(path: Path) -> bool:
    if not _as_root():
        return True
    result = subprocess.run(["su", SUPERUSER, "-s", "/bin/sh", "-c", f"test -x '{path}'"], capture_output=True)
    return result.returncode == 0


def data_dir(run_dir: Path) -> Path:
    """Where the cluster lives: in the run directory, or (as root, when the ``postgres`` user
    cannot reach it, e.g. under /root) in a directory of its own keyed by the run directory."""
    preferred = run_dir.resolve() / "postgres"
    if _owner_can_reach(run_dir.resolve()):
        return preferred
    key = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:10]
    return Path("/var/tmp") / f"eolab-postgres-{key}"


def _run(cmd: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    if _as_root():
        cmd = ["su", SUPERUSER, "-s", "/bin/sh", "-c", " ".join(f"'{c}'" for c in cmd)]
    result = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise ServiceError(f"{what} failed: {detail[-1] if detail else 'exit code ' + str(result.returncode)}")
    return result


def _prepare_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if _as_root():
        entry = pwd.getpwnam(SUPERUSER)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)


class Cluster:
    """The PostgreSQL cluster of one run directory."""

    def __init__(self, run_dir: Path, port: int, host: str = "127.0.0.1"):
        self.run_dir = run_dir
        self.port = port
        self.host = host
        self.pgdata = data_dir(run_dir)
        self.socket_dir = self.pgdata.parent / (self.pgdata.name + "-socket")
        self.log = _services.log_file(run_dir, "postgres")
        if not self.pgdata.is_relative_to(run_dir.resolve()):
            # The postgres user cannot write into the run directory either; link the log there.
            self.log = self.pgdata.parent / (self.pgdata.name + ".log")

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    @property
    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def postmaster_pid(self) -> int | None:
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        cmdline = _services._cmdline(pid)
        return pid if cmdline and "postgres" in cmdline[0] else None

    def init(self) -> None:
        if self.initialised:
            return
        bindir = find_bindir()
        if _as_root() and shutil.which("su") is None:
            raise ServiceError("running as root needs 'su' to start PostgreSQL as the postgres user")
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            if _as_root():
                raise ServiceError("system user 'postgres' does not exist", hint=INSTALL_HINT)
        _prepare_dir(self.pgdata)
        _run([str(bindir / "initdb"), "-D", str(self.pgdata), "-U", SUPERUSER, "--auth=trust",
              "--encoding=UTF8", "--locale=C.UTF-8"], "initdb")

    def start(self) -> str:
        self.init()
        if self.postmaster_pid():
            return "running"
        if _services.port_in_use(self.port, self.host):
            raise ServiceError(
                f"port {self.port} for postgres is in use by another program",
                hint="stop that program or choose other ports (EOLAB_PORT_OFFSET or the config file)",
            )
        _prepare_dir(self.socket_dir)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        if _as_root():
            entry = pwd.getpwnam(SUPERUSER)
            os.chown(self.log, entry.pw_uid, entry.pw_gid)
        linked = _services.log_file(self.run_dir, "postgres")
        if linked != self.log and not linked.exists():
            linked.parent.mkdir(parents=True, exist_ok=True)
            linked.symlink_to(self.log)
        options = f"-h {self.host} -p {self.port} -k {self.socket_dir} -c max_connections=200"
        try:
            _run([str(find_bindir() / "pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start"], "starting PostgreSQL")
        except ServiceError as exc:
            lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
            raise ServiceError(f"starting PostgreSQL failed: {lines[-1] if lines else exc.message}",
                               hint=f"see {self.log}")
        pid = self.postmaster_pid()
        if pid:
            _services.write_pid(self.run_dir, "postgres", pid, match="postgres", port=self.port)
        return "started"

    def stop(self) -> bool:
        if not self.postmaster_pid():
            _services.pid_file(self.run_dir, "postgres").unlink(missing_ok=True)
            return False
        _run([str(find_bindir() / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"], "stopping PostgreSQL")
        _services.pid_file(self.run_dir, "postgres").unlink(missing_ok=True)
        return True

    def wait_accepting(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ServiceError(f"PostgreSQL on port {self.port} does not accept connections: {exc}".splitlines()[0])
                time.sleep(0.2)

    def ensure_database(self, name: str) -> bool:
        """Create the database unless it exists (its contents are kept); True if it was created."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return False
            conn.execute(f'CREATE DATABASE "{name}"')
            return True

    def recreate_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
