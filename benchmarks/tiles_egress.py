"""Quicklook tiles with GDAL's requests through the tile service's egress proxy vs. straight to the asset server.

The tile service sends every GDAL request through a forward proxy that checks each redirect hop
(``eolab/tiles/_egress.py``): one more loopback hop and one connection per request. This prints
what that costs. One tile app (in this process, titiler as served) renders NDVI tiles of the demo COGs
from a real asset server (a uvicorn process); each round renders one set of items with the proxy
and another set without (``GDAL_HTTP_PROXY`` unset for that arm only), GDAL's caches cleared
between, the arms' order alternating. Each item's tiles are fetched by 4 client threads, as a
browser fetches a map's tiles.

Run: ``python benchmarks/tiles_egress.py DEMO_DIR [--rounds 4] [--zoom 14]``; the last line is the ratio
(tiles/s with the proxy ÷ tiles/s without).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import httpx


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tiles_of(cog: Path, zoom: int) -> list:
    import morecantile
    import rasterio
    from rasterio.warp import transform_bounds

    with rasterio.open(cog) as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    return list(morecantile.tms.get("WebMercatorQuad").tiles(west, south, east, north, [zoom]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--zoom", type=int, default=14)
    args = parser.parse_args()
    data = args.demo.resolve()
    items = sorted(p for p in (data / "s2").iterdir() if (p / "B04.tif").exists() and (p / "B08.tif").exists())
    if len(items) < 2 * args.rounds:
        sys.exit(f"{data} has {len(items)} Sentinel-2 items; {2 * args.rounds} are needed")

    port = _port()
    assets = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "eolab.stack._assets:create_app", "--factory",
                               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                               "--no-access-log"], env={**os.environ, "EOLAB_ASSETS_DIR": str(data),
                                                        "EOLAB_SERVICE_TOKEN": ""})
    try:
        for _ in range(100):
            try:
                if httpx.get(assets + "/_health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        from fastapi.testclient import TestClient

        from eolab.data.access import _clear_gdal_http_cache
        from eolab.tiles.app import create_app

        client = TestClient(create_app(base_dir=None, allow=[assets]))
        proxy = os.environ["GDAL_HTTP_PROXY"]
        # Items spread over the demo's dates: each arm gets different files every round.
        order = items[:: max(1, len(items) // (2 * args.rounds))][: 2 * args.rounds]
        totals = {"proxy": [0, 0.0], "direct": [0, 0.0]}
        for r in range(args.rounds):
            arms = ("proxy", "direct") if r % 2 == 0 else ("direct", "proxy")
            for k, arm in enumerate(arms):
                item = order[2 * r + k]
                rel = item.relative_to(data).as_posix()
                query = urlencode({"style": "ndvi", "red": f"{assets}/{rel}/B04.tif", "nir": f"{assets}/{rel}/B08.tif",
                                   "scale": 0.0001, "offset": 0})
                tiles = _tiles_of(item / "B04.tif", args.zoom)
                if arm == "proxy":
                    os.environ["GDAL_HTTP_PROXY"] = proxy
                else:
                    os.environ.pop("GDAL_HTTP_PROXY", None)
                _clear_gdal_http_cache()
                start = time.perf_counter()
                with ThreadPoolExecutor(4) as pool:
                    codes = list(pool.map(lambda t: client.get(f"/assets/{t.z}/{t.x}/{t.y}.png?{query}").status_code,
                                          tiles))
                elapsed = time.perf_counter() - start
                if any(c != 200 for c in codes):
                    sys.exit(f"{arm}: {sum(c != 200 for c in codes)} of {len(codes)} tiles failed")
                totals[arm][0] += len(tiles)
                totals[arm][1] += elapsed
                print(f"round {r + 1} {arm:6s} {item.name}: {len(tiles)} tiles in {elapsed:.2f} s "
                      f"({len(tiles) / elapsed:.1f} tiles/s)", flush=True)
        os.environ["GDAL_HTTP_PROXY"] = proxy
        rate = {arm: n / t for arm, (n, t) in totals.items()}
        print(f"with proxy {rate['proxy']:.1f} tiles/s, direct {rate['direct']:.1f} tiles/s; "
              f"ratio proxy/direct {rate['proxy'] / rate['direct']:.2f}")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
