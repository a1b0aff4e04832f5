"""Port ranges handed to test servers are claimed across processes (parallel workers, two suites)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from eolab.testing import stack

CHILD = """
import sys, time
from eolab.testing.stack import free_port_base, free_port_offset
print(free_port_offset(), free_port_base(width=4, start=15001), flush=True)
sys.stdin.readline()  # hold the claim until the parent has asked
"""


def test_a_range_another_live_process_holds_is_not_handed_out_again():
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        offset, base = map(int, child.stdout.readline().split())
        # Nothing listens on the child's ports, so only the claim keeps them apart.
        assert all(stack._free(p) for p in range(base, base + 4))
        assert stack.free_port_offset(start=offset) != offset
        assert stack.free_port_base(width=4, start=base) != base
    finally:
        child.communicate("\n", timeout=30)
    # Once that process is gone its claim lapses: the next claim removes it.
    claim = stack._CLAIMS / f"{child.pid}.json"
    assert claim.exists()
    stack.free_port_base(width=1, start=15501)
    assert not claim.exists()


def test_a_claim_of_a_reused_pid_or_an_unreadable_file_does_not_block(tmp_path, monkeypatch):
    monkeypatch.setattr(stack, "_CLAIMS", tmp_path / "claims")
    base = stack.free_port_base(width=2, start=15601)
    mine = tmp_path / "claims" / f"{__import__('os').getpid()}.json"
    record = mine.read_text()
    # The same ports claimed by a PID that is alive (ours) but started at another time: a reused PID.
    other = tmp_path / "claims" / "1.json"
    other.write_text(record.replace('"started": "', '"started": "9'))
    (tmp_path / "claims" / "junk.json").write_text("{not json")
    mine.unlink()
    assert stack.free_port_base(width=2, start=base) == base
    assert not other.exists() and not (tmp_path / "claims" / "junk.json").exists()


def test_a_claims_directory_that_is_not_private_is_refused(tmp_path, monkeypatch):
    shared = tmp_path / "claims"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    monkeypatch.setattr(stack, "_CLAIMS", shared)
    with pytest.raises(RuntimeError, match="not a private directory"):
        stack.free_port_base(width=1, start=15701)


def test_the_same_process_never_gets_a_range_twice():
    first = stack.free_port_base(width=3, start=15301)
    assert stack.free_port_base(width=3, start=first) != first
