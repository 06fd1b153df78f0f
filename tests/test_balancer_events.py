"""Events as a reader sees them: valid JSON whatever the request said, never a brake on traffic."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

from conftest import Http, split, wait_for
from test_events import FakeSink

from lab.balancer.algorithms import Decision, RequestInfo
from lab.balancer.backend import Backend
from lab.balancer.balancer import Balancer
from lab.balancer.config import BalancerConfig


def test_hot_path_events_are_valid_json_for_any_path_and_reason():
    async def scenario():
        balancer = Balancer(BalancerConfig())
        sink = FakeSink()
        balancer.events.subscribe(sink)
        nasty = '/a"b\\c\n\té\u2028?q=<script>'
        request = RequestInfo("127.0.0.9", "GET", nasty)
        backend = Backend("b1", "127.0.0.1", 9001)
        balancer.publish_route("r1", request, Decision(backend, 'because "quotes"\n'), retry=1)
        balancer.publish_done("r1", backend, None, 1.23456, 10, 20)
        balancer.events.flush()
        return sink.lines()

    route, done = asyncio.new_event_loop().run_until_complete(scenario())
    assert route["path"] == '/a"b\\c\n\té\u2028?q=<script>'
    assert route["reason"] == 'because "quotes"\n'
    assert (route["client"], route["retry"], route["mode"]) == ("127.0.0.9", 1, "http")
    assert done == {
        "type": "done", "id": "r1", "t": done["t"], "backend": "b1",
        "status": None, "ms": 1.235, "bytes": 10, "bytes_up": 20,
    }  # fmt: skip


def test_event_times_are_the_wall_clock_to_within_a_millisecond():
    balancer = Balancer(BalancerConfig())
    stamps = []
    for _ in range(2000):
        before = time.time()
        text = balancer.event_time()
        stamps.append(float(text))
        # At most 1 ms early; printing 6 decimals may round either way by under 1 us.
        assert before - 0.001 - 1e-6 <= stamps[-1] <= time.time() + 1e-6
        assert len(text.partition(".")[2]) == 6  # microseconds, as before
    assert stamps == sorted(stamps)


def test_a_stuck_events_reader_never_slows_traffic_and_drops_are_counted(lab, tmp_path):
    config = tmp_path / "lb.toml"
    config.write_text("events_queue = 50\n")
    lab.start_balancer("--config", str(config))
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(split(lab.admin_address))
    stuck.sendall(b"GET /events HTTP/1.1\r\nHost: admin\r\n\r\n")  # and never read
    try:
        wait_for(lambda: lab.state()["events"]["subscribers"] == 1, what="the stuck reader")
        statuses: list[int] = []

        def client() -> None:
            http = Http(lab.listen)
            statuses.extend(http.get()[0] for _ in range(500))

        threads = [threading.Thread(target=client) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert statuses == [200] * 2000
        events = lab.state()["events"]
        assert events["dropped"] > 0
        assert events["published"] >= 4000  # a route and a done per request
    finally:
        stuck.close()
    wait_for(lambda: lab.state()["events"]["subscribers"] == 0, what="the reader to be let go")


def test_a_reader_that_catches_up_is_told_what_it_missed(lab, tmp_path):
    config = tmp_path / "lb.toml"
    config.write_text("events_queue = 10\n")
    lab.start_balancer("--config", str(config))
    reader = socket.create_connection(split(lab.admin_address), timeout=10)
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.sendall(b"GET /events HTTP/1.1\r\nHost: admin\r\n\r\n")
    wait_for(lambda: lab.state()["events"]["subscribers"] == 1, what="the reader")
    http = Http(lab.listen)
    for _ in range(2000):
        http.get()
    wait_for(lambda: lab.state()["events"]["dropped"] > 0, what="drops")
    http.get()  # one more event after the drop, so a flush reports the count
    data = b""
    while b'"type":"dropped"' not in data:
        chunk = reader.recv(65536)
        assert chunk, "stream ended before a dropped notice"
        data += chunk
    reader.close()
    line = next(x for x in data.splitlines() if b'"type":"dropped"' in x)
    assert json.loads(line)["count"] > 0
