"""How the traffic generator's requests share out, as real servers see them: over each
client's connections (one, as an HTTP/2 or gRPC client holds, or several for a burst), and
over two balancers (--split gives each client one; spread: request takes turns).

Runs `lb-lab traffic` as a real process (the start_traffic fixture, conftest.py).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import Http, wait_for
from test_traffic_processes import settled, state

from lab.supervisor import Supervisor


class Counter(BaseHTTPRequestHandler):
    """Answers 200 and notes which server saw which client address."""

    protocol_version = "HTTP/1.1"  # keeps connections open, as the clients want
    seen: list[tuple[int, str]] = []
    connections: list[tuple[str, int]] = []  # each request's client address and port
    busy: dict[str, int] = {}  # requests of each client address being answered now...
    peak: dict[str, int] = {}  # ...and the most at once
    lock = threading.Lock()
    work_s = 0.0  # each answer's service time: overlapping requests then overlap here

    def do_GET(self) -> None:
        self.seen.append((self.server.server_address[1], self.client_address[0]))
        self.connections.append(self.client_address[:2])
        client = self.client_address[0]
        with self.lock:
            self.busy[client] = self.busy.get(client, 0) + 1
            self.peak[client] = max(self.peak.get(client, 0), self.busy[client])
        time.sleep(self.work_s)
        with self.lock:
            self.busy[client] -= 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args) -> None:
        pass


def test_split_shares_the_clients_out_between_two_balancers(start_traffic):
    """Two balancers in front of the same backends: each client always reaches the same one."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Counter) for _ in range(2)]
    Counter.seen = []
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    ports = [server.server_address[1] for server in servers]
    try:
        with Supervisor() as supervisor:
            child = supervisor.start(
                "traffic",
                ["traffic", "--target", f"http://127.0.0.1:{ports[0]}",
                 "--target", f"http://127.0.0.1:{ports[1]}", "--split",
                 "--rate", "0", "--clients", "4"],
            )  # fmt: skip
            control = Http(child.addresses["control"])
            try:
                control.json("POST", "/send", {"count": 8})

                def answered() -> list[dict] | None:
                    sides = state(control)["sides"]
                    done = all(s["counters"]["completed"] == 4 for s in sides)
                    return sides if done else None

                sides = wait_for(answered, what="four answers on each side")
            finally:
                control.close()
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    assert [side["counters"]["sent"] for side in sides] == [4, 4]  # one send per arrival
    by_server = {port: sorted(peer for p, peer in Counter.seen if p == port) for port in ports}
    assert by_server == {
        ports[0]: ["127.0.0.2", "127.0.0.2", "127.0.0.4", "127.0.0.4"],  # c1, c3
        ports[1]: ["127.0.0.3", "127.0.0.3", "127.0.0.5", "127.0.0.5"],  # c2, c4
    }


def test_one_connection_per_client_carries_a_burst_in_turn(start_traffic):
    """`connections: 1`, as an HTTP/2 or gRPC client: a burst waits its turn on one connection."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    Counter.seen, Counter.connections = [], []
    Counter.work_s = 0.02  # long enough for a burst's requests to overlap, if they may
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with Supervisor() as supervisor:
            control = start_traffic(supervisor, target, "--rate", "0", "--clients", "2")
            assert control.json("PUT", "/config", {"connections": 1})[0] == 200
            Counter.busy, Counter.peak = {}, {}
            control.json("POST", "/send", {"count": 12})
            settled(control, 12)
            one_at_a_time = dict(Counter.peak)
            bad = control.json("PUT", "/config", {"connections": 7})
            assert bad[0] == 400 and "connections must be a whole number 1-6" in str(bad[1])
            assert control.json("PUT", "/config", {"connections": 6})[0] == 200
            Counter.peak = {}
            control.json("POST", "/send", {"count": 12})
            settled(control, 24)
            several = dict(Counter.peak)
    finally:
        Counter.work_s = 0.0
        server.shutdown()
        server.server_close()
    # One connection per client: its six requests took turns on it, never two at once (a
    # connection the server closed may be replaced, which is no second one at a time).
    assert one_at_a_time == {"127.0.0.2": 1, "127.0.0.3": 1}
    assert max(several.values()) > 1  # as browsers: more connections for a burst
    assert len(set(Counter.connections[12:])) > 2


def test_spread_request_sends_each_clients_requests_to_both_balancers_in_turn(start_traffic):
    """As ECMP sends a client's new connections to any balancer: c1 first, then the other."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Counter) for _ in range(2)]
    Counter.seen, Counter.connections = [], []
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    ports = [server.server_address[1] for server in servers]
    try:
        with Supervisor() as supervisor:
            child = supervisor.start(
                "traffic",
                ["traffic", "--target", f"http://127.0.0.1:{ports[0]}",
                 "--target", f"http://127.0.0.1:{ports[1]}", "--split",
                 "--rate", "0", "--clients", "2"],
            )  # fmt: skip
            control = Http(child.addresses["control"])
            try:
                bad = control.json("PUT", "/config", {"spread": "packet"})
                assert bad[0] == 400 and "spread must be one of client, request" in str(bad[1])
                assert control.json("PUT", "/config", {"spread": "request"})[0] == 200
                for sent in range(1, 5):  # one at a time: c1, c2, c1, c2
                    control.json("POST", "/send", {"count": 1})
                    wait_for(lambda n=sent: len(Counter.seen) == n, what=f"request {sent}")
            finally:
                control.close()
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    assert Counter.seen == [
        (ports[0], "127.0.0.2"), (ports[1], "127.0.0.3"),  # c1 starts on the first, c2 not
        (ports[1], "127.0.0.2"), (ports[0], "127.0.0.3"),  # then each takes the other
    ]  # fmt: skip
