"""The claim language of "what you should see" boxes, and the measurements claims are
worked out on: exact arithmetic, clear errors, and counts taken from real event shapes."""

from __future__ import annotations

import re

import pytest

from lab.lessons.claims import ClaimError, parse_claim
from lab.lessons.errors import LessonError
from lab.lessons.measure import known, measure


@pytest.mark.parametrize(
    "text, metrics, holds",
    [
        ("routed.b1 == 2", {"routed.b1": 2}, True),
        ("routed.b1 == 2", {"routed.b1": 3}, False),
        ("routed.b1 < 0.5 * routed", {"routed.b1": 4, "routed": 10}, True),
        ("routed.b1 < 0.5 * routed", {"routed.b1": 5, "routed": 10}, False),
        ("0.1 <= moved <= 0.4", {"moved": 0.25}, True),
        ("0.1 <= moved <= 0.4", {"moved": 0.5}, False),
        ("(served.b1 + served.b2) / 2 >= -1 + 4", {"served.b1": 2, "served.b2": 4}, True),
        ("p95_ms != p50_ms", {"p95_ms": 3.0, "p50_ms": 3.0}, False),
    ],
)
def test_claims_are_worked_out_exactly(text, metrics, holds):
    assert parse_claim(text).holds(metrics) is holds


@pytest.mark.parametrize(
    "text, words",
    [
        ("routed.b1 = 2", "cannot read '= 2'"),
        ("routed.b1 ==", "ends too soon"),
        ("(routed.b1 == 2", "missing ')'"),
        ("routed.b1 2", "unexpected '2'"),
        ("__import__('os') == 1", "cannot read"),
        ("", "a check is a line of text"),
    ],
)
def test_a_malformed_claim_says_where(text, words):
    with pytest.raises(LessonError, match=re.escape(words)):
        parse_claim(text)


def test_a_claim_that_cannot_be_worked_out_says_why():
    with pytest.raises(ClaimError, match="divides by zero"):
        parse_claim("routed.b1 / routed > 0.1").holds({"routed.b1": 0, "routed": 0})
    with pytest.raises(ClaimError, match="no measurement called 'p95_ms'"):
        parse_claim("p95_ms < 10").holds({})


def test_known_measurements():
    for name in (
        "routed", "routed.b12", "served.max", "healthy.b2", "draining.b1", "moved",
        "moved_to.b4", "sticky", "rule.api", "pool.default", "checks.min", "checks_failed.b2",
        "marked_down", "marked_down.b2", "marked_down.passive", "marked_up.active",
    ):  # fmt: skip
        assert known(name), name
    for name in (
        "routed.x", "moved_to.max", "luck", "served.b0", "rule", "pool.a.b", "sticky.b1",
        "marked_up.sideways", "checks.active", "routed.active",
    ):  # fmt: skip
        assert not known(name), name


def route(client: str, backend: str, retry: int = 0) -> dict:
    event = {"type": "route", "client": client, "backend": backend}
    return event | ({"retry": retry} if retry else {})


def test_measurements_come_from_the_processes_numbers_and_the_events():
    balancer = {
        "backends": [
            {"name": "b1", "total": 3, "active": 1, "failures": 0, "healthy": True, "weight": 2},
            {"name": "b2", "total": 1, "active": 0, "failures": 1, "healthy": False, "weight": 1},
        ]
    }
    traffic = {
        "counters": {
            "sent": 4,
            "completed": 3,
            "failed": 1,
            "in_flight": 0,
            "status": {"2xx": 3, "4xx": 0, "5xx": 0},
        },
        "latency_ms": {"p50": 1.5, "p95": None},
    }
    before = [route("a", "b1"), route("b", "b1"), route("c", "b2")]
    now = [route("a", "b1"), route("b", "b2"), route("c", "b2", retry=1), route("c", "b1")]
    metrics = measure(balancer, traffic, {"b1": 3}, [before, now])
    assert metrics["routed"] == 4 and metrics["routed.max"] == 3 and metrics["routed.min"] == 1
    assert metrics["served.b1"] == 3 and metrics["served.b2"] == 0
    assert metrics["backends_idle"] == 1  # b2's process served nothing
    assert metrics["healthy"] == 1 and metrics["weight.b1"] == 2
    assert metrics["status.2xx"] == 3 and metrics["p50_ms"] == 1.5 and "p95_ms" not in metrics
    assert metrics["decisions"] == 4 and metrics["retries"] == 1
    assert metrics["clients"] == 3 and metrics["clients_split"] == 1  # c went to b2, then b1
    assert metrics["moved"] == pytest.approx(2 / 3)  # b (b1 -> b2) and c ({b2} -> {b1, b2})
    assert metrics["moved_to.b2"] == pytest.approx(1 / 3)
    assert metrics["sticky"] == 0 and metrics["draining.b1"] == 0


def test_health_sticky_and_rule_measurements_count_the_events():
    balancer = {
        "backends": [
            {"name": n, "total": 0, "active": 0, "failures": 0, "healthy": True, "weight": 1}
            for n in ("b1", "b2", "b3")
        ],
        "rules": [{"name": "api", "pool": "api"}, {"name": "canary", "pool": "canary"}],
        "pools": [{"name": "default"}, {"name": "api"}, {"name": "canary"}],
    }
    balancer["backends"][2]["draining"] = True

    def check(backend: str, ok: bool) -> dict:
        return {"type": "check", "backend": backend, "ok": ok}

    def health(backend: str, healthy: bool, source: str) -> dict:
        return {"type": "health", "backend": backend, "healthy": healthy, "source": source}

    events = [
        check("b1", True), check("b2", True), check("b2", False), check("b2", False),
        health("b2", False, "passive"), health("b2", False, "active"),
        health("b2", True, "active"), health("b1", False, "passive"),
        route("x", "b1") | {"sticky": True, "pool": "api", "rule": "api"},
        route("x", "b1") | {"sticky": True},
        route("y", "b2"),
    ]  # fmt: skip
    metrics = measure(balancer, None, {}, [events])
    assert (metrics["checks"], metrics["checks.b2"], metrics["checks.b3"]) == (4, 3, 0)
    assert (metrics["checks_failed"], metrics["checks_failed.b2"]) == (2, 2)
    down = (metrics["marked_down"], metrics["marked_down.b2"], metrics["marked_down.b3"])
    assert down == (3, 2, 0)
    assert (metrics["marked_down.passive"], metrics["marked_down.active"]) == (2, 1)
    assert (metrics["marked_up.b2"], metrics["marked_up.active"], metrics["marked_up.passive"]) == (
        1, 1, 0
    )  # fmt: skip
    assert metrics["sticky"] == 2
    assert (metrics["rule.api"], metrics["rule.canary"]) == (1, 0)  # named, if never matched
    assert (metrics["pool.api"], metrics["pool.default"], metrics["pool.canary"]) == (1, 2, 0)
    assert metrics["draining.b3"] == 1 and metrics["draining"] == 1


def test_udp_measurements_count_flows_datagrams_and_how_flows_ended():
    for name in ("datagrams", "datagrams.b2", "flows", "ended.idle", "ended.backend_down"):
        assert known(name), name
    assert not known("ended.sideways")
    balancer = {
        "backends": [
            {"name": "b1", "total": 2, "active": 1, "failures": 0, "healthy": True, "weight": 1,
             "datagrams": 7},
            {"name": "b2", "total": 1, "active": 0, "failures": 0, "healthy": True, "weight": 1,
             "datagrams": 2},
        ],
        "udp": {"flows": 1},
    }  # fmt: skip
    events = [
        {"type": "done", "backend": "b1", "end": "idle"},
        {"type": "done", "backend": "b2", "end": "backend-down"},
        {"type": "done", "backend": "b1", "status": 200},  # Layer 7: not a flow
    ]
    metrics = measure(balancer, None, {}, [events])
    assert (metrics["datagrams"], metrics["datagrams.b1"], metrics["flows"]) == (9, 7, 1)
    assert (metrics["ended.idle"], metrics["ended.backend_down"]) == (1, 1)
    assert metrics["ended.evicted"] == 0


def test_backend_clients_count_the_addresses_the_backends_were_told():
    balancer = {"backends": [{"name": "b1", "total": 0, "active": 0, "failures": 0,
                              "healthy": True, "weight": 1}]}  # fmt: skip
    told = [
        {"peer": {"127.0.0.1": 4}, "proxy_protocol": {"127.0.0.2": 2, "127.0.0.3": 2},
         "forwarded_for": {}},
        {"peer": {"127.0.0.1": 3}, "proxy_protocol": {"127.0.0.3": 1},
         "forwarded_for": {"127.0.0.4": 2}},
    ]  # fmt: skip
    metrics = measure(balancer, None, {}, [[]], told)
    assert metrics["backend_peers"] == 1  # the same balancer, seen by both backends
    assert metrics["backend_clients.proxy_protocol"] == 2
    assert metrics["backend_clients.forwarded_for"] == 1
    assert metrics["backend_clients"] == 3
    assert metrics["backends_per_client"] == 2  # 127.0.0.3 reached both backends
    nothing = measure(balancer, None, {}, [[]])  # no backend answered: nothing was told
    assert (nothing["backend_peers"], nothing["backend_clients"]) == (0, 0)
    assert nothing["backends_per_client"] == 0 and known("backends_per_client")
    assert all(known(name) for name in ("backend_peers", "backend_clients.forwarded_for"))
