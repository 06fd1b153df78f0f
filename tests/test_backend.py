"""The toy backend without sockets: its knobs, its concurrency limit, its answers and parsing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random

import pytest

from lab.backend.app import ToyBackend
from lab.backend.concurrency import ConcurrencyLimit
from lab.backend.connection import HttpConnection
from lab.backend.knobs import KnobError, Knobs
from lab.backend.responses import PATTERN, echo_body, pattern_bytes

# -- knobs, pure


def test_knobs_take_a_partial_update():
    knobs = Knobs().updated({"latency_ms": 50, "healthy": False})
    assert knobs == Knobs(latency_ms=50.0, healthy=False)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"latency_ms": -1}, "latency_ms"),
        ({"jitter_ms": "5"}, "jitter_ms"),
        ({"latency_ms": True}, "latency_ms"),
        ({"latency_ms": 10**9}, "latency_ms"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"error_rate": float("nan")}, "error_rate"),
        ({"max_concurrency": 1.5}, "max_concurrency"),
        ({"max_concurrency": -2}, "max_concurrency"),
        ({"healthy": 0}, "healthy"),
        ({"latency": 5}, "latency"),
        ([1, 2], None),
    ],
)
def test_bad_knobs_name_the_field(changes, field):
    with pytest.raises(KnobError) as caught:
        Knobs().updated(changes)
    assert caught.value.field == field
    assert caught.value.as_json()["error"]


def test_one_bad_knob_rejects_the_whole_update():
    knobs = Knobs(latency_ms=5)
    with pytest.raises(KnobError, match="error_rate"):
        knobs.updated({"latency_ms": 99, "error_rate": 2})
    assert knobs.latency_ms == 5


def test_whole_floats_are_fine_for_max_concurrency():
    assert Knobs().updated({"max_concurrency": 3.0}).max_concurrency == 3


# -- concurrency limit, pure asyncio


def test_concurrency_limit_admits_waiters_first_come_first_served():
    async def scenario():
        limit = ConcurrencyLimit(1)
        order = []

        async def request(name):
            await limit.enter()
            order.append(name)
            await asyncio.sleep(0)
            limit.leave()

        await asyncio.gather(*(request(n) for n in "abcd"))
        return order, limit.in_flight, limit.waiting

    assert asyncio.run(scenario()) == (list("abcd"), 0, 0)


def test_raising_the_limit_lets_waiters_in():
    async def scenario():
        limit = ConcurrencyLimit(1)
        assert limit.try_enter()
        waiter = asyncio.ensure_future(limit.enter())
        await asyncio.sleep(0)
        assert limit.waiting == 1 and not waiter.done()
        limit.set_limit(0)
        await asyncio.wait_for(waiter, 1)
        return limit.in_flight

    assert asyncio.run(scenario()) == 2


# -- responses and parsing, no sockets


def test_echo_body_is_valid_json_even_for_odd_paths():
    path = '/a"b\\c?d=\u00e9\x01'
    body = echo_body("b1", "GET", path, "::1", 3, 10, "ab", forwarded_for='1.2.3.4, "x"')
    document = json.loads(body)
    assert document["path"] == path
    assert document["forwarded_for"] == '1.2.3.4, "x"'
    assert (document["served"], document["bytes_received"]) == (3, 10)


def test_pattern_continues_across_pieces():
    whole = pattern_bytes(1000)
    assert pattern_bytes(300, start=0) + pattern_bytes(700, start=300) == whole
    assert all(whole[i] == PATTERN[i % len(PATTERN)] for i in range(1000))


class FakeTransport:
    def __init__(self):
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, key):
        return ("127.0.0.9", 4000) if key == "peername" else None

    def write(self, data):
        self.written += data

    def close(self):
        self.closed = True

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


def feed(*pieces: bytes, backend: ToyBackend | None = None) -> FakeTransport:
    """Feed bytes to a fresh connection, piece by piece, and return what it wrote."""
    connection = HttpConnection(backend or ToyBackend("t1"))
    transport = FakeTransport()
    connection.connection_made(transport)
    for piece in pieces:
        connection.data_received(piece)
    return transport


def test_a_request_split_into_single_bytes_gets_one_answer():
    request = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
    transport = feed(*(request[i : i + 1] for i in range(len(request))))
    head, _, body = bytes(transport.written).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"X-Backend: t1" in head
    assert json.loads(body)["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert not transport.closed


def test_pipelined_requests_answered_in_order_without_sockets():
    transport = feed(
        b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"
        b"GET /3 HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    bodies = [line for line in transport.written.splitlines() if line.startswith(b"{")]
    paths = [json.loads(body)["path"] for body in bodies]
    assert paths == ["/1", "/2", "/3"]
    assert transport.closed


def test_garbage_gets_400_and_close_without_sockets():
    transport = feed(b"\x16\x03\x01 not http\r\n\r\n")
    assert transport.written.startswith(b"HTTP/1.1 400 Bad Request")
    assert transport.closed


def test_connect_is_refused_and_the_tunnel_bytes_never_parsed():
    transport = feed(b"CONNECT example.com:443 HTTP/1.1\r\n\r\n\x16\x03\x01")
    assert transport.written.startswith(b"HTTP/1.1 405 Method Not Allowed")
    assert transport.written.count(b"HTTP/1.1") == 1 and transport.closed


def test_an_oversized_head_gets_431():
    transport = feed(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    assert transport.written.startswith(b"HTTP/1.1 431 ")
    assert transport.closed


def test_error_rate_fails_about_that_fraction_of_requests():
    backend = ToyBackend("t1", Knobs(error_rate=0.25), rng=random.Random(3))
    transport = feed(b"GET / HTTP/1.1\r\n\r\n" * 2000, backend=backend)
    failed = transport.written.count(b"HTTP/1.1 500 ")
    assert 400 < failed < 600
    assert (backend.served, backend.errors) == (2000, failed)


def test_jitter_spreads_latency_but_never_below_zero():
    backend = ToyBackend("t1", Knobs(latency_ms=5, jitter_ms=10), rng=random.Random(3))
    delays = [backend._delay("/", {}) for _ in range(500)]
    assert min(delays) == 0 and 0.012 < max(delays) <= 0.015
