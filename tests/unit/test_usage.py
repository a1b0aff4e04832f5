"""Usage ledger, limits and the bytes counter (eolab.usage), without a hub.

The bytes counter is checked against the real asset server app (uvicorn on 127.0.0.1) reading a
real COG with rasterio: what GDAL counted must be what the server sent."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import socket
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from eolab.usage import Interval, Ledger, _bytes, limit_for, month_bounds, over_limit


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()


def test_intervals_are_cut_at_month_and_day_boundaries(tmp_path):
    ledger = Ledger(tmp_path / "usage.sqlite")
    # 2 cores and 1 GiB from 22:00 on 30 Nov to 02:00 on 1 Dec: 2 h in each month.
    ledger.record_intervals([Interval("alice", "c1", "w1", ts("2026-11-30T22:00"), ts("2026-12-01T02:00"), 2, 2**30)])
    nov, dec = ledger.usage("2026-11")["alice"], ledger.usage("2026-12")["alice"]
    assert nov.core_hours == pytest.approx(4) and dec.core_hours == pytest.approx(4)
    assert dec.memory_gib_hours == pytest.approx(2)
    days = ledger.daily("2026-12")
    assert list(days) == ["2026-12-01"] and days["2026-12-01"]["alice"].core_hours == pytest.approx(4)


def test_a_running_process_is_extended_not_counted_twice(tmp_path):
    ledger = Ledger(tmp_path / "usage.sqlite")
    start = ts("2026-12-05T10:00")
    for minutes in (10, 20, 30, 20):  # written again as it runs; a late, older write does not shorten it
        ledger.record_intervals([Interval("bob", "c", "scheduler", start, start + 60 * minutes, 1, 0)])
    assert ledger.usage("2026-12", "bob")["bob"].core_hours == pytest.approx(0.5)
    assert ledger.usage("2026-12", "nobody")["nobody"].core_hours == 0


def _write_bytes(path, n):
    ledger = Ledger(path)
    for _ in range(n):
        ledger.record_bytes("alice", {"pannonia": 1, "danube": 2}, when=ts("2026-12-05T12:00"))


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "usage.sqlite"
    Ledger(path)
    procs = [multiprocessing.get_context("spawn").Process(target=_write_bytes, args=(path, 200)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert Ledger(path).usage("2026-12")["alice"].bytes_read == {"pannonia": 600, "danube": 1200}


def test_limits_user_then_most_generous_group_then_default():
    limits = {"*": SimpleNamespace(core_hours=10, memory_gib_hours=None),
              "alice": SimpleNamespace(core_hours=1, memory_gib_hours=None),
              "group:staff": SimpleNamespace(core_hours=100, memory_gib_hours=None),
              "group:course": SimpleNamespace(core_hours=5, memory_gib_hours=None)}
    assert limit_for(limits, "alice", ["staff"]).core_hours == 1
    assert limit_for(limits, "bob", ["course", "staff"]).core_hours == 100
    assert limit_for(limits, "carol").core_hours == 10
    assert limit_for({}, "carol") is None


def test_refusal_names_limit_use_and_reset():
    from eolab.usage import UserUsage

    limit = SimpleNamespace(core_hours=2.0, memory_gib_hours=None)
    assert over_limit(UserUsage("alice", core_hours=1.99), limit, "2026-12") is None
    text = over_limit(UserUsage("alice", core_hours=2.5), limit, "2026-12")
    assert "alice has used 2.5 core-hours" in text and "monthly limit is 2 core-hours" in text
    assert "resets on 2027-01-01 00:00 UTC" in text
    with pytest.raises(ValueError, match="YYYY-MM"):
        month_bounds("December")


@pytest.fixture
def asset_server(tmp_path):
    import rasterio
    import uvicorn
    from rasterio.transform import from_origin

    from eolab.stack._assets import create_app

    data = np.random.default_rng(1).integers(0, 10000, (1, 512, 512), dtype=np.uint16)
    with rasterio.open(tmp_path / "b.tif", "w", driver="COG", width=512, height=512, count=1, dtype="uint16",
                       crs="EPSG:32633", transform=from_origin(500000, 5200000, 10, 10), blocksize=256) as dst:
        dst.write(data)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(tmp_path), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)


def test_bytes_gdal_read_are_what_the_asset_server_sent(asset_server):
    import httpx
    import rasterio
    from rasterio.windows import Window

    url = f"{asset_server}/b.tif"
    _bytes.take()
    _bytes.track(url, "pannonia")
    before = httpx.get(f"{asset_server}/_served").json()["bytes"]
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", VSI_CACHE=False), rasterio.open(url) as src:
        src.read(1, window=Window(0, 0, 256, 256))
    served = httpx.get(f"{asset_server}/_served").json()["bytes"] - before
    counted = _bytes.take()
    assert served > 0 and counted == {"pannonia": served}
    assert _bytes.take() == {}  # taken once


def test_operator_cli_reads_the_ledger_and_names_bad_input(tmp_path, monkeypatch, capsys):
    from eolab.cli import main

    for var in ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL", "EOLAB_USAGE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("EOLAB_HUB_USAGE_LIMITS", '{"alice": {"core_hours": 3}}')
    run = tmp_path / "run"
    assert main(["usage", "--run-dir", str(run)]) == 1
    assert "no usage recorded" in capsys.readouterr().err
    ledger = Ledger(run / "hub" / "usage.sqlite")
    ledger.record_intervals([Interval("alice", "c", "scheduler", ts("2026-11-02T10:00"), ts("2026-11-02T11:30"), 2, 2**30)])
    ledger.record_bytes("alice", {"pannonia": 3 * 2**20}, when=ts("2026-11-02T10:30"))
    assert main(["usage", "--run-dir", str(run), "--month", "2026-11", "--daily"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.strip().startswith("alice"))
    assert "3.000" in row and "1.500" in row and "pannonia 3.0 MiB" in row and row.endswith("3 core-hours")
    assert "2026-11-02: alice 3.000 core-h" in out and "limits reset 2026-12-01 00:00 UTC" in out
    assert main(["usage", "--run-dir", str(run), "--month", "11/2026"]) == 1
    assert "is not YYYY-MM" in capsys.readouterr().err


def test_server_clock_writes_a_servers_time_apart_from_clusters(tmp_path):
    """The hub's spawn/stop hooks: a server's row from spawn to stop, extended while it is active,
    counted as its limits (else the hub's default), kept apart from the clusters' core-hours that
    the monthly limits count; a spawn that fails is closed by the next tick."""
    import asyncio

    from eolab.hub.usage import ServerClock

    now = [1_700_000_000.0]
    path = tmp_path / "usage.sqlite"
    clock = ServerClock(path, cores=1.0, memory=2 * 2**30, interval=0.05, clock=lambda: now[0])

    def spawner(name, cpu_limit=None, mem_limit=None):
        return SimpleNamespace(user=SimpleNamespace(name=name), name="", cpu_limit=cpu_limit, mem_limit=mem_limit,
                               active=True)

    async def run():
        alice, bob = spawner("alice"), spawner("bob", cpu_limit=2, mem_limit=2**30)
        clock.started(alice)
        clock.started(bob)
        Ledger(path).record_intervals([Interval("alice", "c1", "scheduler", now[0], now[0] + 1800, 1, 2**30)])
        now[0] += 1800
        await asyncio.sleep(0.2)  # ticks extend both rows to now
        mid = Ledger(path).usage(month="2023-11")
        assert mid["alice"].server_core_hours == pytest.approx(0.5) and mid["bob"].server_core_hours == pytest.approx(1.0)
        now[0] += 1800
        clock.stopped(alice)
        bob.active = False  # e.g. its spawn failed: the next tick closes it at that time
        await asyncio.sleep(0.2)
        now[0] += 3600  # nothing is counted after the stop
        await asyncio.sleep(0.2)

    asyncio.run(run())
    use = Ledger(path).usage(month="2023-11")
    assert use["alice"].server_core_hours == pytest.approx(1.0)
    assert use["alice"].server_memory_gib_hours == pytest.approx(2.0)
    assert use["bob"].server_core_hours == pytest.approx(2.0) and use["bob"].server_memory_gib_hours == pytest.approx(1.0)
    assert use["alice"].core_hours == pytest.approx(0.5)  # the cluster only: what limits count
    assert use["bob"].core_hours == 0
