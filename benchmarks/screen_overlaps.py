"""Parcel screening with and without the check for claims that share land (issue 16's CAP path).

``cap.screen_parcels`` now also looks for parcels that share a pixel's area or more with another
claim inside the inward buffer (``cap.claim_overlaps``). This times the screening of a grid of
N × N parcels with the check and with it replaced by a no-op, side by side, best of ``--rounds``:
once with axis-aligned parcels (neighbours' boxes only touch) and once with each parcel turned by
8° (neighbours' boxes overlap, as real field outlines' do, so every pair is tested).

Run: ``python benchmarks/screen_overlaps.py [--side 300] [--rounds 3]``; prints the seconds and the
ratio (with / without) for both layouts.
"""

from __future__ import annotations

import argparse
import time

import geopandas as gpd
import numpy as np
from shapely.affinity import rotate
from shapely.geometry import box

from eolab.analysis import cap


def _grid(side: int, turn: float) -> gpd.GeoDataFrame:
    cells = [box(470000 + i * 120, 5280000 + j * 120, 470000 + i * 120 + 119, 5280000 + j * 120 + 119)
             for i in range(side) for j in range(side)]
    if turn:
        cells = [rotate(c, turn) for c in cells]
    return gpd.GeoDataFrame({"parcel_id": [f"P{k}" for k in range(len(cells))]}, geometry=cells,
                            crs="EPSG:32634").set_index("parcel_id")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    real = cap.claim_overlaps

    def none(parcels, min_area=100.0, geometry=None):
        return [[] for _ in range(len(parcels))], np.zeros(len(parcels))

    for name, turn in (("axis-aligned", 0.0), ("turned 8°", 8.0)):
        parcels = _grid(args.side, turn)
        best = {"with": float("inf"), "without": float("inf")}
        for _ in range(args.rounds):
            for key, fn in (("with", real), ("without", none)):
                cap.claim_overlaps = fn
                start = time.perf_counter()
                screen = cap.screen_parcels(parcels)
                best[key] = min(best[key], time.perf_counter() - start)
                if key == "with":
                    checked = screen
        cap.claim_overlaps = real
        assert checked.monitorable.all()  # no parcel shares land here
        print(f"{name}: {len(parcels):,} parcels, screening {best['with']:.2f} s with the overlap check, "
              f"{best['without']:.2f} s without: ratio {best['with'] / best['without']:.2f}")


if __name__ == "__main__":
    main()
