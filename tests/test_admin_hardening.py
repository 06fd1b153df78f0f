"""The admin API answers every bad value with a 400 naming the field, at once, and serves on."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest
from conftest import Http, split

from lab.balancer.config import BalancerConfig, ConfigError, apply_update, from_dict, parse_backends

BASE = from_dict({"backends": [{"name": "b1", "address": "127.0.0.1:9001"}]})
SUPERSCRIPT_TWO = "\u00b2"  # str.isdigit() says yes; int() says no

# (PUT /config body, the field the 400 must name)
BAD_NUMBERS = [
    ({"max_queue": SUPERSCRIPT_TWO}, "max_queue"),
    ({"panic_threshold": SUPERSCRIPT_TWO}, "panic_threshold"),
    ({"weights": {"b1": SUPERSCRIPT_TWO}}, "weights.b1"),
    ({"max_queue": "-" + SUPERSCRIPT_TWO}, "max_queue"),
    ({"max_queue": "1" * 5000}, "max_queue"),  # past int()'s 4300-digit limit
    ({"timeouts": {"connect_ms": float("inf")}}, "timeouts.connect_ms"),
    ({"timeouts": {"idle_ms": float("-inf")}}, "timeouts.idle_ms"),
    ({"health": {"interval_ms": float("nan")}}, "health.interval_ms"),
    ({"retries": {"tries": float("inf")}}, "retries.tries"),
    ({"passive": {"fail_timeout_s": float("nan")}}, "passive.fail_timeout_s"),
    ({"passive": {"fail_timeout_s": 10**400}}, "passive.fail_timeout_s"),  # float() overflows
    ({"sticky": {"expire_s": 10**400}}, "sticky.expire_s"),
    ({"slow_start_s": float("nan")}, "slow_start_s"),
    ({"backends": [{"name": "b1", "address": "h:" + SUPERSCRIPT_TWO}]}, "backends[0].address"),
    ({"backends": [{"name": "b1", "address": "h:1", "weight": "\u0663"}]}, "backends[0].weight"),
    ({"rules": [{"path_prefix": "/a", "pool": ["default"]}]}, "rules[0].pool"),
    ({"rules": [{"path_prefix": "/a", "pool": {"x": 1}}]}, "rules[0].pool"),
]


@pytest.mark.parametrize("update, field", BAD_NUMBERS)
def test_a_bad_number_is_a_config_error_naming_its_field(update, field):
    with pytest.raises(ConfigError) as refused:
        apply_update(BASE, update)
    assert refused.value.field == field


def test_whole_numbers_given_as_text_still_work():
    config, _ = apply_update(BASE, {"max_queue": "7", "weights": {"b1": " 3 "}})
    assert (config.max_queue, config.backends[0].weight) == (7, 3)
    assert parse_backends([{"name": "b1", "address": "[::1]:9001"}])[0].port == 9001


def test_a_toml_file_with_inf_or_nan_is_a_config_error(tmp_path):
    for text, field in [
        ("[timeouts]\nconnect_ms = inf\n", "timeouts.connect_ms"),
        ("[health]\nrise = nan\n", "health.rise"),
        ("max_queue = -inf\n", "max_queue"),
    ]:
        path = tmp_path / "lab.toml"
        path.write_text(text)
        from lab.balancer.config import load_toml

        with pytest.raises(ConfigError) as refused:
            load_toml(str(path))
        assert refused.value.field == field, text
    assert BalancerConfig().max_queue == 100


# -- a real balancer


def ask(address: str, method: str, path: str, body: bytes | None = None, headers=None):
    """One request on a fresh connection; (status, headers, JSON document). A hang fails."""
    conn = http.client.HTTPConnection(*split(address), timeout=3)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
        assert headers["content-type"].startswith("application/json"), data[:200]
        return response.status, headers, json.loads(data)
    finally:
        conn.close()


def assert_routes(lab) -> None:
    assert lab.supervisor.children["balancer"].alive(), "the balancer process died"
    status, headers, _ = Http(lab.listen).get("/after")
    assert status == 200 and headers["x-backend"] in lab.backends


def test_the_issue_reproducers_get_a_400_naming_the_field_at_once(lab):
    lab.start_balancer()
    before = lab.state()["backends"]
    cases = [(b'{"max_queue": "\xc2\xb2"}', "max_queue")]
    for constant in (b"Infinity", b"-Infinity", b"NaN", b"1e400", b"-1e400"):
        cases.append((b'{"timeouts": {"connect_ms": %s}}' % constant, "timeouts.connect_ms"))
    cases += [
        (b'{"weights": {"b1": "\xc2\xb2"}}', "weights.b1"),
        (b'{"panic_threshold": "\xc2\xb2"}', "panic_threshold"),
        (b'{"health": {"interval_ms": NaN}}', "health.interval_ms"),
        (b'{"retries": {"tries": Infinity}}', "retries.tries"),
        (b'{"rules": [{"path_prefix": "/a", "pool": ["x"]}]}', "rules[0].pool"),
        (b"[" * 100_000 + b"]" * 100_000, "body"),
        (b'{"weights": ' * 50_000 + b"1" + b"}" * 50_000, "body"),
        (b'{"backends": [' + b"[" * 200 + b"]" * 200 + b"]}", "body"),
    ]
    slow = []
    for body, field in cases:
        started = time.monotonic()
        status, _, reply = ask(lab.admin_address, "PUT", "/config", body)
        assert (status, reply["field"]) == (400, field), (body[:60], reply)
        assert reply["error"], reply
        if time.monotonic() - started > 1:
            slow.append(body[:60])
    assert not slow
    assert lab.state()["backends"] == before
    assert_routes(lab)


def test_backend_changes_with_bad_numbers_get_a_400(lab):
    lab.start_balancer()
    port = lab.backends["b1"].rpartition(":")[2]
    for method, path, document, field in [
        ("POST", "/backends", {"name": "b9", "address": "127.0.0.1:\u00b2"}, "backends[3].address"),
        (
            "POST",
            "/backends",
            {"name": "b9", "address": f"127.0.0.1:{port}", "weight": "\u00b2"},
            "backends[3].weight",
        ),  # fmt: skip
        ("PUT", "/backends/b1", {"weight": "\u00b2"}, "backends[0].weight"),
        ("PUT", "/backends/b1", {"max_conns": "\u00b2"}, "backends[0].max_conns"),
        ("PUT", "/backends/b1", {"address": "127.0.0.1:\u00b9\u00b2"}, "backends[0].address"),
    ]:
        body = json.dumps(document).encode()
        status, _, reply = ask(lab.admin_address, method, path, body)
        assert (status, reply["field"]) == (400, field), (document, reply)
    assert [b["name"] for b in lab.state()["backends"]] == ["b1", "b2", "b3"]
    assert_routes(lab)


def raw(address: str, data: bytes) -> bytes:
    """Send raw bytes and read until the server closes (or 3 s pass: then fail)."""
    with socket.create_connection(split(address), timeout=3) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


UPGRADE = b"GET /state HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"


def test_an_upgrade_request_to_the_admin_api_gets_501(lab):
    lab.start_balancer()
    reply = raw(lab.admin_address, UPGRADE + b"\x81\x85garbage-frame")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 501 Not Implemented"), reply
    assert b"Connection: close" in head and "upgrade" in json.loads(body)["error"].lower()
    assert reply.count(b"HTTP/1.1") == 1
    assert_routes(lab)
