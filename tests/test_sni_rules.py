"""Routing on the SNI name: the `sni` rule condition, `host` at Layer 4, hash_key "sni",
and which rules a passthrough balancer must refuse (it cannot see inside the TLS)."""

from __future__ import annotations

import pytest

from lab.balancer.algorithms import RequestInfo, create
from lab.balancer.algorithms.hashing import parse_hash_key
from lab.balancer.backend import Backend
from lab.balancer.config import ConfigError, apply_update, from_dict
from lab.balancer.rules import match, match_sni

BACKENDS = [
    {"name": "b1", "address": "127.0.0.1:9001"},
    {"name": "b2", "address": "127.0.0.1:9002"},
    {"name": "b3", "address": "127.0.0.1:9003"},
]
POOLS = [{"name": "shop", "backends": ["b1"]}, {"name": "api", "backends": ["b2"]}]


def passthrough(rules: list, **more) -> dict:
    return {
        "mode": "tcp",
        "tls": {"mode": "passthrough", **more},
        "backends": BACKENDS,
        "pools": POOLS,
        "rules": rules,
    }


def refused(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        from_dict(data)
    return caught.value


def with_sni(name: str | None) -> RequestInfo:
    info = RequestInfo("127.0.0.1")
    info.sni = name
    return info


def test_passthrough_needs_layer_4_tcp():
    error = refused({"mode": "http", "tls": {"mode": "passthrough"}})
    assert error.field == "tls.mode" and 'mode = "tcp"' in error.message
    assert refused({"mode": "udp", "tls": {"mode": "passthrough"}}).field == "tls.mode"
    assert from_dict({"mode": "tcp", "tls": {"mode": "passthrough"}}).tls.mode == "passthrough"


@pytest.mark.parametrize(
    ("condition", "sees"),
    [
        ({"path_prefix": "/api"}, "the path"),
        ({"header": "X-Canary: 1"}, "headers"),
        ({"cookie": "canary=1"}, "cookies"),
        ({"method": "POST"}, "the method"),
    ],
)
def test_layer_7_conditions_are_refused_in_passthrough_because_it_is_encrypted(condition, sees):
    error = refused(passthrough([{"pool": "api", **condition}]))
    assert error.field == "rules[0]"
    assert error.message.startswith(f"encrypted: a Layer 4 balancer cannot see {sees}")


def test_sni_and_host_rules_are_taken_in_passthrough():
    config = from_dict(
        passthrough(
            [{"name": "shop", "sni": "shop.lab.test", "pool": "shop"},
             {"name": "api", "host": "API.lab.test", "pool": "api"}]
        )
    )  # fmt: skip
    assert [r.as_json() for r in config.rules] == [
        {"name": "shop", "pool": "shop", "sni": "shop.lab.test"},
        {"name": "api", "pool": "api", "host": "api.lab.test"},
    ]


def test_plain_layer_4_still_refuses_rules_and_says_how_to_route_on_sni():
    data = passthrough([{"sni": "shop.lab.test", "pool": "shop"}])
    data["tls"] = {"mode": "off"}
    error = refused(data)
    assert error.field == "rules" and 'tls.mode = "passthrough"' in error.message


def test_turning_passthrough_off_under_sni_rules_is_refused():
    config = from_dict(passthrough([{"sni": "shop.lab.test", "pool": "shop"}]))
    with pytest.raises(ConfigError) as caught:
        apply_update(config, {"tls": {"mode": "off"}})
    assert caught.value.field == "rules"


def test_no_sni_pool_must_name_a_pool():
    assert from_dict(passthrough([], no_sni_pool="api")).tls.no_sni_pool == "api"
    assert from_dict(passthrough([], no_sni_pool="default")).tls.no_sni_pool == "default"
    error = refused(passthrough([], no_sni_pool="nowhere"))
    assert error.field == "tls.no_sni_pool" and "nowhere" in error.message


@pytest.mark.parametrize("bad", ["shop lab", "shop.*", "*", "*.", "a*.lab.test", "", "x/y"])
def test_a_bad_sni_pattern_is_refused(bad):
    assert refused(passthrough([{"sni": bad, "pool": "shop"}])).field == "rules[0].sni"


def test_exact_and_suffix_names_match_as_nginx_maps_do():
    config = from_dict(
        passthrough(
            [{"name": "shop", "sni": "Shop.Lab.Test", "pool": "shop"},
             {"name": "labs", "sni": "*.lab.test", "pool": "api"}]
        )
    )  # fmt: skip
    rules = config.rules

    def pick(name):
        rule = match_sni(rules, name)
        return rule.name if rule else None

    assert pick("shop.lab.test") == "shop"
    assert pick("api.lab.test") == "labs"
    assert pick("a.b.lab.test") == "labs"
    assert pick("lab.test") is None  # "*.lab.test" is the names under it, not lab.test itself
    assert pick("evil-lab.test") is None
    assert pick(None) is None


def test_a_host_rule_at_layer_4_matches_the_sni_name():
    config = from_dict(passthrough([{"name": "api", "host": "api.lab.test", "pool": "api"}]))
    rule = match_sni(config.rules, "api.lab.test")
    assert rule is not None and rule.name == "api"
    assert match_sni(config.rules, "shop.lab.test") is None


def test_an_sni_rule_at_layer_7_matches_the_name_the_terminated_connection_sent():
    config = from_dict(
        {"backends": BACKENDS, "pools": POOLS,
         "rules": [{"name": "shop", "sni": "*.lab.test", "pool": "shop"}]}
    )  # fmt: skip
    assert match(config.rules, with_sni("shop.lab.test")).name == "shop"
    assert match(config.rules, with_sni(None)) is None
    assert match(config.rules, RequestInfo("127.0.0.1", "GET", "/")) is None


def test_consistent_hash_keys_on_the_sni_name():
    assert parse_hash_key("sni").kind == "sni"
    algorithm = create("consistent-hash", hash_key="sni")
    backends = [Backend(f"b{i}", "127.0.0.1", 9000 + i) for i in range(1, 4)]
    for backend in backends:
        backend.healthy = True
    names = [f"site{i}.lab.test" for i in range(30)]
    first = {n: algorithm.choose(backends, with_sni(n)).backend.name for n in names}
    again = {n: algorithm.choose(backends, with_sni(n)).backend.name for n in reversed(names)}
    assert first == again and len(set(first.values())) == 3  # stable, and spread
    decision = algorithm.choose(backends, with_sni("shop.lab.test"))
    assert "key shop.lab.test (sni)" in decision.reason
    assert (
        "no SNI, so key 127.0.0.1 (client IP)" in algorithm.choose(backends, with_sni(None)).reason
    )
