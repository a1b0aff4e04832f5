"""Usage accounting: core-hours and memory-hours of Dask clusters, bytes read per provider, limits.

The hub side records (the gateway writes cluster time, the hub servers' time, the hub's byte meter
the bytes users' GDAL reads pass through it, :mod:`eolab.usage._meter`) into one ledger
(:class:`Ledger`, ``<run_dir>/hub/usage.sqlite``); users see theirs with :func:`usage` or
``eolab usage``, admins everyone's. Monthly limits (``EOLAB_HUB_USAGE_LIMITS``)
refuse new clusters of a user who reached theirs.
"""

from eolab.usage._client import (
    Usage,
    UsageError,
    endpoint,
    report,
    report_before_shutdown,
    show,
    start_reporter,
    usage,
    usage_from_ledger,
)
from eolab.usage._ledger import Interval, Ledger, UserUsage, limit_for, month_bounds, over_limit

__all__ = ["Interval", "Ledger", "Usage", "UsageError", "UserUsage", "endpoint", "limit_for", "month_bounds",
           "over_limit", "report", "report_before_shutdown", "show", "start_reporter", "usage", "usage_from_ledger"]
