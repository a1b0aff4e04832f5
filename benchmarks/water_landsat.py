"""Water areas from the Landsat C2 L2 look-alike vs. the same dates' Sentinel-2, against the demo truth.

The demo writes each Sentinel-2 date also as a 30 m Landsat Collection 2 Level-2 scene with a
QA_PIXEL mask (eolab.demo._landsat). Both are classified with the water template's default method
(``water.classify_water``, vote) at 10 m and summed per date (``water.extent``); on the dates both
see clearly (clear fraction ≥ 0.9) each area is compared with the truth (``truth/water_area.csv``,
read only here). Reads the COGs from disk (no servers): the figures are the method's, not the
transport's.

Run: ``python benchmarks/water_landsat.py DEMO_DIR``; the last line gives the worst errors and
their ratio (Landsat / Sentinel-2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd


def _items(root: Path, collection: str) -> list[dict]:
    out = []
    for line in (root / "stac" / "items" / f"{collection}.ndjson").open():
        item = json.loads(line)
        for asset in item["assets"].values():
            asset["href"] = str(root / asset["href"])
        out.append(item)
    return out


def extent(root: Path, collection: str, crs: str) -> pd.DataFrame:
    from eolab.analysis import water
    from eolab.data import load

    items = _items(root, collection)
    cube = load.load_cube(items, bands=water.input_bands(items), resolution=10, crs=crs)
    wet = water.classify_water(cube)
    table = water.extent(wet, water.frequency(wet))
    table.index = [str(d)[:10] for d in table.index]
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path)
    parser.add_argument("--min-clear", type=float, default=0.9)
    args = parser.parse_args()
    manifest = json.loads((args.demo / "manifest.json").read_text())
    if "landsat-c2-l2" not in manifest["collections"]:
        sys.exit(f"{args.demo} has no Landsat look-alike: make the demo data anew (eolab demo-data --force)")
    truth = pd.read_csv(args.demo / "truth" / "water_area.csv")
    truth = truth[truth.sensor == "sentinel-2"].set_index("date")["area_ha"]
    s2 = extent(args.demo, "sentinel-2-l2a", manifest["crs"])
    ls = extent(args.demo, "landsat-c2-l2", manifest["crs"])
    table = pd.DataFrame({"truth_ha": truth, "s2_ha": s2.observed_ha, "landsat_ha": ls.observed_ha,
                          "s2_clear": s2.clear_fraction, "landsat_clear": ls.clear_fraction})
    table = table[(table.s2_clear >= args.min_clear) & (table.landsat_clear >= args.min_clear)]
    table["s2_error"] = table.s2_ha / table.truth_ha - 1
    table["landsat_error"] = table.landsat_ha / table.truth_ha - 1
    table["landsat_vs_s2"] = table.landsat_ha / table.s2_ha - 1
    print(f"{manifest['size']} demo, {len(table)} dates clear in both (≥ {args.min_clear:.0%}):")
    print(table.round(3).to_string())
    worst_s2, worst_ls = table.s2_error.abs().max(), table.landsat_error.abs().max()
    print(f"worst |error| vs truth: Sentinel-2 {worst_s2:.1%}, Landsat {worst_ls:.1%} (goal ≤ 5 %), "
          f"Landsat / Sentinel-2 {worst_ls / worst_s2:.2f}; worst |Landsat - S2| {table.landsat_vs_s2.abs().max():.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
