"""Round robin, least connections and least response time: deterministic pickers."""

from collections import Counter

from lab.balancer.algorithms import create
from lab.balancer.algorithms.base import RequestInfo
from lab.balancer.backend import Backend

REQUEST = RequestInfo(client="127.0.0.7", method="GET", path="/cart")


def make_pool(*weights: int) -> list[Backend]:
    return [Backend(f"b{i}", "127.0.0.1", 9000 + i, weight=w) for i, w in enumerate(weights, 1)]


def picks(algorithm, candidates, count: int, *, load: bool = False) -> list[str]:
    """Route `count` requests; with load=True each pick stays in flight (active += 1)."""
    names = []
    for _ in range(count):
        chosen = algorithm.choose(candidates, REQUEST).backend
        if load:
            chosen.active += 1
        names.append(chosen.name)
    return names


def longest_run(names: list[str]) -> int:
    best = run = 1
    for before, after in zip(names, names[1:], strict=False):
        run = run + 1 if after == before else 1
        best = max(best, run)
    return best


# Round robin


def test_round_robin_equal_weights_go_round_in_pool_order():
    rr = create("round-robin")
    assert picks(rr, make_pool(1, 1, 1), 7) == ["b1", "b2", "b3", "b1", "b2", "b3", "b1"]


def test_round_robin_5_1_1_is_smooth_like_nginx():
    rr = create("round-robin")
    pool = make_pool(5, 1, 1)
    names = picks(rr, pool, 70)
    assert names[:7] == ["b1", "b1", "b2", "b1", "b3", "b1", "b1"]
    assert names == names[:7] * 10
    assert longest_run(names) < 5


def test_round_robin_reasons_show_turn_or_scores():
    rr = create("round-robin")
    pool = make_pool(1, 1, 1)
    rr.choose(pool, REQUEST)
    assert rr.choose(pool, REQUEST).reason == "b2 is next in turn (weights 1:1:1)"

    weighted = create("round-robin")
    reason = weighted.choose(make_pool(5, 1, 1), REQUEST).reason
    assert reason.startswith("b1 has the top score 5 (b2: 1, b3: 1)")
    assert "5:1:1" in reason and "drops by 7" in reason


def test_round_robin_turn_reasons_follow_new_equal_weights_and_pool_size():
    rr = create("round-robin")
    pool = make_pool(1, 1, 1)
    assert rr.choose(pool, REQUEST).reason == "b1 is next in turn (weights 1:1:1)"
    for backend in pool:
        backend.weight = 2
    assert rr.choose(pool, REQUEST).reason == "b2 is next in turn (weights 2:2:2)"
    pool.append(Backend("b4", "127.0.0.1", 9004, weight=2))
    assert rr.choose(pool, REQUEST).reason.endswith("(weights 2:2:2:2)")


def test_round_robin_follows_a_weight_change_mid_run():
    rr = create("round-robin")
    pool = make_pool(1, 1, 1)
    picks(rr, pool, 4)
    pool[0].weight = 3
    names = picks(rr, pool, 500)
    assert Counter(names) == {"b1": 300, "b2": 100, "b3": 100}
    assert longest_run(names) <= 2


def test_round_robin_survives_a_backend_leaving_and_returning():
    rr = create("round-robin")
    pool = make_pool(1, 1, 1)
    picks(rr, pool, 1)
    without_b2 = [pool[0], pool[2]]
    names = picks(rr, without_b2, 100)
    assert set(names) == {"b1", "b3"}
    assert abs(names.count("b1") - names.count("b3")) <= 2  # b2's leftover score: one extra b3
    assert longest_run(names) <= 2
    counts = Counter(picks(rr, pool, 90))
    assert all(29 <= counts[name] <= 31 for name in ("b1", "b2", "b3"))


def test_round_robin_takes_in_a_new_backend():
    rr = create("round-robin")
    pool = make_pool(1, 1)
    picks(rr, pool, 3)
    pool.append(Backend("b3", "127.0.0.1", 9003))
    assert Counter(picks(rr, pool, 300)) == {"b1": 100, "b2": 100, "b3": 100}


def test_round_robin_forgets_backends_that_left_long_ago():
    rr = create("round-robin")
    for generation in range(50):
        pool = [Backend(f"g{generation}-{i}", "127.0.0.1", 9000 + i) for i in range(3)]
        picks(rr, pool, 3)
    assert len(rr._current) <= 2 * 3 + 8


def test_single_candidate_is_always_chosen_and_said_so():
    for name in ("round-robin", "least-connections", "least-response-time"):
        only = make_pool(4)
        decision = create(name).choose(only, REQUEST)
        assert decision.backend is only[0]
        assert decision.reason == "b1 is the only backend to choose from"


# Least connections


def test_least_connections_picks_fewest_active_and_says_why():
    pool = make_pool(1, 1, 1)
    pool[0].active, pool[1].active, pool[2].active = 2, 0, 1
    decision = create("least-connections").choose(pool, REQUEST)
    assert decision.backend.name == "b2"
    assert decision.reason == "b2 has 0 active (b1: 2, b3: 1)"


def test_least_connections_levels_out_uneven_load():
    pool = make_pool(1, 1, 1)
    pool[0].active, pool[1].active, pool[2].active = 5, 0, 2
    names = picks(create("least-connections"), pool, 8, load=True)
    assert names[:2] == ["b2", "b2"]  # b2 alone is below b3 until it has 2 too
    assert "b1" not in names
    assert [b.active for b in pool] == [5, 5, 5]


def test_least_connections_divides_by_weight():
    pool = make_pool(1, 2)
    pool[0].active, pool[1].active = 1, 1
    decision = create("least-connections").choose(pool, REQUEST)
    assert decision.backend.name == "b2"
    assert decision.reason == "b2 has 1/2 = 0.5 active per weight (b1: 1/1 = 1)"

    pool = make_pool(3, 1)
    names = picks(create("least-connections"), pool, 40, load=True)
    assert Counter(names) == {"b1": 30, "b2": 10}


def test_least_connections_ties_take_turns_instead_of_favouring_b1():
    pool = make_pool(1, 1, 1)
    lc = create("least-connections")
    assert picks(lc, pool, 6) == ["b1", "b2", "b3", "b1", "b2", "b3"]
    assert (
        lc.choose(pool, REQUEST).reason
        == "b1 has 0 active (b2: 0, b3: 0); 3 tied, so they take turns"
    )

    pool[1].active = 4
    assert picks(lc, pool, 4) == ["b3", "b1", "b3", "b1"]


def test_least_connections_tie_turns_survive_the_last_winner_leaving():
    pool = make_pool(1, 1, 1, 1)
    lc = create("least-connections")
    assert picks(lc, pool, 2) == ["b1", "b2"]
    without_b2 = [pool[0], pool[2], pool[3]]
    assert picks(lc, without_b2, 3) == ["b3", "b4", "b1"]


# Least response time


def sampled_pool(*latencies_ms: float) -> list[Backend]:
    """Backends whose peak EWMA holds one sample each (0 means never sampled)."""
    pool = make_pool(*[1] * len(latencies_ms))
    for backend, ms in zip(pool, latencies_ms, strict=True):
        if ms:
            backend.observe_latency(ms, now=100.0)
    return pool


def test_least_response_time_scores_with_the_numbers():
    pool = sampled_pool(2.0, 40.0, 5.0)
    pool[1].active = 1
    decision = create("least-response-time").choose(pool, REQUEST)
    assert decision.backend.name == "b1"
    assert (
        decision.reason
        == "b1 scores 2.0 ms x 1 = 2.0 (b2: 40.0 ms x 2 = 80.0, b3: 5.0 ms x 1 = 5.0)"
    )


def test_least_response_time_tries_unsampled_backends_first():
    pool = sampled_pool(2.0, 40.0, 0)
    lrt = create("least-response-time")
    decision = lrt.choose(pool, REQUEST)
    assert decision.backend.name == "b3"
    assert decision.reason.startswith("b3 has no response time yet, so it is tried first")

    fresh = sampled_pool(0, 0, 0)
    lrt = create("least-response-time")
    assert picks(lrt, fresh, 3) == ["b1", "b2", "b3"]
    assert lrt.choose(fresh, REQUEST).reason == (
        "b1 has no response time yet, so it is tried first "
        "(b2: no sample yet, b3: no sample yet); 3 tied, so they take turns"
    )


def test_least_response_time_avoids_a_slow_backend_under_load():
    pool = sampled_pool(2.0, 40.0, 4.0)
    lrt = create("least-response-time")
    counts = Counter(picks(lrt, pool, 20, load=True))
    assert counts["b2"] == 0
    assert counts["b1"] > counts["b3"] > 0
    # Once b1 costs 2 ms x 20 in flight, idle-but-slow b2 (40 ms x 1) is worth a try.
    more = Counter(picks(lrt, pool, 20, load=True))
    assert 0 < more["b2"] < more["b1"]


def test_least_response_time_trusts_a_backend_again_as_its_spike_fades():
    pool = make_pool(1, 1)
    spiky, steady = pool
    spiky.observe_latency(200.0, now=1.0)
    steady.observe_latency(20.0, now=1.0)
    lrt = create("least-response-time")
    assert lrt.choose(pool, REQUEST).backend is steady

    now = 1.0
    while spiky.ewma_ms >= steady.ewma_ms:  # fast answers fold in, one a second
        now += 1.0
        spiky.observe_latency(5.0, now=now)
        steady.observe_latency(20.0, now=now)
    assert 5.0 < now < 30.0
    assert lrt.choose(pool, REQUEST).backend is spiky


def test_least_response_time_gives_a_cold_backend_one_request_until_it_answers():
    # b1 and b2 answer in 2 ms; b3 joined cold. It may take one request to be
    # measured, but while that one is pending it must not take the rest (it scored
    # 0 before, and took every request until its first answer).
    pool = sampled_pool(2.0, 2.0, 0)
    lrt = create("least-response-time")
    names = picks(lrt, pool, 30, load=True)
    assert names[0] == "b3"
    assert names.count("b3") == 1
    decision = lrt.choose(pool, REQUEST)
    assert decision.backend.name != "b3"
    assert "b3: waits for its first answer (1 pending)" in decision.reason

    pool[2].active -= 1  # its answer is in: 300 ms, a slow newcomer
    pool[2].observe_latency(300.0, now=100.5)
    assert lrt.choose(pool, REQUEST).backend.name != "b3"


def test_least_response_time_spreads_a_cold_burst_by_what_is_pending():
    # Nothing measured yet and a burst arrives: each takes one, then the fewest
    # pending goes next, so the burst spreads instead of piling onto b1.
    pool = sampled_pool(0, 0, 0)
    lrt = create("least-response-time")
    names = picks(lrt, pool, 9, load=True)
    assert Counter(names) == {"b1": 3, "b2": 3, "b3": 3}
    pool[1].active += 2
    decision = lrt.choose(pool, REQUEST)
    assert decision.backend.name in ("b1", "b3")
    assert decision.reason.startswith(f"{decision.backend.name} has no response time yet either")


def test_least_response_time_says_so_when_a_waiting_backend_still_costs_least():
    # Only absurd numbers outweigh the penalty; the reason must then not claim every
    # backend is cold.
    pool = sampled_pool(0, 0)
    pool[0].active = 1
    pool[1].ewma_ms, pool[1].ewma_at, pool[1].active = 2e12, 100.0, 3
    decision = create("least-response-time").choose(pool, REQUEST)
    assert decision.backend.name == "b1"
    assert decision.reason.startswith("b1 waits for its first answer, but the rest cost more")
