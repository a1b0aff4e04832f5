"""Background services: real processes started, found again, refused on busy ports, stopped."""

import os
import socket
import sys

import httpx
import pytest

from eolab import _services
from eolab.errors import ServiceError


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_service(tmp_path, name="web"):
    port = free_port()
    cmd = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(tmp_path), str(port)]
    return _services.Service(name=name, cmd=cmd, port=port)


def test_start_is_idempotent_and_stop_ends_the_process(tmp_path):
    service = http_service(tmp_path)
    run_dir = tmp_path / "run"
    assert _services.start(run_dir, service, timeout=20) == "started"
    pid = _services.running_pid(run_dir, "web")
    assert pid and httpx.get(service.url).status_code == 200
    assert _services.start(run_dir, service) == "running"
    assert _services.running_pid(run_dir, "web") == pid
    assert _services.log_file(run_dir, "web").exists()

    assert _services.stop(run_dir, "web") is True
    assert _services.running_pid(run_dir, "web") is None
    with pytest.raises(OSError):
        os.kill(pid, 0)
    assert not _services.pid_file(run_dir, "web").exists()
    assert _services.stop(run_dir, "web") is False


def test_a_reused_pid_is_not_taken_for_the_service(tmp_path):
    # Our own PID runs, but not with the recorded command line.
    _services.write_pid(tmp_path, "ghost", os.getpid(), cmd=["uvicorn", "something-else"])
    assert _services.running_pid(tmp_path, "ghost") is None
    assert _services.stop(tmp_path, "ghost") is False  # and nothing is signalled


def test_busy_port_gives_a_clear_error(tmp_path):
    service = http_service(tmp_path)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", service.port))
        blocker.listen()
        with pytest.raises(ServiceError, match=f"port {service.port} for web is in use"):
            _services.start(tmp_path / "run", service)


def test_a_service_that_dies_reports_its_log(tmp_path):
    service = _services.Service(name="broken", cmd=[sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"],
                                port=free_port())
    with pytest.raises(ServiceError) as info:
        _services.start(tmp_path / "run", service, timeout=20)
    text = str(info.value)
    assert "exited with code 3" in text and "broken.log" in text and "boom" in text
    assert _services.running_pid(tmp_path / "run", "broken") is None
