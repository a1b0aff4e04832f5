"""Waiting for a state that other processes reach (Slurm jobs ending, servers leaving)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(fetch: Callable[[], T], wanted: Callable[[T], bool], timeout: float, interval: float = 0.5) -> T:
    """``fetch()`` until ``wanted`` holds for its result or ``timeout`` s pass; the last result either way
    (so the assertion shows what was there instead)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = fetch()
        if wanted(current):
            return current
        time.sleep(interval)
    return fetch()
