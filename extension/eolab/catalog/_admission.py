"""Admission at the broker's door and adaptive per-member concurrency: back-pressure instead of collapse.

:class:`Admission`: at most ``limit`` searches are worked on at once, at most ``queue`` more wait
at the door, each for at most ``max_wait`` seconds; anything beyond is refused at once with
:class:`Overloaded` (HTTP 503 with ``Retry-After``), so an overloaded broker serves the searches it
took well instead of every search past its budget (which would look like members failing).

:class:`AdaptiveLimit`: how many requests one member gets at once, AIMD as in TCP congestion
control and Netflix's concurrency-limits: +1/limit per answer in time, ×0.7 when the member's
own service time runs out or it says 429/503. Requests over the limit queue in the broker, and
that queue time is not part of the member's time budget.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from eolab.errors import EolabError

MAX_RETRY_AFTER = 60  # s, the longest Retry-After the broker sends
#: The broker's HTTP keep-alive (uvicorn ``--timeout-keep-alive``), longer than any Retry-After: a
#: client that waits one out finds its connection still open. With uvicorn's default of 5 s, a
#: client told to wait 5 s reused the connection just as the server closed it (a read error).
KEEP_ALIVE = MAX_RETRY_AFTER + 15
#: How the stack and the hub run the broker: no proxy headers, since the service guard needs the
#: connection's real peer (an X-Forwarded-For would replace it), and the keep-alive above.
BROKER_SERVER_ARGS = ("--log-level", "warning", "--no-access-log", "--no-proxy-headers",
                      "--timeout-keep-alive", str(KEEP_ALIVE))


class Overloaded(EolabError):
    """The broker is at its admission limit: HTTP 503 with ``Retry-After`` (seconds)."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, hint=f"retry after {retry_after} s")
        self.retry_after = retry_after


class Admission:
    """A bounded door: ``limit`` at once, ``queue`` waiting (FIFO), each waiting ``max_wait`` s at most."""

    def __init__(self, limit: int, queue: int, max_wait: float, clock: Callable[[], float] = time.monotonic):
        self.limit, self.queue, self.max_wait, self.clock = max(1, limit), max(0, queue), max_wait, clock
        self.active = 0
        self.refused = 0
        self._waiters: list[asyncio.Future] = []
        self._service = 1.0  # s, moving average of one admitted search

    def retry_after(self) -> int:
        """Seconds until the queue ahead has likely drained (at least 1)."""
        rounds = (len(self._waiters) + self.active) / self.limit
        return max(1, min(MAX_RETRY_AFTER, math.ceil(rounds * self._service)))

    def _refuse(self, why: str) -> Overloaded:
        self.refused += 1
        after = self.retry_after()
        return Overloaded(f"broker overloaded: {why}; retry after {after} s", after)

    async def __aenter__(self) -> "Admission":
        if self.active < self.limit and not self._waiters:
            self.active += 1
        else:
            if len(self._waiters) >= self.queue:
                raise self._refuse(f"{self.active} searches running and {len(self._waiters)} waiting")
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(self.max_wait):
                    await self._granted(waiter)
            except TimeoutError:
                raise self._refuse(f"no turn within {self.max_wait:g} s") from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._started = self.clock()
        return self

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to it (active unchanged)
                return
        self.active -= 1

    def done(self, seconds: float) -> None:
        self._service = 0.8 * self._service + 0.2 * seconds

    async def __aexit__(self, *exc) -> None:
        self._release()

    async def _granted(self, waiter: asyncio.Future) -> None:
        try:
            await waiter
        except BaseException:
            # Cancelled (a timeout, a client gone) just as the turn was given: pass it on, or the
            # door would lose a place for good.
            if waiter.done() and not waiter.cancelled():
                self._release()
            raise


class AdaptiveLimit:
    """A member's request slots with an AIMD limit between 1 and ``ceiling``."""

    def __init__(self, ceiling: int, backoff: float = 0.7):
        self.ceiling = max(1, ceiling)
        self.limit = float(self.ceiling)
        self.backoff = backoff
        self.inflight = 0
        self._waiters: list[asyncio.Future] = []

    @property
    def spare(self) -> int:
        return int(self.limit) - self.inflight

    def succeeded(self) -> None:
        self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)
        self._wake()

    def overloaded(self) -> None:
        self.limit = max(1.0, self.limit * self.backoff)

    async def acquire(self) -> None:
        if self.inflight < int(self.limit) and not self._waiters:
            self.inflight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted as it was cancelled: give it back
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def release(self) -> None:
        self.inflight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.inflight < int(self.limit):
            waiter = self._waiters.pop(0)
            if not waiter.done():
                self.inflight += 1
                waiter.set_result(None)
