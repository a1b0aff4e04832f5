"""The catalogue stack for tests and benchmarks: free ports, generous budgets, cleanup."""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eolab.config import DEFAULT_CONFIG, StackConfig, load_config
from eolab.stack.postgres import Cluster


def _ports(config: StackConfig) -> list[int]:
    return [config.postgres.port, config.assets.port, config.broker.port, config.tiles.port] + [
        m.port for m in config.demo_members]


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# Ports handed out are written here, one file per process, so that parallel test workers (and two
# suites on one machine) never pick the same range between the bind check and the server's start.
# One directory per account: it must be ours and private, since other accounts (the hub tests' users
# among them) share the temporary directory.
_CLAIMS = Path(tempfile.gettempdir()) / f"eolab-test-ports-{os.getuid()}"


def _started(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), or None if it is gone: a PID alone may be reused."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _claims_dir() -> Path:
    _CLAIMS.mkdir(mode=0o700, exist_ok=True)
    info = _CLAIMS.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise RuntimeError(f"{_CLAIMS} is not a private directory of this account; remove it and run again")
    return _CLAIMS


def _claim(ports: list[int]) -> bool:
    """Claim ``ports`` for this process unless a live process (this one included) already has one of them."""
    directory = _claims_dir()
    me = os.getpid()
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        taken: set[int] = set()
        mine: set[int] = set()
        for path in directory.glob("*.json"):
            try:
                record = json.loads(path.read_text())
                pid, ports_of = int(path.stem), set(record["ports"])
            except (ValueError, KeyError, TypeError, OSError):
                path.unlink(missing_ok=True)  # not a claim this code wrote
                continue
            if _started(pid) != record.get("started"):
                path.unlink(missing_ok=True)  # left by a process that is gone
                continue
            taken |= ports_of
            if pid == me:
                mine = ports_of
        if taken.intersection(ports):
            return False
        tmp = directory / f".{me}.tmp"
        tmp.write_text(json.dumps({"started": _started(me), "ports": sorted(mine | set(ports))}))
        tmp.replace(directory / f"{me}.json")
        return True


def _ephemeral() -> range:
    """The kernel's ephemeral ports: every outgoing connection and every bind to port 0 takes one, so a
    range there can be taken between the claim and the server's start (seen with two test processes)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def _usable(ports: list[int]) -> bool:
    ephemeral = _ephemeral()
    return all(1024 < p < 65536 and p not in ephemeral for p in ports)


def free_port_base(width: int = 8, start: int = 11000) -> int:
    """A port where ``width`` consecutive ports are free on 127.0.0.1 (outside the ephemeral range, and
    not handed out to another test process)."""
    for base in itertools.chain(range(start, 65536 - width, 97), range(10000, start, 97)):
        ports = list(range(base, base + width))
        if _usable(ports) and all(_free(p) for p in ports) and _claim(ports):
            return base
    raise RuntimeError("no free port range on 127.0.0.1")


def _stack_ports() -> list[int]:
    """Every port of the default configuration at offset 0: the stack's, the look-alikes' and the hub's
    (8700-8739 holds the hub and all services but PostgreSQL)."""
    base = load_config(DEFAULT_CONFIG)
    return sorted(set(_ports(base)) | set(range(8700, 8740)))


def free_port_offset(start: int = 20000) -> int:
    """A port offset at which every port of the default configuration is free (and not yet handed out)."""
    ports0 = _stack_ports()
    for offset in itertools.chain(range(start, 57000, 137), range(1000, start, 137)):
        ports = [p + offset for p in ports0]
        if _usable(ports) and all(_free(p) for p in ports) and _claim(ports):
            return offset
    raise RuntimeError("no free port range found on 127.0.0.1")


# A loaded CI machine can make a member miss the default 5 s budget; the broker then skips it for
# health_ttl and results look incomplete. Tests of completeness need generous budgets.
TEST_BROKER = {"port": 8720, "member_timeout": 30.0, "total_timeout": 45.0, "health_ttl": 5.0}


def make_stack_config(run_dir: Path, data_dir: Path, offset: int | None = None) -> StackConfig:
    return load_config(DEFAULT_CONFIG, run_dir=str(run_dir), data_dir=str(data_dir), broker=dict(TEST_BROKER),
                       port_offset=free_port_offset() if offset is None else offset)


def purge(config: StackConfig) -> None:
    """Remove the test cluster's files (it may live outside the run directory, see _postgres.data_dir)."""
    cluster = Cluster(Path(config.run_dir), config.postgres.port)
    for path in (cluster.pgdata, cluster.socket_dir):
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def running_stack(config: StackConfig) -> Iterator[StackConfig]:
    """The stack of ``config`` up for the block; stopped and its database files removed afterwards."""
    from eolab.stack import core as stack

    try:
        stack.up(config, progress=False)
        yield config
    finally:
        stack.down(config)
        purge(config)


def listeners() -> list[tuple[int | None, str, int]]:
    """Every listening TCP socket of this machine: (owning PID or None, address, port), from /proc."""
    import ipaddress

    inodes: dict[str, tuple[str, int]] = {}
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            hex_ip, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_ip)
            # /proc stores each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            inodes[fields[9]] = (str(ipaddress.ip_address(raw)), int(hex_port, 16))
    out, seen = [], set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = fd.readlink().name
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                seen.add(target[8:-1])
                out.append((int(proc.name), *inodes[target[8:-1]]))
    out += [(None, *addr) for inode, addr in inodes.items() if inode not in seen]
    return out


def is_loopback(address: str) -> bool:
    import ipaddress

    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback
