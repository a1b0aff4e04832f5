"""Hand memory freed by Python back to the operating system between the steps of long runs.

glibc keeps freed heap pages (and each thread's arena) for reuse: after a tile of a country's CAP
checks, hundreds of MB that no object holds any more still count as the kernel's resident memory,
which is what a hub's memory limit (and the out-of-memory killer) sees. ``malloc_trim(0)`` returns
them. Dask's worker-memory documentation gives the same remedy (trim by hand, or
``MALLOC_TRIM_THRESHOLD_``, which its nanny sets for the workers it starts); no well-kept package
exposes the call alone, hence these few lines.
"""

from __future__ import annotations

import ctypes
import functools
import sys


@functools.lru_cache(maxsize=1)
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library already loaded (no ldconfig lookup)
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


def share_strings(values) -> object:
    """``values`` (a column of text) as an object array in which equal strings are one object: a
    country's claims repeat a few crop names, codes and reasons hundreds of thousands of times, and
    each read or built string is otherwise its own ~60-byte object. Values other than text (and
    columns mixing text with numbers, which hashing would merge: 1 == 1.0 == True) are returned as
    they are; missing values stay as they were (None or NaN)."""
    import numpy as np
    import pandas as pd

    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) or values.dtype != object else values
    if arr.ndim != 1 or pd.api.types.infer_dtype(arr, skipna=True) != "string":
        return values
    codes, uniques = pd.factorize(arr)
    out = arr.copy()
    have = codes >= 0
    out[have] = np.asarray(uniques, dtype=object)[codes[have]]
    return out


def on_disk(array, folder=None):
    """``array`` moved to an unnamed file in ``folder`` (default: the temporary folder) and mapped
    back copy-on-write (a ``numpy.memmap`` equal to it). Pages come into memory when read and, being
    the file's, the system can drop them again when memory runs short; writes stay private to this
    process. The file's name is removed at once, so the disk space goes with the last reference and
    nothing is left behind after a crash. For the large arrays a country's run keeps for later
    looks (features, series), which are rarely read whole. Where the file cannot be written (disk
    full, folder missing or read-only) the array stays in memory, with a warning saying so."""
    import os
    import tempfile

    import numpy as np

    array = np.ascontiguousarray(array)
    if array.dtype.hasobject:
        raise TypeError("on_disk: an array of Python objects cannot live in a file")
    if array.size == 0:
        return array
    try:
        fd, path = tempfile.mkstemp(prefix="eolab-array-", suffix=".npy", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, array, allow_pickle=False)
            return np.load(path, mmap_mode="c")
        finally:
            os.unlink(path)
    except OSError as e:  # a full or read-only disk must not cost the run that made the array
        import warnings

        warnings.warn(f"kept a {array.nbytes / 2**20:.0f} MiB array in memory: it could not be written to "
                      f"{folder or tempfile.gettempdir()} ({e})", RuntimeWarning, stacklevel=2)
        return array
