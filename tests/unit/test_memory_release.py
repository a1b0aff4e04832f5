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


def test_an_array_on_disk_reads_the_same_and_leaves_no_file(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.random((1000, 77))
    m = _memory.on_disk(a, tmp_path)
    assert isinstance(m, np.memmap) and m.dtype == a.dtype and np.array_equal(m, a)
    assert not list(tmp_path.iterdir())  # the name is removed at once; the mapping keeps the data
    m[0, 0] = -1.0  # writable, privately: the array given is not changed
    assert m[0, 0] == -1.0 and a[0, 0] != -1.0
    back = pickle.loads(pickle.dumps(m))
    assert np.array_equal(back, m)
    f32 = _memory.on_disk(np.arange(12, dtype=np.float32).reshape(3, 4).T, tmp_path)  # not C-ordered
    assert np.array_equal(f32, np.arange(12, dtype=np.float32).reshape(3, 4).T)
    with pytest.raises(TypeError, match="Python objects"):
        _memory.on_disk(np.array(["a", None], dtype=object), tmp_path)


def test_an_array_that_cannot_go_to_disk_stays_in_memory_with_a_warning(tmp_path):
    a = np.arange(10.0)
    with pytest.warns(RuntimeWarning, match="kept a 0 MiB array in memory: it could not be written to .*missing"):
        kept = _memory.on_disk(a, tmp_path / "missing")
    assert kept is a
