"""Hand memory freed by Python back to the operating system between the steps of long runs.

glibc keeps freed heap pages (and each thread's arena) for reuse: after a tile of a country's CAP
checks, hundreds of MB that no object holds any more still count as the kernel's resident memory,
which is what a hub's memory limit (and the out-of-memory killer) sees. ``malloc_trim(0)`` returns
them. Dask's workers do the same (``distributed`` trims and sets ``MALLOC_TRIM_THRESHOLD_``); no
well-kept package exposes it alone, hence these few lines.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


@functools.lru_cache(maxsize=1)
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return None


def release_freed_memory() -> bool:
    """Return the C heap's free pages to the system (glibc only). True when the allocator was asked
    to; False where it cannot be (not glibc: nothing done). Cheap (no garbage collection): objects
    are freed by reference counting when the step that held them ends."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
