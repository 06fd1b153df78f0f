"""The traffic generator without processes: its schedule, cookie, settings and client rules."""

from __future__ import annotations

import asyncio
import random
import statistics

import pytest

from lab.traffic.arrivals import PATH_MIX, PathMix, PoissonArrivals
from lab.traffic.clients import Client
from lab.traffic.connection import Connection, Job
from lab.traffic.cookies import CookieJar
from lab.traffic.settings import SettingError, Settings, parse_target
from lab.traffic.stats import TrafficStats

# -- the schedule, pure


def test_poisson_gaps_average_one_over_the_rate():
    arrivals = PoissonArrivals(random.Random(7))
    arrivals.start(rate=50.0, now=100.0)
    times: list[float] = []
    for tick in range(1, 8001):  # the loop wakes up every 50 ms for 400 s
        times += arrivals.due(now=100.0 + tick * 0.05)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(gaps) > 15_000
    assert statistics.fmean(gaps) == pytest.approx(1 / 50, rel=0.03)
    assert statistics.stdev(gaps) == pytest.approx(1 / 50, rel=0.05)  # exponential: sd = mean
    assert len(times) == pytest.approx(50 * 400, rel=0.03)
    assert times == sorted(times) and all(100.0 < t <= 500.0 for t in times)
    assert arrivals.next_due > 500.0  # nothing due by `now` is left behind


def test_the_same_seed_replays_the_same_schedule_and_paths():
    def run(seed: int):
        rng = random.Random(seed)
        arrivals, mix = PoissonArrivals(rng), PathMix(rng)
        arrivals.start(rate=20.0, now=0.0)
        return [(round(t, 9), mix.pick().path) for t in arrivals.due(now=0.9)]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_a_new_rate_takes_effect_at_once_and_rate_zero_schedules_nothing():
    arrivals = PoissonArrivals(random.Random(1))
    arrivals.start(rate=0.5, now=0.0)
    arrivals.start(rate=1000.0, now=1.0)
    assert len(arrivals.due(now=1.5)) == pytest.approx(500, rel=0.15)
    assert arrivals.start(rate=0.0, now=2.0) is None
    assert arrivals.due(now=1e6) == []


def test_a_long_hold_up_restarts_the_schedule_instead_of_a_burst():
    arrivals = PoissonArrivals(random.Random(5))
    arrivals.start(rate=100.0, now=0.0)
    assert arrivals.due(now=3600.0) == []  # an hour suspended: not 360,000 requests at once
    assert 3600.0 < arrivals.next_due < 3601.0
    assert len(arrivals.due(now=3600.5)) == pytest.approx(50, abs=25)


def test_the_path_mix_follows_its_weights():
    mix = PathMix(random.Random(11))
    picks = [mix.pick().path for _ in range(20_000)]
    total = sum(page.weight for page in PATH_MIX)
    for page in PATH_MIX:
        assert picks.count(page.path) / len(picks) == pytest.approx(page.weight / total, abs=0.015)


# -- cookies, settings and counters, pure


def test_the_cookie_jar_sends_back_name_and_value_only():
    jar = CookieJar()
    assert jar.header() == b""
    jar.store("session=abc123; Path=/; HttpOnly; Max-Age=3600")
    jar.store("theme=dark")
    jar.store("session=def456; Secure")  # replaced in place
    jar.store("broken")  # no '=': ignored
    jar.store("=nameless")  # no name: ignored
    jar.store("evil=a\r\nX-Injected: 1")  # could split the header: ignored
    assert jar.header() == b"session=def456; theme=dark"
    jar.store("theme=; Max-Age=0")  # the server deletes it
    assert jar.as_dict() == {"session": "def456"}


def test_a_settings_change_is_checked_whole_and_names_the_bad_field():
    settings = Settings(rate=5.0, clients=4)
    assert settings.updated({"rate": 20, "paused": True}) == Settings(20.0, 4, True, True)
    for changes, field in [
        ({"rate": 10, "clients": 0}, "clients"),
        ({"rate": 5001}, "rate"),
        ({"rate": True}, "rate"),
        ({"clients": 2.5}, "clients"),
        ({"keep_alive": "off"}, "keep_alive"),
        ({"speed": 3}, "speed"),
        ({"heavy_share": 1.5}, "heavy_share"),
        ({"heavy_share": True}, "heavy_share"),
        ({"heavy_ms": -1}, "heavy_ms"),
        ({"heavy_ms": 10_001}, "heavy_ms"),
        ([1], "body"),
    ]:
        with pytest.raises(SettingError) as caught:
            settings.updated(changes)
        assert caught.value.field == field, changes
    assert settings == Settings(rate=5.0, clients=4)
    heavy = settings.updated({"heavy_share": 0.1, "heavy_ms": 300})
    assert (heavy.heavy_share, heavy.heavy_ms) == (0.1, 300.0)


def test_targets_are_http_host_port_and_an_optional_prefix():
    target = parse_target("http://127.0.0.1:8080/shop/")
    assert (target.host, target.port, target.prefix, target.url) == (
        "127.0.0.1", 8080, "/shop", "http://127.0.0.1:8080/shop"
    )  # fmt: skip
    secure = parse_target("https://shop.lab.test:8443/")
    assert (secure.https, secure.url, target.https) == (True, "https://shop.lab.test:8443/", False)
    for bad in ("ftp://a:1", "https://a", "http://a:1/?q=1", "a:1", "http://u@a:1", "http://a:0"):
        with pytest.raises(SettingError):
            parse_target(bad)


def test_latency_percentiles_cover_the_last_ten_seconds():
    stats = TrafficStats()
    for ms in range(1, 101):
        stats.started()
        stats.answered(200, float(ms), now=0.0)
    stats.started()
    stats.answered(503, 500.0, now=5.0)
    stats.started()
    stats.failed_with("reset")
    assert stats.percentiles(now=9.0) == {"p50": 51.0, "p95": 96.0}
    assert stats.percentiles(now=12.0) == {"p50": 500.0, "p95": 500.0}  # the first 100 aged out
    counters = stats.as_json()
    assert (counters["sent"], counters["completed"], counters["failed"]) == (102, 101, 1)
    assert counters["status"] == {"2xx": 100, "4xx": 0, "5xx": 1} and counters["in_flight"] == 0


# -- one client connection, fed bytes by hand (no sockets)


class FakeTransport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    abort = close

    def get_extra_info(self, name: str, default=None):
        return default  # plain TCP: no ssl_object


def exchange(*replies: bytes, then_close: bool = False):
    """Send one request on a hand-fed connection; return (request bytes, client, stats)."""

    async def scenario():
        stats = TrafficStats()
        client = Client(3, parse_target("http://127.0.0.1:8080/"), ("127.0.0.1", 8080), stats)
        connection = Connection(client)
        client.connections.add(connection)
        connection.connection_made(FakeTransport())
        stats.started()
        connection.send(Job(PATH_MIX[1], client.loop.time()))
        for reply in replies:
            for i in range(len(reply)):  # a byte at a time: the parser must not care
                connection.data_received(reply[i : i + 1])
        if then_close:
            connection.connection_lost(None)
        return connection.transport.written, client, stats

    return asyncio.run(scenario())


def test_a_client_sends_its_headers_and_keeps_what_the_answer_sets():
    reply = (
        b"HTTP/1.1 103 Early Hints\r\nLink: </app.js>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nSet-Cookie: cart=7; Path=/\r\nContent-Length: 2\r\n\r\nok"
    )
    request, client, stats = exchange(reply)
    assert request == (
        b"GET /cart HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: lb-lab-traffic\r\n"
        b"X-Lab-Client: c3\r\nAccept: */*\r\n\r\n"
    )
    assert client.source == "127.0.0.4" and client.jar.header() == b"cart=7"
    assert (stats.completed, stats.status["2xx"], stats.in_flight) == (1, 1, 0)
    assert len(client.idle) == 1  # kept alive for the next request
    assert b"Cookie: cart=7\r\n" in client.request_bytes(PATH_MIX[0])


def test_an_answer_without_a_length_ends_with_the_connection():
    _, client, stats = exchange(b"HTTP/1.0 404 Not Found\r\n\r\nnothing here", then_close=True)
    assert (stats.completed, stats.status["4xx"], stats.failed, stats.in_flight) == (1, 1, 0, 0)
    assert client.connections == set()


def test_garbage_or_a_hang_up_counts_as_a_failure_never_a_crash():
    _, client, stats = exchange(b"HTTP/1.1 2OO OK\r\n\r\n")
    assert (stats.failures["bad_response"], stats.in_flight) == (1, 0)
    _, client, stats = exchange(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", then_close=True
    )
    assert (stats.failures["reset"], stats.completed, stats.in_flight) == (1, 0, 0)
    assert client.connections == set() and client.idle == []
