"""Commands from the page are checked whole, with words a learner can act on."""

from __future__ import annotations

import pytest

from lab.web.commands import COMMANDS, Command, CommandError, parse_command


def test_a_good_command_comes_back_clean():
    assert parse_command({"action": "set_weight", "name": " b2 ", "weight": 3.0}) == Command(
        "set_weight", {"name": "b2", "weight": 3}
    )
    assert parse_command({"action": "pause"}) == Command("pause", {})


def test_optional_fields_appear_only_when_given():
    assert parse_command({"action": "set_latency", "name": "b1", "latency_ms": 300}).fields == {
        "name": "b1",
        "latency_ms": 300.0,
    }
    assert parse_command({"action": "set_traffic", "keep_alive": False}).fields == {
        "keep_alive": False
    }


@pytest.mark.parametrize(
    "data, words",
    [
        ("send", "a command is an object"),
        ({}, "unknown action None"),
        ({"action": "explode"}, "unknown action 'explode'"),
        ({"action": ["send"]}, "unknown action"),
        ({"action": "send"}, "send needs count"),
        ({"action": "send", "count": "6"}, "count must be a whole number"),
        ({"action": "send", "count": True}, "count must be a whole number"),
        ({"action": "send", "count": 2.5}, "count must be a whole number"),
        ({"action": "send", "count": 0}, "count must be 1 to 1000"),
        ({"action": "send", "count": 1001}, "count must be 1 to 1000"),
        ({"action": "pause", "now": True}, "pause takes no fields; unexpected field 'now'"),
        ({"action": "set_algorithm", "algorithm": "fastest"}, "algorithm must be one of"),
        ({"action": "set_algorithm", "algorithm": ""}, "algorithm must be text"),
        ({"action": "set_mode", "mode": "sctp"}, "mode must be one of: http, tcp, udp"),
        ({"action": "set_weight", "name": "b1", "weight": 0}, "weight must be 1 to 256"),
        ({"action": "set_weight", "name": 1, "weight": 2}, "name must be text"),
        ({"action": "set_latency", "name": "b1", "latency_ms": -1}, "latency_ms must be 0 to"),
        ({"action": "set_latency", "name": "b1", "latency_ms": float("inf")}, "must be a number"),
        ({"action": "set_error_rate", "name": "b1", "error_rate": 1.5}, "must be 0 to 1"),
        ({"action": "set_traffic"}, "set_traffic needs at least one of: rate, clients"),
        ({"action": "set_traffic", "rate": 1e6}, "rate must be 0 to 5000"),
        ({"action": "set_traffic", "clients": 65}, "clients must be 1 to 64"),
        ({"action": "set_traffic", "keep_alive": "on"}, "keep_alive must be true or false"),
    ],
)
def test_a_bad_command_says_what_is_wrong(data, words):
    with pytest.raises(CommandError) as caught:
        parse_command(data)
    assert words in str(caught.value)


def test_every_action_is_documented_for_the_page_and_the_lessons():
    from lab.web import app

    for action in COMMANDS:
        assert action in app.__doc__


def test_every_action_is_declared_once_with_its_handler_help_and_parts():
    from lab.web.turns import PARTS

    for name, action in COMMANDS.items():
        assert callable(action.run), name
        assert action.help and "\n" not in action.help, name
        # Only a classroom command that touches no process (the presenter's position) needs
        # no part of the lab; it announces no full state either (its own message goes out).
        assert action.needs or not action.announces, name
        assert set(action.needs) <= set(PARTS), name
    # the lesson commands need the whole lab; a weight needs only the balancer
    assert COMMANDS["open_lesson"].needs == PARTS
    assert COMMANDS["set_weight"].needs == ("balancer",)
    assert COMMANDS["set_position"].needs == () and not COMMANDS["set_position"].announces
