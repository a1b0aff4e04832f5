"""Least privilege against another local account on the same machine.

A throwaway system account (made with ``useradd``, removed afterwards) probes the running stack
with ``runuser``: every attempt must be refused, and each test also shows the legitimate path (the
stack's own account, the members' own roles, a search) still works. All traffic is to 127.0.0.1.
"""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from eolab import _guard
from eolab.stack import postgres
from eolab.stack.postgres import READER, SUPERUSER, WRITER, Cluster

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: the test creates a second local account (useradd) and runs "
                              "probes as it (runuser)")


@pytest.fixture(scope="module")
def stranger():
    name = f"eolab-probe-{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def as_user(user: str, *cmd: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/", "PGCONNECT_TIMEOUT": "5"}
    return subprocess.run(["runuser", "-u", user, "--", "env", "-i", *[f"{k}={v}" for k, v in {**base, **(env or {})}.items()],
                           *cmd], capture_output=True, text=True, timeout=60)


@contextmanager
def parents_open(path: Path):
    """Open every parent directory of ``path`` to others for the block (restored after): a refusal
    must then come from the file itself, not from a private directory above it."""
    changed = []
    for parent in list(path.resolve().parents)[::-1]:
        mode = stat.S_IMODE(parent.stat().st_mode)
        if not mode & 0o001:
            parent.chmod(mode | 0o001)
            changed.append((parent, mode))
    try:
        yield
    finally:
        for parent, mode in reversed(changed):
            parent.chmod(mode)


def psql(cluster: Cluster) -> str:
    return str(postgres.find_bindir() / "psql")


def member_db(config, writable: bool) -> str:
    return next(m.database for m in config.demo_members if m.writable == writable)


def test_postgres_refuses_every_role_without_its_password(catalog_stack, stranger):
    config = catalog_stack
    cluster = Cluster(Path(config.run_dir), config.postgres.port, config.host)
    for role in (SUPERUSER, READER, WRITER):
        for password in (None, "trust", "wrong-password"):
            conninfo = f"host=127.0.0.1 port={config.postgres.port} user={role} dbname=postgres"
            probe = as_user(stranger, psql(cluster), "-w", conninfo, "-c", "SELECT 1",
                            env={"PGPASSWORD": password} if password else None)
            assert probe.returncode != 0, f"{role} with password {password!r}: {probe.stdout}"
            assert "password" in probe.stderr, probe.stderr  # refused by authentication, not by chance
    # The legitimate path: the stack's account with the kept passwords, each role where it belongs.
    with psycopg.connect(cluster.dsn(), connect_timeout=5) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (True,)
    demo_db = member_db(config, writable=False)
    with psycopg.connect(cluster.dsn(demo_db, READER), connect_timeout=5) as conn:
        assert conn.execute("SELECT count(*) FROM pgstac.items").fetchone()[0] > 0


def test_roles_hold_only_their_own_rights(catalog_stack):
    config = catalog_stack
    cluster = Cluster(Path(config.run_dir), config.postgres.port, config.host)
    demo_db, workspace_db = member_db(config, writable=False), member_db(config, writable=True)
    with psycopg.connect(cluster.dsn(demo_db, READER), autocommit=True) as conn:
        for statement in ("DELETE FROM pgstac.items", "CREATE TABLE public.x (i int)",
                          "COPY pgstac.items TO PROGRAM 'true'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    # The reader never reaches the workspace, the writer never a demo member, nobody the postgres database.
    for role, database in ((READER, workspace_db), (WRITER, demo_db), (READER, "postgres"), (WRITER, "postgres")):
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            psycopg.connect(cluster.dsn(database, role), connect_timeout=5)
    with psycopg.connect(cluster.dsn(workspace_db, WRITER), autocommit=True) as conn:
        assert conn.execute("SELECT pg_has_role('pgstac_ingest', 'MEMBER')").fetchone() == (True,)
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
    # The members' STAC APIs run with these roles and still answer searches.
    pannonia = config.member_url(config.member("pannonia"))
    page = httpx.get(f"{pannonia}/search", params={"limit": 1}, timeout=30).raise_for_status().json()
    assert len(page["features"]) == 1


def test_postgres_socket_is_closed_to_other_accounts(catalog_stack, stranger):
    config = catalog_stack
    cluster = Cluster(Path(config.run_dir), config.postgres.port, config.host)
    assert stat.S_IMODE(cluster.socket_dir.stat().st_mode) == 0o700
    with parents_open(cluster.socket_dir):
        probe = as_user(stranger, psql(cluster), "-w", "-h", str(cluster.socket_dir), "-p", str(config.postgres.port),
                        "-U", SUPERUSER, "-d", "postgres", "-c", "SELECT 1")
    assert probe.returncode != 0
    assert "Permission denied" in probe.stderr, probe.stderr
    # The cluster's own account still gets in over the socket (peer), as the superuser only.
    owner = SUPERUSER if os.geteuid() == 0 else None
    if owner:
        ok = as_user(owner, psql(cluster), "-w", "-h", str(cluster.socket_dir), "-p", str(config.postgres.port),
                     "-U", SUPERUSER, "-d", "postgres", "-tA", "-c", "SELECT current_user")
        assert ok.returncode == 0 and ok.stdout.strip() == SUPERUSER, ok.stderr


def test_password_files_are_private(catalog_stack, stranger):
    config = catalog_stack
    run_dir = Path(config.run_dir)
    folder = postgres.password_dir(run_dir)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for role in (SUPERUSER, READER, WRITER):
        path = postgres.password_file(run_dir, role)
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.geteuid()
        with parents_open(folder), _opened(folder):
            # Even with the directory opened up, the file's own mode refuses.
            probe = as_user(stranger, "cat", str(path))
        assert probe.returncode != 0 and "Permission denied" in probe.stderr
        assert path.read_text().strip()  # the stack's account reads it
    with parents_open(folder):
        probe = as_user(stranger, "ls", str(folder))
    assert probe.returncode != 0 and "Permission denied" in probe.stderr


@contextmanager
def _opened(folder: Path):
    mode = stat.S_IMODE(folder.stat().st_mode)
    folder.chmod(mode | 0o005)
    try:
        yield
    finally:
        folder.chmod(mode)


# ---- the stack's HTTP services: members, the workspace, the broker -------------------------------

PROBE = """
import json, sys, urllib.request, urllib.error
url, auth, forwarded = sys.argv[1], sys.argv[2], sys.argv[3]
headers = {"Authorization": auth} if auth else {}
if forwarded:
    headers["X-Forwarded-For"] = forwarded
req = urllib.request.Request(url, headers=headers)
try:
    with urllib.request.urlopen(req, timeout=30) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
"""


def http_status(user: str, url: str, authorization: str = "", forwarded: str = "") -> int:
    # The system python: the probe needs nothing of the stack's own installation.
    probe = as_user(user, "/usr/bin/python3", "-c", PROBE, url, authorization, forwarded)
    assert probe.returncode == 0, probe.stderr
    return int(probe.stdout.strip())


def internal_urls(config) -> dict[str, str]:
    urls = {f"member {m.id}": config.member_url(m) + "/search?limit=1" for m in config.demo_members}
    urls["workspace collections"] = config.member_url(config.member("workspace")) + "/collections"
    urls["broker"] = config.broker_url + "/search?limit=1"
    # The tile service: its base layer (rendered from the stack's files) and a quicklook of an item,
    # which it reads from the guarded member and asset server on the caller's behalf.
    urls["tiles base layer"] = config.tiles_url + "/base/info"
    urls["tiles styles"] = config.tiles_url + "/styles"
    urls["asset server (a COG)"] = f"{config.assets_url}/{_a_cog(config)}"
    return urls


def _a_cog(config) -> str:
    return next(Path(config.data_dir).resolve().rglob("*.tif")).relative_to(Path(config.data_dir).resolve()).as_posix()


def test_members_broker_tiles_and_assets_refuse_another_account_without_the_token(catalog_stack, stranger):
    config = catalog_stack
    token = _guard.read_secret(_guard.token_file(config.run_dir))
    assert token
    for name, url in internal_urls(config).items():
        assert http_status(stranger, url) == 401, name
        assert http_status(stranger, url, "Bearer not-the-token") == 403, name
        # A forwarded-for header does not make the probe someone else.
        assert http_status(stranger, url, forwarded="127.0.0.1") == 401, name
        # The hub user's own hub token is not the service token either.
        assert http_status(stranger, url, "token " + token) == 401, name
        # Legitimate paths: a holder of the token (a hub user's kernel), and the stack's own account.
        assert http_status(stranger, url, f"Bearer {token}") == 200, name
        assert httpx.get(url, timeout=30).status_code == 200, name
    # Liveness stays open and says nothing of the data.
    health = http_status(stranger, config.broker_url + "/_health")
    assert health == 200
    with parents_open(_guard.token_file(config.run_dir)):
        probe = as_user(stranger, "cat", str(_guard.token_file(config.run_dir)))
    assert probe.returncode != 0 and "Permission denied" in probe.stderr


SEARCH = """
from eolab.search import Catalogue
from eolab.errors import EolabError
try:
    with Catalogue() as cat:
        page = cat.client.search(collections=["sentinel-2-l2a"], max_items=3).item_collection()
        print("items", len(page))
except EolabError as exc:
    print("refused", exc)
"""


def test_a_notebook_search_as_another_account_needs_the_hub_given_token(catalog_stack, stranger):
    """What a hub user's kernel does (eolab's client with $EOLAB_SERVICE_TOKEN from the hub) works;
    the same code without the token is refused."""
    import sys

    config = catalog_stack
    token = _guard.read_secret(_guard.token_file(config.run_dir))
    src = str(Path(_guard.__file__).resolve().parents[1])
    env = {"PYTHONPATH": src, "EOLAB_CATALOG_URL": config.broker_url, "HOME": "/tmp"}
    with parents_open(Path(sys.executable)), parents_open(Path(src) / "eolab"):
        refused = as_user(stranger, sys.executable, "-c", SEARCH, env=env)
        allowed = as_user(stranger, sys.executable, "-c", SEARCH, env={**env, "EOLAB_SERVICE_TOKEN": token})
    assert refused.stdout.startswith("refused") and "401" in refused.stdout, refused.stdout + refused.stderr
    assert allowed.stdout.strip() == "items 3", allowed.stdout + allowed.stderr


def _secrets_of(config) -> dict[str, str]:
    run_dir = Path(config.run_dir)
    found = {"service token": _guard.read_secret(_guard.token_file(run_dir)) or ""}
    for role in (SUPERUSER, READER, WRITER):
        found[f"{role} password"] = postgres.password_file(run_dir, role).read_text().strip()
    from eolab.stack import workspace

    found["workspace token"] = workspace.read_token(run_dir) or ""
    return {k: v for k, v in found.items() if v}


def test_service_logs_are_private_and_hold_no_secrets(catalog_stack, stranger):
    """Every log of the stack (members, broker, assets, tiles, PostgreSQL's) is 0600 in a 0700
    folder; another account cannot read one even with the folders opened; none holds a token or a
    password. The stack's account still reads them (what `eolab status` and error hints show)."""
    config = catalog_stack
    folder = Path(config.run_dir) / "logs"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    logs = sorted(folder.glob("*.log"))
    assert {"broker.log", "postgres.log"} <= {p.name for p in logs}, logs
    secrets_ = _secrets_of(config)
    assert {"service token", "workspace token", f"{READER} password"} <= set(secrets_)
    for log in logs:
        real = log.resolve()  # PostgreSQL's log lives beside its data directory, linked here
        assert stat.S_IMODE(real.stat().st_mode) == 0o600, f"{log.name}: {oct(real.stat().st_mode)}"
        text = real.read_text(errors="replace")  # the legitimate reader: the stack's own account
        for what, value in secrets_.items():
            assert value not in text, f"{log.name} holds the {what}"
        with parents_open(real), _opened(real.parent):
            probe = as_user(stranger, "cat", str(real))
        assert probe.returncode != 0 and "Permission denied" in probe.stderr, (log.name, probe.stdout[:200])


READ = """
from rasterio.windows import Window
from eolab.data import access
from eolab.errors import EolabError

def read(uri):
    import rasterio
    with rasterio.open(uri) as src:
        return src.read(1, window=Window(0, 0, 16, 16))

try:
    print("pixels", access.read_with_access(access.AccessSpec("demo", retries=0), URL, read).size)
except EolabError as exc:
    print("refused", exc)
"""


def test_a_kernel_as_another_account_reads_assets_only_with_the_hub_given_token(catalog_stack, stranger):
    """GDAL in a hub user's kernel or worker (another account) sends the service token to the stack's
    asset server, and to no other address; without it the read is refused."""
    import sys

    config = catalog_stack
    token = _guard.read_secret(_guard.token_file(config.run_dir))
    src = str(Path(_guard.__file__).resolve().parents[1])
    url = f"{config.assets_url}/{_a_cog(config)}"
    code = f"URL = {url!r}\n" + READ
    env = {"PYTHONPATH": src, "EOLAB_ASSETS_URL": config.assets_url, "HOME": "/tmp",
           "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
    with parents_open(Path(sys.executable)), parents_open(Path(src) / "eolab"):
        refused = as_user(stranger, sys.executable, "-c", code, env=env)
        allowed = as_user(stranger, sys.executable, "-c", code, env={**env, "EOLAB_SERVICE_TOKEN": token})
        # The token is for the asset server only: another loopback address does not get it.
        elsewhere = as_user(stranger, sys.executable, "-c",
                            "from eolab.data import access\n"
                            f"print(access.service_headers({config.broker_url + '/x'!r}), "
                            f"access.service_headers({url!r}) == {{'Authorization': 'Bearer ' + {token!r}}})",
                            env={**env, "EOLAB_SERVICE_TOKEN": token})
    assert refused.stdout.startswith("refused") and "401" in refused.stdout, refused.stdout + refused.stderr
    assert allowed.stdout.strip() == "pixels 256", allowed.stdout + allowed.stderr
    assert elsewhere.stdout.strip() == "{} True", elsewhere.stdout + elsewhere.stderr
