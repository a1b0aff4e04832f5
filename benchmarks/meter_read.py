"""COG reads through the hub's byte meter vs. straight to the asset server.

On the hub, kernels and Dask workers read through the byte meter (``eolab/usage/_meter.py``, GDAL's
proxy: one more loopback hop, one connection per request, every byte counted). This prints what
that costs. A real asset server (uvicorn) and a real meter (its own process, as on the hub) serve
the demo COGs; each round reads one set of items through the meter and another set directly (the
arms' order alternating, GDAL's caches cleared between), 4 threads at once as Dask's threads read,
each reading B04 and B08 of its item (the demo's COGs are 256 × 256 px, one block each:
per-request costs dominate, the worst case for a proxy). It also checks that the meter counted
every byte the asset server sent.

Run: ``python benchmarks/meter_read.py DEMO_DIR [--rounds 4] [--per-round 40]``; the last line is the ratio
(MB/s through the meter ÷ MB/s direct).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

SECRET = "benchmark-meter-secret"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str) -> None:
    for _ in range(100):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    sys.exit(f"{url} did not come up")


def _read_item(assets: str, item: Path) -> int:
    import rasterio

    pixels = 0
    for band in ("B04", "B08"):
        with rasterio.open(f"{assets}/s2/{item.name}/{band}.tif") as src:
            pixels += src.read(1).size
    return pixels


def _round(assets: str, items: list[Path], env: dict) -> float:
    import rasterio

    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", VSI_CACHE="FALSE", CPL_VSIL_CURL_CACHE_SIZE="0",
                      CPL_VSIL_CURL_NON_CACHED=f"/vsicurl/{assets}", **env):
        start = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda item: _read_item(assets, item), items))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=40)
    args = parser.parse_args()
    data = args.demo.resolve()
    items = sorted(p for p in (data / "s2").iterdir() if (p / "B04.tif").exists() and (p / "B08.tif").exists())
    need = 2 * args.rounds * args.per_round
    if len(items) < need:
        sys.exit(f"{data} has {len(items)} Sentinel-2 items; {need} are needed")

    from eolab.usage import _meter

    asset_port, meter_port = _port(), _port()
    assets = f"http://127.0.0.1:{asset_port}"
    env = {**os.environ, "EOLAB_ASSETS_DIR": str(data)}
    env.pop("EOLAB_SERVICE_TOKEN", None)
    work = Path(tempfile.mkdtemp(prefix="eolab-meter-bench-"))
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "eolab.stack._assets:create_app", "--factory",
                               "--host", "127.0.0.1", "--port", str(asset_port), "--log-level", "warning"], env=env)
    meter = subprocess.Popen([sys.executable, "-c", (
        "from eolab.usage import _meter, Ledger; "
        f"_meter.serve('127.0.0.1', {meter_port}, {SECRET!r}, [{assets!r}], Ledger({str(work / 'usage.sqlite')!r}))")],
        env=env)
    try:
        _wait(f"{assets}/_health")
        time.sleep(1.0)
        metered = {"GDAL_HTTP_PROXY": f"127.0.0.1:{meter_port}",
                   "GDAL_HTTP_PROXYUSERPWD": _meter.credentials(SECRET, "bench")}
        times = {"meter": 0.0, "direct": 0.0}
        bytes_ = {"meter": 0, "direct": 0}
        for r in range(args.rounds):
            chunk = items[2 * r * args.per_round:(2 * r + 2) * args.per_round]
            arms = [("meter", metered), ("direct", {})]
            if r % 2:
                arms.reverse()
            for i, (name, extra) in enumerate(arms):
                before = httpx.get(f"{assets}/_served").json()["bytes"]
                times[name] += _round(assets, chunk[i * args.per_round:(i + 1) * args.per_round], extra)
                bytes_[name] += httpx.get(f"{assets}/_served").json()["bytes"] - before
            print(f"round {r + 1}: meter {bytes_['meter'] / 1e6:.0f} MB in {times['meter']:.1f} s, "
                  f"direct {bytes_['direct'] / 1e6:.0f} MB in {times['direct']:.1f} s")
    finally:
        meter.terminate()
        meter.wait(30)
        server.terminate()
        server.wait(30)
    from eolab.usage import Ledger

    counted = sum(Ledger(work / "usage.sqlite").usage(None, "bench")["bench"].bytes_read.values())
    rate = {k: bytes_[k] / 1e6 / times[k] for k in times}
    print(f"meter counted {counted} bytes of the {bytes_['meter']} the asset server sent through it "
          f"({counted / max(bytes_['meter'], 1):.4f})")
    print(f"MB/s: meter {rate['meter']:.1f}, direct {rate['direct']:.1f}; ratio meter/direct "
          f"{rate['meter'] / rate['direct']:.2f}")


if __name__ == "__main__":
    main()
