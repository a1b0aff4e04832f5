"""Notebook widgets: area/time picker, federated catalogue browser, cube panel.

Each widget is a view over a traitlets state class that works headless (``PickerState``,
``BrowserState``); the views import ipywidgets/ipyleaflet only when they are used.

    from eolab.widgets import AreaTimePicker, CatalogueBrowser, CubePanel
    picker = AreaTimePicker()                 # base layer: $EOLAB_TILES_URL's demo tiles
    browser = CatalogueBrowser(picker=picker) # catalogue: $EOLAB_CATALOG_URL (the broker)
    panel = CubePanel(browser)
    form = options_widget()                   # Dask cluster options within the server's limits
"""

from eolab.widgets._browser_state import BrowserState
from eolab.widgets._picker_state import PRESETS, PickerError, PickerState, preset_range

__all__ = ["AreaTimePicker", "BrowserState", "CatalogueBrowser", "ClusterForm", "ComputeOptions", "CubePanel",
           "PRESETS", "PickerError", "options_widget",
           "PickerState", "preset_range"]

_VIEWS = {"AreaTimePicker": "eolab.widgets.picker", "CatalogueBrowser": "eolab.widgets.browser",
          "CubePanel": "eolab.widgets.cube", "ClusterForm": "eolab.widgets.cluster",
          "ComputeOptions": "eolab.widgets.cluster", "options_widget": "eolab.widgets.cluster"}


def __getattr__(name):
    if name in _VIEWS:
        import importlib

        return getattr(importlib.import_module(_VIEWS[name]), name)
    raise AttributeError(f"module 'eolab.widgets' has no attribute {name!r}")
