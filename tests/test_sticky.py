"""Sticky sessions with a hand-moved clock: pins, their expiry, a full table, fallbacks."""

from __future__ import annotations

import random

from lab.balancer.algorithms import Decision, RequestInfo
from lab.balancer.backend import Backend
from lab.balancer.pool import Pool
from lab.balancer.settings import StickySettings
from lab.balancer.sticky import Sticky


def pool_of(*names: str) -> Pool:
    members = [Backend(n, "127.0.0.1", 9000 + i) for i, n in enumerate(names, 1)]
    pool = Pool("default", members, "round-robin", "client-ip", random.Random(1))
    pool.refresh()
    return pool


def source_sticky(clock, expire_s: float = 30, limit: int = 100) -> Sticky:
    sticky = Sticky(clock, limit=limit)
    sticky.configure(StickySettings(mode="source", expire_s=expire_s))
    return sticky


def served(sticky: Sticky, pool: Pool, client: str) -> Decision:
    outcome = sticky.choose(pool, RequestInfo(client), ())
    assert isinstance(outcome, Decision)
    return outcome


def test_a_source_pin_lasts_expire_s_after_the_clients_last_request(manual_clock):
    pool, sticky = pool_of("b1", "b2", "b3"), source_sticky(manual_clock.clock)
    first = served(sticky, pool, "127.0.0.2")
    assert first.reason.endswith("; 127.0.0.2 now sticks to b1")
    served(sticky, pool, "127.0.0.3")  # b2: round robin moves on for others
    manual_clock.advance(29)
    again = served(sticky, pool, "127.0.0.2")
    assert (again.backend.name, again.sticky) == ("b1", True)
    assert again.reason == "the stick table pins this client to b1"
    manual_clock.advance(29)  # 58 s since the first request, 29 since the last
    assert served(sticky, pool, "127.0.0.2").backend.name == "b1"
    manual_clock.advance(31)
    assert sticky.pinned(RequestInfo("127.0.0.2")) is None  # expired, and forgotten
    assert "127.0.0.2" not in sticky.table


def test_a_full_stick_table_forgets_the_least_recent_client(manual_clock):
    pool, sticky = pool_of("b1", "b2"), source_sticky(manual_clock.clock, limit=3)
    for client in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        served(sticky, pool, client)
    served(sticky, pool, "127.0.0.2")  # now the most recent
    served(sticky, pool, "127.0.0.5")
    assert list(sticky.table) == ["127.0.0.4", "127.0.0.2", "127.0.0.5"]


def test_a_pin_to_a_down_backend_moves_and_the_reason_says_why(manual_clock):
    pool, sticky = pool_of("b1", "b2"), source_sticky(manual_clock.clock)
    assert served(sticky, pool, "127.0.0.2").backend.name == "b1"
    pool.by_name["b1"].healthy = False
    pool.refresh()
    moved = served(sticky, pool, "127.0.0.2")
    assert moved.backend.name == "b2"
    assert moved.reason.startswith("the stick table pointed at b1, but b1 is down; chose again: ")
    assert moved.reason.endswith("; 127.0.0.2 now sticks to b2")
    assert sticky.table["127.0.0.2"][0] == "b2"


def test_a_cookie_pin_to_a_full_backend_chooses_again(manual_clock):
    pool = pool_of("b1", "b2")
    pool.by_name["b1"].max_conns, pool.by_name["b1"].active = 1, 1
    pool.refresh()
    sticky = Sticky(manual_clock.clock)
    sticky.configure(StickySettings(mode="cookie"))
    request = RequestInfo("127.0.0.2", "GET", "/", cookies={"SERVERID": "b1"})
    outcome = sticky.choose(pool, request, ())
    assert isinstance(outcome, Decision)
    assert outcome.backend.name == "b2"
    assert "sticky cookie SERVERID=b1 pointed at b1, but b1 is full (1/1)" in outcome.reason
    assert outcome.reason.endswith("; the response sets cookie SERVERID=b2")
    assert sticky.table == {}  # cookie mode keeps no table
