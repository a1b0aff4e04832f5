"""Scheduler preload: stop a gateway cluster once no client has been connected for a while.

dask-gateway's idle timeout only looks at tasks, so a cluster whose kernel died keeps running (and
holding its user's budget) for the whole idle timeout. When the kernel dies its client connection
closes; this preload notices and stops the cluster after ``EOLAB_ORPHAN_TIMEOUT`` seconds (also
when no client ever connected). ``0`` or unset disables it.
"""

from __future__ import annotations

import asyncio
import logging
import time

logger = logging.getLogger("eolab.compute.orphans")
_INTERNAL_CLIENTS = {"fire-and-forget"}


def connected_clients(scheduler) -> list[str]:
    return [c for c in scheduler.clients if c not in _INTERNAL_CLIENTS]


async def _watch(scheduler, timeout: float) -> None:
    last_seen = time.monotonic()
    while True:
        await asyncio.sleep(min(5.0, timeout / 4))
        if connected_clients(scheduler):
            last_seen = time.monotonic()
            continue
        if time.monotonic() - last_seen > timeout:
            logger.warning("No client connected for %.0f s (kernel gone?), stopping the cluster", timeout)
            service = scheduler.services.get("gateway")
            if service is not None:
                await service.gateway.shutdown()  # the gateway stops workers and scheduler
            else:
                await scheduler.close()
            return


def dask_setup(scheduler) -> None:
    from eolab import settings

    timeout = settings.client().orphan_timeout
    if timeout > 0:
        scheduler._eolab_orphan_task = asyncio.ensure_future(_watch(scheduler, timeout))
