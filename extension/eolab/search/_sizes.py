"""Sizes of cubes, for the widgets' "this will read ..." lines."""

from __future__ import annotations


def size_estimate(cube) -> int:
    """Bytes the cube's data variables take once computed (from shapes and dtypes, nothing is read)."""
    return int(sum(var.nbytes for var in cube.data_vars.values()))


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover
