"""The PROXY protocol on real sockets: the balancer learns the client from the proxy in front
(accept, Layer 7 and Layer 4), tells a backend at Layer 4 (send), and refuses what it must."""

from __future__ import annotations

import json
import socket

import pytest
from conftest import Http, raw_exchange, split, wait_for

from lab.proxy_protocol import encode_v1, encode_v2

GET = b"GET /who HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"


def closed_unanswered(address: str, data: bytes) -> bool:
    """Did the balancer close the connection without a byte of answer?"""
    try:
        return raw_exchange(address, data) == b""
    except (ConnectionResetError, BrokenPipeError):  # closed with our bytes unread (RST),
        return True  # or closed before we finished sending


def answer_of(reply: bytes) -> tuple[bytes, dict]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return head, json.loads(body)


@pytest.mark.parametrize("encode", [encode_v1, encode_v2], ids=["v1", "v2"])
def test_layer_7_takes_the_client_from_the_header(lab, encode):
    lab.start_balancer("--accept-proxy")
    events = lab.events()
    header = encode(("198.51.100.7", 40000), split(lab.listen))
    head, answer = answer_of(raw_exchange(lab.listen, header + GET))
    assert head.startswith(b"HTTP/1.1 200")
    assert answer["forwarded_for"] == "198.51.100.7"  # X-Forwarded-For names the real client
    assert answer["client"] == "127.0.0.1"  # the backend's peer is still the balancer
    assert events.wait("route", path="/who")["client"] == "198.51.100.7"


def test_ip_hash_decides_by_the_address_in_the_header(lab):
    lab.start_balancer("--accept-proxy", "--algorithm", "ip-hash")
    events = lab.events()
    clients = [f"198.51.100.{n}" for n in range(1, 13)]
    chosen = {}
    for client in clients:
        for _ in range(2):  # the same client twice: the same backend both times
            header = encode_v2((client, 40000), split(lab.listen))
            _, answer = answer_of(raw_exchange(lab.listen, header + GET))
            chosen.setdefault(client, set()).add(answer["backend"])
    assert all(len(backends) == 1 for backends in chosen.values())
    # Twelve different claimed clients from one real address spread over the backends:
    # the hash saw the header's addresses, not 127.0.0.1.
    assert len(set().union(*chosen.values())) >= 2
    routed = wait_for(lambda: [e["client"] for e in events.of("route")][23:] and events.of("route"))
    assert sorted({e["client"] for e in routed}) == sorted(clients)


def test_unknown_and_local_keep_the_real_address(lab):
    lab.start_balancer("--accept-proxy")
    _, answer = answer_of(raw_exchange(lab.listen, b"PROXY UNKNOWN\r\n" + GET))
    assert answer["forwarded_for"] == "127.0.0.1"
    local = bytes.fromhex("0d0a0d0a000d0a515549540a20000000")  # v2 LOCAL: a proxy's own check
    _, answer = answer_of(raw_exchange(lab.listen, local + GET))
    assert answer["forwarded_for"] == "127.0.0.1"


@pytest.mark.parametrize(
    "data, why",
    [
        (GET, "no PROXY header"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n" + GET, "above 65535"),
        (bytes.fromhex("0d0a0d0a000d0a515549540a2131000c") + bytes(12) + GET, "family 3"),
        (b"PROXY " + b"x" * 200, "longer than 107"),
    ],
    ids=["missing", "bad-port", "unix-family", "too-long"],
)
def test_a_bad_header_closes_the_connection_with_a_reason(lab, data, why):
    lab.start_balancer("--accept-proxy")
    events = lab.events()
    assert closed_unanswered(lab.listen, data)  # no HTTP answer: the peer is a proxy
    error = wait_for(lambda: [e for e in events.of("error") if why in e["reason"]], what=why)[0]
    assert "127.0.0.1" in error["reason"]
    assert lab.state()["errors"]["proxy_protocol"] >= 1
    header = encode_v1(("198.51.100.9", 1), split(lab.listen))  # and the daemon still serves
    _, answer = answer_of(raw_exchange(lab.listen, header + GET))
    assert answer["forwarded_for"] == "198.51.100.9"


def test_a_header_from_an_untrusted_source_is_refused(lab):
    lab.start_balancer("--accept-proxy")
    lab.configure(proxy_protocol={"trusted": "10.0.0.0/8"})  # loopback is no longer trusted
    events = lab.events()
    header = encode_v1(("198.51.100.7", 40000), split(lab.listen))
    assert closed_unanswered(lab.listen, header + GET)
    error = events.wait("error")
    assert "127.0.0.1 is not in it" in error["reason"] and error["status"] is None
    assert lab.state()["backends"][0]["total"] == 0  # nothing was routed


def test_a_header_that_never_finishes_is_cut_off(lab):
    lab.start_balancer("--accept-proxy", "--mode", "tcp")
    lab.configure(timeouts={"client_header_ms": 200})
    events = lab.events()
    with socket.create_connection(split(lab.listen), timeout=5) as sock:
        sock.sendall(b"PROXY TCP4 198.51")  # and nothing more
        assert sock.recv(100) == b""  # the balancer closed it
    assert "no complete PROXY header" in events.wait("error")["reason"]


def test_bad_settings_name_the_field(lab):
    lab.start_balancer()
    status, answer = lab.admin("PUT", "/config", {"proxy_protocol": {"trusted": "10.0.0.0/40"}})
    assert status == 400 and answer["field"] == "proxy_protocol.trusted"
    status, answer = lab.admin("PUT", "/config", {"proxy_protocol": {"send": "v3"}})
    assert status == 400 and answer["field"] == "proxy_protocol.send"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_layer_4_routes_by_the_header_and_sends_one_to_the_backend(lab, version):
    lab.start_backend("p1", "--proxy-protocol")  # reads a PROXY header first
    lab.start_balancer("--mode", "tcp", "--accept-proxy", "--send-proxy", version, backends=["p1"])
    events = lab.events()
    header = encode_v1(("198.51.100.23", 41000), split(lab.listen))
    head, answer = answer_of(raw_exchange(lab.listen, header + GET))
    assert head.startswith(b"HTTP/1.1 200")
    # At Layer 4 there is no X-Forwarded-For: the backend knows the client only from the
    # header the balancer sent it.
    assert answer["client"] == "198.51.100.23" and "forwarded_for" not in answer
    assert events.wait("route")["client"] == "198.51.100.23"


def test_without_send_proxy_a_layer_4_backend_sees_the_balancer(lab):
    lab.start_balancer("--mode", "tcp", "--accept-proxy", backends=["b1"])
    header = encode_v1(("198.51.100.23", 41000), split(lab.listen))
    _, answer = answer_of(raw_exchange(lab.listen, header + GET))
    assert answer["client"] == "127.0.0.1"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_traffic_generator_names_each_client_in_a_header(lab, version):
    lab.start_balancer("--accept-proxy", "--algorithm", "ip-hash")
    events = lab.events()
    target = f"http://{lab.listen}/"
    args = ["traffic", "--target", target, "--rate", "0", "--clients", "4", "--paused"]
    child = lab.supervisor.start("traffic", [*args, "--proxy-protocol", version])
    control = Http(child.addresses["control"])
    assert control.json("GET", "/state")[1]["client_addresses"] == f"proxy-{version}"
    assert control.json("POST", "/send", {"count": 8})[0] == 200
    routes = wait_for(lambda: events.of("route")[7:] and events.of("route"), what="8 routes")
    clients = {f"127.0.0.{k}" for k in range(2, 6)}
    assert {r["client"] for r in routes} == clients  # four clients, though all from 127.0.0.1
    by_client = {}
    for route in routes:  # ip-hash decided on the named address: one backend per client
        by_client.setdefault(route["client"], set()).add(route["backend"])
    assert all(len(backends) == 1 for backends in by_client.values())
