"""Random and power of two choices: seeded distributions and balls into bins."""

import random
import re
from collections import Counter

import pytest

from lab.balancer.algorithms import create
from lab.balancer.algorithms.base import RequestInfo
from lab.balancer.backend import Backend

REQUEST = RequestInfo(client="127.0.0.7")
PICKS = 30_000


def make_pool(*weights: int) -> list[Backend]:
    return [Backend(f"b{i}", "127.0.0.1", 9000 + i, weight=w) for i, w in enumerate(weights, 1)]


def shares(algorithm, candidates, count: int = PICKS) -> dict[str, float]:
    counts = Counter(algorithm.choose(candidates, REQUEST).backend.name for _ in range(count))
    return {name: n / count for name, n in counts.items()}


def assert_shares(actual: dict[str, float], expected: dict[str, float], tolerance=0.015):
    assert set(actual) <= set(expected)
    for name, share in expected.items():
        assert actual.get(name, 0.0) == pytest.approx(share, abs=tolerance), name


# Random


def test_random_follows_the_weights():
    algorithm = create("random", random.Random(7))
    assert_shares(shares(algorithm, make_pool(3, 1, 1)), {"b1": 0.6, "b2": 0.2, "b3": 0.2})


def test_random_equal_weights_is_uniform():
    algorithm = create("random", random.Random(8))
    assert_shares(
        shares(algorithm, make_pool(1, 1, 1, 1)), dict.fromkeys(["b1", "b2", "b3", "b4"], 0.25)
    )


def test_random_replays_exactly_with_the_same_seed():
    pool = make_pool(2, 1, 1)
    first, second = create("random", random.Random(42)), create("random", random.Random(42))
    runs = [[a.choose(pool, REQUEST).backend.name for _ in range(50)] for a in (first, second)]
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == 3


def test_random_reason_gives_the_chance():
    algorithm = create("random", random.Random(1))
    pool = make_pool(3, 1, 1)
    for _ in range(20):
        decision = algorithm.choose(pool, REQUEST)
        chance = "60%" if decision.backend.name == "b1" else "20%"
        assert (
            decision.reason
            == f"random pick, weighted 3:1:1 ({decision.backend.name} had a {chance} chance)"
        )
    equal = create("random", random.Random(1)).choose(make_pool(1, 1, 1), REQUEST)
    assert equal.reason == f"random pick among 3 ({equal.backend.name} had a 33% chance)"


# Power of two choices


DREW = re.compile(r"^drew (b\d) and (b\d); ")


def test_p2c_draws_two_distinct_and_the_less_loaded_wins():
    algorithm = create("power-of-two-choices", random.Random(3))
    pool = make_pool(1, 1, 1)
    pool[0].active, pool[1].active, pool[2].active = 2, 0, 1
    by_name = {b.name: b for b in pool}
    pairs = set()
    for _ in range(200):
        decision = algorithm.choose(pool, REQUEST)
        drawn = DREW.match(decision.reason).groups()
        pairs.add(frozenset(drawn))
        winner = decision.backend
        (loser,) = [by_name[name] for name in drawn if name != winner.name]
        assert winner.active < loser.active
        assert decision.reason.endswith(f"has fewer active ({winner.active} vs {loser.active})")
    assert len(pairs) == 3  # every pair gets drawn, never a backend with itself


def test_p2c_picks_the_less_loaded_of_the_two():
    # Each of the 6 pairs is equally likely; a backend wins every pair it is the
    # least loaded of: b1 3 pairs out of 6, b2 2, b3 1, b4 never.
    pool = make_pool(1, 1, 1, 1)
    for load, backend in enumerate(pool):
        backend.active = load
    observed = shares(create("power-of-two-choices", random.Random(4)), pool)
    assert_shares(observed, {"b1": 1 / 2, "b2": 1 / 3, "b3": 1 / 6, "b4": 0.0})
    assert "b4" not in observed


def test_p2c_tie_goes_to_the_first_drawn():
    algorithm = create("power-of-two-choices", random.Random(5))
    decision = algorithm.choose(make_pool(1, 1, 1), REQUEST)
    first, _ = DREW.match(decision.reason).groups()
    assert decision.backend.name == first
    assert decision.reason.endswith(f"both have 0 active, so the first drawn, {first}, wins")
    # With everyone idle the winner is just the first draw: uniform.
    observed = shares(algorithm, make_pool(1, 1, 1))
    assert_shares(observed, dict.fromkeys(["b1", "b2", "b3"], 1 / 3))


def test_p2c_draws_are_weighted_and_load_is_per_weight():
    idle = shares(create("power-of-two-choices", random.Random(6)), make_pool(3, 1))
    assert_shares(idle, {"b1": 0.75, "b2": 0.25})

    pool = make_pool(2, 1)
    pool[0].active, pool[1].active = 3, 1  # 3/2 = 1.5 vs 1/1 = 1
    decision = create("power-of-two-choices", random.Random(6)).choose(pool, REQUEST)
    assert decision.backend.name == "b2"
    assert "b2 has less active per weight (1/1 = 1 vs 3/2 = 1.5)" in decision.reason


def test_p2c_with_one_candidate_just_takes_it():
    pool = make_pool(1)
    decision = create("power-of-two-choices", random.Random(0)).choose(pool, REQUEST)
    assert decision.backend is pool[0]
    assert decision.reason == "b1 is the only backend to choose from"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_choices_keep_the_busiest_backend_near_average(seed):
    """Balls into bins: 1000 requests that never finish, spread over 100 backends."""
    busiest = {}
    for name in ("random", "power-of-two-choices"):
        pool = make_pool(*[1] * 100)
        algorithm = create(name, random.Random(seed))
        for _ in range(1000):
            algorithm.choose(pool, REQUEST).backend.active += 1
        busiest[name] = max(b.active for b in pool)
    assert busiest["power-of-two-choices"] <= 10 + 3
    assert busiest["random"] >= busiest["power-of-two-choices"] + 3
