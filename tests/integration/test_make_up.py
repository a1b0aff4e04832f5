"""The README's commands through the real processes: make up -> curl /search -> make down."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from eolab import _services
from eolab.testing.hub import remove_system_users
from eolab.testing.stack import make_stack_config, purge

ROOT = Path(__file__).resolve().parents[2]


def run(cmd, env, timeout=600):
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "eolab", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


PREFIX = "eolabm-"  # as root, demo mode runs each login as system user PREFIX + login
ACCOUNTS = [PREFIX + name for name in ("alice", "bob", "admin")]


@pytest.fixture
def stack_env(small_demo, tmp_path):
    # As root the demo users' own accounts must reach the run directory (pytest's tmp root is private).
    run_dir = Path(tempfile.mkdtemp(prefix="eolab-make-up-", dir="/tmp")) if os.geteuid() == 0 else tmp_path
    run_dir.chmod(0o711)
    config = make_stack_config(run_dir / "run", small_demo)
    offset = config.assets.port - 8710
    env = {**os.environ, "EOLAB_RUN_DIR": str(config.run_dir), "EOLAB_DATA_DIR": str(small_demo),
           "EOLAB_PORT_OFFSET": str(offset), "EOLAB_HUB_SYSTEM_USER_PREFIX": PREFIX}
    env.pop("EOLAB_CATALOG_CONFIG", None)
    yield config, env
    cli("down", env=env)
    purge(config)
    if os.geteuid() == 0:
        remove_system_users(ACCOUNTS)
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_up_curl_search_make_down(stack_env):
    config, env = stack_env
    started = run(["make", "up"], env)
    assert started.returncode == 0, started.stderr[-2000:]
    for member in config.demo_members:
        assert config.member_url(member) in started.stdout  # it says what runs where
    hub_port = 8700 + int(env["EOLAB_PORT_OFFSET"])
    assert f"http://127.0.0.1:{hub_port}/hub/login" in started.stdout
    # One generated password per login, printed once; the next `make up` names the file instead.
    printed = dict(re.findall(r"(?:user|admin) (\w+): password (\S+)", started.stdout))
    from eolab import hub

    assert printed == hub.credentials(config)["passwords"] and set(printed) == {"alice", "bob", "admin"}
    assert len(set(printed.values())) == 3
    login_page = httpx.get(f"http://127.0.0.1:{hub_port}/hub/login", timeout=30)
    assert login_page.status_code == 200 and "password" in login_page.text.lower()

    url = f"{config.member_url(config.member('pannonia'))}/search?limit=3"
    if shutil.which("curl"):
        answer = subprocess.run(["curl", "-sf", url], capture_output=True, text=True, timeout=30)
        assert answer.returncode == 0
        body = httpx.Response(200, content=answer.stdout.encode()).json()
    else:
        body = httpx.get(url).json()
    assert body["type"] == "FeatureCollection" and len(body["features"]) == 3

    federated = httpx.get(f"{config.broker_url}/search", params={"limit": 5}, timeout=30).json()
    assert len(federated["features"]) == 5 and federated.get("federation:missing", []) == []

    pids = {name: _services.running_pid(config.run_dir, name)
            for name in ["assets", "broker"] + [f"member-{m.id}" for m in config.demo_members]}
    assert all(pids.values())
    again = run(["make", "up"], env)  # idempotent
    assert again.returncode == 0, again.stderr[-2000:]
    assert not any(password in again.stdout for password in printed.values())
    assert str(hub.hub_dir(config) / "logins.json") in again.stdout
    assert all(_services.running_pid(config.run_dir, n) == pid for n, pid in pids.items())

    stopped = run(["make", "down"], env)
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    ports = [config.postgres.port, config.assets.port, config.broker.port, config.tiles.port, hub_port] + [
        m.port for m in config.demo_members]
    assert not any(_services.port_in_use(p) for p in ports)


def test_busy_port_is_one_clear_line_and_nothing_starts(stack_env):
    config, env = stack_env
    import socket

    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the port may be in TIME_WAIT
        blocker.bind(("127.0.0.1", config.member("danube").port))
        blocker.listen()
        result = cli("catalog", "up", "-q", env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert f"port {config.member('danube').port} for member-danube is in use" in lines[0]
    assert not any(_services.port_in_use(p) for p in (config.postgres.port, config.assets.port, config.broker.port))


def test_missing_postgresql_is_one_clear_line(stack_env, tmp_path):
    _, env = stack_env
    result = cli("catalog", "up", "-q", env={**env, "EOLAB_POSTGRES_BINDIR": str(tmp_path / "no-postgres")})
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "PostgreSQL server binaries (initdb, pg_ctl) not found" in result.stderr
