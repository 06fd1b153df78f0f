"""A toy backend learns the client from a PROXY header when one comes first, and counts who
its served requests were from, each way it was told (peer, PROXY header, X-Forwarded-For)."""

from __future__ import annotations

import json
import socket
import time

import pytest
from conftest import Http, raw_exchange, split, wait_for

from lab.backend.app import ToyBackend
from lab.backend.clients import MAX_ADDRESSES, OTHERS, ClientsSeen
from lab.backend.connection import HttpConnection
from lab.proxy_protocol import encode_v1, encode_v2

GET = b"GET /who HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"


def answer_of(reply: bytes) -> tuple[bytes, dict]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return head, json.loads(body)


def clients_of(address: str) -> dict:
    return Http(address).json("GET", "/_lab/state")[1]["clients"]


@pytest.fixture
def b1(lab):
    return lab.backends["b1"]


@pytest.mark.parametrize("encode", [encode_v1, encode_v2], ids=["v1", "v2"])
def test_a_header_that_comes_first_names_the_client(b1, encode):
    header = encode(("198.51.100.7", 40000), split(b1))
    head, answer = answer_of(raw_exchange(b1, header + GET))
    assert head.startswith(b"HTTP/1.1 200")
    assert answer["client"] == "198.51.100.7" and answer["peer"] == "127.0.0.1"
    told = clients_of(b1)
    assert told["proxy_protocol"] == {"198.51.100.7": 1} and told["peer"] == {"127.0.0.1": 1}


def test_without_a_header_the_client_is_the_peer(b1):
    body = b"x" * 10
    post = b"POST /p HTTP/1.1\r\nHost: lab\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
    head, answer = answer_of(raw_exchange(b1, post + body))  # starts with P, is no header
    assert head.startswith(b"HTTP/1.1 200") and answer["bytes_received"] == 10
    assert answer["client"] == "127.0.0.1" and "peer" not in answer
    assert clients_of(b1) == {"peer": {"127.0.0.1": 1}, "proxy_protocol": {}, "forwarded_for": {}}


def test_a_header_in_pieces_is_waited_for(b1):
    data = encode_v2(("203.0.113.9", 5000), split(b1)) + GET
    with socket.create_connection(split(b1), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for at in range(0, 20):  # the signature and fixed part one byte at a time
            sock.sendall(data[at : at + 1])
            time.sleep(0.002)
        sock.sendall(data[20:])
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert answer_of(reply)[1]["client"] == "203.0.113.9"


def test_x_forwarded_for_counts_its_first_address(b1):
    for value in ("198.51.100.1, 10.0.0.5", "198.51.100.1", "198.51.100.2"):
        status, _, _ = Http(b1).get("/", headers={"X-Forwarded-For": value})
        assert status == 200
    told = clients_of(b1)
    assert told["forwarded_for"] == {"198.51.100.1": 2, "198.51.100.2": 1}
    assert told["peer"] == {"127.0.0.1": 3} and told["proxy_protocol"] == {}


def test_health_checks_are_not_counted_and_reset_forgets(b1):
    raw_exchange(b1, encode_v1(("198.51.100.7", 1), split(b1)) + GET)
    Http(b1).get("/health")
    assert clients_of(b1)["peer"] == {"127.0.0.1": 1}
    Http(b1).json("POST", "/_lab/reset")
    assert clients_of(b1) == {"peer": {}, "proxy_protocol": {}, "forwarded_for": {}}


def test_a_malformed_header_gets_400_with_the_reason_and_the_backend_keeps_serving(b1):
    head, answer = answer_of(raw_exchange(b1, b"PROXY TCP4 not-an-ip 127.0.0.1 1 2\r\n" + GET))
    assert head.startswith(b"HTTP/1.1 400")
    assert "not an IP address" in answer["error"]
    assert Http(b1).get("/")[0] == 200


def test_required_header_still_refuses_plain_requests(lab):
    p1 = lab.start_backend("p1", "--proxy-protocol")
    head, answer = answer_of(raw_exchange(p1, GET))
    assert head.startswith(b"HTTP/1.1 400") and "expects a PROXY header" in answer["error"]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_layer_4_send_reaches_a_default_backend_and_its_health_checks_still_pass(lab, version):
    lab.start_balancer("--mode", "tcp", "--accept-proxy", "--send-proxy", version, backends=["b1"])
    events = lab.events()
    lab.configure(health={"enabled": True, "type": "http", "interval_ms": 100})
    header = encode_v1(("198.51.100.23", 41000), split(lab.listen))
    head, answer = answer_of(raw_exchange(lab.listen, header + GET))
    assert head.startswith(b"HTTP/1.1 200")
    assert answer["client"] == "198.51.100.23" and answer["peer"] == "127.0.0.1"
    assert clients_of(lab.backends["b1"])["proxy_protocol"] == {"198.51.100.23": 1}
    # The balancer's own HTTP probes carry no header (HAProxy's would with check-send-proxy);
    # the backend answers them as before.
    wait_for(lambda: len(events.of("check", backend="b1")) >= 3, what="three health checks")
    assert all(check["ok"] for check in events.of("check", backend="b1"))


def test_layer_4_without_send_tells_the_backend_nothing(lab):
    lab.start_balancer("--mode", "tcp", backends=["b1"])
    for _ in range(3):
        raw_exchange(lab.listen, GET)
    told = wait_for(lambda: clients_of(lab.backends["b1"]), what="the backend's state")
    assert told == {"peer": {"127.0.0.1": 3}, "proxy_protocol": {}, "forwarded_for": {}}


def test_the_tables_stop_growing_at_their_limit():
    seen = ClientsSeen()
    for n in range(MAX_ADDRESSES + 10):
        seen.record("127.0.0.1", f"10.0.{n // 256}.{n % 256}", None)
    table = seen.as_json()["proxy_protocol"]
    assert len(table) == MAX_ADDRESSES + 1 and table[OTHERS] == 10


class RemotePeer:
    """A transport whose peer is not on loopback (a real socket here would need a network)."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, key):
        return ("10.1.2.3", 4000) if key == "peername" else None

    def write(self, data):
        self.written += data

    def close(self):
        self.closed = True

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


def from_remote_peer(data: bytes) -> RemotePeer:
    connection = HttpConnection(ToyBackend("t1"))
    transport = RemotePeer()
    connection.connection_made(transport)
    connection.data_received(data)
    return transport


def test_a_header_from_beyond_loopback_is_refused_but_its_plain_requests_are_served():
    refused = from_remote_peer(encode_v1(("198.51.100.7", 1), ("127.0.0.1", 80)) + GET)
    head, answer = answer_of(bytes(refused.written))
    assert head.startswith(b"HTTP/1.1 400") and refused.closed
    assert answer["error"] == "a PROXY header is believed only from loopback, not from 10.1.2.3"
    served = from_remote_peer(GET)
    assert answer_of(bytes(served.written))[1]["client"] == "10.1.2.3"
