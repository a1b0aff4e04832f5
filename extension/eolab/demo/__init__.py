"""Seeded, deterministic demo data (Sentinel-2 L2A-like, Sentinel-1 GRD-like) with ground truth.

``generate(out, size, seed, progress)`` writes the data set; ``SIZES`` lists the sizes.
"""

from eolab.demo._common import SIZES
from eolab.demo.generate import generate

__all__ = ["SIZES", "generate"]
