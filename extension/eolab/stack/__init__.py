"""The local demo stack: PostgreSQL with one pgstac database per member, the members' STAC APIs,
the asset server, the writable workspace member, the broker and the tile service.

    from eolab import stack
    stack.up(config); stack.status(config); stack.down(config)
"""

from eolab.stack.core import ServiceStatus, down, status, up

__all__ = ["ServiceStatus", "down", "status", "up"]
