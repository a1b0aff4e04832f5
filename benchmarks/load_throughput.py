"""Cube load throughput: ``eolab.load_cube`` of a demo time series vs raw rasterio windowed reads.

Both read the same Sentinel-2 COGs over HTTP from the real asset server (byte ranges), produce the
same float32 reflectance with nodata as NaN, and use the same number of threads. The baseline is
what an analyst would write by hand: open each COG, read the window of the area, apply scale and
offset. eolab adds odc-stac's grid alignment and dask chunking on top.

    .venv/bin/python benchmarks/load_throughput.py [--demo DIR] [--rounds 5] [--chunk PX]

eolab and odc-stac use load_cube's default chunks unless --chunk is given (e.g. --chunk 256: one
dask chunk per COG tile of the demo data).

Without --demo it uses $EOLAB_DEMO_DIR or generates the small demo data in a temporary directory.
The last line is the ratio eolab / raw (goal ≥ 0.8).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from broker_common import machine  # noqa: E402

BANDS = ["B04", "B08"]
THREADS = os.cpu_count() or 2


def demo_dir(path: str | None) -> Path:
    path = path or os.environ.get("EOLAB_DEMO_DIR")
    if path and (Path(path) / "manifest.json").exists():
        return Path(path)
    from eolab.demo import generate

    out = Path(tempfile.mkdtemp(prefix="eolab-bench-demo-"))
    print(f"generating the small demo data in {out} ...", file=sys.stderr)
    generate(out, "small", progress=False)
    return out


def items_over_http(data: Path, assets_url: str) -> list[dict]:
    from eolab.stack._load import absolutise

    lines = (data / "stac" / "items" / "sentinel-2-l2a.ndjson").read_text().splitlines()
    return [absolutise(json.loads(line), assets_url) for line in lines]


def run_eolab(items: list[dict], chunk: int | None = None) -> np.ndarray:
    """The whole scene's time series, in load_cube's default chunks unless ``chunk`` (px) is given."""
    import dask

    import eolab

    chunks = {"x": chunk, "y": chunk} if chunk else None
    cube = eolab.load_cube(items, bands=BANDS, resolution=10, mask=None, chunks=chunks)
    with dask.config.set(scheduler="threads", num_workers=THREADS):
        return cube[BANDS].to_array().compute().values


def run_odc(items: list[dict], chunk: int | None = None) -> np.ndarray:
    """odc-stac alone (uint16, no scaling or masking): the loader eolab builds on, for the breakdown.
    Same chunks as run_eolab."""
    import dask
    import odc.stac
    import pystac

    from eolab.data.load import DEFAULT_CHUNKS

    chunks = {"x": chunk, "y": chunk} if chunk else dict(DEFAULT_CHUNKS)
    data = odc.stac.load([pystac.Item.from_dict(i) for i in items], bands=BANDS, resolution=10,
                         chunks=chunks, groupby="solar_day")
    with dask.config.set(scheduler="threads", num_workers=THREADS):
        return data[BANDS].to_array().compute().values


def run_raw(items: list[dict], bbox: list[float]) -> np.ndarray:
    """Per item and band: the window of ``bbox`` in the COG (here: all of it), scaled; then one
    mosaic per date on the scene grid."""
    import rasterio
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window, from_bounds

    def read(item: dict, band: str):
        asset = item["assets"][band]
        info = asset["raster:bands"][0]
        with rasterio.open(asset["href"]) as src:
            left, bottom, right, top = transform_bounds("EPSG:4326", src.crs, *bbox)
            window = from_bounds(left, bottom, right, top, transform=src.transform).round_offsets().round_lengths()
            window = window.intersection(Window(0, 0, src.width, src.height))
            dn = src.read(1, window=window)
            values = dn.astype("float32") * np.float32(info["scale"]) + np.float32(info["offset"])
            values[dn == info["nodata"]] = np.nan
            return item["properties"]["datetime"][:10], band, src.window_transform(window), values

    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        parts = list(pool.map(lambda ib: read(*ib), [(i, b) for i in items for b in BANDS]))
    # Mosaic the tiles of each date on the scene grid (10 m, north-up).
    x0 = min(t.c for _, _, t, _ in parts)
    y0 = max(t.f for _, _, t, _ in parts)
    width = int(round((max(t.c + v.shape[1] * 10 for _, _, t, v in parts) - x0) / 10))
    height = int(round((y0 - min(t.f - v.shape[0] * 10 for _, _, t, v in parts)) / 10))
    days = sorted({d for d, _, _, _ in parts})
    out = np.full((len(BANDS), len(days), height, width), np.nan, "float32")
    for day, band, transform, values in parts:
        row, col = int(round((y0 - transform.f) / 10)), int(round((transform.c - x0) / 10))
        out[BANDS.index(band), days.index(day), row:row + values.shape[0], col:col + values.shape[1]] = values
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", help="demo data directory (default: $EOLAB_DEMO_DIR or generate small)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians are compared")
    parser.add_argument("--chunk", type=int, help="dask chunk size in px for eolab and odc-stac "
                        "(default: load_cube's default chunks)")
    args = parser.parse_args(argv)

    from eolab import _services
    from eolab.data.load import _GDAL_ENV, DEFAULT_CHUNKS
    from eolab.testing import faults as _faults

    for key, value in _GDAL_ENV.items():  # the same GDAL settings for both
        os.environ.setdefault(key, value)
    data = demo_dir(args.demo)
    manifest = json.loads((data / "manifest.json").read_text())
    run_dir = Path(tempfile.mkdtemp(prefix="eolab-bench-run-"))
    port = _faults.free_port()
    service = _services.Service(
        name="assets", port=port, ready_path="/_health", env={"EOLAB_ASSETS_DIR": str(data.resolve())},
        cmd=[sys.executable, "-m", "uvicorn", "eolab.stack._assets:create_app", "--factory", "--host",
             "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"])
    _services.start(run_dir, service)
    try:
        items = items_over_http(data, service.url)
        from eolab.demo._stac import wgs84_bbox

        left, bottom, right, top = manifest["bounds"]
        inset = 5.0  # m: inside the scene, so the windows are whole tiles
        bbox = wgs84_bbox((left + inset, bottom + inset, right - inset, top - inset))
        eolab_times, raw_times, odc_times = [], [], []
        a = b = None
        for _ in range(args.rounds):  # alternating, so load on the machine hits all alike
            t0 = time.perf_counter()
            b = run_raw(items, bbox)
            raw_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            a = run_eolab(items, args.chunk)
            eolab_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            run_odc(items, args.chunk)
            odc_times.append(time.perf_counter() - t0)
        pixels = a.size
        # Same numbers from both paths (sanity): the mean reflectance of every valid pixel.
        mean_a, mean_b = float(np.nanmean(a)), float(np.nanmean(b))
        eolab_rate = pixels / statistics.median(eolab_times) / 1e6
        raw_rate = b.size / statistics.median(raw_times) / 1e6
        odc_rate = pixels / statistics.median(odc_times) / 1e6
        print(f"machine: {machine()}; threads: {THREADS}; demo size: {manifest['size']}")
        shape = dict(zip(("band", "time", "y", "x"), a.shape))
        print(f"data: {len(items)} items × {len(BANDS)} bands over HTTP, cube {shape}")
        chunking = f"{args.chunk} px (--chunk)" if args.chunk else f"load_cube default {DEFAULT_CHUNKS}"
        print(f"dask chunks (eolab, odc-stac): {chunking}; COG tiles {manifest['tile_size']} px")
        print(f"eolab.load_cube + compute: {[round(t, 2) for t in eolab_times]} s, {eolab_rate:.1f} Mpx/s, mean {mean_a:.5f}")
        print(f"raw rasterio windows:      {[round(t, 2) for t in raw_times]} s, {raw_rate:.1f} Mpx/s, mean {mean_b:.5f}")
        print(f"odc-stac alone (uint16):   {[round(t, 2) for t in odc_times]} s, {odc_rate:.1f} Mpx/s "
              f"(ratio to raw {odc_rate / raw_rate:.2f}; full items, no scaling)")
        if a.shape != b.shape or abs(mean_a - mean_b) > 1e-5:
            print(f"WARNING: results differ: shapes {a.shape} vs {b.shape}, means {mean_a} vs {mean_b}")
        print(f"throughput ratio eolab / raw: {eolab_rate / raw_rate:.2f} (goal >= 0.8)")
    finally:
        _services.stop(run_dir, service.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
