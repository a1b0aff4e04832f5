"""Cube load through a provider look-alike vs. raw rasterio reads of the same files (issue 15).

Serves the demo COGs from the look-alike asset server (a real uvicorn process) in Planetary
Computer's conventions — SAS tokens from its token endpoint — with 0 ms and with ~30 ms added to
every answer (a cloud object store's latency), then times, on the same files with the same
credentials:

- ``load_cube`` (odc-stac + eolab's read-time signing), B04 and B08 of every date, 10 m;
- raw rasterio: each signed asset read whole by a pool of the same number of threads;
- the decoding limit: the same COGs read from local disk.

Run: ``python benchmarks/lookalike_read.py DEMO_DIR [--threads 2]``; prints a table and a last line
with the ratios (load/raw at each latency, load at 30 ms / load at 0 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import rasterio


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(data_dir: Path, latency_ms: float):
    port = _port()
    env = dict(os.environ, EOLAB_ASSETS_DIR=str(data_dir), EOLAB_LOOKALIKE_SAS_LIFETIME="2700",
               EOLAB_LOOKALIKE_LATENCY_MS=str(latency_ms))
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "eolab.stack._lookalike:create_app", "--factory",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                             "--no-access-log"], env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(f"{url}/_health").status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("look-alike server did not start")


def _items(data_dir: Path, url: str) -> list[dict]:
    from eolab.stack._load import absolutise
    from eolab.stack._lookalike_items import restyle

    lines = (data_dir / "stac" / "items" / "sentinel-2-l2a.ndjson").read_text().splitlines()
    return [restyle(absolutise(json.loads(line), url), "planetary-computer", "pc-like") for line in lines]


def _time(fn, repeat: int = 2) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(data_dir: Path, threads: int) -> dict:
    import dask

    import eolab
    from eolab.config import ProviderProfile
    from eolab.data import access

    results = {}
    for latency in (0, 30):
        proc, url = _serve(data_dir, latency)
        access.reset()  # a new server, new signing key: forget the last one's tokens
        try:
            items = _items(data_dir, url)
            profile = ProviderProfile(access="sas", token_url=f"{url}/token")
            spec = access.spec_for("pc-like", profile)
            hrefs = [i["assets"][b]["href"] for i in items for b in ("B04", "B08")]
            pixels = 0
            for href in hrefs[:1]:
                with rasterio.open(access.sign(spec, href)) as src:
                    pixels = src.width * src.height
            total_px = pixels * len(hrefs)

            def load():
                cube = eolab.load_cube(items, bands=["B04", "B08"], resolution=10, mask=None, profile=profile)
                with dask.config.set(scheduler="threads", num_workers=threads):
                    cube.compute()

            def raw():
                def one(href):
                    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), \
                            rasterio.open(access.sign(spec, href)) as src:
                        return float(np.mean(src.read(1)))
                with ThreadPoolExecutor(threads) as pool:
                    list(pool.map(one, hrefs))

            results[latency] = {"load": total_px / _time(load) / 1e6, "raw": total_px / _time(raw) / 1e6}
        finally:
            proc.kill()
            proc.wait()

    local = [str(data_dir / "s2" / i["id"] / f"{b}.tif") for i in _items(data_dir, "") for b in ("B04", "B08")]

    def disk():
        def one(path):
            with rasterio.open(path) as src:
                return src.read(1).size
        with ThreadPoolExecutor(threads) as pool:
            return sum(pool.map(one, local))
    px = disk()
    results["disk"] = px / _time(disk) / 1e6
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    r = run(args.data_dir.resolve(), args.threads)
    print("| latency | load_cube Mpx/s | raw rasterio Mpx/s | load / raw |")
    print("|---|---|---|---|")
    for latency in (0, 30):
        print(f"| {latency} ms | {r[latency]['load']:.1f} | {r[latency]['raw']:.1f} | "
              f"{r[latency]['load'] / r[latency]['raw']:.2f} |")
    print(f"local disk decode: {r['disk']:.1f} Mpx/s")
    print(f"RESULT load/raw@0ms={r[0]['load'] / r[0]['raw']:.2f} load/raw@30ms={r[30]['load'] / r[30]['raw']:.2f} "
          f"load@30/load@0={r[30]['load'] / r[0]['load']:.2f} load@0/disk={r[0]['load'] / r['disk']:.2f}")


if __name__ == "__main__":
    main()
