"""Port ranges handed to test servers are claimed across processes (parallel workers, two suites)."""

from __future__ import annotations

import subprocess
import sys

from eolab.testing import stack

CHILD = """
import sys, time
from eolab.testing.stack import free_port_base, free_port_offset
print(free_port_offset(), free_port_base(width=4, start=45001), flush=True)
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
    # Once that process is gone its claim lapses.
    assert stack.free_port_offset(start=offset) == offset


def test_the_same_process_never_gets_a_range_twice():
    first = stack.free_port_base(width=3, start=45301)
    assert stack.free_port_base(width=3, start=first) != first
