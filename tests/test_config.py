"""The balancer's settings: flags, TOML and live updates share one validated schema."""

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
        ({"mode": "udp"}, "mode"),
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
