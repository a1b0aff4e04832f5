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


class FileArray:
    """An array kept in an unnamed file and mapped into memory (``.array``, a plain writable
    ``numpy.ndarray``): rows written or read come into memory as pages of the file, and
    :meth:`drop_pages` hands them all back to the system (written ones stay in the file). For the
    large per-parcel arrays a country's run fills tile by tile and reads a part at a time (features,
    series), which would otherwise all be resident at once. The file's name is removed at once, so
    its space goes with the last reference to the array and nothing is left after a crash. numpy's
    ``memmap`` does not expose its mapping (needed to drop pages), hence this small class."""

    def __init__(self, shape, dtype, folder=None):
        import mmap
        import os
        import tempfile

        import numpy as np

        self.shape, self.dtype = tuple(int(v) for v in shape), np.dtype(dtype)
        if self.dtype.hasobject:
            raise TypeError("FileArray: an array of Python objects cannot live in a file")
        size = int(np.prod(self.shape)) * self.dtype.itemsize
        fd, path = tempfile.mkstemp(prefix="eolab-array-", suffix=".bin", dir=folder)
        try:
            os.unlink(path)
            if size:
                # the blocks reserved now: a full disk is an error here, not a crash (SIGBUS) when a
                # page of a sparse file is first written through the mapping
                os.posix_fallocate(fd, 0, size)
                self._mm = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.array = (np.frombuffer(self._mm, self.dtype).reshape(self.shape) if size
                      else np.empty(self.shape, self.dtype))

    def drop_pages(self) -> None:
        """Hand the mapped pages back to the system; the values stay (in the file) and are read
        again when used."""
        import mmap

        if self.array.size and hasattr(mmap, "MADV_DONTNEED"):
            self._mm.madvise(mmap.MADV_DONTNEED)


def file_array(shape, dtype, folder=None):
    """``(array, drop_pages)`` of a new :class:`FileArray` in ``folder`` (default: the temporary
    folder). Where no file can be made there (disk full, folder missing or read-only) the array is
    an ordinary one in memory, ``drop_pages`` does nothing, and a warning says so: a country's run
    must not fail for want of the file."""
    import tempfile

    import numpy as np

    try:
        f = FileArray(shape, dtype, folder)
        return f.array, f.drop_pages
    except OSError as e:
        import warnings

        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        warnings.warn(f"keeping a {size / 2**20:.0f} MiB array in memory: no file for it in "
                      f"{folder or tempfile.gettempdir()} ({e})", RuntimeWarning, stacklevel=2)
        return np.empty(shape, dtype), lambda: None
