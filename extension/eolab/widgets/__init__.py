"""Notebook widgets: area/time picker, federated catalogue browser, cube panel.

Each widget is a view over a traitlets state class that works headless (``PickerState``,
``BrowserState``); the views import ipywidgets/ipyleaflet only when they are used.

    from eolab.widgets import AreaTimePicker, CatalogueBrowser, CubePanel
    picker = AreaTimePicker()                 # base layer: $EOLAB_TILES_URL's demo tiles
    browser = CatalogueBrowser(picker=picker) # catalogue: $EOLAB_CATALOG_URL (the broker)
    panel = CubePanel(browser)
    form = options_widget()                   # Dask cluster options within the server's limits
    queue = InspectionQueue.from_run(run, result, "results/inspection_log.jsonl", items=s2_items)
    InspectionView(queue).widget              # CAP red/yellow parcels: dossier, decisions, audit log
    CountryMap("results/cap_checks.parquet", dossiers="results/dossiers").widget  # lonboard, by light
"""

from eolab.widgets._browser_state import BrowserState
from eolab.widgets._picker_state import PRESETS, PickerError, PickerState, preset_range
from eolab.widgets._queue_state import InspectionQueue, QueueError

__all__ = ["AreaTimePicker", "BrowserState", "CatalogueBrowser", "ClusterForm", "ComputeOptions", "CountryMap", "CubePanel",
           "InspectionQueue", "InspectionView", "QueueError", "PRESETS", "PickerError", "options_widget",
           "PickerState", "preset_range"]

_VIEWS = {"AreaTimePicker": "eolab.widgets.picker", "CatalogueBrowser": "eolab.widgets.browser",
          "CubePanel": "eolab.widgets.cube", "ClusterForm": "eolab.widgets.cluster",
          "ComputeOptions": "eolab.widgets.cluster", "options_widget": "eolab.widgets.cluster",
          "InspectionView": "eolab.widgets.inspection", "CountryMap": "eolab.widgets.country_map"}


def __getattr__(name):
    if name in _VIEWS:
        import importlib

        return getattr(importlib.import_module(_VIEWS[name]), name)
    raise AttributeError(f"module 'eolab.widgets' has no attribute {name!r}")
