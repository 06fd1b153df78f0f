"""Who a pool lets the algorithm see: primaries, backups, panic mode, max_conns, slow start."""

from __future__ import annotations

import random

from lab.balancer.algorithms import Decision, RequestInfo
from lab.balancer.backend import Backend
from lab.balancer.pool import Pool, Refusal

REQUEST = RequestInfo("127.0.0.2", "GET", "/")


def pool_of(*names: str, algorithm: str = "round-robin", seed: int = 1, **knobs) -> Pool:
    members = [Backend(n, "127.0.0.1", 9000 + i) for i, n in enumerate(names, 1)]
    for backend in members:
        for knob, value in knobs.get(backend.name, {}).items():
            setattr(backend, knob, value)
    pool = Pool("default", members, algorithm, "client-ip", random.Random(seed))
    pool.refresh()
    return pool


def picks(pool: Pool, count: int) -> list[str]:
    names = []
    for _ in range(count):
        outcome = pool.choose(REQUEST)
        assert isinstance(outcome, Decision), outcome
        names.append(outcome.backend.name)
    return names


def test_backups_stay_idle_while_any_primary_is_healthy():
    pool = pool_of("b1", "b2", "b3", b3={"backup": True})
    assert [b.name for b in pool.candidates] == ["b1", "b2"]
    pool.by_name["b1"].healthy = False
    pool.refresh()
    assert picks(pool, 3) == ["b2", "b2", "b2"]


def test_the_backup_takes_over_when_every_primary_is_down_and_the_reason_says_so():
    pool = pool_of("b1", "b2", "b3", b1={"healthy": False}, b2={"healthy": False},
                   b3={"backup": True})  # fmt: skip
    outcome = pool.choose(REQUEST)
    assert isinstance(outcome, Decision)
    assert outcome.backend.name == "b3"
    assert outcome.reason.startswith("backup in use, because every primary is down (b1, b2); ")


def test_without_panic_mode_a_pool_with_nobody_healthy_refuses_and_names_every_state():
    pool = pool_of("b1", "b2", b1={"healthy": False}, b2={"draining": True})
    outcome = pool.choose(REQUEST)
    assert isinstance(outcome, Refusal)
    assert outcome.reason == "no healthy backend (b1 down, b2 drained)"
    assert not outcome.can_wait


def test_panic_mode_routes_to_every_primary_below_the_threshold():
    pool = pool_of("b1", "b2", "b3", b1={"healthy": False}, b2={"healthy": False})
    pool.panic_threshold = 50  # 1 of 3 healthy is 33%
    pool.refresh()
    assert pool.panic
    assert sorted(picks(pool, 6)) == ["b1", "b1", "b2", "b2", "b3", "b3"]
    outcome = pool.choose(REQUEST)
    assert outcome.reason.startswith(
        "panic mode: only 1 of 3 backends healthy (under 50%), so every backend gets traffic"
    )


def test_panic_mode_stays_off_at_or_above_the_threshold():
    pool = pool_of("b1", "b2", "b3", "b4", b1={"healthy": False}, b2={"healthy": False})
    pool.panic_threshold = 50  # 2 of 4 healthy is exactly 50%
    pool.refresh()
    assert not pool.panic
    assert set(picks(pool, 4)) == {"b3", "b4"}


def test_backends_at_max_conns_are_left_out_and_a_full_pool_may_wait():
    pool = pool_of("b1", "b2", b1={"max_conns": 1, "active": 1}, b2={"max_conns": 2})
    assert picks(pool, 2) == ["b2", "b2"]
    pool.by_name["b2"].active = 2
    outcome = pool.choose(REQUEST)
    assert isinstance(outcome, Refusal)
    assert outcome.can_wait
    assert outcome.reason == "every backend is at max_conns (b1 1/1, b2 2/2)"


def test_a_warming_backend_sits_out_picks_in_proportion_to_its_ramp():
    pool = pool_of("b1", "b2", algorithm="least-connections", seed=7,
                   b2={"warm_fraction": 0.25})  # fmt: skip
    served = picks(pool, 400)
    # Least connections with nothing in flight ties at 0 and would split 200/200.
    # b2 can win only the picks it joins, a quarter of them (about 100 of 400).
    assert 50 <= served.count("b2") <= 120
    reasons = [pool.choose(REQUEST).reason for _ in range(20)]
    assert any(r.endswith("(warming up in slow start, so it sat out this pick: b2 at 25%)")
               for r in reasons)  # fmt: skip


def test_a_request_that_failed_everywhere_is_refused_as_such():
    pool = pool_of("b1", "b2")
    outcome = pool.choose(REQUEST, exclude=list(pool.members))
    assert isinstance(outcome, Refusal)
    assert outcome.reason == "every backend failed this request"
