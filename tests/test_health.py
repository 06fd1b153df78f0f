"""Health policy with a hand-moved clock: hysteresis, passive ejection, slow start.

No processes and no event loop: the verdicts are fed in as the active checks
would report them, and time moves only when the test says so.
"""

from __future__ import annotations

import pytest

from lab.balancer.backend import Backend
from lab.balancer.config import from_dict
from lab.balancer.health import SLOW_START_FLOOR, Health


class Watched:
    """A Health over some backends, with every event and change callback recorded."""

    def __init__(self, clock, names=("b1", "b2"), **settings) -> None:
        self.backends = {n: Backend(n, "127.0.0.1", 9000 + i) for i, n in enumerate(names, 1)}
        self.events: list[dict] = []
        self.changes: list[str | None] = []
        self.health = Health(
            lambda: self.backends.values(),
            self.events.append,
            lambda b: self.changes.append(b.name if b else None),
            clock,
        )
        backends = [{"name": n, "address": b.address} for n, b in self.backends.items()]
        self.health.configure(from_dict({"backends": backends, **settings}))

    def reasons(self, backend: str) -> list[str]:
        return [e["reason"] for e in self.events if e["backend"] == backend]


def test_fall_failed_checks_in_a_row_take_a_backend_down_and_rise_good_ones_bring_it_back(
    manual_clock,
):
    lab = Watched(manual_clock.clock, health={"enabled": True, "rise": 2, "fall": 3})
    b1 = lab.backends["b1"]
    for _ in range(2):
        lab.health.record(b1, False, "connection refused")
    assert b1.healthy  # two failures are not three: one lost probe never flaps a backend
    lab.health.record(b1, True, "GET /health answered 200 OK")
    lab.health.record(b1, False, "connection refused")
    lab.health.record(b1, False, "connection refused")
    assert b1.healthy  # the good check broke the streak
    lab.health.record(b1, False, "connection refused")
    assert not b1.healthy
    assert b1.state == "down"
    assert b1.down_reason == "3 failed checks in a row (connection refused)"

    lab.health.record(b1, True, "GET /health answered 200 OK")
    lab.health.record(b1, False, "connection refused")
    lab.health.record(b1, True, "GET /health answered 200 OK")
    assert not b1.healthy  # a failure in between: the good streak starts again
    lab.health.record(b1, True, "GET /health answered 200 OK")
    assert b1.healthy
    assert lab.reasons("b1") == [
        "3 failed checks in a row (connection refused)",
        "2 good checks in a row: back in service",
    ]
    assert [e["healthy"] for e in lab.events] == [False, True]
    assert {e["source"] for e in lab.events} == {"active"}
    assert lab.changes == ["b1", "b1"]
    assert lab.events[0]["t"] == manual_clock.EPOCH  # events carry the clock's wall time


def test_passive_health_counts_failures_within_fail_timeout_only(manual_clock):
    lab = Watched(manual_clock.clock, passive={"max_fails": 3, "fail_timeout_s": 10})
    b2 = lab.backends["b2"]
    lab.health.saw_failure(b2, "connection refused")
    manual_clock.advance(4)
    lab.health.saw_failure(b2, "connection refused")
    manual_clock.advance(7)  # t=11: the first failure is now older than 10 s
    lab.health.saw_failure(b2, "connection refused")
    assert b2.healthy
    manual_clock.advance(1)  # t=12: failures at 4, 11 and 12 are within 10 s
    lab.health.saw_failure(b2, "connection reset")
    assert not b2.healthy
    assert b2.down_reason == (
        "3 failures on real traffic within 10 s (connection reset): out of service for 10 s"
    )
    assert b2.ejected_until == manual_clock.now + 10

    lab.health.tick(manual_clock.now + 9.9)
    assert not b2.healthy
    lab.health.tick(manual_clock.now + 10)
    assert b2.healthy
    assert lab.reasons("b2")[-1] == (
        "10 s passed since passive health took it out: it gets traffic again"
    )
    assert [e["source"] for e in lab.events] == ["passive", "passive"]


def test_failures_while_ejected_do_not_extend_the_ejection(manual_clock):
    lab = Watched(manual_clock.clock, passive={"max_fails": 1, "fail_timeout_s": 5})
    b1 = lab.backends["b1"]
    lab.health.saw_failure(b1, "connection refused")
    manual_clock.advance(3)
    lab.health.saw_failure(b1, "connection refused")
    assert b1.ejected_until == manual_clock.START + 5
    assert len(lab.events) == 1


def test_rise_good_checks_end_a_passive_ejection_early(manual_clock):
    lab = Watched(
        manual_clock.clock,
        health={"enabled": True, "rise": 2},
        passive={"max_fails": 1, "fail_timeout_s": 60},
    )
    b1 = lab.backends["b1"]
    lab.health.saw_failure(b1, "connection refused")
    assert not b1.healthy
    lab.health.record(b1, True, "GET /health answered 200 OK")
    lab.health.record(b1, True, "GET /health answered 200 OK")
    assert b1.healthy
    assert b1.ejected_until == 0.0


def test_slow_start_ramps_a_returning_backend_from_the_floor_to_full_weight(manual_clock):
    lab = Watched(manual_clock.clock, slow_start_s=10)
    b1 = lab.backends["b1"]
    lab.health.back_in_service(b1)
    assert (b1.state, b1.warm_fraction) == ("warming", SLOW_START_FLOOR)
    ramp = []
    for _ in range(5):
        manual_clock.advance(2.5)
        lab.health.tick(manual_clock.now)
        ramp.append(b1.warm_fraction)
    assert ramp == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert b1.state == "up"
    assert lab.changes == [None] * 4  # the pools hear of every step, and not after the end


def test_slow_start_never_drops_below_its_floor(manual_clock):
    lab = Watched(manual_clock.clock, slow_start_s=100)
    b1 = lab.backends["b1"]
    lab.health.back_in_service(b1)
    manual_clock.advance(1)  # 1% of the window: still the floor
    lab.health.tick(manual_clock.now)
    assert b1.warm_fraction == SLOW_START_FLOOR


@pytest.mark.parametrize("window", [0, 0.0])
def test_no_slow_start_window_means_full_weight_at_once(manual_clock, window):
    lab = Watched(manual_clock.clock, slow_start_s=window)
    b1 = lab.backends["b1"]
    lab.health.back_in_service(b1)
    assert (b1.state, b1.warm_fraction) == ("up", 1.0)


def test_turning_active_checks_off_brings_their_casualties_back(manual_clock):
    lab = Watched(manual_clock.clock, health={"enabled": True, "fall": 1})
    b2 = lab.backends["b2"]
    lab.health.record(b2, False, "no answer within 1000 ms")
    assert not b2.healthy
    backends = [{"name": n, "address": b.address} for n, b in lab.backends.items()]
    lab.health.configure(from_dict({"backends": backends}))  # checks off
    assert b2.healthy
    assert lab.reasons("b2")[-1] == "active health checks turned off"
