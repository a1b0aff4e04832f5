"""From catalogue to data: loading STAC items into cubes."""

from eolab.data.load import DEFAULT_MASK_CLASSES, SCL_CLASSES, load_cube, open_catalog, provenance

__all__ = ["DEFAULT_MASK_CLASSES", "SCL_CLASSES", "load_cube", "open_catalog", "provenance"]
