"""The federated catalogue: member providers and (server side) the local demo stack.

Importing this package needs no web framework; server code is imported where it runs.
"""

from eolab.catalog.stack import ServiceStatus, down, status, up

__all__ = ["ServiceStatus", "down", "status", "up"]
