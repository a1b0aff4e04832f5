"""From catalogue to data: loading STAC items into cubes (the one loader, :func:`load_cube`)."""

from eolab.data.load import DEFAULT_MASK_CLASSES, SCL_CLASSES, load_cube, read_estimate

__all__ = ["DEFAULT_MASK_CLASSES", "SCL_CLASSES", "load_cube", "read_estimate"]
