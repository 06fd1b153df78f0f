"""The built-in load generator: HTTP/1.1 keep-alive over asyncio, closed loop or fixed rate.

Closed loop (throughput): each of C connections sends its next request the
moment the previous answer is complete, like wrk. Fixed rate (latency): requests
are due at a steady rate whatever the target does; a request that falls due
while every connection is busy waits, and its latency counts from when it was
due, so a stalling target cannot hide its stall (wrk2's correction for
"coordinated omission").

One process, one uvloop, pre-built request bytes and httptools' C parser: it
reaches tens of thousands of requests a second, enough to load a Python proxy.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import httptools

from lab.bench.stats import LATENCY, THROUGHPUT, Sample, latency_percentiles
from lab.lifecycle import new_event_loop

CONNECT_TIMEOUT_S = 5.0
PRIME_TIMEOUT_S = 5.0
DRAIN_TIMEOUT_S = 2.0
T = TypeVar("T")


def build_request(host: str, port: int, path: str = "/", close: bool = False) -> bytes:
    last = "Connection: close\r\n" if close else ""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: lb-lab-bench\r\n"
        f"Accept: */*\r\n{last}\r\n"
    ).encode("ascii")


class _Connection(asyncio.Protocol):
    """One keep-alive connection; reports each complete answer to its driver."""

    __slots__ = ("driver", "parser", "transport", "started", "busy", "lost")

    def __init__(self, driver: _Driver) -> None:
        self.driver = driver
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.started = 0.0  # when the request in flight was sent (or fell due)
        self.busy = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.driver.greeting:  # e.g. a PROXY protocol header, once per connection
            transport.write(self.driver.greeting)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()  # counted as an error when the connection is lost

    def on_message_complete(self) -> None:
        self.busy = False
        if not self.parser.should_keep_alive():
            # The server said `Connection: close`: take no new request on this one.
            self.lost = True
            self.transport.close()
            self.driver.closed(self)
        self.driver.answered(self, self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost:
            self.lost = True
            self.driver.closed(self)

    def send(self, request: bytes, started: float) -> None:
        self.started = started
        self.busy = True
        self.transport.write(request)


class _Driver:
    """What the two loops share: counting, timing, reconnecting, and the end of the run."""

    def __init__(self, request: bytes, host: str, port: int) -> None:
        self.request = request
        self.host = host
        self.port = port
        self.greeting = b""  # bytes each new connection starts with, before any request
        self.ssl: ssl.SSLContext | None = None  # HTTPS: each connection's own handshake
        self.server_hostname: str | None = None  # the name (SNI) the handshakes ask for
        self.conns: set[_Connection] = set()
        self.latencies: list[float] = []
        self.errors = 0
        self.recording = False
        self.stopping = False
        self.in_flight = 0
        self.idle_again = asyncio.Event()
        self.replacing: set[asyncio.Task] = set()

    async def open(self, count: int) -> list[_Connection]:
        conns = await asyncio.gather(*(self.connect() for _ in range(count)))
        return list(conns)

    async def connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = {"ssl": self.ssl, "server_hostname": self.server_hostname} if self.ssl else {}
        made = loop.create_connection(lambda: _Connection(self), self.host, self.port, **tls)
        _, conn = await asyncio.wait_for(made, CONNECT_TIMEOUT_S)
        self.conns.add(conn)
        return conn

    def answered(self, conn: _Connection, status: int) -> None:
        now = time.perf_counter()
        self.in_flight -= 1
        if self.recording:
            self.latencies.append(now - conn.started)
            if not 200 <= status < 400:
                self.errors += 1
        if self.stopping:
            if not self.in_flight:
                self.idle_again.set()
        elif not conn.lost:
            self.next(conn, now)

    def closed(self, conn: _Connection) -> None:
        self.conns.discard(conn)
        if conn.busy:  # the request in flight is lost
            conn.busy = False
            self.in_flight -= 1
            if self.recording:
                self.errors += 1
        if self.stopping:
            if self.in_flight <= 0:
                self.idle_again.set()
        else:
            # Servers may close a keep-alive connection after N requests; wrk reconnects too.
            task = asyncio.get_running_loop().create_task(self.replace())
            self.replacing.add(task)
            task.add_done_callback(self.replacing.discard)

    async def replace(self) -> None:
        try:
            conn = await self.connect()
        except (OSError, TimeoutError):
            if self.recording:
                self.errors += 1
            return
        if self.stopping:
            conn.transport.close()
        else:
            self.next(conn, time.perf_counter())

    def next(self, conn: _Connection, now: float) -> None:
        raise NotImplementedError

    def unanswered(self) -> int:
        """Requests sent that got no answer even after the drain: a hung target's errors."""
        return max(self.in_flight, 0)

    async def drain(self) -> None:
        self.stopping = True
        self.recording = False
        if self.in_flight > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.idle_again.wait(), DRAIN_TIMEOUT_S)

    async def close(self) -> None:
        self.stopping = True
        replacing = list(self.replacing)
        for task in replacing:
            task.cancel()
        await asyncio.gather(*replacing, return_exceptions=True)
        for conn in list(self.conns):
            conn.transport.close()
        await asyncio.sleep(0)  # let the transports finish closing inside this loop


class _ClosedLoop(_Driver):
    def next(self, conn: _Connection, now: float) -> None:
        self.in_flight += 1
        conn.send(self.request, now)

    def begin(self) -> None:
        now = time.perf_counter()
        for conn in list(self.conns):
            self.next(conn, now)


class _FixedRate(_Driver):
    """Requests fall due every 1/rate seconds; idle connections take them in turn."""

    def __init__(self, request: bytes, host: str, port: int, rate: float) -> None:
        super().__init__(request, host, port)
        self.interval = 1.0 / rate
        self.idle: collections.deque[_Connection] = collections.deque()
        self.overdue: collections.deque[float] = collections.deque()
        self.origin = 0.0
        self.issued = 0
        self.timer: asyncio.TimerHandle | None = None

    def next(self, conn: _Connection, now: float) -> None:
        if self.overdue:
            # This request waited for a free connection: its wait is part of its latency.
            self.in_flight += 1
            conn.send(self.request, self.overdue.popleft())
        else:
            self.idle.append(conn)

    def begin(self) -> None:
        self.idle.extend(self.conns)
        self.origin = time.perf_counter()
        self.tick()

    def tick(self) -> None:
        if self.stopping:
            return
        now = time.perf_counter()
        due = int((now - self.origin) / self.interval) + 1
        while self.issued < due:
            while self.idle and self.idle[0].lost:
                self.idle.popleft()
            if self.idle:
                # Sent now, so a late timer on our side is not charged to the target.
                self.in_flight += 1
                self.idle.popleft().send(self.request, now)
            else:
                self.overdue.append(self.origin + self.issued * self.interval)
            self.issued += 1
        wait = self.origin + self.issued * self.interval - time.perf_counter()
        self.timer = asyncio.get_running_loop().call_later(max(wait, 0.0), self.tick)

    def unanswered(self) -> int:
        stuck = super().unanswered()
        # Due but never sent: failures only if the target stopped answering altogether.
        return stuck + len(self.overdue) if stuck else 0

    async def drain(self) -> None:
        if self.timer:
            self.timer.cancel()
        await super().drain()


async def _prime(driver: _Driver, conns: list[_Connection]) -> None:
    """One unrecorded request per connection, so connection setup stays out of the figures."""
    driver.stopping = True
    driver.idle_again.clear()
    now = time.perf_counter()
    for conn in conns:
        driver.in_flight += 1
        conn.send(driver.request, now)
    try:
        await asyncio.wait_for(driver.idle_again.wait(), PRIME_TIMEOUT_S)
    except TimeoutError:
        raise TimeoutError(
            f"{driver.in_flight} of {len(conns)} first requests got no answer "
            f"within {PRIME_TIMEOUT_S:g}s"
        ) from None
    driver.stopping = False
    driver.idle_again.clear()


async def _run(
    driver: _ClosedLoop | _FixedRate, connections: int, duration: float, prime: bool = True
) -> tuple[float, int]:
    try:
        conns = await driver.open(connections)
        if prime:
            await _prime(driver, conns)
        driver.errors = 0
        driver.recording = True
        started = time.perf_counter()
        driver.begin()
        await asyncio.sleep(duration)
        elapsed = time.perf_counter() - started
        counted = len(driver.latencies)
        await driver.drain()
        driver.errors += driver.unanswered()
    finally:
        await driver.close()
    return elapsed, counted


def _sample(target: str, phase: str, driver: _Driver, elapsed: float, counted: int) -> Sample:
    p50, p90, p99 = latency_percentiles(driver.latencies[:counted])
    return Sample(target, phase, "builtin", counted, driver.errors, elapsed, p50, p90, p99)


def closed_loop(
    target: str,
    host: str,
    port: int,
    connections: int,
    duration: float,
    path: str = "/",
    greeting: bytes = b"",
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    fresh: bool = False,
) -> Sample:
    """C connections, each sending its next request as soon as the last one is answered
    (after `greeting`, once per connection: a PROXY header, say). With `tls`, over TLS.
    `fresh`: every request asks `Connection: close`, so each one pays a new connection
    (and handshake); the connections are not primed, since each is used once."""
    driver = _ClosedLoop(build_request(host, port, path, close=fresh), host, port)
    driver.greeting = greeting
    driver.ssl, driver.server_hostname = tls, server_hostname
    elapsed, counted = _in_new_loop(_run(driver, connections, duration, prime=not fresh))
    return _sample(target, THROUGHPUT, driver, elapsed, counted)


def fixed_rate(
    target: str,
    host: str,
    port: int,
    rate: float,
    connections: int,
    duration: float,
    path: str = "/",
) -> Sample:
    """`rate` requests a second spread over C connections, whatever the target's speed."""
    driver = _FixedRate(build_request(host, port, path), host, port, rate)
    elapsed, counted = _in_new_loop(_run(driver, connections, duration))
    return _sample(target, LATENCY, driver, elapsed, counted)


def _in_new_loop(coro: Coroutine[Any, Any, T]) -> T:
    loop = new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
