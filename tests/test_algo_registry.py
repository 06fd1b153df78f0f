"""The algorithm registry: names, creation, options, and switching mid-run."""

import random

import pytest

import lab.balancer.algorithms as algorithms
from lab.balancer.algorithms import ALGORITHM_NAMES, HASH_KEYS, create
from lab.balancer.algorithms.base import Algorithm, Decision, RequestInfo
from lab.balancer.backend import Backend


def make_pool(*weights: int) -> list[Backend]:
    return [Backend(f"b{i}", "127.0.0.1", 9000 + i, weight=w) for i, w in enumerate(weights, 1)]


def test_names_are_the_design_contract_in_order():
    assert ALGORITHM_NAMES == (
        "round-robin",
        "least-connections",
        "random",
        "power-of-two-choices",
        "ip-hash",
        "consistent-hash",
        "least-response-time",
    )
    assert HASH_KEYS == ("client-ip", "path", "header:<name>", "cookie:<name>", "sni")


def test_registry_reexports_the_strategy_seam():
    assert algorithms.RequestInfo is RequestInfo
    assert algorithms.Decision is Decision
    assert algorithms.Algorithm is Algorithm


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_every_name_creates_an_algorithm_that_picks_a_candidate(name):
    algorithm = create(name, random.Random(1))
    assert isinstance(algorithm, Algorithm)
    assert algorithm.name == name
    pool = make_pool(2, 1, 1)
    for _ in range(10):
        decision = algorithm.choose(pool, RequestInfo(client="127.0.0.7", path="/"))
        assert decision.backend in pool
        assert decision.backend.name in decision.reason


def test_unknown_name_is_refused_with_the_choices():
    with pytest.raises(ValueError) as refused:
        create("least-conn")
    message = str(refused.value)
    assert message.startswith("unknown algorithm 'least-conn'; choose one of: round-robin, ")
    assert all(name in message for name in ALGORITHM_NAMES)


def test_bad_hash_key_is_refused():
    with pytest.raises(ValueError, match="bad hash_key 'header:'"):
        create("consistent-hash", hash_key="header:")
    with pytest.raises(ValueError, match="bad hash_key 'url'"):
        create("round-robin", hash_key="url")  # checked even when unused


def test_hash_key_is_used_by_consistent_hash_and_ignored_elsewhere():
    assert create("consistent-hash", hash_key="cookie:sid").hash_key.text == "cookie:sid"
    assert create("consistent-hash").hash_key.text == "client-ip"
    assert create("ip-hash", hash_key="path").name == "ip-hash"


def test_unknown_option_is_refused():
    with pytest.raises(ValueError, match="unknown algorithm option 'vnodes'"):
        create("consistent-hash", vnodes=10)


def test_the_rng_passed_in_makes_runs_repeatable():
    pool = make_pool(1, 1, 1, 1)
    runs = []
    for _ in range(2):
        algorithm = create("power-of-two-choices", random.Random(99))
        runs.append([algorithm.choose(pool, RequestInfo("127.0.0.1")).reason for _ in range(30)])
    assert runs[0] == runs[1]


def test_switching_algorithm_mid_run_keeps_the_live_numbers():
    pool = make_pool(1, 1, 1)
    rr = create("round-robin")
    for _ in range(3):
        rr.choose(pool, RequestInfo("127.0.0.1")).backend.active += 1
    pool[0].active += 5
    # A fresh least-connections reads the counts the pool already holds.
    decision = create("least-connections").choose(pool, RequestInfo("127.0.0.1"))
    assert decision.backend.name == "b2"
    assert decision.reason.startswith("b2 has 1 active (b1: 6, b3: 1)")
