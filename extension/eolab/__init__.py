"""eolab: interactive analytics for Copernicus Earth-observation data.

The public API is re-exported here; modules hold one concept each.
"""

from eolab._version import __version__
from eolab.errors import EolabError

__all__ = ["__version__", "EolabError", "load_cube", "open_catalog"]


def __getattr__(name):
    # Heavy imports (odc-stac, dask) only when the loader is used.
    if name == "load_cube":
        from eolab.data.load import load_cube

        return load_cube
    if name == "open_catalog":
        from eolab.search import open_catalog

        return open_catalog
    raise AttributeError(f"module 'eolab' has no attribute {name!r}")
