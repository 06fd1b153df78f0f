"""The traffic generator as a real process: rates, clients from their own addresses, cookies,
keep-alive, its control API and its command line. How a client's requests share out over
connections and over two balancers: test_traffic_connections.py."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import Http, split, wait_for

from lab.supervisor import Supervisor, lab_command


def state(control: Http) -> dict:
    status, document = control.json("GET", "/state")
    assert status == 200
    return document


def counters(control: Http) -> dict:
    return state(control)["counters"]


def settled(control: Http, completed: int) -> dict:
    """Wait until `completed` answers are in and nothing is in flight."""
    return wait_for(
        lambda: (c := counters(control))["completed"] == completed and c["in_flight"] == 0 and c,
        what=f"{completed} answers",
    )


def totals(lab) -> list[int]:
    return [backend["total"] for backend in lab.state()["backends"]]


def stays(condition, seconds: float) -> bool:
    """True if `condition` holds at every check for `seconds`: to assert that nothing happens."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not condition():
            return False
        time.sleep(0.05)
    return True


def test_traffic_at_a_rate_reaches_every_backend_and_pause_stops_it(lab, start_traffic):
    lab.start_balancer()
    control = start_traffic(lab.supervisor, f"http://{lab.listen}", "--rate", "200", "--seed", "1")
    wait_for(lambda: min(totals(lab)) >= 5, what="traffic on every backend")
    assert state(control)["counters"]["status"]["2xx"] >= 15

    assert control.json("PUT", "/config", {"paused": True})[0] == 200
    sent = wait_for(lambda: (c := counters(control))["in_flight"] == 0 and c["sent"], what="idle")
    assert stays(lambda: counters(control)["sent"] == sent, seconds=0.5)  # ~100 due at 200/s
    assert sum(totals(lab)) == sent

    assert control.json("PUT", "/config", {"paused": False})[0] == 200
    wait_for(lambda: counters(control)["sent"] >= sent + 10, what="traffic to resume")
    latency = state(control)["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"]


def test_send_n_with_rate_zero_gives_two_per_backend_under_round_robin(lab, start_traffic):
    lab.start_balancer("--algorithm", "round-robin")
    control = start_traffic(lab.supervisor, f"http://{lab.listen}", "--rate", "0")
    assert control.json("POST", "/send", {"count": 6}) == (200, {"ok": True, "queued": 6})
    done = settled(control, 6)
    assert done["sent"] == 6 and done["status"]["2xx"] == 6 and done["failed"] == 0
    assert totals(lab) == [2, 2, 2]


def read_route_clients(admin: str, count: int, got: list[str]) -> None:
    with socket.create_connection(split(admin), timeout=10) as sock:
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: admin\r\n\r\n")
        buffer = b""
        while len(got) < count and (chunk := sock.recv(65536)):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b"{") and json.loads(line)["type"] == "route":
                    got.append(json.loads(line)["client"])


def test_each_client_sends_from_its_own_address(lab, start_traffic):
    lab.start_balancer()
    clients: list[str] = []
    reader = threading.Thread(target=read_route_clients, args=(lab.admin_address, 10, clients))
    reader.start()
    wait_for(lambda: lab.state()["events"]["subscribers"] == 1, what="the /events reader")
    control = start_traffic(lab.supervisor, f"http://{lab.listen}", "--clients", "5", "--paused")
    control.json("POST", "/send", {"count": 10})
    reader.join(10)
    assert sorted(set(clients)) == [f"127.0.0.{k}" for k in range(2, 7)]
    assert sorted(clients.count(address) for address in set(clients)) == [2] * 5  # round-robin
    listed = [(c["name"], c["address"]) for c in state(control)["client_list"]]
    assert listed == [(f"c{k}", f"127.0.0.{k + 1}") for k in range(1, 6)]


class CookieShop(BaseHTTPRequestHandler):
    """Sets a session cookie named after the client on the first visit; records every request."""

    protocol_version = "HTTP/1.1"
    seen: list[dict] = []

    def do_GET(self) -> None:
        client = self.headers["X-Lab-Client"]
        self.seen.append(
            {
                "client": client,
                "cookie": self.headers["Cookie"],
                "agent": self.headers["User-Agent"],
                "peer": self.client_address[0],
                "path": self.path,
            }
        )
        self.send_response(200)
        if not self.headers["Cookie"]:
            self.send_header("Set-Cookie", f"session=for-{client}; Path=/; HttpOnly")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.do_GET()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def shop():
    server = ThreadingHTTPServer(("127.0.0.1", 0), CookieShop)
    CookieShop.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_each_client_keeps_its_own_cookies(shop, start_traffic):
    target = f"http://127.0.0.1:{shop.server_address[1]}/shop"
    with Supervisor() as supervisor:
        control = start_traffic(supervisor, target, "--rate", "0", "--clients", "2")
        control.json("POST", "/send", {"count": 2})  # one first visit each
        settled(control, 2)
        control.json("POST", "/send", {"count": 4})
        settled(control, 6)
        cookies = {c["name"]: c["cookies"] for c in state(control)["client_list"]}
    first, later = CookieShop.seen[:2], CookieShop.seen[2:]
    assert [visit["cookie"] for visit in first] == [None, None]
    assert sorted((v["client"], v["cookie"]) for v in later) == [
        ("c1", "session=for-c1"), ("c1", "session=for-c1"),
        ("c2", "session=for-c2"), ("c2", "session=for-c2"),
    ]  # fmt: skip
    assert cookies == {"c1": ["session"], "c2": ["session"]}
    assert {v["agent"] for v in CookieShop.seen} == {"lb-lab-traffic"}
    assert {(v["client"], v["peer"]) for v in CookieShop.seen} == {
        ("c1", "127.0.0.2"), ("c2", "127.0.0.3")
    }  # fmt: skip
    assert all(v["path"].startswith("/shop/") for v in CookieShop.seen)


def test_reset_makes_fresh_visitors_starting_again_from_c1(shop, start_traffic):
    target = f"http://127.0.0.1:{shop.server_address[1]}"
    with Supervisor() as supervisor:
        control = start_traffic(supervisor, target, "--rate", "0", "--clients", "3")
        control.json("POST", "/send", {"count": 4})  # c1, c2, c3, c1: c2 would be next
        settled(control, 4)
        jars = {c["name"]: c["cookies"] for c in state(control)["client_list"]}
        assert jars == {"c1": ["session"], "c2": ["session"], "c3": ["session"]}

        assert control.json("POST", "/reset") == (200, {"ok": True})
        assert [c["cookies"] for c in state(control)["client_list"]] == [[], [], []]
        assert counters(control)["sent"] == 0
        control.json("POST", "/send", {"count": 1})
        settled(control, 1)
    assert (CookieShop.seen[-1]["client"], CookieShop.seen[-1]["cookie"]) == ("c1", None)


def test_keep_alive_reuses_one_connection_and_off_opens_one_per_request(lab, start_traffic):
    lab.start_balancer("--mode", "tcp")
    control = start_traffic(lab.supervisor, f"http://{lab.listen}", "--rate", "0", "--clients", "1")
    for n in range(1, 6):  # one at a time, so the one connection is always free
        control.json("POST", "/send", {"count": 1})
        settled(control, n)
    assert sum(totals(lab)) == 1  # at Layer 4, `total` counts connections

    assert control.json("PUT", "/config", {"keep_alive": False})[1]["changes"] == {
        "keep_alive": False
    }  # fmt: skip
    wait_for(lambda: sum(b["active"] for b in lab.state()["backends"]) == 0, what="idle closed")
    lab.admin("POST", "/reset")
    control.json("POST", "/send", {"count": 5})
    settled(control, 10)
    assert sum(totals(lab)) == 5


def test_bad_control_requests_are_refused_clearly_and_change_nothing(start_traffic):
    with Supervisor() as supervisor:
        control = start_traffic(supervisor, "http://127.0.0.1:9", "--rate", "0", "--paused")
        before = state(control)
        for body, field in [
            ({"rate": 10, "clients": 0}, "clients"),
            ({"keep_alive": "yes"}, "keep_alive"),
            ({"paused": False, "colour": "red"}, "colour"),
        ]:
            status, reply = control.json("PUT", "/config", body)
            assert status == 400 and reply["field"] == field and reply["error"]
        status, _, raw = control.request("PUT", "/config", body=b"{rate: 1")
        assert status == 400 and json.loads(raw)["field"] == "body"
        assert control.json("POST", "/send", {"count": 1001}) == (
            400, {"error": "count must be a whole number 1-1000, got 1001", "field": "count"}
        )  # fmt: skip
        assert control.json("GET", "/nope")[0] == 404
        status, headers, _ = control.request("GET", "/config")
        assert status == 405 and headers["allow"] == "PUT"
        assert state(control) == before


def test_a_target_that_refuses_counts_failures_and_nothing_hangs(start_traffic):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with Supervisor() as supervisor:
        control = start_traffic(supervisor, f"http://127.0.0.1:{closed}", "--rate", "0")
        control.json("POST", "/send", {"count": 3})
        done = wait_for(lambda: (c := counters(control))["failed"] == 3 and c, what="3 failures")
        assert done["failures"]["connect"] == 3 and done["in_flight"] == 0
        control.json("POST", "/reset")
        assert counters(control)["sent"] == 0


def test_duration_ends_the_run_with_a_summary(shop):
    target = f"http://127.0.0.1:{shop.server_address[1]}"
    result = subprocess.run(
        lab_command("traffic", "--target", target, "--rate", "50", "--duration", "1"),
        capture_output=True, text=True, timeout=15,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"traffic -> {target}/ at 50 req/s from 4 clients")
    summary = lines[-1]
    assert summary.startswith("traffic: sent ") and "failed 0;" in summary and "p95 " in summary
    sent = int(summary.split()[2].rstrip(","))
    assert sent == len(CookieShop.seen) and 20 <= sent <= 100


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "ftp://127.0.0.1:8080"], "must start with http:// or https://"),
        (["--target", "https://127.0.0.1:8080"], "HTTPS needs --ca-file FILE"),
        (
            ["--target", "http://127.0.0.1:8080", "--tls", "--ca-file", "/nonexistent.pem"],
            "cannot read the CA file /nonexistent.pem",
        ),
        (
            ["--target", "http://127.0.0.1:8080", "--sni-mix", "shop.lab.test=x"],
            "must be a whole number",
        ),
        (["--target", "http://127.0.0.1:8080", "--sni-mix", "127.0.0.1=2"], "is not a host name"),
        (["--target", "http://127.0.0.1:8080", "--rate", "9000"], "between 0 and 5000"),
        (["--target", "http://127.0.0.1:8080", "--clients", "65"], "whole number 1-64"),
        (["--target", "http://127.0.0.1:8080", "--keep-alive", "yes"], "expected on or off"),
        (["--rate", "3"], "required: --target"),
    ],
)
def test_a_bad_flag_exits_2_with_one_line(args, message):
    result = subprocess.run(
        lab_command("traffic", *args), capture_output=True, text=True, timeout=15
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
