"""Unit tests cannot reach the network: sockets may connect to loopback only (pytest-socket).

Servers a unit test starts (a LocalCluster, an in-process app) listen on 127.0.0.1; anything else
fails at once with SocketBlockedError instead of leaving the machine.
"""

import pytest
import pytest_socket

LOOPBACK = ["127.0.0.1", "::1", "localhost"]


@pytest.fixture(autouse=True)
def _loopback_only():
    # distributed names in-process clusters after the machine's outward address, found with a UDP
    # connect to 8.8.8.8 (no packet is sent); offline it falls back to 127.0.0.1, which we set here.
    try:
        from distributed.comm import inproc

        inproc.global_manager._ip = inproc.global_manager._ip or "127.0.0.1"
    except ImportError:
        pass
    pytest_socket.socket_allow_hosts(LOOPBACK, allow_unix_socket=True)
    yield
    pytest_socket.enable_socket()
