"""Analysis building blocks of eolab's template workflows (water, crop type, CAP checks).

One module per concept; modules are imported on first use (``eolab.analysis.water`` etc.):
search (items from one or several STAC APIs), indices, zonal (rasterize once + bincount),
timeseries (cleaning, gap filling), water, crops, claims (national parcel schemas), events
(mowing, bare soil), cap (parcel checks, traffic light), metrics, provenance, outputs, publish,
openeo_graphs, templates, plots.
"""

import importlib

__all__ = ["search", "indices", "zonal", "timeseries", "water", "crops", "claims", "events", "cap",
           "metrics", "provenance", "outputs", "publish", "openeo_graphs", "templates", "plots"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"eolab.analysis.{name}")
    raise AttributeError(f"module 'eolab.analysis' has no attribute {name!r}")
