"""Analysis building blocks of eolab's template workflows (water, crop type, CAP checks).

One module per concept; modules are imported on first use (``eolab.analysis.water`` etc.):
indices, zonal (rasterize once + bincount), timeseries (cleaning, gap filling), water, crops,
claims (national parcel schemas), events (mowing, bare soil), cap (parcel checks, traffic light),
cap_checks (the checks as plug-ins), dossier (evidence page per parcel),
outputs, publish, openeo_graphs, templates, plots. Searching is :mod:`eolab.search`, loading
:func:`eolab.load_cube`, provenance :mod:`eolab.provenance`, scores :mod:`eolab.metrics`.
"""

import importlib

__all__ = ["indices", "zonal", "timeseries", "water", "crops", "claims", "events", "cap", "cap_checks", "dossier",
           "outputs", "publish", "openeo_graphs", "templates", "plots"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"eolab.analysis.{name}")
    raise AttributeError(f"module 'eolab.analysis' has no attribute {name!r}")
