"""The balancer's settings: flags, TOML and live updates share one validated schema."""

import argparse
import re
from pathlib import Path

import pytest

from lab.balancer.config import (
    BalancerConfig,
    ConfigError,
    apply_update,
    from_dict,
    load_toml,
    parse_address,
    parse_backend_flag,
)


def three_backends() -> BalancerConfig:
    return from_dict(
        {
            "backends": [
                {"name": "b1", "address": "127.0.0.1:9001"},
                {"name": "b2", "address": "127.0.0.1:9002", "weight": 2},
                {"name": "b3", "address": "127.0.0.1:9003"},
            ]
        }
    )


def test_backend_flag_with_weight():
    assert parse_backend_flag("b2=127.0.0.1:9002,weight=3") == {
        "name": "b2",
        "address": "127.0.0.1:9002",
        "weight": 3,
    }


@pytest.mark.parametrize("text", ["b1", "b1=127.0.0.1:9001,speed=3", "b1=127.0.0.1:9001,weight=x"])
def test_bad_backend_flag_names_the_problem(text):
    with pytest.raises(ConfigError) as err:
        parse_backend_flag(text)
    assert err.value.field.startswith("backend")


def test_address_parsing():
    assert parse_address("127.0.0.1:0", "listen") == ("127.0.0.1", 0)
    assert parse_address("[::1]:80", "listen") == ("::1", 80)
    with pytest.raises(ConfigError, match="port must be 0-65535"):
        parse_address("127.0.0.1:99999", "listen")


def test_toml_file(tmp_path):
    path = tmp_path / "lb.toml"
    path.write_text(
        'mode = "tcp"\nalgorithm = "least-connections"\nlisten = "127.0.0.1:7000"\n'
        '[[backends]]\nname = "b1"\naddress = "127.0.0.1:9001"\nweight = 4\n'
    )
    config = load_toml(str(path))
    assert (config.mode, config.algorithm, config.listen) == (
        "tcp",
        "least-connections",
        ("127.0.0.1", 7000),
    )
    assert config.backends[0].weight == 4


def test_toml_errors_are_clear(tmp_path):
    path = tmp_path / "lb.toml"
    path.write_text("mode = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(str(path))
    path.write_text('colour = "blue"\n')
    with pytest.raises(ConfigError) as err:
        load_toml(str(path))
    assert err.value.field == "colour"
    with pytest.raises(ConfigError, match="cannot read"):
        load_toml(str(tmp_path / "missing.toml"))


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"algorithm": "fastest"}, "algorithm"),
        ({"mode": "sctp"}, "mode"),
        ({"weights": {"b9": 2}}, "weights.b9"),
        ({"weights": {"b1": 0}}, "weights.b1"),
        ({"weights": {"b1": True}}, "weights.b1"),
        ({"listen": "127.0.0.1:1"}, "listen"),
        ({"hash_key": "header:"}, "hash_key"),
        (
            {"backends": [{"name": "b1", "address": "x:1"}, {"name": "b1", "address": "x:2"}]},
            "backends[1].name",
        ),
        ({"backends": [{"name": "bad name!", "address": "x:1"}]}, "backends[0].name"),
        ({"backends": [{"name": "b1", "address": "x:0"}]}, "backends[0].address"),
        ({}, "config"),
        ([1, 2], "config"),
    ],
)
def test_bad_live_update_names_the_field_and_changes_nothing(update, field):
    config = three_backends()
    with pytest.raises(ConfigError) as err:
        apply_update(config, update)
    assert err.value.field == field
    assert err.value.as_json()["field"] == field
    assert config == three_backends()


def test_one_bad_field_rejects_the_whole_update():
    with pytest.raises(ConfigError):
        apply_update(three_backends(), {"algorithm": "random", "weights": {"b1": 999}})


def test_live_update_reports_only_what_changed():
    config, changes = apply_update(
        three_backends(), {"algorithm": "round-robin", "weights": {"b3": 5}}
    )
    assert "algorithm" not in changes  # it was already round-robin
    assert [b["weight"] for b in changes["backends"]] == [1, 2, 5]
    assert config.backends[2].weight == 5
    config, changes = apply_update(config, {"mode": "tcp", "algorithm": "ip-hash"})
    assert changes == {"mode": "tcp", "algorithm": "ip-hash"}


# -- the tables of issue 4: health, passive, retries, sticky, timeouts, pools and rules ------


def test_a_partial_table_update_keeps_the_rest_of_the_table():
    config = three_backends()
    new, changes = apply_update(config, {"health": {"enabled": True, "interval_ms": 500}})
    assert (new.health.enabled, new.health.interval_ms, new.health.fall) == (True, 500, 3)
    assert changes == {"health": new.as_json()["health"]}
    newer, _ = apply_update(new, {"health": {"rise": 4}})
    assert (newer.health.enabled, newer.health.interval_ms, newer.health.rise) == (True, 500, 4)


@pytest.mark.parametrize(
    ("update", "field", "words"),
    [
        ({"health": {"interval": 5}}, "health.interval", "unknown setting; known: enabled"),
        ({"health": {"fall": 0}}, "health.fall", "must be 1-100, got 0"),
        ({"health": {"enabled": "yes"}}, "health.enabled", "expected true or false"),
        ({"health": {"path": "health"}}, "health.path", "expected a path like /health"),
        ({"passive": {"max_fails": 1.5}}, "passive.max_fails", "expected a whole number"),
        ({"retries": {"tries": 0}}, "retries.tries", "must be 1-100"),
        ({"sticky": {"mode": "ip"}}, "sticky.mode", "must be one of 'off', 'cookie', 'source'"),
        ({"sticky": {"cookie": "a b"}}, "sticky.cookie", "cookie names are"),
        ({"timeouts": {"idle_ms": -1}}, "timeouts.idle_ms", "must be 10-3.6e+06"),
        ({"panic_threshold": 101}, "panic_threshold", "must be 0-100"),
        ({"slow_start_s": "soon"}, "slow_start_s", "expected 0-3600 seconds"),
        ({"pools": [{"name": "api", "backends": ["b9"]}]}, "pools[0].backends", "no backend"),
        ({"pools": [{"name": "api", "backends": ["b1"], "algorithm": "x"}]}, "pools[0].algorithm",
         "unknown algorithm"),
        ({"rules": [{"path_prefix": "/api", "pool": "api"}]}, "rules[0].pool", "no pool named"),
        ({"rules": [{"pool": "default"}]}, "rules[0]", "a rule needs a condition"),
        ({"rules": [{"path": "/api", "pool": "default"}]}, "rules[0].path", "conditions are"),
        ({"rules": [{"header": "X Bad: 1", "pool": "default"}]}, "rules[0].header", "like"),
        ({"backends": [{"name": "b1", "address": "127.0.0.1:1", "max_conns": -1}]},
         "backends[0].max_conns", "0 (no limit)"),
    ],
)  # fmt: skip
def test_bad_values_in_the_tables_name_their_field(update, field, words):
    with pytest.raises(ConfigError) as err:
        apply_update(three_backends(), update)
    assert err.value.field == field
    assert words in err.value.message


def test_removing_a_backend_a_pool_still_names_is_refused():
    config, _ = apply_update(three_backends(), {"pools": [{"name": "api", "backends": ["b2"]}]})
    specs = [b.as_json() for b in config.backends if b.name != "b2"]
    with pytest.raises(ConfigError, match="pool 'api' lists 'b2', which is not a backend any more"):
        apply_update(config, {"backends": specs})


def test_rules_and_a_sticky_cookie_need_layer_7():
    config, _ = apply_update(
        three_backends(),
        {
            "pools": [{"name": "api", "backends": ["b1"]}],
            "rules": [{"path_prefix": "/api", "pool": "api"}],
        },
    )
    with pytest.raises(ConfigError) as err:
        apply_update(config, {"mode": "tcp"})
    assert err.value.field == "rules"
    with pytest.raises(ConfigError) as err:
        from_dict({"mode": "tcp", "sticky": {"mode": "cookie"}})
    assert err.value.field == "sticky.mode"
    assert from_dict({"mode": "tcp", "sticky": {"mode": "source"}}).sticky.mode == "source"


def test_toml_tables_and_backend_options(tmp_path):
    path = tmp_path / "lb.toml"
    path.write_text(
        "panic_threshold = 50\nslow_start_s = 10\n"
        '[health]\nenabled = true\npath = "/ping"\n'
        '[sticky]\nmode = "cookie"\n'
        '[[backends]]\nname = "b1"\naddress = "127.0.0.1:9001"\nmax_conns = 8\n'
        '[[backends]]\nname = "b2"\naddress = "127.0.0.1:9002"\nbackup = true\n'
        '[[pools]]\nname = "api"\nbackends = ["b1"]\nalgorithm = "least-connections"\n'
        '[[rules]]\nname = "api"\npath_prefix = "/api"\npool = "api"\n'
    )
    config = load_toml(str(path))
    assert (config.panic_threshold, config.slow_start_s) == (50, 10.0)
    assert (config.health.enabled, config.health.path, config.sticky.mode) == (
        True,
        "/ping",
        "cookie",
    )
    assert [(b.max_conns, b.backup) for b in config.backends] == [(8, False), (0, True)]
    assert config.as_json()["rules"] == [{"name": "api", "pool": "api", "path_prefix": "/api"}]
    assert config.pools[0].algorithm == "least-connections"
    assert parse_backend_flag("b3=127.0.0.1:9003,backup,max_conns=4") == {
        "name": "b3", "address": "127.0.0.1:9003", "backup": True, "max_conns": 4,
    }  # fmt: skip


def test_the_readme_examples_are_valid_configs(tmp_path):
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    assert len(blocks) >= 2
    for i, block in enumerate(blocks):
        path = tmp_path / f"example{i}.toml"
        path.write_text(block)
        load_toml(str(path))  # raises ConfigError naming the field if the README is wrong


def test_udp_refuses_what_needs_layer_7_and_checks_that_cannot_see_udp():
    with pytest.raises(ConfigError) as err:
        from_dict({"mode": "udp", "sticky": {"mode": "cookie"}})
    assert err.value.field == "sticky.mode" and "cannot read or set cookies" in str(err.value)
    with pytest.raises(ConfigError) as err:
        from_dict({"mode": "udp", "rules": [{"path_prefix": "/api", "pool": "default"}]})
    assert err.value.field == "rules" and "addresses and datagrams" in str(err.value)
    with pytest.raises(ConfigError) as err:
        from_dict({"mode": "udp", "health": {"type": "http"}})
    assert err.value.field == "health.type" and 'use "udp"' in str(err.value)


def test_udp_settings_come_from_toml_and_flags(tmp_path):
    from lab.balancer.options import add_arguments, config_from_options

    path = tmp_path / "lb.toml"
    path.write_text('mode = "udp"\n[udp]\nidle_timeout_ms = 500\nmax_flows = 20\n')
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_options(parser.parse_args(["--config", str(path), "--udp-per-datagram"]))
    assert (config.mode, config.udp.idle_timeout_ms, config.udp.max_flows) == ("udp", 500, 20)
    assert config.udp.per_datagram is True
    config = config_from_options(parser.parse_args(["--udp-max-flows", "7"]))
    assert (config.udp.max_flows, config.udp.idle_timeout_ms) == (7, 10_000)
