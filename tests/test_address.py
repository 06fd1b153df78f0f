"""HOST:PORT is read and written one way by every part of the lab."""

from __future__ import annotations

import pytest

from lab.address import join_address, split_address
from lab.balancer.config import ConfigError, from_dict
from lab.traffic.settings import SettingError, parse_address


@pytest.mark.parametrize(
    "text, address",
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("[::1]:8080", ("::1", 8080)),
        ("::1:8080", ("::1", 8080)),  # what older output printed
        ("localhost:0", ("localhost", 0)),
        ("h:65535", ("h", 65535)),
    ],
)
def test_split_and_join_agree(text, address):
    assert split_address(text) == address
    assert split_address(join_address(*address)) == address


@pytest.mark.parametrize(
    "text, words",
    [
        ("127.0.0.1", "expected HOST:PORT"),
        (8080, "expected HOST:PORT"),
        (":80", "missing host"),
        ("[]:80", "missing host"),
        ("h:\u00b2", "port must be 0-65535"),  # isdigit() says yes, int() says no
        ("h:\u0663", "port must be 0-65535"),
        ("h:65536", "port must be 0-65535"),
        ("h:000000080", "port must be 0-65535"),
        ("h:-1", "port must be 0-65535"),
        ("h: 80", "port must be 0-65535"),
        ("[::1:80", "brackets go round an IPv6 host"),
    ],
)
def test_a_bad_address_says_what_is_wrong(text, words):
    with pytest.raises(ValueError, match=words):
        split_address(text)


def test_ipv6_is_written_in_brackets_by_every_part():
    assert join_address("::1", 80) == "[::1]:80" and join_address("10.0.0.1", 80) == "10.0.0.1:80"
    config = from_dict({"listen": "[::1]:0", "backends": [{"name": "b1", "address": "[::1]:9"}]})
    assert config.as_json()["listen"] == "[::1]:0"
    assert config.as_json()["backends"][0]["address"] == "[::1]:9"
    with pytest.raises(ConfigError) as refused:
        from_dict({"admin": "h:\u00b2"})
    assert refused.value.field == "admin"
    assert parse_address("[::1]:0") == ("::1", 0)
    with pytest.raises(SettingError):
        parse_address("h:\u00b2")
