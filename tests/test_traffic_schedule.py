"""The traffic's schedule (when, which client, what page) and its response-time distribution."""

from __future__ import annotations

import random

import pytest

from lab.traffic.distribution import Distribution
from lab.traffic.schedule import Schedule


def run(seed: int, clients: int = 4, rate: float = 200.0) -> list[tuple[float, int, str]]:
    """Two seconds of a schedule on a fake clock ticking every 7 ms, with one burst."""
    schedule = Schedule(random.Random(seed), clients)
    schedule.start(rate, now=100.0)
    seen = []
    for tick in range(1, 287):
        now = 100.0 + tick * 0.007
        arrivals = schedule.due(now)
        if tick == 150:
            arrivals += schedule.burst(3, now)
        seen += [(a.due, a.client, f"{a.page.method} {a.page.path}") for a in arrivals]
    return seen


def test_repeatable_the_same_seed_gives_the_same_arrivals_clients_and_paths():
    first, second = run(seed=7), run(seed=7)
    assert len(first) > 300  # two seconds at 200/s, and the burst
    assert first == second
    assert run(seed=8) != first


def test_clients_take_arrivals_in_turn_and_every_arrival_is_due_by_its_tick():
    seen = run(seed=3, clients=3)
    assert [client for _, client, _ in seen[:7]] == [0, 1, 2, 0, 1, 2, 0]
    dues = [due for due, _, _ in seen]
    assert dues == sorted(dues)
    assert {path for _, _, path in seen} >= {"GET /", "GET /cart", "POST /login"}


def test_the_distribution_gives_percentiles_within_one_percent_and_the_exact_max():
    rng = random.Random(2)
    values = [rng.lognormvariate(3, 1) for _ in range(5000)]
    distribution = Distribution()
    for value in values:
        distribution.add(value)
    ordered = sorted(values)
    summary = distribution.as_json()
    for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        true = ordered[int(fraction * len(ordered)) - 1]
        assert true <= summary[name] <= true * 1.0101, name
    assert summary["max"] == round(ordered[-1], 2)
    assert summary["n"] == 5000
    assert summary["cdf"] == sorted(summary["cdf"])
    assert len(summary["cdf"]) == 101


def test_an_empty_distribution_says_so():
    assert Distribution().as_json() == {
        "n": 0, "p50": None, "p95": None, "p99": None, "max": None, "cdf": []
    }  # fmt: skip


@pytest.mark.parametrize("ms", [0.0, 0.004, 250_000.0])
def test_values_past_either_end_are_kept_not_lost(ms):
    distribution = Distribution()
    distribution.add(ms)
    assert distribution.quantiles((0.5,)) == [round(ms, 2)]


def pages(schedule: Schedule, count: int) -> list[str]:
    return [f"{a.page.method} {a.page.path}" for a in schedule.burst(count, 0.0)]


def test_a_heavy_share_of_the_requests_ask_for_the_expensive_report():
    schedule = Schedule(random.Random(5), 4)
    schedule.mix.set_heavy(0.25, 400)
    seen = pages(schedule, 4000)
    heavy = seen.count("GET /report?delay_ms=400")
    assert 900 <= heavy <= 1100  # a quarter, give or take the dice
    assert {"GET /", "POST /login"} <= set(seen)  # the rest is the usual mix
    schedule.mix.set_heavy(0, 400)
    assert "GET /report?delay_ms=400" not in pages(schedule, 1000)


def test_with_no_heavy_share_a_seed_gives_the_pages_it_always_gave():
    plain = Schedule(random.Random(9), 4)
    unset = Schedule(random.Random(9), 4)
    unset.mix.set_heavy(0.0, 900)
    assert pages(plain, 300) == pages(unset, 300)
