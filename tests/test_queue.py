"""The request queue with a hand-moved clock: oldest first, bounded in length and in time."""

from __future__ import annotations

import random

from lab.balancer.backend import Backend
from lab.balancer.pool import Pool
from lab.balancer.queue import RequestQueue


class Waiter:
    """A request waiting for a slot, as the proxy's exchanges are: it takes the slot it is
    given (active += 1) or hears why it gave up."""

    def __init__(self, name: str, backend: Backend, log: list) -> None:
        self.id = name
        self.finished = False
        self.backend = backend
        self.log = log

    def resume_routing(self, waited_ms: float) -> None:
        self.backend.active += 1
        self.log.append((self.id, "routed", round(waited_ms)))

    def give_up(self, reason: str) -> None:
        self.finished = True
        self.log.append((self.id, "503", reason))


def full_pool() -> tuple[Pool, Backend]:
    b1 = Backend("b1", "127.0.0.1", 9001, max_conns=1, active=1)
    pool = Pool("default", [b1], "round-robin", "client-ip", random.Random(1))
    pool.refresh()
    return pool, b1


def queue_for(pool: Pool, clock, events: list, max_queue: int = 10, queue_ms: int = 1000):
    queue = RequestQueue(lambda: [pool], events.append, clock)
    queue.configure(max_queue, queue_ms)
    return queue


def test_waiters_are_served_oldest_first_one_per_freed_slot(manual_clock):
    pool, b1 = full_pool()
    events: list[dict] = []
    log: list = []
    queue = queue_for(pool, manual_clock.clock, events)
    for name in ("r1", "r2", "r3"):
        assert queue.join(pool, Waiter(name, b1, log), "every backend is at max_conns (b1 1/1)")
        manual_clock.advance(0.1)
    assert [e["position"] for e in events] == [1, 2, 3]
    assert events[0]["reason"] == "every backend is at max_conns (b1 1/1); waiting for a free slot"

    b1.active -= 1  # the request in flight finishes
    queue.dispatch()
    assert log == [("r1", "routed", 300)]  # r1 joined at 0 ms and was served at 300 ms
    b1.active -= 1
    queue.dispatch()
    assert log[-1] == ("r2", "routed", 200)
    assert (queue.waiting, len(pool.queue)) == (1, 1)


def test_a_full_queue_turns_the_next_request_away(manual_clock):
    pool, b1 = full_pool()
    queue = queue_for(pool, manual_clock.clock, [], max_queue=2)
    log: list = []
    assert queue.join(pool, Waiter("r1", b1, log), "full")
    assert queue.join(pool, Waiter("r2", b1, log), "full")
    assert not queue.join(pool, Waiter("r3", b1, log), "full")
    assert queue.waiting == 2


def test_a_waiter_gives_up_after_queue_ms_with_a_reason(manual_clock):
    pool, b1 = full_pool()
    queue = queue_for(pool, manual_clock.clock, [], queue_ms=1000)
    log: list = []
    queue.join(pool, Waiter("r1", b1, log), "full")
    manual_clock.advance(0.5)
    queue.join(pool, Waiter("r2", b1, log), "full")
    manual_clock.advance(0.499)
    queue.tick(manual_clock.now)
    assert log == []
    manual_clock.advance(0.001)
    queue.tick(manual_clock.now)
    assert log == [
        (
            "r1",
            "503",
            "waited 1000 ms in the queue of pool default and no slot freed up "
            "(timeouts.queue_ms is 1000)",
        )
    ]
    assert queue.waiting == 1  # r2 has waited only 500 ms


def test_a_waiter_that_left_is_skipped_and_does_not_take_a_slot(manual_clock):
    pool, b1 = full_pool()
    queue = queue_for(pool, manual_clock.clock, [])
    log: list = []
    gone = Waiter("r1", b1, log)
    queue.join(pool, gone, "full")
    queue.join(pool, Waiter("r2", b1, log), "full")
    gone.finished = True  # its client hung up while it waited
    b1.active -= 1
    queue.dispatch()
    assert log == [("r2", "routed", 0)]
    assert queue.waiting == 0


def test_a_removed_pool_refuses_everyone_waiting_in_it(manual_clock):
    pool, b1 = full_pool()
    queue = queue_for(pool, manual_clock.clock, [])
    log: list = []
    queue.join(pool, Waiter("r1", b1, log), "full")
    queue.refuse_all(pool, "pool default was removed")
    assert log == [("r1", "503", "pool default was removed")]
    assert queue.waiting == 0
