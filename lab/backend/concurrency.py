"""Max concurrency: at most N requests in flight; the rest wait their turn, first come first served.

Waiting requests are never rejected. A freed slot goes straight to the oldest
waiter, so a newcomer cannot jump the queue between a release and the
waiter waking up. A limit of 0 means unlimited.
"""

from __future__ import annotations

import asyncio
from collections import deque


class ConcurrencyLimit:
    """A FIFO semaphore whose size can change while requests hold or wait for it."""

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_enter(self) -> bool:
        """Take a slot now if one is free and nobody is queued ahead."""
        if self._waiters or (self.limit and self.in_flight >= self.limit):
            return False
        self.in_flight += 1
        return True

    async def enter(self) -> None:
        """Take a slot, waiting in line if the backend is at its limit."""
        if self.try_enter():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # we were handed a slot but went away: pass it on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def leave(self) -> None:
        """Give a slot back; the oldest waiter, if any, gets it."""
        self.in_flight -= 1
        self._admit()

    def set_limit(self, limit: int) -> None:
        self.limit = limit
        self._admit()

    def _admit(self) -> None:
        while self._waiters and (not self.limit or self.in_flight < self.limit):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)
