"""Freed memory goes back to the system between a long run's steps (eolab._memory)."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import psutil
import pytest

from eolab import _memory


def _rss() -> int:
    return psutil.Process().memory_info().rss


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's (Linux)")
def test_freed_heap_pages_are_returned():
    if _memory._libc() is None:
        pytest.skip("this C library has no malloc_trim (not glibc)")
    # A 16 MiB array freed raises glibc's mmap threshold to its size (blocks above 32 MiB do not),
    # so the 1 MiB blocks below come from the heap; every other one is freed, between blocks still
    # held, so the heap cannot shrink from its top and the freed pages stay resident (what a tile
    # of parcels leaves behind).
    big = np.ones(16 * 2**20 // 8)
    del big
    blocks = [np.ones(2**20 // 8) for _ in range(320)]
    before = _rss()
    held = blocks[1::2]
    del blocks
    kept = _rss()
    if before - kept > 40 * 2**20:
        pytest.skip("the allocator gave the freed blocks back by itself (another allocator or "
                    "MALLOC_MMAP_THRESHOLD_ set): nothing left to hand back")
    assert _memory.release_freed_memory() is True
    after = _rss()
    assert kept - after > 100 * 2**20, f"RSS {kept / 2**20:.0f} → {after / 2**20:.0f} MiB"
    assert all(b.sum() == 2**17 for b in held)  # what is still held is intact


def test_without_glibc_nothing_is_done(monkeypatch):
    monkeypatch.setattr(_memory, "_libc", lambda: None)
    assert _memory.release_freed_memory() is False


def test_equal_strings_become_one_object_and_nothing_else_changes():
    import numpy as np

    from eolab._memory import share_strings

    made = ["".join(["mai", "ze"]) for _ in range(3)] + [None, float("nan"), "wheat"]
    assert made[0] is not made[1]  # built strings are objects of their own
    out = share_strings(made)
    assert out[0] is out[1] is out[2] and list(out[:3]) == ["maize"] * 3 and out[5] == "wheat"
    assert out[3] is None and np.isnan(out[4])  # missing values as they were
    mixed = np.array([1, 1.0, True, "1"], dtype=object)  # hashing would merge 1, 1.0 and True
    assert share_strings(mixed) is mixed
    assert share_strings([]) == []



def _resident(a) -> int:
    """Resident bytes of the pages under an array (mincore is not in Python: /proc smaps instead)."""
    lo = a.__array_interface__["data"][0]
    total = 0
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5:
                start, end = (int(v, 16) for v in head[0].split("-"))
                inside = start <= lo < end
            elif inside and head[0] == "Rss:":
                total += int(head[1]) * 1024
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")
def test_a_file_array_keeps_its_values_when_its_pages_are_dropped(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.random((20_000, 77))
    f = _memory.FileArray(a.shape, a.dtype, tmp_path)
    assert not list(tmp_path.iterdir())  # the name is removed at once; the mapping keeps the data
    f.array[::2] = a[::2]  # rows written in any order, e.g. one tile of parcels at a time
    f.array[1::2] = a[1::2]
    assert _resident(f.array) >= a.nbytes * 0.9
    f.drop_pages()
    assert _resident(f.array) < a.nbytes * 0.1  # handed back ...
    assert np.array_equal(f.array, a)  # ... and read again from the file
    back = pickle.loads(pickle.dumps(f.array))
    assert np.array_equal(back, a)
    with pytest.raises(TypeError, match="Python objects"):
        _memory.FileArray((2,), object, tmp_path)
    empty, drop = _memory.file_array((0, 77), float, tmp_path)
    drop()
    assert empty.shape == (0, 77)


def test_an_array_without_a_file_stays_in_memory_with_a_warning(tmp_path):
    with pytest.warns(RuntimeWarning, match="keeping a 0 MiB array in memory: no file for it in .*missing"):
        kept, drop = _memory.file_array((10,), float, tmp_path / "missing")
    kept[:] = 1.0
    drop()
    assert kept.sum() == 10.0
