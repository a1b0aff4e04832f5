"""A PostgreSQL + PostGIS cluster under the run directory, for the pgstac member databases.

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres``
system user. It listens on 127.0.0.1 and a private socket directory only.

Least privilege against other local accounts (``pg_hba.conf`` below): the unix socket sits in a
0700 directory of the cluster's owner and takes only the superuser by ``peer``; TCP on 127.0.0.1
takes passwords only (``scram-sha-256``). Passwords are generated at ``init`` and kept in
``<run_dir>/state/postgres/<role>.password`` (directory 0700, files 0600, the stack's account).
Roles: the superuser (the stack: migrations and loads), :data:`READER` (demo members: pgstac's
``pgstac_read``, ``CONNECT`` on demo member databases only) and :data:`WRITER` (the workspace:
``pgstac_ingest``, ``CONNECT`` on the workspace database only). ``PUBLIC`` may connect nowhere.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from eolab import _services
from eolab.errors import ServiceError

SUPERUSER = "postgres"
READER = "eolab_reader"  # demo members' STAC APIs: read-only
WRITER = "eolab_workspace"  # the workspace's STAC API: writes its own database only
HBA_MARKER = "# eolab: least privilege"
HBA = f"""{HBA_MARKER} (written by eolab.stack.postgres; other local accounts get nothing without a password)
# The socket directory is 0700: only the cluster's own account reaches it, as the superuser.
local   all   {SUPERUSER}   peer
host    all   all           127.0.0.1/32   scram-sha-256
"""
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


def password_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "state" / "postgres"


def password_file(run_dir: Path, role: str) -> Path:
    """Where the password of ``role`` is kept (mode 0600, readable by the stack's account only)."""
    return password_dir(run_dir) / f"{role}.password"


def read_password(path: str | os.PathLike) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ServiceError(f"cannot read the PostgreSQL password file {path}: {exc.strerror}",
                           hint="the stack's services run as the account that ran 'eolab catalog up'") from None


def ensure_password(run_dir: Path, role: str) -> str:
    """The role's password, generated (0600, in a 0700 directory) if it is not kept yet."""
    path = password_file(run_dir, role)
    try:
        value = path.read_text().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    value = secrets.token_hex(24)
    # Created 0600 before anything is written: never readable by other accounts.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value


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

    def dsn(self, database: str = "postgres", role: str = SUPERUSER) -> str:
        """Connection string with ``role``'s password (hex: nothing to quote)."""
        password = ensure_password(self.run_dir, role)
        return f"postgresql://{role}:{password}@{self.host}:{self.port}/{database}"

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
        _prepare_dir(self.socket_dir)
        # initdb reads the superuser's password from a file the cluster's owner can read: a 0600
        # copy in the private socket directory, removed right after.
        pwfile = self.socket_dir / "initdb.pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(ensure_password(self.run_dir, SUPERUSER) + "\n")
        try:
            self._chown(pwfile)
            _run([str(bindir / "initdb"), "-D", str(self.pgdata), "-U", SUPERUSER, f"--pwfile={pwfile}",
                  "--auth-local=peer", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"],
                 "initdb")
        finally:
            pwfile.unlink(missing_ok=True)
        self._write_hba()

    def _chown(self, path: Path) -> None:
        if _as_root():
            entry = pwd.getpwnam(SUPERUSER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    @property
    def hardened(self) -> bool:
        try:
            return HBA_MARKER in (self.pgdata / "pg_hba.conf").read_text()
        except OSError:
            return False

    def _write_hba(self) -> None:
        hba = self.pgdata / "pg_hba.conf"
        hba.write_text(HBA)
        hba.chmod(0o600)
        self._chown(hba)

    def _harden_legacy(self) -> None:
        """A cluster made before passwords (``--auth=trust``): give the superuser its password while
        trust still lets us in, then replace pg_hba.conf and reload."""
        import psycopg
        from psycopg import sql

        password = ensure_password(self.run_dir, SUPERUSER)
        with psycopg.connect(f"postgresql://{SUPERUSER}@{self.host}:{self.port}/postgres", autocommit=True,
                             connect_timeout=10) as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(SUPERUSER),
                                                                     sql.Literal(password)))
            self._write_hba()
            conn.execute("SELECT pg_reload_conf()")

    def start(self) -> str:
        self.init()
        if self.postmaster_pid():
            if not self.hardened:
                self._harden_legacy()
            return "running"
        if _services.port_in_use(self.port, self.host):
            raise ServiceError(
                f"port {self.port} for postgres is in use by another program",
                hint="stop that program or choose other ports (EOLAB_PORT_OFFSET or the config file)",
            )
        _prepare_dir(self.socket_dir)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.touch(mode=0o600)
        self.log.chmod(0o600)  # the server's log: connections, roles, statements that failed
        if _as_root():
            entry = pwd.getpwnam(SUPERUSER)
            os.chown(self.log, entry.pw_uid, entry.pw_gid)
        linked = _services.log_file(self.run_dir, "postgres")
        if linked != self.log and not linked.exists():
            linked.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
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
        if not self.hardened:
            self.wait_accepting_trust()
            self._harden_legacy()
        return "started"

    def wait_accepting_trust(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(f"postgresql://{SUPERUSER}@{self.host}:{self.port}/postgres", connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise ServiceError(f"PostgreSQL on port {self.port} does not accept connections")
                time.sleep(0.2)

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

    def ensure_roles(self) -> None:
        """The reader and writer login roles, with the passwords kept in the state directory (kept in
        step on every ``up``: a lost password file gets a new password). ``PUBLIC`` may connect to
        no database; member databases are opened to their role by :meth:`grant`."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            for role in (READER, WRITER):
                password = ensure_password(self.run_dir, role)
                verb = "ALTER" if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() \
                    else "CREATE"
                conn.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}")
                             .format(sql.Identifier(role), sql.Literal(password)))
            for database in ("postgres", "template1"):
                conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC")
                             .format(sql.Identifier(database)))

    def grant(self, database: str, role: str) -> None:
        """Open a migrated pgstac database to ``role`` only: READER reads (``pgstac_read``), WRITER
        writes (``pgstac_ingest``)."""
        import psycopg
        from psycopg import sql

        pgstac_role = {READER: "pgstac_read", WRITER: "pgstac_ingest"}[role]
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(pgstac_role), sql.Identifier(role)))
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))
            # pgstac's ingest functions stage rows in temporary tables.
            rights = "CONNECT, TEMPORARY" if role == WRITER else "CONNECT"
            conn.execute(sql.SQL("GRANT " + rights + " ON DATABASE {} TO {}").format(sql.Identifier(database),
                                                                                 sql.Identifier(role)))
