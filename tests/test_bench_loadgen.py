"""lb-lab bench's load generator and admin client, on real sockets against real servers."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
from conftest import wait_for

from lab.bench import loadgen
from lab.bench.admin import (
    EventsSubscriber,
    SubscriberProcess,
    find_dropped,
    get_json,
    split_address,
)
from lab.bench.stats import LATENCY
from lab.supervisor import Supervisor


@pytest.fixture(scope="module")
def backend():
    with Supervisor() as supervisor:
        child = supervisor.start("b1", ["backend", "--name", "b1", "--port", "0"])
        yield split_address(child.addresses["listen"])


def served(address: tuple[str, int]) -> int:
    return get_json(*address, "/_lab/state")["counters"]["served"]


def test_closed_loop_counts_exactly_what_the_backend_served(backend):
    before = served(backend)
    run = loadgen.closed_loop("direct", *backend, connections=8, duration=0.5)
    # Besides the counted requests: one priming request and one drained request per connection.
    assert served(backend) - before == run.requests + 2 * 8
    assert run.requests > 100
    assert run.errors == 0
    assert 0 < run.p50_ms <= run.p90_ms <= run.p99_ms


def test_fixed_rate_sends_at_the_rate_asked_whatever_the_target_could_do(backend):
    run = loadgen.fixed_rate("direct", *backend, rate=400, connections=4, duration=0.5)
    assert run.rps == pytest.approx(400, rel=0.1)
    assert run.errors == 0
    assert run.phase == LATENCY


class ToyServer:
    """A tiny HTTP server: `answers` answers per connection, then it closes or plays dead."""

    def __init__(self, answers: int, then: str) -> None:
        self.answers = answers
        self.then = then  # "close" (with `Connection: close`, as nginx does) or "hang"
        self.answered = 0
        self.transports: set[asyncio.Transport] = set()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        start = self.loop.create_server(lambda: _ToyConnection(self), "127.0.0.1", 0)
        self.server = asyncio.run_coroutine_threadsafe(start, self.loop).result(5)
        self.address = self.server.sockets[0].getsockname()[:2]
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    async def _shutdown(self):
        self.server.close()
        for transport in list(self.transports):
            transport.close()
        await self.server.wait_closed()
        while self.transports:  # connection_lost comes one loop turn after close
            await asyncio.sleep(0)


class _ToyConnection(asyncio.Protocol):
    def __init__(self, server: ToyServer) -> None:
        self.server = server
        self.pending = b""
        self.answered = 0

    def connection_made(self, transport):
        self.transport = transport
        self.server.transports.add(transport)

    def connection_lost(self, exc):
        self.server.transports.discard(self.transport)

    def data_received(self, data):
        self.pending += data
        while b"\r\n\r\n" in self.pending and self.answered < self.server.answers:
            _, self.pending = self.pending.split(b"\r\n\r\n", 1)
            self.answered += 1
            self.server.answered += 1
            last = self.answered == self.server.answers and self.server.then == "close"
            close = b"Connection: close\r\n" if last else b""
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + close + b"\r\nok")
            if last:
                self.transport.close()


def test_closed_loop_reconnects_when_the_server_closes_without_counting_an_error():
    with ToyServer(answers=3, then="close") as server:
        run = loadgen.closed_loop("direct", *server.address, connections=2, duration=0.3)
    assert run.errors == 0
    assert run.requests > 10  # two connections answer three requests each, then close
    assert server.answered >= run.requests


def test_a_target_that_stops_answering_shows_errors_not_speed(monkeypatch):
    monkeypatch.setattr(loadgen, "DRAIN_TIMEOUT_S", 0.05)
    with ToyServer(answers=1, then="hang") as server:  # answers the priming request only
        run = loadgen.fixed_rate("lb-http", *server.address, rate=100, connections=2, duration=0.2)
    assert run.requests == 0
    assert run.errors >= 2 + 15  # two requests sent and ~18 more that fell due


def test_a_target_that_never_answers_fails_the_run_with_a_clear_message(monkeypatch):
    monkeypatch.setattr(loadgen, "PRIME_TIMEOUT_S", 0.05)
    never = pytest.raises(TimeoutError, match="2 of 2 first requests got no answer")
    with socket.create_server(("127.0.0.1", 0)) as silent, never:  # accepts, never answers
        loadgen.closed_loop("lb-http", *silent.getsockname(), connections=2, duration=0.2)


def test_events_subscribers_read_a_route_and_a_done_per_request(lab):
    lab.start_balancer("--mode", "http")
    host, port = split_address(lab.listen)
    admin = split_address(lab.admin_address)
    with EventsSubscriber(*admin) as here, SubscriberProcess(*admin) as apart:
        run = loadgen.closed_loop("lb-http", host, port, connections=2, duration=0.2)
        answered = run.requests + 2 * 2  # counted, primed and drained
        wait_for(lambda: here.lines >= 2 * answered, what="route and done events here")
        wait_for(lambda: apart.count() >= 2 * answered, what="the same in a process of its own")
    assert (here.lines, apart.lines) == (2 * answered, 2 * answered)
    assert here.error == apart.error == ""
    assert find_dropped(lab.state()) == 0


# the command
