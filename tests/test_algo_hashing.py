"""ip-hash and consistent-hash: stickiness, hash keys, and how many keys move."""

import re
from collections import Counter

import pytest

from lab.balancer.algorithms import create, parse_hash_key
from lab.balancer.algorithms.base import RequestInfo
from lab.balancer.algorithms.hashing import HashKey, stable_hash
from lab.balancer.backend import Backend

CLIENTS = [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(10_000)]


def make_pool(*weights: int) -> list[Backend]:
    return [Backend(f"b{i}", "127.0.0.1", 9000 + i, weight=w) for i, w in enumerate(weights, 1)]


def route_all(algorithm, candidates, clients=CLIENTS) -> list[str]:
    return [algorithm.choose(candidates, RequestInfo(client=c)).backend.name for c in clients]


def moved_share(name: str, backends_before: int) -> tuple[float, set[str]]:
    """Route every client, add one backend, route again: the share that moved, and where to."""
    algorithm = create(name)
    before = route_all(algorithm, make_pool(*[1] * backends_before))
    after = route_all(algorithm, make_pool(*[1] * (backends_before + 1)))
    moved = [new for old, new in zip(before, after, strict=True) if old != new]
    return len(moved) / len(CLIENTS), set(moved)


def test_stable_hash_is_fixed_across_processes_and_releases():
    # A sticky client must land on the same backend after a restart, so the hash
    # may never be Python's per-process salted hash().
    assert stable_hash("127.0.0.7") == 0xBFED0FAC
    assert 0 <= stable_hash("anything at all") < 2**32


# ip-hash


def test_ip_hash_is_sticky_per_client_across_instances():
    pool = make_pool(1, 1, 1)
    assert route_all(create("ip-hash"), pool) == route_all(create("ip-hash"), pool)


def test_ip_hash_spreads_clients_by_weight():
    counts = Counter(route_all(create("ip-hash"), make_pool(2, 1, 1)))
    assert counts["b1"] / len(CLIENTS) == pytest.approx(0.5, abs=0.03)
    assert counts["b2"] / len(CLIENTS) == pytest.approx(0.25, abs=0.03)


def test_ip_hash_hashes_the_whole_address_not_three_octets():
    lab_clients = [f"127.0.0.{i}" for i in range(1, 60)]
    assert set(route_all(create("ip-hash"), make_pool(1, 1, 1), lab_clients)) == {"b1", "b2", "b3"}


def test_ip_hash_reason_shows_the_arithmetic():
    pool = make_pool(1, 1, 1)
    decision = create("ip-hash").choose(pool, RequestInfo(client="127.0.0.7"))
    slot = 0xBFED0FAC % 3
    assert decision.reason == f"hash(127.0.0.7) mod 3 = {slot} -> b{slot + 1}"
    assert decision.backend is pool[slot]
    weighted = create("ip-hash").choose(make_pool(5, 1, 1), RequestInfo(client="127.0.0.7"))
    assert weighted.reason.endswith("(weights 5:1:1)")


def test_ip_hash_moves_most_clients_when_a_backend_is_added():
    share, _ = moved_share("ip-hash", 4)
    assert share > 0.6


# consistent-hash


def test_consistent_hash_is_sticky_per_key_across_instances():
    pool = make_pool(1, 1, 1)
    first = route_all(create("consistent-hash"), pool)
    assert first == route_all(create("consistent-hash"), pool)
    assert set(first) == {"b1", "b2", "b3"}


def test_adding_a_backend_moves_about_one_in_n_plus_one_keys_all_to_the_newcomer():
    share, destinations = moved_share("consistent-hash", 4)
    assert 0.12 < share < 0.28
    assert destinations == {"b5"}
    ip_share, _ = moved_share("ip-hash", 4)
    assert share < ip_share / 2


def test_losing_a_backend_moves_only_its_own_keys():
    algorithm = create("consistent-hash")
    pool = make_pool(1, 1, 1, 1)
    before = route_all(algorithm, pool)
    after = route_all(algorithm, [b for b in pool if b.name != "b3"])
    for old, new in zip(before, after, strict=True):
        assert old == new or old == "b3"


def test_consistent_hash_gives_heavier_backends_more_keys():
    counts = Counter(route_all(create("consistent-hash"), make_pool(3, 1)))
    assert counts["b1"] > 2 * counts["b2"]
    ring = create("consistent-hash").ring(make_pool(3, 1))
    assert len(ring.points) == 4 * 160
    assert sum(ring.share().values()) == pytest.approx(1.0)
    assert ring.share()["b1"] > 0.65


def test_ring_is_built_once_per_candidate_set():
    algorithm = create("consistent-hash")
    pool = make_pool(1, 1, 1)
    ring = algorithm.ring(pool)
    assert algorithm.ring(list(pool)) is ring
    assert algorithm.ring(pool[:2]) is not ring  # a retry without b3
    assert algorithm.ring(pool) is ring  # and back again, still cached
    pool[0].weight = 2
    assert algorithm.ring(pool) is not ring


def test_ring_lookup_takes_the_next_point_clockwise_and_wraps():
    ring = create("consistent-hash").ring(make_pool(1, 1))
    points = ring.points
    assert points == sorted(points)
    assert ring.slot(points[3]) == 3  # a key on a point belongs to it, as in ketama
    assert ring.slot(points[3] + 1) == 4
    assert ring.slot(0) == 0
    assert ring.slot(points[-1] + 1) == 0  # past the last point: round to the first


def test_ring_cache_keeps_the_sets_in_use():
    algorithm = create("consistent-hash")
    pool = make_pool(*[1] * 12)
    everyone = algorithm.ring(pool)
    for left_out in range(12):  # retries, each without one backend
        algorithm.ring(pool[:left_out] + pool[left_out + 1 :])
        assert algorithm.ring(pool) is everyone  # the full set stays cached while in use
    assert len(algorithm._rings) <= algorithm.MAX_RINGS


REASON = re.compile(
    r"^(.*) hashes to 0x[0-9a-f]{8}; the next ring point, 0x[0-9a-f]{8}, is owned by (b\d)$"
)


def reason_parts(algorithm, pool, request) -> tuple[str, str]:
    decision = algorithm.choose(pool, request)
    described, owner = REASON.match(decision.reason).groups()
    assert owner == decision.backend.name
    return described, owner


@pytest.mark.parametrize(
    ("hash_key", "request_for", "described"),
    [
        ("client-ip", lambda user: RequestInfo(client="127.0.0.7"), "key 127.0.0.7 (client IP)"),
        (
            "path",
            lambda user: RequestInfo(client="127.0.0.7", path=f"/u/{user}"),
            "key /u/{user} (path)",
        ),
        (
            "header:X-User",
            lambda user: RequestInfo(client="127.0.0.7", headers={"x-user": user}),
            "key {user} (header X-User)",
        ),
        (
            "cookie:sid",
            lambda user: RequestInfo(client="127.0.0.7", cookies={"sid": user}),
            "key {user} (cookie sid)",
        ),
    ],
)
def test_hash_key_chooses_what_is_hashed(hash_key, request_for, described):
    algorithm = create("consistent-hash", hash_key=hash_key)
    pool = make_pool(1, 1, 1)
    owners = set()
    for user in ("alice", "bob", "carol", "dave", "erin", "frank"):
        text, owner = reason_parts(algorithm, pool, request_for(user))
        assert text == described.format(user=user)
        owners.add(owner)
        assert algorithm.choose(pool, request_for(user)).backend.name == owner
    # Same client for all six users: only a key other than the client IP spreads them.
    assert (len(owners) == 1) if hash_key == "client-ip" else (len(owners) > 1)


def test_same_header_from_different_clients_lands_together():
    algorithm = create("consistent-hash", hash_key="header:X-User")
    pool = make_pool(1, 1, 1)
    routed = {
        algorithm.choose(pool, RequestInfo(client=c, headers={"x-user": "alice"})).backend.name
        for c in CLIENTS[:200]
    }
    assert len(routed) == 1


@pytest.mark.parametrize(
    ("hash_key", "info", "described"),
    [
        (
            "header:X-User",
            RequestInfo(client="127.0.0.9", headers={"accept": "*/*"}),
            "no X-User header",
        ),
        ("header:X-User", RequestInfo(client="127.0.0.9"), "no X-User header"),
        ("cookie:sid", RequestInfo(client="127.0.0.9", cookies={"other": "1"}), "no sid cookie"),
        ("path", RequestInfo(client="127.0.0.9"), "no path"),
    ],
)
def test_missing_key_falls_back_to_client_ip_and_says_so(hash_key, info, described):
    pool = make_pool(1, 1, 1)
    text, owner = reason_parts(create("consistent-hash", hash_key=hash_key), pool, info)
    assert text == f"{described}, so key 127.0.0.9 (client IP)"
    by_ip = create("consistent-hash").choose(pool, RequestInfo(client="127.0.0.9"))
    assert owner == by_ip.backend.name


def test_long_keys_are_shortened_in_the_reason():
    algorithm = create("consistent-hash", hash_key="path")
    decision = algorithm.choose(
        make_pool(1, 1), RequestInfo(client="1.2.3.4", path="/" + "x" * 500)
    )
    assert len(decision.reason) < 140
    assert "..." in decision.reason


# parse_hash_key


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("client-ip", HashKey("client-ip")),
        ("path", HashKey("path")),
        ("header:X-User", HashKey("header", "X-User")),
        (" cookie:session_id ", HashKey("cookie", "session_id")),
    ],
)
def test_parse_hash_key_accepts_the_documented_forms(text, parsed):
    assert parse_hash_key(text) == parsed
    assert parse_hash_key(parsed.text) == parsed


@pytest.mark.parametrize(
    "text",
    ["", "ip", "client_ip", "header:", "header:X User", "cookie:a;b", "query:x", "Path", 42, None],
)
def test_parse_hash_key_rejects_anything_else(text):
    with pytest.raises(ValueError, match="hash_key"):
        parse_hash_key(text)
