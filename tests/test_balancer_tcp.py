"""Layer 4 against real backend processes: one decision per TCP connection, bytes both ways."""

from __future__ import annotations

import json
import socket
import threading

from conftest import Http, raw_exchange, split, wait_for


def test_one_keep_alive_connection_sticks_to_one_backend(lab):
    lab.start_balancer("--mode", "tcp")
    client = Http(lab.listen)
    first = [client.get()[1]["x-backend"] for _ in range(6)]
    assert first == ["b1"] * 6  # every request rides the connection chosen once
    second = [Http(lab.listen).get()[1]["x-backend"] for _ in range(2)]
    assert second == ["b2", "b3"]  # new connections are routed again
    assert [b["total"] for b in lab.state()["backends"]] == [1, 1, 1]  # connections, not requests


def test_the_same_traffic_is_spread_at_layer_7(lab):
    lab.start_balancer("--mode", "tcp")
    assert lab.admin("PUT", "/config", {"mode": "http"})[0] == 200
    client = Http(lab.listen)
    assert [client.get()[1]["x-backend"] for _ in range(3)] == ["b1", "b2", "b3"]


def test_half_close_still_delivers_the_answer(lab):
    lab.start_balancer("--mode", "tcp")
    reply = raw_exchange(
        lab.listen, b"GET /bytes?size=200000 HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"
    )
    head, body = reply.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and len(body) == 200_000
    wait_for(
        lambda: sum(b["active"] for b in lab.state()["backends"]) == 0, what="the connection to end"
    )


def test_a_large_upload_is_piped_with_backpressure(lab):
    lab.start_balancer("--mode", "tcp")
    body = b"0123456789abcdef" * (1 << 17)  # 2 MiB
    status, _, data = Http(lab.listen).request("POST", "/upload", body=body)
    assert status == 200 and json.loads(data)["bytes_received"] == len(body)


def test_connection_events_carry_bytes_each_way(lab):
    lab.start_balancer("--mode", "tcp")
    lines: list[bytes] = []

    def read():
        with socket.create_connection(split(lab.admin_address), timeout=5) as sock:
            sock.sendall(b"GET /events HTTP/1.1\r\nHost: a\r\n\r\n")
            data = b""
            while data.count(b"\n") < 7:
                data += sock.recv(65536)
            lines.extend(data.split(b"\r\n\r\n", 1)[1].splitlines())

    reader = threading.Thread(target=read)
    reader.start()
    wait_for(lambda: lab.state()["events"]["subscribers"] == 1, what="the /events reader")
    raw_exchange(lab.listen, b"GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
    reader.join(5)
    route, done = (json.loads(line) for line in lines[:2])
    assert route["type"] == "route" and route["mode"] == "tcp" and "path" not in route
    assert done["type"] == "done" and done["id"] == route["id"]
    assert done["bytes"] > 100 and done["bytes_up"] > 20 and done["status"] is None


def test_refused_connection_goes_to_another_backend(lab):
    lab.start_balancer("--mode", "tcp")
    lab.kill("b1")
    for _ in range(4):
        assert Http(lab.listen).get()[1]["x-backend"] in ("b2", "b3")
    assert lab.backend_state("b1")["failures"] >= 1


def test_no_backend_closes_the_connection(lab):
    lab.start_balancer("--mode", "tcp", backends=[])
    with socket.create_connection(split(lab.listen), timeout=5) as sock:
        assert (
            sock.recv(100) == b""
        )  # closed at once, nothing said: Layer 4 has no words for errors
    assert lab.state()["errors"] == {"refused": 1}


def test_a_connection_every_backend_refused_is_closed_and_the_reason_says_so(lab):
    lab.start_balancer("--mode", "tcp")
    lab.configure(retries={"tries": 5})  # more tries than backends: all of them are tried
    reader = lab.events()
    for name in ("b1", "b2", "b3"):
        lab.kill(name)
    with socket.create_connection(split(lab.listen), timeout=5) as sock:
        assert sock.recv(1) == b""  # closed: at Layer 4 there is no status code to send
    wait_for(lambda: len(reader.of("error")) >= 4, what="four errors")
    assert [e["reason"] for e in reader.of("error")] == [
        "b1 refused the connection; trying another",
        "b2 refused the connection; trying another",
        "b3 refused the connection; trying another",
        "every backend refused the connection",
    ]


def test_a_backend_that_never_accepts_times_out_and_the_next_one_serves(lab):
    # A listener whose accept queue is full: the kernel drops further SYNs, so a
    # connect to it neither succeeds nor fails until timeouts.connect_ms says so.
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(0)
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(stuck.getsockname())
        fillers.append(filler)
    try:
        host, port = stuck.getsockname()
        lab.start_balancer("--mode", "tcp", "--backend", f"stuck={host}:{port}", backends=["b1"])
        lab.configure(timeouts={"connect_ms": 300})
        reader = lab.events()
        status, headers, _ = Http(lab.listen).get()
        assert status == 200 and headers["x-backend"] == "b1"
        wait_for(lambda: reader.of("error"), what="the timeout's error event")
        assert [e["reason"] for e in reader.of("error")] == [
            "stuck did not accept the connection within 300 ms; trying another"
        ]
        assert lab.backend_state("stuck")["failures"] == 1
    finally:
        for filler in fillers:
            filler.close()
        stuck.close()
