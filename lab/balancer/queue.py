"""The request queue: where requests wait while every backend of their pool is at max_conns.

Like HAProxy's backend queue: a request that finds no free slot waits, oldest
first, for one to free up. The queue is bounded (`max_queue` per pool) and so is
the wait (`timeouts.queue_ms`); past either the answer is a 503 that says which.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Protocol

from lab.balancer.clock import Clock
from lab.vocabulary.events import QUEUE

if TYPE_CHECKING:
    from lab.balancer.pool import Pool


class Waiter(Protocol):
    """A request (L7) or connection (L4) that can wait for a slot."""

    id: str
    finished: bool

    def resume_routing(self, waited_ms: float) -> None: ...

    def give_up(self, reason: str) -> None: ...


class RequestQueue:
    """The waiting requests of every pool. It sees the pools through `pools` (they are
    rebuilt on a config change) and tells the world through `publish`."""

    def __init__(
        self,
        pools: Callable[[], Collection[Pool]],
        publish: Callable[[dict], None],
        clock: Clock,
    ) -> None:
        self.pools = pools
        self.publish = publish
        self.clock = clock
        self.max_queue = 100  # per pool; configure() sets both limits
        self.limit_s = 1.0
        self.waiting = 0  # across all pools; 0 keeps the hot path to one comparison
        self._scheduled = False

    def configure(self, max_queue: int, queue_ms: int) -> None:
        self.max_queue = max_queue
        self.limit_s = queue_ms / 1000

    def join(self, pool: Pool, waiter: Waiter, reason: str) -> bool:
        """Queue `waiter`; False when the pool's queue is full."""
        if len(pool.queue) >= self.max_queue:
            return False
        pool.queue.append((waiter, self.clock.monotonic()))
        self.waiting += 1
        self.publish(
            {
                "type": QUEUE,
                "id": waiter.id,
                "t": self.clock.wall(),
                "pool": pool.name,
                "position": len(pool.queue),
                "reason": f"{reason}; waiting for a free slot",
            }
        )
        return True

    def slot_freed(self) -> None:
        """A slot may be free: serve waiters after the current callback finishes, so the
        event that freed it (a done) is told before the route it makes possible."""
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.dispatch()
            return
        self._scheduled = True
        loop.call_soon(self.dispatch)

    def dispatch(self) -> None:
        self._scheduled = False
        for pool in list(self.pools()):
            queue = pool.queue
            for _ in range(len(queue)):  # bounded: a waiter may queue itself again
                if not queue:
                    break
                waiter, since = queue[0]
                if not waiter.finished and not _has_room(pool):
                    break
                queue.popleft()
                self.waiting -= 1
                if not waiter.finished:
                    waiter.resume_routing((self.clock.monotonic() - since) * 1000.0)

    def tick(self, now: float) -> None:
        limit_s = self.limit_s
        for pool in self.pools():
            queue = pool.queue
            while queue and (queue[0][0].finished or now - queue[0][1] >= limit_s):
                waiter, since = queue.popleft()
                self.waiting -= 1
                if not waiter.finished:
                    waiter.give_up(
                        f"waited {(now - since) * 1000:.0f} ms in the queue of pool {pool.name} "
                        f"and no slot freed up (timeouts.queue_ms is {limit_s * 1000:.0f})"
                    )

    def refuse_all(self, pool: Pool, reason: str) -> None:
        while pool.queue:
            waiter, _ = pool.queue.popleft()
            self.waiting -= 1
            if not waiter.finished:
                waiter.give_up(reason)


def _has_room(pool: Pool) -> bool:
    return any(not b.max_conns or b.active < b.max_conns for b in pool.candidates)
