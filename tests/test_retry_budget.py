"""The retry budget: retries at most a share of the requests (plus a few a second), on a
fake clock; and a real balancer whose budget stops a retry storm on slow backends."""

from __future__ import annotations

import pytest
from conftest import Http

from lab.balancer.config import BalancerConfig, ConfigError, apply_update
from lab.balancer.retry_budget import TTL_S, RetryBudget


def budget(clock, percent: float, min_per_s: float) -> RetryBudget:
    return RetryBudget(clock.clock, budget_percent=percent, min_per_s=min_per_s)


def test_without_a_budget_every_retry_is_allowed(manual_clock):
    unlimited = budget(manual_clock, 0, 0)
    assert [unlimited.allow() for _ in range(100)] == [""] * 100


def test_retries_may_be_a_share_of_the_requests_and_no_more(manual_clock):
    twenty = budget(manual_clock, 20, 0)
    for _ in range(10):
        twenty.request()
    assert [twenty.allow() for _ in range(2)] == ["", ""]
    refused = twenty.allow()
    assert refused == (
        f"the retry budget is spent: 2 retries in the last {TTL_S} s, and "
        "20% of 10 requests + 0/s allows 2"
    )
    for _ in range(5):  # more traffic earns more retries
        twenty.request()
    assert twenty.allow() == "" and twenty.allow() != ""


def test_the_budget_forgets_after_its_window_and_keeps_a_minimum_a_second(manual_clock):
    floor = budget(manual_clock, 20, 0.5)  # 5 retries per 10 s with no traffic at all
    assert [floor.allow() for _ in range(6)].count("") == 5
    manual_clock.advance(TTL_S - 1)
    assert floor.allow() != ""  # all five still count
    manual_clock.advance(1.5)
    assert floor.allow() == ""  # they fell out of the window


def test_the_budget_is_a_setting_of_the_retries_table():
    config, _ = apply_update(BalancerConfig(), {"retries": {"budget_percent": 20, "min_per_s": 0}})
    assert (config.retries.budget_percent, config.retries.min_per_s) == (20, 0)
    assert config.retries.tries == 3  # the rest of the table kept
    for bad in ({"budget_percent": 101}, {"budget_percent": -1}, {"min_per_s": "many"}):
        with pytest.raises(ConfigError, match="retries"):
            apply_update(BalancerConfig(), {"retries": bad})


def storm(lab, requests: int) -> tuple[list[int], int]:
    """Statuses of `requests` GETs to slow backends, and the retries the balancer made."""
    client = Http(lab.listen, timeout=10)
    answers = [client.get() for _ in range(requests)]
    statuses = [status for status, _, _ in answers]
    client.close()
    return statuses, sum(b["total"] for b in lab.state()["backends"]) - requests


def test_a_budget_stops_a_retry_storm_on_slow_backends(lab):
    for name in lab.backends:
        lab.knobs(name, latency_ms=300)
    lab.start_balancer()
    lab.configure(passive={"max_fails": 0}, timeouts={"backend_response_ms": 100})
    statuses, retries = storm(lab, 10)
    assert statuses == [502] * 10 and retries == 20  # every request tried three times

    lab.admin("POST", "/reset")
    lab.configure(retries={"budget_percent": 20, "min_per_s": 0})
    statuses, retries = storm(lab, 10)
    assert statuses == [502] * 10 and retries == 2  # 20% of 10 requests
    last = Http(lab.listen, timeout=10)
    assert b"not retried: the retry budget is spent" in last.get()[2]
    last.close()
