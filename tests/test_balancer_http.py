"""Layer 7 against real backend processes: one decision per request, bodies streamed intact."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading

from conftest import Http, raw_exchange, split, wait_for


def served_by(client: Http, n: int, path: str = "/") -> list[str]:
    return [client.get(path)[1]["x-backend"] for _ in range(n)]


def test_round_robin_spreads_one_keep_alive_connection_in_exact_order(lab):
    lab.start_balancer("--algorithm", "round-robin")
    client = Http(lab.listen)
    assert served_by(client, 6) == ["b1", "b2", "b3", "b1", "b2", "b3"]
    assert [b["total"] for b in lab.state()["backends"]] == [2, 2, 2]


def test_response_says_who_served_and_where_the_client_came_from(lab):
    lab.start_balancer()
    status, headers, body = Http(lab.listen).get("/cart", headers={"X-Forwarded-For": "10.0.0.9"})
    answer = json.loads(body)
    assert status == 200
    assert headers["x-backend"] == answer["backend"] == "b1"
    assert answer["path"] == "/cart"
    assert answer["forwarded_for"] == "10.0.0.9, 127.0.0.1"


def test_weighted_round_robin_is_smooth(lab):
    lab.start_balancer()
    lab.admin("PUT", "/config", {"weights": {"b1": 5}})
    order = served_by(Http(lab.listen), 7)
    assert order == ["b1", "b1", "b2", "b1", "b3", "b1", "b1"]


def test_upload_of_one_megabyte_arrives_intact(lab):
    lab.start_balancer()
    body = bytes(range(256)) * 4096
    status, _, data = Http(lab.listen).request("POST", "/upload", body=body)
    answer = json.loads(data)
    assert status == 200
    assert answer["bytes_received"] == len(body) == 1 << 20
    assert answer["sha256"] == hashlib.sha256(body).hexdigest()


def test_chunked_upload_is_streamed_through(lab):
    lab.start_balancer()
    pieces = [b"x" * 1000, b"y" * 70000, b"z"]
    # An iterable body without a length: http.client sends it chunked.
    status, _, data = Http(lab.listen).request("POST", "/upload", body=iter(pieces))
    answer = json.loads(data)
    assert status == 200
    assert answer["sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest()


def test_chunked_response_passes_through_intact(lab):
    lab.start_balancer()
    status, headers, body = Http(lab.listen).get("/chunked?n=50&size=1000")
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    direct_status, _, direct = Http(lab.backends["b1"]).get("/chunked?n=50&size=1000")
    assert len(body) == 50_000 and body == direct


def test_head_request_keeps_the_connection_usable(lab):
    lab.start_balancer()
    client = Http(lab.listen)
    status, headers, body = client.request("HEAD", "/bytes?size=5000")
    assert status == 200 and body == b""
    assert client.get()[0] == 200  # the next request on the same connection still works


def test_pipelined_requests_are_answered_in_order(lab):
    lab.start_balancer()
    request = b"GET /p%d HTTP/1.1\r\nHost: lab\r\n\r\n"
    data = (
        b"".join(request % i for i in range(3))
        + b"GET /last HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"
    )
    reply = raw_exchange(lab.listen, data)
    paths = re.findall(rb'"path":"([^"]*)"', reply)
    assert reply.count(b"HTTP/1.1 200 OK") == 4
    assert paths == [b"/p0", b"/p1", b"/p2", b"/last"]


def test_bad_requests_get_clear_status_codes_and_the_balancer_keeps_serving(lab):
    lab.start_balancer()
    cases = {
        b"NOT HTTP AT ALL\r\n\r\n": b"400",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n": b"400",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc": b"400",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n": b"431",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17000: b"431",  # never-ending head
        b"GET / HTTP/1.1\r\n\r\n": b"400",  # HTTP/1.1 needs a Host
    }
    for request, status in cases.items():
        reply = raw_exchange(lab.listen, request)
        assert reply.startswith(b"HTTP/1.1 " + status), (request[:60], reply[:100])
    assert Http(lab.listen).get()[0] == 200
    assert lab.state()["errors"]["400"] == 4


def test_no_backend_gives_a_fast_503_with_a_clear_body(lab):
    lab.start_balancer(backends=[])
    status, headers, body = Http(lab.listen).get()
    assert status == 503
    assert b"no healthy backend" in body


def test_killed_backend_means_failover_never_a_hang(lab):
    lab.start_balancer()
    client = Http(lab.listen, timeout=5)
    assert served_by(client, 3) == ["b1", "b2", "b3"]  # b2 now has an idle pooled connection
    lab.kill("b2")
    results = [client.get() for _ in range(9)]
    assert all(status == 200 for status, _, _ in results)
    assert {h["x-backend"] for _, h, _ in results} == {"b1", "b3"}
    assert lab.backend_state("b2")["failures"] >= 1


def test_adding_and_removing_backends_live(lab):
    lab.start_balancer(backends=["b1", "b2"])
    lab.start_backend("b4")
    status, reply = lab.admin("POST", "/backends", {"name": "b4", "address": lab.backends["b4"]})
    assert status == 200 and reply["ok"]
    client = Http(lab.listen)
    assert sorted(served_by(client, 3)) == ["b1", "b2", "b4"]
    assert lab.admin("DELETE", "/backends/b1")[0] == 200
    assert set(served_by(client, 4)) == {"b2", "b4"}
    status, reply = lab.admin("DELETE", "/backends/b1")
    assert status == 404 and "b1" in reply["error"]


def test_bad_config_is_rejected_whole_with_the_field_named(lab):
    lab.start_balancer()
    status, reply = lab.admin(
        "PUT", "/config", {"algorithm": "least-connections", "weights": {"b7": 2}}
    )
    assert status == 400
    assert reply["field"] == "weights.b7"
    assert lab.state()["algorithm"] == "round-robin"  # nothing changed
    status, reply = lab.admin("PUT", "/config", {"algorithm": "least-connections"})
    assert status == 200 and reply["changes"] == {"algorithm": "least-connections"}


def read_events(admin: str, count: int, timeout: float = 5.0) -> list[dict]:
    with socket.create_connection(split(admin), timeout=timeout) as sock:
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: admin\r\n\r\n")
        buffer = b""
        while buffer.count(b"\n") < count + 5:  # the head is 4 lines and a blank one
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
    body = buffer.split(b"\r\n\r\n", 1)[1]
    return [json.loads(line) for line in body.splitlines()[:count]]


def test_event_stream_explains_every_decision(lab):
    lab.start_balancer("--algorithm", "least-connections")
    got: list[dict] = []
    reader = threading.Thread(target=lambda: got.extend(read_events(lab.admin_address, 5)))
    reader.start()
    wait_for(lambda: lab.state()["events"]["subscribers"] == 1, what="the /events reader")
    client = Http(lab.listen)
    client.get("/a")
    client.get("/b")
    lab.admin("PUT", "/config", {"algorithm": "ip-hash"})
    reader.join(10)
    route, done, route2, done2, config = got
    assert route["type"] == "route" and route["path"] == "/a" and route["method"] == "GET"
    assert route["algorithm"] == "least-connections" and route["mode"] == "http"
    assert route["reason"].startswith(f"{route['backend']} has 0 active")
    assert done["type"] == "done" and done["id"] == route["id"] and done["status"] == 200
    assert done["bytes"] > 0 and done["ms"] > 0
    assert route2["id"] != route["id"] and route2["path"] == "/b"
    assert config == {"type": "config", "t": config["t"], "changes": {"algorithm": "ip-hash"}}


def test_metrics_are_prometheus_text(lab):
    lab.start_balancer()
    client = Http(lab.listen)
    served_by(client, 4)
    status, headers, body = Http(lab.admin_address).get("/metrics")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert 'lb_requests_total{backend="b1"} 2' in text
    assert 'lb_requests_total{backend="b3"} 1' in text
    assert 'lb_response_seconds_count{backend="b1"} 2' in text
    assert "# TYPE lb_response_seconds histogram" in text


def test_switching_algorithm_keeps_in_flight_requests_and_their_counts(lab):
    lab.start_balancer()
    slow: list[tuple] = []
    thread = threading.Thread(target=lambda: slow.append(Http(lab.listen).get("/slow?ms=1500")))
    thread.start()
    wait_for(lambda: lab.backend_state("b1")["active"] == 1, what="the slow request on b1")
    assert lab.admin("PUT", "/config", {"algorithm": "least-connections"})[0] == 200
    client = Http(lab.listen)
    picks = served_by(client, 4)
    assert "b1" not in picks  # its slow request is still in flight, and the new algorithm sees it
    thread.join(10)
    status, headers, _ = slow[0]
    assert status == 200 and headers["x-backend"] == "b1"
    assert lab.backend_state("b1")["active"] == 0


def test_consistent_hash_on_a_header_keeps_each_user_on_one_backend(lab):
    lab.start_balancer("--algorithm", "consistent-hash", "--hash-key", "header:X-User")
    client = Http(lab.listen)
    homes = {}
    for user in ("ana", "bo", "cy", "di", "ed", "fay"):
        seen = {client.get(headers={"X-User": user})[1]["x-backend"] for _ in range(4)}
        assert len(seen) == 1, (user, seen)
        homes[user] = seen.pop()
    assert len(set(homes.values())) > 1  # six users do not all hash to one backend
